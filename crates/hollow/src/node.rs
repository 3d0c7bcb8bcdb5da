//! [`HollowNode`]: registering the Node, then running its three tasks (Lease, Node status,
//! pods) until it is stopped or dropped.

use std::net::Ipv4Addr;
use std::sync::Arc;

use k3rs_kubelet::node::{object, NodeAgent, NodeConfig, NodeReadiness};
use k3rs_runtime::supervisor::{supervise, Supervised};
use k3rs_runtime::Health;
use k8s_openapi::api::core::v1::{NodeAddress, NodeSystemInfo};
use kube::Client;
use tokio::sync::watch;

use crate::fake_network;
use crate::pod_worker::{self, NodeWatches, PodWorkerConfig};
use crate::{HollowError, HollowNodeConfig};

/// A running hollow node: a fake kubelet for the `Node` it registered. Dropping it stops it
/// (the Node object stays, as when a kubelet dies).
#[derive(Debug)]
pub struct HollowNode {
    name: String,
    internal_ip: Ipv4Addr,
    /// Registration and heartbeats: the kubelet's own node agent.
    agent: NodeAgent,
    /// Always ready: a hollow node has no runtime that could fail.
    _readiness: watch::Sender<NodeReadiness>,
    /// The pod loop (which owns the node's informers).
    pods: Supervised,
    health: Arc<Health>,
}

/// What the kubelet's node agent registers for a hollow node: its capacity (all of it
/// allocatable), made-up addresses and machine identity, `instance-type=hollow`.
fn node_config(config: &HollowNodeConfig, internal_ip: Ipv4Addr) -> NodeConfig {
    let mut node = NodeConfig::new(config.name.clone());
    node.labels = config.labels.clone();
    node.instance_type = Some("hollow".to_owned());
    node.capacity = config.capacity.clone();
    node.allocatable = config.capacity.clone();
    node.taints = config.taints.clone();
    node.addresses = vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: internal_ip.to_string(),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: config.name.clone(),
        },
    ];
    node.node_info = NodeSystemInfo {
        architecture: "amd64".into(),
        container_runtime_version: format!("hollow://{}", env!("CARGO_PKG_VERSION")),
        kernel_version: "hollow".into(),
        machine_id: object::machine_id(&config.name),
        operating_system: "linux".into(),
        os_image: "k3rs hollow node".into(),
        system_uuid: object::name_uuid(&config.name),
        ..NodeSystemInfo::default()
    };
    node.lease_duration_seconds = config.lease_duration_seconds;
    node.heartbeat_interval = config.heartbeat_interval;
    node.status_update_interval = config.status_update_interval;
    node
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
        // The node agent checks the configuration before anything is sent.
        let addresses = fake_network::addresses_for(&config.name);
        let health = Arc::new(Health::default());
        let (readiness, ready) = watch::channel(NodeReadiness::Ready);
        let agent = NodeAgent::start(
            client.clone(),
            node_config(&config, addresses.internal_ip),
            ready,
            health.clone(),
        )
        .await?;
        // Every task is supervised by the runtime: one that ends or panics is logged, reported
        // in the node's health and started again with back-off, from a copy of its start state.
        let watches = Arc::new(NodeWatches::start(
            client.clone(),
            &config.name,
            health.clone(),
        ));
        let pod_config = PodWorkerConfig {
            node: config.name.clone(),
            host_ip: addresses.internal_ip,
            fallback_pod_range: addresses.fallback_pod_range,
            termination_delay: config.termination_delay,
        };
        let pods = Supervised(supervise(
            format!("hollow node {}: pods", config.name),
            health.clone(),
            move || pod_worker::run(client.clone(), pod_config.clone(), watches.clone()),
        ));
        tracing::info!(node = %config.name, ip = %addresses.internal_ip, "hollow node started");
        Ok(HollowNode {
            name: config.name,
            internal_ip: addresses.internal_ip,
            agent,
            _readiness: readiness,
            pods,
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
        self.agent.pause_heartbeats();
    }

    /// Renews the Lease and writes the Node's status again, at once and then every interval.
    pub fn resume_heartbeats(&self) {
        self.agent.resume_heartbeats();
    }

    /// Stops every task of the node and waits until they have ended. The Node, its Lease and
    /// its pods stay as they are (a dead kubelet).
    pub async fn stop(self) {
        self.agent.stop().await;
        self.pods.stop().await;
        // The informers' tasks go with the pod loop that owns them.
        self.health.wait_stopped().await;
    }
}
