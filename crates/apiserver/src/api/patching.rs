//! Patch bodies: JSON patch, JSON merge patch, strategic merge patch and server-side apply
//! configurations, parsed once; the first three apply to an object with `k3rs-patch`, an apply
//! goes through [`super::managed::apply`].

use serde_json::Value;

use super::error::ApiError;
use super::Call;

/// A parsed patch body.
#[derive(Debug)]
pub(crate) enum Patch {
    /// `application/json-patch+json` (RFC 6902).
    Json(Value),
    /// `application/merge-patch+json` (RFC 7386).
    Merge(Value),
    /// `application/strategic-merge-patch+json`, with the kind's OpenAPI definition name.
    Strategic { patch: Value, schema: String },
    /// `application/apply-patch+yaml`: a server-side apply configuration (YAML or JSON).
    Apply(Value),
}

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
        let json = || -> Result<Value, ApiError> {
            serde_json::from_slice(body).map_err(|err| {
                ApiError::bad_request(format!("couldn't decode the patch as JSON: {err}"))
            })
        };
        match content_type.as_str() {
            "application/json-patch+json" => Ok(Patch::Json(json()?)),
            "application/merge-patch+json" => {
                let patch = json()?;
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                Ok(Patch::Merge(patch))
            }
            "application/strategic-merge-patch+json" => {
                let patch = json()?;
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "a strategic merge patch must be a JSON object",
                    ));
                }
                Ok(Patch::Strategic {
                    patch,
                    schema: (call.resource.schema_name)(),
                })
            }
            "application/apply-patch+yaml" => {
                let config: Value = serde_yaml::from_slice(body)
                    .map_err(|err| ApiError::bad_request(format!("error decoding YAML: {err}")))?;
                if !config.is_object() {
                    return Err(ApiError::bad_request(
                        "an apply configuration must be a YAML or JSON object",
                    ));
                }
                Ok(Patch::Apply(config))
            }
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// The patched copy of `doc`.
    pub(crate) fn apply(&self, doc: &Value) -> Result<Value, ApiError> {
        let result = match self {
            Patch::Json(ops) => k3rs_patch::apply_json_patch(doc, ops),
            Patch::Merge(patch) => k3rs_patch::apply_merge_patch(doc, patch),
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
}
