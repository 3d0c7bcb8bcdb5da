//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector, adopting
//! orphans that match and releasing pods that stopped matching, and reports replica counts in
//! the status. Expectations keep it from creating or deleting twice while its cache lags.
//!
//! The same code is the ReplicationController controller, as upstream's is the ReplicaSet
//! controller run through a conversion adapter: [`Replicated`] reads an RC as the ReplicaSet it
//! is equivalent to (its map selector as `matchLabels`) and turns the computed ReplicaSet status
//! back into the RC's. Pods, events and status are written against the real owner.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k3rs_api::LabelSelector;
use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{
    Pod, PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
    ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{self as meta, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};

use crate::error::Error;
use crate::ownership::{claim_pods, controller_ref};
use crate::pod_owner::PodOwners;
use crate::pods;
use crate::Context;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::runner::Action;
use k3rs_runtime::status::Written;

/// The most pods one sync creates or deletes (upstream's `burstReplicas`).
const BURST: usize = 500;

/// An owner the ReplicaSet logic runs over: a ReplicaSet, or a ReplicationController seen as one.
pub(crate) trait Replicated:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The owner's status type.
    type Status: serde::Serialize + PartialEq + Send + Sync;
    /// The controller's name, the source of its events.
    const COMPONENT: &'static str;
    /// The owner as a ReplicaSet (upstream's `convertRCtoRS`).
    fn as_replica_set(&self) -> ReplicaSet;
    /// The owner's current status.
    fn status(&self) -> Option<&Self::Status>;
    /// A ReplicaSet status as the owner's (upstream's `convertRStoRC`).
    fn status_from(status: ReplicaSetStatus) -> Self::Status;
}

impl Replicated for ReplicaSet {
    type Status = ReplicaSetStatus;
    const COMPONENT: &'static str = "replicaset-controller";
    fn as_replica_set(&self) -> ReplicaSet {
        self.clone()
    }
    fn status(&self) -> Option<&ReplicaSetStatus> {
        self.status.as_ref()
    }
    fn status_from(status: ReplicaSetStatus) -> ReplicaSetStatus {
        status
    }
}

impl Replicated for ReplicationController {
    type Status = ReplicationControllerStatus;
    const COMPONENT: &'static str = "replication-controller";
    fn as_replica_set(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        let status = self.status.clone().map(|s| ReplicaSetStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            terminating_replicas: None,
            observed_generation: s.observed_generation,
            conditions: s.conditions.map(|conditions| {
                conditions
                    .into_iter()
                    .map(|c| ReplicaSetCondition {
                        type_: Some(c.type_),
                        status: Some(c.status),
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect()
            }),
        });
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                // An RC's selector is a plain map: the same as `matchLabels`.
                selector: meta::LabelSelector {
                    match_labels: spec.selector,
                    match_expressions: None,
                },
                template: spec.template,
            },
            status,
        }
    }
    fn status(&self) -> Option<&ReplicationControllerStatus> {
        self.status.as_ref()
    }
    fn status_from(status: ReplicaSetStatus) -> ReplicationControllerStatus {
        // An RC has no `terminatingReplicas`.
        ReplicationControllerStatus {
            replicas: status.replicas,
            fully_labeled_replicas: status.fully_labeled_replicas,
            ready_replicas: status.ready_replicas,
            available_replicas: status.available_replicas,
            observed_generation: status.observed_generation,
            conditions: status.conditions.map(|conditions| {
                conditions
                    .into_iter()
                    .map(|c| ReplicationControllerCondition {
                        type_: c.type_.unwrap_or_default(),
                        status: c.status.unwrap_or_default(),
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect()
            }),
        }
    }
}

/// Registers the handlers of the controller of `K` and starts its workers.
pub(crate) fn start<K: Replicated>(ctx: &Context) -> Supervised {
    PodOwners::start(
        ctx,
        K::COMPONENT,
        4,
        |owner: &K, pod| selects(&owner.as_replica_set(), pod),
        |shared, key| async move { sync(&shared, &key).await },
    )
}

fn selector(set: &ReplicaSet) -> Option<LabelSelector> {
    LabelSelector::from_typed(Some(&set.spec.selector))
        .ok()
        .filter(|s| !s.is_everything())
}

fn selects(set: &ReplicaSet, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    selector(set).is_some_and(|s| s.matches(&labels))
}

async fn sync<K: Replicated>(shared: &PodOwners<K>, key: &ObjectKey) -> Result<Action, Error> {
    let Some(owner) = shared.owners.cache().get(key) else {
        shared.expectations.forget(key);
        return Ok(Action::Done);
    };
    let set = owner.as_replica_set();
    let pods_api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);

    // Claim: adopt matching orphans, release owned pods that no longer match.
    let candidates = shared.pods.cache().in_namespace(&key.namespace);
    let owned = claim_pods(
        &pods_api,
        candidates,
        owner.as_ref(),
        |pod| selects(&set, pod),
        pods::is_active,
    )
    .await?;
    let active: Vec<Arc<Pod>> = owned
        .iter()
        .filter(|p| pods::is_active(p))
        .cloned()
        .collect();

    let mut failure = None;
    if shared.expectations.satisfied(key) && set.metadata.deletion_timestamp.is_none() {
        if let Err(err) = manage_replicas(shared, owner.as_ref(), &set, &active).await {
            failure = Some(err);
        }
    }

    let now = Timestamp::now();
    let status = K::status_from(status_of(&set, &owned, &active, failure.as_ref(), now));
    let api: Api<K> = Api::namespaced(shared.client.clone(), &key.namespace);
    if let Written::Gone = k3rs_runtime::status::write(
        &api,
        &key.name,
        owner.status(),
        &status,
        &crate::patch_params(),
    )
    .await?
    {
        return Ok(Action::Done);
    }
    if let Some((_, err)) = failure {
        return Err(err);
    }
    // A pod that is ready but not yet available becomes available later: look again then.
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let next = active
        .iter()
        .filter_map(|p| pods::until_available(p, min_ready, now))
        .min();
    Ok(match next {
        Some(seconds) => Action::RequeueAfter(Duration::from_secs(seconds.max(1))),
        None => Action::Done,
    })
}

/// Creates or deletes pods of `owner` (read as `set`) so that `active` reaches `spec.replicas`.
///
/// A failure names what failed (`FailedCreate`, `FailedDelete`: the `ReplicaFailure` reason).
async fn manage_replicas<K: Replicated>(
    shared: &PodOwners<K>,
    owner: &K,
    set: &ReplicaSet,
    active: &[Arc<Pod>],
) -> Result<(), (&'static str, Error)> {
    let key = ObjectKey::of(owner);
    let wanted = set.spec.replicas.unwrap_or(1);
    let wanted = usize::try_from(wanted).unwrap_or(0);
    let pods_api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    if active.len() < wanted {
        let count = (wanted - active.len()).min(BURST);
        shared.expectations.expect(&key, count, []);
        let template = set.spec.template.clone().unwrap_or_default();
        let pod = pod_from_template(&template, owner);
        let params = crate::post_params();
        // Upstream's slow start: batches of 1, 2, 4, … so a broken template fails fast.
        let mut created = 0;
        let mut batch = 1;
        while created < count {
            let size = batch.min(count - created);
            let results =
                futures::future::join_all((0..size).map(|_| pods_api.create(&params, &pod))).await;
            let mut first_error = None;
            for result in results {
                match result {
                    Ok(pod) => {
                        shared
                            .events
                            .normal(
                                owner,
                                "SuccessfulCreate",
                                format!("Created pod: {}", pod.name_any()),
                            )
                            .await;
                    }
                    Err(err) => {
                        shared.expectations.creation_observed(&key);
                        first_error.get_or_insert(err);
                    }
                }
            }
            created += size;
            if let Some(err) = first_error {
                // The creates never issued will not be observed either.
                for _ in created..count {
                    shared.expectations.creation_observed(&key);
                }
                shared
                    .events
                    .warning(owner, "FailedCreate", format!("Error creating: {err}"))
                    .await;
                return Err(("FailedCreate", err.into()));
            }
            batch *= 2;
        }
    } else if active.len() > wanted {
        let count = (active.len() - wanted).min(BURST);
        let doomed = pods_to_delete(active, count);
        shared
            .expectations
            .expect(&key, 0, doomed.iter().map(|p| p.name_any()));
        for pod in doomed {
            shared
                .delete_pod(owner, &pod)
                .await
                .map_err(|err| ("FailedDelete", err))?;
        }
    }
    Ok(())
}

/// A pod for `set` from its template: the template's labels, annotations and spec, a
/// generated name after the set, and the set as its controller.
pub(crate) fn pod_from_template<O>(template: &PodTemplateSpec, owner: &O) -> Pod
where
    O: kube::Resource<DynamicType = ()>,
{
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name_any())),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(owner)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Which `count` pods to delete first (upstream's `ActivePods` ranking): unscheduled before
/// scheduled, pending before unknown before running, not ready before ready, more pods of
/// the set on the same node first, ready for less time first, more restarts first, newer first.
fn pods_to_delete(active: &[Arc<Pod>], count: usize) -> Vec<Arc<Pod>> {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in active {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let phase_rank = |pod: &Pod| match pods::phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let rank = |pod: &Pod| {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let colocated = node.and_then(|n| per_node.get(n)).copied().unwrap_or(0);
        // Ready for less time first: a later ready time sorts first.
        let ready_since = pods::ready_since(pod).map(|t| std::cmp::Reverse(t.as_second()));
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t: &Time| t.0.as_second());
        (
            pods::is_scheduled(pod),
            phase_rank(pod),
            pods::is_ready(pod),
            std::cmp::Reverse(colocated),
            ready_since,
            std::cmp::Reverse(pods::max_restarts(pod)),
            std::cmp::Reverse(created),
        )
    };
    let mut ranked: Vec<Arc<Pod>> = active.to_vec();
    ranked.sort_by_cached_key(|pod| rank(pod));
    ranked.truncate(count);
    ranked
}

/// The status the set should have now.
fn status_of(
    set: &ReplicaSet,
    owned: &[Arc<Pod>],
    active: &[Arc<Pod>],
    failure: Option<&(&'static str, Error)>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let template_labels = set
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let fully_labeled = count(&|p| {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    });
    let terminating = owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && !pods::is_finished(p))
        .count();
    let previous = set.status.as_ref();
    let mut conditions: Vec<ReplicaSetCondition> = previous
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_.as_deref() != Some("ReplicaFailure"))
        .collect();
    if let Some(err) = failure {
        let (reason, err) = err;
        let existing = previous.and_then(|s| s.conditions.as_ref()).and_then(|c| {
            c.iter()
                .find(|c| c.type_.as_deref() == Some("ReplicaFailure"))
        });
        conditions.push(ReplicaSetCondition {
            type_: Some("ReplicaFailure".into()),
            status: Some("True".into()),
            reason: Some((*reason).into()),
            message: Some(err.to_string()),
            last_transition_time: existing
                .and_then(|c| c.last_transition_time.clone())
                .or(Some(Time(now))),
        });
    }
    ReplicaSetStatus {
        replicas: i32::try_from(active.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&pods::is_ready)),
        available_replicas: Some(count(&|p| pods::is_available(p, min_ready, now))),
        terminating_replicas: Some(i32::try_from(terminating).unwrap_or(i32::MAX)),
        observed_generation: set.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::controller_of;
    use serde_json::json;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready_at: Option<&str>) -> Arc<Pod> {
        let conditions = match ready_at {
            Some(at) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": at}]),
            None => json!([]),
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": phase, "conditions": conditions},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn deletes_unscheduled_then_pending_then_not_ready_then_newest_ready() {
        let active = vec![
            pod(
                "ready-old",
                Some("n1"),
                "Running",
                Some("2026-01-01T00:00:10Z"),
            ),
            pod(
                "ready-new",
                Some("n2"),
                "Running",
                Some("2026-01-01T00:05:00Z"),
            ),
            pod("running-not-ready", Some("n1"), "Running", None),
            pod("pending", Some("n2"), "Pending", None),
            pod("unscheduled", None, "Pending", None),
        ];
        let names = |n| {
            pods_to_delete(&active, n)
                .iter()
                .map(|p| p.name_any())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(5),
            [
                "unscheduled",
                "pending",
                "running-not-ready",
                "ready-new",
                "ready-old"
            ]
        );
        assert_eq!(names(1), ["unscheduled"]);
    }

    #[test]
    fn pods_from_a_template_are_controlled_by_the_set() {
        let set: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }))
        .unwrap();
        let pod = pod_from_template(set.spec.template.as_ref().unwrap(), &set);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        let owner = controller_of(&pod.metadata).unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", "u1")
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert!(selects(&set, &pod));
    }

    #[test]
    fn a_replication_controller_is_read_as_a_replica_set_and_written_as_itself() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u2", "generation": 3},
            "spec": {"replicas": 2, "minReadySeconds": 5, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web", "tier": "x"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": 1, "conditions": [{"type": "ReplicaFailure",
                "status": "True", "reason": "FailedCreate"}]},
        }))
        .unwrap();
        let set = rc.as_replica_set();
        assert_eq!(set.spec.replicas, Some(2));
        assert_eq!(set.spec.min_ready_seconds, Some(5));
        let labelled = |labels: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "labels": labels}})).unwrap()
        };
        assert!(selects(
            &set,
            &labelled(json!({"app": "web", "other": "y"}))
        ));
        assert!(!selects(&set, &labelled(json!({"app": "db"}))));
        let previous = set.status.clone().unwrap();
        assert_eq!(
            previous.conditions.unwrap()[0].reason.as_deref(),
            Some("FailedCreate")
        );

        // The pods it makes name the RC as their controller.
        let pod = pod_from_template(set.spec.template.as_ref().unwrap(), &rc);
        let owner = controller_of(&pod.metadata).unwrap();
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.uid.as_str()
            ),
            ("v1", "ReplicationController", "u2")
        );

        let computed = ReplicaSetStatus {
            replicas: 2,
            fully_labeled_replicas: Some(2),
            ready_replicas: Some(1),
            available_replicas: Some(1),
            terminating_replicas: Some(1),
            observed_generation: Some(3),
            conditions: None,
        };
        let status = ReplicationController::status_from(computed);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 1,
                "availableReplicas": 1, "observedGeneration": 3})
        );
    }
}
