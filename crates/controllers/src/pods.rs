//! What controllers read off a pod: active or finished, ready, available for how long.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// Not finished and not being deleted: a pod that counts toward its controller's replicas.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !is_finished(pod)
}

/// Succeeded or Failed.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// `status.phase`, `""` when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// When the pod's `Ready` condition last turned true, if it is true.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if condition.status != "True" {
        return None;
    }
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

/// Whether the pod is Ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now` (upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => {
            since
                .as_second()
                .saturating_add(i64::from(min_ready_seconds))
                <= now.as_second()
        }
    }
}

/// How long until a ready pod becomes available, if it is ready but not yet available.
pub fn until_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<u64> {
    let since = ready_since(pod)?;
    let at = since
        .as_second()
        .saturating_add(i64::from(min_ready_seconds));
    let left = at - now.as_second();
    (left > 0).then(|| u64::try_from(left).unwrap_or(0))
}

/// Whether the pod has been assigned to a node.
pub fn is_scheduled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// The most restarts of any of its containers.
pub fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |statuses| {
            statuses.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn readiness_and_availability() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let ready = pod(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:30Z"}]}}));
        assert!(is_active(&ready));
        assert!(is_ready(&ready));
        assert!(is_available(&ready, 0, now));
        assert!(is_available(&ready, 30, now));
        assert!(!is_available(&ready, 31, now));
        assert_eq!(until_available(&ready, 40, now), Some(10));
        assert_eq!(until_available(&ready, 10, now), None);
        let not_ready =
            pod(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert!(!is_ready(&not_ready));
        assert!(!is_available(&not_ready, 0, now));
        let done = pod(json!({"status": {"phase": "Succeeded"}}));
        assert!(!is_active(&done));
        let deleting = pod(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        assert!(!is_active(&deleting));
    }
}
