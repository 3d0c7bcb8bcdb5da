//! The scheduler's own view of the cluster (upstream's scheduler cache): every node with what
//! its pods already take — requests, host ports, pod count — and indexes that keep a scheduling
//! cycle proportional to the number of nodes rather than pods: assigned pods grouped by
//! namespace, owner and labels with a count per node, and the distinct required anti-affinity
//! terms of assigned pods with a count per node.
//!
//! A pod the scheduler has just placed is *assumed* here at once, before its binding is written
//! and long before the watch reports it, so the next cycle already sees it; the watch then
//! confirms it, a failed binding forgets it, and one the watch never confirms expires.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::podaffinity::{self, AffinityTerm};
use super::resources::{self, Missing, Resources};
use crate::pods;
use k3rs_runtime::cache::ObjectKey;

/// A host port a pod binds: `(protocol, port)` on an address (`0.0.0.0` for all).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// `TCP` unless the port says otherwise.
    pub protocol: String,
    /// The host port (always > 0).
    pub port: i32,
    /// The host address; `0.0.0.0` when unset.
    pub ip: String,
}

/// The host ports `pod` asks for (containers and sidecars with a `hostPort`).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            Some(HostPort {
                protocol: p
                    .protocol
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "TCP".to_owned()),
                port,
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| ALL_ADDRESSES.to_owned()),
            })
        })
        .collect()
}

/// The address that stands for every address of the node.
pub const ALL_ADDRESSES: &str = "0.0.0.0";

/// One node and what the pods assigned to it take.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// The Node object; `None` while pods name a node the watch has not shown (or no longer
    /// shows), which is never a candidate.
    pub node: Option<Arc<Node>>,
    /// `status.allocatable`.
    pub allocatable: Resources,
    /// `status.allocatable.pods`.
    pub allowed_pods: i64,
    /// The sum of the assigned pods' requests.
    pub requested: Resources,
    /// The same with missing CPU and memory requests defaulted (for scoring).
    pub non_zero_requested: Resources,
    /// How many pods are assigned.
    pub pods: usize,
    /// Host ports in use: `(protocol, port)` → address → how many pods.
    ports: HashMap<(String, i32), HashMap<String, u32>>,
}

impl NodeInfo {
    /// A node with no pods.
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut info = NodeInfo::default();
        info.set_node(node);
        info
    }

    fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = resources::allocatable(&node);
        self.allowed_pods = resources::allowed_pods(&node);
        self.node = Some(node);
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .unwrap_or("")
    }

    /// Whether `wanted` clashes with a host port in use (upstream's `HostPortInfo.CheckConflict`:
    /// `0.0.0.0` clashes with every address, any address with `0.0.0.0`).
    pub fn port_conflict(&self, wanted: &HostPort) -> bool {
        let Some(addresses) = self.ports.get(&(wanted.protocol.clone(), wanted.port)) else {
            return false;
        };
        if wanted.ip == ALL_ADDRESSES {
            return addresses.values().any(|n| *n > 0);
        }
        [ALL_ADDRESSES, wanted.ip.as_str()]
            .iter()
            .any(|ip| addresses.get(*ip).is_some_and(|n| *n > 0))
    }

    /// Counts `record`'s pod on this node (test helper and [`ClusterState`]'s bookkeeping).
    pub fn add(&mut self, record: &PodRecord) {
        self.requested.add(&record.requests);
        self.non_zero_requested.add(&record.non_zero_requests);
        self.pods += 1;
        for port in &record.ports {
            *self
                .ports
                .entry((port.protocol.clone(), port.port))
                .or_default()
                .entry(port.ip.clone())
                .or_insert(0) += 1;
        }
    }

    fn remove(&mut self, record: &PodRecord) {
        self.requested.subtract(&record.requests);
        self.non_zero_requested.subtract(&record.non_zero_requests);
        self.pods = self.pods.saturating_sub(1);
        for port in &record.ports {
            let key = (port.protocol.clone(), port.port);
            if let Some(addresses) = self.ports.get_mut(&key) {
                if let Some(count) = addresses.get_mut(&port.ip) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        addresses.remove(&port.ip);
                    }
                }
                if addresses.is_empty() {
                    self.ports.remove(&key);
                }
            }
        }
    }
}

/// Pods that look alike to selectors: one namespace, one controlling owner, one set of labels,
/// and whether they are being deleted (spreading ignores those; affinity does not).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// The pods' namespace.
    pub namespace: String,
    /// The uid of their controller owner, if any.
    pub owner: Option<String>,
    /// Their labels.
    pub labels: BTreeMap<String, String>,
    /// Whether they are being deleted.
    pub terminating: bool,
}

impl GroupKey {
    /// The group of `pod`.
    pub fn of(pod: &Pod) -> GroupKey {
        GroupKey {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            owner: controller_uid(pod),
            labels: podaffinity::pod_labels(pod).clone(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// The uid of `pod`'s controller owner reference.
pub fn controller_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// A required anti-affinity term of assigned pods, by the namespace of the pods that carry it
/// and the term's JSON: pods of one workload share one entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AntiTermKey {
    namespace: String,
    term: String,
}

/// A required anti-affinity term of assigned pods and where those pods are.
#[derive(Clone, Debug)]
pub struct AntiTerm {
    /// The parsed term.
    pub term: AffinityTerm,
    /// Node name → how many assigned pods carry the term there.
    pub per_node: HashMap<String, u32>,
}

/// Whether a pod's place is settled or only assumed by this scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The watch showed the pod on its node.
    Confirmed,
    /// This scheduler placed it; `bound_at` is when its binding was written (`None` while the
    /// binding is in flight).
    Assumed {
        /// When the binding succeeded.
        bound_at: Option<Instant>,
    },
}

/// What an assigned pod takes from its node, as counted.
#[derive(Clone, Debug)]
pub struct PodRecord {
    /// The node it is on.
    pub node: String,
    /// Its requests.
    pub requests: Resources,
    /// Its requests with missing CPU and memory defaulted.
    pub non_zero_requests: Resources,
    /// The host ports it binds.
    pub ports: Vec<HostPort>,
    group: GroupKey,
    anti_terms: Vec<AntiTermKey>,
    /// Confirmed or assumed.
    pub placement: Placement,
}

impl PodRecord {
    fn new(pod: &Pod, node: &str, placement: Placement) -> PodRecord {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let anti_terms = podaffinity::required_anti_affinity(pod)
            .iter()
            .filter_map(|term| {
                Some(AntiTermKey {
                    namespace: namespace.clone(),
                    term: serde_json::to_string(term).ok()?,
                })
            })
            .collect();
        PodRecord {
            node: node.to_owned(),
            requests: resources::pod_requests(pod, Missing::Zero),
            non_zero_requests: resources::pod_requests(pod, Missing::Defaulted),
            ports: host_ports(pod),
            group: GroupKey::of(pod),
            anti_terms,
            placement,
        }
    }
}

/// Every node and assigned pod the scheduler knows, with its indexes.
#[derive(Debug, Default)]
pub struct ClusterState {
    nodes: BTreeMap<String, NodeInfo>,
    pods: HashMap<ObjectKey, PodRecord>,
    groups: BTreeMap<GroupKey, HashMap<String, u32>>,
    anti_terms: HashMap<AntiTermKey, AntiTerm>,
}

impl ClusterState {
    /// An empty state.
    pub fn new() -> ClusterState {
        ClusterState::default()
    }

    /// Adds or replaces a node.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.nodes.entry(name).or_default().set_node(node);
    }

    /// Forgets a node (its pods stay counted until they go, under a node without an object).
    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            info.node = None;
            if info.pods == 0 {
                self.nodes.remove(name);
            }
        }
    }

    /// Records what the watch shows of `pod`: an assigned, unfinished pod is counted on its
    /// node (confirming an assumed placement); any other is not counted.
    pub fn apply_pod(&mut self, key: &ObjectKey, pod: &Pod) {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        if node.is_empty() {
            // The watch has not caught up with an assumed pod yet; nothing to confirm.
            if !self.is_assumed(key) {
                self.remove_pod(key);
            }
            return;
        }
        if pods::is_finished(pod) {
            self.remove_pod(key);
            return;
        }
        self.insert(key, PodRecord::new(pod, node, Placement::Confirmed));
    }

    /// Forgets a pod (deleted, finished, or never bound).
    pub fn remove_pod(&mut self, key: &ObjectKey) {
        let Some(record) = self.pods.remove(key) else {
            return;
        };
        if let Some(info) = self.nodes.get_mut(&record.node) {
            info.remove(&record);
            if info.node.is_none() && info.pods == 0 {
                self.nodes.remove(&record.node);
            }
        }
        if let Some(per_node) = self.groups.get_mut(&record.group) {
            decrement(per_node, &record.node);
            if per_node.is_empty() {
                self.groups.remove(&record.group);
            }
        }
        for term in &record.anti_terms {
            if let Some(entry) = self.anti_terms.get_mut(term) {
                decrement(&mut entry.per_node, &record.node);
                if entry.per_node.is_empty() {
                    self.anti_terms.remove(term);
                }
            }
        }
    }

    fn insert(&mut self, key: &ObjectKey, record: PodRecord) {
        self.remove_pod(key);
        self.nodes
            .entry(record.node.clone())
            .or_default()
            .add(&record);
        *self
            .groups
            .entry(record.group.clone())
            .or_default()
            .entry(record.node.clone())
            .or_insert(0) += 1;
        for term_key in &record.anti_terms {
            let entry = self.anti_terms.entry(term_key.clone()).or_insert_with(|| {
                let term = serde_json::from_str(&term_key.term).unwrap_or_default();
                AntiTerm {
                    term: AffinityTerm::new(&term_key.namespace, &term),
                    per_node: HashMap::new(),
                }
            });
            *entry.per_node.entry(record.node.clone()).or_insert(0) += 1;
        }
        self.pods.insert(key.clone(), record);
    }

    /// Counts `pod` on `node` now, before its binding is written or seen.
    pub fn assume(&mut self, key: &ObjectKey, pod: &Pod, node: &str) {
        self.insert(
            key,
            PodRecord::new(pod, node, Placement::Assumed { bound_at: None }),
        );
    }

    /// The binding of an assumed pod was written: it expires if the watch never confirms it.
    pub fn finish_binding(&mut self, key: &ObjectKey, now: Instant) {
        if let Some(record) = self.pods.get_mut(key) {
            if let Placement::Assumed { bound_at } = &mut record.placement {
                *bound_at = Some(now);
            }
        }
    }

    /// The binding of an assumed pod failed: it no longer counts (a confirmed pod stays).
    pub fn forget(&mut self, key: &ObjectKey) {
        if self.is_assumed(key) {
            self.remove_pod(key);
        }
    }

    /// Forgets assumed pods bound more than `ttl` ago that the watch never confirmed; returns
    /// their keys.
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> Vec<ObjectKey> {
        let expired: Vec<ObjectKey> = self
            .pods
            .iter()
            .filter(|(_, record)| {
                matches!(record.placement, Placement::Assumed { bound_at: Some(at) }
                    if now.saturating_duration_since(at) > ttl)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            self.remove_pod(key);
        }
        expired
    }

    /// Whether `key` is placed by this scheduler and not yet confirmed.
    pub fn is_assumed(&self, key: &ObjectKey) -> bool {
        self.pods
            .get(key)
            .is_some_and(|r| matches!(r.placement, Placement::Assumed { .. }))
    }

    /// The record of an assigned pod.
    pub fn pod(&self, key: &ObjectKey) -> Option<&PodRecord> {
        self.pods.get(key)
    }

    /// Every node, by name (including nodes without an object that still hold pods).
    pub fn nodes(&self) -> &BTreeMap<String, NodeInfo> {
        &self.nodes
    }

    /// The groups of assigned pods in `namespace` (every namespace when `None`), with their
    /// count per node.
    pub fn groups(
        &self,
        namespace: Option<&str>,
    ) -> Box<dyn Iterator<Item = (&GroupKey, &HashMap<String, u32>)> + '_> {
        match namespace {
            None => Box::new(self.groups.iter()),
            Some(namespace) => {
                let start = GroupKey {
                    namespace: namespace.to_owned(),
                    owner: None,
                    labels: BTreeMap::new(),
                    terminating: false,
                };
                let namespace = namespace.to_owned();
                Box::new(
                    self.groups
                        .range(start..)
                        .take_while(move |(key, _)| key.namespace == namespace),
                )
            }
        }
    }

    /// The distinct required anti-affinity terms of assigned pods.
    pub fn anti_terms(&self) -> impl Iterator<Item = &AntiTerm> {
        self.anti_terms.values()
    }
}

fn decrement(per_node: &mut HashMap<String, u32>, node: &str) {
    if let Some(count) = per_node.get_mut(node) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            per_node.remove(node);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn node(name: &str, cpu: &str, memory: &str, pods: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}
            }))
            .unwrap(),
        )
    }

    pub(crate) fn pod(name: &str, node: &str, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "x"}]);
        }
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": spec
        }))
        .unwrap()
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("default", name)
    }

    #[test]
    fn pods_are_counted_on_their_nodes_and_uncounted_when_gone() {
        let mut state = ClusterState::new();
        state.set_node(node("n1", "2", "4Gi", "10"));
        let spec = json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
            "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
        let p = pod("a", "n1", spec.clone());
        state.apply_pod(&key("a"), &p);
        state.apply_pod(&key("a"), &p); // a repeat changes nothing
        let info = &state.nodes()["n1"];
        assert_eq!(info.requested.milli_cpu, 500);
        assert_eq!(info.requested.memory, 1 << 30);
        assert_eq!(info.pods, 1);
        let wanted = HostPort {
            protocol: "TCP".into(),
            port: 8080,
            ip: "10.0.0.1".into(),
        };
        assert!(info.port_conflict(&wanted));
        assert_eq!(state.groups(Some("default")).count(), 1);
        assert_eq!(state.groups(Some("other")).count(), 0);

        let mut finished = p.clone();
        finished.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        state.apply_pod(&key("a"), &finished);
        let info = &state.nodes()["n1"];
        assert!(info.requested.is_zero());
        assert_eq!(info.pods, 0);
        assert!(!info.port_conflict(&wanted));
        assert_eq!(state.groups(None).count(), 0);
    }

    #[test]
    fn host_ports_clash_by_protocol_and_address() {
        let mut info = NodeInfo::new(node("n1", "1", "1Gi", "10"));
        let on = |ip: &str| {
            pod(
                "p",
                "n1",
                json!({"containers": [{"name": "c", "image": "x", "ports": [
                    {"containerPort": 1, "hostPort": 80, "hostIP": ip, "protocol": "TCP"}]}]}),
            )
        };
        let record = PodRecord::new(&on("10.0.0.1"), "n1", Placement::Confirmed);
        info.add(&record);
        let port = |ip: &str, protocol: &str| HostPort {
            protocol: protocol.into(),
            port: 80,
            ip: ip.into(),
        };
        assert!(info.port_conflict(&port("10.0.0.1", "TCP")));
        assert!(info.port_conflict(&port(ALL_ADDRESSES, "TCP")));
        assert!(!info.port_conflict(&port("10.0.0.2", "TCP")));
        assert!(!info.port_conflict(&port("10.0.0.1", "UDP")));
        info.remove(&record);
        let all = PodRecord::new(&on(""), "n1", Placement::Confirmed);
        info.add(&all);
        assert!(info.port_conflict(&port("10.0.0.2", "TCP")));
    }

    #[test]
    fn assumed_pods_count_until_forgotten_confirmed_or_expired() {
        let mut state = ClusterState::new();
        state.set_node(node("n1", "2", "4Gi", "10"));
        let p = pod("a", "", json!({}));
        state.assume(&key("a"), &p, "n1");
        assert!(state.is_assumed(&key("a")));
        assert_eq!(state.nodes()["n1"].pods, 1);
        // A late event of the unassigned pod does not undo the assumption.
        state.apply_pod(&key("a"), &p);
        assert_eq!(state.nodes()["n1"].pods, 1);
        state.forget(&key("a"));
        assert_eq!(state.nodes()["n1"].pods, 0);

        state.assume(&key("a"), &p, "n1");
        let start = Instant::now();
        state.finish_binding(&key("a"), start);
        assert!(state
            .expire(start + Duration::from_secs(1), Duration::from_secs(30))
            .is_empty());
        assert_eq!(
            state.expire(start + Duration::from_secs(31), Duration::from_secs(30)),
            vec![key("a")]
        );
        assert_eq!(state.nodes()["n1"].pods, 0);

        state.assume(&key("a"), &p, "n1");
        state.apply_pod(&key("a"), &pod("a", "n1", json!({})));
        assert!(!state.is_assumed(&key("a")));
        state.forget(&key("a"));
        assert_eq!(
            state.nodes()["n1"].pods,
            1,
            "a confirmed pod is not forgotten"
        );
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_the_node() {
        let mut state = ClusterState::new();
        state.apply_pod(&key("a"), &pod("a", "late", json!({})));
        assert!(state.nodes()["late"].node.is_none());
        state.set_node(node("late", "1", "1Gi", "10"));
        assert_eq!(state.nodes()["late"].pods, 1);
        state.remove_node("late");
        assert!(state.nodes().contains_key("late"));
        state.remove_pod(&key("a"));
        assert!(state.nodes().is_empty());
    }

    #[test]
    fn anti_affinity_terms_are_shared_by_alike_pods() {
        let mut state = ClusterState::new();
        let spec = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}}});
        state.apply_pod(&key("a"), &pod("a", "n1", spec.clone()));
        state.apply_pod(&key("b"), &pod("b", "n2", spec.clone()));
        let terms: Vec<_> = state.anti_terms().collect();
        assert_eq!(terms.len(), 1);
        assert_eq!(terms[0].per_node.len(), 2);
        state.remove_pod(&key("a"));
        state.remove_pod(&key("b"));
        assert_eq!(state.anti_terms().count(), 0);
    }
}
