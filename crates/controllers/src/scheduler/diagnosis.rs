//! Why a pod fits no node, in upstream's words: `0/3 nodes are available: 1 Insufficient cpu,
//! 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available:
//! 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.`
//!
//! k3rs does not preempt; the preemption sentence says what upstream's default preemption would
//! find for pods of equal priority: nodes rejected for a reason preemption cannot fix are not
//! helped, and on the others there is no lower-priority pod to evict.

use std::collections::BTreeMap;

use super::filters::{Code, Rejection};

/// Upstream's message when there are no nodes at all.
pub const NO_NODES: &str = "no nodes available to schedule pods";
/// Preemption cannot fix the node's rejection.
const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Nothing on the node could be evicted for the pod.
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Why no node can take a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FitError {
    /// The cluster has no nodes.
    NoNodes,
    /// Every node was rejected.
    Unfit(Diagnosis),
}

/// Every node's rejection (upstream's `Diagnosis` of a `FitError`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// How many nodes there are.
    pub nodes: usize,
    /// A rejection of the pod before any node was looked at; it stands for every node.
    pub prefilter: Option<Rejection>,
    /// The rejections of the nodes that were filtered.
    pub filtered: Vec<Rejection>,
    /// The rejection of the nodes that were not filtered (a PreFilter narrowed the search).
    pub absent: Option<Rejection>,
    /// The pod may not preempt (`preemptionPolicy: Never`).
    pub never_preempts: bool,
}

impl FitError {
    /// The message of the `FailedScheduling` event and the `PodScheduled` condition.
    pub fn message(&self) -> String {
        match self {
            FitError::NoNodes => NO_NODES.to_owned(),
            FitError::Unfit(diagnosis) => diagnosis.message(),
        }
    }
}

/// `"<count> <reason>"` for every reason, sorted as strings (upstream's histogram).
fn histogram<'a>(reasons: impl Iterator<Item = (&'a str, usize)>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (reason, count) in reasons {
        *counts.entry(reason).or_insert(0) += count;
    }
    let mut entries: Vec<String> = counts
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    entries.sort();
    entries.join(", ")
}

impl Diagnosis {
    fn absent_count(&self) -> usize {
        self.nodes.saturating_sub(self.filtered.len())
    }

    /// Upstream's `FitError.Error()`.
    pub fn message(&self) -> String {
        let mut message = format!("0/{} nodes are available:", self.nodes);
        if let Some(prefilter) = &self.prefilter {
            message.push_str(&format!(" {}.", prefilter.message()));
        } else {
            let absent = self.absent_count();
            let reasons = self
                .filtered
                .iter()
                .flat_map(|r| r.reasons.iter().map(|reason| (reason.as_str(), 1)))
                .chain(self.absent.iter().filter(|_| absent > 0).flat_map(|r| {
                    r.reasons
                        .iter()
                        .map(move |reason| (reason.as_str(), absent))
                }));
            let histogram = histogram(reasons);
            if !histogram.is_empty() {
                message.push_str(&format!(" {histogram}."));
            }
        }
        message.push_str(&format!(" {}.", self.preemption()));
        message
    }

    /// What upstream's DefaultPreemption PostFilter would say.
    fn preemption(&self) -> String {
        if self.never_preempts {
            return "preemption: not eligible due to preemptionPolicy=Never.".to_owned();
        }
        // Nodes preemption might help: those filtered out as merely Unschedulable.
        let candidates = if self.prefilter.is_some() {
            0
        } else {
            self.filtered
                .iter()
                .filter(|r| r.code == Code::Unschedulable)
                .count()
        };
        let not_helpful = self.nodes - candidates;
        let reasons = [
            (NO_VICTIMS, candidates),
            (PREEMPTION_NOT_HELPFUL, not_helpful),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0);
        format!(
            "preemption: 0/{} nodes are available: {}",
            self.nodes,
            histogram(reasons)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::filters::{REASON_NODE_AFFINITY, REASON_TOO_MANY_PODS};

    fn unschedulable(reasons: &[&str]) -> Rejection {
        Rejection {
            code: Code::Unschedulable,
            reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn messages_count_and_sort_reasons_like_upstream() {
        let diagnosis = Diagnosis {
            nodes: 3,
            prefilter: None,
            filtered: vec![
                unschedulable(&["Insufficient cpu"]),
                Rejection::unresolvable(REASON_NODE_AFFINITY),
                Rejection::unresolvable(REASON_NODE_AFFINITY),
            ],
            absent: None,
            never_preempts: false,
        };
        assert_eq!(
            diagnosis.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn one_node_may_give_several_reasons() {
        let diagnosis = Diagnosis {
            nodes: 12,
            prefilter: None,
            filtered: (0..12)
                .map(|i| {
                    if i < 10 {
                        unschedulable(&[REASON_TOO_MANY_PODS, "Insufficient memory"])
                    } else {
                        Rejection::unresolvable("node(s) had untolerated taint {a: b}")
                    }
                })
                .collect(),
            absent: None,
            never_preempts: false,
        };
        // Sorted as strings, as upstream: "10 …" before "2 …".
        assert_eq!(
            diagnosis.message(),
            "0/12 nodes are available: 10 Insufficient memory, 10 Too many pods, \
             2 node(s) had untolerated taint {a: b}. preemption: 0/12 nodes are available: \
             10 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn a_prefilter_rejection_speaks_for_every_node() {
        let diagnosis = Diagnosis {
            nodes: 3,
            prefilter: Some(Rejection::unresolvable(
                "persistentvolumeclaim \"data\" not found",
            )),
            filtered: Vec::new(),
            absent: None,
            never_preempts: false,
        };
        assert_eq!(
            diagnosis.message(),
            "0/3 nodes are available: persistentvolumeclaim \"data\" not found. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn nodes_left_out_by_a_prefilter_count_with_its_reason() {
        let diagnosis = Diagnosis {
            nodes: 3,
            prefilter: None,
            filtered: vec![unschedulable(&["Insufficient cpu"])],
            absent: Some(Rejection::unresolvable(
                "node(s) didn't satisfy plugin(s) [NodeAffinity]",
            )),
            never_preempts: true,
        };
        assert_eq!(
            diagnosis.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
             preemption: not eligible due to preemptionPolicy=Never.."
        );
        assert_eq!(FitError::NoNodes.message(), NO_NODES);
    }
}
