//! The `scale` subresource: an `autoscaling/v1` `Scale` view of a workload's replicas.

use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::crud::{self, parse_body, read, write};
use super::error::ApiError;
use super::objects::{self, meta_str};
use super::patching::Patch;
use super::Call;
use crate::response::{json as json_response, ResponseBody};

pub(crate) async fn scale(
    call: &Call<'_>,
    method: &Method,
    name: &str,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let stored = match *method {
        Method::GET | Method::HEAD => read(call, name).await?.1,
        Method::PUT => {
            let scale = parse_body(call, body)?;
            let precondition = objects::resource_version(&scale)?;
            let replicas = replicas_of(&scale)?;
            write(call, name, precondition, |old| {
                Ok(with_replicas(old, replicas))
            })
            .await?
        }
        Method::PATCH => {
            let patch = Patch::parse(call, body)?;
            write(call, name, None, |old| {
                let current = to_scale(old);
                let patched = patch.apply(&current)?;
                crud::check_patched_version(call, name, &current, &patched)?;
                Ok(with_replicas(old, replicas_of(&patched)?))
            })
            .await?
        }
        _ => return Err(ApiError::method_not_allowed(method)),
    };
    Ok(json_response(StatusCode::OK, &to_scale(&stored)))
}

fn replicas_of(scale: &Value) -> Result<i64, ApiError> {
    match scale.get("spec").and_then(|s| s.get("replicas")) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => value.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "spec.replicas: Invalid value: {value}: must be greater than or equal to 0"
            ))
        }),
    }
}

fn with_replicas(object: &Value, replicas: i64) -> Value {
    let mut out = object.clone();
    if let Some(map) = out.as_object_mut() {
        let spec = map.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.insert("replicas".into(), json!(replicas));
        }
    }
    out
}

/// The Scale view of a workload.
fn to_scale(object: &Value) -> Value {
    let meta = |field| {
        meta_str(object, field)
            .map(Value::from)
            .unwrap_or(Value::Null)
    };
    let mut metadata = json!({
        "name": meta("name"),
        "namespace": meta("namespace"),
        "uid": meta("uid"),
        "resourceVersion": meta("resourceVersion"),
        "creationTimestamp": meta("creationTimestamp"),
    });
    if let Some(map) = metadata.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    let spec = object.get("spec");
    let replicas = spec
        .and_then(|s| s.get("replicas"))
        .cloned()
        .unwrap_or(json!(1));
    let status_replicas = object
        .get("status")
        .and_then(|s| s.get("replicas"))
        .cloned()
        .unwrap_or(json!(0));
    let selector = spec
        .and_then(|s| s.get("selector"))
        .map(selector_string)
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": replicas},
        "status": {"replicas": status_replicas, "selector": selector},
    })
}

/// A label selector (a `LabelSelector` or a plain map) in its string form, as Scale reports it.
fn selector_string(selector: &Value) -> String {
    let mut terms = Vec::new();
    let labels = selector.get("matchLabels").unwrap_or(selector);
    if let Some(map) = labels.as_object() {
        for (key, value) in map {
            if let Some(value) = value.as_str() {
                terms.push(format!("{key}={value}"));
            }
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match expr.get("operator").and_then(Value::as_str) {
            Some("In") => terms.push(format!("{key} in ({})", values.join(","))),
            Some("NotIn") => terms.push(format!("{key} notin ({})", values.join(","))),
            Some("Exists") => terms.push(key.to_owned()),
            Some("DoesNotExist") => terms.push(format!("!{key}")),
            _ => {}
        }
    }
    terms.join(",")
}
