//! Taints and tolerations: whether a toleration tolerates a taint (upstream's
//! `Toleration.ToleratesTaint`), shared by the scheduler and the eviction of pods from
//! tainted nodes.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Whether `toleration` tolerates `taint`: the effect matches (or the toleration names none),
/// and the key matches with `Exists` (an empty key with `Exists` matches every key) or key and
/// value match with `Equal` (the default operator; an empty key then matches only an empty
/// key, as upstream's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether some toleration of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        serde_json::from_value(json!({"key": key, "value": value, "effect": effect})).unwrap()
    }

    fn toleration(value: serde_json::Value) -> Toleration {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn matches_like_upstream() {
        let dedicated = taint("dedicated", Some("gpu"), "NoSchedule");
        assert!(tolerates(
            &toleration(json!({"key": "dedicated", "value": "gpu"})),
            &dedicated
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "dedicated", "value": "cpu"})),
            &dedicated
        ));
        assert!(tolerates(
            &toleration(json!({"key": "dedicated", "operator": "Exists"})),
            &dedicated
        ));
        assert!(tolerates(
            &toleration(json!({"operator": "Exists"})),
            &dedicated
        ));
        assert!(!tolerates(
            &toleration(json!({"operator": "Exists", "effect": "NoExecute"})),
            &dedicated
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "", "operator": "Equal"})),
            &dedicated
        ));
        assert!(tolerates(
            &toleration(json!({"operator": "Equal"})),
            &taint("", None, "NoSchedule")
        ));
        let unreachable = taint("node.kubernetes.io/unreachable", None, "NoExecute");
        assert!(tolerates(
            &toleration(
                json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
            ),
            &unreachable
        ));
    }
}
