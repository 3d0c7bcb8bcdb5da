//! One scheduling cycle, without I/O: work out what the pod needs once ([`Incoming`]), reject
//! it early when it cannot go anywhere (PreFilter), run the filters on every node, score the
//! nodes that pass, and pick the best (ties at random) — or say why none fits. Every step costs
//! in proportion to the nodes and to the distinct pod groups the indexes hold, never to pods.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::diagnosis::{Diagnosis, FitError};
use super::filters::{self, Domains, InterPodAffinity, Rejection};
use super::nodeaffinity::{self, node_labels, PreferredNodeAffinity, RequiredNodeAffinity};
use super::podaffinity::{self, pod_labels, AffinityTerm, NamespaceLabels};
use super::resources::{self, Missing, Resources};
use super::scores::{self, normalize};
use super::spread::{self, Constraint, Peers, SpreadFilter, Workloads};
use super::state::{self, ClusterState, HostPort, NodeInfo};
use super::volumes::{self, PodVolumes, VolumeObjects};

/// A PreFilter's result for required affinity terms that name no common node.
pub const REASON_AFFINITY_CONFLICT: &str = "pod affinity terms conflict";

/// The objects outside the cluster state a cycle reads.
#[derive(Clone, Copy)]
pub struct Lookups<'a> {
    /// Claims, volumes, storage classes.
    pub volumes: &'a dyn VolumeObjects,
    /// Services and workloads (for default spreading).
    pub workloads: &'a dyn Workloads,
    /// Namespace labels (for `namespaceSelector`s).
    pub namespace_labels: NamespaceLabels<'a>,
}

impl std::fmt::Debug for Lookups<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups").finish_non_exhaustive()
    }
}

/// The pod to place and what was worked out from it, once per cycle.
#[derive(Debug)]
pub struct Incoming<'a> {
    /// The pod.
    pub pod: &'a Pod,
    requests: Resources,
    non_zero_requests: Resources,
    ports: Vec<HostPort>,
    node_affinity: RequiredNodeAffinity,
    named_nodes: Option<BTreeSet<String>>,
    preferred: PreferredNodeAffinity,
    volumes: Result<PodVolumes, Rejection>,
    soft_spread: Vec<Constraint>,
    system_spread: bool,
    affinity_terms: Vec<AffinityTerm>,
    anti_affinity_terms: Vec<AffinityTerm>,
}

impl<'a> Incoming<'a> {
    /// Works out what `pod` needs.
    pub fn new(pod: &'a Pod, lookups: Lookups<'_>) -> Incoming<'a> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        let has_own_constraints = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        let peers: Option<Peers> = if has_own_constraints {
            None
        } else {
            spread::default_peers(pod, lookups.workloads)
        };
        let terms = |terms: &[k8s_openapi::api::core::v1::PodAffinityTerm]| {
            terms
                .iter()
                .map(|t| AffinityTerm::new(namespace, t))
                .collect()
        };
        Incoming {
            pod,
            requests: resources::pod_requests(pod, Missing::Zero),
            non_zero_requests: resources::pod_requests(pod, Missing::Defaulted),
            ports: state::host_ports(pod),
            node_affinity: RequiredNodeAffinity::of(pod),
            named_nodes: nodeaffinity::named_nodes(pod),
            preferred: PreferredNodeAffinity::of(pod),
            volumes: volumes::prefilter(pod, lookups.volumes),
            soft_spread: spread::constraints(pod, "ScheduleAnyway", peers.as_ref()),
            system_spread: !has_own_constraints,
            affinity_terms: terms(podaffinity::required_affinity(pod)),
            anti_affinity_terms: terms(podaffinity::required_anti_affinity(pod)),
        }
    }

    /// Whether the pod may not preempt others (`preemptionPolicy: Never`).
    fn never_preempts(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.preemption_policy.as_deref())
            == Some("Never")
    }
}

/// `InterPodAffinity`'s PreFilter: the domains that hold pods the pod's terms select, and those
/// whose pods' anti-affinity selects the pod.
fn inter_pod_affinity(
    incoming: &Incoming<'_>,
    state: &ClusterState,
    namespace_labels: NamespaceLabels<'_>,
) -> InterPodAffinity {
    let pod = incoming.pod;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let labels = pod_labels(pod);
    // The value of `key` on the node called `node`.
    let value_on = |node: &str, key: &str| -> Option<String> {
        let node = state.nodes().get(node)?.node.as_deref()?;
        node_labels(node).get(key).cloned()
    };
    let mut result = InterPodAffinity {
        affinity_keys: incoming
            .affinity_terms
            .iter()
            .map(|t| t.topology_key.clone())
            .collect(),
        anti_affinity_keys: incoming
            .anti_affinity_terms
            .iter()
            .map(|t| t.topology_key.clone())
            .collect(),
        matches_own_affinity: !incoming.affinity_terms.is_empty()
            && incoming
                .affinity_terms
                .iter()
                .all(|t| t.matches(namespace, labels, namespace_labels)),
        ..InterPodAffinity::default()
    };
    for existing in state.anti_terms() {
        if existing.term.matches(namespace, labels, namespace_labels) {
            let key = &existing.term.topology_key;
            for node in existing.per_node.keys() {
                if let Some(value) = value_on(node, key) {
                    add_domain(&mut result.existing_anti_affinity_domains, key, value, ());
                }
            }
        }
    }
    let all_terms = || {
        incoming
            .affinity_terms
            .iter()
            .chain(&incoming.anti_affinity_terms)
    };
    if all_terms().next().is_none() {
        return result;
    }
    // Only the namespaces the terms list, unless a namespace selector may add any.
    let listed: Option<BTreeSet<&String>> = all_terms()
        .map(|t| t.listed_namespaces())
        .collect::<Option<Vec<_>>>()
        .map(|sets| sets.into_iter().flatten().collect());
    let groups: Box<dyn Iterator<Item = _>> = match &listed {
        Some(namespaces) => Box::new(
            namespaces
                .iter()
                .flat_map(|ns| state.groups(Some(ns.as_str()))),
        ),
        None => state.groups(None),
    };
    let mut anti: Domains<()> = HashMap::new();
    let mut counts: Domains<u32> = HashMap::new();
    for (group, per_node) in groups {
        for term in &incoming.affinity_terms {
            if term.matches(&group.namespace, &group.labels, namespace_labels) {
                for (node, count) in per_node {
                    if let Some(value) = value_on(node, &term.topology_key) {
                        *counts
                            .entry(term.topology_key.clone())
                            .or_default()
                            .entry(value)
                            .or_insert(0) += count;
                    }
                }
            }
        }
        for term in &incoming.anti_affinity_terms {
            if term.matches(&group.namespace, &group.labels, namespace_labels) {
                for node in per_node.keys() {
                    if let Some(value) = value_on(node, &term.topology_key) {
                        add_domain(&mut anti, &term.topology_key, value, ());
                    }
                }
            }
        }
    }
    result.affinity_counts = counts;
    result.anti_affinity_domains = anti;
    result
}

fn add_domain<T>(domains: &mut Domains<T>, key: &str, value: String, t: T) {
    domains.entry(key.to_owned()).or_default().insert(value, t);
}

/// Every filter on one node, in upstream's order; the first rejection speaks for the node.
fn filter(
    incoming: &Incoming<'_>,
    volumes: &PodVolumes,
    spread: &SpreadFilter,
    affinity: &InterPodAffinity,
    info: &NodeInfo,
    node: &Node,
) -> Result<(), Rejection> {
    let pod = incoming.pod;
    filters::node_unschedulable(pod, node)?;
    filters::node_name(pod, node)?;
    filters::taint_toleration(pod, node)?;
    filters::node_affinity(&incoming.node_affinity, node)?;
    filters::node_ports(&incoming.ports, info)?;
    filters::node_resources_fit(&incoming.requests, info)?;
    if !volumes.is_empty() {
        volumes::volume_binding(volumes, node)?;
    }
    if !spread.is_empty() {
        spread::spread_filter(spread, node)?;
    }
    filters::inter_pod_affinity(affinity, node)
}

/// The weighted scores of the `feasible` nodes.
fn score(
    incoming: &Incoming<'_>,
    state: &ClusterState,
    feasible: &[(&NodeInfo, &Node)],
) -> Vec<i64> {
    let pod = incoming.pod;
    let nodes: Vec<&Node> = feasible.iter().map(|(_, node)| *node).collect();
    let mut taints: Vec<i64> = nodes
        .iter()
        .map(|node| scores::intolerable_prefer_no_schedule(pod, node))
        .collect();
    normalize(&mut taints, true);
    let mut preferred: Vec<i64> = nodes
        .iter()
        .map(|node| incoming.preferred.score(node))
        .collect();
    normalize(&mut preferred, false);
    let spread = spread::spread_scores(
        pod,
        &incoming.soft_spread,
        incoming.system_spread,
        &incoming.node_affinity,
        state,
        &nodes,
    );
    // BalancedAllocation skips pods that request no CPU or memory.
    let balanced = incoming.requests.milli_cpu != 0 || incoming.requests.memory != 0;
    feasible
        .iter()
        .enumerate()
        .map(|(i, (info, _))| {
            let mut total = scores::TAINT_TOLERATION_WEIGHT * taints[i]
                + scores::NODE_AFFINITY_WEIGHT * preferred[i]
                + scores::SPREAD_WEIGHT * spread[i]
                + scores::RESOURCES_FIT_WEIGHT
                    * scores::least_allocated(&incoming.non_zero_requests, info);
            if balanced {
                total += scores::BALANCED_ALLOCATION_WEIGHT
                    * scores::balanced_allocation(&incoming.requests, info);
            }
            total
        })
        .collect()
}

/// Places `incoming` on a node of `state`: the chosen node's name, or why none fits. `pick(n)`
/// returns a number below `n` (the random tie-break).
pub fn schedule(
    incoming: &Incoming<'_>,
    state: &ClusterState,
    namespace_labels: NamespaceLabels<'_>,
    pick: &mut dyn FnMut(usize) -> usize,
) -> Result<String, FitError> {
    let nodes: Vec<(&NodeInfo, &Node)> = state
        .nodes()
        .values()
        .filter_map(|info| Some((info, info.node.as_deref()?)))
        .collect();
    if nodes.is_empty() {
        return Err(FitError::NoNodes);
    }
    let diagnosis = |prefilter: Option<Rejection>, filtered, absent| {
        FitError::Unfit(Diagnosis {
            nodes: nodes.len(),
            prefilter,
            filtered,
            absent,
            never_preempts: incoming.never_preempts(),
        })
    };
    // PreFilter, in upstream's order: NodeAffinity, VolumeBinding.
    if incoming
        .named_nodes
        .as_ref()
        .is_some_and(BTreeSet::is_empty)
    {
        return Err(diagnosis(
            Some(Rejection::unresolvable(REASON_AFFINITY_CONFLICT)),
            Vec::new(),
            None,
        ));
    }
    let volumes = match &incoming.volumes {
        Ok(volumes) => volumes,
        Err(rejection) => return Err(diagnosis(Some(rejection.clone()), Vec::new(), None)),
    };
    let (candidates, absent) = match &incoming.named_nodes {
        None => (nodes.clone(), None),
        Some(names) => (
            nodes
                .iter()
                .filter(|(info, _)| names.contains(info.name()))
                .copied()
                .collect(),
            Some(Rejection::unresolvable(
                "node(s) didn't satisfy plugin(s) [NodeAffinity]",
            )),
        ),
    };
    let spread_filter = SpreadFilter::new(incoming.pod, &incoming.node_affinity, state);
    let affinity = inter_pod_affinity(incoming, state, namespace_labels);
    let mut feasible = Vec::new();
    let mut rejected = Vec::new();
    for (info, node) in candidates {
        match filter(incoming, volumes, &spread_filter, &affinity, info, node) {
            Ok(()) => feasible.push((info, node)),
            Err(rejection) => rejected.push(rejection),
        }
    }
    match feasible.as_slice() {
        [] => return Err(diagnosis(None, rejected, absent)),
        [(info, _)] => return Ok(info.name().to_owned()),
        _ => {}
    }
    let scores = score(incoming, state, &feasible);
    // Reservoir sampling among the best: each of n ties wins with probability 1/n.
    let mut best: Option<(usize, i64)> = None;
    let mut ties = 0;
    for (i, score) in scores.iter().enumerate() {
        match best {
            Some((_, top)) if *score < top => {}
            Some((_, top)) if *score == top => {
                ties += 1;
                if pick(ties) == 0 {
                    best = Some((i, *score));
                }
            }
            _ => {
                best = Some((i, *score));
                ties = 1;
            }
        }
    }
    let chosen = best.map_or(0, |(i, _)| i);
    Ok(feasible[chosen].0.name().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::state::tests::node;
    use k3rs_runtime::cache::ObjectKey;
    use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
    use k8s_openapi::api::core::v1::{
        PersistentVolume, PersistentVolumeClaim, ReplicationController, Service,
    };
    use k8s_openapi::api::storage::v1::StorageClass;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    struct Nothing;

    impl VolumeObjects for Nothing {
        fn claim(&self, _: &str, _: &str) -> Option<Arc<PersistentVolumeClaim>> {
            None
        }
        fn volume(&self, _: &str) -> Option<Arc<PersistentVolume>> {
            None
        }
        fn class(&self, _: &str) -> Option<Arc<StorageClass>> {
            None
        }
    }

    impl Workloads for Nothing {
        fn services(&self, _: &str) -> Vec<Arc<Service>> {
            Vec::new()
        }
        fn replication_controller(&self, _: &str, _: &str) -> Option<Arc<ReplicationController>> {
            None
        }
        fn replica_set(&self, _: &str, _: &str) -> Option<Arc<ReplicaSet>> {
            None
        }
        fn stateful_set(&self, _: &str, _: &str) -> Option<Arc<StatefulSet>> {
            None
        }
    }

    fn no_labels(_: &str) -> Option<BTreeMap<String, String>> {
        None
    }

    fn lookups() -> Lookups<'static> {
        Lookups {
            volumes: &Nothing,
            workloads: &Nothing,
            namespace_labels: &no_labels,
        }
    }

    fn pod(name: &str, labels: serde_json::Value, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c", "image": "x"}]);
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "labels": labels,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": "rs", "uid": "uid-rs", "controller": true}]},
            "spec": spec
        }))
        .unwrap()
    }

    fn requests(cpu: &str) -> serde_json::Value {
        json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]})
    }

    /// Schedules and assumes, as the scheduler does.
    fn place(state: &mut ClusterState, pod: &Pod) -> Result<String, FitError> {
        let incoming = Incoming::new(pod, lookups());
        let mut first = |_: usize| 0;
        let result = schedule(&incoming, state, &no_labels, &mut first);
        match result {
            Ok(node) => {
                let key = ObjectKey::new("default", pod.metadata.name.clone().unwrap());
                state.assume(&key, pod, &node);
                Ok(node)
            }
            Err(err) => Err(err),
        }
    }

    fn cluster() -> ClusterState {
        let mut state = ClusterState::new();
        state.set_node(node("n1", "1", "2Gi", "110"));
        state.set_node(node("n2", "2", "4Gi", "110"));
        state.set_node(node("n3", "4", "8Gi", "110"));
        state
    }

    #[test]
    fn no_nodes() {
        let mut state = ClusterState::new();
        assert_eq!(
            place(&mut state, &pod("a", json!({}), json!({})))
                .unwrap_err()
                .message(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn requests_that_fit_only_one_node() {
        let mut state = cluster();
        assert_eq!(
            place(&mut state, &pod("a", json!({}), requests("3"))).unwrap(),
            "n3"
        );
        // The assumed pod's requests count at once: the next one fits nowhere.
        assert_eq!(
            place(&mut state, &pod("b", json!({}), requests("3")))
                .unwrap_err()
                .message(),
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: \
             3 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn replicas_spread_over_nodes() {
        let mut state = ClusterState::new();
        state.set_node(node("n1", "4", "8Gi", "110"));
        state.set_node(node("n2", "4", "8Gi", "110"));
        let mut counts = BTreeMap::new();
        for i in 0..6 {
            let placed = place(
                &mut state,
                &pod(&format!("p{i}"), json!({"app": "web"}), json!({})),
            )
            .unwrap();
            *counts.entry(placed).or_insert(0) += 1;
        }
        assert_eq!(
            counts,
            BTreeMap::from([("n1".to_owned(), 3), ("n2".to_owned(), 3)])
        );
    }

    #[test]
    fn anti_affinity_by_hostname_leaves_the_third_replica_pending() {
        let mut state = ClusterState::new();
        state.set_node(node("n1", "4", "8Gi", "110"));
        state.set_node(node("n2", "4", "8Gi", "110"));
        let spec = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "db"}}}]}}});
        let first = place(&mut state, &pod("a", json!({"app": "db"}), spec.clone())).unwrap();
        let second = place(&mut state, &pod("b", json!({"app": "db"}), spec.clone())).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            place(&mut state, &pod("c", json!({"app": "db"}), spec.clone()))
                .unwrap_err()
                .message(),
            "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. \
             preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        );
        // A pod without the term is still kept away by the existing pods' anti-affinity.
        assert_eq!(
            place(&mut state, &pod("d", json!({"app": "db"}), json!({})))
                .unwrap_err()
                .message(),
            "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules. \
             preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        );
        // Other pods go anywhere.
        assert!(place(&mut state, &pod("e", json!({"app": "web"}), json!({}))).is_ok());
    }

    #[test]
    fn affinity_follows_the_pods_it_wants() {
        let mut state = cluster();
        let spec = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "cache"}}}]}}});
        // Nothing to follow yet, and the pod is not a cache itself.
        assert_eq!(
            place(&mut state, &pod("a", json!({"app": "web"}), spec.clone()))
                .unwrap_err()
                .message(),
            "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        let cache = place(
            &mut state,
            &pod("cache", json!({"app": "cache"}), requests("3")),
        )
        .unwrap();
        assert_eq!(
            place(&mut state, &pod("b", json!({"app": "web"}), spec)).unwrap(),
            cache
        );
    }

    #[test]
    fn named_nodes_narrow_the_candidates() {
        let mut state = cluster();
        let spec = json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}});
        assert_eq!(
            place(&mut state, &pod("a", json!({}), spec)).unwrap_err().message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn mixed_reasons() {
        let mut state = ClusterState::new();
        state.set_node(node("small", "1", "1Gi", "110"));
        state.set_node(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "tainted"},
                "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
                "status": {"allocatable": {"cpu": "8", "memory": "8Gi", "pods": "110"}}}))
            .unwrap(),
        ));
        state.set_node(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "cordoned"},
                "spec": {"unschedulable": true},
                "status": {"allocatable": {"cpu": "8", "memory": "8Gi", "pods": "110"}}}))
            .unwrap(),
        ));
        assert_eq!(
            place(&mut state, &pod("a", json!({}), requests("2"))).unwrap_err().message(),
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}, \
             1 node(s) were unschedulable. preemption: 0/3 nodes are available: \
             1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
        );
        let tolerant = json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}],
            "tolerations": [{"key": "dedicated", "operator": "Exists"}]});
        assert_eq!(
            place(&mut state, &pod("b", json!({}), tolerant)).unwrap(),
            "tainted"
        );
    }

    #[test]
    fn ties_are_broken_by_the_pick() {
        let mut state = ClusterState::new();
        state.set_node(node("n1", "4", "8Gi", "110"));
        state.set_node(node("n2", "4", "8Gi", "110"));
        state.set_node(node("n3", "4", "8Gi", "110"));
        let lone = pod("a", json!({}), json!({}));
        let mut lone = lone;
        lone.metadata.owner_references = None;
        let incoming = Incoming::new(&lone, lookups());
        let mut always_new = |_: usize| 0;
        assert_eq!(
            schedule(&incoming, &state, &no_labels, &mut always_new).unwrap(),
            "n3"
        );
        let mut never_new = |n: usize| n - 1;
        assert_eq!(
            schedule(&incoming, &state, &no_labels, &mut never_new).unwrap(),
            "n1"
        );
    }

    #[test]
    fn anti_affine_replicas_fill_a_large_cluster_one_per_node() {
        let mut state = ClusterState::new();
        for i in 0..50 {
            state.set_node(node(&format!("n{i:02}"), "64", "256Gi", "110"));
        }
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..500 {
            let app = format!("app{}", i % 10);
            let mut p = pod(
                &format!("p{i}"),
                json!({"app": app}),
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": app}}}]}}}),
            );
            if let Some(owner) = p
                .metadata
                .owner_references
                .as_mut()
                .and_then(|o| o.first_mut())
            {
                owner.uid = format!("uid-{app}");
            }
            *per_node.entry(place(&mut state, &p).unwrap()).or_insert(0) += 1;
        }
        assert_eq!(per_node.len(), 50);
        assert!(per_node.values().all(|n| *n == 10), "{per_node:?}");
        let extra = pod(
            "extra",
            json!({"app": "app0"}),
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "app0"}}}]}}}),
        );
        assert!(place(&mut state, &extra)
            .unwrap_err()
            .message()
            .starts_with(
                "0/50 nodes are available: 50 node(s) didn't match pod anti-affinity rules."
            ));
    }
}
