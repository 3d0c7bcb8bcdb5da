//! Namespace rules of the API: the namespaces every cluster has, creates only into namespaces
//! that exist and are not terminating, and namespace deletion held by `spec.finalizers`.

use crate::internal_error::InternalError;
use std::sync::Arc;

use k3rs_api::ResourceInfo;
use k3rs_store::{Store, StoreError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;
use serde_json::{json, Value};

use super::error::{ApiError, Subject};
use super::objects::{decode, encode, meta_str, new_uid, now_rfc3339, object_key};
use super::registry::Registry;
use super::Call;

/// The namespaces a new cluster has (as upstream's and k3s's).
pub(crate) const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespaces(registry: &Registry) -> Result<Arc<ResourceInfo>, InternalError> {
    registry
        .find("", "v1", "namespaces")
        .ok_or(InternalError::NotRegistered {
            resource: "namespaces",
        })
}

/// The namespaces upstream's NamespaceLifecycle admission never lets be deleted
/// (`kube-node-lease` is not among them: upstream lets it go and recreates it).
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Upstream's NamespaceLifecycle admission on delete: the immortal namespaces answer 403
/// whether or not they exist, before anything is read or written.
pub(crate) fn check_deletable(resource: &ResourceInfo, name: &str) -> Result<(), ApiError> {
    if resource.group.is_empty()
        && resource.kind == "Namespace"
        && IMMORTAL_NAMESPACES.contains(&name)
    {
        return Err(ApiError::forbidden(
            Subject {
                group: "",
                resource: "namespaces",
                name,
            },
            "this namespace may not be deleted",
        ));
    }
    Ok(())
}

/// Creates the system namespaces that are missing.
pub(crate) async fn bootstrap(store: &dyn Store, registry: &Registry) -> Result<(), InternalError> {
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
        let bytes = encode(&object).map_err(|source| InternalError::Refused {
            operation: format!("encoding namespace {name}"),
            source,
        })?;
        match store
            .create(&object_key(&resource, None, name), bytes)
            .await
        {
            Ok(_) => tracing::info!(namespace = name, "created system namespace"),
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(err) => return Err(err.into()),
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
        let mut err = ApiError::forbidden(
            call.subject(name),
            &format!("unable to create new content in namespace {namespace} because it is being terminated"),
        );
        // Upstream adds a cause clients test for (`NamespaceTerminatingCause`).
        if let Some(details) = err.details.as_mut() {
            details
                .causes
                .get_or_insert_with(Vec::new)
                .push(StatusCause {
                    reason: Some("NamespaceTerminating".into()),
                    message: Some(format!("namespace {namespace} is being terminated")),
                    field: Some("metadata.namespace".into()),
                });
        }
        return Err(err);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(kind: &str) -> ResourceInfo {
        k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.group.is_empty() && r.kind == kind)
            .unwrap()
    }

    #[test]
    fn only_the_immortal_namespaces_are_refused() {
        let namespaces = builtin("Namespace");
        for name in ["default", "kube-system", "kube-public"] {
            let err = check_deletable(&namespaces, name).unwrap_err();
            assert_eq!(err.code, http::StatusCode::FORBIDDEN);
            assert_eq!(err.reason, "Forbidden");
            assert_eq!(
                err.message,
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")
            );
        }
        assert!(check_deletable(&namespaces, "kube-node-lease").is_ok());
        assert!(check_deletable(&namespaces, "web").is_ok());
        // A ConfigMap named `default` is no namespace.
        assert!(check_deletable(&builtin("ConfigMap"), "default").is_ok());
    }
}
