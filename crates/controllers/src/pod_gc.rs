//! The pod garbage collector (upstream's `podgc`), for pods no kubelet will ever finish:
//! - pods bound to a node that no longer exists: after a quarantine of [`QUARANTINE`] (a node
//!   the cache has not seen yet may just have registered) and a check against the API, they are
//!   marked Failed with a `DisruptionTarget` condition (`DeletionByPodGC`) and deleted at once,
//!   so their controllers replace them on nodes that exist;
//! - terminating pods that were never scheduled: deleted at once.
//!
//! Deletes carry the pod's uid as a precondition, so a pod recreated under the same name is
//! never touched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::error::{gone_ok, Error};
use crate::pods;
use crate::{patch_params, Context};
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// How long a pod's node must be missing before the pod goes (upstream's `quarantineTime`).
pub const QUARANTINE: Duration = Duration::from_secs(40);

#[derive(Clone)]
struct Shared {
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    /// When each pod was first seen on a missing node.
    orphaned_since: Arc<Mutex<HashMap<ObjectKey, Instant>>>,
}

/// Registers the handlers and starts the workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let shared = Shared {
        client: ctx.client.clone(),
        pods: ctx.informers.get::<Pod>(),
        nodes: ctx.informers.get::<Node>(),
        orphaned_since: Arc::default(),
    };
    let nodes = shared.nodes.clone();
    let pods = shared.pods.clone();
    Controller::new(&ctx.runtime, "pod-garbage-collector")
        .watches(&shared.pods, move |change| match change {
            Change::Applied { new, .. }
                if needs_collecting(new, |node| {
                    nodes.cache().get(&ObjectKey::cluster(node)).is_some()
                }) =>
            {
                Some(ObjectKey::of(new.as_ref()))
            }
            _ => None,
        })
        .watches(&shared.nodes, move |change| {
            let Change::Deleted(node) = change else {
                return Vec::new();
            };
            let name = node.name_any();
            pods.cache()
                .all()
                .iter()
                .filter(|pod| node_of(pod) == Some(name.as_str()))
                .map(|pod| ObjectKey::of(pod.as_ref()))
                .collect()
        })
        .run(move |key| {
            let shared = shared.clone();
            async move { sync(&shared, &key).await }
        })
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

/// Whether the pod is one the collector acts on: bound to a node that does not exist, or
/// terminating without ever having been scheduled.
fn needs_collecting(pod: &Pod, node_exists: impl Fn(&str) -> bool) -> bool {
    match node_of(pod) {
        Some(node) => !node_exists(node),
        None => pod.metadata.deletion_timestamp.is_some(),
    }
}

fn forget(shared: &Shared, key: &ObjectKey) {
    shared
        .orphaned_since
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(key);
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(pod) = shared.pods.cache().get(key) else {
        forget(shared, key);
        return Ok(Action::Done);
    };
    let nodes = shared.nodes.cache();
    if !needs_collecting(&pod, |node| nodes.get(&ObjectKey::cluster(node)).is_some()) {
        forget(shared, key);
        return Ok(Action::Done);
    }
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    let Some(node) = node_of(&pod) else {
        tracing::info!(pod = %key, "deleting an unscheduled terminating pod");
        force_delete(&api, &pod).await?;
        return Ok(Action::Done);
    };
    let since = *shared
        .orphaned_since
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key.clone())
        .or_insert_with(Instant::now);
    let waited = since.elapsed();
    if waited < QUARANTINE {
        return Ok(Action::RequeueAfter(QUARANTINE - waited));
    }
    // The cache may lag behind a node that just registered: ask the API.
    let node_api: Api<Node> = Api::all(shared.client.clone());
    if gone_ok(node_api.get(node).await)?.is_some() {
        forget(shared, key);
        return Ok(Action::Done);
    }
    tracing::info!(pod = %key, node, "deleting a pod whose node no longer exists");
    if !pods::is_finished(&pod) {
        let status = json!({"status": {
            "phase": "Failed",
            "conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": Time(Timestamp::now()),
            }],
        }});
        gone_ok(
            api.patch_status(&key.name, &patch_params(), &Patch::Strategic(&status))
                .await,
        )?;
    }
    force_delete(&api, &pod).await?;
    forget(shared, key);
    Ok(Action::Done)
}

/// Deletes the pod with no grace period, only if it is still the same pod.
async fn force_delete(api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    gone_ok(api.delete(&pod.name_any(), &params).await)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: Option<&str>, terminating: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "n",
                "deletionTimestamp": terminating.then_some("2026-01-01T00:00:00Z")},
            "spec": {"nodeName": node, "containers": []},
        }))
        .unwrap()
    }

    #[test]
    fn collects_pods_of_missing_nodes_and_unscheduled_terminating_ones() {
        let exists = |node: &str| node == "here";
        assert!(!needs_collecting(&pod(Some("here"), false), exists));
        assert!(needs_collecting(&pod(Some("gone"), false), exists));
        assert!(needs_collecting(&pod(Some("gone"), true), exists));
        assert!(!needs_collecting(&pod(None, false), exists));
        assert!(needs_collecting(&pod(None, true), exists));
        assert!(needs_collecting(&pod(Some(""), true), exists));
    }
}
