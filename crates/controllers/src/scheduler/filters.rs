//! The filters: whether one node can take the pod, and if not, why, in upstream's words. Each is
//! a plain function of the pod (or what was worked out from it once per cycle) and the node;
//! they run in upstream's order and the first that rejects a node speaks for it.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

use super::nodeaffinity::{node_labels, RequiredNodeAffinity};
use super::resources::Resources;
use super::state::{HostPort, NodeInfo};
use k3rs_api::well_known;

/// `NodeUnschedulable`: the node is cordoned.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// `NodeName`: the pod names another node.
pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// `NodeAffinity`: `nodeSelector` or required node affinity.
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// `NodePorts`: a host port is taken.
pub const REASON_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// `NodeResourcesFit`: the node runs as many pods as it takes.
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// `InterPodAffinity`: no pod the required affinity asks for is in the node's domain.
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// `InterPodAffinity`: a pod the required anti-affinity avoids is in the node's domain.
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// `InterPodAffinity`: a pod there avoids this one.
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// How final a rejection is (upstream's status codes): preemption could only help with
/// [`Code::Unschedulable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// The node could take the pod if other pods went away.
    Unschedulable,
    /// Nothing short of changing the node or the pod helps.
    UnschedulableAndUnresolvable,
}

/// Why a node (or every node) cannot take the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// How final it is.
    pub code: Code,
    /// Upstream's reasons, each counted in the `0/N nodes are available` message.
    pub reasons: Vec<String>,
}

impl Rejection {
    /// A rejection preemption might help with.
    pub fn unschedulable(reason: impl Into<String>) -> Rejection {
        Rejection {
            code: Code::Unschedulable,
            reasons: vec![reason.into()],
        }
    }

    /// A rejection nothing but a change of pod or node helps with.
    pub fn unresolvable(reason: impl Into<String>) -> Rejection {
        Rejection {
            code: Code::UnschedulableAndUnresolvable,
            reasons: vec![reason.into()],
        }
    }

    /// The reasons joined as upstream's `Status.Message`.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// The outcome of one filter on one node.
pub type Verdict = Result<(), Rejection>;

pub use crate::taints::tolerates;

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// `NodeUnschedulable`: a cordoned node (`spec.unschedulable`) takes only pods that tolerate
/// the `node.kubernetes.io/unschedulable:NoSchedule` taint.
pub fn node_unschedulable(pod: &Pod, node: &Node) -> Verdict {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if !cordoned {
        return Ok(());
    }
    let taint = Taint {
        key: well_known::TAINT_NODE_UNSCHEDULABLE.to_owned(),
        effect: "NoSchedule".to_owned(),
        ..Taint::default()
    };
    if tolerations(pod).iter().any(|t| tolerates(t, &taint)) {
        Ok(())
    } else {
        Err(Rejection::unresolvable(REASON_UNSCHEDULABLE))
    }
}

/// `NodeName`: a pod that names its node fits no other.
pub fn node_name(pod: &Pod, node: &Node) -> Verdict {
    let wanted = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("");
    if wanted.is_empty() || Some(wanted) == node.metadata.name.as_deref() {
        Ok(())
    } else {
        Err(Rejection::unresolvable(REASON_NODE_NAME))
    }
}

/// `TaintToleration`: every `NoSchedule` and `NoExecute` taint must be tolerated; the first that
/// is not is named.
pub fn taint_toleration(pod: &Pod, node: &Node) -> Verdict {
    let tolerations = tolerations(pod);
    let untolerated = taints(node).iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerations.iter().any(|t| tolerates(t, taint))
    });
    match untolerated {
        None => Ok(()),
        Some(taint) => Err(Rejection::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or("")
        ))),
    }
}

/// `NodeAffinity`: `nodeSelector` and required node affinity.
pub fn node_affinity(affinity: &RequiredNodeAffinity, node: &Node) -> Verdict {
    if affinity.matches(node) {
        Ok(())
    } else {
        Err(Rejection::unresolvable(REASON_NODE_AFFINITY))
    }
}

/// `NodePorts`: no wanted host port may clash with one in use.
pub fn node_ports(wanted: &[HostPort], node: &NodeInfo) -> Verdict {
    if wanted.iter().any(|port| node.port_conflict(port)) {
        Err(Rejection::unschedulable(REASON_NODE_PORTS))
    } else {
        Ok(())
    }
}

/// `NodeResourcesFit`: room for one more pod, and for each requested resource the node's
/// allocatable minus what its pods request; every shortage is a reason.
pub fn node_resources_fit(request: &Resources, node: &NodeInfo) -> Verdict {
    let mut reasons = Vec::new();
    if i64::try_from(node.pods)
        .unwrap_or(i64::MAX)
        .saturating_add(1)
        > node.allowed_pods
    {
        reasons.push(REASON_TOO_MANY_PODS.to_owned());
    }
    let free = |allocatable: i64, requested: i64| allocatable.saturating_sub(requested);
    if request.milli_cpu > 0
        && request.milli_cpu > free(node.allocatable.milli_cpu, node.requested.milli_cpu)
    {
        reasons.push("Insufficient cpu".to_owned());
    }
    if request.memory > 0 && request.memory > free(node.allocatable.memory, node.requested.memory) {
        reasons.push("Insufficient memory".to_owned());
    }
    if request.ephemeral_storage > 0
        && request.ephemeral_storage
            > free(
                node.allocatable.ephemeral_storage,
                node.requested.ephemeral_storage,
            )
    {
        reasons.push("Insufficient ephemeral-storage".to_owned());
    }
    for (name, amount) in &request.scalar {
        let allocatable = node.allocatable.scalar.get(name).copied().unwrap_or(0);
        let requested = node.requested.scalar.get(name).copied().unwrap_or(0);
        if *amount > 0 && *amount > free(allocatable, requested) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            code: Code::Unschedulable,
            reasons,
        })
    }
}

/// Topology domains, by node label key and then value.
pub type Domains<T> = HashMap<String, HashMap<String, T>>;

/// What `InterPodAffinity` worked out once per cycle from the assigned pods.
#[derive(Clone, Debug, Default)]
pub struct InterPodAffinity {
    /// The topology keys of the pod's required affinity terms.
    pub affinity_keys: Vec<String>,
    /// Domains holding a pod that some affinity term of the pod selects, with how many.
    pub affinity_counts: Domains<u32>,
    /// Whether the pod matches all of its own affinity terms (so the first of a group that
    /// wants to be together can go anywhere).
    pub matches_own_affinity: bool,
    /// The topology keys of the pod's required anti-affinity terms.
    pub anti_affinity_keys: Vec<String>,
    /// Domains holding a pod that some anti-affinity term of the pod selects.
    pub anti_affinity_domains: Domains<()>,
    /// Domains holding a pod whose anti-affinity selects this pod.
    pub existing_anti_affinity_domains: Domains<()>,
}

fn in_domains<'a, T>(domains: &'a Domains<T>, key: &str, value: &str) -> Option<&'a T> {
    domains.get(key)?.get(value)
}

/// `InterPodAffinity`: the pod's required affinity (every term's domain on this node must hold
/// a selected pod), its anti-affinity (none may), and the anti-affinity of pods already there.
pub fn inter_pod_affinity(state: &InterPodAffinity, node: &Node) -> Verdict {
    let labels = node_labels(node);
    if !state.affinity_keys.is_empty() {
        let mut pods_exist = true;
        for key in &state.affinity_keys {
            match labels.get(key) {
                // Every topology key must be on the node.
                None => return Err(Rejection::unresolvable(REASON_AFFINITY)),
                Some(value) => {
                    if in_domains(&state.affinity_counts, key, value).is_none_or(|n| *n == 0) {
                        pods_exist = false;
                    }
                }
            }
        }
        let first_of_its_kind = state.affinity_counts.is_empty() && state.matches_own_affinity;
        if !pods_exist && !first_of_its_kind {
            return Err(Rejection::unresolvable(REASON_AFFINITY));
        }
    }
    if state.anti_affinity_keys.iter().any(|key| {
        labels
            .get(key)
            .is_some_and(|value| in_domains(&state.anti_affinity_domains, key, value).is_some())
    }) {
        return Err(Rejection::unschedulable(REASON_ANTI_AFFINITY));
    }
    if state
        .existing_anti_affinity_domains
        .iter()
        .any(|(key, values)| labels.get(key).is_some_and(|v| values.contains_key(v)))
    {
        return Err(Rejection::unschedulable(REASON_EXISTING_ANTI_AFFINITY));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::state::tests::{node, pod};
    use crate::scheduler::state::{ClusterState, ALL_ADDRESSES};
    use serde_json::json;
    use std::sync::Arc;

    fn node_json(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    fn reason(verdict: Verdict) -> Option<String> {
        verdict.err().map(|r| r.message())
    }

    #[test]
    fn cordoned_nodes_take_only_pods_that_tolerate_it() {
        let cordoned =
            node_json(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        let plain = pod("p", "", json!({}));
        let tolerant = pod(
            "p",
            "",
            json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            reason(node_unschedulable(&plain, &cordoned)).as_deref(),
            Some(REASON_UNSCHEDULABLE)
        );
        assert_eq!(reason(node_unschedulable(&tolerant, &cordoned)), None);
        assert_eq!(
            reason(node_unschedulable(
                &plain,
                &node_json(json!({"metadata": {"name": "n"}}))
            )),
            None
        );
    }

    #[test]
    fn node_name() {
        let n = node_json(json!({"metadata": {"name": "n1"}}));
        assert_eq!(reason(super::node_name(&pod("p", "", json!({})), &n)), None);
        assert_eq!(
            reason(super::node_name(&pod("p", "n1", json!({})), &n)),
            None
        );
        assert_eq!(
            reason(super::node_name(&pod("p", "n2", json!({})), &n)).as_deref(),
            Some(REASON_NODE_NAME)
        );
    }

    #[test]
    fn taints_need_tolerations() {
        let tainted = node_json(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "soft", "value": "x", "effect": "PreferNoSchedule"},
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "evict", "effect": "NoExecute"}
        ]}}));
        let with =
            |tolerations: serde_json::Value| pod("p", "", json!({"tolerations": tolerations}));
        let cases = [
            (
                json!([]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                Some("node(s) had untolerated taint {evict: }"),
            ),
            (
                json!([{"key": "dedicated", "operator": "Equal", "value": "gpu"},
                       {"key": "evict", "operator": "Exists"}]),
                None,
            ),
            (json!([{"operator": "Exists"}]), None),
            (
                json!([{"key": "dedicated", "value": "cpu"}, {"key": "evict", "operator": "Exists"}]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
                       {"key": "evict", "operator": "Exists"}]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
        ];
        for (tolerations, wanted) in cases {
            assert_eq!(
                reason(taint_toleration(&with(tolerations.clone()), &tainted)).as_deref(),
                wanted,
                "{tolerations}"
            );
        }
    }

    #[test]
    fn node_selector_mismatch() {
        let p = pod("p", "", json!({"nodeSelector": {"disk": "ssd"}}));
        let affinity = RequiredNodeAffinity::of(&p);
        let ssd = node_json(json!({"metadata": {"name": "a", "labels": {"disk": "ssd"}}}));
        let hdd = node_json(json!({"metadata": {"name": "b", "labels": {"disk": "hdd"}}}));
        assert_eq!(reason(node_affinity(&affinity, &ssd)), None);
        assert_eq!(
            reason(node_affinity(&affinity, &hdd)).as_deref(),
            Some(REASON_NODE_AFFINITY)
        );
    }

    #[test]
    fn host_ports() {
        let mut state = ClusterState::new();
        state.set_node(node("n1", "1", "1Gi", "10"));
        let web = json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 80}]}]});
        state.apply_pod(
            &k3rs_runtime::cache::ObjectKey::new("default", "a"),
            &pod("a", "n1", web),
        );
        let info = &state.nodes()["n1"];
        let port = |port, protocol: &str| HostPort {
            protocol: protocol.into(),
            port,
            ip: ALL_ADDRESSES.into(),
        };
        assert_eq!(
            reason(node_ports(&[port(80, "TCP")], info)).as_deref(),
            Some(REASON_NODE_PORTS)
        );
        assert_eq!(reason(node_ports(&[port(80, "UDP")], info)), None);
        assert_eq!(reason(node_ports(&[port(81, "TCP")], info)), None);
        assert_eq!(
            node_ports(&[port(80, "TCP")], info).unwrap_err().code,
            Code::Unschedulable
        );
    }

    #[test]
    fn resources_fit() {
        let mut info = NodeInfo::new(Arc::new(node_json(json!({
            "metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "10Gi",
                                       "example.com/gpu": "1", "pods": "2"}}
        }))));
        let request = |value: serde_json::Value| {
            let list = serde_json::from_value(value).unwrap();
            Resources::from_list(&list)
        };
        let ok = request(json!({"cpu": "1500m", "memory": "512Mi"}));
        assert_eq!(reason(node_resources_fit(&ok, &info)), None);
        assert_eq!(
            reason(node_resources_fit(&request(json!({"cpu": "2001m"})), &info)).as_deref(),
            Some("Insufficient cpu")
        );
        assert_eq!(
            reason(node_resources_fit(
                &request(json!({"memory": "2Gi", "ephemeral-storage": "11Gi", "example.com/gpu": "2", "example.com/fpga": "1"})),
                &info
            ))
            .as_deref(),
            Some("Insufficient memory, Insufficient ephemeral-storage, Insufficient example.com/fpga, Insufficient example.com/gpu")
        );
        // What the node's pods request is taken.
        info.requested = request(json!({"cpu": "1", "memory": "1Gi"}));
        info.pods = 2;
        assert_eq!(
            reason(node_resources_fit(&ok, &info)).as_deref(),
            Some("Too many pods, Insufficient cpu, Insufficient memory")
        );
        // A pod that requests nothing fits anywhere with room for a pod.
        info.pods = 1;
        assert_eq!(
            reason(node_resources_fit(&Resources::default(), &info)),
            None
        );
    }

    fn domain<T>(key: &str, value: &str, t: T) -> Domains<T> {
        HashMap::from([(key.to_owned(), HashMap::from([(value.to_owned(), t)]))])
    }

    #[test]
    fn inter_pod_affinity_rules() {
        let host = "kubernetes.io/hostname";
        let on = |name: &str| {
            node_json(json!({"metadata": {"name": name, "labels": {host: name, "zone": "z1"}}}))
        };
        let anti = InterPodAffinity {
            anti_affinity_keys: vec![host.into()],
            anti_affinity_domains: domain(host, "n1", ()),
            ..InterPodAffinity::default()
        };
        assert_eq!(
            reason(inter_pod_affinity(&anti, &on("n1"))).as_deref(),
            Some(REASON_ANTI_AFFINITY)
        );
        assert_eq!(reason(inter_pod_affinity(&anti, &on("n2"))), None);

        let existing = InterPodAffinity {
            existing_anti_affinity_domains: domain("zone", "z1", ()),
            ..InterPodAffinity::default()
        };
        assert_eq!(
            reason(inter_pod_affinity(&existing, &on("n2"))).as_deref(),
            Some(REASON_EXISTING_ANTI_AFFINITY)
        );

        let affinity = InterPodAffinity {
            affinity_keys: vec![host.into()],
            affinity_counts: domain(host, "n1", 1),
            ..InterPodAffinity::default()
        };
        assert_eq!(reason(inter_pod_affinity(&affinity, &on("n1"))), None);
        let rejected = inter_pod_affinity(&affinity, &on("n2")).unwrap_err();
        assert_eq!(rejected.message(), REASON_AFFINITY);
        assert_eq!(rejected.code, Code::UnschedulableAndUnresolvable);
        // The first pod of a group that wants to be together goes anywhere with the key.
        let first = InterPodAffinity {
            affinity_keys: vec![host.into()],
            matches_own_affinity: true,
            ..InterPodAffinity::default()
        };
        assert_eq!(reason(inter_pod_affinity(&first, &on("n2"))), None);
        let unlabeled = node_json(json!({"metadata": {"name": "x"}}));
        assert_eq!(
            reason(inter_pod_affinity(&first, &unlabeled)).as_deref(),
            Some(REASON_AFFINITY)
        );
    }
}
