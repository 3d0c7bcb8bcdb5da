//! Patch bodies: JSON patch, JSON merge patch, strategic merge patch and server-side apply
//! configurations, parsed once; the first three apply to an object with `k3rs-patch`, an apply
//! goes through [`super::managed::apply`]. A body that does not parse, and a patched object that
//! does not decode, are answered in upstream's words (`interpretPatchError`, the patchers of
//! `endpoints/handlers/patch.go`).

use k3rs_api::{go_json, FieldError, FieldErrorKind, FieldPath};
use serde_json::Value;

use super::error::ApiError;
use super::strategy::{self, DecodeFailure};
use super::Call;

/// A parsed patch body.
#[derive(Debug)]
pub(crate) enum Patch {
    /// `application/json-patch+json` (RFC 6902), with the body's text.
    Json { ops: Value, text: String },
    /// `application/merge-patch+json` (RFC 7386), with the body's text.
    Merge { patch: Value, text: String },
    /// `application/strategic-merge-patch+json`, with the kind's OpenAPI definition name.
    Strategic { patch: Value, schema: String },
    /// `application/apply-patch+yaml`: a server-side apply configuration (YAML or JSON).
    Apply(Value),
}

/// evanphx/json-patch's `ErrBadJSONPatch`, upstream's 400 for a merge patch that is not a JSON
/// object.
const BAD_MERGE_PATCH: &str = "Invalid JSON Patch";

impl Patch {
    /// Parses the body according to the request's `Content-Type`.
    pub(crate) fn parse(call: &Call<'_>, body: &[u8]) -> Result<Patch, ApiError> {
        let content_type = call
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        // Go's decoder words text that is not JSON; where serde's error does not tell which of
        // Go's messages applies, serde's is kept.
        let json = || -> Result<Value, ApiError> {
            serde_json::from_slice(body).map_err(|err| {
                ApiError::bad_request(go_json::syntax_error(body, &err).unwrap_or_else(|| {
                    tracing::debug!(error = %err, "a JSON syntax error Go's words were not found for");
                    err.to_string()
                }))
            })
        };
        let text = || String::from_utf8_lossy(body).into_owned();
        match content_type.as_str() {
            // `jsonpatch.DecodePatch`: a list of operations, each an object; `null` is none.
            "application/json-patch+json" => {
                let ops = json()?;
                let shape = match &ops {
                    Value::Null => None,
                    Value::Array(items) => items
                        .iter()
                        .find(|op| !op.is_object())
                        .map(|op| go_json::value_type_error(op, "jsonpatch.Operation")),
                    other => Some(go_json::value_type_error(other, "jsonpatch.Patch")),
                };
                if let Some(message) = shape {
                    return Err(ApiError::bad_request(message));
                }
                let ops = if ops.is_null() {
                    Value::Array(Vec::new())
                } else {
                    ops
                };
                Ok(Patch::Json { ops, text: text() })
            }
            // `jsonpatch.MergePatch`: anything but an object is `ErrBadJSONPatch`.
            "application/merge-patch+json" => {
                let patch = json().map_err(|_| ApiError::bad_request(BAD_MERGE_PATCH))?;
                if !patch.is_object() {
                    return Err(ApiError::bad_request(BAD_MERGE_PATCH));
                }
                Ok(Patch::Merge {
                    patch,
                    text: text(),
                })
            }
            // Decoded into a `map[string]interface{}`: `null` leaves it empty.
            "application/strategic-merge-patch+json" => {
                let patch = match json()? {
                    Value::Null => Value::Object(serde_json::Map::new()),
                    patch @ Value::Object(_) => patch,
                    other => {
                        return Err(ApiError::bad_request(go_json::value_type_error(
                            &other,
                            "map[string]interface {}",
                        )))
                    }
                };
                Ok(Patch::Strategic {
                    patch,
                    schema: (call.resource.schema_name)(),
                })
            }
            "application/apply-patch+yaml" => {
                let config: Value = serde_yaml_ng::from_slice(body)
                    .map_err(|err| ApiError::bad_request(format!("error decoding YAML: {err}")))?;
                if !config.is_object() {
                    // sigs.k8s.io/yaml converts to JSON, then decodes that into a map.
                    return Err(ApiError::bad_request(format!(
                        "error decoding YAML: error unmarshaling JSON: while decoding JSON: {}",
                        go_json::value_type_error(&config, "map[string]interface {}")
                    )));
                }
                Ok(Patch::Apply(config))
            }
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// The patched copy of `doc`.
    pub(crate) fn apply(&self, doc: &Value) -> Result<Value, ApiError> {
        let result = match self {
            Patch::Json { ops, .. } => k3rs_patch::apply_json_patch(doc, ops),
            Patch::Merge { patch, .. } => k3rs_patch::apply_merge_patch(doc, patch),
            Patch::Strategic { patch, schema } => {
                k3rs_patch::apply_strategic_merge_patch(doc, patch, schema)
            }
            Patch::Apply(_) => {
                return Err(ApiError::bad_request(
                    "server-side apply is not supported on this subresource",
                ))
            }
        };
        result.map_err(ApiError::from_patch)
    }

    /// Decodes `patched` (this patch applied to `old`) as the kind. Upstream decodes a patch's
    /// result inside the patcher and answers a failure with 422 `Invalid` on the field `patch`
    /// — no kind, no name: ` "" is invalid: patch: Invalid value: "<…>": <decoder's words>` —
    /// quoting, for a strategic merge patch, the patch as Go prints the decoded map, and for a
    /// JSON or merge patch, the patched object's text.
    pub(crate) fn decode_result(
        &self,
        call: &Call<'_>,
        old: &Value,
        patched: &mut Value,
    ) -> Result<(), ApiError> {
        strategy::decode_typed_or(call, patched, |object, failure| {
            let (quoted, detail) = self.invalid_value(call, old, object, failure);
            ApiError::invalid(
                "",
                "",
                "",
                &[FieldError {
                    kind: FieldErrorKind::Invalid,
                    field: FieldPath::new("patch"),
                    value: Some(k3rs_api::selector::go_quote(&quoted)),
                    detail,
                }],
            )
        })
    }

    /// The quoted value and the detail of upstream's 422 for a patched object that does not
    /// decode.
    fn invalid_value(
        &self,
        call: &Call<'_>,
        old: &Value,
        patched: &Value,
        failure: DecodeFailure<'_>,
    ) -> (String, String) {
        let resource = &call.resource;
        let strict = |mut listed: Vec<String>, sort: bool| {
            // The unstructured converter sorts its unknown fields; the JSON decoder lists them
            // in document order.
            if sort {
                listed.sort();
            }
            format!("strict decoding error: {}", listed.join(", "))
        };
        match self {
            // `FromUnstructuredWithValidation` on the patched map (an apply is decoded by the
            // field manager and never comes here).
            Patch::Strategic { patch, .. } | Patch::Apply(patch) => {
                let detail = match failure {
                    DecodeFailure::Type(err) => go_json::unstructured_error(resource, patched)
                        .unwrap_or_else(|| unworded(err)),
                    DecodeFailure::Unknown(listed) => strict(listed, true),
                };
                (go_json::go_value_text(patch), detail)
            }
            // `runtime.DecodeInto` of the patch library's output text.
            Patch::Json { text, .. } | Patch::Merge { text, .. } => {
                let original = String::from_utf8_lossy(&k3rs_api::wire::to_vec(old)).into_owned();
                let written = match self {
                    Patch::Json { .. } => k3rs_patch::go_text::json_patch_text(&original, text),
                    _ => k3rs_patch::go_text::merge_patch_text(&original, text),
                }
                .unwrap_or_else(|| {
                    String::from_utf8_lossy(&k3rs_api::wire::to_vec(patched)).into_owned()
                });
                let detail = match failure {
                    DecodeFailure::Type(err) => {
                        let decoded = serde_json::from_str(&written).ok();
                        go_json::type_error(resource, decoded.as_ref().unwrap_or(patched))
                            .unwrap_or_else(|| unworded(err))
                    }
                    DecodeFailure::Unknown(listed) => strict(listed, false),
                };
                (written, detail)
            }
        }
    }
}

/// serde's message for a decoding failure `go_json` has no Go words for (logged, to be found).
fn unworded(serde_error: &str) -> String {
    tracing::debug!(
        error = serde_error,
        "a patched object's decoding error Go's words were not found for"
    );
    serde_error.to_owned()
}
