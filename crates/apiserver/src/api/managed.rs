//! Field ownership on every write and server-side apply: the request's field manager, the
//! kind's schema and the endpoint's scope, handed to `k3rs_patch::apply`.

use k3rs_patch::apply::{self as ssa, ApplyError, ApplySchema, Manager, Scope, Writer};
use serde_json::Value;

use super::error::ApiError;
use super::objects::now_rfc3339;
use super::Call;

/// Upstream's limit on a field manager's length.
const MAX_MANAGER_LEN: usize = 128;

/// The request's field manager: the `fieldManager` parameter (required for apply), else the
/// program name from the `User-Agent` (`kubectl/v1.33.0 (linux/amd64) ...` → `kubectl`).
pub(crate) fn manager_name(call: &Call<'_>, applying: bool) -> Result<String, ApiError> {
    if let Some(name) = call.query.get("fieldManager") {
        if name.chars().count() > MAX_MANAGER_LEN {
            return Err(ApiError::bad_request(format!(
                "fieldManager: Too long: may not be more than {MAX_MANAGER_LEN} bytes"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "fieldManager: Invalid value: must only contain printable characters",
            ));
        }
        return Ok(name.to_owned());
    }
    if applying {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requires fieldManager to be set",
        ));
    }
    let agent = call
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let program = agent.split('/').next().unwrap_or("").trim();
    Ok(program.chars().take(MAX_MANAGER_LEN).collect())
}

/// The writer of this request: its manager (named by [`manager_name`]) at `now`, the kind's
/// schema, and the part of the object the endpoint writes.
fn writer<'a>(call: &'a Call<'_>, name: &'a str, now: &'a str, builtin: &'a str) -> Writer<'a> {
    let schema = match &call.resource.custom {
        Some(custom) => ApplySchema::Custom(custom.schema.as_ref()),
        None => ApplySchema::Builtin(builtin),
    };
    let scope = match call.path.subresource.as_deref() {
        Some("status") => Scope::OnlyStatus,
        _ if call.resource.has_subresource("status") => Scope::AllButStatus,
        _ => Scope::Whole,
    };
    Writer {
        manager: Manager {
            name,
            api_version: call.resource.api_version,
            subresource: call.path.subresource.as_deref().unwrap_or(""),
            now,
        },
        schema,
        scope,
    }
}

/// Records a write that is not an apply in `new`'s `metadata.managedFields` (`old`: `None` on
/// create). Tracking never fails a write: an object the walk cannot read keeps the managed
/// fields it had.
pub(crate) fn track(call: &Call<'_>, old: Option<&Value>, new: &mut Value) -> Result<(), ApiError> {
    let (name, now, builtin) = (
        manager_name(call, false)?,
        now_rfc3339(),
        (call.resource.schema_name)(),
    );
    let before = new.pointer("/metadata/managedFields").cloned();
    if let Err(err) = ssa::track_update(old, new, &writer(call, &name, &now, &builtin)) {
        tracing::debug!(error = %err, "field ownership not tracked for this write");
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            match old
                .and_then(|o| o.pointer("/metadata/managedFields"))
                .or(before.as_ref())
            {
                Some(kept) => meta.insert("managedFields".into(), kept.clone()),
                None => meta.remove("managedFields"),
            };
        }
    }
    Ok(())
}

/// Applies `config` for the request's field manager to `live` (`None`: create it), with the
/// `force` parameter.
pub(crate) fn apply(
    call: &Call<'_>,
    live: Option<&Value>,
    config: &Value,
) -> Result<Value, ApiError> {
    let (name, now, builtin) = (
        manager_name(call, true)?,
        now_rfc3339(),
        (call.resource.schema_name)(),
    );
    let writer = writer(call, &name, &now, &builtin);
    ssa::apply(live, config, &writer, call.query.flag("force")).map_err(|err| match err {
        ApplyError::Conflicts(conflicts) => ApiError::apply_conflict(&conflicts),
        ApplyError::BadRequest(message) => ApiError::bad_request(message),
        // Upstream names the object as `objectGVKNN` does: `<namespace>/<name>; <group>/<version>,
        // Kind=<kind>` (`default/web; apps/v1, Kind=Deployment`, `/v1` for the core group).
        invalid @ ApplyError::Invalid { .. } => {
            let meta = |field: &str| {
                config
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            ApiError::bad_request(format!(
                "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {invalid}",
                meta("namespace"),
                meta("name"),
                call.resource.group,
                call.resource.version,
                call.resource.kind
            ))
        }
    })
}
