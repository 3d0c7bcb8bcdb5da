//! The status a kubelet with a fake runtime reports for a pod: a pure function of the pod (its
//! spec, annotations and current status), what the hollow node decided when it started the pod
//! ([`PodRun`]), and the clock. It mirrors `pkg/kubelet/status/generate.go` and the kubelet's
//! `generateAPIPodStatus`: phase, the kubelet-owned conditions, container statuses, IPs.
//!
//! **Invariant:** idempotent — the status computed for a pod that already carries the status
//! computed earlier is equal to it until the next change time returned, so a level-triggered
//! caller writes only when something changed. All times are whole seconds.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::jiff::Timestamp;

use crate::annotations::{Behaviour, Exit};
use crate::clock::{plus_seconds, seconds_between, time};

/// The pod conditions the kubelet owns, in the order it writes them.
const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// What the hollow node decided when it started a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodRun {
    /// When the pod (and its containers) started: `status.startTime`.
    pub(crate) started: Timestamp,
    /// `status.podIP`.
    pub(crate) pod_ip: Ipv4Addr,
    /// `status.hostIP`: the node's InternalIP.
    pub(crate) host_ip: Ipv4Addr,
    /// When the node stopped the containers because the pod is being deleted; they exit 0.
    pub(crate) stopped: Option<Timestamp>,
}

/// The pod's `restartPolicy` (default `Always`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub(crate) fn of(pod: &Pod) -> RestartPolicy {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `code` is started again.
    fn restarts_after(self, code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// How a container run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) started: Timestamp,
    pub(crate) finished: Timestamp,
    pub(crate) code: i32,
}

/// Where a pod's (identical) containers are at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    /// How often the containers were restarted.
    pub(crate) restarts: i32,
    /// When the current (or, once finished, the last) run started.
    pub(crate) run_started: Timestamp,
    /// Set when the containers have exited for good.
    pub(crate) finished: Option<Ended>,
    /// The run before the current one, after a restart.
    pub(crate) previous: Option<Ended>,
    /// Whether the running containers are ready.
    pub(crate) ready: bool,
    /// The next moment any of this changes.
    pub(crate) next_change: Option<Timestamp>,
}

/// Where the containers of a pod started at `started` are at `now`, given their behaviour, the
/// restart policy, and when (if) the node stopped them.
pub(crate) fn lifecycle(
    behaviour: Behaviour,
    policy: RestartPolicy,
    started: Timestamp,
    stopped: Option<Timestamp>,
    now: Timestamp,
) -> Lifecycle {
    let Some(stopped) = stopped.filter(|stopped| *stopped <= now) else {
        return running_lifecycle(behaviour, policy, started, now);
    };
    let mut life = running_lifecycle(behaviour, policy, started, stopped);
    if life.finished.is_none() {
        life.finished = Some(Ended {
            started: life.run_started,
            finished: stopped,
            code: 0,
        });
    }
    life.ready = false;
    life.next_change = None;
    life
}

fn running_lifecycle(
    behaviour: Behaviour,
    policy: RestartPolicy,
    started: Timestamp,
    now: Timestamp,
) -> Lifecycle {
    let ready_at = |run_started: Timestamp| {
        behaviour
            .ready_after
            .map(|seconds| plus_seconds(run_started, seconds))
    };
    let Some(Exit { after, code }) = behaviour.exit else {
        let ready_at = ready_at(started);
        return Lifecycle {
            restarts: 0,
            run_started: started,
            finished: None,
            previous: None,
            ready: ready_at.is_some_and(|at| at <= now),
            next_change: ready_at.filter(|at| *at > now),
        };
    };
    let (restarts, run_started, exits_at, previous) = if policy.restarts_after(code) {
        // Restarted at once, each run lasting `after` seconds (at least one).
        let period = after.max(1);
        let runs_done = seconds_between(started, now) / period;
        let run_started = plus_seconds(started, runs_done * period);
        let previous = (runs_done > 0).then(|| Ended {
            started: plus_seconds(started, (runs_done - 1) * period),
            finished: run_started,
            code,
        });
        let restarts = i32::try_from(runs_done).unwrap_or(i32::MAX);
        (
            restarts,
            run_started,
            plus_seconds(run_started, period),
            previous,
        )
    } else {
        (0, started, plus_seconds(started, after), None)
    };
    if exits_at <= now {
        return Lifecycle {
            restarts,
            run_started,
            finished: Some(Ended {
                started: run_started,
                finished: exits_at,
                code,
            }),
            previous,
            ready: false,
            next_change: None,
        };
    }
    let ready_at = ready_at(run_started).filter(|at| *at < exits_at);
    let next_change = match ready_at {
        Some(at) if at > now => at,
        _ => exits_at,
    };
    Lifecycle {
        restarts,
        run_started,
        finished: None,
        previous,
        ready: ready_at.is_some_and(|at| at <= now),
        next_change: Some(next_change),
    }
}

/// The pod's status at `now` and the next moment it changes by itself.
pub(crate) fn pod_status(
    pod: &Pod,
    run: &PodRun,
    behaviour: Behaviour,
    now: Timestamp,
) -> (PodStatus, Option<Timestamp>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let generation = pod.metadata.generation;
    let life = lifecycle(
        behaviour,
        RestartPolicy::of(pod),
        run.started,
        run.stopped,
        now,
    );
    let phase = match life.finished {
        None => "Running",
        Some(Ended { code: 0, .. }) => "Succeeded",
        Some(_) => "Failed",
    };

    let container_statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|container| container_status(container, uid, &life))
        .collect();
    let init_container_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|container| init_container_status(container, uid, run.started, &life))
        .collect();

    let old = pod.status.clone().unwrap_or_default();
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let condition = |type_: &str, ready: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ready { "True" } else { "False" };
        let transition = old_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| time(now));
        PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
            message,
            last_transition_time: Some(transition),
            last_probe_time: None,
            observed_generation: generation,
        }
    };

    // ContainersReady, and Ready on top of it (upstream's GenerateContainersReadyCondition and
    // GeneratePodReadyCondition).
    let containers_ready = match phase {
        "Succeeded" => (false, Some("PodCompleted"), None),
        "Failed" => (false, Some("PodFailed"), None),
        _ => {
            let unready: Vec<&str> = container_statuses
                .iter()
                .filter(|status| !status.ready)
                .map(|status| status.name.as_str())
                .collect();
            if unready.is_empty() {
                (true, None, None)
            } else {
                let message = format!("containers with unready status: [{}]", unready.join(" "));
                (false, Some("ContainersNotReady"), Some(message))
            }
        }
    };
    let pod_ready = if containers_ready.0 {
        let gates: Vec<String> = spec
            .readiness_gates
            .iter()
            .flatten()
            .filter_map(|gate| {
                let found = old_conditions
                    .iter()
                    .find(|c| c.type_ == gate.condition_type);
                match found {
                    None => Some(format!(
                        "corresponding condition of pod readiness gate {:?} does not exist.",
                        gate.condition_type
                    )),
                    Some(c) if c.status != "True" => Some(format!(
                        "the status of pod readiness gate {:?} is not \"True\", but {}",
                        gate.condition_type, c.status
                    )),
                    Some(_) => None,
                }
            })
            .collect();
        if gates.is_empty() {
            (true, None, None)
        } else {
            (
                false,
                Some("ReadinessGatesNotReady"),
                Some(gates.join(", ")),
            )
        }
    } else {
        containers_ready.clone()
    };
    let has_init_containers = !init_container_statuses.is_empty();
    let initialized_reason =
        (phase == "Succeeded" && has_init_containers).then_some("PodCompleted");

    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            life.finished.is_none(),
            None,
            None,
        ),
        condition("Initialized", true, initialized_reason, None),
        condition("Ready", pod_ready.0, pod_ready.1, pod_ready.2),
        condition(
            "ContainersReady",
            containers_ready.0,
            containers_ready.1,
            containers_ready.2,
        ),
        condition("PodScheduled", true, None, None),
    ];
    // Conditions other writers own (readiness gates, DisruptionTarget, …) stay as they are.
    let others: Vec<PodCondition> = old_conditions
        .iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    conditions.extend(others);

    let status = PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(run.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: run.host_ip.to_string(),
        }]),
        pod_ip: Some(run.pod_ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: run.pod_ip.to_string(),
        }]),
        start_time: Some(time(run.started)),
        container_statuses: Some(container_statuses),
        init_container_statuses: has_init_containers.then_some(init_container_statuses),
        observed_generation: generation,
        ..old
    };
    (status, life.next_change)
}

/// `hollow://<pod uid>-<container>-<restart count>`: a new ID for every run, as a runtime gives.
fn container_id(uid: &str, container: &str, restarts: i32) -> String {
    format!("hollow://{uid}-{container}-{restarts}")
}

fn terminated(ended: Ended, container_id: String) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(container_id),
            exit_code: ended.code,
            reason: Some(
                if ended.code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .to_owned(),
            ),
            started_at: Some(time(ended.started)),
            finished_at: Some(time(ended.finished)),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

fn running(since: Timestamp) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(time(since)),
        }),
        ..ContainerState::default()
    }
}

/// The parts of a container status that come from the spec.
fn base_status(container: &Container) -> ContainerStatus {
    let image = container.image.clone().unwrap_or_default();
    ContainerStatus {
        name: container.name.clone(),
        image_id: format!("hollow://{image}"),
        image,
        ..ContainerStatus::default()
    }
}

fn container_status(container: &Container, uid: &str, life: &Lifecycle) -> ContainerStatus {
    let id = container_id(uid, &container.name, life.restarts);
    let state = match life.finished {
        Some(ended) => terminated(ended, id.clone()),
        None => running(life.run_started),
    };
    ContainerStatus {
        container_id: Some(id),
        ready: life.finished.is_none() && life.ready,
        started: Some(life.finished.is_none()),
        restart_count: life.restarts,
        state: Some(state),
        last_state: life.previous.map(|previous| {
            terminated(
                previous,
                container_id(uid, &container.name, life.restarts - 1),
            )
        }),
        ..base_status(container)
    }
}

/// Init containers have completed (exit 0) at the pod's start; sidecars (init containers with
/// `restartPolicy: Always`) run and are ready until the pod's containers finish.
fn init_container_status(
    container: &Container,
    uid: &str,
    started: Timestamp,
    life: &Lifecycle,
) -> ContainerStatus {
    let id = container_id(uid, &container.name, 0);
    let sidecar = container.restart_policy.as_deref() == Some("Always");
    let (state, ready, is_started) = match life.finished {
        None if sidecar => (running(started), true, true),
        Some(ended) if sidecar => {
            let stop = Ended {
                started,
                finished: ended.finished,
                code: 0,
            };
            (terminated(stop, id.clone()), false, false)
        }
        _ => {
            let done = Ended {
                started,
                finished: started,
                code: 0,
            };
            (terminated(done, id.clone()), true, false)
        }
    };
    ContainerStatus {
        container_id: Some(id),
        ready,
        started: Some(is_started),
        restart_count: 0,
        state: Some(state),
        ..base_status(container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const START: &str = "2026-01-01T00:00:00Z";

    fn at(seconds: u64) -> Timestamp {
        plus_seconds(START.parse().unwrap(), seconds)
    }

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1},
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }))
        .unwrap()
    }

    fn one_container() -> Value {
        json!({"nodeName": "n1", "containers": [{"name": "app", "image": "busybox:1.36"}]})
    }

    fn run() -> PodRun {
        PodRun {
            started: at(0),
            pod_ip: Ipv4Addr::new(10, 42, 1, 2),
            host_ip: Ipv4Addr::new(100, 64, 0, 1),
            stopped: None,
        }
    }

    fn behaviour(ready_after: Option<u64>, exit: Option<(u64, i32)>) -> Behaviour {
        Behaviour {
            ready_after,
            exit: exit.map(|(after, code)| Exit { after, code }),
            stop_after: None,
        }
    }

    /// The status as JSON, and the pod carrying it (for the next step).
    fn step(pod: &Pod, run: &PodRun, b: Behaviour, now: u64) -> (Value, Pod, Option<Timestamp>) {
        let (status, next) = pod_status(pod, run, b, at(now));
        let mut next_pod = pod.clone();
        next_pod.status = Some(status.clone());
        (serde_json::to_value(status).unwrap(), next_pod, next)
    }

    fn conditions(status: &Value) -> Vec<(String, String, String)> {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                    c["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    fn all_true() -> Vec<(String, String, String)> {
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
        .iter()
        .map(|t| (t.to_string(), "True".to_string(), String::new()))
        .collect()
    }

    #[test]
    fn a_plain_pod_runs_and_is_ready_at_once() {
        let (status, next_pod, next) = step(&pod(one_container()), &run(), Behaviour::default(), 0);
        assert_eq!(next, None);
        assert_eq!(
            status,
            json!({
                "phase": "Running",
                "qosClass": "BestEffort",
                "hostIP": "100.64.0.1",
                "hostIPs": [{"ip": "100.64.0.1"}],
                "podIP": "10.42.1.2",
                "podIPs": [{"ip": "10.42.1.2"}],
                "startTime": START,
                "observedGeneration": 1,
                "conditions": [
                    {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": START, "observedGeneration": 1},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": START, "observedGeneration": 1},
                    {"type": "Ready", "status": "True", "lastTransitionTime": START, "observedGeneration": 1},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": START, "observedGeneration": 1},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": START, "observedGeneration": 1},
                ],
                "containerStatuses": [{
                    "name": "app",
                    "image": "busybox:1.36",
                    "imageID": "hollow://busybox:1.36",
                    "containerID": "hollow://u1-app-0",
                    "ready": true,
                    "started": true,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": START}},
                }],
            })
        );
        // Idempotent: later, with its own status, the pod's status is the same.
        let (again, _, _) = step(&next_pod, &run(), Behaviour::default(), 100);
        assert_eq!(again, status);
    }

    #[test]
    fn ready_after_holds_readiness_back() {
        let b = behaviour(Some(5), None);
        let (status, pod2, next) = step(&pod(one_container()), &run(), b, 2);
        assert_eq!(next, Some(at(5)));
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["containerStatuses"][0]["ready"], false);
        assert_eq!(status["containerStatuses"][0]["started"], true);
        let ready = &status["conditions"][2];
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["message"], "containers with unready status: [app]");
        assert_eq!(status["conditions"][3]["reason"], "ContainersNotReady");
        let (status, pod3, next) = step(&pod2, &run(), b, 5);
        assert_eq!(next, None);
        assert_eq!(conditions(&status), all_true());
        assert_eq!(
            status["conditions"][2]["lastTransitionTime"],
            "2026-01-01T00:00:05Z"
        );
        // Conditions that did not change keep their transition time.
        assert_eq!(
            status["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:02Z"
        );
        let (later, _, _) = step(&pod3, &run(), b, 50);
        assert_eq!(later, status);
    }

    #[test]
    fn never_ready() {
        let (status, _, next) = step(&pod(one_container()), &run(), behaviour(None, None), 1000);
        assert_eq!(next, None);
        assert_eq!(status["conditions"][2]["status"], "False");
        assert_eq!(status["phase"], "Running");
    }

    #[test]
    fn exit_with_restart_policy_never_ends_the_pod() {
        let mut spec = one_container();
        spec["restartPolicy"] = json!("Never");
        let p = pod(spec);
        let (status, _, next) = step(&p, &run(), behaviour(Some(0), Some((3, 0))), 1);
        assert_eq!(status["phase"], "Running");
        assert_eq!(next, Some(at(3)));

        let (status, _, next) = step(&p, &run(), behaviour(Some(0), Some((3, 0))), 3);
        assert_eq!(next, None);
        assert_eq!(status["phase"], "Succeeded");
        assert_eq!(
            status["containerStatuses"][0]["state"],
            json!({"terminated": {
                "containerID": "hollow://u1-app-0",
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": START,
                "finishedAt": "2026-01-01T00:00:03Z",
            }})
        );
        assert_eq!(status["containerStatuses"][0]["ready"], false);
        assert_eq!(status["containerStatuses"][0]["started"], false);
        assert_eq!(
            conditions(&status)[..4],
            [
                (
                    "PodReadyToStartContainers".into(),
                    "False".into(),
                    "".into()
                ),
                ("Initialized".into(), "True".into(), "".into()),
                ("Ready".into(), "False".into(), "PodCompleted".into()),
                (
                    "ContainersReady".into(),
                    "False".into(),
                    "PodCompleted".into()
                ),
            ]
        );

        let (status, _, _) = step(&p, &run(), behaviour(Some(0), Some((3, 2))), 10);
        assert_eq!(status["phase"], "Failed");
        assert_eq!(
            status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            2
        );
        assert_eq!(
            status["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Error"
        );
        assert_eq!(status["conditions"][2]["reason"], "PodFailed");
    }

    #[test]
    fn restart_policies_decide_what_an_exit_does() {
        let cases = [
            (RestartPolicy::Never, 0, false),
            (RestartPolicy::Never, 1, false),
            (RestartPolicy::OnFailure, 0, false),
            (RestartPolicy::OnFailure, 1, true),
            (RestartPolicy::Always, 0, true),
            (RestartPolicy::Always, 1, true),
        ];
        for (policy, code, restarts) in cases {
            let life = lifecycle(
                behaviour(Some(0), Some((3, code))),
                policy,
                at(0),
                None,
                at(4),
            );
            assert_eq!(life.finished.is_none(), restarts, "{policy:?} {code}");
            assert_eq!(life.restarts, i32::from(restarts), "{policy:?} {code}");
        }
    }

    #[test]
    fn a_crash_looping_container_restarts_and_remembers_its_last_run() {
        let mut spec = one_container();
        spec["restartPolicy"] = json!("OnFailure");
        let p = pod(spec);
        let b = behaviour(Some(1), Some((3, 1)));
        let (status, _, next) = step(&p, &run(), b, 7);
        assert_eq!(next, Some(at(9)));
        assert_eq!(status["phase"], "Running");
        let container = &status["containerStatuses"][0];
        assert_eq!(container["restartCount"], 2);
        assert_eq!(container["containerID"], "hollow://u1-app-2");
        assert_eq!(
            container["ready"], true,
            "ready one second after the restart"
        );
        assert_eq!(
            container["state"],
            json!({"running": {"startedAt": "2026-01-01T00:00:06Z"}})
        );
        assert_eq!(
            container["lastState"],
            json!({"terminated": {
                "containerID": "hollow://u1-app-1",
                "exitCode": 1,
                "reason": "Error",
                "startedAt": "2026-01-01T00:00:03Z",
                "finishedAt": "2026-01-01T00:00:06Z",
            }})
        );
        // Just after a restart it is not ready yet.
        let life = lifecycle(b, RestartPolicy::OnFailure, at(0), None, at(6));
        assert!(!life.ready);
        assert_eq!(life.next_change, Some(at(7)));
        // A zero-second run still lasts a second.
        let life = lifecycle(
            behaviour(Some(0), Some((0, 0))),
            RestartPolicy::Always,
            at(0),
            None,
            at(5),
        );
        assert_eq!(life.restarts, 5);
    }

    #[test]
    fn init_containers_have_completed_and_sidecars_run() {
        let mut spec = one_container();
        spec["initContainers"] = json!([
            {"name": "setup", "image": "busybox"},
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
        ]);
        let (status, _, _) = step(&pod(spec.clone()), &run(), Behaviour::default(), 5);
        let init = &status["initContainerStatuses"];
        assert_eq!(
            init[0]["state"],
            json!({"terminated": {
                "containerID": "hollow://u1-setup-0",
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": START,
                "finishedAt": START,
            }})
        );
        assert_eq!(init[0]["ready"], true);
        assert_eq!(init[0]["started"], false);
        assert_eq!(init[1]["state"], json!({"running": {"startedAt": START}}));
        assert_eq!(init[1]["ready"], true);
        assert_eq!(conditions(&status), all_true());

        spec["restartPolicy"] = json!("Never");
        let (status, _, _) = step(&pod(spec), &run(), behaviour(Some(0), Some((2, 0))), 5);
        assert_eq!(status["phase"], "Succeeded");
        assert_eq!(status["conditions"][1]["reason"], "PodCompleted");
        assert_eq!(
            status["initContainerStatuses"][1]["state"]["terminated"]["finishedAt"],
            "2026-01-01T00:00:02Z"
        );
    }

    #[test]
    fn stopping_a_pod_ends_its_containers_with_exit_zero() {
        let mut stopped = run();
        stopped.stopped = Some(at(4));
        let b = behaviour(Some(0), Some((3, 1))); // crash-looping under Always
        let (status, _, next) = step(&pod(one_container()), &stopped, b, 9);
        assert_eq!(next, None);
        assert_eq!(status["phase"], "Succeeded");
        let container = &status["containerStatuses"][0];
        assert_eq!(container["restartCount"], 1);
        assert_eq!(
            container["state"]["terminated"],
            json!({
                "containerID": "hollow://u1-app-1",
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": "2026-01-01T00:00:03Z",
                "finishedAt": "2026-01-01T00:00:04Z",
            })
        );
        // A pod that had already failed keeps its own exit.
        let mut spec = one_container();
        spec["restartPolicy"] = json!("Never");
        let (status, _, _) = step(&pod(spec), &stopped, behaviour(Some(0), Some((2, 7))), 9);
        assert_eq!(status["phase"], "Failed");
    }

    #[test]
    fn other_conditions_and_readiness_gates() {
        let mut spec = one_container();
        spec["readinessGates"] = json!([{"conditionType": "example.com/lb"}]);
        let mut p = pod(spec);
        let (status, _, _) = step(&p, &run(), Behaviour::default(), 0);
        assert_eq!(status["conditions"][2]["reason"], "ReadinessGatesNotReady");
        assert_eq!(
            status["conditions"][2]["message"],
            "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
        );
        assert_eq!(status["conditions"][3]["status"], "True");
        let mut with_gate = serde_json::to_value(&p.status).unwrap();
        with_gate["conditions"] = json!([
            {"type": "example.com/lb", "status": "False"},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-12-31T00:00:00Z"},
        ]);
        p.status = serde_json::from_value(with_gate.clone()).unwrap();
        let (status, _, _) = step(&p, &run(), Behaviour::default(), 0);
        assert_eq!(
            status["conditions"][2]["message"],
            "the status of pod readiness gate \"example.com/lb\" is not \"True\", but False"
        );
        // The scheduler's PodScheduled keeps its time; the gate's condition stays, last.
        assert_eq!(
            status["conditions"][4]["lastTransitionTime"],
            "2025-12-31T00:00:00Z"
        );
        assert_eq!(
            status["conditions"][5],
            json!({"type": "example.com/lb", "status": "False"})
        );
        with_gate["conditions"][0]["status"] = json!("True");
        p.status = serde_json::from_value(with_gate).unwrap();
        let (status, _, _) = step(&p, &run(), Behaviour::default(), 0);
        assert_eq!(status["conditions"][2]["status"], "True");
    }
}
