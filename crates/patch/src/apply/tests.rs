use serde_json::{json, Value};

use super::*;

const DEPLOYMENT: ApplySchema<'static> = ApplySchema::Builtin("io.k8s.api.apps.v1.Deployment");

fn manager(name: &'static str) -> Manager<'static> {
    Manager {
        name,
        api_version: "apps/v1",
        subresource: "",
        now: "2026-11-23T08:00:00Z",
    }
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "nginx", "image": image, "ports": [{"containerPort": 80}]},
                ]},
            },
        },
    })
}

fn entries(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_owned(),
                        e["operation"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields_of(object: &Value, manager: &str) -> Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|list| list.iter().find(|e| e["manager"] == manager))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

fn writer(manager: Manager<'static>, scope: Scope) -> Writer<'static> {
    Writer {
        manager,
        schema: DEPLOYMENT,
        scope,
    }
}

fn try_apply(live: Option<&Value>, config: &Value, who: &'static str) -> Result<Value, ApplyError> {
    apply(
        live,
        config,
        &writer(manager(who), Scope::AllButStatus),
        false,
    )
}

fn apply_as(live: Option<&Value>, config: &Value, who: &'static str, force: bool) -> Value {
    apply(
        live,
        config,
        &writer(manager(who), Scope::AllButStatus),
        force,
    )
    .unwrap_or_else(|err| panic!("apply as {who}: {err}"))
}

/// A non-apply write of `new` over `old` by `who`.
fn update_as(old: Option<&Value>, new: &mut Value, who: Manager<'static>, scope: Scope) {
    track_update(old, new, &writer(who, scope)).unwrap_or_else(|err| panic!("update: {err}"));
}

#[test]
fn apply_creates_with_the_appliers_fields() {
    let created = apply_as(None, &deployment(2, "nginx:1"), "kubectl", false);
    assert_eq!(entries(&created), [("kubectl".into(), "Apply".into())]);
    assert_eq!(
        fields_of(&created, "kubectl"),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {},
                            "f:containerPort": {},
                        }},
                    }}},
                },
            },
        })
    );
}

#[test]
fn conflicts_with_an_updater_unless_forced() {
    let created = apply_as(None, &deployment(2, "nginx:1"), "kubectl", false);
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(5);
    update_as(
        Some(&created),
        &mut scaled,
        Manager {
            subresource: "scale",
            ..manager("kubectl-scale")
        },
        Scope::AllButStatus,
    );
    assert_eq!(
        fields_of(&scaled, "kubectl-scale"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    // The applier no longer owns replicas: the scaler took it.
    assert!(fields_of(&scaled, "kubectl")["f:spec"]
        .get("f:replicas")
        .is_none());

    // Re-applying the same replicas changes it back: a conflict.
    let err = try_apply(Some(&scaled), &deployment(2, "nginx:1"), "kubectl").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" \
         using apps/v1: .spec.replicas"
    );
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("not a conflict")
    };
    assert_eq!(conflicts[0].field, ".spec.replicas");

    // Applying without replicas is no conflict and leaves the scaler's value.
    let mut without = deployment(2, "nginx:2");
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let kept = apply_as(Some(&scaled), &without, "kubectl", false);
    assert_eq!(kept["spec"]["replicas"], 5);
    assert_eq!(
        kept["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );

    // Forced: the applier takes replicas and the scaler's entry goes (it owned nothing else).
    let forced = apply_as(Some(&scaled), &deployment(2, "nginx:1"), "kubectl", true);
    assert_eq!(forced["spec"]["replicas"], 2);
    assert_eq!(entries(&forced), [("kubectl".into(), "Apply".into())]);
}

#[test]
fn two_appliers_share_equal_values_and_conflict_on_different_ones() {
    let created = apply_as(None, &deployment(2, "nginx:1"), "alice", false);
    let shared = apply_as(Some(&created), &deployment(2, "nginx:1"), "bob", false);
    assert_eq!(entries(&shared).len(), 2);
    let err = try_apply(Some(&shared), &deployment(3, "nginx:9"), "bob").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n\
         - .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn dropping_a_field_removes_it_unless_someone_else_owns_it() {
    let mut config = deployment(2, "nginx:1");
    config["metadata"]["labels"]["tier"] = json!("front");
    config["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    let created = apply_as(None, &config, "kubectl", false);
    // Another manager owns the tier label too (same value: shared).
    let mut other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"tier": "front"}}});
    let shared = apply_as(Some(&created), &other, "labeller", false);
    let reapplied = apply_as(Some(&shared), &deployment(2, "nginx:1"), "kubectl", false);
    assert_eq!(reapplied["metadata"]["labels"]["tier"], "front");
    let containers = reapplied["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "the sidecar nobody else owns is gone");
    // Once the labeller drops it too, the label goes.
    other["metadata"]["labels"] = json!({});
    let dropped = apply_as(Some(&reapplied), &other, "labeller", false);
    assert!(dropped["metadata"]["labels"].get("tier").is_none());
    assert_eq!(dropped["metadata"]["labels"]["app"], "web");
}

#[test]
fn associative_lists_merge_by_key_and_keep_others_items() {
    let created = apply_as(None, &deployment(2, "nginx:1"), "kubectl", false);
    let mut injected = created.clone();
    injected["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "proxy", "image": "envoy"}));
    update_as(
        Some(&created),
        &mut injected,
        manager("injector"),
        Scope::AllButStatus,
    );
    let updated = apply_as(Some(&injected), &deployment(2, "nginx:2"), "kubectl", false);
    let containers = &updated["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(containers[1]["name"], "proxy");
    // A port given with the defaulted protocol is the same item.
    let mut with_protocol = deployment(2, "nginx:2");
    with_protocol["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80, "protocol": "TCP"}]);
    let same = apply_as(Some(&updated), &with_protocol, "kubectl", false);
    assert_eq!(
        same["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn sets_merge_by_value() {
    let mut config = deployment(1, "nginx:1");
    config["metadata"]["finalizers"] = json!(["a.example/x"]);
    let created = apply_as(None, &config, "kubectl", false);
    let mut other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "finalizers": ["b.example/y"]}});
    let both = apply_as(Some(&created), &other, "controller", false);
    assert_eq!(
        both["metadata"]["finalizers"],
        json!(["a.example/x", "b.example/y"])
    );
    other["metadata"]["finalizers"] = json!([]);
    let one = apply_as(Some(&both), &other, "controller", false);
    assert_eq!(one["metadata"]["finalizers"], json!(["a.example/x"]));
}

#[test]
fn updates_track_changed_fields_and_strip_server_metadata() {
    let mut created = deployment(1, "nginx:1");
    created["metadata"]["uid"] = json!("u");
    created["metadata"]["resourceVersion"] = json!("5");
    created["status"] = json!({"replicas": 1});
    update_as(
        None,
        &mut created,
        manager("kubectl-create"),
        Scope::AllButStatus,
    );
    let fields = fields_of(&created, "kubectl-create");
    assert!(fields.get("f:status").is_none() && fields.get("f:apiVersion").is_none());
    assert_eq!(
        fields["f:metadata"],
        json!({"f:labels": {".": {}, "f:app": {}}})
    );
    assert!(
        fields["f:spec"].get(".").is_none(),
        "structs are not members"
    );

    // An unchanged write keeps the entry as it was (time included).
    let mut same = created.clone();
    let later = Manager {
        now: "2026-11-24T00:00:00Z",
        ..manager("kubectl-create")
    };
    update_as(Some(&created), &mut same, later, Scope::AllButStatus);
    assert_eq!(same, created);

    // A status writer owns only status.
    let mut status = created.clone();
    status["status"]["replicas"] = json!(2);
    status["spec"]["replicas"] = json!(9);
    let controller = Manager {
        subresource: "status",
        ..manager("controller")
    };
    update_as(Some(&created), &mut status, controller, Scope::OnlyStatus);
    assert_eq!(
        fields_of(&status, "controller"),
        json!({"f:status": {"f:replicas": {}}})
    );
}

#[test]
fn clients_may_replace_managed_fields_but_not_apply_them() {
    let created = apply_as(None, &deployment(1, "nginx:1"), "kubectl", false);
    let mut edited = created.clone();
    edited["metadata"]["managedFields"][0]["manager"] = json!("renamed");
    update_as(
        Some(&created),
        &mut edited,
        manager("kubectl-edit"),
        Scope::AllButStatus,
    );
    assert_eq!(entries(&edited), [("renamed".into(), "Apply".into())]);

    let mut config = deployment(1, "nginx:1");
    config["metadata"]["managedFields"] = json!([]);
    assert!(matches!(
        apply(
            None,
            &config,
            &writer(manager("kubectl"), Scope::Whole),
            false
        ),
        Err(ApplyError::BadRequest(_))
    ));
}

#[test]
fn duplicate_keys_are_invalid() {
    let mut config = deployment(1, "nginx:1");
    config["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]);
    let err = apply(
        None,
        &config,
        &writer(manager("kubectl"), Scope::Whole),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
    );
}

#[test]
fn custom_resources_follow_their_schema_markers() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "rules": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["host"],
                "items": {"type": "object", "properties": {
                    "host": {"type": "string"}, "port": {"type": "integer"},
                }},
            },
            "tags": {"type": "array", "items": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }}},
    });
    let custom = ApplySchema::Custom(Some(&schema));
    let who = |name| Manager {
        api_version: "example.com/v1",
        ..manager(name)
    };
    let config = json!({"apiVersion": "example.com/v1", "kind": "Thing",
        "metadata": {"name": "t", "labels": {"a": "b"}},
        "spec": {"rules": [{"host": "x", "port": 1}], "tags": ["one"], "free": {"k": {"n": 1}}}});
    let as_who = |name| Writer {
        manager: who(name),
        schema: custom,
        scope: Scope::Whole,
    };
    let created = apply(None, &config, &as_who("alice"), false).unwrap();
    assert_eq!(
        fields_of(&created, "alice")["f:spec"],
        json!({
            "f:free": {"f:k": {".": {}, "f:n": {}}},
            "f:rules": {"k:{\"host\":\"x\"}": {".": {}, "f:host": {}, "f:port": {}}},
            "f:tags": {},
        })
    );
    let other = json!({"apiVersion": "example.com/v1", "kind": "Thing",
        "metadata": {"name": "t"}, "spec": {"rules": [{"host": "y", "port": 2}]}});
    let both = apply(Some(&created), &other, &as_who("bob"), false).unwrap();
    assert_eq!(both["spec"]["rules"].as_array().map(Vec::len), Some(2));
    assert_eq!(both["metadata"]["labels"]["a"], "b");
}

#[test]
fn kubectl_takes_over_from_client_side_apply() {
    let mut created = deployment(2, "nginx:1");
    created["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": deployment(2, "nginx:1").to_string(),
        "note": "kept",
    });
    let mut csa = created.clone();
    update_as(
        None,
        &mut csa,
        manager("kubectl-client-side-apply"),
        Scope::AllButStatus,
    );
    // Another tool's server-side apply conflicts as usual...
    assert!(matches!(
        try_apply(Some(&csa), &deployment(2, "nginx:2"), "ci"),
        Err(ApplyError::Conflicts(_))
    ));
    // ...kubectl's takes over what the annotation says client-side apply set.
    let taken = apply_as(Some(&csa), &deployment(2, "nginx:2"), "kubectl", false);
    assert_eq!(
        taken["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    let recorded: Value = serde_json::from_str(
        taken["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(recorded, deployment(2, "nginx:2"));
    assert_eq!(taken["metadata"]["annotations"]["note"], "kept");

    // A field changed since the last client-side apply is a real conflict.
    let mut drifted = csa.clone();
    drifted["spec"]["replicas"] = json!(7);
    update_as(
        Some(&csa),
        &mut drifted,
        manager("kubectl-client-side-apply"),
        Scope::AllButStatus,
    );
    let err = try_apply(Some(&drifted), &deployment(2, "nginx:2"), "kubectl").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using \
         apps/v1: .spec.replicas"
    );
}

/// Found by the `server_side_apply` fuzz target: a kubectl apply whose configuration carries the
/// last-applied annotation itself was not idempotent (the first apply kept the annotation as
/// sent, the second rewrote it). Upstream syncs the annotation when the *result* of the apply
/// has one, so it is rewritten on create too, and a dropped one stays dropped.
#[test]
fn kubectl_syncs_the_last_applied_annotation_of_the_result() {
    let mut config = deployment(2, "nginx:1");
    config["metadata"]["annotations"] = json!({LAST_APPLIED: "{}"});
    let created = apply_as(None, &config, "kubectl", false);
    assert_eq!(
        created["metadata"]["annotations"][LAST_APPLIED],
        deployment(2, "nginx:1").to_string()
    );
    assert_eq!(apply_as(Some(&created), &config, "kubectl", false), created);

    // kubectl owned the annotation and no longer applies it: it goes, as any dropped field.
    let dropped = apply_as(Some(&created), &deployment(2, "nginx:1"), "kubectl", false);
    assert_eq!(
        dropped["metadata"]["annotations"].get(LAST_APPLIED),
        None,
        "{dropped}"
    );
}
