//! Conversion between the served versions of a kind that more than one version serves.
//!
//! Objects are stored in one version per kind (the storage version) and converted on the way in
//! and out, as upstream does through its internal types. Among the built-in kinds k3rs serves,
//! only `HorizontalPodAutoscaler` has two versions: `autoscaling/v2` (stored) and
//! `autoscaling/v1`, whose one metric (`targetCPUUtilizationPercentage`) is a CPU utilization
//! target in v2. What v1 cannot express travels in the annotations upstream uses for it
//! (`autoscaling.alpha.kubernetes.io/metrics`, `.../behavior`, `.../conditions`,
//! `.../current-metrics`), so that a v2 → v1 → v2 round trip loses nothing.
//!
//! `events.k8s.io/v1` `Event` is the core `v1` `Event` under other field names (`regarding` is
//! `involvedObject`, `note` is `message`, `deprecatedSource` is `source`, ...): both are one
//! resource, stored once as core events, so `kubectl describe` (which reads core events) shows
//! what components write through either API.
//!
//! Custom resources follow their CRD's `None` conversion strategy: only `apiVersion` changes.

use serde_json::{json, Map, Value};

const HPA_V1: &str = "autoscaling/v1";
const EVENTS_V1: &str = "events.k8s.io/v1";
const CORE_V1: &str = "v1";
/// events.k8s.io field ↔ core field, for the fields that differ only in name.
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];
const HPA_V2: &str = "autoscaling/v2";
const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

/// The API version objects of `kind` served as `api_version` are stored in.
pub fn storage_api_version<'a>(api_version: &'a str, kind: &str) -> &'a str {
    match (api_version, kind) {
        (HPA_V1, "HorizontalPodAutoscaler") => HPA_V2,
        (EVENTS_V1, "Event") => CORE_V1,
        _ => api_version,
    }
}

/// The (group, resource) whose storage a served (group, resource) shares: events.k8s.io events
/// are core events.
pub fn storage_resource<'a>(group: &'a str, plural: &'a str) -> (&'a str, &'a str) {
    match (group, plural) {
        ("events.k8s.io", "events") => ("", "events"),
        _ => (group, plural),
    }
}

/// Whether objects of `kind` change more than their `apiVersion` between versions.
pub fn converts(kind: &str) -> bool {
    matches!(kind, "HorizontalPodAutoscaler" | "Event")
}

/// Converts `object` (of `kind`, in the version its `apiVersion` names) to `to`, setting
/// `apiVersion`. Versions without a conversion only have `apiVersion` rewritten.
pub fn convert(object: &mut Value, kind: &str, to: &str) {
    let from = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or(to)
        .to_owned();
    match (kind, from.as_str(), to) {
        ("HorizontalPodAutoscaler", HPA_V1, HPA_V2) => hpa_v1_to_v2(object),
        ("HorizontalPodAutoscaler", HPA_V2, HPA_V1) => hpa_v2_to_v1(object),
        ("Event", EVENTS_V1, CORE_V1) => rename_fields(object, EVENT_RENAMES.iter().copied()),
        ("Event", CORE_V1, EVENTS_V1) => {
            rename_fields(object, EVENT_RENAMES.iter().map(|&(new, old)| (old, new)))
        }
        _ => {}
    }
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), Value::from(to));
    }
}

/// Moves each top-level field `from` to `to`.
fn rename_fields<'a>(object: &mut Value, renames: impl Iterator<Item = (&'a str, &'a str)>) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    for (from, to) in renames {
        if let Some(value) = map.remove(from) {
            map.insert(to.to_owned(), value);
        }
    }
}

fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && metric["resource"]["target"]["type"] == "Utilization"
        && metric["resource"]["target"]["averageUtilization"].is_i64()
}

fn annotations(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = object.get_mut("metadata")?.as_object_mut()?;
    meta.entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// Moves a v2-only value into an annotation (JSON text) when there is something to keep.
fn stash(object: &mut Value, annotation: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::Array(list) => list.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    };
    if empty {
        return;
    }
    if let Some(annotations) = annotations(object) {
        annotations.insert(annotation.to_owned(), Value::from(value.to_string()));
    }
}

/// Takes an annotation written by [`stash`] back out as JSON.
fn unstash(object: &mut Value, annotation: &str) -> Option<Value> {
    let meta = object.get_mut("metadata")?.as_object_mut()?;
    let annotations = meta.get_mut("annotations")?.as_object_mut()?;
    let text = annotations.remove(annotation)?;
    if annotations.is_empty() {
        meta.remove("annotations");
    }
    serde_json::from_str(text.as_str()?).ok()
}

fn hpa_v2_to_v1(object: &mut Value) {
    let spec = object
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut v1_spec = Map::new();
    let mut other_metrics = Vec::new();
    for (key, value) in spec {
        match key.as_str() {
            "metrics" => {
                for metric in value.as_array().cloned().unwrap_or_default() {
                    if is_cpu_utilization(&metric)
                        && !v1_spec.contains_key("targetCPUUtilizationPercentage")
                    {
                        v1_spec.insert(
                            "targetCPUUtilizationPercentage".into(),
                            metric["resource"]["target"]["averageUtilization"].clone(),
                        );
                    } else {
                        other_metrics.push(metric);
                    }
                }
            }
            "behavior" => stash(object, BEHAVIOR, value),
            _ => {
                v1_spec.insert(key, value);
            }
        }
    }
    stash(object, METRICS, Value::Array(other_metrics));
    if let Some(map) = object.as_object_mut() {
        map.insert("spec".into(), Value::Object(v1_spec));
    }
    let Some(status) = object
        .get_mut("status")
        .and_then(Value::as_object_mut)
        .map(std::mem::take)
    else {
        return;
    };
    let mut v1_status = Map::new();
    for (key, value) in status {
        match key.as_str() {
            "currentMetrics" => {
                let mut others = Vec::new();
                for metric in value.as_array().cloned().unwrap_or_default() {
                    let utilization = &metric["resource"]["current"]["averageUtilization"];
                    if metric["type"] == "Resource"
                        && metric["resource"]["name"] == "cpu"
                        && utilization.is_i64()
                        && !v1_status.contains_key("currentCPUUtilizationPercentage")
                    {
                        v1_status.insert(
                            "currentCPUUtilizationPercentage".into(),
                            utilization.clone(),
                        );
                    } else {
                        others.push(metric);
                    }
                }
                stash(object, CURRENT_METRICS, Value::Array(others));
            }
            "conditions" => stash(object, CONDITIONS, value),
            _ => {
                v1_status.insert(key, value);
            }
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.insert("status".into(), Value::Object(v1_status));
    }
}

fn hpa_v1_to_v2(object: &mut Value) {
    let mut metrics = match unstash(object, METRICS) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    let behavior = unstash(object, BEHAVIOR);
    let conditions = unstash(object, CONDITIONS);
    let mut current = match unstash(object, CURRENT_METRICS) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
            metrics.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target}}}),
            );
        }
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(behavior) = behavior {
            spec.insert("behavior".into(), behavior);
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(utilization) = status.remove("currentCPUUtilizationPercentage") {
            current.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": utilization}}}),
            );
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(conditions) = conditions {
            status.insert("conditions".into(), conditions);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {"keep": "me"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 40}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}],
            },
        })
    }

    #[test]
    fn v2_reads_as_v1_and_back_without_loss() {
        let mut object = v2();
        convert(&mut object, "HorizontalPodAutoscaler", "autoscaling/v1");
        assert_eq!(object["apiVersion"], "autoscaling/v1");
        assert_eq!(object["spec"]["targetCPUUtilizationPercentage"], 70);
        assert!(object["spec"].get("metrics").is_none());
        assert_eq!(object["status"]["currentCPUUtilizationPercentage"], 40);
        assert!(object["metadata"]["annotations"][METRICS]
            .as_str()
            .unwrap_or("")
            .contains("memory"));
        convert(&mut object, "HorizontalPodAutoscaler", "autoscaling/v2");
        assert_eq!(object, v2());
    }

    #[test]
    fn v1_writes_store_as_v2() {
        let mut object = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
        });
        assert_eq!(
            storage_api_version("autoscaling/v1", "HorizontalPodAutoscaler"),
            "autoscaling/v2"
        );
        convert(&mut object, "HorizontalPodAutoscaler", "autoscaling/v2");
        assert_eq!(
            object["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}])
        );
        assert!(object["metadata"].get("annotations").is_none());
    }

    #[test]
    fn events_of_both_apis_are_one_core_event() {
        let mut event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web"},
            "note": "Pulling image", "reason": "Pulling", "type": "Normal",
            "reportingController": "kubelet", "reportingInstance": "node-1",
            "deprecatedCount": 2, "eventTime": "2026-11-23T08:00:01.000000Z",
        });
        let original = event.clone();
        assert_eq!(storage_api_version("events.k8s.io/v1", "Event"), "v1");
        assert_eq!(storage_resource("events.k8s.io", "events"), ("", "events"));
        convert(&mut event, "Event", "v1");
        assert_eq!(event["involvedObject"]["name"], "web");
        assert_eq!(event["message"], "Pulling image");
        assert_eq!(event["reportingComponent"], "kubelet");
        assert_eq!(event["count"], 2);
        assert!(event.get("regarding").is_none() && event.get("note").is_none());
        convert(&mut event, "Event", "events.k8s.io/v1");
        assert_eq!(event, original);
    }

    #[test]
    fn other_kinds_only_change_api_version() {
        let mut object = json!({"apiVersion": "example.com/v1", "kind": "Thing", "spec": {"a": 1}});
        convert(&mut object, "Thing", "example.com/v2");
        assert_eq!(
            object,
            json!({"apiVersion": "example.com/v2", "kind": "Thing", "spec": {"a": 1}})
        );
        assert_eq!(storage_api_version("apps/v1", "Deployment"), "apps/v1");
    }
}
