//! Hollow nodes: kubemark-style fake kubelets for tests and scale benchmarks. Test support
//! only — never part of the `k3rs` binary.
//!
//! A [`HollowNode`] registers a `Node` the way a kubelet does (labels, capacity, conditions,
//! addresses, nodeInfo), renews its Lease `kube-node-lease/<node>` every heartbeat interval,
//! refreshes the Node's conditions every status interval, and runs the pods bound to it
//! (`spec.nodeName`) with a fake runtime: each pod is reported `Running` and `Ready` with a pod
//! IP (from the Node's `spec.podCIDR`, else a made-up range of its own), container statuses and
//! the kubelet's conditions; graceful deletions are finished (after the node's termination
//! delay, at most the pod's grace period: final status, then a delete with grace period 0 and
//! the pod's uid as precondition). Annotations ([`annotations`]) make pods
//! slow to become ready, finish, fail or crash-loop. [`HollowCluster`] starts many at once.
//!
//! Nothing runs: no containers, no network, no files; addresses are made up (`100.64.0.0/10`)
//! and nothing is ever sent to them. Everything goes through the Kubernetes API with the given
//! `kube::Client`, so the nodes behave the same against k3rs and any other API server.
//!
//! **Invariants**
//! - A hollow node never gives up: a failed call (a server restart included) is retried with
//!   back-off, watches (the runtime's informers) are re-established and relisted; only [`HollowNode::start`] reports
//!   errors, and only for its first registration.
//! - Status writes are level-triggered and idempotent: a pod's status is computed from the
//!   pod, the moment the node started it, and the clock ([`pod_status`]), and written only
//!   when it differs; two pods on one node never hold the same IP at the same time.
//! - Every task of a node (heartbeats, pod loop, the node's informers) runs under the runtime's
//!   supervisor, so one that ends or panics is logged and restarted, and ends when the node is
//!   stopped or dropped.

#![forbid(unsafe_code)]

pub mod annotations;
mod clock;
mod cluster;
mod config;
mod fake_network;
mod ip_pool;
mod node;
mod pod_status;
mod pod_worker;
mod retry;

pub use cluster::HollowCluster;
pub use config::HollowNodeConfig;
pub use k3rs_kubelet::node::NODE_LEASE_NAMESPACE;
/// What a hollow node could not do: the kubelet's node agent's error.
pub use k3rs_kubelet::KubeletError as HollowError;
pub use node::HollowNode;
