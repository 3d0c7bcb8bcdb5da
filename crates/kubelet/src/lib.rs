//! `k3rs-kubelet`: the node agent. It registers the `Node`, keeps its Lease and status fresh,
//! and runs the pods bound to it through a container runtime with the CRI's shape
//! ([`runtime::Runtime`]): containerd's CRI plugin in `k3rs server`/`k3rs agent`, an in-memory
//! fake in the hollow nodes of tests and benchmarks — the same core either way, as kubemark's
//! hollow node is the real kubelet over a fake runtime.
//!
//! **Invariants**
//! - Level-triggered: a pod's sync reads the pod and what the runtime has for it, plans the
//!   difference ([`plan`]) and applies it; running it twice does nothing more.
//! - Pod status is a function of the pod, the runtime's state and the kubelet's own records
//!   (start failures, back-off, probe results), computed as upstream's kubelet does
//!   ([`pod_status`]), and written only when it changes.
//! - Containers found in the runtime are adopted, never restarted because the kubelet
//!   restarted: everything the kubelet needs to know about a container is in its CRI labels and
//!   annotations.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod cgroups;
pub mod clock;
pub mod container_config;
pub mod cri_runtime;
pub mod env;
mod error;
pub mod images;
mod kubelet;
pub mod logs;
pub mod node;
pub mod plan;
pub mod pod_cgroups;
pub mod pod_runtime;
pub mod pod_status;
pub mod pod_sync;
pub mod pod_workers;
pub mod probe;
pub mod prober;
pub mod readiness_gate;
pub mod retry;
pub mod runtime;
pub mod sandbox_config;
pub mod server;
pub mod stats;
pub mod volumes;

pub use error::KubeletError;
pub use kubelet::{readiness_message, Kubelet, KubeletConfig, KubeletParts, PodNetwork};
