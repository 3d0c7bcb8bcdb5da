//! What one sync of a pod must do, decided without I/O from the pod and what the runtime holds
//! for it (upstream's `computePodActions`): create a sandbox, start the next init container or
//! the containers that should run, kill those that must go (a changed definition, a failed
//! liveness or startup probe), or stop the whole pod.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::pod_runtime::{ContainerInfo, ContainerState, RuntimePod};

/// The pod's `restartPolicy` (default `Always`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(pod: &Pod) -> RestartPolicy {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a failed pod is restarted (upstream's `shouldRestartOnFailure`).
    pub fn restarts_on_failure(self) -> bool {
        self != RestartPolicy::Never
    }
}

/// Which list of the pod spec a container is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    /// `spec.initContainers[i]` without `restartPolicy: Always`: runs to completion, in order.
    Init(usize),
    /// `spec.initContainers[i]` with `restartPolicy: Always`: a sidecar, started in init order
    /// and kept running.
    Sidecar(usize),
    /// `spec.containers[i]`.
    Regular(usize),
}

/// Why a running container is killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kill {
    pub container_id: String,
    pub name: String,
    /// Upstream's message (`Container app failed liveness probe, will be restarted`).
    pub message: String,
    /// Set when a probe caused it (`Unhealthy`-style events name it).
    pub probe: Option<&'static str>,
}

/// The actions of one sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop everything of the pod (its containers, then its sandbox): the sandbox changed, or
    /// nothing of the pod should run any more.
    pub kill_pod: bool,
    /// Create a sandbox with this attempt number (after the kill, if any).
    pub create_sandbox: Option<u32>,
    /// The ready sandbox to start containers in, when no new one is created.
    pub sandbox_id: Option<String>,
    /// Containers to start (or restart: the start is subject to back-off), in this order.
    pub to_start: Vec<ContainerKind>,
    /// Running containers to stop first.
    pub to_kill: Vec<Kill>,
}

/// The probe results the plan takes into account: ids of running containers whose liveness or
/// startup probe has failed.
#[derive(Clone, Debug, Default)]
pub struct ProbeFailures {
    pub liveness: HashSet<String>,
    pub startup: HashSet<String>,
    /// Running sidecars whose startup has not completed (no `started` yet).
    pub not_started: HashSet<String>,
}

pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// A stable hash of a container's spec: a run created from another definition is restarted
/// (upstream's `containerChanged`). FNV-1a over the spec's JSON.
pub fn container_hash(container: &Container) -> String {
    let text = serde_json::to_string(container).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Whether a container that is not running should be started now (upstream's
/// `ShouldContainerBeRestarted`): never after the pod's deletion; always when it never ran or
/// is in an unknown or created state; otherwise as the restart policy says about its exit.
pub fn should_start(pod: &Pod, latest: Option<&ContainerInfo>) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(latest) = latest else {
        return true;
    };
    match latest.state {
        ContainerState::Running => false,
        ContainerState::Unknown | ContainerState::Created => true,
        ContainerState::Exited => match RestartPolicy::of(pod) {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => latest.exit_code != 0,
            RestartPolicy::Always => true,
        },
    }
}

fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
}

fn containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().map_or(&[], |s| s.containers.as_slice())
}

/// The kind of every init container, in order.
fn init_kinds(pod: &Pod) -> impl Iterator<Item = (ContainerKind, &Container)> {
    init_containers(pod).iter().enumerate().map(|(i, c)| {
        let kind = if is_sidecar(c) {
            ContainerKind::Sidecar(i)
        } else {
            ContainerKind::Init(i)
        };
        (kind, c)
    })
}

/// Whether the pod's sandbox must be (re)created, with the attempt number and the ready
/// sandbox otherwise (upstream's `PodSandboxChanged`).
fn sandbox_changed(pod: &Pod, runtime: &RuntimePod) -> (bool, u32, Option<String>) {
    let Some(sandbox) = runtime.sandbox() else {
        return (true, 0, None);
    };
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let ready_count = runtime.sandboxes.iter().filter(|s| s.ready).count();
    let changed = !sandbox.ready || ready_count > 1 || (!host_network && sandbox.ips.is_empty());
    if changed {
        (true, sandbox.attempt + 1, Some(sandbox.id.clone()))
    } else {
        (false, sandbox.attempt, Some(sandbox.id.clone()))
    }
}

/// Whether every regular init container has succeeded (or a regular container has started,
/// which means initialization was done before).
pub fn initialized(pod: &Pod, runtime: &RuntimePod) -> bool {
    if containers(pod)
        .iter()
        .any(|c| runtime.latest(&c.name).is_some())
    {
        return true;
    }
    init_kinds(pod).all(|(kind, c)| match kind {
        ContainerKind::Init(_) => runtime
            .latest(&c.name)
            .is_some_and(|run| run.state == ContainerState::Exited && run.exit_code == 0),
        _ => true,
    })
}

/// Plans one sync of a pod that should be running (not being deleted).
pub fn plan(pod: &Pod, runtime: &RuntimePod, probes: &ProbeFailures) -> PodActions {
    let (create, attempt, sandbox_id) = sandbox_changed(pod, runtime);
    let policy = RestartPolicy::of(pod);
    if create {
        let mut actions = PodActions {
            kill_pod: true,
            ..PodActions::default()
        };
        // A pod that ran and must not restart is done: no new sandbox for it.
        if !policy.restarts_on_failure() && attempt != 0 && !runtime.containers.is_empty() {
            return actions;
        }
        let to_start: Vec<ContainerKind> = containers(pod)
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                !(policy == RestartPolicy::OnFailure
                    && runtime.latest(&c.name).is_some_and(|run| {
                        run.state == ContainerState::Exited && run.exit_code == 0
                    }))
            })
            .map(|(i, _)| ContainerKind::Regular(i))
            .collect();
        if to_start.is_empty() && initialized(pod, runtime) {
            return actions;
        }
        actions.create_sandbox = Some(attempt);
        actions.to_start = match init_kinds(pod).next() {
            Some((kind, _)) => vec![kind],
            None => to_start,
        };
        return actions;
    }
    // Initialization is judged by the runs in the current sandbox: a new sandbox runs the init
    // containers again.
    let current = runtime.in_sandbox(sandbox_id.as_deref().unwrap_or_default());
    let mut actions = PodActions {
        sandbox_id,
        ..PodActions::default()
    };

    // Initialization: init containers in order, sidecars started and kept running.
    if !initialized(pod, &current) || init_containers(pod).iter().any(is_sidecar) {
        let done = plan_init(pod, &current, probes, policy, &mut actions);
        if actions.kill_pod || !done {
            return actions;
        }
    }

    let mut keep = 0;
    for (index, container) in containers(pod).iter().enumerate() {
        let latest = runtime.latest(&container.name);
        let Some(running) = latest.filter(|run| run.state == ContainerState::Running) else {
            if should_start(pod, latest) {
                actions.to_start.push(ContainerKind::Regular(index));
                if let Some(unknown) = latest.filter(|run| run.state == ContainerState::Unknown) {
                    actions.to_kill.push(Kill {
                        container_id: unknown.id.clone(),
                        name: container.name.clone(),
                        message: "Container is in \"Unknown\" state, try killing it before restart"
                            .to_owned(),
                        probe: None,
                    });
                }
            }
            continue;
        };
        let mut restart = policy.restarts_on_failure();
        let (message, probe) = if running.hash != container_hash(container) {
            restart = true;
            (
                format!("Container {} definition changed", container.name),
                None,
            )
        } else if probes.liveness.contains(&running.id) {
            (
                format!("Container {} failed liveness probe", container.name),
                Some("liveness"),
            )
        } else if probes.startup.contains(&running.id) {
            (
                format!("Container {} failed startup probe", container.name),
                Some("startup"),
            )
        } else {
            keep += 1;
            continue;
        };
        let message = if restart {
            actions.to_start.push(ContainerKind::Regular(index));
            format!("{message}, will be restarted")
        } else {
            message
        };
        actions.to_kill.push(Kill {
            container_id: running.id.clone(),
            name: container.name.clone(),
            message,
            probe,
        });
    }
    if keep == 0 && actions.to_start.is_empty() {
        actions.kill_pod = true;
        actions.to_start.clear();
    }
    actions
}

/// The init part of a plan; true when initialization is complete and regular containers may
/// be looked at.
fn plan_init(
    pod: &Pod,
    runtime: &RuntimePod,
    probes: &ProbeFailures,
    policy: RestartPolicy,
    actions: &mut PodActions,
) -> bool {
    let already_initialized = containers(pod)
        .iter()
        .any(|c| runtime.latest(&c.name).is_some());
    for (kind, container) in init_kinds(pod) {
        let latest = runtime.latest(&container.name);
        match kind {
            ContainerKind::Sidecar(_) => {
                match latest {
                    Some(run) if run.state == ContainerState::Running => {
                        if probes.liveness.contains(&run.id) || probes.startup.contains(&run.id) {
                            actions.to_kill.push(Kill {
                                container_id: run.id.clone(),
                                name: container.name.clone(),
                                message: format!(
                                    "Init container {} failed {} probe, will be restarted",
                                    container.name,
                                    if probes.liveness.contains(&run.id) {
                                        "liveness"
                                    } else {
                                        "startup"
                                    }
                                ),
                                probe: Some(if probes.liveness.contains(&run.id) {
                                    "liveness"
                                } else {
                                    "startup"
                                }),
                            });
                            actions.to_start.push(kind);
                        }
                        // The next init container waits until this one has started.
                        if probes.not_started.contains(&run.id) && !already_initialized {
                            return false;
                        }
                    }
                    _ if pod.metadata.deletion_timestamp.is_none() => {
                        actions.to_start.push(kind);
                        if !already_initialized {
                            return false;
                        }
                    }
                    _ => {}
                }
            }
            ContainerKind::Init(_) => {
                if already_initialized {
                    continue;
                }
                match latest {
                    None => {
                        actions.to_start.push(kind);
                        return false;
                    }
                    Some(run) => match run.state {
                        ContainerState::Running => return false,
                        ContainerState::Exited if run.exit_code == 0 => {}
                        ContainerState::Exited => {
                            if policy.restarts_on_failure() {
                                actions.to_start.push(kind);
                            } else {
                                actions.kill_pod = true;
                            }
                            return false;
                        }
                        ContainerState::Created | ContainerState::Unknown => {
                            if run.state == ContainerState::Unknown {
                                actions.to_kill.push(Kill {
                                    container_id: run.id.clone(),
                                    name: container.name.clone(),
                                    message: "Init container is in \"Unknown\" state, try killing it before restart".to_owned(),
                                    probe: None,
                                });
                            }
                            actions.to_start.push(kind);
                            return false;
                        }
                    },
                }
            }
            ContainerKind::Regular(_) => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use crate::pod_runtime::SandboxInfo;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn two_containers(policy: &str) -> Pod {
        pod(json!({
            "restartPolicy": policy,
            "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}],
        }))
    }

    fn sandbox(ready: bool) -> SandboxInfo {
        SandboxInfo {
            id: "s1".into(),
            attempt: 0,
            ready,
            created_at: Timestamp::UNIX_EPOCH,
            ips: vec!["10.42.0.5".parse().unwrap()],
        }
    }

    fn run(pod: &Pod, name: &str, state: ContainerState, exit_code: i32) -> ContainerInfo {
        let spec = pod.spec.as_ref().unwrap();
        let container = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .unwrap();
        ContainerInfo {
            id: format!("{name}-id"),
            name: name.into(),
            sandbox_id: "s1".into(),
            state,
            created_at: Timestamp::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            exit_code,
            reason: String::new(),
            message: String::new(),
            image: "busybox".into(),
            image_ref: String::new(),
            restart_count: 0,
            hash: container_hash(container),
            termination_grace_period: None,
        }
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_and_all_its_containers() {
        let p = two_containers("Always");
        let actions = plan(&p, &RuntimePod::default(), &ProbeFailures::default());
        assert_eq!(actions.create_sandbox, Some(0));
        assert!(actions.kill_pod);
        assert_eq!(
            actions.to_start,
            vec![ContainerKind::Regular(0), ContainerKind::Regular(1)]
        );
    }

    #[test]
    fn a_running_pod_is_left_alone_and_an_exited_container_restarts_by_policy() {
        let p = two_containers("Always");
        let mut runtime = RuntimePod {
            sandboxes: vec![sandbox(true)],
            containers: vec![
                run(&p, "a", ContainerState::Running, 0),
                run(&p, "b", ContainerState::Running, 0),
            ],
        };
        let actions = plan(&p, &runtime, &ProbeFailures::default());
        assert_eq!(
            actions,
            PodActions {
                sandbox_id: Some("s1".into()),
                ..PodActions::default()
            }
        );
        runtime.containers[1] = run(&p, "b", ContainerState::Exited, 0);
        let actions = plan(&p, &runtime, &ProbeFailures::default());
        assert_eq!(actions.to_start, vec![ContainerKind::Regular(1)]);
        assert!(!actions.kill_pod);

        let p = two_containers("OnFailure");
        assert!(plan(&p, &runtime, &ProbeFailures::default())
            .to_start
            .is_empty());
        runtime.containers[1].exit_code = 1;
        assert_eq!(
            plan(&p, &runtime, &ProbeFailures::default()).to_start,
            vec![ContainerKind::Regular(1)]
        );
    }

    #[test]
    fn a_finished_pod_is_stopped_and_never_gets_a_new_sandbox() {
        let p = two_containers("Never");
        let mut runtime = RuntimePod {
            sandboxes: vec![sandbox(true)],
            containers: vec![
                run(&p, "a", ContainerState::Exited, 0),
                run(&p, "b", ContainerState::Exited, 1),
            ],
        };
        let actions = plan(&p, &runtime, &ProbeFailures::default());
        assert!(actions.kill_pod);
        assert!(actions.to_start.is_empty());
        runtime.sandboxes[0].ready = false;
        runtime.sandboxes[0].ips.clear();
        let actions = plan(&p, &runtime, &ProbeFailures::default());
        assert!(actions.kill_pod);
        assert_eq!(actions.create_sandbox, None);
    }

    #[test]
    fn liveness_failures_and_changed_definitions_restart_containers() {
        let p = two_containers("Always");
        let mut runtime = RuntimePod {
            sandboxes: vec![sandbox(true)],
            containers: vec![
                run(&p, "a", ContainerState::Running, 0),
                run(&p, "b", ContainerState::Running, 0),
            ],
        };
        let mut probes = ProbeFailures::default();
        probes.liveness.insert("a-id".into());
        let actions = plan(&p, &runtime, &probes);
        assert_eq!(actions.to_start, vec![ContainerKind::Regular(0)]);
        assert_eq!(
            actions.to_kill[0].message,
            "Container a failed liveness probe, will be restarted"
        );
        runtime.containers[1].hash = "old".into();
        let actions = plan(&p, &runtime, &ProbeFailures::default());
        assert_eq!(actions.to_start, vec![ContainerKind::Regular(1)]);
        assert_eq!(
            actions.to_kill[0].message,
            "Container b definition changed, will be restarted"
        );
    }

    #[test]
    fn init_containers_run_in_order_before_the_containers() {
        let p = pod(json!({
            "initContainers": [{"name": "i1", "image": "busybox"}, {"name": "i2", "image": "busybox"}],
            "containers": [{"name": "a", "image": "busybox"}],
        }));
        let actions = plan(&p, &RuntimePod::default(), &ProbeFailures::default());
        assert_eq!(actions.to_start, vec![ContainerKind::Init(0)]);
        let mut runtime = RuntimePod {
            sandboxes: vec![sandbox(true)],
            containers: vec![run(&p, "i1", ContainerState::Running, 0)],
        };
        assert!(plan(&p, &runtime, &ProbeFailures::default())
            .to_start
            .is_empty());
        runtime.containers[0] = run(&p, "i1", ContainerState::Exited, 0);
        assert_eq!(
            plan(&p, &runtime, &ProbeFailures::default()).to_start,
            vec![ContainerKind::Init(1)]
        );
        runtime
            .containers
            .insert(0, run(&p, "i2", ContainerState::Exited, 2));
        assert_eq!(
            plan(&p, &runtime, &ProbeFailures::default()).to_start,
            vec![ContainerKind::Init(1)],
            "a failed init container is retried"
        );
        runtime.containers[0].exit_code = 0;
        assert_eq!(
            plan(&p, &runtime, &ProbeFailures::default()).to_start,
            vec![ContainerKind::Regular(0)]
        );
        let mut never = p.clone();
        never.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        runtime.containers[0].exit_code = 1;
        assert!(plan(&never, &runtime, &ProbeFailures::default()).kill_pod);
    }

    #[test]
    fn sidecars_start_in_init_order_and_keep_running() {
        let p = pod(json!({
            "initContainers": [{"name": "proxy", "image": "busybox", "restartPolicy": "Always"}],
            "containers": [{"name": "a", "image": "busybox"}],
        }));
        let mut runtime = RuntimePod {
            sandboxes: vec![sandbox(true)],
            containers: vec![],
        };
        assert_eq!(
            plan(&p, &runtime, &ProbeFailures::default()).to_start,
            vec![ContainerKind::Sidecar(0)]
        );
        runtime
            .containers
            .push(run(&p, "proxy", ContainerState::Running, 0));
        assert_eq!(
            plan(&p, &runtime, &ProbeFailures::default()).to_start,
            vec![ContainerKind::Regular(0)]
        );
        runtime
            .containers
            .insert(0, run(&p, "a", ContainerState::Running, 0));
        runtime.containers[1].state = ContainerState::Exited;
        assert_eq!(
            plan(&p, &runtime, &ProbeFailures::default()).to_start,
            vec![ContainerKind::Sidecar(0)],
            "a sidecar that exits is restarted"
        );
    }

    #[test]
    fn the_hash_follows_the_definition() {
        let p = two_containers("Always");
        let spec = p.spec.as_ref().unwrap();
        let a = container_hash(&spec.containers[0]);
        assert_eq!(a, container_hash(&spec.containers[0]));
        let mut changed = spec.containers[0].clone();
        changed.image = Some("busybox:2".into());
        assert_ne!(a, container_hash(&changed));
    }
}
