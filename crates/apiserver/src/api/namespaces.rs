//! Namespace rules of the API: the namespaces every cluster has, creates only into namespaces
//! that exist and are not terminating, and namespace deletion held by `spec.finalizers`.

use std::sync::Arc;

use k3rs_api::ResourceInfo;
use k3rs_store::{Store, StoreError};
use serde_json::{json, Value};

use super::error::{ApiError, Subject};
use super::objects::{decode, encode, meta_str, new_uid, now_rfc3339, object_key};
use super::registry::Registry;
use super::Call;

/// The namespaces a new cluster has (as upstream's and k3s's).
pub(crate) const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespaces(registry: &Registry) -> Result<Arc<ResourceInfo>, StoreError> {
    registry
        .find("", "v1", "namespaces")
        .ok_or_else(|| StoreError::Backend("the namespaces resource is not registered".into()))
}

/// Creates the system namespaces that are missing.
pub(crate) async fn bootstrap(store: &dyn Store, registry: &Registry) -> Result<(), StoreError> {
    let resource = namespaces(registry)?;
    for name in SYSTEM_NAMESPACES {
        let object = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": new_uid(),
                "creationTimestamp": now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let bytes = encode(&object).map_err(|err| StoreError::Backend(err.message))?;
        match store
            .create(&object_key(&resource, None, name), bytes)
            .await
        {
            Ok(_) => tracing::info!(namespace = name, "created system namespace"),
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Fails unless `namespace` exists and is not being deleted.
pub(crate) async fn check_accepts_creates(
    call: &Call<'_>,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    let resource = namespaces(&call.state.registry).map_err(ApiError::internal)?;
    let kv = call
        .state
        .store
        .get(&object_key(&resource, None, namespace))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found(Subject {
                group: "",
                resource: "namespaces",
                name: namespace,
            })
        })?;
    let object = decode(&resource, &kv)?;
    if meta_str(&object, "deletionTimestamp").is_some() {
        return Err(ApiError::forbidden(
            call.subject(name),
            &format!("unable to create new content in namespace {namespace} because it is being terminated"),
        ));
    }
    Ok(())
}

/// Whether a namespace's `spec.finalizers` still hold it (the namespace controller empties them
/// once the namespace's content is gone).
pub(crate) fn holds_deletion(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Namespace")
        && object
            .get("spec")
            .and_then(|s| s.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

/// A namespace being deleted says so in its phase.
pub(crate) fn mark_terminating(resource: &ResourceInfo, object: &mut Value) {
    if resource.group.is_empty() && resource.kind == "Namespace" {
        if let Some(map) = object.as_object_mut() {
            let status = map.entry("status").or_insert_with(|| json!({}));
            if let Some(status) = status.as_object_mut() {
                status.insert("phase".into(), json!("Terminating"));
            }
        }
    }
}
