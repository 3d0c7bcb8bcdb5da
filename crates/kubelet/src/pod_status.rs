//! The status the kubelet reports for a pod, computed without I/O from the pod, what the
//! runtime holds for it, and the kubelet's own records (why a container could not start, probe
//! results), as upstream's `generateAPIPodStatus`, `convertToAPIContainerStatuses`, `getPhase`
//! and `pkg/kubelet/status/generate.go` do.
//!
//! **Invariant:** the same inputs give the same status, and the status computed for a pod that
//! already carries it is equal to it, so the caller writes only what changed.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiContainerState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition,
    PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::plan::{is_sidecar, should_start, RestartPolicy};
use crate::pod_runtime::{ContainerInfo, ContainerState, RuntimePod};

/// The pod conditions the kubelet owns, in the order it writes them.
pub const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Why a container is waiting, recorded when its start failed (upstream's `reasonCache`):
/// `ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`, `CreateContainerConfigError`,
/// `CreateContainerError`, `RunContainerError`, … with the message shown beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// What the prober knows about running containers: which are ready and which have started
/// (a container without the probe is ready, or started, as soon as it runs).
#[derive(Clone, Debug, Default)]
pub struct ProbeState {
    pub ready: HashSet<String>,
    pub started: HashSet<String>,
}

/// Everything the status depends on besides the pod.
#[derive(Clone, Copy, Debug)]
pub struct StatusInputs<'a> {
    pub runtime: &'a RuntimePod,
    /// The runtime's name, the scheme of container IDs (`containerd://…`).
    pub runtime_name: &'a str,
    /// The node's IPs: `hostIP(s)`, and the pod IPs of host-network pods.
    pub host_ips: &'a [IpAddr],
    /// Start failures by container name.
    pub waiting: &'a HashMap<String, Waiting>,
    pub probes: &'a ProbeState,
    /// The pod is being stopped for good (deleted, or finished): its containers will not run
    /// again whatever the restart policy says.
    pub terminal: bool,
    pub now: Timestamp,
}

/// The pod's status now.
pub fn pod_status(pod: &Pod, inputs: &StatusInputs<'_>) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let has_init = !init_specs.is_empty();
    let container_statuses = container_statuses(
        pod,
        inputs,
        &spec.containers,
        old.container_statuses.as_deref().unwrap_or(&[]),
        has_init,
        false,
    );
    let init_statuses = container_statuses_init(pod, inputs, &init_specs, &old);
    let mut all: Vec<ContainerStatus> = container_statuses.clone();
    all.extend(init_statuses.iter().cloned());
    let mut phase = phase(pod, &init_specs, &spec.containers, &all, inputs.terminal);
    // A pod never leaves a terminal phase.
    let old_phase = old.phase.clone().unwrap_or_default();
    if matches!(old_phase.as_str(), "Succeeded" | "Failed") {
        phase = old_phase.clone();
    }

    let generation = pod.metadata.generation;
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let now = inputs.now;
    let condition = |type_: &str, ready: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ready { "True" } else { "False" };
        let transition = old_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
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

    // Conditions other writers own (readiness gates, DisruptionTarget, …) stay, first.
    let mut conditions: Vec<PodCondition> = old_conditions
        .iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let sandbox_ready = inputs.runtime.sandbox().is_some_and(|s| s.ready)
        && !inputs.terminal
        && !matches!(phase.as_str(), "Succeeded" | "Failed");
    conditions.push(condition(
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        None,
    ));
    let (initialized, reason, message) = initialized_condition(&init_specs, &init_statuses, &phase);
    conditions.push(condition("Initialized", initialized, reason, message));
    let containers_ready = containers_ready_condition(&spec.containers, &init_specs, &all, &phase);
    let ready = pod_ready_condition(&spec, &old_conditions, &containers_ready);
    conditions.push(condition("Ready", ready.0, ready.1, ready.2));
    conditions.push(condition(
        "ContainersReady",
        containers_ready.0,
        containers_ready.1,
        containers_ready.2,
    ));
    conditions.push(condition("PodScheduled", true, None, None));

    let host_network = spec.host_network.unwrap_or(false);
    let mut pod_ips: Vec<String> = inputs.runtime.ips().iter().map(IpAddr::to_string).collect();
    if host_network {
        pod_ips = inputs
            .host_ips
            .iter()
            .take(1)
            .map(IpAddr::to_string)
            .collect();
    }
    // The pod keeps its IPs once its sandbox is gone (upstream keeps the last known ones).
    if pod_ips.is_empty() {
        pod_ips = old
            .pod_ips
            .iter()
            .flatten()
            .map(|ip| ip.ip.clone())
            .collect();
    }
    let host_ip = inputs.host_ips.first().map(IpAddr::to_string);
    let start_time = old.start_time.clone().or(Some(Time(now)));
    PodStatus {
        phase: Some(phase.clone()),
        conditions: Some(conditions),
        host_ip: host_ip.clone(),
        host_ips: host_ip.map(|ip| vec![HostIP { ip }]),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time,
        container_statuses: Some(container_statuses),
        init_container_statuses: has_init.then_some(init_statuses),
        observed_generation: generation,
        reason: if old_phase == phase {
            old.reason.clone()
        } else {
            None
        },
        message: if old_phase == phase {
            old.message.clone()
        } else {
            None
        },
        ..old
    }
}

fn container_statuses_init(
    pod: &Pod,
    inputs: &StatusInputs<'_>,
    specs: &[Container],
    old: &PodStatus,
) -> Vec<ContainerStatus> {
    container_statuses(
        pod,
        inputs,
        specs,
        old.init_container_statuses.as_deref().unwrap_or(&[]),
        !specs.is_empty(),
        true,
    )
}

/// `<runtime>://<id>`.
fn container_id(inputs: &StatusInputs<'_>, id: &str) -> String {
    format!("{}://{id}", inputs.runtime_name)
}

fn time(at: Option<Timestamp>) -> Option<Time> {
    at.map(|at| Time(crate::clock::whole_seconds(at)))
}

/// One run as an API state.
fn state_of(inputs: &StatusInputs<'_>, run: &ContainerInfo) -> ApiContainerState {
    match run.state {
        ContainerState::Running => ApiContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(run.started_at),
            }),
            ..ApiContainerState::default()
        },
        ContainerState::Exited => ApiContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: run.exit_code,
                reason: (!run.reason.is_empty()).then(|| run.reason.clone()),
                message: (!run.message.is_empty()).then(|| run.message.clone()),
                started_at: time(run.started_at),
                finished_at: time(run.finished_at),
                container_id: Some(container_id(inputs, &run.id)),
                signal: None,
            }),
            ..ApiContainerState::default()
        },
        ContainerState::Created | ContainerState::Unknown => ApiContainerState {
            waiting: Some(ContainerStateWaiting::default()),
            ..ApiContainerState::default()
        },
    }
}

fn container_statuses(
    pod: &Pod,
    inputs: &StatusInputs<'_>,
    specs: &[Container],
    previous: &[ContainerStatus],
    has_init: bool,
    is_init: bool,
) -> Vec<ContainerStatus> {
    let default_reason = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let mut statuses = Vec::with_capacity(specs.len());
    for container in specs {
        let old = previous.iter().find(|s| s.name == container.name);
        let mut runs = inputs.runtime.runs(&container.name);
        let latest = runs.next();
        let mut status = match latest {
            Some(run) => {
                let running = run.state == ContainerState::Running;
                ContainerStatus {
                    name: container.name.clone(),
                    image: container.image.clone().unwrap_or_default(),
                    image_id: run.image_ref.clone(),
                    container_id: Some(container_id(inputs, &run.id)),
                    restart_count: run.restart_count,
                    state: Some(state_of(inputs, run)),
                    last_state: runs.next().map(|before| state_of(inputs, before)),
                    ready: running && inputs.probes.ready.contains(&run.id),
                    started: Some(running && inputs.probes.started.contains(&run.id)),
                    ..ContainerStatus::default()
                }
            }
            None => match old {
                // A run the runtime no longer has keeps what was reported (its last state),
                // as upstream keeps a terminated status.
                Some(old) if old.state.as_ref().is_some_and(|s| s.terminated.is_some()) => {
                    old.clone()
                }
                _ => ContainerStatus {
                    name: container.name.clone(),
                    image: container.image.clone().unwrap_or_default(),
                    image_id: String::new(),
                    restart_count: old.map_or(0, |o| o.restart_count),
                    last_state: old.and_then(|o| o.last_state.clone()),
                    state: Some(ApiContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(default_reason.to_owned()),
                            message: None,
                        }),
                        ..ApiContainerState::default()
                    }),
                    ready: false,
                    started: Some(false),
                    ..ContainerStatus::default()
                },
            },
        };
        // A container that will be started again shows why it is waiting, once a start
        // failed (a crash loop's back-off, an image pull, a bad configuration).
        let succeeded_init = is_init
            && !is_sidecar(container)
            && latest.is_some_and(|r| r.state == ContainerState::Exited && r.exit_code == 0);
        let restarts = !inputs.terminal && should_start(pod, latest);
        if !succeeded_init && restarts {
            if let Some(waiting) = inputs.waiting.get(&container.name) {
                if status
                    .state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some())
                {
                    status.last_state = status.state.take();
                }
                status.state = Some(ApiContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(waiting.reason.clone()),
                        message: (!waiting.message.is_empty()).then(|| waiting.message.clone()),
                    }),
                    ..ApiContainerState::default()
                });
            }
        }
        statuses.push(status);
    }
    statuses
}

/// Upstream's `getPhase`.
fn phase(
    pod: &Pod,
    init_specs: &[Container],
    specs: &[Container],
    statuses: &[ContainerStatus],
    terminal: bool,
) -> String {
    let policy = RestartPolicy::of(pod);
    let find = |name: &str| statuses.iter().find(|s| s.name == name);
    let state = |s: &ContainerStatus| s.state.clone().unwrap_or_default();
    let last_terminated = |s: &ContainerStatus| {
        s.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    let mut pending_init = 0;
    let mut failed_init = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for container in init_specs {
        let Some(status) = find(&container.name) else {
            if is_sidecar(container) {
                unknown += 1;
            }
            pending_init += 1;
            continue;
        };
        let st = state(status);
        if is_sidecar(container) {
            if st.running.is_some() {
                if status.started != Some(true) {
                    pending_init += 1;
                }
                running += 1;
            } else if st.waiting.is_some() && last_terminated(status).is_none() {
                pending_init += 1;
                waiting += 1;
            } else if st.terminated.is_none() && st.waiting.is_none() {
                pending_init += 1;
                unknown += 1;
            }
            continue;
        }
        if st.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = st.terminated.as_ref() {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if st.waiting.is_some() {
            match last_terminated(status) {
                Some(code) if code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    for container in specs {
        let Some(status) = find(&container.name) else {
            unknown += 1;
            continue;
        };
        let st = state(status);
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = st.terminated.as_ref() {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            if last_terminated(status).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && policy == RestartPolicy::Never {
        return "Failed".to_owned();
    }
    let any_regular_started = specs.iter().any(|c| {
        find(&c.name).is_some_and(|s| {
            let st = state(s);
            st.running.is_some() || st.terminated.is_some() || last_terminated(s).is_some()
        })
    });
    let phase = if (pending_init > 0 && !any_regular_started) || waiting > 0 {
        "Pending"
    } else if running > 0 && unknown == 0 {
        "Running"
    } else if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if policy == RestartPolicy::Always {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == RestartPolicy::Never {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    };
    phase.to_owned()
}

/// Upstream's `GeneratePodInitializedCondition`.
fn initialized_condition(
    init_specs: &[Container],
    statuses: &[ContainerStatus],
    phase: &str,
) -> (bool, Option<&'static str>, Option<String>) {
    if init_specs.is_empty() {
        return (true, None, None);
    }
    let mut incomplete = Vec::new();
    for container in init_specs {
        let done = statuses
            .iter()
            .find(|s| s.name == container.name)
            .is_some_and(|s| {
                let st = s.state.clone().unwrap_or_default();
                if is_sidecar(container) {
                    s.started == Some(true)
                        || st.terminated.is_some()
                        || s.last_state
                            .as_ref()
                            .is_some_and(|l| l.terminated.is_some())
                } else {
                    st.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
                }
            });
        if !done {
            incomplete.push(container.name.clone());
        }
    }
    if phase == "Succeeded" {
        return (true, Some("PodCompleted"), None);
    }
    if incomplete.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        )
    }
}

/// Upstream's `GenerateContainersReadyCondition`: every container (and sidecar) ready.
fn containers_ready_condition(
    specs: &[Container],
    init_specs: &[Container],
    statuses: &[ContainerStatus],
    phase: &str,
) -> (bool, Option<&'static str>, Option<String>) {
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = init_specs.iter().filter(|c| is_sidecar(c));
    for container in sidecars.chain(specs.iter()) {
        match statuses.iter().find(|s| s.name == container.name) {
            Some(status) if status.ready => {}
            Some(_) => unready.push(container.name.clone()),
            None => unknown.push(container.name.clone()),
        }
    }
    match phase {
        "Succeeded" => return (false, Some("PodCompleted"), None),
        "Failed" => return (false, Some("PodFailed"), None),
        _ => {}
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: [{}]",
            unknown.join(" ")
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: [{}]",
            unready.join(" ")
        ));
    }
    if messages.is_empty() {
        (true, None, None)
    } else {
        (false, Some("ContainersNotReady"), Some(messages.join(", ")))
    }
}

/// Upstream's `GeneratePodReadyCondition`: containers ready and every readiness gate true.
fn pod_ready_condition(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    old_conditions: &[PodCondition],
    containers_ready: &(bool, Option<&'static str>, Option<String>),
) -> (bool, Option<&'static str>, Option<String>) {
    if !containers_ready.0 {
        return containers_ready.clone();
    }
    let gates: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .filter_map(|gate| {
            match old_conditions
                .iter()
                .find(|c| c.type_ == gate.condition_type)
            {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::container_hash;
    use crate::pod_runtime::SandboxInfo;
    use serde_json::{json, Value};

    const START: &str = "2026-01-01T00:00:00Z";

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(START.parse::<Timestamp>().unwrap().as_second() + seconds).unwrap()
    }

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1},
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }))
        .unwrap()
    }

    fn one() -> Pod {
        pod(json!({"containers": [{"name": "app", "image": "busybox"}]}))
    }

    fn sandbox() -> SandboxInfo {
        SandboxInfo {
            id: "s1".into(),
            attempt: 0,
            ready: true,
            created_at: at(0),
            ips: vec!["10.42.0.5".parse().unwrap()],
        }
    }

    fn run(name: &str, id: &str, state: ContainerState, code: i32, restarts: i32) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: name.into(),
            sandbox_id: "s1".into(),
            state,
            created_at: at(restarts.into()),
            started_at: Some(at(1)),
            finished_at: (state == ContainerState::Exited).then(|| at(3)),
            exit_code: code,
            reason: match (state, code) {
                (ContainerState::Exited, 0) => "Completed".into(),
                (ContainerState::Exited, _) => "Error".into(),
                _ => String::new(),
            },
            message: String::new(),
            image: "busybox".into(),
            image_ref: "sha256:abc".into(),
            restart_count: restarts,
            hash: container_hash(&one().spec.unwrap().containers[0]),
            termination_grace_period: None,
        }
    }

    struct Fixture {
        runtime: RuntimePod,
        waiting: HashMap<String, Waiting>,
        probes: ProbeState,
        host: Vec<IpAddr>,
    }

    impl Fixture {
        fn new(containers: Vec<ContainerInfo>) -> Self {
            let probes = ProbeState {
                ready: containers.iter().map(|c| c.id.clone()).collect(),
                started: containers.iter().map(|c| c.id.clone()).collect(),
            };
            Fixture {
                runtime: RuntimePod {
                    sandboxes: vec![sandbox()],
                    containers,
                },
                waiting: HashMap::new(),
                probes,
                host: vec!["192.0.2.10".parse().unwrap()],
            }
        }

        fn status(&self, pod: &Pod, terminal: bool) -> Value {
            let inputs = StatusInputs {
                runtime: &self.runtime,
                runtime_name: "containerd",
                host_ips: &self.host,
                waiting: &self.waiting,
                probes: &self.probes,
                terminal,
                now: at(10),
            };
            serde_json::to_value(pod_status(pod, &inputs)).unwrap()
        }
    }

    #[test]
    fn a_running_container_makes_a_running_ready_pod() {
        let f = Fixture::new(vec![run("app", "c1", ContainerState::Running, 0, 0)]);
        let status = f.status(&one(), false);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.42.0.5");
        assert_eq!(status["hostIP"], "192.0.2.10");
        assert_eq!(
            status["containerStatuses"][0],
            json!({
                "name": "app",
                "image": "busybox",
                "imageID": "sha256:abc",
                "containerID": "containerd://c1",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}},
            })
        );
        let types: Vec<(&str, &str)> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            types,
            [
                ("PodReadyToStartContainers", "True"),
                ("Initialized", "True"),
                ("Ready", "True"),
                ("ContainersReady", "True"),
                ("PodScheduled", "True"),
            ]
        );
        // Idempotent: the pod carrying this status gets the same status again.
        let mut again = one();
        again.status = serde_json::from_value(status.clone()).unwrap();
        assert_eq!(f.status(&again, false), status);
    }

    #[test]
    fn a_new_pod_is_pending_with_containers_creating() {
        let mut f = Fixture::new(vec![]);
        f.runtime.sandboxes.clear();
        let status = f.status(&one(), false);
        assert_eq!(status["phase"], "Pending");
        assert_eq!(
            status["containerStatuses"][0]["state"],
            json!({"waiting": {"reason": "ContainerCreating"}})
        );
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["conditions"][2]["reason"], "ContainersNotReady");
        assert_eq!(
            status["conditions"][2]["message"],
            "containers with unready status: [app]"
        );
    }

    #[test]
    fn a_crash_loop_shows_its_back_off_and_last_run() {
        let mut f = Fixture::new(vec![
            run("app", "c2", ContainerState::Exited, 1, 1),
            run("app", "c1", ContainerState::Exited, 1, 0),
        ]);
        f.waiting.insert(
            "app".into(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 10s restarting failed container=app pod=web_default(u1)".into(),
            },
        );
        let status = f.status(&one(), false);
        assert_eq!(status["phase"], "Running");
        let c = &status["containerStatuses"][0];
        assert_eq!(c["restartCount"], 1);
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(
            c["lastState"]["terminated"]["containerID"],
            "containerd://c2"
        );
        assert_eq!(c["ready"], false);
    }

    #[test]
    fn phases_follow_the_restart_policy() {
        let exited = |code| Fixture::new(vec![run("app", "c1", ContainerState::Exited, code, 0)]);
        let with_policy = |policy: &str| {
            pod(
                json!({"restartPolicy": policy, "containers": [{"name": "app", "image": "busybox"}]}),
            )
        };
        assert_eq!(
            exited(0).status(&with_policy("Never"), false)["phase"],
            "Succeeded"
        );
        assert_eq!(
            exited(1).status(&with_policy("Never"), false)["phase"],
            "Failed"
        );
        assert_eq!(
            exited(1).status(&with_policy("OnFailure"), false)["phase"],
            "Running"
        );
        assert_eq!(
            exited(0).status(&with_policy("OnFailure"), false)["phase"],
            "Succeeded"
        );
        assert_eq!(
            exited(0).status(&with_policy("Always"), false)["phase"],
            "Running"
        );
        // Stopped for good (deleted): the exit decides.
        assert_eq!(
            exited(0).status(&with_policy("Always"), true)["phase"],
            "Succeeded"
        );
        assert_eq!(
            exited(137).status(&with_policy("Always"), true)["phase"],
            "Failed"
        );
        let failed = exited(1).status(&with_policy("Never"), false);
        assert_eq!(failed["conditions"][2]["reason"], "PodFailed");
        assert_eq!(failed["conditions"][0]["status"], "False");
    }

    #[test]
    fn init_containers_hold_the_pod_pending() {
        let p = pod(json!({
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "app", "image": "busybox"}],
        }));
        let f = Fixture::new(vec![run("setup", "i1", ContainerState::Running, 0, 0)]);
        let status = f.status(&p, false);
        assert_eq!(status["phase"], "Pending");
        assert_eq!(
            status["conditions"][1]["reason"],
            "ContainersNotInitialized"
        );
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let f = Fixture::new(vec![
            run("app", "c1", ContainerState::Running, 0, 0),
            run("setup", "i1", ContainerState::Exited, 0, 0),
        ]);
        let status = f.status(&p, false);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["conditions"][1]["status"], "True");
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }

    #[test]
    fn readiness_comes_from_the_prober() {
        let mut f = Fixture::new(vec![run("app", "c1", ContainerState::Running, 0, 0)]);
        f.probes.ready.clear();
        let status = f.status(&one(), false);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["containerStatuses"][0]["ready"], false);
        assert_eq!(status["conditions"][2]["status"], "False");
    }

    #[test]
    fn a_terminal_phase_is_kept() {
        let mut p = one();
        p.status.as_mut().unwrap().phase = Some("Failed".into());
        let f = Fixture::new(vec![run("app", "c1", ContainerState::Running, 0, 0)]);
        assert_eq!(f.status(&p, false)["phase"], "Failed");
    }
}
