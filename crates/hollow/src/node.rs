//! [`HollowNode`]: registering the Node, then running its three tasks (Lease, Node status,
//! pods) until it is stopped or dropped.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k3rs_runtime::supervisor::{supervise, Supervised};
use k3rs_runtime::Health;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::fake_network;
use crate::heartbeat::{self, Heartbeat, NodeStatusReporter};
use crate::lease::{LeaseHolder, LeaseKeeper};
use crate::node_object::{self, NodeIdentity};
use crate::pod_worker::{self, NodeWatches, PodWorkerConfig};
use crate::retry::{timed, Patience};
use crate::{clock, HollowError, HollowNodeConfig};

/// How long [`HollowNode::start`] keeps retrying a step that fails for a reason that may pass
/// (no connection, a server error).
const START_PATIENCE: Duration = Duration::from_secs(30);

/// A running hollow node: a fake kubelet for the `Node` it registered. Dropping it stops it
/// (the Node object stays, as when a kubelet dies).
#[derive(Debug)]
pub struct HollowNode {
    name: String,
    internal_ip: Ipv4Addr,
    paused: watch::Sender<bool>,
    /// The heartbeats and the pod loop (which owns the node's informers).
    tasks: Vec<Supervised>,
    health: Arc<Health>,
}

impl HollowNode {
    /// Registers the node (creates the Node, or takes over an existing one of the same name),
    /// writes its status and its Lease, then starts its tasks: the Lease and Node status
    /// heartbeats and the pod loop. When it returns, the node is Ready and its Lease is fresh.
    ///
    /// Each step is retried for up to 30 s while it fails for a reason that may pass; a
    /// configuration the server rejects fails at once. Must be called within a Tokio runtime.
    pub async fn start(
        client: Client,
        config: HollowNodeConfig,
    ) -> Result<HollowNode, HollowError> {
        if let Some(reason) = config.problem() {
            return Err(HollowError::Config {
                node: config.name.clone(),
                reason,
            });
        }
        let addresses = fake_network::addresses_for(&config.name);
        let identity = NodeIdentity::new(addresses.internal_ip);

        let mut patience = Patience::new(START_PATIENCE);
        let node = loop {
            match register(&client, &config, &identity).await {
                Ok(node) => break node,
                Err(err) if patience.wait_after(&err).await => {}
                Err(err) => return Err(err),
            }
        };
        let mut reporter = Heartbeat::NodeStatus(NodeStatusReporter::new(
            client.clone(),
            config.clone(),
            identity.clone(),
        ));
        beat_patiently(&mut reporter).await?;
        let mut lease = Heartbeat::Lease(LeaseKeeper::new(
            client.clone(),
            LeaseHolder {
                node: config.name.clone(),
                node_uid: node.uid().unwrap_or_default(),
                duration_seconds: config.lease_duration_seconds,
            },
        ));
        beat_patiently(&mut lease).await?;

        let (paused, _) = watch::channel(false);
        // Every task is supervised by the runtime: one that ends or panics is logged, reported
        // in the node's health and started again with back-off, from a copy of its start state.
        let health = Arc::new(Health::default());
        let watches = Arc::new(NodeWatches::start(
            client.clone(),
            &config.name,
            health.clone(),
        ));
        let beat = |what: &str, heartbeat: Heartbeat, interval: Duration| {
            let paused = paused.subscribe();
            Supervised(supervise(
                format!("hollow node {}: {what}", config.name),
                health.clone(),
                move || heartbeat::run(heartbeat.clone(), interval, paused.clone()),
            ))
        };
        let pod_config = PodWorkerConfig {
            node: config.name.clone(),
            host_ip: addresses.internal_ip,
            fallback_pod_range: addresses.fallback_pod_range,
            termination_delay: config.termination_delay,
        };
        let tasks = vec![
            beat("lease", lease, config.heartbeat_interval),
            beat("node status", reporter, config.status_update_interval),
            Supervised(supervise(
                format!("hollow node {}: pods", config.name),
                health.clone(),
                move || pod_worker::run(client.clone(), pod_config.clone(), watches.clone()),
            )),
        ];
        tracing::info!(node = %config.name, ip = %addresses.internal_ip, "hollow node started");
        Ok(HollowNode {
            name: config.name,
            internal_ip: addresses.internal_ip,
            paused,
            tasks,
            health,
        })
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Node's (made-up) InternalIP, also every pod's `hostIP`.
    pub fn internal_ip(&self) -> Ipv4Addr {
        self.internal_ip
    }

    /// Whether every task of the node (heartbeats, pod loop, informers) is running; a task that
    /// ended or panicked is down until its restart runs.
    pub fn health(&self) -> Result<(), k3rs_runtime::health::Unhealthy> {
        self.health.check()
    }

    /// Stops renewing the Lease and writing the Node's status, as a kubelet that lost its
    /// heartbeat would; pods are still served. For node lifecycle tests.
    pub fn pause_heartbeats(&self) {
        self.paused.send_replace(true);
    }

    /// Renews the Lease and writes the Node's status again, at once and then every interval.
    pub fn resume_heartbeats(&self) {
        self.paused.send_replace(false);
    }

    /// Stops every task of the node and waits until they have ended. The Node, its Lease and
    /// its pods stay as they are (a dead kubelet).
    pub async fn stop(self) {
        for task in self.tasks {
            task.stop().await;
        }
        // The informers' tasks go with the pod loop that owns them.
        self.health.wait_stopped().await;
    }
}

/// Creates the Node with its status, or takes over the existing one (the kubelet's labels).
async fn register(
    client: &Client,
    config: &HollowNodeConfig,
    identity: &NodeIdentity,
) -> Result<Node, HollowError> {
    let api: Api<Node> = Api::all(client.clone());
    let error = |source| HollowError::Register {
        node: config.name.clone(),
        source,
    };
    let desired = node_object::node_to_register(config, identity, clock::now());
    let call = async {
        match api.create(&PostParams::default(), &desired).await {
            Ok(node) => Ok(node),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::info!(node = %config.name, "the node exists; taking it over");
                api.patch(
                    &config.name,
                    &PatchParams::default(),
                    &Patch::Merge(node_object::takeover_patch(config)),
                )
                .await
                .map_err(error)
            }
            Err(source) => Err(error(source)),
        }
    };
    timed(|| format!("node {}: registering", config.name), call).await
}

/// Beats once, retrying for up to [`START_PATIENCE`].
async fn beat_patiently(heartbeat: &mut Heartbeat) -> Result<(), HollowError> {
    let mut patience = Patience::new(START_PATIENCE);
    loop {
        match heartbeat.beat().await {
            Ok(()) => return Ok(()),
            Err(err) if patience.wait_after(&err).await => {}
            Err(err) => return Err(err),
        }
    }
}
