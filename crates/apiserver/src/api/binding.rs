//! Binding a pod to a node, as upstream's `BindingREST`: `POST …/pods/<name>/binding` (what
//! schedulers use) and the older `POST …/namespaces/<ns>/bindings`. The pod gets `spec.nodeName`,
//! the binding's annotations and a true `PodScheduled` condition in one guarded write; a pod
//! already assigned, being deleted, or held by scheduling gates is refused with 409. Nothing
//! else may change `spec.nodeName` once the pod exists (pod updates may not).

use http::{Method, Response};
use k3rs_api::{FieldError, FieldErrorKind, FieldPath};
use k3rs_store::StoreError;
use serde_json::{json, Map, Value};

use super::crud::parse_body;
use super::error::{ApiError, Subject};
use super::objects::{self, encode, meta_str, object_key};
use super::Call;
use crate::response::{created_status, ResponseBody};

/// How often a bind that lost a race with another writer of the pod is retried.
const RETRIES: usize = 8;

/// Whether the request is a binding: the pods' `binding` subresource or the `bindings` resource.
pub(crate) fn serves(call: &Call<'_>) -> bool {
    let resource = &call.resource;
    if !resource.group.is_empty() {
        return false;
    }
    matches!(
        (resource.kind, call.path.subresource.as_deref()),
        ("Pod", Some("binding")) | ("Binding", None)
    )
}

/// Binds the pod the request names to the binding's target node.
pub(crate) async fn bind(
    call: &Call<'_>,
    method: &Method,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let subresource = call.path.subresource.is_some();
    // `pods/<name>/binding` and the `bindings` collection take creates only.
    if *method != Method::POST || (!subresource && call.path.name.is_some()) {
        return Err(ApiError::method_not_allowed(method));
    }
    let Some(namespace) = call.namespace() else {
        return Err(ApiError::no_route());
    };
    let binding = parse_body(call, body)?;
    let name = meta_str(&binding, "name").unwrap_or("");
    if subresource && call.path.name.as_deref() != Some(name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    if meta_str(&binding, "namespace").is_some_and(|ns| !ns.is_empty() && ns != namespace) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let errors = validate(&binding);
    if !errors.is_empty() {
        return Err(ApiError::invalid("Binding", "", name, &errors));
    }
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let preconditions = Preconditions {
        uid: meta_str(&binding, "uid").filter(|u| !u.is_empty()),
        resource_version: objects::resource_version(&binding)?,
    };
    let annotations = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    let dry_run = call.query.dry_run()?;
    assign(call, name, node, &preconditions, annotations, dry_run).await?;
    Ok(created_status())
}

/// Upstream's `ValidatePodBinding`.
fn validate(binding: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        errors.push(FieldError::new(
            FieldErrorKind::NotSupported,
            FieldPath::new("target").child("kind"),
            Some(&json!(kind)),
            "supported values: \"Node\", \"<empty>\"",
        ));
    }
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        errors.push(FieldError::required(
            FieldPath::new("target").child("name"),
            "",
        ));
    }
    errors
}

#[derive(Debug)]
struct Preconditions<'a> {
    uid: Option<&'a str>,
    resource_version: Option<i64>,
}

/// Sets the pod's node, annotations and `PodScheduled` condition, retrying a lost race unless
/// the binding pinned the pod's resourceVersion.
async fn assign(
    call: &Call<'_>,
    name: &str,
    node: &str,
    preconditions: &Preconditions<'_>,
    annotations: Option<&Map<String, Value>>,
    dry_run: bool,
) -> Result<(), ApiError> {
    let binding_subject = Subject {
        group: "",
        resource: "pods/binding",
        name,
    };
    let pods = call
        .state
        .registry
        .find("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("the pods resource is not registered"))?;
    let pod_subject = Subject {
        group: "",
        resource: "pods",
        name,
    };
    let key = object_key(&pods, call.namespace(), name);
    for _ in 0..RETRIES {
        let kv = call
            .state
            .store
            .get(&key)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(pod_subject))?;
        let mut pod = objects::decode(&pods, &kv)?;
        if let Some(uid) = preconditions.uid {
            let actual = meta_str(&pod, "uid").unwrap_or("");
            if uid != actual {
                return Err(ApiError::conflict(
                    pod_subject,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(wanted) = preconditions.resource_version {
            if wanted != kv.mod_revision {
                return Err(ApiError::stale(pod_subject));
            }
        }
        bind_pod(&mut pod, node, annotations, &objects::now_rfc3339())
            .map_err(|why| ApiError::conflict(binding_subject, &why.to_string()))?;
        if dry_run {
            return Ok(());
        }
        match call
            .state
            .store
            .update(&key, encode(&pod)?, kv.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) if preconditions.resource_version.is_none() => {
                continue
            }
            Err(StoreError::Conflict { .. }) => return Err(ApiError::stale(pod_subject)),
            Err(StoreError::NotFound { .. }) => return Err(ApiError::not_found(pod_subject)),
            Err(err) => return Err(ApiError::internal(err)),
        }
    }
    Err(ApiError::conflict(
        pod_subject,
        "the object is being changed by too many writers at once; try again",
    ))
}

/// Why a pod may not be bound, in upstream's words (the message of its 409).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum BindRefused {
    #[error("pod {pod} is being deleted, cannot be assigned to a host")]
    Deleting { pod: String },
    /// Upstream quotes the node name as Go's `%q` does.
    #[error("pod {pod} is already assigned to node {}", Value::from(node.as_str()))]
    Assigned { pod: String, node: String },
    #[error("pod {pod} has non-empty .spec.schedulingGates")]
    Gated { pod: String },
    #[error("pod {pod} is not an object")]
    NotAnObject { pod: String },
}

/// The change a binding makes to the stored pod (upstream's `setPodNodeAndMetadata`), or why
/// it may not.
fn bind_pod(
    pod: &mut Value,
    node: &str,
    annotations: Option<&Map<String, Value>>,
    now: &str,
) -> Result<(), BindRefused> {
    let name = meta_str(pod, "name").unwrap_or("").to_owned();
    if meta_str(pod, "deletionTimestamp").is_some() {
        return Err(BindRefused::Deleting { pod: name });
    }
    let assigned = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !assigned.is_empty() {
        return Err(BindRefused::Assigned {
            pod: name,
            node: assigned.to_owned(),
        });
    }
    if pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|gates| !gates.is_empty())
    {
        return Err(BindRefused::Gated { pod: name });
    }
    let Some(object) = pod.as_object_mut() else {
        return Err(BindRefused::NotAnObject { pod: name });
    };
    let spec = object.entry("spec").or_insert_with(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("nodeName".into(), Value::from(node));
    }
    if let Some(annotations) = annotations.filter(|a| !a.is_empty()) {
        if let Some(meta) = objects::metadata_mut(pod) {
            let target = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(target) = target.as_object_mut() {
                target.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    set_scheduled(pod, now);
    Ok(())
}

/// Upstream's `UpdatePodCondition` with `PodScheduled=True`.
fn set_scheduled(pod: &mut Value, now: &str) {
    update_pod_condition(
        pod,
        json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null}),
        now,
    );
}

/// Upstream's `UpdatePodCondition`: `condition` (with its `type` and `status`) replaces the
/// pod's condition of that type or is added, its transition time kept while the status stays.
pub(super) fn update_pod_condition(pod: &mut Value, mut condition: Value, now: &str) {
    let Some(object) = pod.as_object_mut() else {
        return;
    };
    let status = object.entry("status").or_insert_with(|| json!({}));
    let Some(status) = status.as_object_mut() else {
        return;
    };
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(conditions) = conditions.as_array_mut() else {
        return;
    };
    let kind = condition.get("type").cloned();
    let existing = conditions
        .iter()
        .position(|c| c.get("type") == kind.as_ref());
    let since = existing
        .map(|i| &conditions[i])
        .filter(|c| c.get("status") == condition.get("status"))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| Value::from(now));
    if let Some(fields) = condition.as_object_mut() {
        fields.insert("lastTransitionTime".into(), since);
    }
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn binding_sets_the_node_annotations_and_condition() {
        let mut pod = json!({
            "metadata": {"name": "web", "annotations": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "Other", "status": "True"}
            ]}
        });
        let annotations = json!({"b": "2"});
        bind_pod(&mut pod, "n1", annotations.as_object(), NOW).unwrap();
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "1", "b": "2"}));
        assert_eq!(
            pod["status"]["conditions"],
            json!([
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": NOW},
                {"type": "Other", "status": "True"}
            ])
        );
    }

    #[test]
    fn binding_refuses_assigned_deleting_and_gated_pods() {
        let cases = [
            (
                json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n0"}}),
                "pod p is already assigned to node \"n0\"",
            ),
            (
                json!({"metadata": {"name": "p", "deletionTimestamp": NOW}, "spec": {}}),
                "pod p is being deleted, cannot be assigned to a host",
            ),
            (
                json!({"metadata": {"name": "p"}, "spec": {"schedulingGates": [{"name": "g"}]}}),
                "pod p has non-empty .spec.schedulingGates",
            ),
        ];
        for (mut pod, why) in cases {
            assert_eq!(
                bind_pod(&mut pod, "n1", None, NOW).map_err(|err| err.to_string()),
                Err(why.to_owned())
            );
        }
    }

    #[test]
    fn a_binding_needs_a_node_target() {
        let messages = |binding: Value| -> Vec<String> {
            validate(&binding).iter().map(ToString::to_string).collect()
        };
        assert!(messages(json!({"target": {"name": "n1", "kind": "Node"}})).is_empty());
        assert!(messages(json!({"target": {"name": "n1"}})).is_empty());
        assert_eq!(
            messages(json!({"target": {"kind": "Pod"}})),
            vec![
                "target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\"",
                "target.name: Required value",
            ]
        );
    }
}
