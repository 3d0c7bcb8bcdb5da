//! [`Kubelet`]: the node agent of `k3rs server` and `k3rs agent` — the node registered and
//! heartbeating ([`crate::node`]), its readiness following the runtime's, the pod network set
//! up for the node's pod CIDR, and one worker per pod bound to the node.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k3rs_runtime::events::{EventType, Recorder};
use k3rs_runtime::informer::{Change, Informers};
use k3rs_runtime::supervisor::{supervise, Supervised};
use k3rs_runtime::Health;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::node::{NodeAgent, NodeConfig, NodeReadiness};
use crate::pod_cgroups::PodCgroups;
use crate::pod_sync::{NodeFacts, PodContext};
use crate::pod_workers::{relist, PodWorkers};
use crate::readiness_gate::ReadinessGate;
use crate::runtime::{Runtime, RuntimeReadiness};
use crate::sandbox_config::NodeSettings;
use crate::volumes::{VolumeManager, Volumes};
use crate::KubeletError;

/// How often the runtime's readiness is checked.
const READINESS_EVERY: Duration = Duration::from_secs(5);
/// How often it is checked while the node is not Ready.
const READINESS_UNTIL_READY: Duration = Duration::from_millis(200);

/// The node's pod network, set up once the node has a pod CIDR (the CNI configuration the
/// runtime reads, masquerading); the kubelet calls it again when the CIDR changes.
#[async_trait]
pub trait PodNetwork: Send + Sync + fmt::Debug + 'static {
    async fn set_pod_cidr(
        &self,
        pod_cidr: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// What a kubelet needs to know about its node and where it keeps things.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The Node to register: name, labels, capacity, addresses, machine identity.
    pub node: NodeConfig,
    pub settings: NodeSettings,
    /// The kubelet's directory (`<data-dir>/agent/kubelet`): pod volumes under `pods/`.
    pub root_dir: PathBuf,
    pub host_ips: Vec<IpAddr>,
    /// Allocatable memory in bytes (the node's `status.allocatable` is in `node`).
    pub allocatable_memory: i64,
    /// The pods' cgroups (`PodCgroups::none()` where the runtime runs nothing).
    pub pod_cgroups: Arc<PodCgroups>,
    /// Why the runtime's process is down (`None` while it runs), when the kubelet's host
    /// supervises it: the node turns NotReady at once rather than at the next check.
    pub runtime_down: Option<watch::Receiver<Option<String>>>,
}

/// What a kubelet drives: the runtime and the pod network, and — for hollow nodes, which must
/// not touch the disk — its own volume code and a readiness source beside the probes.
#[derive(Clone, Debug)]
pub struct KubeletParts {
    pub runtime: Arc<dyn Runtime>,
    pub network: Arc<dyn PodNetwork>,
    /// `None`: the real volumes, under `<root_dir>/pods`.
    pub volumes: Option<Arc<dyn VolumeManager>>,
    /// `None`: readiness is the probes' alone.
    pub readiness_gate: Option<Arc<dyn ReadinessGate>>,
    /// True where pod IPs lead nowhere (hollow nodes): HTTP, TCP and gRPC probes and hooks are
    /// not sent and count as passed; exec ones still go through the runtime.
    pub skip_network_probes: bool,
}

/// A running kubelet. Dropping it stops it; containers keep running.
#[derive(Debug)]
pub struct Kubelet {
    agent: NodeAgent,
    tasks: Vec<Supervised>,
    health: Arc<Health>,
}

/// The Ready condition's message for a runtime that is not ready, in upstream's words.
pub fn readiness_message(readiness: &RuntimeReadiness) -> NodeReadiness {
    let mut problems = Vec::new();
    if !readiness.runtime.ready {
        problems.push(format!(
            "container runtime is down: RuntimeReady=false reason:{} message:{}",
            readiness.runtime.reason, readiness.runtime.message
        ));
    }
    if !readiness.network.ready {
        problems.push(format!(
            "container runtime network not ready: NetworkReady=false reason:{} message:{}",
            readiness.network.reason, readiness.network.message
        ));
    }
    if problems.is_empty() {
        NodeReadiness::Ready
    } else {
        NodeReadiness::NotReady(problems.join(", "))
    }
}

/// The first IPv4 pod CIDR of a Node.
fn pod_cidr(node: &Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .find(|cidr| !cidr.contains(':'))
        .cloned()
}

impl Kubelet {
    /// Registers the node and starts serving the pods bound to it.
    pub async fn start(
        client: Client,
        config: KubeletConfig,
        runtime: Arc<dyn Runtime>,
        network: Arc<dyn PodNetwork>,
    ) -> Result<Kubelet, KubeletError> {
        let parts = KubeletParts {
            runtime,
            network,
            volumes: None,
            readiness_gate: None,
            skip_network_probes: false,
        };
        Kubelet::start_with(client, config, parts).await
    }

    /// [`Kubelet::start`] with every part given ([`KubeletParts`]).
    pub async fn start_with(
        client: Client,
        mut config: KubeletConfig,
        parts: KubeletParts,
    ) -> Result<Kubelet, KubeletError> {
        let KubeletParts {
            runtime,
            network,
            volumes,
            readiness_gate,
            skip_network_probes,
        } = parts;
        let version = runtime
            .version()
            .await
            .map_err(|source| KubeletError::Runtime {
                node: config.node.name.clone(),
                source,
            })?;
        config.node.node_info.container_runtime_version = version.to_string();
        let initial = match runtime.readiness().await {
            Ok(readiness) => readiness_message(&readiness),
            Err(err) => NodeReadiness::NotReady(format!(
                "container runtime status check may not have completed yet: {err}"
            )),
        };
        let (readiness, readiness_seen) = watch::channel(initial);
        let health = Arc::new(Health::default());
        let node_name = config.node.name.clone();
        let agent = NodeAgent::start(
            client.clone(),
            config.node.clone(),
            readiness_seen,
            health.clone(),
        )
        .await?;

        let allocatable: crate::volumes::NodeAllocatable = config
            .node
            .allocatable
            .iter()
            .map(|(name, quantity)| {
                (
                    name.clone(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(quantity.clone()),
                )
            })
            .collect();
        // Watches retry with the kubelet's own back-off: a node carries on within seconds of a
        // server restart.
        let informers =
            Informers::with_watch_backoff(client.clone(), health.clone(), crate::retry::backoff());
        let pods = informers.get_selected::<Pod>(&format!("spec.nodeName={node_name}"));
        let node = informers.get_selected::<Node>(&format!("metadata.name={node_name}"));
        let services = informers.get::<Service>();
        // Events are written in the background, as upstream's broadcaster: a pod's start
        // never waits for them.
        let recorder = Recorder::queued(client.clone(), "kubelet");
        let ctx = Arc::new(PodContext {
            runtime: runtime.clone(),
            client: client.clone(),
            recorder: recorder.clone(),
            volumes: volumes.unwrap_or_else(|| {
                Arc::new(Volumes::new(
                    client.clone(),
                    config.root_dir.join("pods"),
                    allocatable.clone(),
                ))
            }),
            readiness_gate,
            skip_network_probes,
            settings: Arc::new(config.settings.clone()),
            cgroups: config.pod_cgroups.clone(),
            facts: NodeFacts {
                host_ips: config.host_ips.clone(),
                allocatable,
                allocatable_memory: config.allocatable_memory,
                runtime_name: version.name.clone(),
            },
            services: services.clone(),
        });
        let workers = PodWorkers::new(ctx);
        pods.on_change({
            let workers = workers.clone();
            move |change| match change {
                Change::Applied { new, .. } => PodWorkers::update(&workers, new.clone()),
                Change::Deleted(old) => {
                    if let Some(uid) = old.uid() {
                        PodWorkers::gone(&workers, &uid);
                    }
                }
            }
        });
        let (cidr_sender, cidr) = watch::channel(None::<String>);
        node.on_change(move |change| {
            let found = match change {
                Change::Applied { new, .. } => pod_cidr(new),
                Change::Deleted(_) => None,
            };
            cidr_sender.send_if_modified(|current| {
                let changed = *current != found && found.is_some();
                if changed {
                    current.clone_from(&found);
                }
                changed
            });
        });
        informers.start();

        let mut tasks = Vec::new();
        // The pod network follows the node's pod CIDR.
        tasks.push(Supervised(supervise(
            format!("kubelet {node_name}: pod network"),
            health.clone(),
            {
                let cidr = cidr.clone();
                let runtime = runtime.clone();
                let network = network.clone();
                move || follow_pod_cidr(cidr.clone(), runtime.clone(), network.clone())
            },
        )));
        // Readiness follows the runtime's.
        tasks.push(Supervised(supervise(
            format!("kubelet {node_name}: runtime readiness"),
            health.clone(),
            {
                let follow = FollowReadiness {
                    runtime: runtime.clone(),
                    readiness: readiness.clone(),
                    runtime_down: config.runtime_down.clone(),
                    recorder: recorder.clone(),
                    node: node_name.clone(),
                };
                move || follow_readiness(follow.clone())
            },
        )));
        // Runtime changes wake pod workers; leftovers of deleted pods are removed, once the
        // pod cache holds every pod of the node.
        tasks.push(Supervised(supervise(
            format!("kubelet {node_name}: relist"),
            health.clone(),
            {
                let workers = workers.clone();
                let pods = pods.clone();
                let runtime = runtime.clone();
                move || {
                    let workers = workers.clone();
                    let pods = pods.clone();
                    let runtime = runtime.clone();
                    async move {
                        pods.wait_synced().await;
                        let cache = pods.clone();
                        relist(workers, runtime, move |uid| {
                            cache
                                .cache()
                                .all()
                                .iter()
                                .any(|p| p.uid().as_deref() == Some(uid))
                        })
                        .await;
                    }
                }
            },
        )));
        // The informers and workers live as long as the tasks: held by this one, which never
        // ends by itself.
        tasks.push(Supervised(supervise(
            format!("kubelet {node_name}: keeper"),
            health.clone(),
            {
                let keep = Arc::new((informers, workers, readiness));
                move || {
                    let keep = keep.clone();
                    async move {
                        let _keep = keep;
                        std::future::pending::<()>().await;
                    }
                }
            },
        )));
        tracing::info!(node = %node_name, runtime = %version, "kubelet started");
        Ok(Kubelet {
            agent,
            tasks,
            health,
        })
    }

    /// The registered Node's uid.
    pub fn node_uid(&self) -> &str {
        self.agent.uid()
    }

    /// Stops renewing the Lease and writing the Node's status, as a kubelet that lost its
    /// heartbeat would; pods are still served.
    pub fn pause_heartbeats(&self) {
        self.agent.pause_heartbeats();
    }

    /// Renews the Lease and writes the Node's status again, at once and then every interval.
    pub fn resume_heartbeats(&self) {
        self.agent.resume_heartbeats();
    }

    /// Whether every task of the kubelet runs.
    pub fn health(&self) -> Result<(), k3rs_runtime::health::Unhealthy> {
        self.health.check()
    }

    /// Stops the kubelet (not the containers) and waits until its tasks have ended.
    pub async fn stop(self) {
        self.agent.stop().await;
        for task in self.tasks {
            task.stop().await;
        }
        self.health.wait_stopped().await;
    }
}

async fn follow_pod_cidr(
    mut cidr: watch::Receiver<Option<String>>,
    runtime: Arc<dyn Runtime>,
    network: Arc<dyn PodNetwork>,
) {
    loop {
        let current = cidr.borrow_and_update().clone();
        if let Some(current) = current {
            let mut failures = 0u32;
            loop {
                let network_done = network.set_pod_cidr(&current).await;
                let runtime_done = runtime.update_pod_cidr(&current).await;
                match (network_done, runtime_done) {
                    (Ok(()), Ok(())) => {
                        tracing::info!(pod_cidr = %current, "pod network configured");
                        break;
                    }
                    (network_done, runtime_done) => {
                        failures = failures.saturating_add(1);
                        if let Err(err) = network_done {
                            tracing::warn!(pod_cidr = %current, "setting up the pod network: {err}");
                        }
                        if let Err(err) = runtime_done {
                            tracing::warn!(pod_cidr = %current, "telling the runtime the pod CIDR: {err}");
                        }
                        tokio::time::sleep(crate::retry::delay_after(failures)).await;
                    }
                }
            }
        }
        if cidr.changed().await.is_err() {
            return;
        }
    }
}

/// What the readiness task needs.
#[derive(Clone)]
struct FollowReadiness {
    runtime: Arc<dyn Runtime>,
    readiness: watch::Sender<NodeReadiness>,
    runtime_down: Option<watch::Receiver<Option<String>>>,
    recorder: Recorder,
    node: String,
}

/// The Node as events name it (upstream's `nodeRef`: the node's name as its uid, no namespace).
fn node_reference(node: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.to_owned()),
        uid: Some(node.to_owned()),
        ..ObjectReference::default()
    }
}

/// Keeps the node's readiness following the runtime's: checked every [`READINESS_EVERY`] and
/// at once when the runtime's process goes down or comes back. A change of readiness is an
/// event on the Node, as upstream's `NodeReady`/`NodeNotReady`; the runtime's process going
/// down is a warning with its cause.
async fn follow_readiness(mut follow: FollowReadiness) {
    let mut was_down = None::<String>;
    loop {
        let down = follow
            .runtime_down
            .as_mut()
            .and_then(|down| down.borrow_and_update().clone());
        if down != was_down {
            if let Some(why) = &down {
                follow
                    .recorder
                    .publish(
                        node_reference(&follow.node),
                        EventType::Warning,
                        "ContainerRuntimeDown",
                        why.clone(),
                    )
                    .await;
            }
            was_down.clone_from(&down);
        }
        let now = match down {
            Some(why) => NodeReadiness::NotReady(format!("container runtime is down: {why}")),
            None => match follow.runtime.readiness().await {
                Ok(found) => readiness_message(&found),
                Err(err) => NodeReadiness::NotReady(format!("container runtime is down: {err}")),
            },
        };
        let mut became = None;
        follow.readiness.send_if_modified(|current| {
            let changed = *current != now;
            if changed {
                tracing::info!(readiness = ?now, "node readiness changed");
                if matches!(current, NodeReadiness::Ready) != matches!(now, NodeReadiness::Ready) {
                    became = Some(matches!(now, NodeReadiness::Ready));
                }
                *current = now;
            }
            changed
        });
        if let Some(ready) = became {
            let reason = if ready { "NodeReady" } else { "NodeNotReady" };
            follow
                .recorder
                .publish(
                    node_reference(&follow.node),
                    EventType::Normal,
                    reason,
                    format!("Node {} status is now: {reason}", follow.node),
                )
                .await;
        }
        // Until the node is Ready it is checked often, as upstream's fast status updates at
        // start-up: Ready follows the network's set-up within a fraction of a second.
        let every = if matches!(*follow.readiness.borrow(), NodeReadiness::Ready) {
            READINESS_EVERY
        } else {
            READINESS_UNTIL_READY
        };
        match follow.runtime_down.as_mut() {
            Some(down) => {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    changed = down.changed() => {
                        if changed.is_err() {
                            follow.runtime_down = None;
                        }
                    }
                }
            }
            None => tokio::time::sleep(every).await,
        }
    }
}
