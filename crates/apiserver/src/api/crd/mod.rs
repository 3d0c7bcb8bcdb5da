//! CustomResourceDefinitions: the controller that serves established CRDs ([`controller`]), and
//! the hooks the generic handlers call for custom resources (and for CRDs themselves).
//!
//! Custom resources go through the same handlers as built-in kinds, keyed
//! `/registry/<group>/<plural>/…` like any other resource; `k3rs-api` makes the generic steps
//! follow the CRD (`ResourceInfo::decode` prunes by the structural schema, `apply_defaults`,
//! `validate_*`, `table_for` and the field selectors read it). What differs beyond that is
//! here: creates stop while the CRD is being deleted, and a CRD's deletion waits for its
//! objects to be gone. CEL rules (`x-kubernetes-validations`) and conversion webhooks are not
//! supported.

mod controller;

use http::StatusCode;
use k3rs_api::custom::CLEANUP_FINALIZER;
use k3rs_api::ResourceInfo;
use serde_json::Value;

use super::error::ApiError;
use super::objects::meta_str;
use super::Call;

pub(crate) use controller::run;

/// Whether `resource` is `apiextensions.k8s.io` CustomResourceDefinitions.
pub(crate) fn is_crd_resource(resource: &ResourceInfo) -> bool {
    resource.group == "apiextensions.k8s.io" && resource.kind == "CustomResourceDefinition"
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
