//! The patch engine: the three patch formats the Kubernetes API accepts, as pure functions from
//! (object, patch) to the patched object.
//!
//! - [`apply_json_patch`]: RFC 6902 JSON patch (`application/json-patch+json`).
//! - [`apply_merge_patch`]: RFC 7386 JSON merge patch (`application/merge-patch+json`).
//! - [`go_text`]: the text upstream's patch library writes for a JSON- or merge-patched object,
//!   which kube-apiserver quotes when the result does not decode.
//! - [`apply_strategic_merge_patch`]: strategic merge patch
//!   (`application/strategic-merge-patch+json`) for the built-in kinds, with upstream's semantics
//!   (`k8s.io/apimachinery/pkg/util/strategicpatch`): lists merged by their merge key, `null`
//!   deletes, and the directives `$patch`, `$retainKeys`, `$setElementOrder/<field>` and
//!   `$deleteFromPrimitiveList/<field>`. What to merge how comes from the kind's schema
//!   ([`PatchSchema`], generated from k8s-openapi) plus a hand-written table of upstream's
//!   `patchStrategy`/`patchMergeKey` struct tags ([`strategy::PATCH_STRATEGIES`]), which
//!   k8s-openapi does not carry. The same table feeds the OpenAPI documents
//!   ([`annotate_openapi_definitions`]), so `kubectl apply` computes its patches with the merge
//!   keys the server applies them with.
//!
//! **Invariants**
//! - Total: every input gives `Ok` or `Err`, never a panic (a proptest checks it, and a fuzz
//!   target will); errors name the operation or field path that failed.
//! - Pure: no I/O, no clock, no store. The inputs are never modified; a failed patch has no
//!   partial effect because the caller only ever sees a whole new object.
//! - This crate does not default, validate or prune the result: the API server does that to the
//!   patched object exactly as it does to a created one.

#![forbid(unsafe_code)]

pub mod apply;
mod error;
pub mod go_text;
mod json;
mod schema;
mod strategic;
#[cfg(test)]
mod upstream_tests;

pub use error::{PatchError, StrategicError};
pub use json::{
    apply_json_patch, apply_merge_patch, MAX_JSON_DEPTH, MAX_JSON_PATCH_COPY_BYTES,
    MAX_JSON_PATCH_OPERATIONS,
};
pub use k3rs_api::patch_strategy::{annotate_openapi_definitions, patch_strategy, FieldStrategy};
pub use schema::PatchSchema;
pub use strategic::{apply_strategic_merge_patch, apply_strategic_merge_patch_with};

/// The table of upstream's patch strategies, which lives in `k3rs-api` so that the OpenAPI
/// documents publish the same tags this engine applies.
pub mod strategy {
    pub use k3rs_api::patch_strategy::PATCH_STRATEGIES;
}
