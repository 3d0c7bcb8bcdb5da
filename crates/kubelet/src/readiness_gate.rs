//! [`ReadinessGate`]: a source of container readiness beside the pod's probes. A real node has
//! none; a hollow node's fake runtime is one, so that its containers can be slow to become
//! ready (`hollow.k3rs.io/ready-after-seconds`) on pods that declare no probe at all.
//!
//! Why a gate rather than exec probes answered by the fake runtime: the pods of controller tests
//! and benchmarks declare no readiness probe, and giving them one would mean rewriting their
//! specs (their container hashes, what the API shows). The gate leaves the prober untouched —
//! a pod that does declare probes is probed as on any node (exec probes through the runtime's
//! `ExecSync`) — and is one narrow question the kubelet asks: "is this running container ready
//! yet, and if not, when?".

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::pod_runtime::RuntimePod;
use crate::pod_status::ProbeState;

/// When a running container is ready as far as a gate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateState {
    /// Ready (or not the gate's to decide).
    Ready,
    /// Ready from this moment on.
    At(Timestamp),
    /// Never ready.
    Never,
}

/// A source of container readiness beside the probes: a container is ready when its probes and
/// the gate both say so.
pub trait ReadinessGate: Send + Sync + std::fmt::Debug + 'static {
    /// Whether the container of `pod` with this runtime id is ready (the pod as the kubelet
    /// sees it now: a gate may read its annotations).
    fn container_readiness(&self, pod: &Pod, container_id: &str) -> GateState;
}

/// Takes the containers the gate holds back out of `probes.ready`; returns the earliest moment
/// one of them becomes ready (when the pod needs another sync).
pub fn hold_back(
    gate: &dyn ReadinessGate,
    pod: &Pod,
    runtime: &RuntimePod,
    probes: &mut ProbeState,
    now: Timestamp,
) -> Option<Timestamp> {
    let mut next: Option<Timestamp> = None;
    for run in &runtime.containers {
        if !probes.ready.contains(&run.id) {
            continue;
        }
        let held = match gate.container_readiness(pod, &run.id) {
            GateState::Ready => false,
            GateState::At(at) if at <= now => false,
            GateState::At(at) => {
                next = Some(next.map_or(at, |n| n.min(at)));
                true
            }
            GateState::Never => true,
        };
        if held {
            probes.ready.remove(&run.id);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_runtime::{ContainerInfo, ContainerState};
    use std::collections::HashMap;

    #[derive(Debug)]
    struct Table(HashMap<&'static str, GateState>);

    impl ReadinessGate for Table {
        fn container_readiness(&self, _pod: &Pod, container_id: &str) -> GateState {
            self.0
                .get(container_id)
                .copied()
                .unwrap_or(GateState::Ready)
        }
    }

    fn run(id: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.to_owned(),
            name: id.to_owned(),
            sandbox_id: "s".to_owned(),
            state: ContainerState::Running,
            created_at: Timestamp::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: String::new(),
            image_ref: String::new(),
            restart_count: 0,
            hash: String::new(),
            termination_grace_period: None,
        }
    }

    #[test]
    fn the_gate_holds_back_what_is_not_ready_yet() {
        let now = Timestamp::from_second(1000).unwrap();
        let later = Timestamp::from_second(1005).unwrap();
        let gate = Table(HashMap::from([
            ("past", GateState::At(Timestamp::from_second(999).unwrap())),
            ("later", GateState::At(later)),
            ("never", GateState::Never),
        ]));
        let runtime = RuntimePod {
            sandboxes: vec![],
            containers: ["free", "past", "later", "never", "unready"]
                .map(run)
                .to_vec(),
        };
        let mut probes = ProbeState::default();
        for id in ["free", "past", "later", "never"] {
            probes.ready.insert(id.to_owned());
        }
        let pod = Pod::default();
        assert_eq!(
            hold_back(&gate, &pod, &runtime, &mut probes, now),
            Some(later)
        );
        let mut ready: Vec<_> = probes.ready.into_iter().collect();
        ready.sort();
        assert_eq!(ready, ["free", "past"]);
    }
}
