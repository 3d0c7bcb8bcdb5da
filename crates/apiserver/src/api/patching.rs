//! Patch bodies: JSON patch, JSON merge patch (and, as they land, strategic merge patch and
//! server-side apply), parsed once and applied to an object.

use serde_json::Value;

use super::error::ApiError;
use super::Call;

/// A parsed patch body.
#[derive(Debug)]
pub(crate) enum Patch {
    /// `application/json-patch+json` (RFC 6902).
    Json(json_patch::Patch),
    /// `application/merge-patch+json` (RFC 7386).
    Merge(Value),
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
            "application/json-patch+json" => {
                let ops = serde_json::from_value(json()?)
                    .map_err(|err| ApiError::bad_request(format!("invalid JSON patch: {err}")))?;
                Ok(Patch::Json(ops))
            }
            "application/merge-patch+json" => {
                let patch = json()?;
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                Ok(Patch::Merge(patch))
            }
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// The patched copy of `doc`.
    pub(crate) fn apply(&self, doc: &Value) -> Result<Value, ApiError> {
        let mut out = doc.clone();
        match self {
            Patch::Json(ops) => json_patch::patch(&mut out, ops)
                .map_err(|err| ApiError::invalid_patch(&err.to_string()))?,
            Patch::Merge(patch) => json_patch::merge(&mut out, patch),
        }
        Ok(out)
    }
}
