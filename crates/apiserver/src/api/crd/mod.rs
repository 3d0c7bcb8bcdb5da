//! CustomResourceDefinitions: the controller that serves established CRDs ([`controller`]), and
//! the hooks the generic handlers call for custom resources (and for CRDs themselves).
//!
//! Custom resources go through the same handlers as built-in kinds, keyed
//! `/registry/<group>/<plural>/…` like any other resource. What differs is here: decoding is the
//! schema's pruning (unknown fields named under `fieldValidation=Strict`), defaults and
//! validation come from the CRD's structural schema, creates stop while the CRD is being
//! deleted, and a CRD's deletion waits for its objects to be gone. CEL rules
//! (`x-kubernetes-validations`) and conversion webhooks are not supported.

mod controller;

use std::time::SystemTime;

use http::StatusCode;
use k3rs_api::custom::CLEANUP_FINALIZER;
use k3rs_api::ResourceInfo;
use serde_json::{json, Value};

use super::error::ApiError;
use super::objects::meta_str;
use super::Call;

pub(crate) use controller::run;

/// Whether `resource` is `apiextensions.k8s.io` CustomResourceDefinitions.
pub(crate) fn is_crd_resource(resource: &ResourceInfo) -> bool {
    resource.group == "apiextensions.k8s.io" && resource.kind == "CustomResourceDefinition"
}

/// Decodes a custom resource from the client's object: prunes what the schema does not
/// specify (refusing it under `fieldValidation=Strict`, as upstream's strict decoding), then
/// applies the schema's defaults. A CRD gets its own defaults (`singular`, `listKind`); other
/// kinds are left alone.
pub(crate) fn decode(call: &Call<'_>, object: &mut Value) -> Result<(), ApiError> {
    if is_crd_resource(&call.resource) {
        k3rs_api::apply_defaults(&call.resource, object);
        return Ok(());
    }
    let Some(custom) = &call.resource.custom else {
        return Ok(());
    };
    let pruned = custom.prune(object);
    if !pruned.is_empty() && call.query.get("fieldValidation") == Some("Strict") {
        let kind = call.resource.kind;
        let unknown: Vec<String> = pruned
            .iter()
            .map(|path| format!("unknown field \"{path}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: strict decoding error: {}",
            call.resource.version,
            unknown.join(", ")
        )));
    }
    custom.apply_defaults(object);
    Ok(())
}

/// Validates a custom resource (metadata and schema) or a CRD on its way into the store; `old`
/// is the stored object on updates. A 422 `Status` names every field in upstream's words.
///
/// This is the CRD feature's own call into `k3rs_api`'s validation: once the generic write path
/// validates every kind, it is redundant and goes.
pub(crate) fn validate(
    call: &Call<'_>,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let resource = &call.resource;
    if !resource.is_custom() && !is_crd_resource(resource) {
        return Ok(());
    }
    let errors = match old {
        None => k3rs_api::validate_create(resource, object),
        Some(old) => k3rs_api::validate_update(resource, old, object),
    };
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        resource.kind,
        resource.group,
        meta_str(object, "name").unwrap_or(""),
        &errors,
    ))
}

/// Refuses new custom resources while their CRD is being deleted, as upstream.
pub(crate) fn check_create(call: &Call<'_>) -> Result<(), ApiError> {
    if call
        .resource
        .custom
        .as_ref()
        .is_some_and(|custom| custom.terminating)
    {
        return Err(ApiError {
            code: StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: "create not allowed while custom resource definition is terminating".into(),
            details: None,
        });
    }
    Ok(())
}

/// The finalizer a delete adds: a CRD keeps [`CLEANUP_FINALIZER`] until the controller has
/// deleted its objects.
pub(crate) fn delete_finalizer(resource: &ResourceInfo, object: &Value) -> Option<&'static str> {
    let first_delete = meta_str(object, "deletionTimestamp").is_none();
    (is_crd_resource(resource) && first_delete).then_some(CLEANUP_FINALIZER)
}

/// The Table of custom resources, from their CRD's printer columns; `None` for other kinds.
pub(crate) fn table(
    resource: &ResourceInfo,
    include: &str,
    objects: &[Value],
    list_metadata: Option<Value>,
) -> Option<Value> {
    resource.custom.as_ref()?;
    let table = k3rs_api::table_for(resource, objects, SystemTime::now());
    let mut out = table.to_json();
    if let Some(metadata) = list_metadata {
        out["metadata"] = metadata;
    }
    if let Some(rows) = out.get_mut("rows").and_then(Value::as_array_mut) {
        for (row, object) in rows.iter_mut().zip(objects) {
            let embedded = match include {
                "None" => continue,
                "Object" => object.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            row["object"] = embedded;
        }
    }
    Some(out)
}
