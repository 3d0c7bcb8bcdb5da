//! The kernel settings a node's pod network needs: IPv4 forwarding, and bridged traffic through
//! iptables where `br_netfilter` is present.
//!
//! `/proc/sys/net` shows the network namespace of the thread that opens it, so these files are
//! opened on the calling thread (plain `std::fs`, never a blocking pool's thread).

use std::path::{Path, PathBuf};

/// Where the kernel's settings are.
pub const PROC_SYS: &str = "/proc/sys";

/// `net.ipv4.ip_forward`: routes pod traffic between the bridge and the node's other links.
pub const IP_FORWARD: &str = "net/ipv4/ip_forward";

/// The directory `br_netfilter` adds its settings to; absent without the module.
pub const BRIDGE_NETFILTER_DIR: &str = "net/bridge";

/// `net.bridge.bridge-nf-call-iptables`: traffic between two pods on the bridge passes
/// iptables, so Service DNAT and network policy see it (k3s and kube-proxy require it).
pub const BRIDGE_NF_CALL_IPTABLES: &str = "net/bridge/bridge-nf-call-iptables";

/// One setting: a path under `/proc/sys` and the value it must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The path relative to `/proc/sys`.
    pub key: &'static str,
    /// The value to hold.
    pub value: &'static str,
}

/// The settings a node needs, given whether `br_netfilter`'s directory exists.
pub fn wanted(bridge_netfilter: bool) -> Vec<Setting> {
    let mut settings = vec![Setting {
        key: IP_FORWARD,
        value: "1",
    }];
    if bridge_netfilter {
        settings.push(Setting {
            key: BRIDGE_NF_CALL_IPTABLES,
            value: "1",
        });
    }
    settings
}

/// Whether a setting reading `current` must be written to hold `value` (the kernel ends what it
/// reads out with a newline).
pub fn needs_write(current: &str, value: &str) -> bool {
    current.trim() != value
}

/// Why a setting could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// Reading the current value failed.
    #[error("sysctl: read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
    /// Writing the value failed (not root, or a read-only /proc/sys in a container).
    #[error("sysctl: write {value:?} to {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The value.
        value: &'static str,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
}

/// Sets what [`wanted`] lists in the calling thread's network namespace and returns the
/// settings it had to change (none when run again).
pub fn enable() -> Result<Vec<Setting>, SysctlError> {
    enable_under(Path::new(PROC_SYS))
}

/// [`enable`] with `/proc/sys` at `root`.
pub fn enable_under(root: &Path) -> Result<Vec<Setting>, SysctlError> {
    let mut changed = Vec::new();
    for setting in wanted(root.join(BRIDGE_NETFILTER_DIR).is_dir()) {
        let path = root.join(setting.key);
        let current = std::fs::read_to_string(&path).map_err(|source| SysctlError::Read {
            path: path.clone(),
            source,
        })?;
        if needs_write(&current, setting.value) {
            std::fs::write(&path, setting.value).map_err(|source| SysctlError::Write {
                path: path.clone(),
                value: setting.value,
                source,
            })?;
            tracing::info!(key = setting.key, value = setting.value, "set sysctl");
            changed.push(setting);
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_settings() {
        assert_eq!(
            wanted(false),
            vec![Setting {
                key: "net/ipv4/ip_forward",
                value: "1"
            }]
        );
        let with_bridge: Vec<_> = wanted(true).iter().map(|s| s.key).collect();
        assert_eq!(
            with_bridge,
            ["net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"]
        );
    }

    #[test]
    fn writes_only_what_differs() {
        assert!(needs_write("0\n", "1"));
        assert!(!needs_write("1\n", "1"));
        assert!(!needs_write("1", "1"));
    }

    /// A stand-in `/proc/sys` tree of plain files: the reading, comparing and writing are the
    /// same code the node runs.
    fn fake_proc_sys(bridge: Option<&str>) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("net/ipv4")).unwrap();
        std::fs::write(root.path().join(IP_FORWARD), "0\n").unwrap();
        if let Some(value) = bridge {
            std::fs::create_dir_all(root.path().join(BRIDGE_NETFILTER_DIR)).unwrap();
            std::fs::write(root.path().join(BRIDGE_NF_CALL_IPTABLES), value).unwrap();
        }
        root
    }

    #[test]
    fn enable_is_idempotent() {
        let root = fake_proc_sys(Some("0\n"));
        let changed = enable_under(root.path()).unwrap();
        assert_eq!(changed.len(), 2);
        assert_eq!(
            std::fs::read_to_string(root.path().join(IP_FORWARD)).unwrap(),
            "1"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join(BRIDGE_NF_CALL_IPTABLES)).unwrap(),
            "1"
        );
        assert!(enable_under(root.path()).unwrap().is_empty());
    }

    #[test]
    fn without_br_netfilter_only_forwarding() {
        let root = fake_proc_sys(None);
        let changed = enable_under(root.path()).unwrap();
        assert_eq!(changed, wanted(false));
        assert!(!root.path().join(BRIDGE_NETFILTER_DIR).exists());
    }

    #[test]
    fn errors_name_the_path() {
        let root = tempfile::tempdir().unwrap();
        let error = enable_under(root.path()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("sysctl: read {}", root.path().join(IP_FORWARD).display())
        );
    }
}
