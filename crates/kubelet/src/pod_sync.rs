//! One pod's sync, as upstream's `SyncPod`/`KillPod` do it: read what the runtime has, plan
//! ([`crate::plan`]), kill what must go, create the sandbox (volumes first), start containers
//! (back-off, image, environment, mounts, create, start), collect old runs, then compute the
//! status ([`crate::pod_status`]) and write it when it changed. Terminating pods are stopped
//! within their grace period and then deleted for good; pods the API no longer has are removed
//! from the runtime and the disk.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PatchParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use crate::backoff::{go_duration, Backoff};
use crate::cgroups::QosClass;
use crate::container_config::{container_config, ImageUser, RunSettings};
use crate::env::{self, EnvSources};
use crate::images::{ensure_image, Presence};
use crate::plan::{self, ContainerKind};
use crate::pod_cgroups::PodCgroups;
use crate::pod_runtime::{read_pod, ContainerState, RuntimePod};
use crate::pod_status::{pod_status, StatusInputs, Waiting};
use crate::probe::{self as probe_run, Action, Outcome};
use crate::prober::{self, PodProbes};
use crate::readiness_gate::{self, ReadinessGate};
use crate::runtime::Runtime;
use crate::sandbox_config::{sandbox_config, NodeSettings};
use crate::volumes::{ContainerMountOptions, NodeAllocatable, PodVolumes, VolumeManager};

/// Where a pod's containers start: its sandbox, volumes, hosts file and IPs.
#[derive(Clone, Copy, Debug)]
struct StartTarget<'a> {
    sandbox_id: &'a str,
    sandbox: &'a cri::PodSandboxConfig,
    volumes: &'a PodVolumes,
    etc_hosts: Option<&'a std::path::Path>,
    pod_ips: &'a [String],
}
use k3rs_runtime::events::Recorder;

/// How often a pod is synced when nothing happens (volume contents, token rotation).
pub const RESYNC: Duration = Duration::from_secs(10);
/// The shortest grace period a container gets (upstream's `minimumGracePeriodInSeconds`).
const MIN_GRACE_SECONDS: i64 = 2;
/// How many runs of each container are kept (the current one and the one before, for
/// `lastState` and `kubectl logs --previous`).
const RUNS_KEPT: usize = 2;

/// What the node tells every pod sync.
#[derive(Clone, Debug)]
pub struct NodeFacts {
    /// The node's IPs: `hostIP(s)`.
    pub host_ips: Vec<IpAddr>,
    /// The node's allocatable resources (`status.allocatable`).
    pub allocatable: NodeAllocatable,
    /// Allocatable memory in bytes (a burstable container's OOM score).
    pub allocatable_memory: i64,
    /// The runtime's name: the scheme of container IDs.
    pub runtime_name: String,
}

/// What every pod worker of a node shares.
pub struct PodContext {
    pub runtime: Arc<dyn Runtime>,
    pub client: Client,
    pub recorder: Recorder,
    /// The node's volumes ([`crate::volumes::Volumes`]), or a hollow node's fake.
    pub volumes: Arc<dyn VolumeManager>,
    /// Readiness beside the probes (a hollow node's fake runtime); `None` on a real node.
    pub readiness_gate: Option<Arc<dyn ReadinessGate>>,
    /// HTTP, TCP and gRPC probes and hooks are not sent and count as passed (hollow nodes).
    pub skip_network_probes: bool,
    pub settings: Arc<NodeSettings>,
    /// The pods' cgroups, made before their sandboxes.
    pub cgroups: Arc<PodCgroups>,
    pub facts: NodeFacts,
    /// The Services the pods' environments link to.
    pub services: Arc<k3rs_runtime::informer::Informer<Service>>,
}

impl std::fmt::Debug for PodContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodContext")
            .field("runtime", &self.runtime)
            .field("settings", &self.settings)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

/// What a pod's worker remembers between syncs (all of it can be lost: a restarted kubelet
/// starts from the runtime and the pod).
#[derive(Debug, Default)]
pub struct PodWorkerState {
    restart_backoff: Backoff,
    pull_backoff: Backoff,
    /// Why containers are waiting (start failures), by name.
    waiting: HashMap<String, Waiting>,
    /// The last status written and the server's answer to it.
    last_write: Option<(PodStatus, Option<PodStatus>)>,
    /// The final delete was accepted.
    deleted: bool,
    /// The earliest moment the pod needs another sync by itself.
    wake_at: Option<Timestamp>,
    /// The probes of its running containers.
    probes: PodProbes,
}

/// `name_namespace(uid)`, upstream's `format.Pod`.
fn pod_text(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.name_any(),
        pod.namespace().unwrap_or_default(),
        pod.uid().unwrap_or_default()
    )
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

fn container_of(pod: &Pod, kind: ContainerKind) -> Option<&Container> {
    let spec = pod.spec.as_ref()?;
    match kind {
        ContainerKind::Init(i) | ContainerKind::Sidecar(i) => spec.init_containers.as_ref()?.get(i),
        ContainerKind::Regular(i) => spec.containers.get(i),
    }
}

/// The grace period for stopping the pod's containers now.
fn grace_seconds(pod: Option<&Pod>) -> i64 {
    let seconds = pod
        .and_then(|p| {
            p.metadata.deletion_grace_period_seconds.or_else(|| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
        })
        .unwrap_or(30);
    seconds.max(MIN_GRACE_SECONDS)
}

impl PodWorkerState {
    fn wake_no_later_than(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Takes the moment of the next sync the worker asked for.
    pub fn take_wake(&mut self) -> Option<Timestamp> {
        self.wake_at.take()
    }
}

impl PodContext {
    /// One sync of a pod that exists in the API. Returns false when the worker is done with it
    /// (deleted for good).
    pub async fn sync(&self, pod: &Pod, state: &mut PodWorkerState) -> bool {
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(pod, state).await;
            return !state.deleted;
        }
        let uid = pod.uid().unwrap_or_default();
        let runtime_pod = match read_pod(self.runtime.as_ref(), &uid).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(pod = %pod_key(pod), "reading the runtime: {err}");
                return true;
            }
        };
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if finished {
            // A finished pod never runs again: make sure nothing of it does.
            if runtime_pod.any_running() || runtime_pod.sandboxes.iter().any(|s| s.ready) {
                self.kill_pod(Some(pod), &runtime_pod).await;
            }
            return true;
        }
        self.run_probes(pod, &runtime_pod, state).await;
        let runtime_pod = self.apply_plan(pod, runtime_pod, state).await;
        self.collect_garbage(&runtime_pod).await;
        self.write_status(pod, &runtime_pod, state, false).await;
        true
    }

    /// Plans and applies one sync; returns what the runtime holds afterwards.
    async fn apply_plan(
        &self,
        pod: &Pod,
        runtime_pod: RuntimePod,
        state: &mut PodWorkerState,
    ) -> RuntimePod {
        let uid = pod.uid().unwrap_or_default();
        let actions = plan::plan(pod, &runtime_pod, &state.probes.failures());
        if actions.kill_pod {
            self.kill_pod(Some(pod), &runtime_pod).await;
        }
        for kill in &actions.to_kill {
            self.recorder
                .normal(pod, "Killing", kill.message.clone())
                .await;
            let run = runtime_pod
                .containers
                .iter()
                .find(|c| c.id == kill.container_id);
            if let Some(run) = run {
                self.kill_container(Some(pod), run, grace_seconds(Some(pod)), &runtime_pod)
                    .await;
            }
        }
        if actions.create_sandbox.is_none() && actions.sandbox_id.is_none() {
            return self.reread(&uid, runtime_pod).await;
        }
        if let Err(err) = self.cgroups.ensure_pod(pod) {
            self.recorder
                .warning(
                    pod,
                    "FailedCreatePodContainer",
                    format!(
                        "unable to ensure pod container exists: {}",
                        crate::error::error_chain(&err)
                    ),
                )
                .await;
            state.wake_no_later_than(in_seconds(RESYNC.as_secs()));
            return self.reread(&uid, runtime_pod).await;
        }
        let qos = QosClass::of(pod);
        let attempt = actions
            .create_sandbox
            .unwrap_or_else(|| runtime_pod.sandbox().map_or(0, |s| s.attempt));
        let config = sandbox_config(pod, attempt, &self.settings, qos);
        let volumes = match self.volumes.set_up(pod).await {
            Ok(volumes) => volumes,
            Err(err) => {
                self.recorder
                    .warning(pod, "FailedMount", err.event_message())
                    .await;
                state.wake_no_later_than(in_seconds(RESYNC.as_secs()));
                return self.reread(&uid, runtime_pod).await;
            }
        };
        let sandbox_id = match actions.create_sandbox {
            Some(_) => match self.runtime.run_pod_sandbox(config.clone()).await {
                Ok(id) => id,
                Err(err) => {
                    self.recorder
                        .warning(
                            pod,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {}", err.message),
                        )
                        .await;
                    state.wake_no_later_than(in_seconds(RESYNC.as_secs()));
                    return self.reread(&uid, runtime_pod).await;
                }
            },
            None => actions.sandbox_id.clone().unwrap_or_default(),
        };
        let runtime_pod = if actions.create_sandbox.is_some() {
            self.reread(&uid, runtime_pod).await
        } else {
            runtime_pod
        };
        let pod_ips: Vec<String> = runtime_pod.ips().iter().map(IpAddr::to_string).collect();
        let etc_hosts = if pod_ips.is_empty() {
            None
        } else {
            match self
                .volumes
                .write_etc_hosts(pod, &pod_ips, &self.settings.cluster_domain)
            {
                Ok(path) => Some(path),
                Err(err) => {
                    tracing::warn!(pod = %pod_key(pod), "writing /etc/hosts: {err}");
                    None
                }
            }
        };
        let target = StartTarget {
            sandbox_id: &sandbox_id,
            sandbox: &config,
            volumes: &volumes,
            etc_hosts: etc_hosts.as_deref(),
            pod_ips: &pod_ips,
        };
        for kind in &actions.to_start {
            self.start_container(pod, *kind, &target, &runtime_pod, state)
                .await;
        }
        self.reread(&uid, runtime_pod).await
    }

    async fn reread(&self, uid: &str, fallback: RuntimePod) -> RuntimePod {
        read_pod(self.runtime.as_ref(), uid)
            .await
            .unwrap_or(fallback)
    }

    /// Starts one container of the pod (upstream's `startContainer`), recording why it could
    /// not.
    async fn start_container(
        &self,
        pod: &Pod,
        kind: ContainerKind,
        target: &StartTarget<'_>,
        runtime_pod: &RuntimePod,
        state: &mut PodWorkerState,
    ) {
        let StartTarget {
            sandbox_id,
            sandbox,
            ..
        } = *target;
        let Some(container) = container_of(pod, kind) else {
            return;
        };
        let name = container.name.clone();
        let latest = runtime_pod.latest(&name);
        let now = Timestamp::now();
        // A container that ran before waits out its back-off.
        if let Some(exited) = latest.filter(|run| run.state == ContainerState::Exited) {
            let key = name.clone();
            let finished = exited.finished_at.unwrap_or(now);
            if state.restart_backoff.in_backoff_since(&key, finished, now) {
                let backoff = state.restart_backoff.get(&key);
                state.waiting.insert(
                    name.clone(),
                    Waiting {
                        reason: "CrashLoopBackOff".to_owned(),
                        message: format!(
                            "back-off {} restarting failed container={name} pod={}",
                            go_duration(backoff),
                            pod_text(pod)
                        ),
                    },
                );
                self.recorder
                    .warning(
                        pod,
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {name} in pod {}",
                            pod_text(pod)
                        ),
                    )
                    .await;
                state.wake_no_later_than(state.restart_backoff.until(&key, finished));
                return;
            }
            state.restart_backoff.next(&key, finished, now);
        }
        let restart_count = latest.map_or(0, |run| run.restart_count + 1);

        let (image, presence) = match ensure_image(
            self.runtime.as_ref(),
            container,
            &pod_text(pod),
            &mut state.pull_backoff,
            None,
            sandbox,
        )
        .await
        {
            Ok(found) => found,
            Err(err) => {
                let image = container.image.clone().unwrap_or_default();
                if err.reason == "ErrImagePull" {
                    self.recorder
                        .warning(
                            pod,
                            "Failed",
                            format!("Failed to pull image {image:?}: {}", err.message),
                        )
                        .await;
                }
                let event = format!("Error: {}", err.reason);
                self.start_failed(pod, state, name, err.reason, err.message, event, RESYNC)
                    .await;
                return;
            }
        };
        let image_name = container.image.clone().unwrap_or_default();
        match presence {
            Presence::AlreadyPresent => {
                self.recorder
                    .normal(
                        pod,
                        "Pulled",
                        format!("Container image {image_name:?} already present on machine"),
                    )
                    .await;
            }
            Presence::Pulled { millis, size } => {
                let seconds = millis as f64 / 1000.0;
                self.recorder
                    .normal(
                        pod,
                        "Pulled",
                        format!(
                            "Successfully pulled image {image_name:?} in {seconds:.3}s ({seconds:.3}s including waiting). Image size: {size} bytes."
                        ),
                    )
                    .await;
            }
        }
        let config = match self
            .container_config(pod, container, restart_count, &image, target)
            .await
        {
            Ok(config) => config,
            Err(message) => {
                let event = format!("Error: {message}");
                let reason = "CreateContainerConfigError";
                self.start_failed(pod, state, name, reason, message, event, RESYNC)
                    .await;
                return;
            }
        };
        let id = match self
            .runtime
            .create_container(sandbox_id, config, sandbox.clone())
            .await
        {
            Ok(id) => id,
            Err(err) => {
                let event = format!("Error: {}", err.message);
                let reason = "CreateContainerError";
                self.start_failed(pod, state, name, reason, err.message, event, RESYNC)
                    .await;
                return;
            }
        };
        self.recorder
            .normal(pod, "Created", format!("Created container: {name}"))
            .await;
        if let Err(err) = self.runtime.start_container(&id).await {
            let event = format!("Error: {}", err.message);
            let reason = "RunContainerError";
            // The run exited at once: the next sync restarts it, with back-off.
            let retry = Duration::from_secs(1);
            self.start_failed(pod, state, name, reason, err.message, event, retry)
                .await;
            return;
        }
        state.waiting.remove(&name);
        self.recorder
            .normal(pod, "Started", format!("Started container {name}"))
            .await;
        let post_start = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
            .and_then(Action::of_handler);
        if let Some(action) = post_start {
            let pod_ip = target.pod_ips.first().and_then(|ip| ip.parse().ok());
            let grace = grace_seconds(Some(pod));
            let limit = Duration::from_secs(u64::try_from(grace).unwrap_or(30));
            if let Outcome::Failure(message) =
                self.run_action(action, container, &id, pod_ip, limit).await
            {
                // Upstream kills a container whose postStart hook failed; it restarts by its
                // policy, with back-off.
                self.recorder
                    .warning(
                        pod,
                        "FailedPostStartHook",
                        format!("PostStartHook failed: {message}"),
                    )
                    .await;
                self.stop_container(&id, grace).await;
                let event = format!("Error: {message}");
                self.start_failed(
                    pod,
                    state,
                    name,
                    "PostStartHookError",
                    message,
                    event,
                    RESYNC,
                )
                .await;
            }
        }
    }

    /// Records why a container could not start: a `Failed` event, the waiting reason its
    /// status shows, and the next sync `retry` from now.
    #[allow(clippy::too_many_arguments)]
    async fn start_failed(
        &self,
        pod: &Pod,
        state: &mut PodWorkerState,
        name: String,
        reason: &str,
        message: String,
        event: String,
        retry: Duration,
    ) {
        self.recorder.warning(pod, "Failed", event).await;
        state.waiting.insert(
            name,
            Waiting {
                reason: reason.to_owned(),
                message,
            },
        );
        state.wake_no_later_than(in_seconds(retry.as_secs()));
    }

    /// The configuration of one run, with its environment read from the API.
    async fn container_config(
        &self,
        pod: &Pod,
        container: &Container,
        restart_count: i32,
        image: &cri::Image,
        target: &StartTarget<'_>,
    ) -> Result<cri::ContainerConfig, String> {
        let sources = self.env_sources(pod, container, target.pod_ips).await?;
        let environment =
            env::environment(pod, container, &sources).map_err(|err| err.to_string())?;
        let mounts = self
            .volumes
            .container_mounts(
                container,
                target.volumes,
                &ContainerMountOptions {
                    env: &environment,
                    etc_hosts: target.etc_hosts,
                    supports_recursive_read_only: false,
                },
            )
            .map_err(|err| err.to_string())?;
        let image_user = ImageUser {
            uid: image.uid.as_ref().map(|uid| uid.value),
            username: image.username.clone(),
        };
        let image_ref = if image.id.is_empty() {
            container.image.clone().unwrap_or_default()
        } else {
            image.id.clone()
        };
        container_config(
            pod,
            container,
            RunSettings {
                restart_count,
                image_ref: &image_ref,
                image_user: &image_user,
                env: &environment,
                mounts,
                qos: QosClass::of(pod),
                node_memory: self.facts.allocatable_memory,
            },
        )
        .map_err(|err| err.to_string())
    }

    /// Reads the ConfigMaps and Secrets the container's environment refers to, and the
    /// Services it links to.
    async fn env_sources(
        &self,
        pod: &Pod,
        container: &Container,
        pod_ips: &[String],
    ) -> Result<EnvSources, String> {
        let namespace = pod.namespace().unwrap_or_default();
        let (config_map_names, secret_names) = env::referenced_objects(container);
        let mut sources = EnvSources {
            node_allocatable: self.facts.allocatable.clone(),
            host_ips: self.facts.host_ips.iter().map(IpAddr::to_string).collect(),
            pod_ips: pod_ips.to_vec(),
            ..EnvSources::default()
        };
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
        for name in config_map_names {
            let found = config_maps
                .get_opt(&name)
                .await
                .map_err(|err| format!("configmap {name:?}: {err}"))?;
            sources.config_maps.insert(name, found);
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        for name in secret_names {
            let found = secrets
                .get_opt(&name)
                .await
                .map_err(|err| format!("secret {name:?}: {err}"))?;
            sources.secrets.insert(name, found);
        }
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        for service in self.services.cache().all() {
            let service_namespace = service.namespace().unwrap_or_default();
            let master = service_namespace == "default" && service.name_any() == "kubernetes";
            if master || (links && service_namespace == namespace) {
                sources.services.push(Arc::unwrap_or_clone(service));
            }
        }
        Ok(sources)
    }

    /// Runs the probes that are due, records their outcomes (an `Unhealthy` event for each
    /// failure, as upstream) and asks for a sync when the next one is due.
    async fn run_probes(&self, pod: &Pod, runtime_pod: &RuntimePod, state: &mut PodWorkerState) {
        let now = Timestamp::now();
        let due = state.probes.due(pod, runtime_pod, now);
        if !due.is_empty() {
            let pod_ip = self.pod_ip(pod, runtime_pod);
            let outcomes =
                futures::future::join_all(due.iter().map(|(id, container, kind)| async move {
                    let probe = kind.probe(container)?;
                    let action = Action::of_probe(probe)?;
                    Some(
                        self.run_action(action, container, id, pod_ip, prober::timeout(probe))
                            .await,
                    )
                }))
                .await;
            for ((id, container, kind), outcome) in due.iter().zip(outcomes) {
                let Some(outcome) = outcome else {
                    continue;
                };
                if let Outcome::Failure(message) = &outcome {
                    self.recorder
                        .warning(
                            pod,
                            "Unhealthy",
                            format!("{} probe failed: {message}", kind.name()),
                        )
                        .await;
                }
                state.probes.record(id, container, *kind, &outcome, now);
            }
        }
        if let Some(next) = state.probes.next_due() {
            state.wake_no_later_than(next);
        }
    }

    /// Runs one probe or lifecycle handler; on a node without a pod network (hollow nodes, whose
    /// pod IPs are made up) only exec actions run, and the others count as passed.
    async fn run_action(
        &self,
        action: Action<'_>,
        container: &Container,
        container_id: &str,
        pod_ip: Option<IpAddr>,
        timeout: Duration,
    ) -> Outcome {
        if self.skip_network_probes && !matches!(action, Action::Exec(_)) {
            return Outcome::Success;
        }
        probe_run::run(
            self.runtime.as_ref(),
            action,
            container,
            container_id,
            pod_ip,
            timeout,
        )
        .await
    }

    /// The address probes and HTTP hooks reach the pod at: its IP, or the node's for a
    /// host-network pod.
    fn pod_ip(&self, pod: &Pod, runtime_pod: &RuntimePod) -> Option<IpAddr> {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network {
            self.facts.host_ips.first().copied()
        } else {
            runtime_pod.ips().first().copied()
        }
    }

    /// Stops one run of a container: its `preStop` hook first (within the grace period), then
    /// its stop signal and SIGKILL when the rest of the grace period is over (upstream's
    /// `killContainer`).
    async fn kill_container(
        &self,
        pod: Option<&Pod>,
        run: &crate::pod_runtime::ContainerInfo,
        grace: i64,
        runtime_pod: &RuntimePod,
    ) {
        let mut grace = grace;
        let spec = pod.and_then(|pod| {
            pod.spec.as_ref().and_then(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .find(|c| c.name == run.name)
            })
        });
        let pre_stop = spec.and_then(|c| {
            c.lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
                .and_then(Action::of_handler)
                .map(|action| (c, action))
        });
        if let (Some(pod), Some((container, action)), ContainerState::Running) =
            (pod, pre_stop, run.state)
        {
            let started = std::time::Instant::now();
            let limit = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
            let pod_ip = self.pod_ip(pod, runtime_pod);
            let outcome = tokio::time::timeout(
                limit,
                self.run_action(action, container, &run.id, pod_ip, limit),
            )
            .await;
            match outcome {
                Ok(Outcome::Success) => {}
                Ok(Outcome::Failure(message)) => {
                    self.recorder
                        .warning(
                            pod,
                            "FailedPreStopHook",
                            format!("PreStopHook failed: {message}"),
                        )
                        .await;
                }
                Err(_) => {
                    self.recorder
                        .warning(
                            pod,
                            "FailedPreStopHook",
                            format!("PreStopHook failed: did not finish within {grace}s"),
                        )
                        .await;
                }
            }
            let spent = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
            grace = (grace - spent).max(MIN_GRACE_SECONDS);
        }
        self.stop_container(&run.id, grace).await;
    }

    /// Stops one container within `grace` seconds (its stop signal, then SIGKILL).
    async fn stop_container(&self, id: &str, grace: i64) {
        if let Err(err) = self.runtime.stop_container(id, grace).await {
            if !err.is_not_found() {
                tracing::warn!(container = %id, "stopping: {err}");
            }
        }
    }

    /// Stops every running container of the pod (regular containers first, then sidecars and
    /// init containers), in parallel within the grace period, then its sandboxes.
    pub async fn kill_pod(&self, pod: Option<&Pod>, runtime_pod: &RuntimePod) {
        let grace = grace_seconds(pod);
        let sidecars: Vec<String> = pod
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.init_containers.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect();
        let running: Vec<_> = runtime_pod
            .containers
            .iter()
            .filter(|c| {
                matches!(
                    c.state,
                    ContainerState::Running | ContainerState::Unknown | ContainerState::Created
                )
            })
            .collect();
        for second_wave in [false, true] {
            let stops = running
                .iter()
                .filter(|c| sidecars.contains(&c.name) == second_wave)
                .map(|c| {
                    let grace = if pod.is_some() {
                        grace
                    } else {
                        c.termination_grace_period
                            .unwrap_or(grace)
                            .max(MIN_GRACE_SECONDS)
                    };
                    async move {
                        if let Some(pod) = pod {
                            self.recorder
                                .normal(pod, "Killing", format!("Stopping container {}", c.name))
                                .await;
                        }
                        self.kill_container(pod, c, grace, runtime_pod).await;
                    }
                });
            futures::future::join_all(stops).await;
        }
        for sandbox in runtime_pod.sandboxes.iter().filter(|s| s.ready) {
            if let Err(err) = self.runtime.stop_pod_sandbox(&sandbox.id).await {
                if !err.is_not_found() {
                    tracing::warn!(sandbox = %sandbox.id, "stopping: {err}");
                }
            }
        }
    }

    /// Removes runs beyond the kept ones and sandboxes that are neither the newest nor
    /// holding a kept run.
    async fn collect_garbage(&self, runtime_pod: &RuntimePod) {
        let mut kept: HashMap<&str, usize> = HashMap::new();
        let mut in_use = std::collections::HashSet::new();
        for run in &runtime_pod.containers {
            let count = kept.entry(run.name.as_str()).or_default();
            *count += 1;
            if *count > RUNS_KEPT && run.state == ContainerState::Exited {
                if let Err(err) = self.runtime.remove_container(&run.id).await {
                    if !err.is_not_found() {
                        tracing::debug!(container = %run.id, "removing: {err}");
                    }
                }
            } else {
                in_use.insert(run.sandbox_id.as_str());
            }
        }
        for (index, sandbox) in runtime_pod.sandboxes.iter().enumerate() {
            if index > 0 && !sandbox.ready && !in_use.contains(sandbox.id.as_str()) {
                if let Err(err) = self.runtime.remove_pod_sandbox(&sandbox.id).await {
                    if !err.is_not_found() {
                        tracing::debug!(sandbox = %sandbox.id, "removing: {err}");
                    }
                }
            }
        }
    }

    /// Computes the pod's status and writes it when it changed.
    async fn write_status(
        &self,
        pod: &Pod,
        runtime_pod: &RuntimePod,
        state: &mut PodWorkerState,
        terminal: bool,
    ) -> bool {
        let mut probes = state.probes.state(pod, runtime_pod);
        if let Some(gate) = &self.readiness_gate {
            let now = Timestamp::now();
            if let Some(next) =
                readiness_gate::hold_back(gate.as_ref(), pod, runtime_pod, &mut probes, now)
            {
                state.wake_no_later_than(next);
            }
        }
        let inputs = StatusInputs {
            runtime: runtime_pod,
            runtime_name: &self.facts.runtime_name,
            host_ips: &self.facts.host_ips,
            waiting: &state.waiting,
            probes: &probes,
            terminal,
            now: crate::clock::now(),
        };
        let desired = pod_status(pod, &inputs);
        let unchanged = pod.status.as_ref() == Some(&desired)
            || state
                .last_write
                .as_ref()
                .is_some_and(|(written, answer)| *written == desired && *answer == pod.status);
        if unchanged {
            return true;
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let params = PatchParams::default();
        match k3rs_runtime::status::write(
            &api,
            &pod.name_any(),
            pod.status.as_ref(),
            &desired,
            &params,
        )
        .await
        {
            Ok(k3rs_runtime::status::Written::Updated(written)) => {
                state.last_write = Some((desired, written.status));
                true
            }
            Ok(k3rs_runtime::status::Written::Unchanged) => true,
            Ok(k3rs_runtime::status::Written::Gone) => false,
            Err(err) => {
                tracing::warn!(pod = %pod_key(pod), "writing status: {err}");
                state.wake_no_later_than(in_seconds(1));
                false
            }
        }
    }

    /// A pod with a `deletionTimestamp`: stop its containers within the grace period, write
    /// its final status, then delete it for good (grace period 0, uid precondition), as the
    /// kubelet's status manager does.
    async fn terminate(&self, pod: &Pod, state: &mut PodWorkerState) {
        if state.deleted {
            return;
        }
        let uid = pod.uid().unwrap_or_default();
        let runtime_pod = read_pod(self.runtime.as_ref(), &uid)
            .await
            .unwrap_or_default();
        self.kill_pod(Some(pod), &runtime_pod).await;
        let runtime_pod = self.reread(&uid, runtime_pod).await;
        // The final status is a courtesy to watchers: one the server refuses does not hold up
        // the deletion.
        self.write_status(pod, &runtime_pod, state, true).await;
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => state.deleted = true,
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                state.deleted = true;
            }
            Err(err) => {
                tracing::warn!(pod = %pod_key(pod), "deleting: {err}; will retry");
                state.wake_no_later_than(in_seconds(1));
            }
        }
    }

    /// Removes everything of a pod the API no longer has: containers (stopped within the grace
    /// period they were created with), sandboxes, volumes.
    pub async fn clean_up(&self, uid: &str) {
        let runtime_pod = match read_pod(self.runtime.as_ref(), uid).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(pod_uid = %uid, "reading the runtime: {err}");
                return;
            }
        };
        self.kill_pod(None, &runtime_pod).await;
        for run in &runtime_pod.containers {
            if let Err(err) = self.runtime.remove_container(&run.id).await {
                if !err.is_not_found() {
                    tracing::warn!(container = %run.id, "removing: {err}");
                }
            }
        }
        for sandbox in &runtime_pod.sandboxes {
            if let Err(err) = self.runtime.remove_pod_sandbox(&sandbox.id).await {
                if !err.is_not_found() {
                    tracing::warn!(sandbox = %sandbox.id, "removing: {err}");
                }
            }
        }
        if let Err(err) = self.volumes.tear_down(uid).await {
            tracing::warn!(pod_uid = %uid, "removing volumes: {err}");
        }
        self.cgroups.remove_pod(uid);
    }
}

fn in_seconds(seconds: u64) -> Timestamp {
    crate::clock::plus_seconds(Timestamp::now(), seconds)
}
