//! The Deployment controller, as upstream's: a ReplicaSet per pod template (named after the
//! template's hash), RollingUpdate within maxSurge/maxUnavailable or Recreate, proportional
//! scaling of a rollout in flight, revisions and their history limit, pause and resume, and the
//! status `kubectl rollout status` reads (observedGeneration, replica counts, the Progressing and
//! Available conditions, progressDeadlineSeconds).
//!
//! A sync claims the deployment's ReplicaSets, lets `plan::plan` decide its writes without
//! I/O, then `apply`s them in order.

mod plan;
pub(crate) mod util;

use std::collections::BTreeMap;
use std::sync::Arc;

use k3rs_api::LabelSelector;
use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::error::{gone_ok, Error};
use crate::ownership::{adopt, controller_of, release};
use crate::Context;
use crate::{patch_params as params, post_params};
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::queue::WorkQueue;
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;
use plan::{Plan, Step};
use util::*;

#[derive(Clone)]
struct Shared {
    client: Client,
    deployments: Arc<Informer<Deployment>>,
    sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    queue: Arc<WorkQueue<ObjectKey>>,
    events: Recorder,
}

/// Registers the controller's handlers and starts its workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let controller = Controller::new(&ctx.runtime, "deployment-controller");
    let shared = Shared {
        client: ctx.client.clone(),
        deployments: ctx.informers.get::<Deployment>(),
        sets: ctx.informers.get::<ReplicaSet>(),
        pods: ctx.informers.get::<Pod>(),
        queue: controller.queue(),
        events: Recorder::new(ctx.client.clone(), "deployment-controller"),
    };
    controller
        .reconciles(&shared.deployments)
        .watches(&shared.sets, {
            let shared = shared.clone();
            move |change| {
                set_changed(&shared, change);
                None
            }
        })
        // Recreate waits for the old pods to be gone: a pod deletion may unblock it.
        .watches(&shared.pods, {
            let shared = shared.clone();
            move |change| {
                if let Change::Deleted(pod) = change {
                    let namespace = pod.namespace().unwrap_or_default();
                    let owner = controller_of(&pod.metadata)
                        .filter(|r| r.kind == "ReplicaSet")
                        .and_then(|r| shared.sets.cache().get_named(&namespace, &r.name));
                    if let Some(rs) = owner {
                        set_changed(&shared, &Change::Deleted(rs));
                    }
                }
                None
            }
        })
        .workers(4)
        .run(move |key| {
            let shared = shared.clone();
            async move { sync(&shared, &key).await }
        })
}

/// Queues the deployment that controls the ReplicaSet, or, for an orphan, every deployment
/// whose selector matches it.
fn set_changed(shared: &Shared, change: &Change<ReplicaSet>) {
    let rs = change.object();
    let namespace = rs.namespace().unwrap_or_default();
    if let Change::Applied { old: Some(old), .. } = change {
        if let Some(r) = controller_of(&old.metadata).filter(|r| r.kind == "Deployment") {
            shared
                .queue
                .add(ObjectKey::new(namespace.clone(), r.name.clone()));
        }
    }
    match controller_of(&rs.metadata) {
        Some(r) if r.kind == "Deployment" => {
            shared.queue.add(ObjectKey::new(namespace, r.name.clone()));
        }
        Some(_) => {}
        None => {
            if let Change::Applied { .. } = change {
                for d in shared.deployments.cache().in_namespace(&namespace) {
                    if selects(&d, rs.metadata.labels.as_ref()) {
                        shared.queue.add(ObjectKey::of(d.as_ref()));
                    }
                }
            }
        }
    }
}

fn selects(d: &Deployment, labels: Option<&BTreeMap<String, String>>) -> bool {
    LabelSelector::from_typed(Some(&d.spec.selector))
        .ok()
        .filter(|s| !s.is_everything())
        .is_some_and(|s| s.matches(&labels.cloned().unwrap_or_default()))
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(d) = shared.deployments.cache().get(key) else {
        return Ok(Action::Done);
    };
    let sets_api: Api<ReplicaSet> = Api::namespaced(shared.client.clone(), &key.namespace);
    let sets = claim_sets(shared, &sets_api, &d).await?;
    // Only a Recreate rollout looks at pods (its new set waits for the old pods to be gone).
    let pods = if is_rolling(&d) {
        Vec::new()
    } else {
        shared.pods.cache().in_namespace(&key.namespace)
    };
    let plan = plan::plan(&d, &sets, &pods, Timestamp::now());
    apply(shared, &sets_api, &d, &sets, plan).await
}

/// The deployment's ReplicaSets: those it controls and still selects, plus matching orphans
/// it adopts; controlled sets that stopped matching are released.
async fn claim_sets(
    shared: &Shared,
    sets_api: &Api<ReplicaSet>,
    d: &Deployment,
) -> Result<Vec<Arc<ReplicaSet>>, Error> {
    let uid = d.uid().unwrap_or_default();
    let mut owned = Vec::new();
    let namespace = d.namespace().unwrap_or_default();
    for rs in shared.sets.cache().in_namespace(&namespace) {
        let matches = selects(d, rs.metadata.labels.as_ref());
        match controller_of(&rs.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(rs);
                } else {
                    release(sets_api, &rs, &uid).await?;
                }
            }
            Some(_) => {}
            None => {
                if matches
                    && rs.metadata.deletion_timestamp.is_none()
                    && d.metadata.deletion_timestamp.is_none()
                {
                    match adopt(sets_api, rs.as_ref(), d).await {
                        Ok(()) => owned.push(rs),
                        Err(err) if err.is_not_found() => {}
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }
    Ok(owned)
}

/// Makes the plan's writes in order, each on the newest version of its object (the writes
/// carry it as a precondition), and stops at the first that fails.
async fn apply(
    shared: &Shared,
    sets_api: &Api<ReplicaSet>,
    cached: &Deployment,
    sets: &[Arc<ReplicaSet>],
    plan: Plan,
) -> Result<Action, Error> {
    let deployments: Api<Deployment> = Api::namespaced(
        shared.client.clone(),
        &cached.namespace().unwrap_or_default(),
    );
    let mut d = cached.clone();
    // The newest resourceVersion of each set, the precondition of its next write.
    let mut versions: BTreeMap<String, Option<String>> = sets
        .iter()
        .map(|rs| (rs.name_any(), rs.resource_version()))
        .collect();
    for step in plan.steps {
        match step {
            Step::Status(status) => write_status(&deployments, &mut d, status).await?,
            Step::Revision(revision) => {
                if util::revision(d.metadata.annotations.as_ref()) != revision {
                    let patch = json!({"metadata": {
                        "annotations": {REVISION: revision.to_string()},
                        "resourceVersion": d.resource_version(),
                    }});
                    d = deployments
                        .patch(&d.name_any(), &params(), &Patch::Merge(&patch))
                        .await?;
                }
            }
            Step::UpdateSet {
                name,
                annotations,
                min_ready_seconds,
            } => {
                let patch = json!({
                    "metadata": {"annotations": annotations},
                    "spec": {"minReadySeconds": min_ready_seconds},
                });
                patch_set(sets_api, &mut versions, name, patch).await?;
            }
            Step::CreateSet { set, event } => {
                let name = set.name_any();
                let created = create_set(shared, sets_api, &deployments, &mut d, &set).await?;
                versions.insert(name, created.resource_version());
                if let Some(message) = event {
                    shared.events.normal(&d, "ScalingReplicaSet", message).await;
                }
            }
            Step::Scale {
                name,
                replicas,
                desired,
                max,
                event,
            } => {
                let patch = json!({
                    "metadata": {"annotations": {
                        DESIRED_REPLICAS: desired.to_string(),
                        MAX_REPLICAS: max.to_string(),
                    }},
                    "spec": {"replicas": replicas},
                });
                patch_set(sets_api, &mut versions, name, patch).await?;
                if let Some(message) = event {
                    shared.events.normal(&d, "ScalingReplicaSet", message).await;
                }
            }
            Step::DeleteSet { name, uid } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid,
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                gone_ok(sets_api.delete(&name, &params).await)?;
            }
        }
    }
    Ok(plan.requeue.map_or(Action::Done, Action::RequeueAfter))
}

/// Merge-patches the ReplicaSet `name` with the newest resourceVersion `versions` holds as
/// precondition, and keeps the one it answers with.
async fn patch_set(
    sets_api: &Api<ReplicaSet>,
    versions: &mut BTreeMap<String, Option<String>>,
    name: String,
    mut patch: serde_json::Value,
) -> Result<(), Error> {
    patch["metadata"]["resourceVersion"] = json!(versions.get(&name).cloned().flatten());
    let updated = sets_api
        .patch(&name, &params(), &Patch::Merge(&patch))
        .await?;
    versions.insert(name, updated.resource_version());
    Ok(())
}

/// Creates the new ReplicaSet `set`. A name already taken by this template's set (a cache
/// that lags) is that set; by another template (a hash collision) bumps the collision count
/// and fails the sync, to be retried with a new name; any other failure is reported as
/// upstream does (a `FailedCreate` event, Progressing `ReplicaSetCreateError`).
async fn create_set(
    shared: &Shared,
    sets_api: &Api<ReplicaSet>,
    deployments: &Api<Deployment>,
    d: &mut Deployment,
    set: &ReplicaSet,
) -> Result<ReplicaSet, Error> {
    let name = set.name_any();
    let err = match sets_api.create(&post_params(), set).await {
        Ok(created) => return Ok(created),
        Err(err) => err,
    };
    let now = Timestamp::now();
    if Error::from(kube_clone(&err)).is_conflict() {
        let existing = sets_api.get(&name).await?;
        let ours =
            controller_of(&existing.metadata).is_some_and(|r| Some(&r.uid) == d.uid().as_ref());
        let same = existing
            .spec
            .template
            .as_ref()
            .is_some_and(|t| same_template(t, &d.spec.template));
        if ours && same {
            return Ok(existing);
        }
        let mut status = d.status.clone().unwrap_or_default();
        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
        write_status(deployments, d, status).await?;
        return Err(Error::HashCollision { name });
    }
    let message = format!("Failed to create new replica set \"{name}\": {err}");
    shared
        .events
        .warning(&*d, "FailedCreate", message.clone())
        .await;
    if has_deadline(d) {
        let mut status = d.status.clone().unwrap_or_default();
        set_condition(
            &mut status,
            new_condition(
                "Progressing",
                "False",
                "ReplicaSetCreateError",
                message,
                now,
            ),
        );
        write_status(deployments, d, status).await?;
    }
    Err(err.into())
}

/// Writes `status` when it differs from `d`'s, and keeps what the server answered in `d`.
async fn write_status(
    api: &Api<Deployment>,
    d: &mut Deployment,
    status: DeploymentStatus,
) -> Result<(), Error> {
    if d.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = json!({
        "metadata": {"resourceVersion": d.resource_version()},
        "status": k3rs_runtime::status::merge_patch(d.status.as_ref(), &status)?,
    });
    *d = api
        .patch_status(&d.name_any(), &params(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// kube's errors are not `Clone`; this keeps what [`Error::status`] reads.
fn kube_clone(err: &kube::Error) -> kube::Error {
    match err {
        kube::Error::Api(status) => kube::Error::Api(status.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}
