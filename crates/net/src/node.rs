//! The node's pod network as one thing to bring up and take down: what the kubelet calls.

use crate::cni::{self, ConflistError, WriteConflistError, Written};
use crate::config::{ConfigError, NetworkConfig};
use crate::iptables::IptablesError;
use crate::masquerade::{self, MasqueradeRanges};
use crate::sysctl::{self, SysctlError};
use crate::teardown::{self, TeardownError, TeardownReport, TeardownTargets};

/// The node's pod network, from its [`NetworkConfig`]. The kubelet calls [`NodeNetwork::ensure`]
/// when it knows its podCIDR and again whenever it likes; what the network is made of (a bridge
/// today, routes or a VXLAN device to other nodes' podCIDRs later) stays inside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNetwork {
    config: NetworkConfig,
}

/// Why [`NodeNetwork::ensure`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// The kernel settings.
    #[error("pod network: kernel settings")]
    Sysctl(#[source] SysctlError),
    /// The masquerade and forwarding rules.
    #[error("pod network: masquerade rules")]
    Masquerade(#[source] IptablesError),
    /// Building the CNI configuration.
    #[error("pod network: cni configuration")]
    Conflist(#[source] ConflistError),
    /// Writing the CNI configuration.
    #[error("pod network: cni configuration")]
    WriteConflist(#[source] WriteConflistError),
}

impl NodeNetwork {
    /// Checks `config` and keeps it.
    pub fn new(config: NetworkConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Brings the network to its wanted state, in the calling thread's network namespace:
    /// forwarding on, masquerade rules in place, then the CNI configuration written, which is
    /// what makes containerd report the network ready, so pods start only on a finished node.
    /// Safe to run any number of times; nothing is rewritten that already holds.
    pub async fn ensure(&self) -> Result<Written, EnsureError> {
        sysctl::enable().map_err(EnsureError::Sysctl)?;
        masquerade::apply(&self.masquerade_ranges())
            .await
            .map_err(EnsureError::Masquerade)?;
        let list = cni::conflist(&self.config).map_err(EnsureError::Conflist)?;
        cni::write_conflist(&self.config.cni_conf_dir, &list).map_err(EnsureError::WriteConflist)
    }

    /// Removes what [`NodeNetwork::ensure`] and the bridge plugin made, except the kernel
    /// settings (another user of the host may rely on forwarding) and the CNI configuration
    /// (it lives in k3rs's data directory, which uninstall removes).
    pub async fn teardown(&self) -> Result<TeardownReport, TeardownError> {
        teardown::teardown(&self.teardown_targets()).await
    }

    /// The ranges of the masquerade rules.
    pub fn masquerade_ranges(&self) -> MasqueradeRanges {
        MasqueradeRanges {
            cluster_cidr: self.config.cluster_cidr,
            pod_cidr: self.config.pod_cidr,
        }
    }

    /// What [`NodeNetwork::teardown`] removes.
    pub fn teardown_targets(&self) -> TeardownTargets {
        TeardownTargets {
            bridge: self.config.bridge.clone(),
            ipam_data_dir: self.config.ipam_data_dir.clone(),
        }
    }
}
