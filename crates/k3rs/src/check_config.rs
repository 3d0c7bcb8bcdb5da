//! `k3rs check-config`: what the node side needs from this machine, and what is missing — the
//! binaries it runs (containerd, runc, the CNI plugins, iptables), the kernel's features (from
//! its config when `/proc/config.gz` or `/boot/config-<release>` has it, and from
//! `/proc/filesystems`), the cgroup layout and controllers, and facts that change how k3rs
//! behaves (cgroup driver, `oom_score_adj`, systemd). Like k3s's `check-config`, it prints one
//! line per check and a final `STATUS`: `fail` (exit 1) when something required is missing;
//! optional features that are missing only disable what they serve.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::process::Command;

use k3rs_containerd::{CgroupLayout, HostFacts};

use crate::agent::CNI_BIN_DIRS;

/// How much a check matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// The node cannot run pods without it.
    Required,
    /// A feature needs it (named in the check).
    Optional,
    /// Only reported.
    Info,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Check {
    group: &'static str,
    name: String,
    need: Need,
    /// What was found (`Ok`) or why it is missing (`Err`).
    found: Result<String, String>,
}

impl Check {
    fn new(
        group: &'static str,
        name: impl Into<String>,
        need: Need,
        found: Result<String, String>,
    ) -> Check {
        Check {
            group,
            name: name.into(),
            need,
            found,
        }
    }
}

/// Kernel options the node side needs: (option, alternatives that also do, need, what for).
const KERNEL_OPTIONS: &[(&str, &[&str], Need, &str)] = &[
    ("CONFIG_NAMESPACES", &[], Need::Required, "containers"),
    ("CONFIG_NET_NS", &[], Need::Required, "pod networks"),
    ("CONFIG_PID_NS", &[], Need::Required, "containers"),
    ("CONFIG_IPC_NS", &[], Need::Required, "containers"),
    ("CONFIG_UTS_NS", &[], Need::Required, "pod hostnames"),
    ("CONFIG_CGROUPS", &[], Need::Required, "resource limits"),
    ("CONFIG_CGROUP_SCHED", &[], Need::Required, "CPU shares"),
    ("CONFIG_MEMCG", &[], Need::Required, "memory limits"),
    ("CONFIG_CGROUP_PIDS", &[], Need::Required, "pid limits"),
    (
        "CONFIG_CPUSETS",
        &[],
        Need::Optional,
        "the systemd cgroup driver",
    ),
    ("CONFIG_CFS_BANDWIDTH", &[], Need::Optional, "CPU limits"),
    ("CONFIG_SECCOMP", &[], Need::Required, "seccomp profiles"),
    ("CONFIG_KEYS", &[], Need::Required, "runc"),
    ("CONFIG_POSIX_MQUEUE", &[], Need::Required, "runc"),
    (
        "CONFIG_OVERLAY_FS",
        &[],
        Need::Required,
        "containerd's overlayfs snapshotter",
    ),
    ("CONFIG_VETH", &[], Need::Required, "pod interfaces"),
    ("CONFIG_BRIDGE", &[], Need::Required, "the pod bridge k3rs0"),
    (
        "CONFIG_NF_CONNTRACK",
        &[],
        Need::Required,
        "masquerade and hostPort",
    ),
    (
        "CONFIG_NF_NAT",
        &[],
        Need::Required,
        "masquerade and hostPort",
    ),
    (
        "CONFIG_NETFILTER_XT_TARGET_MASQUERADE",
        &["CONFIG_IP_NF_TARGET_MASQUERADE"],
        Need::Required,
        "egress masquerade",
    ),
    (
        "CONFIG_NETFILTER_XT_MATCH_COMMENT",
        &[],
        Need::Required,
        "k3rs's iptables rules",
    ),
    (
        "CONFIG_NETFILTER_XT_MATCH_ADDRTYPE",
        &[],
        Need::Required,
        "hostPort",
    ),
    (
        "CONFIG_BRIDGE_NETFILTER",
        &[],
        Need::Optional,
        "iptables on bridged pod traffic",
    ),
    (
        "CONFIG_BPF_SYSCALL",
        &[],
        Need::Optional,
        "the eBPF service datapath",
    ),
    (
        "CONFIG_CGROUP_BPF",
        &[],
        Need::Optional,
        "the eBPF service datapath",
    ),
    (
        "CONFIG_NET_CLS_BPF",
        &[],
        Need::Optional,
        "the eBPF service datapath",
    ),
    (
        "CONFIG_NET_SCH_INGRESS",
        &[],
        Need::Optional,
        "the eBPF service datapath",
    ),
    (
        "CONFIG_VXLAN",
        &[],
        Need::Optional,
        "the multi-node vxlan overlay",
    ),
    (
        "CONFIG_WIREGUARD",
        &[],
        Need::Optional,
        "the wireguard-native backend",
    ),
];

/// `CONFIG_X=value` lines of a kernel config (comments and unset options left out).
fn kernel_options(config: &str) -> BTreeMap<String, String> {
    config
        .lines()
        .filter(|line| line.starts_with("CONFIG_"))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.trim_matches('"').to_owned()))
        .collect()
}

/// The kernel option checks against a parsed config.
fn kernel_checks(options: &BTreeMap<String, String>) -> Vec<Check> {
    KERNEL_OPTIONS
        .iter()
        .map(|(option, alternatives, need, what)| {
            let found = std::iter::once(option)
                .chain(alternatives.iter())
                .find_map(|name| match options.get(*name).map(String::as_str) {
                    Some("y") => Some(format!("built in ({what})")),
                    Some("m") => Some(format!("module ({what}; load it at boot)")),
                    _ => None,
                })
                .ok_or_else(|| format!("not set ({what})"));
            Check::new("kernel", *option, *need, found)
        })
        .collect()
}

/// The kernel's config text: `/proc/config.gz`, else `/boot/config-<release>`.
fn read_kernel_config() -> Result<String, String> {
    if let Ok(file) = std::fs::File::open("/proc/config.gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(|err| format!("reading /proc/config.gz: {err}"))?;
        return Ok(text);
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .map_err(|err| format!("uname: {err}"))?;
    let path = format!("/boot/config-{release}");
    std::fs::read_to_string(&path)
        .map_err(|err| format!("no /proc/config.gz, and {path}: {err}; kernel options not checked"))
}

/// The first line a program prints for `--version` (or why it could not run).
fn version_of(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|err| format!("not found on PATH ({err})"))?;
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    let first = String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if output.status.success() {
        Ok(first)
    } else {
        Err(format!(
            "{program} {}: {}: {first}",
            args.join(" "),
            output.status
        ))
    }
}

/// containerd 1.6 or newer (CRI v1, the config format k3rs writes).
fn containerd_check() -> Check {
    let found = version_of("containerd", &["--version"]).and_then(|line| {
        // `containerd github.com/containerd/containerd 1.6.20~ds1 <commit>`
        let version = line
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) || w.starts_with('v'))
            .unwrap_or_default()
            .trim_start_matches('v');
        let mut parts = version.split(['.', '~', '-', '+']);
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if (major, minor) >= (1, 6) {
            Ok(line)
        } else {
            Err(format!("{line}: 1.6 or newer is needed"))
        }
    });
    Check::new(
        "binaries",
        "containerd",
        Need::Required,
        found.map_err(|why| {
            format!("{why} (install containerd, or pass --container-runtime-endpoint)")
        }),
    )
}

fn binary_checks() -> Vec<Check> {
    let mut checks = vec![
        containerd_check(),
        Check::new(
            "binaries",
            "runc",
            Need::Required,
            version_of("runc", &["--version"]),
        ),
        Check::new(
            "binaries",
            "iptables-restore",
            Need::Required,
            version_of("iptables-restore", &["--version"]),
        ),
    ];
    let plugins = ["bridge", "host-local", "loopback", "portmap"];
    let cni = CNI_BIN_DIRS
        .iter()
        .find(|dir| plugins.iter().all(|p| Path::new(dir).join(p).exists()))
        .map(|dir| format!("{} in {dir}", plugins.join(", ")))
        .ok_or_else(|| {
            format!(
                "{} not all in {} (install containernetworking-plugins)",
                plugins.join(", "),
                CNI_BIN_DIRS.join(" or ")
            )
        });
    checks.push(Check::new("binaries", "CNI plugins", Need::Required, cni));
    checks
}

/// The cgroup checks from the host's facts.
fn cgroup_checks(host: &HostFacts) -> Vec<Check> {
    let layout = match host.cgroup_layout {
        CgroupLayout::V1 => "v1",
        CgroupLayout::Hybrid => "hybrid (v1 controllers, cgroup2 mounted beside them)",
        CgroupLayout::V2 => "v2 (unified)",
    };
    let mut checks = vec![Check::new(
        "cgroups",
        "layout",
        Need::Info,
        Ok(layout.to_owned()),
    )];
    for (controller, need) in [
        ("cpu", Need::Required),
        ("memory", Need::Required),
        ("pids", Need::Required),
        ("cpuset", Need::Optional),
    ] {
        let found = if host.cgroup_controllers.contains(controller) {
            Ok("available".to_owned())
        } else {
            Err("not available to this process".to_owned())
        };
        checks.push(Check::new(
            "cgroups",
            format!("{controller} controller"),
            need,
            found,
        ));
    }
    let driver = match host.cgroup_driver() {
        k3rs_containerd::CgroupDriver::Systemd => "systemd (started by systemd on cgroup v2)",
        k3rs_containerd::CgroupDriver::Cgroupfs => "cgroupfs",
    };
    checks.push(Check::new(
        "cgroups",
        "driver",
        Need::Info,
        Ok(driver.into()),
    ));
    checks
}

/// Facts about the process and the host.
fn host_checks(host: &HostFacts) -> Vec<Check> {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let has_fs = |name: &str| {
        filesystems
            .lines()
            .any(|line| line.split_whitespace().last() == Some(name))
    };
    let bpffs_mounted = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split_whitespace().nth(2) == Some("bpf"));
    let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    vec![
        Check::new(
            "host",
            "root",
            Need::Required,
            if nix::unistd::geteuid().is_root() {
                Ok("running as root".into())
            } else {
                Err("k3rs's node side runs as root".into())
            },
        ),
        Check::new(
            "host",
            "overlay filesystem",
            Need::Required,
            if has_fs("overlay") {
                Ok("in /proc/filesystems".into())
            } else {
                Err("not in /proc/filesystems (load the overlay module)".into())
            },
        ),
        Check::new(
            "host",
            "bpf filesystem",
            Need::Optional,
            match (has_fs("bpf"), bpffs_mounted) {
                (true, true) => Ok("mounted".into()),
                (true, false) => Ok("available, not mounted at /sys/fs/bpf".into()),
                (false, _) => Err("not in /proc/filesystems (the eBPF service datapath)".into()),
            },
        ),
        Check::new(
            "host",
            "net.ipv4.ip_forward",
            Need::Info,
            Ok(format!("{ip_forward} (k3rs sets it to 1)")),
        ),
        Check::new(
            "host",
            "oom_score_adj",
            Need::Info,
            Ok(if host.restrict_oom_score_adj() {
                "cannot be lowered (no CAP_SYS_RESOURCE): containerd restricts it".into()
            } else {
                "can be lowered".into()
            }),
        ),
        Check::new(
            "host",
            "init",
            Need::Info,
            Ok(if host.started_by_systemd {
                "started by systemd".into()
            } else {
                "not started by systemd".into()
            }),
        ),
    ]
}

/// The report's text and whether everything required is there.
fn render(checks: &[Check]) -> (String, bool) {
    let mut text = String::new();
    let mut group = "";
    let mut failed = 0;
    let mut optional_missing = 0;
    for check in checks {
        if check.group != group {
            group = check.group;
            text.push_str(&format!("{group}:\n"));
        }
        let (mark, detail) = match (&check.found, check.need) {
            (Ok(found), Need::Info) => ("info", found.as_str()),
            (Ok(found), _) => ("ok", found.as_str()),
            (Err(why), Need::Required) => {
                failed += 1;
                ("MISSING", why.as_str())
            }
            (Err(why), Need::Optional) => {
                optional_missing += 1;
                ("missing (optional)", why.as_str())
            }
            (Err(why), Need::Info) => ("info", why.as_str()),
        };
        text.push_str(&format!("  - {}: {mark}: {detail}\n", check.name));
    }
    let pass = failed == 0;
    text.push_str(&format!(
        "\nSTATUS: {} ({failed} required missing, {optional_missing} optional missing)\n",
        if pass { "pass" } else { "fail" }
    ));
    (text, pass)
}

/// Runs every check and prints the report; whether the node side can run here.
pub(crate) fn run() -> bool {
    let mut checks = binary_checks();
    match HostFacts::detect() {
        Ok(host) => {
            checks.extend(cgroup_checks(&host));
            checks.extend(host_checks(&host));
        }
        Err(err) => checks.push(Check::new(
            "cgroups",
            "host facts",
            Need::Required,
            Err(format!("{err}")),
        )),
    }
    match read_kernel_config() {
        Ok(config) => checks.extend(kernel_checks(&kernel_options(&config))),
        Err(why) => checks.push(Check::new("kernel", "config", Need::Info, Err(why))),
    }
    let (text, pass) = render(&checks);
    print!("{text}");
    pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_options_accept_builtins_modules_and_alternatives() {
        let options = kernel_options(
            "# CONFIG_WIREGUARD is not set\nCONFIG_VETH=y\nCONFIG_BRIDGE=m\nCONFIG_IP_NF_TARGET_MASQUERADE=y\nCONFIG_LOCALVERSION=\"\"\n",
        );
        let checks = kernel_checks(&options);
        let by_name = |name: &str| checks.iter().find(|c| c.name == name).unwrap();
        assert!(by_name("CONFIG_VETH")
            .found
            .as_ref()
            .unwrap()
            .starts_with("built in"));
        assert!(by_name("CONFIG_BRIDGE")
            .found
            .as_ref()
            .unwrap()
            .starts_with("module"));
        assert!(by_name("CONFIG_NETFILTER_XT_TARGET_MASQUERADE")
            .found
            .is_ok());
        assert_eq!(
            by_name("CONFIG_WIREGUARD").found,
            Err("not set (the wireguard-native backend)".into())
        );
        assert_eq!(by_name("CONFIG_WIREGUARD").need, Need::Optional);
        assert!(by_name("CONFIG_NET_NS").found.is_err());
    }

    #[test]
    fn the_status_fails_only_for_required_checks() {
        let optional = Check::new(
            "kernel",
            "CONFIG_VXLAN",
            Need::Optional,
            Err("not set".into()),
        );
        let required = Check::new("binaries", "runc", Need::Required, Err("not found".into()));
        let fine = Check::new("binaries", "containerd", Need::Required, Ok("1.7.0".into()));
        let (text, pass) = render(&[fine.clone(), optional.clone()]);
        assert!(pass, "{text}");
        assert!(
            text.contains("  - CONFIG_VXLAN: missing (optional): not set\n"),
            "{text}"
        );
        assert!(
            text.ends_with("STATUS: pass (0 required missing, 1 optional missing)\n"),
            "{text}"
        );
        let (text, pass) = render(&[fine, required, optional]);
        assert!(!pass);
        assert!(
            text.contains("binaries:\n  - containerd: ok: 1.7.0\n  - runc: MISSING: not found\n"),
            "{text}"
        );
        assert!(text.contains("STATUS: fail (1 required missing"), "{text}");
    }
}
