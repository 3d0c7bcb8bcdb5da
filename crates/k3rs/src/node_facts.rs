//! What this machine is, as the Node object reports it: capacity and allocatable resources,
//! identity (machine ID, system UUID, boot ID), kernel and OS image — read from `/proc`,
//! `/sys` and `/etc`, each with a fallback when a file cannot be read.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::NodeSystemInfo;

/// Memory the kubelet keeps back from pods: upstream's default hard eviction threshold
/// (`memory.available<100Mi`), which is what allocatable subtracts when nothing is reserved.
const EVICTION_MEMORY: i64 = 100 << 20;
/// The share of the node's filesystem kept back (`nodefs.available<10%`).
const EVICTION_DISK_PERCENT: i64 = 10;
/// The kubelet's default `--max-pods`.
const MAX_PODS: i64 = 110;

/// The machine's resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resources {
    pub(crate) milli_cpu: i64,
    pub(crate) memory: i64,
    pub(crate) ephemeral_storage: i64,
}

impl Resources {
    /// CPUs this process may use, total memory, and the size of the filesystem holding `dir`.
    pub(crate) fn read(dir: &Path) -> Resources {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total(&text))
            .unwrap_or(0);
        let ephemeral_storage = nix::sys::statvfs::statvfs(dir)
            .map(|fs| {
                i64::try_from(fs.blocks())
                    .unwrap_or(0)
                    .saturating_mul(i64::try_from(fs.fragment_size()).unwrap_or(0))
            })
            .unwrap_or(0);
        Resources {
            milli_cpu: i64::try_from(cpus).unwrap_or(1) * 1000,
            memory,
            ephemeral_storage,
        }
    }

    /// `status.capacity`.
    pub(crate) fn capacity(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("cpu".to_owned(), format!("{}", self.milli_cpu / 1000)),
            ("memory".to_owned(), format!("{}Ki", self.memory / 1024)),
            (
                "ephemeral-storage".to_owned(),
                format!("{}Ki", self.ephemeral_storage / 1024),
            ),
            ("pods".to_owned(), MAX_PODS.to_string()),
        ])
    }

    /// Memory pods may use: capacity less the eviction threshold.
    pub(crate) fn allocatable_memory(&self) -> i64 {
        (self.memory - EVICTION_MEMORY).max(0)
    }

    /// `status.allocatable`: capacity less upstream's default eviction thresholds.
    pub(crate) fn allocatable(&self) -> BTreeMap<String, String> {
        let storage = self.ephemeral_storage - self.ephemeral_storage * EVICTION_DISK_PERCENT / 100;
        BTreeMap::from([
            ("cpu".to_owned(), format!("{}", self.milli_cpu / 1000)),
            (
                "memory".to_owned(),
                format!("{}Ki", self.allocatable_memory() / 1024),
            ),
            ("ephemeral-storage".to_owned(), storage.max(0).to_string()),
            ("pods".to_owned(), MAX_PODS.to_string()),
        ])
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `PRETTY_NAME` of an os-release file.
fn pretty_name(os_release: &str) -> Option<String> {
    let line = os_release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    let value = line.trim_start_matches("PRETTY_NAME=");
    Some(value.trim_matches('"').to_owned())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// Kubernetes' name for this machine's architecture.
pub(crate) fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `status.nodeInfo` of this machine (the runtime and kubelet versions are filled in later).
pub(crate) fn node_info(node_name: &str) -> NodeSystemInfo {
    NodeSystemInfo {
        architecture: architecture().to_owned(),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
        kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        machine_id: read_trimmed("/etc/machine-id")
            .unwrap_or_else(|| k3rs_kubelet::node::object::machine_id(node_name)),
        operating_system: "linux".to_owned(),
        os_image: std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| pretty_name(&text))
            .unwrap_or_else(|| "Linux".to_owned()),
        system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid")
            .map(|uuid| uuid.to_lowercase())
            .unwrap_or_else(|| k3rs_kubelet::node::object::name_uuid(node_name)),
        ..NodeSystemInfo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_and_os_release() {
        assert_eq!(
            mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(mem_total("nothing"), None);
        assert_eq!(
            pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
                .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn allocatable_keeps_the_eviction_thresholds_back() {
        let resources = Resources {
            milli_cpu: 2000,
            memory: 4 << 30,
            ephemeral_storage: 100 << 30,
        };
        assert_eq!(resources.capacity()["memory"], "4194304Ki");
        assert_eq!(resources.capacity()["cpu"], "2");
        assert_eq!(
            resources.allocatable()["memory"],
            format!("{}Ki", ((4i64 << 30) - (100 << 20)) / 1024)
        );
        assert_eq!(
            resources.allocatable()["ephemeral-storage"],
            (90i64 * (1 << 30)).to_string()
        );
        assert_eq!(resources.allocatable()["pods"], "110");
    }

    #[test]
    fn this_machine_is_described() {
        let info = node_info("n1");
        assert_eq!(info.operating_system, "linux");
        assert!(!info.machine_id.is_empty());
        assert!(!info.system_uuid.is_empty());
        let resources = Resources::read(Path::new("/"));
        assert!(resources.milli_cpu >= 1000);
        assert!(resources.memory > 0);
    }
}
