//! The CNI network configuration list containerd's CRI plugin runs the standard plugins with.
//!
//! The chain is what k3s's flannel delegates to, without flannel: `bridge` with `host-local`
//! IPAM over the node's podCIDR, then `portmap` (hostPort) and optionally `bandwidth`. The CRI
//! plugin adds a loopback network of its own, so `loopback` is not in the list.

use std::ffi::OsStr;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::config::{gateway_of, ConfigError, NetworkConfig};

/// The network's name: containerd reports it, host-local keeps its allocations under
/// `<dataDir>/<name>`, portmap names its rules after it.
pub const NETWORK_NAME: &str = "k3rs";

/// The CNI specification version of the list; Debian's plugins (1.1.1) support up to 1.0.0.
pub const CNI_VERSION: &str = "1.0.0";

/// The file name k3rs writes. containerd uses the first configuration in the directory in name
/// order, so the number keeps it ahead of anything named later in the alphabet.
pub const CONFLIST_FILE: &str = "10-k3rs.conflist";

/// The temporary name the list is written under before it is renamed into place. libcni reads
/// only `.conf`, `.conflist` and `.json`, so containerd never sees it.
const TEMPORARY_FILE: &str = ".10-k3rs.conflist.tmp";

/// The extensions libcni (and so containerd) reads configurations from.
const CONFIG_EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];

/// A network configuration list (the `.conflist` format of the CNI specification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflist {
    /// The specification version every plugin is called with.
    pub cni_version: String,
    /// The network's name.
    pub name: String,
    /// The plugins, in the order ADD runs them (DEL runs them in reverse).
    pub plugins: Vec<Plugin>,
}

/// One plugin of the chain; its `type` names the binary in containerd's `bin_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Plugin {
    /// Creates the bridge and the pod's veth pair, and gives the pod an address from IPAM.
    Bridge(BridgePlugin),
    /// hostPort: DNAT from the node's ports to the pod, from the `portMappings` capability.
    Portmap(CapabilityPlugin),
    /// Traffic shaping from the `bandwidth` capability.
    Bandwidth(CapabilityPlugin),
}

/// The `bridge` plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgePlugin {
    /// The bridge's name.
    pub bridge: String,
    /// The bridge takes the gateway address.
    pub is_gateway: bool,
    /// The pod gets a default route through the gateway (the plugin adds it; IPAM must not).
    pub is_default_gateway: bool,
    /// A pod can reach itself through a Service (hairpin on the bridge port).
    pub hairpin_mode: bool,
    /// The bridge's address is set again if something changed it.
    pub force_address: bool,
    /// False: the plugin adds no masquerade rule per pod; [`crate::masquerade`] has one set for
    /// the whole cluster range, as flannel does for k3s.
    pub ip_masq: bool,
    /// MTU of the bridge and the pod's interface.
    pub mtu: u32,
    /// Where the pod's address comes from.
    pub ipam: Ipam,
}

/// The IPAM plugin of the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Ipam {
    /// Addresses from local ranges, recorded as files under `dataDir`.
    HostLocal(HostLocalIpam),
}

/// The `host-local` IPAM plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostLocalIpam {
    /// Range sets; one set with one range: the node's podCIDR.
    pub ranges: Vec<Vec<IpamRange>>,
    /// Where allocations are recorded.
    pub data_dir: String,
}

/// One `host-local` range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpamRange {
    /// The range.
    pub subnet: Ipv4Net,
    /// Its gateway, which host-local never hands out.
    pub gateway: Ipv4Addr,
}

/// A plugin configured only through runtime capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapabilityPlugin {
    /// The capabilities the runtime fills in (`portMappings`, `bandwidth`).
    pub capabilities: Capabilities,
}

/// The capabilities a plugin asks the runtime for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// The pod's hostPorts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub port_mappings: bool,
    /// The pod's bandwidth annotations.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bandwidth: bool,
}

/// Why the list cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ConflistError {
    /// The configuration itself is unusable.
    #[error("cni configuration")]
    Config(#[from] ConfigError),
    /// host-local's dataDir must be UTF-8 to go into JSON.
    #[error("host-local data dir {path} is not UTF-8")]
    DataDirNotUtf8 {
        /// The directory given.
        path: PathBuf,
    },
}

/// Builds the list for `config`.
pub fn conflist(config: &NetworkConfig) -> Result<Conflist, ConflistError> {
    config.validate()?;
    let data_dir = config
        .ipam_data_dir
        .to_str()
        .ok_or_else(|| ConflistError::DataDirNotUtf8 {
            path: config.ipam_data_dir.clone(),
        })?
        .to_owned();
    let bridge = BridgePlugin {
        bridge: config.bridge.clone(),
        is_gateway: true,
        // The default route comes from here, not from IPAM's `routes`: with both, bridge 1.1.1
        // adds 0.0.0.0/0 twice and ADD fails with "file exists".
        is_default_gateway: true,
        hairpin_mode: true,
        force_address: true,
        ip_masq: false,
        mtu: config.mtu,
        ipam: Ipam::HostLocal(HostLocalIpam {
            ranges: vec![vec![IpamRange {
                subnet: config.pod_cidr,
                gateway: gateway_of(config.pod_cidr),
            }]],
            data_dir,
        }),
    };
    let mut plugins = vec![
        Plugin::Bridge(bridge),
        Plugin::Portmap(CapabilityPlugin {
            capabilities: Capabilities {
                port_mappings: true,
                ..Capabilities::default()
            },
        }),
    ];
    if config.bandwidth {
        plugins.push(Plugin::Bandwidth(CapabilityPlugin {
            capabilities: Capabilities {
                bandwidth: true,
                ..Capabilities::default()
            },
        }));
    }
    Ok(Conflist {
        cni_version: CNI_VERSION.to_owned(),
        name: NETWORK_NAME.to_owned(),
        plugins,
    })
}

impl Conflist {
    /// The file's contents: pretty JSON and a final newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }
}

/// Why the list could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteConflistError {
    /// The list did not serialize.
    #[error("cni conflist for network {network}: serialize")]
    Serialize {
        /// The network's name.
        network: String,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
    /// A file system operation failed.
    #[error("cni conflist: {operation} {path}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS's reason.
        #[source]
        source: std::io::Error,
    },
}

/// What [`write_conflist`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The list's path.
    pub path: PathBuf,
    /// False when the file already held these bytes (and was left alone, so containerd's
    /// file watch does not reload for nothing).
    pub changed: bool,
    /// Configurations of this network under other names that were removed.
    pub removed: Vec<PathBuf>,
}

/// Writes `conflist` as [`CONFLIST_FILE`] in `dir` (created if missing), atomically: a temporary
/// file, synced, then renamed over the old one, so containerd never reads half a file. Then
/// removes configurations of the same network under other names (left by an earlier k3rs):
/// containerd uses the first one in name order, so a stale one could win. Files of other networks
/// are left alone (with a warning if one of them comes first). `dir` must be one k3rs owns.
pub fn write_conflist(dir: &Path, conflist: &Conflist) -> Result<Written, WriteConflistError> {
    let io = |operation: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| WriteConflistError::Io {
            operation,
            path,
            source,
        }
    };
    let text = conflist
        .to_json()
        .map_err(|source| WriteConflistError::Serialize {
            network: conflist.name.clone(),
            source,
        })?;
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let path = dir.join(CONFLIST_FILE);
    let changed = match std::fs::read(&path) {
        Ok(current) => current != text.as_bytes(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io("read", &path)(e)),
    };
    if changed {
        let temporary = dir.join(TEMPORARY_FILE);
        let mut file = std::fs::File::create(&temporary).map_err(io("create", &temporary))?;
        file.write_all(text.as_bytes())
            .map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("sync", &temporary))?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(io("rename into place", &path))?;
        tracing::info!(path = %path.display(), "wrote cni conflist");
    }

    let mut removed = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io("read directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(io("read directory", dir))?;
        let other = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name == CONFLIST_FILE || !is_config_file_name(&name) {
            continue;
        }
        let contents = match std::fs::read(&other) {
            Ok(contents) => contents,
            // Removed meanwhile, or a directory named like a file: not a configuration.
            Err(_) => continue,
        };
        if network_name(&contents).as_deref() == Some(conflist.name.as_str()) {
            match std::fs::remove_file(&other) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove stale", &other)(e)),
            }
            tracing::info!(path = %other.display(), "removed stale cni configuration");
            removed.push(other);
        } else if name.as_str() < CONFLIST_FILE {
            tracing::warn!(
                path = %other.display(),
                "another network's cni configuration comes before {CONFLIST_FILE}: containerd uses it"
            );
        }
    }
    Ok(Written {
        path,
        changed,
        removed,
    })
}

/// Whether libcni would read a file of this name as a configuration.
fn is_config_file_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|extension| CONFIG_EXTENSIONS.contains(&extension))
}

/// The `name` of a configuration file's JSON object, if it is one.
fn network_name(contents: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(contents).ok()?;
    value.get("name")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_config() -> NetworkConfig {
        NetworkConfig::new(
            "10.42.0.0/16".parse().unwrap(),
            "10.42.3.0/24".parse().unwrap(),
            "/var/lib/k3rs/agent/etc/cni/net.d",
            "/var/lib/k3rs/agent/cni/networks",
        )
    }

    #[test]
    fn conflist_snapshot() {
        let json = conflist(&node_config()).unwrap().to_json().unwrap();
        crate::snapshot::check("10-k3rs.conflist", &json);
    }

    #[test]
    fn conflist_with_bandwidth_snapshot() {
        let mut config = node_config();
        config.bridge = "k3rs-test0".to_owned();
        config.mtu = 1450;
        config.bandwidth = true;
        let json = conflist(&config).unwrap().to_json().unwrap();
        crate::snapshot::check("10-k3rs-bandwidth.conflist", &json);
    }

    #[test]
    fn invalid_config_is_refused() {
        let mut config = node_config();
        config.pod_cidr = "10.99.0.0/24".parse().unwrap();
        assert!(matches!(
            conflist(&config),
            Err(ConflistError::Config(
                ConfigError::PodCidrOutsideCluster { .. }
            ))
        ));
    }

    #[test]
    fn config_file_names() {
        for yes in ["10-k3rs.conflist", "87-podman.conflist", "a.conf", "b.json"] {
            assert!(is_config_file_name(yes), "{yes}");
        }
        for no in [
            ".10-k3rs.conflist.tmp",
            "README",
            "x.conflist.bak",
            "conflist",
        ] {
            assert!(!is_config_file_name(no), "{no}");
        }
    }

    #[test]
    fn network_names() {
        assert_eq!(
            network_name(br#"{"name":"k3rs","plugins":[]}"#).as_deref(),
            Some("k3rs")
        );
        assert_eq!(network_name(br#"{"name":"cbr0"}"#).as_deref(), Some("cbr0"));
        assert_eq!(network_name(b"{\"name\": 3}"), None);
        assert_eq!(network_name(b"half a {"), None);
    }

    #[test]
    fn write_replaces_and_removes_only_this_networks_stale_files() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("05-k3rs-old.conflist");
        let other = dir.path().join("20-other.conflist");
        let earlier_other = dir.path().join("00-first.conf");
        std::fs::write(
            &stale,
            br#"{"name":"k3rs","cniVersion":"0.4.0","plugins":[]}"#,
        )
        .unwrap();
        std::fs::write(&other, br#"{"name":"other","plugins":[]}"#).unwrap();
        std::fs::write(&earlier_other, br#"{"name":"first","type":"ptp"}"#).unwrap();
        std::fs::write(dir.path().join(TEMPORARY_FILE), b"{half").unwrap();

        let list = conflist(&node_config()).unwrap();
        let written = write_conflist(dir.path(), &list).unwrap();
        assert_eq!(written.path, dir.path().join(CONFLIST_FILE));
        assert!(written.changed);
        assert_eq!(written.removed, vec![stale.clone()]);
        assert_eq!(
            std::fs::read_to_string(&written.path).unwrap(),
            list.to_json().unwrap()
        );
        assert!(!stale.exists());
        assert!(other.exists() && earlier_other.exists());
        assert!(!dir.path().join(TEMPORARY_FILE).exists());

        let again = write_conflist(dir.path(), &list).unwrap();
        assert!(!again.changed, "same bytes are not written again");
        assert!(again.removed.is_empty());

        let mut changed = node_config();
        changed.mtu = 1450;
        let written = write_conflist(dir.path(), &conflist(&changed).unwrap()).unwrap();
        assert!(written.changed);
        assert!(std::fs::read_to_string(&written.path)
            .unwrap()
            .contains("\"mtu\": 1450"));
    }

    #[test]
    fn write_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("agent/etc/cni/net.d");
        let written = write_conflist(&nested, &conflist(&node_config()).unwrap()).unwrap();
        assert!(written.path.starts_with(&nested) && written.path.exists());
    }
}
