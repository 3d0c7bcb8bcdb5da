//! [`FakeRuntime`]: the kubelet's [`Runtime`] in memory, kubemark's fake runtime. Sandboxes get
//! pod IPs from the node's pod CIDR (host-local IPAM's way, [`crate::ip_pool`]); containers keep
//! the labels, annotations, image and times the kubelet gives them, as containerd's CRI plugin
//! does, so the kubelet reads them back the same way. Nothing runs: a container is a record
//! whose state follows the clock and its pod's [`crate::annotations`] — it runs from its start,
//! exits by itself N seconds later with code C, becomes ready N seconds after it started (the
//! kubelet asks through [`ReadinessGate`]) and takes N seconds to stop.
//!
//! **Invariants**
//! - No tasks and no timers: a container's state is computed from its start time, its behaviour
//!   and the clock whenever it is asked for, so a node with many idle pods costs only memory.
//! - An IP is held from `RunPodSandbox` to `StopPodSandbox` (or removal), never by two
//!   sandboxes at once.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use k3rs_kubelet::readiness_gate::{GateState, ReadinessGate};
use k3rs_kubelet::runtime::{
    Condition, Runtime, RuntimeError, RuntimeErrorKind, RuntimeReadiness, RuntimeVersion,
};
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::annotations::{self, Behaviour};
use crate::ip_pool::{IpPool, Ipv4Cidr};

/// The runtime's name: the scheme of container IDs and image IDs (`hollow://…`).
pub const RUNTIME_NAME: &str = "hollow";

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// One sandbox.
#[derive(Debug)]
struct Sandbox {
    metadata: Option<cri::PodSandboxMetadata>,
    labels: HashMap<String, String>,
    annotations: HashMap<String, String>,
    created_at: i64,
    ready: bool,
    ip: Option<Ipv4Addr>,
}

/// One container: what the kubelet created and what happened to it since.
#[derive(Debug)]
struct Container {
    sandbox_id: String,
    metadata: Option<cri::ContainerMetadata>,
    image: Option<cri::ImageSpec>,
    image_ref: String,
    labels: HashMap<String, String>,
    annotations: HashMap<String, String>,
    behaviour: Behaviour,
    created_at: i64,
    started_at: Option<i64>,
    /// Set when the container was stopped (before it exited by itself): when, and the code.
    stopped: Option<(i64, i32)>,
}

/// A container's state at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    Exited { finished_at: i64, code: i32 },
}

impl Container {
    /// Where the container is at `now` (nanoseconds since the epoch).
    fn phase(&self, now: i64) -> Phase {
        let Some(started) = self.started_at else {
            return Phase::Created;
        };
        let exits = self.behaviour.exit.map(|exit| {
            let after = i64::try_from(exit.after).unwrap_or(i64::MAX / NANOS_PER_SECOND);
            (
                started.saturating_add(after.saturating_mul(NANOS_PER_SECOND)),
                exit.code,
            )
        });
        let ended = match (exits, self.stopped) {
            (Some(exit), Some(stop)) => Some(if exit.0 <= stop.0 { exit } else { stop }),
            (exit, stop) => exit.or(stop),
        };
        match ended {
            Some((finished_at, code)) if finished_at <= now => Phase::Exited { finished_at, code },
            _ => Phase::Running,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The node's pod CIDR, once the kubelet has told it.
    pod_range: Option<Ipv4Cidr>,
    pool: IpPool,
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    next_id: u64,
}

impl State {
    /// A new id: 64 hex digits, as containerd's, unique in this runtime.
    fn new_id(&mut self, salt: u64) -> String {
        self.next_id += 1;
        format!("{salt:016x}{:048x}", self.next_id)
    }
}

/// An in-memory container runtime for one hollow node.
#[derive(Debug)]
pub struct FakeRuntime {
    /// Pod IPs while the node has no pod CIDR.
    fallback_range: Ipv4Cidr,
    /// How long a container takes to stop unless its pod says otherwise.
    termination_delay: Mutex<Duration>,
    /// Distinguishes this runtime's ids from another node's.
    salt: u64,
    state: Mutex<State>,
}

fn now_nanos() -> i64 {
    i64::try_from(Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX)
}

fn not_found(operation: &'static str, what: &str, id: &str) -> RuntimeError {
    RuntimeError::new(
        RuntimeErrorKind::NotFound,
        operation,
        format!("{what} {id:?} not found"),
    )
}

fn is_host_network(config: &cri::PodSandboxConfig) -> bool {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .is_some_and(|n| n.network == cri::NamespaceMode::Node as i32)
}

/// What containerd says about an exit: `Completed` for code 0, else `Error`.
fn exit_reason(code: i32) -> &'static str {
    if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

impl FakeRuntime {
    /// A runtime with nothing in it, handing out pod IPs from `fallback_range` until it is told
    /// the node's pod CIDR; containers take `termination_delay` to stop.
    pub fn new(fallback_range: Ipv4Cidr, termination_delay: Duration) -> Self {
        FakeRuntime {
            fallback_range,
            termination_delay: Mutex::new(termination_delay),
            salt: rand::random(),
            state: Mutex::new(State::default()),
        }
    }

    /// Changes how long containers take to stop (a node started again with another
    /// configuration).
    pub fn set_termination_delay(&self, delay: Duration) {
        *self
            .termination_delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many sandboxes and containers the runtime holds.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state();
        (state.sandboxes.len(), state.containers.len())
    }

    /// How long stopping the container `id` takes: its pod's stop delay or the node's, at most
    /// `timeout_seconds` (the kubelet's grace period: SIGKILL ends it then).
    fn stop_delay(&self, id: &str, timeout_seconds: i64) -> Duration {
        let own = self
            .state()
            .containers
            .get(id)
            .and_then(|c| c.behaviour.stop_after);
        let wanted = own.map_or_else(
            || {
                *self
                    .termination_delay
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
            },
            Duration::from_secs,
        );
        wanted.min(Duration::from_secs(
            u64::try_from(timeout_seconds).unwrap_or(0),
        ))
    }

    fn cri_container(id: &str, container: &Container, now: i64) -> cri::Container {
        cri::Container {
            id: id.to_owned(),
            pod_sandbox_id: container.sandbox_id.clone(),
            metadata: container.metadata.clone(),
            image: container.image.clone(),
            image_ref: container.image_ref.clone(),
            state: cri_state(container.phase(now)) as i32,
            created_at: container.created_at,
            labels: container.labels.clone(),
            annotations: container.annotations.clone(),
            ..cri::Container::default()
        }
    }
}

fn cri_state(phase: Phase) -> cri::ContainerState {
    match phase {
        Phase::Created => cri::ContainerState::ContainerCreated,
        Phase::Running => cri::ContainerState::ContainerRunning,
        Phase::Exited { .. } => cri::ContainerState::ContainerExited,
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<RuntimeVersion, RuntimeError> {
        Ok(RuntimeVersion {
            name: RUNTIME_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }

    async fn readiness(&self) -> Result<RuntimeReadiness, RuntimeError> {
        let ready = Condition {
            ready: true,
            reason: String::new(),
            message: String::new(),
        };
        Ok(RuntimeReadiness {
            runtime: ready.clone(),
            network: ready,
        })
    }

    async fn update_pod_cidr(&self, pod_cidr: &str) -> Result<(), RuntimeError> {
        let range = k3rs_api::cidr::parse_ipv4(pod_cidr).map_err(|err| {
            RuntimeError::new(
                RuntimeErrorKind::Failed,
                "UpdateRuntimeConfig",
                format!("pod CIDR {pod_cidr:?}: {err}"),
            )
        })?;
        self.state().pod_range = Some(range);
        Ok(())
    }

    async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String, RuntimeError> {
        let behaviour = annotations::behaviour_of(&config.annotations);
        for problem in behaviour.1 {
            let pod = config
                .metadata
                .as_ref()
                .map(|m| format!("{}/{}", m.namespace, m.name));
            tracing::warn!(pod = ?pod, "{problem}");
        }
        let mut state = self.state();
        let ip = if is_host_network(&config) {
            None
        } else {
            let range = state.pod_range.unwrap_or(self.fallback_range);
            let Some(ip) = state.pool.allocate(range) else {
                return Err(RuntimeError::new(
                    RuntimeErrorKind::Failed,
                    "RunPodSandbox",
                    format!("failed to allocate for range 0: no IP addresses available in range set: {range}"),
                ));
            };
            Some(ip)
        };
        let id = state.new_id(self.salt);
        state.sandboxes.insert(
            id.clone(),
            Sandbox {
                metadata: config.metadata,
                labels: config.labels,
                annotations: config.annotations,
                created_at: now_nanos(),
                ready: true,
                ip,
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let now = now_nanos();
        let mut state = self.state();
        let state = &mut *state;
        let Some(sandbox) = state.sandboxes.get_mut(id) else {
            return Err(not_found("StopPodSandbox", "sandbox", id));
        };
        sandbox.ready = false;
        if let Some(ip) = sandbox.ip.take() {
            state.pool.release(ip);
        }
        // Whatever still runs in it is killed.
        for container in state.containers.values_mut() {
            if container.sandbox_id == id && container.phase(now) == Phase::Running {
                container.stopped = Some((now, 137));
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let mut state = self.state();
        let Some(sandbox) = state.sandboxes.remove(id) else {
            return Err(not_found("RemovePodSandbox", "sandbox", id));
        };
        if let Some(ip) = sandbox.ip {
            state.pool.release(ip);
        }
        state.containers.retain(|_, c| c.sandbox_id != id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, RuntimeError> {
        let state = self.state();
        let Some(sandbox) = state.sandboxes.get(id) else {
            return Err(not_found("PodSandboxStatus", "sandbox", id));
        };
        Ok(cri::PodSandboxStatus {
            id: id.to_owned(),
            metadata: sandbox.metadata.clone(),
            state: sandbox_state(sandbox.ready) as i32,
            created_at: sandbox.created_at,
            network: sandbox.ip.map(|ip| cri::PodSandboxNetworkStatus {
                ip: ip.to_string(),
                additional_ips: Vec::new(),
            }),
            labels: sandbox.labels.clone(),
            annotations: sandbox.annotations.clone(),
            ..cri::PodSandboxStatus::default()
        })
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<cri::PodSandbox>, RuntimeError> {
        let state = self.state();
        Ok(state
            .sandboxes
            .iter()
            .map(|(id, sandbox)| cri::PodSandbox {
                id: id.clone(),
                metadata: sandbox.metadata.clone(),
                state: sandbox_state(sandbox.ready) as i32,
                created_at: sandbox.created_at,
                labels: sandbox.labels.clone(),
                annotations: sandbox.annotations.clone(),
                ..cri::PodSandbox::default()
            })
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, RuntimeError> {
        let behaviour = annotations::behaviour_of(&sandbox_config.annotations).0;
        let mut state = self.state();
        if !state.sandboxes.get(sandbox_id).is_some_and(|s| s.ready) {
            return Err(RuntimeError::new(
                RuntimeErrorKind::Failed,
                "CreateContainer",
                format!("sandbox {sandbox_id:?} is not ready"),
            ));
        }
        let id = state.new_id(self.salt);
        let image_ref = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        // The status names the image as the pod spec does, as containerd's does.
        let image = config.image.map(|spec| cri::ImageSpec {
            image: if spec.user_specified_image.is_empty() {
                spec.image.clone()
            } else {
                spec.user_specified_image.clone()
            },
            ..spec
        });
        state.containers.insert(
            id.clone(),
            Container {
                sandbox_id: sandbox_id.to_owned(),
                metadata: config.metadata,
                image,
                image_ref,
                labels: config.labels,
                annotations: config.annotations,
                behaviour,
                created_at: now_nanos(),
                started_at: None,
                stopped: None,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let now = now_nanos();
        let mut state = self.state();
        let Some(container) = state.containers.get_mut(id) else {
            return Err(not_found("StartContainer", "container", id));
        };
        if container.started_at.is_some() {
            return Err(RuntimeError::new(
                RuntimeErrorKind::Failed,
                "StartContainer",
                format!("container {id:?} was started already"),
            ));
        }
        container.started_at = Some(now);
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<(), RuntimeError> {
        let running = match self.state().containers.get(id) {
            None => return Err(not_found("StopContainer", "container", id)),
            Some(container) => container.phase(now_nanos()) == Phase::Running,
        };
        if !running {
            return Ok(());
        }
        // The container honours its stop signal slowly: it runs on until then.
        let delay = self.stop_delay(id, timeout_seconds);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let now = now_nanos();
        if let Some(container) = self.state().containers.get_mut(id) {
            if container.phase(now) == Phase::Running {
                container.stopped = Some((now, 0));
            }
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        match self.state().containers.remove(id) {
            Some(_) => Ok(()),
            None => Err(not_found("RemoveContainer", "container", id)),
        }
    }

    async fn list_containers(&self) -> Result<Vec<cri::Container>, RuntimeError> {
        let now = now_nanos();
        let state = self.state();
        Ok(state
            .containers
            .iter()
            .map(|(id, container)| FakeRuntime::cri_container(id, container, now))
            .collect())
    }

    async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, RuntimeError> {
        let now = now_nanos();
        let state = self.state();
        let Some(container) = state.containers.get(id) else {
            return Err(not_found("ContainerStatus", "container", id));
        };
        let phase = container.phase(now);
        let (finished_at, exit_code, reason) = match phase {
            Phase::Exited { finished_at, code } => (finished_at, code, exit_reason(code)),
            _ => (0, 0, ""),
        };
        Ok(cri::ContainerStatus {
            id: id.to_owned(),
            metadata: container.metadata.clone(),
            state: cri_state(phase) as i32,
            created_at: container.created_at,
            started_at: container.started_at.unwrap_or(0),
            finished_at,
            exit_code,
            image: container.image.clone(),
            image_ref: container.image_ref.clone(),
            reason: reason.to_owned(),
            labels: container.labels.clone(),
            annotations: container.annotations.clone(),
            ..cri::ContainerStatus::default()
        })
    }

    /// Every command succeeds at once in a running fake container: an exec probe passes, an
    /// exec hook does nothing.
    async fn exec_sync(
        &self,
        id: &str,
        _command: Vec<String>,
        _timeout_seconds: i64,
    ) -> Result<cri::ExecSyncResponse, RuntimeError> {
        let state = self.state();
        let Some(container) = state.containers.get(id) else {
            return Err(not_found("ExecSync", "container", id));
        };
        if container.phase(now_nanos()) != Phase::Running {
            return Err(RuntimeError::new(
                RuntimeErrorKind::Failed,
                "ExecSync",
                format!("container {id:?} is not running"),
            ));
        }
        Ok(cri::ExecSyncResponse::default())
    }

    /// Every image is present: its ID is `hollow://<image>`.
    async fn image_status(&self, image: &str) -> Result<Option<cri::Image>, RuntimeError> {
        Ok(Some(cri::Image {
            id: format!("{RUNTIME_NAME}://{image}"),
            repo_tags: vec![image.to_owned()],
            ..cri::Image::default()
        }))
    }

    async fn pull_image(
        &self,
        image: &str,
        _auth: Option<cri::AuthConfig>,
        _sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String, RuntimeError> {
        Ok(format!("{RUNTIME_NAME}://{image}"))
    }

    /// A fake container uses no CPU and no memory: no stats to report.
    async fn list_container_stats(&self) -> Result<Vec<cri::ContainerStats>, RuntimeError> {
        Ok(Vec::new())
    }

    /// A fake container writes no log: reopening one that exists does nothing.
    async fn reopen_container_log(&self, id: &str) -> Result<(), RuntimeError> {
        match self.state().containers.contains_key(id) {
            true => Ok(()),
            false => Err(not_found("ReopenContainerLog", "container", id)),
        }
    }
}

fn sandbox_state(ready: bool) -> cri::PodSandboxState {
    if ready {
        cri::PodSandboxState::SandboxReady
    } else {
        cri::PodSandboxState::SandboxNotready
    }
}

/// The fake containers' readiness: [`annotations::READY_AFTER_SECONDS`] after each start, read
/// from the pod as it is now (a test may change it on a running pod).
impl ReadinessGate for FakeRuntime {
    fn container_readiness(&self, pod: &Pod, container_id: &str) -> GateState {
        let started = {
            let state = self.state();
            let Some(container) = state.containers.get(container_id) else {
                return GateState::Ready;
            };
            container.started_at
        };
        let Some(started) = started else {
            return GateState::Never;
        };
        let ready_after = annotations::ready_after(pod.metadata.annotations.as_ref());
        match ready_after {
            None => GateState::Never,
            Some(0) => GateState::Ready,
            Some(seconds) => {
                let seconds = i64::try_from(seconds).unwrap_or(i64::MAX / NANOS_PER_SECOND);
                let at = started.saturating_add(seconds.saturating_mul(NANOS_PER_SECOND));
                Timestamp::from_nanosecond(i128::from(at)).map_or(GateState::Never, GateState::At)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k3rs_kubelet::runtime::labels;

    fn range(text: &str) -> Ipv4Cidr {
        k3rs_api::cidr::parse_ipv4(text).unwrap()
    }

    fn sandbox_config(
        uid: &str,
        annotations: &[(&str, &str)],
        host: bool,
    ) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "p".into(),
                uid: uid.into(),
                namespace: "ns".into(),
                attempt: 0,
            }),
            labels: [(labels::POD_UID.to_owned(), uid.to_owned())].into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            linux: host.then(|| cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        ..cri::NamespaceOption::default()
                    }),
                    ..cri::LinuxSandboxSecurityContext::default()
                }),
                ..cri::LinuxPodSandboxConfig::default()
            }),
            ..cri::PodSandboxConfig::default()
        }
    }

    fn container_config(name: &str) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: "hollow://busybox:1.36".into(),
                user_specified_image: "busybox:1.36".into(),
                ..cri::ImageSpec::default()
            }),
            labels: [(labels::CONTAINER_NAME.to_owned(), name.to_owned())].into(),
            ..cri::ContainerConfig::default()
        }
    }

    #[tokio::test]
    async fn sandboxes_hold_ips_from_the_pod_cidr_until_stopped() {
        let runtime = FakeRuntime::new(range("100.96.0.0/24"), Duration::ZERO);
        let first = runtime
            .run_pod_sandbox(sandbox_config("u1", &[], false))
            .await
            .unwrap();
        let status = runtime.pod_sandbox_status(&first).await.unwrap();
        assert_eq!(status.network.unwrap().ip, "100.96.0.2");
        runtime.update_pod_cidr("10.42.3.0/24").await.unwrap();
        let second = runtime
            .run_pod_sandbox(sandbox_config("u2", &[], false))
            .await
            .unwrap();
        let status = runtime.pod_sandbox_status(&second).await.unwrap();
        assert_eq!(status.network.unwrap().ip, "10.42.3.2");
        let host = runtime
            .run_pod_sandbox(sandbox_config("u3", &[], true))
            .await
            .unwrap();
        assert!(runtime
            .pod_sandbox_status(&host)
            .await
            .unwrap()
            .network
            .is_none());

        runtime.stop_pod_sandbox(&second).await.unwrap();
        let stopped = runtime.pod_sandbox_status(&second).await.unwrap();
        assert_eq!(stopped.state, cri::PodSandboxState::SandboxNotready as i32);
        assert!(stopped.network.is_none());
        assert_eq!(runtime.list_pod_sandboxes().await.unwrap().len(), 3);
        runtime.remove_pod_sandbox(&second).await.unwrap();
        assert!(runtime
            .pod_sandbox_status(&second)
            .await
            .unwrap_err()
            .is_not_found());
    }

    #[tokio::test]
    async fn containers_keep_what_the_kubelet_gave_them_and_follow_their_behaviour() {
        let runtime = FakeRuntime::new(range("100.96.0.0/24"), Duration::ZERO);
        let pod = sandbox_config(
            "u1",
            &[
                (annotations::EXIT_AFTER_SECONDS, "0"),
                (annotations::EXIT_CODE, "3"),
            ],
            false,
        );
        let sandbox = runtime.run_pod_sandbox(pod.clone()).await.unwrap();
        let id = runtime
            .create_container(&sandbox, container_config("app"), pod)
            .await
            .unwrap();
        let created = runtime.container_status(&id).await.unwrap();
        assert_eq!(created.state, cri::ContainerState::ContainerCreated as i32);
        assert_eq!(created.image.unwrap().image, "busybox:1.36");
        assert_eq!(created.image_ref, "hollow://busybox:1.36");
        assert_eq!(created.labels[labels::CONTAINER_NAME], "app");
        runtime.start_container(&id).await.unwrap();
        // Exits at once (after 0 s) with code 3.
        let exited = runtime.container_status(&id).await.unwrap();
        assert_eq!(exited.state, cri::ContainerState::ContainerExited as i32);
        assert_eq!((exited.exit_code, exited.reason.as_str()), (3, "Error"));
        assert_eq!(exited.finished_at, exited.started_at);
        assert!(runtime.exec_sync(&id, vec![], 1).await.is_err());
        assert_eq!(runtime.list_containers().await.unwrap().len(), 1);
        runtime.remove_container(&id).await.unwrap();
        assert!(runtime
            .container_status(&id)
            .await
            .unwrap_err()
            .is_not_found());
    }

    #[tokio::test]
    async fn stopping_takes_the_stop_delay_within_the_grace_period() {
        let runtime = FakeRuntime::new(range("100.96.0.0/24"), Duration::from_secs(60));
        let pod = sandbox_config("u1", &[], false);
        let sandbox = runtime.run_pod_sandbox(pod.clone()).await.unwrap();
        let id = runtime
            .create_container(&sandbox, container_config("app"), pod)
            .await
            .unwrap();
        runtime.start_container(&id).await.unwrap();
        assert_eq!(
            runtime.container_readiness(&api_pod(&[]), &id),
            GateState::Ready
        );
        assert!(runtime.exec_sync(&id, vec![], 1).await.is_ok());
        assert_eq!(runtime.stop_delay(&id, 1), Duration::from_secs(1));
        assert_eq!(runtime.stop_delay(&id, 0), Duration::ZERO);
        let started = std::time::Instant::now();
        runtime.stop_container(&id, 1).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1));
        let stopped = runtime.container_status(&id).await.unwrap();
        assert_eq!(stopped.state, cri::ContainerState::ContainerExited as i32);
        assert_eq!(
            (stopped.exit_code, stopped.reason.as_str()),
            (0, "Completed")
        );
    }

    fn api_pod(annotations: &[(&str, &str)]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        pod
    }

    #[tokio::test]
    async fn readiness_follows_the_ready_after_annotation_of_the_pod_now() {
        let runtime = FakeRuntime::new(range("100.96.0.0/24"), Duration::ZERO);
        let config = sandbox_config("u1", &[], false);
        let sandbox = runtime.run_pod_sandbox(config.clone()).await.unwrap();
        let id = runtime
            .create_container(&sandbox, container_config("app"), config)
            .await
            .unwrap();
        let slow = api_pod(&[(annotations::READY_AFTER_SECONDS, "5")]);
        assert_eq!(
            runtime.container_readiness(&slow, &id),
            GateState::Never,
            "not started"
        );
        runtime.start_container(&id).await.unwrap();
        let started = runtime.container_status(&id).await.unwrap().started_at;
        let at = Timestamp::from_nanosecond(i128::from(started + 5 * NANOS_PER_SECOND)).unwrap();
        assert_eq!(runtime.container_readiness(&slow, &id), GateState::At(at));
        let never = api_pod(&[(annotations::READY_AFTER_SECONDS, annotations::NEVER)]);
        assert_eq!(runtime.container_readiness(&never, &id), GateState::Never);
        assert_eq!(
            runtime.container_readiness(&api_pod(&[]), &id),
            GateState::Ready
        );
        assert_eq!(
            runtime.container_readiness(&Pod::default(), "unknown"),
            GateState::Ready
        );
    }
}
