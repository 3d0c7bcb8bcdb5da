//! Controller references (`ownerReferences` with `controller: true`): who controls an object,
//! the reference a controller puts on what it creates, and adoption and release by patch.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::Patch;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::Error;
use crate::patch_params as params;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::expectations::Expectations;
use k3rs_runtime::informer::Change;
use k3rs_runtime::queue::WorkQueue;

/// The object's controller reference, if it has one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta`'s controller is the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// The controller reference to put on objects `owner` creates or adopts.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Makes `owner` the controller of `object` (an orphan whose labels match the owner's
/// selector). The patch carries the object's uid, so it cannot land on a same-named successor.
pub async fn adopt<K, O>(api: &Api<K>, object: &K, owner: &O) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    O: Resource<DynamicType = ()>,
{
    let patch = json!({"metadata": {
        "ownerReferences": [controller_ref(owner)],
        "uid": object.uid(),
    }});
    api.patch(&object.name_any(), &params(), &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

/// Removes `owner_uid`'s reference from `object` (its labels no longer match the selector).
pub async fn release<K>(api: &Api<K>, object: &K, owner_uid: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
        "uid": object.uid(),
    }});
    match api
        .patch(&object.name_any(), &params(), &Patch::Strategic(&patch))
        .await
        .map_err(Error::from)
    {
        Err(err) if err.is_not_found() => Ok(()),
        other => other.map(drop),
    }
}

/// Upstream's `ClaimPods`: the pods of `candidates` that `owner` controls after adopting the
/// orphans its selector matches and releasing the pods that stopped matching. Only pods for
/// which `claimable` holds are adopted or released (a ReplicaSet leaves finished pods alone);
/// nothing is adopted while the owner is being deleted.
pub async fn claim_pods<O>(
    api: &Api<Pod>,
    candidates: Vec<Arc<Pod>>,
    owner: &O,
    selects: impl Fn(&Pod) -> bool,
    claimable: impl Fn(&Pod) -> bool,
) -> Result<Vec<Arc<Pod>>, Error>
where
    O: Resource<DynamicType = ()>,
{
    let uid = owner.uid().unwrap_or_default();
    let mut owned = Vec::new();
    for pod in candidates {
        let matches = selects(&pod);
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(pod);
                } else if claimable(&pod) {
                    release(api, &pod, &uid).await?;
                }
            }
            Some(_) => {}
            None => {
                if matches && claimable(&pod) && owner.meta().deletion_timestamp.is_none() {
                    match adopt(api, &pod, owner).await {
                        Ok(()) => owned.push(pod),
                        Err(err) if err.is_not_found() => {}
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }
    Ok(owned)
}

/// Whether an owner's `spec.selector` selects `pod`. A selector that selects everything (empty)
/// or cannot be read selects nothing, as upstream's pod-creating controllers treat it.
pub(crate) fn selector_selects(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    pod: &Pod,
) -> bool {
    let Ok(selector) = serde_json::to_value(selector) else {
        return false;
    };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    k3rs_api::LabelSelector::from_label_selector(&selector)
        .ok()
        .filter(|s| !s.is_everything())
        .is_some_and(|s| s.matches(&labels))
}

/// The pod handler of a controller that creates pods (ReplicaSet, Job, DaemonSet): records the creates and
/// deletes it sees in `expectations` — a pod that gets a `deletionTimestamp` counts as deleted
/// (upstream's `updatePod`: a graceful deletion may take the grace period, and the owner must
/// not wait for it) — and queues the owners of kind `kind` the change concerns: the pod's
/// controller, old and new if it changed, or, for an orphan (no controller of any kind) whose
/// labels changed, every owner `matching` names (one of them may adopt it).
pub(crate) fn queue_pod_owners(
    change: &Change<Pod>,
    kind: &str,
    expectations: &Expectations<ObjectKey>,
    queue: &WorkQueue<ObjectKey>,
    matching: impl Fn(&str, &Pod) -> Vec<ObjectKey>,
) {
    let pod = change.object();
    let namespace = pod.namespace().unwrap_or_default();
    let owner_key = |pod: &Pod| {
        controller_of(&pod.metadata)
            .filter(|r| r.kind == kind)
            .map(|r| ObjectKey::new(namespace.clone(), r.name.clone()))
    };
    match change {
        Change::Deleted(pod) => {
            if let Some(key) = owner_key(pod) {
                expectations.deletion_observed(&key, &pod.name_any());
                queue.add(key);
            }
        }
        Change::Applied { old, new } => {
            let new_owner = owner_key(new);
            if let Some(key) = &new_owner {
                if old.is_none() {
                    expectations.creation_observed(key);
                }
                if new.metadata.deletion_timestamp.is_some() {
                    expectations.deletion_observed(key, &new.name_any());
                }
                queue.add(key.clone());
            }
            if let Some(old_owner) = old.as_deref().and_then(owner_key) {
                if Some(&old_owner) != new_owner.as_ref() {
                    queue.add(old_owner);
                }
            }
            let labels_changed = old
                .as_ref()
                .is_none_or(|old| old.metadata.labels != new.metadata.labels);
            // A pod controlled by something else is no orphan (upstream's updatePod).
            if controller_of(&new.metadata).is_none() && labels_changed {
                for key in matching(&namespace, new) {
                    queue.add(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: serde_json::Value, owner: Option<&str>, terminating: bool) -> Arc<Pod> {
        let owners = owner.map(|name| {
            json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name,
                "uid": format!("uid-{name}"), "controller": true}])
        });
        let deletion = terminating.then_some("2026-01-01T00:00:00Z");
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns", "labels": labels,
                    "ownerReferences": owners, "deletionTimestamp": deletion},
            }))
            .unwrap(),
        )
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("ns", name)
    }

    #[test]
    fn a_pod_that_starts_terminating_counts_as_deleted() {
        let expectations = Expectations::default();
        let queue = WorkQueue::new();
        let nobody = |_: &str, _: &Pod| Vec::new();
        expectations.expect(&key("agent"), 1, ["p".to_owned()]);

        let running = pod(json!({"app": "agent"}), Some("agent"), false);
        let created = Change::Applied {
            old: None,
            new: running.clone(),
        };
        queue_pod_owners(&created, "DaemonSet", &expectations, &queue, nobody);
        assert!(
            !expectations.satisfied(&key("agent")),
            "the deletion is still expected"
        );
        assert_eq!(queue.len(), 1);

        // Upstream's updatePod: the deletionTimestamp is the deletion, not the pod's removal
        // a grace period later.
        let terminating = Change::Applied {
            old: Some(running),
            new: pod(json!({"app": "agent"}), Some("agent"), true),
        };
        queue_pod_owners(&terminating, "DaemonSet", &expectations, &queue, nobody);
        assert!(expectations.satisfied(&key("agent")));
    }

    #[test]
    fn owners_of_other_kinds_are_left_alone_and_orphans_go_to_matching_owners() {
        let expectations = Expectations::default();
        let queue: Arc<WorkQueue<ObjectKey>> = WorkQueue::new();
        let matching = |_: &str, pod: &Pod| {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if labels.get("app").map(String::as_str) == Some("agent") {
                vec![key("agent")]
            } else {
                Vec::new()
            }
        };
        let owned = Change::Applied {
            old: None,
            new: pod(json!({"app": "agent"}), Some("agent"), false),
        };
        queue_pod_owners(&owned, "ReplicaSet", &expectations, &queue, matching);
        assert!(
            queue.is_empty(),
            "a DaemonSet's pod is no ReplicaSet's business"
        );

        let before = pod(json!({"app": "other"}), None, false);
        let relabelled = Change::Applied {
            old: Some(before.clone()),
            new: pod(json!({"app": "agent"}), None, false),
        };
        queue_pod_owners(&relabelled, "DaemonSet", &expectations, &queue, matching);
        assert_eq!(queue.len(), 1, "the owner that may adopt it");

        let unchanged = Change::Applied {
            old: Some(before.clone()),
            new: before,
        };
        let queue: Arc<WorkQueue<ObjectKey>> = WorkQueue::new();
        queue_pod_owners(&unchanged, "DaemonSet", &expectations, &queue, matching);
        assert!(queue.is_empty(), "labels unchanged: nothing to adopt");
    }
}
