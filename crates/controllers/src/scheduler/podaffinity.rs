//! Pod (anti-)affinity terms as upstream's `AffinityTerm`: which pods a term selects (its
//! namespaces — listed, selected by labels, or the owning pod's own — and its label selector),
//! and over which topology (a node label: `kubernetes.io/hostname`, a zone, anything).

use std::collections::{BTreeMap, BTreeSet};

use k3rs_api::selector::Selector;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Looks up a namespace's labels (for `namespaceSelector`); `None` when it is not known.
pub type NamespaceLabels<'a> = &'a dyn Fn(&str) -> Option<BTreeMap<String, String>>;

/// A `LabelSelector` object as a selector: absent matches nothing, `{}` everything, and one that
/// does not parse matches nothing.
pub fn selector_of(selector: Option<&LabelSelector>) -> Selector {
    Selector::from_typed(selector).unwrap_or_else(|_| Selector::nothing())
}

/// One parsed pod affinity or anti-affinity term.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    namespaces: BTreeSet<String>,
    namespace_selector: Selector,
    selector: Selector,
    /// The node label whose value is the term's topology domain.
    pub topology_key: String,
}

impl AffinityTerm {
    /// The term as written in a pod of `namespace`: without `namespaces` and
    /// `namespaceSelector` it selects pods of that namespace only.
    pub fn new(namespace: &str, term: &PodAffinityTerm) -> AffinityTerm {
        let listed = term.namespaces.as_deref().unwrap_or_default();
        let namespaces = if listed.is_empty() && term.namespace_selector.is_none() {
            BTreeSet::from([namespace.to_owned()])
        } else {
            listed.iter().cloned().collect()
        };
        AffinityTerm {
            namespaces,
            namespace_selector: selector_of(term.namespace_selector.as_ref()),
            selector: selector_of(term.label_selector.as_ref()),
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether the term covers pods of `namespace`.
    pub fn covers_namespace(&self, namespace: &str, namespace_labels: NamespaceLabels<'_>) -> bool {
        if self.namespaces.contains(namespace) {
            return true;
        }
        if self.namespace_selector.is_nothing() {
            return false;
        }
        if self.namespace_selector.is_everything() {
            return true;
        }
        namespace_labels(namespace).is_some_and(|labels| self.namespace_selector.matches(&labels))
    }

    /// The namespaces the term covers when it lists them (no `namespaceSelector`); `None` when
    /// a namespace selector may add any namespace.
    pub fn listed_namespaces(&self) -> Option<&BTreeSet<String>> {
        self.namespace_selector
            .is_nothing()
            .then_some(&self.namespaces)
    }

    /// Whether the term selects a pod of `namespace` with `labels`.
    pub fn matches(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        namespace_labels: NamespaceLabels<'_>,
    ) -> bool {
        self.selects_labels(labels) && self.covers_namespace(namespace, namespace_labels)
    }

    /// Whether the term's label selector matches `labels` (namespaces aside).
    pub fn selects_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.matches(labels)
    }
}

/// The required affinity terms of `pod`, as written.
pub fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// The required anti-affinity terms of `pod`, as written.
pub fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// `pod`'s labels (empty when it has none).
pub fn pod_labels(pod: &Pod) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn term(value: serde_json::Value) -> PodAffinityTerm {
        serde_json::from_value(value).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn namespaces_default_to_the_pods_own() {
        let no_labels = |_: &str| None;
        let own = AffinityTerm::new(
            "a",
            &term(json!({"topologyKey": "k", "labelSelector": {"matchLabels": {"app": "web"}}})),
        );
        let web = labels(&[("app", "web")]);
        assert!(own.matches("a", &web, &no_labels));
        assert!(!own.matches("b", &web, &no_labels));
        assert!(!own.matches("a", &labels(&[("app", "db")]), &no_labels));

        let listed = AffinityTerm::new(
            "a",
            &term(json!({"topologyKey": "k", "namespaces": ["b"], "labelSelector": {}})),
        );
        assert!(listed.matches("b", &BTreeMap::new(), &no_labels));
        assert!(!listed.matches("a", &BTreeMap::new(), &no_labels));

        let all = AffinityTerm::new(
            "a",
            &term(json!({"topologyKey": "k", "namespaceSelector": {}, "labelSelector": {}})),
        );
        assert!(all.matches("zzz", &BTreeMap::new(), &no_labels));

        let team = |ns: &str| (ns == "t").then(|| labels(&[("team", "x")]));
        let selected = AffinityTerm::new(
            "a",
            &term(
                json!({"topologyKey": "k", "namespaceSelector": {"matchLabels": {"team": "x"}},
                         "labelSelector": {}}),
            ),
        );
        assert!(selected.matches("t", &BTreeMap::new(), &team));
        assert!(!selected.matches("a", &BTreeMap::new(), &team));

        // No label selector selects no pod.
        let none = AffinityTerm::new("a", &term(json!({"topologyKey": "k"})));
        assert!(!none.matches("a", &web, &no_labels));
    }
}
