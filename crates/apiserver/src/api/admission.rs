//! Mutating admission that kube-apiserver runs by default and that k3rs users rely on.

use k3rs_api::ResourceInfo;
use serde_json::{json, Value};

/// The taints a node gets when its kubelet stops reporting (`unreachable`) or reports not
/// ready (`not-ready`).
const NODE_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];
/// How long a pod stays on such a node before it is evicted, unless it says otherwise.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Upstream's `DefaultTolerationSeconds` plugin, on pod creation: a pod that does not tolerate
/// the `not-ready` or `unreachable` NoExecute taints gets a toleration of 300 s for each, so a
/// node that goes away has its pods evicted after five minutes rather than at once.
pub(crate) fn default_toleration_seconds(resource: &ResourceInfo, pod: &mut Value) {
    if !(resource.group.is_empty() && resource.kind == "Pod") {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if tolerations.is_null() {
        *tolerations = Value::Array(Vec::new());
    }
    let Some(tolerations) = tolerations.as_array_mut() else {
        return;
    };
    for taint in NODE_TAINTS {
        let tolerated = tolerations.iter().any(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        });
        if !tolerated {
            tolerations.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_resource() -> ResourceInfo {
        k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.group.is_empty() && r.kind == "Pod")
            .unwrap()
    }

    #[test]
    fn adds_what_is_not_tolerated_already() {
        let pods = pod_resource();
        let mut pod = json!({"spec": {"containers": []}});
        default_toleration_seconds(&pods, &mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        let mut own = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]}});
        default_toleration_seconds(&pods, &mut own);
        let tolerations = own["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0]["tolerationSeconds"], 2);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/not-ready");
        // Tolerating everything (empty key, any effect) tolerates both.
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_toleration_seconds(&pods, &mut all);
        assert_eq!(all["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}
