//! The scores: how much the pod would like each node that passed the filters, 0–100 per plugin,
//! weighted as upstream's default profile (TaintToleration 3, NodeAffinity 2, PodTopologySpread
//! 2, NodeResourcesFit 1, NodeResourcesBalancedAllocation 1); the node with the highest sum
//! wins, ties broken at random.

use k8s_openapi::api::core::v1::{Node, Pod};

use super::filters::tolerates;
use super::resources::Resources;
use super::state::NodeInfo;

/// The best score of one plugin.
pub const MAX_NODE_SCORE: i64 = 100;

/// Upstream's default plugin weights.
pub const TAINT_TOLERATION_WEIGHT: i64 = 3;
/// `NodeAffinity` (preferred terms).
pub const NODE_AFFINITY_WEIGHT: i64 = 2;
/// `PodTopologySpread`.
pub const SPREAD_WEIGHT: i64 = 2;
/// `NodeResourcesFit` (LeastAllocated).
pub const RESOURCES_FIT_WEIGHT: i64 = 1;
/// `NodeResourcesBalancedAllocation`.
pub const BALANCED_ALLOCATION_WEIGHT: i64 = 1;

/// The share of `capacity` left after `requested`, 0–100 (upstream's `leastRequestedScore`).
fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// `NodeResourcesFit` with the LeastAllocated strategy: CPU and memory (weight 1 each) left on
/// the node after the pod, counting missing requests as defaults (`pod_non_zero` is the pod's).
pub fn least_allocated(pod_non_zero: &Resources, node: &NodeInfo) -> i64 {
    let cpu = least_requested(
        node.non_zero_requested
            .milli_cpu
            .saturating_add(pod_non_zero.milli_cpu),
        node.allocatable.milli_cpu,
    );
    let memory = least_requested(
        node.non_zero_requested
            .memory
            .saturating_add(pod_non_zero.memory),
        node.allocatable.memory,
    );
    (cpu + memory) / 2
}

/// `NodeResourcesBalancedAllocation`: how close the node's CPU and memory fractions would be
/// with the pod (its real requests), `(1 − |cpu − memory| / 2) · 100`.
pub fn balanced_allocation(pod_requests: &Resources, node: &NodeInfo) -> i64 {
    let fraction = |requested: i64, allocatable: i64| -> Option<f64> {
        (allocatable > 0).then(|| (requested as f64 / allocatable as f64).min(1.0))
    };
    let fractions: Vec<f64> = [
        fraction(
            node.requested
                .milli_cpu
                .saturating_add(pod_requests.milli_cpu),
            node.allocatable.milli_cpu,
        ),
        fraction(
            node.requested.memory.saturating_add(pod_requests.memory),
            node.allocatable.memory,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let deviation = match fractions.as_slice() {
        [a, b] => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - deviation) * MAX_NODE_SCORE as f64) as i64
}

/// `TaintToleration`'s raw score: the node's `PreferNoSchedule` taints the pod does not
/// tolerate (fewer is better; see [`normalize`] with `reverse`).
pub fn intolerable_prefer_no_schedule(pod: &Pod, node: &Node) -> i64 {
    let tolerations: Vec<_> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    let count = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|taint| taint.effect == "PreferNoSchedule")
        .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Upstream's `DefaultNormalizeScore`: scale to 0–100 by the highest score; `reverse` turns
/// "more is worse" into "more is better" (all 100 when every score is 0).
pub fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *score / max;
        *score = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::state::tests::{node, pod};
    use serde_json::json;

    fn resources(cpu: i64, memory: i64) -> Resources {
        Resources {
            milli_cpu: cpu,
            memory,
            ..Resources::default()
        }
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let mut info = NodeInfo::new(node("n", "4", "8Gi", "110"));
        let pod = resources(1000, 2 << 30);
        // cpu (4000 − 1000)/4000 = 75, memory (8 − 2)/8 = 75.
        assert_eq!(least_allocated(&pod, &info), 75);
        info.non_zero_requested = resources(2000, 0);
        // cpu 25, memory 75.
        assert_eq!(least_allocated(&pod, &info), 50);
        info.non_zero_requested = resources(4000, 0);
        assert_eq!(least_allocated(&pod, &info), 37);
    }

    #[test]
    fn balanced_allocation_prefers_even_use() {
        let info = NodeInfo::new(node("n", "4", "8Gi", "110"));
        assert_eq!(balanced_allocation(&resources(2000, 4 << 30), &info), 100);
        // cpu 0.5, memory 0: deviation 0.25.
        assert_eq!(balanced_allocation(&resources(2000, 0), &info), 75);
        // Over-full fractions count as 1.
        assert_eq!(balanced_allocation(&resources(8000, 0), &info), 50);
    }

    #[test]
    fn prefer_no_schedule_taints_count_unless_tolerated() {
        let tainted: Node =
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect": "PreferNoSchedule"},
            {"key": "c", "effect": "NoSchedule"}]}}))
            .unwrap();
        assert_eq!(
            intolerable_prefer_no_schedule(&pod("p", "", json!({})), &tainted),
            2
        );
        let tolerant = pod(
            "p",
            "",
            json!({"tolerations": [{"key": "a", "operator": "Exists"},
                                   {"key": "b", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert_eq!(intolerable_prefer_no_schedule(&tolerant, &tainted), 1);
    }

    #[test]
    fn normalization() {
        let mut scores = vec![0, 5, 10];
        normalize(&mut scores, false);
        assert_eq!(scores, vec![0, 50, 100]);
        let mut scores = vec![0, 1, 2];
        normalize(&mut scores, true);
        assert_eq!(scores, vec![100, 50, 0]);
        let mut scores = vec![0, 0];
        normalize(&mut scores, true);
        assert_eq!(scores, vec![100, 100]);
        let mut scores = vec![0, 0];
        normalize(&mut scores, false);
        assert_eq!(scores, vec![0, 0]);
    }
}
