//! [`HollowNode`]: the kubelet ([`k3rs_kubelet::Kubelet`]) over a fake runtime, fake volumes
//! and a fake pod network, as kubemark's hollow node is the real kubelet over fakes.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use k3rs_kubelet::cgroups::CgroupDriver;
use k3rs_kubelet::node::{object, NodeConfig};
use k3rs_kubelet::pod_cgroups::PodCgroups;
use k3rs_kubelet::sandbox_config::{HostDns, NodeSettings};
use k3rs_kubelet::{Kubelet, KubeletConfig, KubeletParts};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSystemInfo};
use kube::{Api, Client, ResourceExt};

use crate::fake_network::{self, FakePodNetwork};
use crate::fake_runtime::FakeRuntime;
use crate::fake_volumes::FakeVolumes;
use crate::{HollowError, HollowNodeConfig};

/// The fake runtime of every Node a hollow node ran in this process, by the Node's uid: a
/// hollow node started again for the same Node finds its containers still there, as a
/// restarted kubelet finds containerd's (keyed by uid, not name, so that two API servers'
/// nodes of the same name never share one).
static RUNTIMES: Mutex<Option<HashMap<String, Arc<FakeRuntime>>>> = Mutex::new(None);

fn runtimes<T>(with: impl FnOnce(&mut HashMap<String, Arc<FakeRuntime>>) -> T) -> T {
    // A panic elsewhere while holding the lock leaves the map intact: go on with it.
    let mut runtimes = RUNTIMES.lock().unwrap_or_else(PoisonError::into_inner);
    with(runtimes.get_or_insert_with(HashMap::new))
}

/// A running hollow node: the kubelet of the `Node` it registered, over fakes. Dropping it
/// stops it (the Node object stays, as when a kubelet dies; so do its fake containers).
#[derive(Debug)]
pub struct HollowNode {
    name: String,
    internal_ip: Ipv4Addr,
    kubelet: Kubelet,
    runtime: Arc<FakeRuntime>,
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
        // The kubelet sets the runtime's own (`hollow://<version>`).
        container_runtime_version: String::new(),
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

/// The kubelet's configuration for a hollow node. Nothing in it is read from or written to the
/// machine: no resolv.conf (no host DNS), no cgroups (`PodCgroups::none()`, and the fake
/// runtime makes none), a root directory that is never created (the fake
/// volumes write nothing).
fn kubelet_config(config: &HollowNodeConfig, internal_ip: Ipv4Addr) -> KubeletConfig {
    let allocatable_memory = config
        .capacity
        .get("memory")
        .and_then(|m| k3rs_api::quantity::value(m))
        .unwrap_or(0);
    KubeletConfig {
        node: node_config(config, internal_ip),
        settings: NodeSettings {
            node_name: config.name.clone(),
            cluster_dns: vec![std::net::IpAddr::V4(Ipv4Addr::new(10, 43, 0, 10))],
            cluster_domain: "cluster.local".to_owned(),
            host_dns: HostDns::default(),
            pod_logs_dir: PathBuf::from("/hollow").join(&config.name).join("logs"),
            cgroup_driver: CgroupDriver::Systemd,
        },
        root_dir: PathBuf::from("/hollow").join(&config.name),
        host_ips: vec![internal_ip.into()],
        allocatable_memory,
        pod_cgroups: Arc::new(PodCgroups::none()),
        runtime_down: None,
    }
}

/// The uid of the Node called `name`, if the server has one (and answers in time).
async fn existing_node_uid(client: &Client, name: &str) -> Option<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    match tokio::time::timeout(k3rs_kubelet::retry::CALL_TIMEOUT, nodes.get_opt(name)).await {
        Ok(Ok(found)) => found.and_then(|node| node.uid()),
        Ok(Err(err)) => {
            tracing::debug!(node = %name, "reading the Node: {err}; starting with an empty runtime");
            None
        }
        Err(_) => None,
    }
}

impl HollowNode {
    /// Registers the node (creates the Node, or takes over an existing one of the same name),
    /// writes its status and its Lease, then starts the kubelet's tasks: the Lease and Node
    /// status heartbeats, the pod workers and the relist. When it returns, the node is Ready and
    /// its Lease is fresh. A Node a hollow node of this process ran before gets its fake
    /// runtime back: its pods' containers are adopted, not started again.
    ///
    /// Each step is retried for up to 30 s while it fails for a reason that may pass; a
    /// configuration the server rejects fails at once. Must be called within a Tokio runtime.
    pub async fn start(
        client: Client,
        config: HollowNodeConfig,
    ) -> Result<HollowNode, HollowError> {
        let addresses = fake_network::addresses_for(&config.name);
        let known = match existing_node_uid(&client, &config.name).await {
            Some(uid) => runtimes(|all| all.get(&uid).cloned()),
            None => None,
        };
        let runtime = match known {
            Some(runtime) => {
                runtime.set_termination_delay(config.termination_delay);
                runtime
            }
            None => Arc::new(FakeRuntime::new(
                addresses.fallback_pod_range,
                config.termination_delay,
            )),
        };
        let parts = KubeletParts {
            runtime: runtime.clone(),
            network: Arc::new(FakePodNetwork),
            volumes: Some(Arc::new(FakeVolumes::new(&config.name))),
            readiness_gate: Some(runtime.clone()),
            // Pod IPs are made up: nothing may be sent to them.
            skip_network_probes: true,
        };
        let kubelet = Kubelet::start_with(
            client,
            kubelet_config(&config, addresses.internal_ip),
            parts,
        )
        .await?;
        runtimes(|all| all.insert(kubelet.node_uid().to_owned(), runtime.clone()));
        tracing::info!(node = %config.name, ip = %addresses.internal_ip, "hollow node started");
        Ok(HollowNode {
            name: config.name,
            internal_ip: addresses.internal_ip,
            kubelet,
            runtime,
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

    /// Whether every task of the node's kubelet (heartbeats, pod workers, relist, informers)
    /// is running; a task that ended or panicked is down until its restart runs.
    pub fn health(&self) -> Result<(), k3rs_runtime::health::Unhealthy> {
        self.kubelet.health()
    }

    /// How many sandboxes and containers the node's fake runtime holds.
    pub fn runtime_counts(&self) -> (usize, usize) {
        self.runtime.counts()
    }

    /// Stops renewing the Lease and writing the Node's status, as a kubelet that lost its
    /// heartbeat would; pods are still served. For node lifecycle tests.
    pub fn pause_heartbeats(&self) {
        self.kubelet.pause_heartbeats();
    }

    /// Renews the Lease and writes the Node's status again, at once and then every interval.
    pub fn resume_heartbeats(&self) {
        self.kubelet.resume_heartbeats();
    }

    /// Stops the kubelet and waits until its tasks have ended. The Node, its Lease, its pods
    /// and the fake runtime's containers stay as they are (a dead kubelet).
    pub async fn stop(self) {
        self.kubelet.stop().await;
    }
}
