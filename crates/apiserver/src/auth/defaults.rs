//! The default RBAC policy every cluster starts with (upstream's `bootstrappolicy`), and its
//! reconciliation at start: missing roles and bindings are created, and default objects marked
//! `rbac.authorization.kubernetes.io/autoupdate: "true"` get back permissions and subjects that
//! were removed. Nothing is ever taken away from them.

use serde_json::{json, Value};

/// `kubernetes.io/bootstrapping: rbac-defaults`.
const BOOTSTRAPPING_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The annotation that lets reconciliation repair a default object.
pub(crate) const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

/// A rule limited to one named object.
fn named_rule(verbs: &[&str], group: &str, resource: &str, name: &str) -> Value {
    json!({"verbs": verbs, "apiGroups": [group], "resources": [resource], "resourceNames": [name]})
}

/// Upstream's `eventsRule()`: components record events through either API.
fn events_rule() -> Value {
    rule(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

/// What every control-plane component's role starts with (upstream repeats these in each):
/// events, its leader-election lease, and the non-mutating token and access reviews; then
/// the component's own `rules`.
fn component_rules<const N: usize>(lease: &str, rules: [Value; N]) -> Vec<Value> {
    let mut all = vec![
        events_rule(),
        rule(&["create"], &["coordination.k8s.io"], &["leases"]),
        named_rule(&["get", "update"], "coordination.k8s.io", "leases", lease),
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
        ),
    ];
    all.extend(rules);
    all
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    let mut label_map = serde_json::Map::new();
    for (k, v) in std::iter::once(&BOOTSTRAPPING_LABEL).chain(labels) {
        label_map.insert((*k).into(), json!(v));
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": label_map,
            "annotations": {AUTOUPDATE: "true"},
        },
        "rules": rules,
    })
}

fn aggregated_role(name: &str, labels: &[(&str, &str)], aggregate_from: &str) -> Value {
    let mut role = cluster_role(name, labels, Vec::new());
    role["aggregationRule"] = json!({"clusterRoleSelectors": [
        {"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{aggregate_from}"): "true"}}
    ]});
    role
}

fn binding(name: &str, role: &str, groups: &[&str], users: &[&str]) -> Value {
    let subjects: Vec<Value> =
        groups
            .iter()
            .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
            .chain(users.iter().map(
                |u| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}),
            ))
            .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {BOOTSTRAPPING_LABEL.0: BOOTSTRAPPING_LABEL.1},
            "annotations": {AUTOUPDATE: "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The default ClusterRoles (transcribed from upstream's bootstrap policy).
pub(crate) fn cluster_roles() -> Vec<Value> {
    let to_admin = ("rbac.authorization.k8s.io/aggregate-to-admin", "true");
    let to_edit = ("rbac.authorization.k8s.io/aggregate-to-edit", "true");
    let to_view = ("rbac.authorization.k8s.io/aggregate-to-view", "true");
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        aggregated_role("admin", &[], "admin"),
        aggregated_role("edit", &[to_admin], "edit"),
        aggregated_role("view", &[to_edit], "view"),
        cluster_role(
            "system:aggregate-to-admin",
            &[to_admin],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(
                    ALL,
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                ),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[to_edit],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                ),
                rule(ALL, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[to_view],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![url_rule(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            &[],
            vec![url_rule(
                &["get"],
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            )],
        ),
        cluster_role(
            "system:kube-controller-manager",
            &[],
            component_rules(
                "kube-controller-manager",
                [
                    rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
                    rule(&["delete"], &[""], &["secrets"]),
                    rule(
                        &["get"],
                        &[""],
                        &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                    ),
                    rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
                    rule(&["list", "watch"], &["*"], &["*"]),
                    rule(&["create"], &[""], &["serviceaccounts/token"]),
                ],
            ),
        ),
        // k3rs runs every controller under the one controller-manager identity (upstream's
        // `--use-service-account-credentials=false`): this role holds what they write, the
        // union of upstream's `system:controller:*` roles for the controllers k3rs runs (the
        // namespace controller and the garbage collector alone need every resource).
        cluster_role(
            "k3rs:controller-manager",
            &[],
            vec![rule(ALL, &["*"], &["*"])],
        ),
        cluster_role(
            "system:kube-scheduler",
            &[],
            component_rules(
                "kube-scheduler",
                [
                    rule(READ, &[""], &["nodes"]),
                    rule(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                    rule(&["create"], &[""], &["pods/binding", "bindings"]),
                    rule(&["patch", "update"], &[""], &["pods/status"]),
                    rule(READ, &[""], &["services", "replicationcontrollers"]),
                    rule(READ, &["apps", "extensions"], &["replicasets"]),
                    rule(READ, &["apps"], &["statefulsets"]),
                    rule(READ, &["policy"], &["poddisruptionbudgets"]),
                    rule(
                        READ,
                        &[""],
                        &["persistentvolumeclaims", "persistentvolumes"],
                    ),
                    rule(READ, &["storage.k8s.io"], &["csinodes"]),
                    rule(READ, &[""], &["namespaces"]),
                    rule(
                        READ,
                        &["storage.k8s.io"],
                        &["csidrivers", "csistoragecapacities"],
                    ),
                ],
            ),
        ),
        // Upstream's `NodeRules()`: what a kubelet reads and writes.
        cluster_role(
            "system:node",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews", "localsubjectaccessreviews"],
                ),
                rule(READ, &[""], &["services"]),
                rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
                rule(&["update", "patch"], &[""], &["nodes/status"]),
                rule(&["update", "patch"], &[""], &["nodes"]),
                rule(
                    &["create", "update", "patch"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(READ, &[""], &["pods"]),
                rule(&["create", "delete"], &[""], &["pods"]),
                rule(&["update", "patch"], &[""], &["pods/status"]),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(&["get", "list", "watch"], &[""], &["secrets", "configmaps"]),
                rule(
                    &["get"],
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["get"], &[""], &["endpoints"]),
                rule(
                    &["create", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["get", "create", "update", "patch", "delete"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    &["get", "update", "patch"],
                    &[""],
                    &["persistentvolumeclaims/status"],
                ),
                rule(
                    &[
                        "get", "watch", "list", "create", "update", "patch", "delete",
                    ],
                    &["storage.k8s.io"],
                    &["csinodes"],
                ),
                rule(
                    &["get", "list", "watch"],
                    &["node.k8s.io"],
                    &["runtimeclasses"],
                ),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
    ]
}

/// The default ClusterRoleBindings.
pub(crate) fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &["system:masters"], &[]),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
            &[],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
            &[],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
            &[],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            &["system:monitoring"],
            &[],
        ),
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            &["system:serviceaccounts"],
            &[],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            &[],
            &["system:kube-controller-manager"],
        ),
        binding(
            "k3rs:controller-manager",
            "k3rs:controller-manager",
            &[],
            &["system:kube-controller-manager"],
        ),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            &[],
            &["system:kube-scheduler"],
        ),
        // Upstream leaves `system:node` unbound and limits each kubelet with the Node
        // authorizer; k3rs has no Node authorizer yet, so every kubelet (group `system:nodes`)
        // gets the role, as clusters did before the Node authorizer existed.
        binding("system:node", "system:node", &["system:nodes"], &[]),
    ]
}

/// What reconciliation should store for an existing default object `existing`, given the
/// wanted `default`: `None` when nothing is missing or the object opted out of updates.
pub(crate) fn reconcile(existing: &Value, default: &Value) -> Option<Value> {
    let opted_out = existing
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        == Some("false");
    if opted_out {
        return None;
    }
    let mut updated = existing.clone();
    let mut changed = false;
    // Labels and annotations of the default are put back; others are kept.
    for field in ["labels", "annotations"] {
        if let Some(wanted) = default["metadata"].get(field).and_then(Value::as_object) {
            let meta = updated.get_mut("metadata").and_then(Value::as_object_mut)?;
            let have = meta.entry(field).or_insert_with(|| json!({}));
            let have = have.as_object_mut()?;
            for (k, v) in wanted {
                if have.get(k) != Some(v) {
                    have.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
        }
    }
    // Missing rules, selectors and subjects are added (aggregated roles get their rules from
    // the aggregation step, not from here).
    let aggregated = default.get("aggregationRule").is_some();
    let lists: &[(&str, Option<&str>)] = if aggregated {
        &[("aggregationRule", Some("clusterRoleSelectors"))]
    } else {
        &[("rules", None), ("subjects", None)]
    };
    for (field, inner) in lists {
        let wanted = match inner {
            Some(inner) => default.get(*field).and_then(|f| f.get(*inner)),
            None => default.get(*field),
        };
        let Some(wanted) = wanted.and_then(Value::as_array) else {
            continue;
        };
        let slot = match inner {
            Some(inner) => {
                let outer = updated
                    .as_object_mut()?
                    .entry(*field)
                    .or_insert_with(|| json!({}));
                if !outer.is_object() {
                    *outer = json!({});
                }
                outer
                    .as_object_mut()?
                    .entry(*inner)
                    .or_insert_with(|| json!([]))
            }
            None => updated
                .as_object_mut()?
                .entry(*field)
                .or_insert_with(|| json!([])),
        };
        if !slot.is_array() {
            *slot = json!([]);
        }
        let have = slot.as_array_mut()?;
        for item in wanted {
            if !have.contains(item) {
                have.push(item.clone());
                changed = true;
            }
        }
    }
    changed.then_some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named<'a>(objects: &'a [Value], name: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap()
    }

    #[test]
    fn default_roles_and_bindings() {
        let roles = cluster_roles();
        for name in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
        ] {
            named(&roles, name);
        }
        assert_eq!(
            named(&roles, "view")["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]
                ["rbac.authorization.k8s.io/aggregate-to-view"],
            "true"
        );
        // view aggregates into edit, edit into admin.
        assert_eq!(
            named(&roles, "view")["metadata"]["labels"]
                ["rbac.authorization.k8s.io/aggregate-to-edit"],
            "true"
        );
        let bindings = cluster_role_bindings();
        assert_eq!(
            named(&bindings, "cluster-admin")["subjects"][0]["name"],
            "system:masters"
        );
        assert_eq!(
            named(&bindings, "system:public-info-viewer")["subjects"][1]["name"],
            "system:unauthenticated"
        );
    }

    #[test]
    fn reconcile_restores_but_never_removes() {
        let default = named(&cluster_roles(), "system:basic-user").clone();
        assert_eq!(reconcile(&default, &default), None);
        let mut trimmed = default.clone();
        trimmed["rules"].as_array_mut().unwrap().pop();
        trimmed["rules"]
            .as_array_mut()
            .unwrap()
            .push(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}));
        let repaired = reconcile(&trimmed, &default).unwrap();
        assert_eq!(repaired["rules"].as_array().unwrap().len(), 3);
        let mut opted_out = trimmed.clone();
        opted_out["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert_eq!(reconcile(&opted_out, &default), None);
        // An aggregated role keeps its aggregated rules and gets its selectors back.
        let admin = named(&cluster_roles(), "admin").clone();
        let mut aggregated = admin.clone();
        aggregated["rules"] = json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]);
        assert_eq!(reconcile(&aggregated, &admin), None);
        aggregated["aggregationRule"] = json!({"clusterRoleSelectors": []});
        let repaired = reconcile(&aggregated, &admin).unwrap();
        assert_eq!(repaired["rules"], aggregated["rules"]);
        assert_eq!(repaired["aggregationRule"], admin["aggregationRule"]);
    }
}
