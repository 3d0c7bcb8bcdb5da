//! What the node's pod network is made of: the ranges, the bridge's name and MTU, the directories.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// The bridge the pods' veths are attached to, unless the node says otherwise.
pub const DEFAULT_BRIDGE: &str = "k3rs0";

/// The MTU of the bridge and the pods' interfaces, unless the node says otherwise: Ethernet's.
/// An overlay carried in VXLAN will ask for 50 bytes less (its outer headers).
pub const DEFAULT_MTU: u32 = 1500;

/// The longest interface name Linux accepts (`IFNAMSIZ` less the terminating NUL).
const MAX_INTERFACE_NAME: usize = 15;

/// Everything this crate needs to know about the node's pod network. The ranges are plain CIDRs:
/// the caller reads them from the Node object and the server's flags; this crate knows nothing
/// about Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The cluster's pod range (`--cluster-cidr`), of which every node's podCIDR is a part.
    pub cluster_cidr: Ipv4Net,
    /// This node's pod range (`Node.spec.podCIDR`): host-local hands out its addresses, the
    /// bridge takes its first.
    pub pod_cidr: Ipv4Net,
    /// The Linux bridge the pods are attached to.
    pub bridge: String,
    /// MTU of the bridge and the pods' interfaces.
    pub mtu: u32,
    /// The directory containerd's CRI plugin reads CNI configuration from (`conf_dir`); k3rs owns
    /// it, so stale k3rs configurations in it may be removed.
    pub cni_conf_dir: PathBuf,
    /// host-local's `dataDir`: where it records which address belongs to which container. One per
    /// node (k3rs passes `<data-dir>/agent/cni/networks`), so nodes side by side on one machine
    /// never share allocations.
    pub ipam_data_dir: PathBuf,
    /// Whether the chain ends with the `bandwidth` plugin (the pods' `kubernetes.io/ingress-` and
    /// `egress-bandwidth` annotations, passed by the CRI plugin as the `bandwidth` capability).
    pub bandwidth: bool,
}

/// Why a [`NetworkConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The podCIDR has no room for the gateway and one pod.
    #[error("pod CIDR {pod_cidr} is too small: a /30 or larger is needed (gateway and one pod)")]
    PodCidrTooSmall {
        /// The range given.
        pod_cidr: Ipv4Net,
    },
    /// The podCIDR is not inside the cluster CIDR.
    #[error("pod CIDR {pod_cidr} is not inside cluster CIDR {cluster_cidr}")]
    PodCidrOutsideCluster {
        /// The node's range.
        pod_cidr: Ipv4Net,
        /// The cluster's range.
        cluster_cidr: Ipv4Net,
    },
    /// Not a name Linux accepts for an interface.
    #[error("bridge name {name:?} is not an interface name (1 to 15 bytes, no '/', ':' or space)")]
    BridgeName {
        /// The name given.
        name: String,
    },
    /// An MTU no Ethernet-like link takes.
    #[error("MTU {mtu} is out of range (68 to 65535)")]
    Mtu {
        /// The MTU given.
        mtu: u32,
    },
}

impl NetworkConfig {
    /// A configuration with the default bridge, MTU and no bandwidth plugin.
    pub fn new(
        cluster_cidr: Ipv4Net,
        pod_cidr: Ipv4Net,
        cni_conf_dir: impl Into<PathBuf>,
        ipam_data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            cluster_cidr: cluster_cidr.trunc(),
            pod_cidr: pod_cidr.trunc(),
            bridge: DEFAULT_BRIDGE.to_owned(),
            mtu: DEFAULT_MTU,
            cni_conf_dir: cni_conf_dir.into(),
            ipam_data_dir: ipam_data_dir.into(),
            bandwidth: false,
        }
    }

    /// Checks what the kernel and the plugins would otherwise reject later, less clearly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_bridge_name(&self.bridge)?;
        if self.pod_cidr.prefix_len() > 30 {
            return Err(ConfigError::PodCidrTooSmall {
                pod_cidr: self.pod_cidr,
            });
        }
        if !self.cluster_cidr.contains(&self.pod_cidr) {
            return Err(ConfigError::PodCidrOutsideCluster {
                pod_cidr: self.pod_cidr,
                cluster_cidr: self.cluster_cidr,
            });
        }
        if !(68..=65535).contains(&self.mtu) {
            return Err(ConfigError::Mtu { mtu: self.mtu });
        }
        Ok(())
    }

    /// The bridge's own address, the pods' gateway: the podCIDR's first address, as upstream's
    /// bridge plugin and host-local choose it.
    pub fn gateway(&self) -> Ipv4Addr {
        gateway_of(self.pod_cidr)
    }
}

/// The first address after the network address of `range`.
pub(crate) fn gateway_of(range: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()).saturating_add(1))
}

/// Accepts what `dev_valid_name` in the kernel accepts, less the rarely wanted corners.
pub(crate) fn validate_bridge_name(name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_INTERFACE_NAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ConfigError::BridgeName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cluster: &str, pod: &str) -> NetworkConfig {
        NetworkConfig::new(
            cluster.parse().unwrap(),
            pod.parse().unwrap(),
            "/k3rs/cni",
            "/k3rs/ipam",
        )
    }

    #[test]
    fn defaults_and_gateway() {
        let c = config("10.42.0.0/16", "10.42.3.0/24");
        assert_eq!(c.bridge, "k3rs0");
        assert_eq!(c.mtu, 1500);
        assert!(!c.bandwidth);
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 42, 3, 1));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn host_bits_are_cleared() {
        let c = config("10.42.7.9/16", "10.42.3.77/24");
        assert_eq!(c.cluster_cidr.to_string(), "10.42.0.0/16");
        assert_eq!(c.pod_cidr.to_string(), "10.42.3.0/24");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 42, 3, 1));
    }

    #[test]
    fn rejects_what_the_plugins_would() {
        let c = config("10.42.0.0/16", "10.42.3.0/31");
        assert!(matches!(
            c.validate(),
            Err(ConfigError::PodCidrTooSmall { .. })
        ));
        assert_eq!(
            config("10.42.0.0/16", "10.42.3.0/30").validate(),
            Ok(()),
            "a /30 holds the gateway and one pod"
        );
        let c = config("10.42.0.0/16", "10.43.3.0/24");
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "pod CIDR 10.43.3.0/24 is not inside cluster CIDR 10.42.0.0/16"
        );
        let mut c = config("10.42.0.0/16", "10.42.3.0/24");
        c.mtu = 40;
        assert_eq!(c.validate(), Err(ConfigError::Mtu { mtu: 40 }));
    }

    #[test]
    fn bridge_names() {
        for good in ["k3rs0", "cni0", "a", "k3rs-test-12345"] {
            assert_eq!(validate_bridge_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "k3rs-test-123456",
            "a/b",
            "a:b",
            "a b",
            "a\nb",
        ] {
            assert!(validate_bridge_name(bad).is_err(), "{bad:?}");
        }
    }
}
