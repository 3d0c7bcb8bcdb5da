//! `k3rs-net`: the node's pod network.
//!
//! Pods run through containerd's CRI plugin, which calls CNI with the configuration list this
//! crate writes ([`cni`]): Debian's standard plugins (`bridge` with `host-local` IPAM over the
//! node's podCIDR, `portmap` for hostPort, optionally `bandwidth`; the CRI plugin adds
//! `loopback` itself). Around the plugins the node needs forwarding enabled ([`sysctl`]), one
//! set of egress masquerade and forwarding rules for the cluster range as flannel installs for
//! k3s ([`masquerade`]), and a way back to a clean host ([`teardown`]: the bridge over netlink
//! in [`link`], our rules, the hostPort rules portmap left for pods killed without a CNI DEL in
//! [`hostport`], host-local's directory). [`NodeNetwork`] puts them together for the kubelet:
//! `ensure` and `teardown`. Routes to other nodes' podCIDRs (the multi-node overlay) belong here
//! too, behind the same two calls, so the kubelet never changes for them.
//!
//! Callers pass CIDRs, names and directories; the crate knows no Kubernetes object types.
//!
//! **Invariants**
//! - No pod address is handed out twice: that is host-local's job, with one `dataDir` per node
//!   ([`NetworkConfig::ipam_data_dir`]), so k3rs nodes side by side on one machine never share
//!   allocations; this crate never writes in it, and removes it only in teardown.
//! - Everything is level-triggered and idempotent: `ensure` twice is `ensure` once (no duplicate
//!   rules, no rewrite of an unchanged file), teardown of what is gone succeeds.
//! - Nothing outside the names it is given is touched: the bridge named in the configuration
//!   (and only if it is a bridge), the chains `K3RS-POSTROUTING` and `K3RS-FORWARD` and the jumps
//!   to them, portmap's per-pod chains commented with our network's name, the configuration
//!   directory and IPAM directory given.
//! - Everything acts in the network namespace of the calling thread (netlink sockets, `/proc/sys/net`
//!   and the iptables children are bound to it), which is how the tests run it in a namespace of
//!   their own.
//!
//! No unsafe code: entering namespaces is the tests' business (nix's safe `setns`).

#![forbid(unsafe_code)]

pub mod cni;
pub mod config;
pub mod hostport;
mod iptables;
pub mod link;
pub mod masquerade;
mod node;
pub mod sysctl;
pub mod teardown;

#[cfg(test)]
mod snapshot;

pub use config::{ConfigError, NetworkConfig, DEFAULT_BRIDGE, DEFAULT_MTU};
pub use iptables::IptablesError;
pub use node::{EnsureError, NodeNetwork};

/// An error and its causes on one line, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
