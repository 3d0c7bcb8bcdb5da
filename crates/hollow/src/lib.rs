//! Hollow nodes: kubemark-style nodes for tests and scale benchmarks — the real kubelet
//! ([`k3rs_kubelet::Kubelet`]) over a fake runtime. Test support only — never part of the `k3rs`
//! binary.
//!
//! A [`HollowNode`] is the kubelet's own core: its node agent registers the `Node` (labels,
//! capacity, conditions, addresses, nodeInfo), renews the Lease `kube-node-lease/<node>` and
//! refreshes the Node's status; its pod workers run the pods bound to it (`spec.nodeName`),
//! plan and compute their status as on any node, and finish graceful deletions (final status,
//! then a delete with grace period 0 and the pod's uid as precondition). What is fake is below
//! the kubelet: the container runtime ([`fake_runtime`]: sandboxes with pod IPs from the node's
//! `spec.podCIDR`, else a made-up range of its own; containers that are records following the
//! clock), the volumes ([`fake_volumes`]: nothing written or fetched) and the pod network
//! (nothing set up). Annotations ([`annotations`]) make a pod's fake containers slow to become
//! ready, finish, fail or crash-loop. [`HollowCluster`] starts many at once.
//!
//! Nothing runs: no containers, no network, no files; addresses are made up (`100.64.0.0/10`)
//! and nothing is ever sent to them. Everything goes through the Kubernetes API with the given
//! `kube::Client`, so the nodes behave the same against k3rs and any other API server.
//!
//! **Invariants**
//! - A hollow node never gives up: a failed call (a server restart included) is retried with
//!   back-off, watches are re-established and relisted; only [`HollowNode::start`] reports
//!   errors, and only for its first registration.
//! - Status writes are the kubelet's: level-triggered, idempotent, written only when they
//!   differ; two pods on one node never hold the same IP at the same time.
//! - Every task of a node runs under the runtime's supervisor (the kubelet's), so one that ends
//!   or panics is logged and restarted, and ends when the node is stopped or dropped.

#![forbid(unsafe_code)]

pub mod annotations;
mod cluster;
mod config;
mod fake_network;
pub mod fake_runtime;
mod fake_volumes;
mod ip_pool;
mod node;

pub use cluster::HollowCluster;
pub use config::HollowNodeConfig;
pub use fake_runtime::FakeRuntime;
pub use k3rs_kubelet::node::NODE_LEASE_NAMESPACE;
/// What a hollow node could not do: the kubelet's error.
pub use k3rs_kubelet::KubeletError as HollowError;
pub use node::HollowNode;
