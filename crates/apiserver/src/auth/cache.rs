//! The RBAC policy cache, fed by a store watch, and ClusterRole aggregation.
//!
//! One task lists every RBAC object under one prefix, publishes a [`Policy`] snapshot, then
//! applies watch events as they come (several at once when they queue up) and publishes again.
//! When a ClusterRole changes, the aggregation step recomputes every ClusterRole with an
//! `aggregationRule` (the union of the rules of the ClusterRoles its selectors match, in name
//! order) and writes those that differ, compare-on-revision; the writes come back as events and
//! the step runs again until nothing changes. On any store error the task starts over with a
//! fresh list.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use backon::Retryable as _;
use futures::{FutureExt as _, StreamExt as _};
use k3rs_api::LabelSelector;
use k3rs_store::{EventKind, ListOptions, Revision, Store, StoreError};
use serde_json::Value;

use super::rbac::{Binding, Policy, PolicyRule, Role};

/// Every RBAC object lives under this prefix (see `api::objects` for the key layout).
pub(crate) const RBAC_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// One stored RBAC object.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) object: Value,
    pub(crate) mod_revision: Revision,
}

/// Stored RBAC objects by key.
pub(crate) type Objects = BTreeMap<String, Stored>;

/// The published policy and how far it has caught up with the store.
#[derive(Debug)]
pub(crate) struct PolicyCache {
    snapshot: RwLock<Arc<Policy>>,
    /// The store revision the snapshot reflects; -1 until the first list.
    applied: tokio::sync::watch::Sender<Revision>,
}

impl Default for PolicyCache {
    fn default() -> Self {
        PolicyCache {
            snapshot: RwLock::new(Arc::new(Policy::default())),
            applied: tokio::sync::watch::Sender::new(-1),
        }
    }
}

impl PolicyCache {
    /// The current policy.
    pub(crate) fn snapshot(&self) -> Arc<Policy> {
        match self.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Waits until the snapshot reflects every RBAC change up to `revision`.
    pub(crate) async fn wait_for(&self, revision: Revision) {
        let mut applied = self.applied.subscribe();
        let _ = applied.wait_for(|applied| *applied >= revision).await;
    }

    fn publish(&self, objects: &Objects, revision: Revision) {
        let policy = Arc::new(policy_from(objects));
        match self.snapshot.write() {
            Ok(mut guard) => *guard = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
        self.applied.send_replace(revision);
    }

    /// Keeps the snapshot up to date (and ClusterRoles aggregated) until the task is dropped.
    pub(crate) async fn run(&self, store: Arc<dyn Store>) {
        loop {
            // A watch that ends cleanly starts a new pass, with the back-off from the start.
            let _ = (|| self.sync(store.as_ref()))
                .retry(crate::retry::store_backoff())
                .notify(
                    |err, _| tracing::warn!(error = %err, "RBAC cache lost its watch; relisting"),
                )
                .await;
        }
    }

    async fn sync(&self, store: &dyn Store) -> Result<(), StoreError> {
        let (mut objects, revision) = load(store).await?;
        self.publish(&objects, revision);
        log_aggregation(aggregate(store, &objects).await);
        let mut events = store.watch(RBAC_PREFIX, revision).await?;
        while let Some(first) = events.next().await {
            let mut last = revision;
            let mut roles_changed = false;
            let mut next = Some(first);
            // Apply every event that is already queued before publishing once.
            while let Some(event) = next {
                let event = event?;
                last = event.revision;
                roles_changed |= is_cluster_role(&event.kv.key);
                match event.kind {
                    EventKind::Deleted => {
                        objects.remove(&event.kv.key);
                    }
                    EventKind::Created | EventKind::Modified => {
                        match serde_json::from_slice(&event.kv.value) {
                            Ok(object) => {
                                objects.insert(
                                    event.kv.key.clone(),
                                    Stored {
                                        object,
                                        mod_revision: event.kv.mod_revision,
                                    },
                                );
                            }
                            Err(err) => {
                                tracing::warn!(key = %event.kv.key, error = %err, "unreadable RBAC object ignored");
                                objects.remove(&event.kv.key);
                            }
                        }
                    }
                }
                next = events.next().now_or_never().flatten();
            }
            self.publish(&objects, last);
            if roles_changed {
                log_aggregation(aggregate(store, &objects).await);
            }
        }
        Err(StoreError::Closed)
    }
}

fn log_aggregation(result: Result<Revision, StoreError>) {
    if let Err(err) = result {
        tracing::warn!(error = %err, "aggregating ClusterRoles failed; will retry on the next change");
    }
}

fn is_cluster_role(key: &str) -> bool {
    key.strip_prefix(RBAC_PREFIX)
        .is_some_and(|rest| rest.starts_with("clusterroles/"))
}

/// Reads every RBAC object at one revision.
pub(crate) async fn load(store: &dyn Store) -> Result<(Objects, Revision), StoreError> {
    let mut objects = Objects::new();
    let mut token = None;
    let mut revision = None;
    loop {
        let page = store
            .list(
                RBAC_PREFIX,
                ListOptions {
                    limit: Some(500),
                    continue_token: token.take(),
                    revision: None,
                },
            )
            .await?;
        revision.get_or_insert(page.revision);
        for kv in page.items {
            match serde_json::from_slice(&kv.value) {
                Ok(object) => {
                    objects.insert(
                        kv.key,
                        Stored {
                            object,
                            mod_revision: kv.mod_revision,
                        },
                    );
                }
                Err(err) => {
                    tracing::warn!(key = %kv.key, error = %err, "unreadable RBAC object ignored")
                }
            }
        }
        match page.continue_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok((objects, revision.unwrap_or(0)))
}

/// Builds the evaluator's view of the stored objects.
pub(crate) fn policy_from(objects: &Objects) -> Policy {
    let mut policy = Policy::default();
    for (key, stored) in objects {
        let Some(rest) = key.strip_prefix(RBAC_PREFIX) else {
            continue;
        };
        let kind = rest.split('/').next().unwrap_or("");
        let object = &stored.object;
        let name = object
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let namespace = object
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match kind {
            "clusterroles" => {
                policy.cluster_roles.insert(name, Role::from_object(object));
            }
            "roles" => {
                policy
                    .roles
                    .insert((namespace, name), Role::from_object(object));
            }
            "clusterrolebindings" => {
                if let Some(mut binding) = Binding::from_object(object) {
                    binding.namespace.clear();
                    policy.cluster_role_bindings.push(binding);
                }
            }
            "rolebindings" => {
                if let Some(binding) = Binding::from_object(object) {
                    if !binding.namespace.is_empty() {
                        policy
                            .role_bindings
                            .entry(binding.namespace.clone())
                            .or_default()
                            .push(binding);
                    }
                }
            }
            _ => {}
        }
    }
    policy
}

/// The rules an aggregated ClusterRole should have: those of every other ClusterRole matched by
/// one of `selectors`, in name order, without duplicates (upstream's aggregation controller).
pub(crate) fn aggregated_rules(
    roles: &BTreeMap<&str, &Role>,
    name: &str,
    selectors: &[Value],
) -> Vec<PolicyRule> {
    let selectors: Vec<LabelSelector> = selectors
        .iter()
        .filter_map(|s| LabelSelector::from_label_selector(s).ok())
        // An empty selector would select every role: upstream ignores it too.
        .filter(|s| !s.is_everything())
        .collect();
    let mut rules = Vec::new();
    for (other, role) in roles {
        if *other == name {
            continue;
        }
        let labels: BTreeMap<String, String> = role.labels.clone();
        if !selectors.iter().any(|s| s.matches(&labels)) {
            continue;
        }
        for rule in &role.rules {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    rules
}

/// Writes the aggregated rules of every ClusterRole whose rules are out of date. Returns the
/// newest revision written (0 when nothing was).
pub(crate) async fn aggregate(
    store: &dyn Store,
    objects: &Objects,
) -> Result<Revision, StoreError> {
    let mut roles: BTreeMap<&str, (&str, &Stored, Role)> = BTreeMap::new();
    for (key, stored) in objects {
        if !is_cluster_role(key) {
            continue;
        }
        let Some(name) = stored
            .object
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        roles.insert(
            name,
            (key.as_str(), stored, Role::from_object(&stored.object)),
        );
    }
    let by_name: BTreeMap<&str, &Role> = roles.iter().map(|(n, (_, _, r))| (*n, r)).collect();
    let mut written = 0;
    for (name, (key, stored, role)) in &roles {
        let Some(selectors) = &role.aggregation else {
            continue;
        };
        let rules = aggregated_rules(&by_name, name, selectors);
        if rules == role.rules {
            continue;
        }
        let mut object = stored.object.clone();
        let Ok(serialized) = serde_json::to_value(&rules) else {
            continue;
        };
        object["rules"] = serialized;
        let bytes = k3rs_api::wire::to_vec(&object);
        match store.update(key, bytes, stored.mod_revision).await {
            Ok(kv) => {
                tracing::debug!(role = %name, rules = rules.len(), "aggregated ClusterRole");
                written = written.max(kv.mod_revision);
            }
            // Someone else changed it first: the event brings us back here.
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stored(object: Value) -> Stored {
        Stored {
            object,
            mod_revision: 1,
        }
    }

    #[test]
    fn prefix_matches_the_object_key_layout() {
        let registry = crate::api::Registry::builtin();
        for plural in [
            "roles",
            "clusterroles",
            "rolebindings",
            "clusterrolebindings",
        ] {
            let resource = registry
                .find("rbac.authorization.k8s.io", "v1", plural)
                .unwrap();
            assert_eq!(
                crate::api::objects::collection_prefix(&resource, None),
                format!("{RBAC_PREFIX}{plural}/")
            );
        }
    }

    #[test]
    fn aggregation_unions_selected_roles_in_name_order() {
        let view = Role::from_object(&json!({
            "metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]},
        }));
        let b = Role::from_object(&json!({
            "metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
        }));
        let a = Role::from_object(&json!({
            "metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
                      {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
        }));
        let other = Role::from_object(&json!({
            "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        }));
        let with_expression = Role::from_object(&json!({
            "aggregationRule": {"clusterRoleSelectors": [{"matchExpressions": [{"key": "rbac.authorization.k8s.io/aggregate-to-view", "operator": "Exists"}]}]},
        }));
        let roles: BTreeMap<&str, &Role> = [
            ("view", &view),
            ("b", &b),
            ("a", &a),
            ("other", &other),
            ("expr", &with_expression),
        ]
        .into_iter()
        .collect();
        let rules = aggregated_rules(&roles, "view", view.aggregation.as_ref().unwrap());
        let verbs: Vec<&str> = rules.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(verbs, ["list", "get"]);
        let rules = aggregated_rules(
            &roles,
            "expr",
            with_expression.aggregation.as_ref().unwrap(),
        );
        assert_eq!(rules.len(), 2);
        // An empty selector selects nothing.
        assert!(aggregated_rules(&roles, "x", &[json!({})]).is_empty());
    }

    #[test]
    fn policy_from_stored_objects() {
        let mut objects = Objects::new();
        objects.insert(
            format!("{RBAC_PREFIX}clusterroles/view"),
            stored(json!({"metadata": {"name": "view"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})),
        );
        objects.insert(
            format!("{RBAC_PREFIX}rolebindings/team/b"),
            stored(json!({"metadata": {"name": "b", "namespace": "team"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "alice"}]})),
        );
        let policy = policy_from(&objects);
        assert_eq!(policy.cluster_roles.len(), 1);
        assert_eq!(policy.role_bindings["team"].len(), 1);
    }
}
