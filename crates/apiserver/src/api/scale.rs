//! The `scale` subresource: an `autoscaling/v1` `Scale` view of a workload's replicas (for a
//! custom resource, at the paths its CRD names).

use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::crud::{self, parse_body, read, write, Ownership};
use super::error::ApiError;
use super::objects::{self, meta_str};
use super::partial;
use super::patching::Patch;
use super::strategy::Precondition;
use super::{Call, Format};
use crate::response::{json as json_response, ResponseBody};

pub(crate) async fn scale(
    call: &Call<'_>,
    method: &Method,
    name: &str,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let paths = ScalePaths::of(call);
    let stored = match *method {
        Method::GET | Method::HEAD => read(call, name).await?.1,
        Method::PUT => {
            let scale = parse_body(call, body)?;
            // Upstream's scale endpoints keep the object's resourceVersion when the Scale names
            // none, whatever the kind's own update rule.
            let precondition = match objects::resource_version(&scale)? {
                None => Precondition::None,
                given => Precondition::Object(given),
            };
            let replicas = replicas_of(&scale)?;
            write(call, name, precondition, Ownership::Track, |old| {
                Ok(with_replicas(&paths, old, replicas))
            })
            .await?
        }
        Method::PATCH => {
            let patch = Patch::parse(call, body)?;
            write(call, name, Precondition::None, Ownership::Track, |old| {
                let current = to_scale(&paths, old);
                let patched = patch.apply(&current)?;
                crud::check_patched_version(call, name, &current, &patched)?;
                Ok(with_replicas(&paths, old, replicas_of(&patched)?))
            })
            .await?
        }
        _ => return Err(ApiError::method_not_allowed(method)),
    };
    let scale = to_scale(&paths, &stored);
    Ok(match call.format {
        Format::Metadata(version) => partial::respond(StatusCode::OK, &scale, version),
        // No Table printer for a Scale; a list shape was refused before the verb ran.
        Format::Json | Format::Table | Format::MetadataList(_) => {
            json_response(StatusCode::OK, &scale)
        }
    })
}

/// Where the replicas and the selector live: `spec.replicas`, `status.replicas` and the
/// `spec.selector` label selector for built-in workloads; a custom resource's CRD names its own
/// (`specReplicasPath`, `statusReplicasPath`, and `labelSelectorPath`, a string).
struct ScalePaths {
    spec_replicas: Vec<String>,
    status_replicas: Vec<String>,
    /// `None`: the built-in `spec.selector`.
    selector: Option<Vec<String>>,
    custom: bool,
}

fn json_path(path: &str) -> Vec<String> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ScalePaths {
    fn of(call: &Call<'_>) -> ScalePaths {
        match call.resource.custom.as_ref().and_then(|c| c.scale.as_ref()) {
            Some(scale) => ScalePaths {
                spec_replicas: json_path(&scale.spec_replicas_path),
                status_replicas: json_path(&scale.status_replicas_path),
                selector: Some(
                    scale
                        .label_selector_path
                        .as_deref()
                        .map(json_path)
                        .unwrap_or_default(),
                ),
                custom: true,
            },
            None => ScalePaths {
                spec_replicas: json_path("spec.replicas"),
                status_replicas: json_path("status.replicas"),
                selector: None,
                custom: false,
            },
        }
    }
}

fn at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    path.iter().try_fold(object, |value, key| value.get(key))
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

fn with_replicas(paths: &ScalePaths, object: &Value, replicas: i64) -> Value {
    let mut out = object.clone();
    let Some((last, parents)) = paths.spec_replicas.split_last() else {
        return out;
    };
    let mut node = &mut out;
    for key in parents {
        let Some(map) = node.as_object_mut() else {
            // A scalar in the way: nothing to set (validation reports the object as it is).
            return object.clone();
        };
        node = map.entry(key.clone()).or_insert_with(|| json!({}));
    }
    match node.as_object_mut() {
        Some(map) => {
            map.insert(last.clone(), json!(replicas));
            out
        }
        None => object.clone(),
    }
}

/// The Scale view of a workload.
fn to_scale(paths: &ScalePaths, object: &Value) -> Value {
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
    // A workload without replicas runs one; a custom resource without them has none.
    let replicas = at(object, &paths.spec_replicas)
        .cloned()
        .unwrap_or(json!(if paths.custom { 0 } else { 1 }));
    let status_replicas = at(object, &paths.status_replicas)
        .cloned()
        .unwrap_or(json!(0));
    let selector = match &paths.selector {
        None => object
            .get("spec")
            .and_then(|s| s.get("selector"))
            .map(selector_string)
            .unwrap_or_default(),
        Some(path) => at(object, path)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    };
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
