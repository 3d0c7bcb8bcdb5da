//! The node side of the kubelet that does not depend on pods: registering the `Node` (or taking
//! over an existing one), then two supervised heartbeats — the Lease `kube-node-lease/<node>`
//! and the Node's status — until stopped. Used by the real kubelet and by hollow nodes alike.

mod heartbeat;
mod lease;
pub mod object;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k3rs_runtime::supervisor::{supervise, Supervised};
use k3rs_runtime::Health;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSystemInfo, Taint};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::retry::{timed, Patience};
use crate::{clock, KubeletError};
use heartbeat::{Heartbeat, NodeStatusReporter};
pub use lease::NODE_LEASE_NAMESPACE;
use lease::{LeaseHolder, LeaseKeeper};

/// How long starting a node keeps retrying a step that fails for a reason that may pass (no
/// connection, a server error).
const START_PATIENCE: Duration = Duration::from_secs(30);

/// What the Node object says about a node and how often it reports. [`NodeConfig::new`] gives
/// the kubelet's defaults; change fields directly.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The Node's name (a DNS subdomain), also its Lease's name and `kubernetes.io/hostname`.
    pub name: String,
    /// Labels on top of the kubelet's own; these win.
    pub labels: BTreeMap<String, String>,
    /// `node.kubernetes.io/instance-type`, when the node has one.
    pub instance_type: Option<String>,
    /// `status.capacity`, as quantities.
    pub capacity: BTreeMap<String, String>,
    /// `status.allocatable`: capacity minus what the system reserves.
    pub allocatable: BTreeMap<String, String>,
    /// `spec.taints` when the node registers (`--register-with-taints`); an existing Node keeps
    /// its taints, as with the kubelet.
    pub taints: Vec<Taint>,
    /// `status.addresses` (InternalIP, Hostname, …).
    pub addresses: Vec<NodeAddress>,
    /// `status.nodeInfo` (the boot ID and kubelet version are filled in).
    pub node_info: NodeSystemInfo,
    /// The kubelet's port, published in `status.daemonEndpoints`.
    pub kubelet_port: i32,
    /// The Lease's `leaseDurationSeconds`. Default 40, the kubelet's.
    pub lease_duration_seconds: i32,
    /// How often the Lease is renewed. Default 10 s.
    pub heartbeat_interval: Duration,
    /// How often the Node's status is written. Default 10 s, the kubelet's
    /// `nodeStatusUpdateFrequency`.
    pub status_update_interval: Duration,
}

impl NodeConfig {
    /// The kubelet's defaults for a node called `name` (nothing about the machine yet).
    pub fn new(name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            labels: BTreeMap::new(),
            instance_type: None,
            capacity: BTreeMap::new(),
            allocatable: BTreeMap::new(),
            taints: Vec::new(),
            addresses: Vec::new(),
            node_info: NodeSystemInfo {
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                ..NodeSystemInfo::default()
            },
            kubelet_port: 10250,
            lease_duration_seconds: 40,
            heartbeat_interval: Duration::from_secs(10),
            status_update_interval: Duration::from_secs(10),
        }
    }

    /// Why this configuration cannot describe a node, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 253
            && self.name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !name_ok {
            return Some("the name must be a lowercase DNS subdomain".into());
        }
        if self.lease_duration_seconds <= 0 {
            return Some("lease_duration_seconds must be positive".into());
        }
        if self.heartbeat_interval.is_zero() || self.status_update_interval.is_zero() {
            return Some("the heartbeat and status intervals must be positive".into());
        }
        None
    }
}

/// Whether the node can run pods, as its `Ready` condition reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeReadiness {
    Ready,
    /// Not ready, with the condition's message (upstream's wording, e.g. `container runtime
    /// network not ready: NetworkReady=false reason:NetworkPluginNotReady message:…`).
    NotReady(String),
}

/// A registered node with its heartbeats running. Dropping it stops them (the Node object
/// stays, as when a kubelet dies).
#[derive(Debug)]
pub struct NodeAgent {
    name: String,
    uid: String,
    paused: watch::Sender<bool>,
    tasks: Vec<Supervised>,
}

impl NodeAgent {
    /// Registers the node (creates the Node, or takes over an existing one of the same name),
    /// writes its status and its Lease, then starts the Lease and status heartbeats, which
    /// report to `health`. The status follows `readiness`, and is written at once when it
    /// changes.
    ///
    /// Each step is retried for up to 30 s while it fails for a reason that may pass; a
    /// configuration the server rejects fails at once.
    pub async fn start(
        client: Client,
        config: NodeConfig,
        readiness: watch::Receiver<NodeReadiness>,
        health: Arc<Health>,
    ) -> Result<NodeAgent, KubeletError> {
        if let Some(reason) = config.problem() {
            return Err(KubeletError::Config {
                node: config.name.clone(),
                reason,
            });
        }
        let boot_id = match config.node_info.boot_id.as_str() {
            "" => object::random_boot_id(),
            given => given.to_owned(),
        };
        let mut patience = Patience::new(START_PATIENCE);
        let node = loop {
            let current = readiness.borrow().clone();
            match register(&client, &config, &boot_id, &current).await {
                Ok(node) => break node,
                Err(err) if patience.wait_after(&err).await => {}
                Err(err) => return Err(err),
            }
        };
        let mut reporter = Heartbeat::NodeStatus(Box::new(NodeStatusReporter::new(
            client.clone(),
            config.clone(),
            boot_id,
            readiness,
        )));
        beat_patiently(&mut reporter).await?;
        let uid = node.uid().unwrap_or_default();
        let mut lease = Heartbeat::Lease(Box::new(LeaseKeeper::new(
            client.clone(),
            LeaseHolder {
                node: config.name.clone(),
                node_uid: uid.clone(),
                duration_seconds: config.lease_duration_seconds,
            },
        )));
        beat_patiently(&mut lease).await?;

        let (paused, _) = watch::channel(false);
        let beat = |what: &str, heartbeat: Heartbeat, interval: Duration| {
            let paused = paused.subscribe();
            Supervised(supervise(
                format!("node {}: {what}", config.name),
                health.clone(),
                move || heartbeat::run(heartbeat.clone(), interval, paused.clone()),
            ))
        };
        let tasks = vec![
            beat("lease", lease, config.heartbeat_interval),
            beat("node status", reporter, config.status_update_interval),
        ];
        Ok(NodeAgent {
            name: config.name,
            uid,
            paused,
            tasks,
        })
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Node's uid when it registered.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Stops renewing the Lease and writing the Node's status, as a kubelet that lost its
    /// heartbeat would. For node lifecycle tests.
    pub fn pause_heartbeats(&self) {
        self.paused.send_replace(true);
    }

    /// Renews the Lease and writes the Node's status again, at once and then every interval.
    pub fn resume_heartbeats(&self) {
        self.paused.send_replace(false);
    }

    /// Stops the heartbeats and waits until they have ended.
    pub async fn stop(self) {
        for task in self.tasks {
            task.stop().await;
        }
    }
}

/// Creates the Node with its status, or takes over the existing one (the kubelet's labels).
async fn register(
    client: &Client,
    config: &NodeConfig,
    boot_id: &str,
    readiness: &NodeReadiness,
) -> Result<Node, KubeletError> {
    let api: Api<Node> = Api::all(client.clone());
    let error = |source| KubeletError::Register {
        node: config.name.clone(),
        source,
    };
    let desired = object::node_to_register(config, boot_id, readiness, clock::now());
    let call = async {
        match api.create(&PostParams::default(), &desired).await {
            Ok(node) => Ok(node),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::info!(node = %config.name, "the node exists; taking it over");
                api.patch(
                    &config.name,
                    &PatchParams::default(),
                    &Patch::Merge(object::takeover_patch(config)),
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
async fn beat_patiently(heartbeat: &mut Heartbeat) -> Result<(), KubeletError> {
    let mut patience = Patience::new(START_PATIENCE);
    loop {
        match heartbeat.beat().await {
            Ok(()) => return Ok(()),
            Err(err) if patience.wait_after(&err).await => {}
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_name_and_intervals() {
        assert_eq!(NodeConfig::new("node-1.example").problem(), None);
        for bad in ["", "Node", "-a", "a..b", "a_b"] {
            assert!(NodeConfig::new(bad).problem().is_some(), "{bad}");
        }
        let mut config = NodeConfig::new("a");
        config.heartbeat_interval = Duration::ZERO;
        assert!(config.problem().is_some());
        config.heartbeat_interval = Duration::from_secs(1);
        assert_eq!(config.problem(), None);
        config.lease_duration_seconds = 0;
        assert!(config.problem().is_some());
    }
}
