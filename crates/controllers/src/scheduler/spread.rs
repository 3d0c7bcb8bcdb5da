//! `PodTopologySpread`: the pod's own `topologySpreadConstraints` (hard ones filter, soft ones
//! score) and, for a pod without any, upstream's system defaults — spread over
//! `kubernetes.io/hostname` (maxSkew 3) and `topology.kubernetes.io/zone` (maxSkew 5) the pods
//! selected by the Services, ReplicationController, ReplicaSet or StatefulSet that select this
//! pod. k3rs adds one fallback: a pod that none of those select but that has a controller owner
//! spreads with the other pods of that owner (Jobs, custom controllers), so replicas of anything
//! land apart by default.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k3rs_api::selector::{Operator, Requirement, Selector};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Node, Pod, ReplicationController, Service, TopologySpreadConstraint,
};

use super::filters::{self, Rejection, Verdict};
use super::nodeaffinity::{node_labels, RequiredNodeAffinity};
use super::podaffinity::{pod_labels, selector_of};
use super::state::{controller_uid, ClusterState, GroupKey};
use k3rs_api::well_known;

/// The node label of upstream's per-node spreading.
pub const HOSTNAME: &str = well_known::LABEL_HOSTNAME;
/// The node label of upstream's per-zone spreading.
pub const ZONE: &str = well_known::LABEL_TOPOLOGY_ZONE;
/// A hard constraint would be broken.
pub const REASON_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
/// The node lacks a hard constraint's topology label.
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// The workloads whose selectors say which pods are replicas of one another.
pub trait Workloads {
    /// The Services of `namespace`.
    fn services(&self, namespace: &str) -> Vec<Arc<Service>>;
    /// A ReplicationController.
    fn replication_controller(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<ReplicationController>>;
    /// A ReplicaSet.
    fn replica_set(&self, namespace: &str, name: &str) -> Option<Arc<ReplicaSet>>;
    /// A StatefulSet.
    fn stateful_set(&self, namespace: &str, name: &str) -> Option<Arc<StatefulSet>>;
}

/// Which pods of the namespace count as the pod's peers.
#[derive(Clone, Debug)]
pub enum Peers {
    /// Pods whose labels match.
    Labels(Selector),
    /// Pods with this controller owner (k3rs's fallback).
    Owner(String),
}

impl Peers {
    fn includes(&self, group: &GroupKey) -> bool {
        match self {
            Peers::Labels(selector) => selector.matches(&group.labels),
            Peers::Owner(uid) => group.owner.as_deref() == Some(uid),
        }
    }

    fn includes_pod(&self, pod: &Pod) -> bool {
        match self {
            Peers::Labels(selector) => selector.matches(pod_labels(pod)),
            Peers::Owner(uid) => controller_uid(pod).as_deref() == Some(uid),
        }
    }
}

/// Upstream's `DefaultSelector`, with k3rs's owner fallback: `None` when nothing says which pods
/// are the pod's peers.
pub fn default_peers(pod: &Pod, workloads: &dyn Workloads) -> Option<Peers> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let labels = pod_labels(pod);
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for service in workloads.services(namespace) {
        let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
        let selector = selector.cloned().unwrap_or_default();
        if selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            set.extend(selector);
        }
    }
    let mut extra: Vec<Requirement> = Vec::new();
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    if let Some(owner) = owner {
        match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("v1", "ReplicationController") => {
                if let Some(rc) = workloads.replication_controller(namespace, &owner.name) {
                    set.extend(
                        rc.spec
                            .as_ref()
                            .and_then(|s| s.selector.clone())
                            .unwrap_or_default(),
                    );
                }
            }
            ("apps/v1", "ReplicaSet") => {
                if let Some(rs) = workloads.replica_set(namespace, &owner.name) {
                    let selector = Some(&rs.spec.selector);
                    extra.extend(selector_of(selector).requirements().iter().cloned());
                }
            }
            ("apps/v1", "StatefulSet") => {
                if let Some(ss) = workloads.stateful_set(namespace, &owner.name) {
                    let selector = Some(&ss.spec.selector);
                    extra.extend(selector_of(selector).requirements().iter().cloned());
                }
            }
            _ => {}
        }
    }
    let mut requirements = Selector::from_set(set.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .requirements()
        .to_vec();
    requirements.extend(extra);
    if !requirements.is_empty() {
        return Some(Peers::Labels(Selector::from_requirements(requirements)));
    }
    owner.map(|o| Peers::Owner(o.uid.clone()))
}

/// One spread constraint, parsed.
#[derive(Clone, Debug)]
pub struct Constraint {
    /// The node label whose values are the domains.
    pub topology_key: String,
    /// The largest allowed difference between domains.
    pub max_skew: i32,
    /// Which pods count.
    pub peers: Peers,
    /// Fewer domains than this count as a global minimum of zero.
    pub min_domains: Option<i32>,
    /// Only nodes matching the pod's node affinity count (`nodeAffinityPolicy: Honor`).
    pub honor_node_affinity: bool,
    /// Only nodes whose taints the pod tolerates count (`nodeTaintsPolicy: Honor`).
    pub honor_node_taints: bool,
}

impl Constraint {
    fn new(pod: &Pod, constraint: &TopologySpreadConstraint) -> Constraint {
        let mut requirements = selector_of(constraint.label_selector.as_ref())
            .requirements()
            .to_vec();
        let labels = pod_labels(pod);
        // matchLabelKeys: the pod's own values of those keys narrow the selector.
        for key in constraint.match_label_keys.iter().flatten() {
            if let Some(value) = labels.get(key) {
                if let Ok(requirement) = Requirement::new(key, Operator::In, vec![value.clone()]) {
                    requirements.push(requirement);
                }
            }
        }
        // Without a label selector a constraint selects nothing, whatever its keys add.
        let peers = if constraint.label_selector.is_none() {
            Peers::Labels(Selector::nothing())
        } else {
            Peers::Labels(Selector::from_requirements(requirements))
        };
        Constraint {
            topology_key: constraint.topology_key.clone(),
            max_skew: constraint.max_skew,
            peers,
            min_domains: constraint.min_domains,
            honor_node_affinity: constraint.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_node_taints: constraint.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    /// Whether `node` counts for this constraint (upstream's node inclusion policies).
    fn includes_node(&self, pod: &Pod, affinity: &RequiredNodeAffinity, node: &Node) -> bool {
        if self.honor_node_affinity && !affinity.matches(node) {
            return false;
        }
        if self.honor_node_taints && filters::taint_toleration(pod, node).is_err() {
            return false;
        }
        true
    }
}

/// The pod's constraints with `whenUnsatisfiable` = `want` (`DoNotSchedule` to filter,
/// `ScheduleAnyway` to score); for a pod without constraints, the system defaults (all
/// `ScheduleAnyway`) over `peers`.
pub fn constraints(pod: &Pod, want: &str, peers: Option<&Peers>) -> Vec<Constraint> {
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    if !own.is_empty() {
        return own
            .iter()
            .filter(|c| c.when_unsatisfiable == want)
            .map(|c| Constraint::new(pod, c))
            .collect();
    }
    let Some(peers) = peers.filter(|_| want == "ScheduleAnyway") else {
        return Vec::new();
    };
    [(HOSTNAME, 3), (ZONE, 5)]
        .into_iter()
        .map(|(key, max_skew)| Constraint {
            topology_key: key.to_owned(),
            max_skew,
            peers: peers.clone(),
            min_domains: None,
            honor_node_affinity: true,
            honor_node_taints: false,
        })
        .collect()
}

/// How many of `peers` in `namespace` run on each node (pods being deleted do not count).
fn peers_per_node<'a>(
    state: &'a ClusterState,
    namespace: &str,
    peers: &Peers,
) -> HashMap<&'a str, u32> {
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for (group, per_node) in state.groups(Some(namespace)) {
        if group.terminating || !peers.includes(group) {
            continue;
        }
        for (node, count) in per_node {
            *counts.entry(node.as_str()).or_insert(0) += count;
        }
    }
    counts
}

/// The hard constraints, counted once per cycle.
#[derive(Clone, Debug, Default)]
pub struct SpreadFilter {
    constraints: Vec<HardConstraint>,
}

#[derive(Clone, Debug)]
struct HardConstraint {
    topology_key: String,
    max_skew: i32,
    /// Domain value → peers in it.
    counts: HashMap<String, i64>,
    /// The smallest count over the domains (0 when fewer than `minDomains`).
    min: i64,
    self_match: i64,
}

impl SpreadFilter {
    /// Counts the peers of each hard constraint of `pod` in every eligible domain.
    pub fn new(pod: &Pod, affinity: &RequiredNodeAffinity, state: &ClusterState) -> SpreadFilter {
        let constraints = constraints(pod, "DoNotSchedule", None);
        if constraints.is_empty() {
            return SpreadFilter::default();
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        let hard = constraints
            .iter()
            .map(|constraint| {
                let per_node = peers_per_node(state, namespace, &constraint.peers);
                let mut counts: HashMap<String, i64> = HashMap::new();
                for (name, info) in state.nodes() {
                    let Some(node) = info.node.as_deref() else {
                        continue;
                    };
                    let labels = node_labels(node);
                    // A node must carry every constraint's key to count for any.
                    if !constraints
                        .iter()
                        .all(|c| labels.contains_key(&c.topology_key))
                        || !constraint.includes_node(pod, affinity, node)
                    {
                        continue;
                    }
                    let value = labels[&constraint.topology_key].clone();
                    *counts.entry(value).or_insert(0) +=
                        i64::from(per_node.get(name.as_str()).copied().unwrap_or(0));
                }
                let domains = counts.len();
                let min = if constraint
                    .min_domains
                    .is_some_and(|m| usize::try_from(m).unwrap_or(0) > domains)
                {
                    0
                } else {
                    counts
                        .values()
                        .copied()
                        .min()
                        .unwrap_or(i64::from(i32::MAX))
                };
                HardConstraint {
                    topology_key: constraint.topology_key.clone(),
                    max_skew: constraint.max_skew,
                    counts,
                    min,
                    self_match: i64::from(constraint.peers.includes_pod(pod)),
                }
            })
            .collect();
        SpreadFilter { constraints: hard }
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }
}

/// `PodTopologySpread` on one node: placing the pod there keeps every hard constraint's skew
/// (its domain's peers, plus the pod if it is one, minus the emptiest domain's) within maxSkew.
pub fn spread_filter(filter: &SpreadFilter, node: &Node) -> Verdict {
    let labels = node_labels(node);
    for constraint in &filter.constraints {
        let Some(value) = labels.get(&constraint.topology_key) else {
            return Err(Rejection::unresolvable(REASON_MISSING_LABEL));
        };
        let count = constraint.counts.get(value).copied().unwrap_or(0);
        if count + constraint.self_match - constraint.min > i64::from(constraint.max_skew) {
            return Err(Rejection::unschedulable(REASON_CONSTRAINTS));
        }
    }
    Ok(())
}

/// The spreading scores (0–100, normalized) of `feasible` nodes: fewer peers in a node's
/// domains scores higher (upstream's PodTopologySpread Score and NormalizeScore).
pub fn spread_scores(
    pod: &Pod,
    constraints: &[Constraint],
    system_defaulted: bool,
    affinity: &RequiredNodeAffinity,
    state: &ClusterState,
    feasible: &[&Node],
) -> Vec<i64> {
    if constraints.is_empty() {
        return vec![0; feasible.len()];
    }
    // Only the pod's own constraints require every topology key on a node.
    let require_all = !system_defaulted;
    let has_all_keys = |node: &Node| {
        let labels = node_labels(node);
        constraints
            .iter()
            .all(|c| labels.contains_key(&c.topology_key))
    };
    let ignored: Vec<bool> = feasible
        .iter()
        .map(|node| require_all && !has_all_keys(node))
        .collect();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let per_constraint: Vec<HashMap<&str, u32>> = constraints
        .iter()
        .map(|c| peers_per_node(state, namespace, &c.peers))
        .collect();
    // Domain sizes and counts for keys other than the hostname, over feasible nodes' domains.
    let mut domain_counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    for (node, ignored) in feasible.iter().zip(&ignored) {
        if *ignored {
            continue;
        }
        let labels = node_labels(node);
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key != HOSTNAME {
                let value = labels.get(&c.topology_key).cloned().unwrap_or_default();
                domain_counts[i].entry(value).or_insert(0);
            }
        }
    }
    let scored_nodes = ignored.iter().filter(|i| !**i).count();
    let weights: Vec<f64> = constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let size = if c.topology_key == HOSTNAME {
                scored_nodes
            } else {
                domain_counts[i].len()
            };
            // Upstream's topologyNormalizingWeight: ln(size + 2).
            ((size + 2) as f64).ln()
        })
        .collect();
    for (name, info) in state.nodes() {
        let Some(node) = info.node.as_deref() else {
            continue;
        };
        if require_all && !has_all_keys(node) {
            continue;
        }
        let labels = node_labels(node);
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key == HOSTNAME || !c.includes_node(pod, affinity, node) {
                continue;
            }
            let value = labels.get(&c.topology_key).cloned().unwrap_or_default();
            if let Some(count) = domain_counts[i].get_mut(&value) {
                *count += i64::from(per_constraint[i].get(name.as_str()).copied().unwrap_or(0));
            }
        }
    }
    let raw: Vec<Option<i64>> = feasible
        .iter()
        .zip(&ignored)
        .map(|(node, ignored)| {
            if *ignored {
                return None;
            }
            let labels = node_labels(node);
            let name = node.metadata.name.as_deref().unwrap_or("");
            let mut score = 0.0;
            for (i, c) in constraints.iter().enumerate() {
                let Some(value) = labels.get(&c.topology_key) else {
                    continue;
                };
                let count = if c.topology_key == HOSTNAME {
                    i64::from(per_constraint[i].get(name).copied().unwrap_or(0))
                } else {
                    domain_counts[i].get(value).copied().unwrap_or(0)
                };
                score += count as f64 * weights[i] + f64::from(c.max_skew - 1);
            }
            Some(score.round() as i64)
        })
        .collect();
    let min = raw.iter().flatten().copied().min().unwrap_or(0);
    let max = raw.iter().flatten().copied().max().unwrap_or(0);
    raw.iter()
        .map(|score| match score {
            None => 0,
            Some(_) if max == 0 => super::scores::MAX_NODE_SCORE,
            Some(score) => super::scores::MAX_NODE_SCORE * (max + min - score) / max,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::state::tests::node;
    use k3rs_runtime::cache::ObjectKey;
    use serde_json::json;

    #[derive(Default)]
    struct Objects {
        services: Vec<Arc<Service>>,
        replica_sets: BTreeMap<String, Arc<ReplicaSet>>,
    }

    impl Workloads for Objects {
        fn services(&self, _namespace: &str) -> Vec<Arc<Service>> {
            self.services.clone()
        }
        fn replication_controller(&self, _: &str, _: &str) -> Option<Arc<ReplicationController>> {
            None
        }
        fn replica_set(&self, _: &str, name: &str) -> Option<Arc<ReplicaSet>> {
            self.replica_sets.get(name).cloned()
        }
        fn stateful_set(&self, _: &str, _: &str) -> Option<Arc<StatefulSet>> {
            None
        }
    }

    fn pod(name: &str, node: &str, labels: serde_json::Value, owner: Option<&str>) -> Pod {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "x"}]}
        });
        if !node.is_empty() {
            value["spec"]["nodeName"] = json!(node);
        }
        if let Some(owner) = owner {
            value["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": owner, "uid": format!("uid-{owner}"), "controller": true}]);
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn default_peers_come_from_services_and_owners() {
        let service: Service = serde_json::from_value(json!({"metadata": {"name": "s"},
            "spec": {"selector": {"app": "web"}}}))
        .unwrap();
        let other: Service = serde_json::from_value(json!({"metadata": {"name": "o"},
            "spec": {"selector": {"app": "db"}}}))
        .unwrap();
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "rs"},
            "spec": {"selector": {"matchLabels": {"tier": "front"}}, "template": {}}}))
        .unwrap();
        let objects = Objects {
            services: vec![Arc::new(service), Arc::new(other)],
            replica_sets: BTreeMap::from([("rs".to_owned(), Arc::new(rs))]),
        };
        let labels = json!({"app": "web", "tier": "front", "x": "1"});
        let Some(Peers::Labels(selector)) =
            default_peers(&pod("p", "", labels.clone(), Some("rs")), &objects)
        else {
            panic!("expected a label selector");
        };
        assert_eq!(selector.to_string(), "app=web,tier=front");
        // An owner nothing describes: its uid.
        let Some(Peers::Owner(uid)) = default_peers(
            &pod("p", "", json!({"z": "1"}), Some("unknown")),
            &Objects::default(),
        ) else {
            panic!("expected the owner");
        };
        assert_eq!(uid, "uid-unknown");
        assert!(
            default_peers(&pod("p", "", json!({"z": "1"}), None), &Objects::default()).is_none()
        );
    }

    fn state_with(placed: &[(&str, &str)]) -> ClusterState {
        let mut state = ClusterState::new();
        for name in ["n1", "n2", "n3"] {
            state.set_node(node(name, "4", "8Gi", "110"));
        }
        for (pod_name, node_name) in placed {
            state.apply_pod(
                &ObjectKey::new("default", *pod_name),
                &pod(pod_name, node_name, json!({"app": "web"}), Some("rs")),
            );
        }
        state
    }

    #[test]
    fn default_spreading_prefers_nodes_with_fewer_peers() {
        let state = state_with(&[("a", "n1"), ("b", "n1"), ("c", "n2")]);
        let incoming = pod("d", "", json!({"app": "web"}), Some("rs"));
        let peers = Peers::Owner("uid-rs".into());
        let constraints = constraints(&incoming, "ScheduleAnyway", Some(&peers));
        assert_eq!(constraints.len(), 2);
        let nodes: Vec<Arc<Node>> = state
            .nodes()
            .values()
            .filter_map(|i| i.node.clone())
            .collect();
        let feasible: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
        let scores = spread_scores(
            &incoming,
            &constraints,
            true,
            &RequiredNodeAffinity::default(),
            &state,
            &feasible,
        );
        // Raw: n1 = round(2·ln 5 + 2) = 5, n2 = round(ln 5 + 2) = 4, n3 = 2 (no zone labels);
        // normalized 100·(max + min − s)/max.
        assert_eq!(scores, vec![40, 60, 100]);
    }

    #[test]
    fn hard_constraints_limit_the_skew() {
        let state = state_with(&[("a", "n1"), ("b", "n1"), ("c", "n2")]);
        let mut incoming = pod("d", "", json!({"app": "web"}), None);
        incoming.spec.as_mut().unwrap().topology_spread_constraints = Some(
            serde_json::from_value(json!([{"maxSkew": 1, "topologyKey": HOSTNAME,
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]))
            .unwrap(),
        );
        let filter = SpreadFilter::new(&incoming, &RequiredNodeAffinity::default(), &state);
        let verdict = |name: &str| {
            let info = &state.nodes()[name];
            spread_filter(&filter, info.node.as_deref().unwrap())
                .err()
                .map(|r| r.message())
        };
        assert_eq!(verdict("n1").as_deref(), Some(REASON_CONSTRAINTS));
        assert_eq!(verdict("n2").as_deref(), Some(REASON_CONSTRAINTS));
        assert_eq!(verdict("n3"), None);
        let unlabeled: Node = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(
            spread_filter(&filter, &unlabeled)
                .err()
                .map(|r| r.message())
                .as_deref(),
            Some(REASON_MISSING_LABEL)
        );
    }
}
