//! Node selectors as upstream's component-helpers match them: a pod's `nodeSelector` and
//! required node affinity (terms ORed, each term's expressions and fields ANDed; `In`, `NotIn`,
//! `Exists`, `DoesNotExist`, `Gt`, `Lt` on labels, `In`/`NotIn` on `metadata.name`), its
//! preferred terms (weights summed), and a PersistentVolume's node affinity.

use std::collections::{BTreeMap, BTreeSet};

use k3rs_api::selector::{Operator, Requirement, Selector};
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};

/// The labels of `node` (empty when it has none).
pub fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// A `metadata.name` requirement of a term's `matchFields`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NameRequirement {
    Is(String),
    IsNot(String),
}

/// One parsed node selector term. A term that does not parse matches nothing, as upstream
/// (validation refuses such pods, so only old objects can hold one).
#[derive(Clone, Debug)]
struct Term {
    labels: Option<Selector>,
    fields: Option<Vec<NameRequirement>>,
    valid: bool,
}

impl Term {
    fn new(term: &NodeSelectorTerm) -> Term {
        let mut valid = true;
        let labels = term
            .match_expressions
            .as_ref()
            .filter(|e| !e.is_empty())
            .and_then(|expressions| match label_selector(expressions) {
                Some(selector) => Some(selector),
                None => {
                    valid = false;
                    None
                }
            });
        let fields = term
            .match_fields
            .as_ref()
            .filter(|f| !f.is_empty())
            .and_then(|fields| match field_requirements(fields) {
                Some(requirements) => Some(requirements),
                None => {
                    valid = false;
                    None
                }
            });
        Term {
            labels,
            fields,
            valid,
        }
    }

    fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none() && self.valid
    }

    /// Whether the term matches; `name` is `None` where fields are not matched (a volume's
    /// node affinity is checked against the node's labels only, as upstream).
    fn matches(&self, labels: &BTreeMap<String, String>, name: Option<&str>) -> bool {
        if self.is_empty() || !self.valid {
            return false;
        }
        if let Some(selector) = &self.labels {
            if !selector.matches(labels) {
                return false;
            }
        }
        if let (Some(fields), Some(name)) = (&self.fields, name) {
            return fields.iter().all(|requirement| match requirement {
                NameRequirement::Is(wanted) => wanted == name,
                NameRequirement::IsNot(unwanted) => unwanted != name,
            });
        }
        true
    }
}

fn label_selector(expressions: &[NodeSelectorRequirement]) -> Option<Selector> {
    let mut requirements = Vec::with_capacity(expressions.len());
    for expression in expressions {
        let operator = match expression.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::GreaterThan,
            "Lt" => Operator::LessThan,
            _ => return None,
        };
        let values = expression.values.clone().unwrap_or_default();
        requirements.push(Requirement::new(&expression.key, operator, values).ok()?);
    }
    Some(Selector::from_requirements(requirements))
}

fn field_requirements(fields: &[NodeSelectorRequirement]) -> Option<Vec<NameRequirement>> {
    fields
        .iter()
        .map(|field| {
            let [value] = field.values.as_deref().unwrap_or_default() else {
                return None;
            };
            match (field.key.as_str(), field.operator.as_str()) {
                ("metadata.name", "In") => Some(NameRequirement::Is(value.clone())),
                ("metadata.name", "NotIn") => Some(NameRequirement::IsNot(value.clone())),
                _ => None,
            }
        })
        .collect()
}

fn terms_of(selector: &NodeSelector) -> Vec<Term> {
    selector.node_selector_terms.iter().map(Term::new).collect()
}

/// A pod's hard node constraints: `spec.nodeSelector` and required node affinity.
#[derive(Clone, Debug, Default)]
pub struct RequiredNodeAffinity {
    node_selector: Option<BTreeMap<String, String>>,
    /// `None` without required node affinity; the terms are ORed.
    terms: Option<Vec<Term>>,
}

impl RequiredNodeAffinity {
    /// The constraints of `pod`.
    pub fn of(pod: &Pod) -> RequiredNodeAffinity {
        let spec = pod.spec.as_ref();
        let node_selector = spec
            .and_then(|s| s.node_selector.clone())
            .filter(|s| !s.is_empty());
        let terms = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(terms_of);
        RequiredNodeAffinity {
            node_selector,
            terms,
        }
    }

    /// Whether `node` satisfies them.
    pub fn matches(&self, node: &Node) -> bool {
        let labels = node_labels(node);
        if let Some(wanted) = &self.node_selector {
            if !wanted
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
            {
                return false;
            }
        }
        match &self.terms {
            None => true,
            Some(terms) => {
                let name = node.metadata.name.as_deref().unwrap_or("");
                let name = (!name.is_empty()).then_some(name);
                terms.iter().any(|term| term.matches(labels, name))
            }
        }
    }
}

/// The only nodes a pod's required node affinity can match when every term names them with
/// `metadata.name In` (upstream's NodeAffinity PreFilter result); `None` when any node may.
pub fn named_nodes(pod: &Pod) -> Option<BTreeSet<String>> {
    let terms = &pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let mut union = BTreeSet::new();
    for term in terms {
        let mut names: Option<BTreeSet<String>> = None;
        for field in term.match_fields.iter().flatten() {
            if field.key == "metadata.name" && field.operator == "In" {
                let values: BTreeSet<String> = field.values.iter().flatten().cloned().collect();
                names = Some(match names {
                    None => values,
                    Some(names) => names.intersection(&values).cloned().collect(),
                });
            }
        }
        // A term without a name requirement lets any node through: the terms are ORed.
        union.extend(names?);
    }
    Some(union)
}

/// A pod's preferred node affinity: weighted terms whose weights add up on a node.
#[derive(Clone, Debug, Default)]
pub struct PreferredNodeAffinity {
    terms: Vec<(i64, Term)>,
}

impl PreferredNodeAffinity {
    /// The preferences of `pod` (terms of weight 0 or without requirements are ignored).
    pub fn of(pod: &Pod) -> PreferredNodeAffinity {
        let terms = pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0)
            .map(|p| (i64::from(p.weight), Term::new(&p.preference)))
            .filter(|(_, term)| !term.is_empty())
            .collect();
        PreferredNodeAffinity { terms }
    }

    /// Whether there is any preference.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The sum of the weights of the terms `node` matches.
    pub fn score(&self, node: &Node) -> i64 {
        let labels = node_labels(node);
        let name = node.metadata.name.as_deref().filter(|n| !n.is_empty());
        self.terms
            .iter()
            .filter(|(_, term)| term.matches(labels, name))
            .map(|(weight, _)| weight)
            .sum()
    }
}

/// Whether `node`'s labels satisfy a PersistentVolume's `nodeAffinity.required` (its fields are
/// not matched, as upstream's volume check builds a node of labels only).
pub fn volume_affinity_matches(selector: &NodeSelector, node: &Node) -> bool {
    let labels = node_labels(node);
    terms_of(selector)
        .iter()
        .any(|term| term.matches(labels, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn pod_with_affinity(affinity: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "affinity": {"nodeAffinity": affinity}}
        }))
        .unwrap()
    }

    fn required(terms: serde_json::Value) -> RequiredNodeAffinity {
        RequiredNodeAffinity::of(&pod_with_affinity(json!({
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        })))
    }

    #[test]
    fn operators() {
        let n = node("n1", json!({"zone": "a", "cores": "8"}));
        let cases = [
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["x"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["4"]}]}]),
                false,
            ),
            // Both expressions of a term must hold; either term may.
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                                          {"key": "cores", "operator": "Lt", "values": ["4"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                    {"matchExpressions": [{"key": "cores", "operator": "Exists"}]}]),
                true,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                true,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]),
                false,
            ),
            // An empty term, an unknown operator, a bad field: nothing matches.
            (json!([{}]), false),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}]),
                false,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]}]),
                false,
            ),
        ];
        for (terms, wanted) in cases {
            assert_eq!(required(terms.clone()).matches(&n), wanted, "{terms}");
        }
    }

    #[test]
    fn node_selector_and_affinity_both_apply() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "nodeSelector": {"disk": "ssd"},
                     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}}}
        }))
        .unwrap();
        let affinity = RequiredNodeAffinity::of(&pod);
        assert!(affinity.matches(&node("a", json!({"disk": "ssd", "zone": "z"}))));
        assert!(!affinity.matches(&node("b", json!({"disk": "ssd"}))));
        assert!(!affinity.matches(&node("c", json!({"zone": "z"}))));
        assert!(RequiredNodeAffinity::default().matches(&node("d", json!({}))));
    }

    #[test]
    fn named_nodes_narrow_the_search() {
        let pod = pod_with_affinity(
            json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]},
                                 {"key": "metadata.name", "operator": "In", "values": ["b", "c"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["d"]}]}
            ]}}),
        );
        assert_eq!(
            named_nodes(&pod),
            Some(BTreeSet::from(["b".to_owned(), "d".to_owned()]))
        );
        let open = pod_with_affinity(
            json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
            ]}}),
        );
        assert_eq!(named_nodes(&open), None);
    }

    #[test]
    fn preferred_weights_add_up() {
        let pod = pod_with_affinity(json!({"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 3, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
            {"weight": 7, "preference": {}},
        ]}));
        let preferred = PreferredNodeAffinity::of(&pod);
        assert_eq!(
            preferred.score(&node("x", json!({"zone": "a", "disk": "1"}))),
            8
        );
        assert_eq!(preferred.score(&node("y", json!({"disk": "1"}))), 3);
        assert_eq!(preferred.score(&node("z", json!({}))), 0);
    }

    #[test]
    fn volume_affinity_ignores_fields() {
        let selector: NodeSelector = serde_json::from_value(json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}],
             "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["other"]}]}
        ]}))
        .unwrap();
        assert!(volume_affinity_matches(
            &selector,
            &node("n1", json!({"kubernetes.io/hostname": "n1"}))
        ));
        assert!(!volume_affinity_matches(
            &selector,
            &node("n2", json!({"kubernetes.io/hostname": "n2"}))
        ));
    }
}
