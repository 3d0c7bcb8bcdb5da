//! The Deployment controller, as upstream's: a ReplicaSet per pod template (named after the
//! template's hash), RollingUpdate within maxSurge/maxUnavailable or Recreate, proportional
//! scaling of a rollout in flight, revisions and their history limit, pause and resume, and the
//! status `kubectl rollout status` reads (observedGeneration, replica counts, the Progressing and
//! Available conditions, progressDeadlineSeconds).

pub(crate) mod util;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k3rs_api::LabelSelector;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::cache::ObjectKey;
use crate::error::{gone_ok, Error};
use crate::events::Recorder;
use crate::informer::{Change, Informer};
use crate::ownership::{adopt, controller_of, controller_ref, release};
use crate::pods;
use crate::queue::WorkQueue;
use crate::runner::{spawn_workers, Action};
use crate::Context;
use crate::{patch_params as params, post_params};
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
pub(crate) fn start(ctx: &Context) -> JoinHandle<()> {
    let shared = Shared {
        client: ctx.client.clone(),
        deployments: ctx.informers.get::<Deployment>(),
        sets: ctx.informers.get::<ReplicaSet>(),
        pods: ctx.informers.get::<Pod>(),
        queue: WorkQueue::new(),
        events: Recorder::new(ctx.client.clone(), "deployment-controller"),
    };
    shared.deployments.on_change({
        let queue = shared.queue.clone();
        move |change| queue.add(ObjectKey::of(change.object().as_ref()))
    });
    shared.sets.on_change({
        let shared = shared.clone();
        move |change| set_changed(&shared, change)
    });
    // Recreate waits for the old pods to be gone: a pod deletion may unblock it.
    shared.pods.on_change({
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
        }
    });
    let ready = {
        let shared = shared.clone();
        async move {
            shared.deployments.wait_synced().await;
            shared.sets.wait_synced().await;
            shared.pods.wait_synced().await;
        }
    };
    let queue = shared.queue.clone();
    spawn_workers("deployment-controller", queue, 4, ready, move |key| {
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

/// One deployment's sync, with the API handles it needs.
struct Sync<'a> {
    shared: &'a Shared,
    d: Deployment,
    sets_api: Api<ReplicaSet>,
    now: Timestamp,
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(cached) = shared.deployments.cache().get(key) else {
        return Ok(Action::Done);
    };
    let mut sync = Sync {
        shared,
        d: (*cached).clone(),
        sets_api: Api::namespaced(shared.client.clone(), &key.namespace),
        now: Timestamp::now(),
    };
    let sets = sync.claim_sets().await?;
    if sync.d.metadata.deletion_timestamp.is_some() {
        return sync.sync_status_only(&sets).await;
    }
    sync.check_paused_conditions().await?;
    if sync.d.spec.paused == Some(true) {
        return sync.sync_scale(&sets).await;
    }
    if sync.is_scaling_event(&sets) {
        return sync.sync_scale(&sets).await;
    }
    if is_rolling(&sync.d) {
        sync.rollout_rolling(sets).await
    } else {
        sync.rollout_recreate(sets).await
    }
}

impl Sync<'_> {
    fn uid(&self) -> String {
        self.d.uid().unwrap_or_default()
    }

    /// The deployment's ReplicaSets: those it controls and still selects, plus matching
    /// orphans it adopts; controlled sets that stopped matching are released.
    async fn claim_sets(&self) -> Result<Vec<Arc<ReplicaSet>>, Error> {
        let uid = self.uid();
        let mut owned = Vec::new();
        let namespace = self.d.namespace().unwrap_or_default();
        for rs in self.shared.sets.cache().in_namespace(&namespace) {
            let matches = selects(&self.d, rs.metadata.labels.as_ref());
            match controller_of(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push(rs);
                    } else {
                        release(&self.sets_api, &rs, &uid).await?;
                    }
                }
                Some(_) => {}
                None => {
                    if matches
                        && rs.metadata.deletion_timestamp.is_none()
                        && self.d.metadata.deletion_timestamp.is_none()
                    {
                        match adopt(&self.sets_api, rs.as_ref(), &self.d).await {
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

    /// Whether some active ReplicaSet was last scaled for another replica count.
    fn is_scaling_event(&self, sets: &[Arc<ReplicaSet>]) -> bool {
        let wanted = replicas(&self.d);
        active(sets)
            .iter()
            .any(|rs| rs_annotation(rs, DESIRED_REPLICAS).is_some_and(|n| n != wanted))
    }

    /// The ReplicaSet of the current template (the oldest if several) and the others.
    fn split(&self, sets: &[Arc<ReplicaSet>]) -> (Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>) {
        let mut sorted = sets.to_vec();
        by_creation(&mut sorted);
        let new_rs = sorted
            .iter()
            .find(|rs| {
                rs.spec
                    .template
                    .as_ref()
                    .is_some_and(|t| same_template(t, &self.d.spec.template))
            })
            .cloned();
        let old = sorted
            .into_iter()
            .filter(|rs| new_rs.as_ref().is_none_or(|n| n.uid() != rs.uid()))
            .collect();
        (new_rs, old)
    }

    /// Upstream's `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when asked
    /// and missing) with its revision brought up to date, and the old ones.
    async fn new_and_old(
        &mut self,
        sets: &[Arc<ReplicaSet>],
        create: bool,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>), Error> {
        let (new_rs, old) = self.split(sets);
        let max_old = old.iter().map(|rs| rs_revision(rs)).max().unwrap_or(0);
        let new_revision = max_old + 1;
        let new_rs = match new_rs {
            Some(rs) => Some(self.sync_existing(rs, new_revision).await?),
            None if create => Some(self.create_new(&old, new_revision).await?),
            None => None,
        };
        Ok((new_rs, old))
    }

    /// Brings an existing new ReplicaSet's revision, copied annotations and minReadySeconds up
    /// to date, and the deployment's revision with it.
    async fn sync_existing(
        &mut self,
        rs: Arc<ReplicaSet>,
        new_revision: i64,
    ) -> Result<Arc<ReplicaSet>, Error> {
        let mut annotations = rs.metadata.annotations.clone().unwrap_or_default();
        let before = annotations.clone();
        annotations.extend(copied_annotations(&self.d));
        let current = rs_revision(&rs);
        if current < new_revision {
            if current > 0 {
                let history = annotations
                    .get(REVISION_HISTORY)
                    .filter(|h| !h.is_empty())
                    .map_or(current.to_string(), |h| format!("{h},{current}"));
                annotations.insert(REVISION_HISTORY.into(), history);
            }
            annotations.insert(REVISION.into(), new_revision.to_string());
        }
        let min_ready_changed = rs.spec.min_ready_seconds != self.d.spec.min_ready_seconds;
        let rs = if annotations != before || min_ready_changed {
            let patch = json!({
                "metadata": {"annotations": annotations, "resourceVersion": rs.resource_version()},
                "spec": {"minReadySeconds": self.d.spec.min_ready_seconds},
            });
            Arc::new(
                self.sets_api
                    .patch(&rs.name_any(), &params(), &Patch::Merge(&patch))
                    .await?,
            )
        } else {
            rs
        };
        let revision = rs_revision(&rs);
        let mut status = self.d.status.clone().unwrap_or_default();
        let needs_condition = has_deadline(&self.d) && condition(&status, "Progressing").is_none();
        if needs_condition {
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "True",
                    FOUND_NEW_RS,
                    format!("Found new replica set \"{}\"", rs.name_any()),
                    self.now,
                ),
            );
            self.write_status(status).await?;
        }
        self.set_deployment_revision(revision).await?;
        Ok(rs)
    }

    /// Writes the deployment's revision annotation when it differs.
    async fn set_deployment_revision(&mut self, revision: i64) -> Result<(), Error> {
        if util::revision(self.d.metadata.annotations.as_ref()) == revision {
            return Ok(());
        }
        let api: Api<Deployment> = self.deployments_api();
        let patch = json!({"metadata": {
            "annotations": {REVISION: revision.to_string()},
            "resourceVersion": self.d.resource_version(),
        }});
        self.d = api
            .patch(&self.d.name_any(), &params(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    fn deployments_api(&self) -> Api<Deployment> {
        Api::namespaced(
            self.shared.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        )
    }

    /// Creates the ReplicaSet of the current template, sized as a rolling update allows.
    async fn create_new(
        &mut self,
        old: &[Arc<ReplicaSet>],
        revision: i64,
    ) -> Result<Arc<ReplicaSet>, Error> {
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&self.d.spec.template, collision_count);
        let mut template = self.d.spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut selector = self.d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(TEMPLATE_HASH_LABEL.into(), hash.clone());
        let wanted = self.new_rs_replicas(old, None);
        let mut annotations = copied_annotations(&self.d);
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), replicas(&self.d).to_string());
        annotations.insert(
            MAX_REPLICAS.into(),
            (replicas(&self.d) + max_surge(&self.d)).to_string(),
        );
        let name = format!("{}-{hash}", self.d.name_any());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.namespace(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![controller_ref(&self.d)]),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(wanted),
                min_ready_seconds: self.d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let created = match self.sets_api.create(&post_params(), &rs).await {
            Ok(created) => created,
            Err(err) if Error::from(kube_clone(&err)).is_conflict() => {
                // The name is taken: by this template's set (a cache that lags) or by another
                // template with the same hash (a collision: bump the count and try again).
                let existing = self.sets_api.get(&name).await?;
                let ours = controller_of(&existing.metadata).is_some_and(|r| r.uid == self.uid());
                let same = existing
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| same_template(t, &self.d.spec.template));
                if ours && same {
                    return Ok(Arc::new(existing));
                }
                let mut status = self.d.status.clone().unwrap_or_default();
                status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                self.write_status(status).await?;
                return Err(Error::Invalid(format!(
                    "hash collision for replica set {name}; retrying with a new collision count"
                )));
            }
            Err(err) => {
                let message = format!("Failed to create new replica set \"{name}\": {err}");
                self.shared
                    .events
                    .warning(&self.d, "FailedCreate", message.clone())
                    .await;
                self.set_progressing("False", "ReplicaSetCreateError", message)
                    .await?;
                return Err(err.into());
            }
        };
        if wanted > 0 {
            self.shared
                .events
                .normal(
                    &self.d,
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {name} from 0 to {wanted}"),
                )
                .await;
        }
        self.set_progressing(
            "True",
            NEW_RS_CREATED,
            format!("Created new replica set \"{name}\""),
        )
        .await?;
        self.set_deployment_revision(revision).await?;
        Ok(Arc::new(created))
    }

    /// Sets the Progressing condition, when the deployment has a progress deadline.
    async fn set_progressing(
        &mut self,
        status: &str,
        reason: &str,
        message: String,
    ) -> Result<(), Error> {
        if !has_deadline(&self.d) {
            return Ok(());
        }
        let mut current = self.d.status.clone().unwrap_or_default();
        set_condition(
            &mut current,
            new_condition("Progressing", status, reason, message, self.now),
        );
        self.write_status(current).await
    }

    /// Upstream's `NewRSNewReplicas`: how many replicas the new set may have now.
    fn new_rs_replicas(&self, old: &[Arc<ReplicaSet>], new_rs: Option<&ReplicaSet>) -> i32 {
        let wanted = replicas(&self.d);
        if !is_rolling(&self.d) {
            return wanted;
        }
        let current_new = new_rs.map_or(0, rs_replicas);
        let current_total = total(old, rs_replicas) + current_new;
        let max_total = wanted + max_surge(&self.d);
        if current_total >= max_total {
            return current_new;
        }
        let scale_up = max_total - current_total;
        current_new + scale_up.min(wanted - current_new)
    }

    /// Sets a ReplicaSet's replicas (and the deployment-size annotations), recording an event
    /// when the size changes. Returns the updated set.
    async fn scale_rs(
        &self,
        rs: &ReplicaSet,
        to: i32,
        operation: &str,
    ) -> Result<Arc<ReplicaSet>, Error> {
        let from = rs_replicas(rs);
        let desired = replicas(&self.d).to_string();
        let max = (replicas(&self.d) + max_surge(&self.d)).to_string();
        let annotations_ok = rs.metadata.annotations.as_ref().is_some_and(|a| {
            a.get(DESIRED_REPLICAS) == Some(&desired) && a.get(MAX_REPLICAS) == Some(&max)
        });
        if from == to && annotations_ok {
            return Ok(Arc::new(rs.clone()));
        }
        let patch = json!({
            "metadata": {
                "annotations": {DESIRED_REPLICAS: desired, MAX_REPLICAS: max},
                "resourceVersion": rs.resource_version(),
            },
            "spec": {"replicas": to},
        });
        let updated = self
            .sets_api
            .patch(&rs.name_any(), &params(), &Patch::Merge(&patch))
            .await?;
        if from != to {
            let operation = if operation.is_empty() {
                if to > from {
                    "up"
                } else {
                    "down"
                }
            } else {
                operation
            };
            self.shared
                .events
                .normal(
                    &self.d,
                    "ScalingReplicaSet",
                    format!(
                        "Scaled {operation} replica set {} from {from} to {to}",
                        rs.name_any()
                    ),
                )
                .await;
        }
        Ok(Arc::new(updated))
    }

    async fn rollout_rolling(&mut self, sets: Vec<Arc<ReplicaSet>>) -> Result<Action, Error> {
        let (new_rs, old) = self.new_and_old(&sets, true).await?;
        let Some(new_rs) = new_rs else {
            return Ok(Action::Done);
        };
        let mut all = old.clone();
        all.push(new_rs.clone());

        // Scale up the new set as far as surge allows.
        let wanted = replicas(&self.d);
        let current = rs_replicas(&new_rs);
        let target = if current > wanted {
            wanted
        } else {
            self.new_rs_replicas(&old, Some(&new_rs))
        };
        if target != current {
            let new_rs = self.scale_rs(&new_rs, target, "").await?;
            let mut all = old.clone();
            all.push(new_rs.clone());
            return self.sync_rollout_status(&all, Some(&new_rs)).await;
        }

        // Scale down old sets as far as availability allows.
        if self.reconcile_old(&all, &old, &new_rs).await? {
            let sets = self.refreshed(&all);
            let (new_rs, _) = self.split(&sets);
            return self.sync_rollout_status(&sets, new_rs.as_deref()).await;
        }

        let status = calculate_status(&self.d, &all, Some(&new_rs), self.now);
        if is_complete(&self.d, &status) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs)).await
    }

    /// Upstream's `reconcileOldReplicaSets`: first removes unhealthy old replicas, then scales
    /// old sets down while the available count stays at least `replicas - maxUnavailable`.
    async fn reconcile_old(
        &self,
        all: &[Arc<ReplicaSet>],
        old: &[Arc<ReplicaSet>],
        new_rs: &ReplicaSet,
    ) -> Result<bool, Error> {
        let old_active = active(old);
        if total(&old_active, rs_replicas) == 0 {
            return Ok(false);
        }
        let all_pods = total(all, rs_replicas);
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // Unhealthy replicas of old sets go first, oldest set first.
        let mut sorted = old_active.clone();
        by_creation(&mut sorted);
        let mut cleaned = 0;
        let mut after_cleanup: Vec<Arc<ReplicaSet>> = Vec::new();
        for rs in sorted {
            if cleaned >= max_scaled_down || rs_replicas(&rs) == 0 {
                after_cleanup.push(rs);
                continue;
            }
            let unhealthy = rs_replicas(&rs) - rs_available(&rs);
            if unhealthy <= 0 {
                after_cleanup.push(rs);
                continue;
            }
            let down = (max_scaled_down - cleaned).min(unhealthy);
            let scaled = self.scale_rs(&rs, rs_replicas(&rs) - down, "down").await?;
            cleaned += down;
            after_cleanup.push(scaled);
        }

        // Then healthy ones, as far as availability allows.
        let mut everything = after_cleanup.clone();
        everything.push(Arc::new(new_rs.clone()));
        let available = total(&everything, rs_available);
        let mut scaled_down = 0;
        if available > min_available {
            let to_scale = available - min_available;
            let mut sorted = after_cleanup;
            by_creation(&mut sorted);
            for rs in sorted {
                if scaled_down >= to_scale {
                    break;
                }
                if rs_replicas(&rs) == 0 {
                    continue;
                }
                let down = rs_replicas(&rs).min(to_scale - scaled_down);
                self.scale_rs(&rs, rs_replicas(&rs) - down, "down").await?;
                scaled_down += down;
            }
        }
        Ok(cleaned + scaled_down > 0)
    }

    /// The deployment's sets as the cache has them now (after this sync's writes).
    fn refreshed(&self, sets: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
        sets.iter()
            .map(|rs| {
                self.shared
                    .sets
                    .cache()
                    .get(&ObjectKey::of(rs.as_ref()))
                    .unwrap_or_else(|| rs.clone())
            })
            .collect()
    }

    async fn rollout_recreate(&mut self, sets: Vec<Arc<ReplicaSet>>) -> Result<Action, Error> {
        let (new_rs, old) = self.new_and_old(&sets, false).await?;
        let mut all = old.clone();
        all.extend(new_rs.clone());

        // Scale every old set to zero first.
        let mut scaled = false;
        for rs in active(&old) {
            self.scale_rs(&rs, 0, "down").await?;
            scaled = true;
        }
        if scaled {
            return self.sync_rollout_status(&all, new_rs.as_deref()).await;
        }
        // Wait for the old pods to be gone.
        if self.old_pods_running(&old) {
            return self.sync_rollout_status(&all, new_rs.as_deref()).await;
        }
        let new_rs = match new_rs {
            Some(rs) => rs,
            None => {
                let (created, _) = self.new_and_old(&sets, true).await?;
                match created {
                    Some(rs) => rs,
                    None => return Ok(Action::Done),
                }
            }
        };
        let new_rs = self.scale_rs(&new_rs, replicas(&self.d), "up").await?;
        let mut all = old.clone();
        all.push(new_rs.clone());
        let status = calculate_status(&self.d, &all, Some(&new_rs), self.now);
        if is_complete(&self.d, &status) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs)).await
    }

    /// Whether a pod of an old set is still running (not finished and not gone).
    fn old_pods_running(&self, old: &[Arc<ReplicaSet>]) -> bool {
        if total(old, rs_actual) > 0 {
            return true;
        }
        let uids: Vec<String> = old.iter().filter_map(|rs| rs.uid()).collect();
        let namespace = self.d.namespace().unwrap_or_default();
        self.shared
            .pods
            .cache()
            .in_namespace(&namespace)
            .iter()
            .any(|pod| {
                controller_of(&pod.metadata).is_some_and(|r| uids.contains(&r.uid))
                    && !pods::is_finished(pod)
            })
    }

    /// A scaling event or a paused deployment: resize the sets (proportionally during a
    /// rollout) without moving the rollout on.
    async fn sync_scale(&mut self, sets: &[Arc<ReplicaSet>]) -> Result<Action, Error> {
        let (new_rs, old) = self.new_and_old(sets, false).await?;
        self.scale(new_rs.as_ref(), &old).await?;
        if self.d.spec.paused == Some(true) {
            self.cleanup(&old).await?;
        }
        let mut all = old.clone();
        all.extend(new_rs.clone());
        let all = self.refreshed(&all);
        let (new_rs, _) = self.split(&all);
        self.sync_status(&all, new_rs.as_deref()).await
    }

    /// Upstream's `scale`.
    async fn scale(
        &self,
        new_rs: Option<&Arc<ReplicaSet>>,
        old: &[Arc<ReplicaSet>],
    ) -> Result<(), Error> {
        let wanted = replicas(&self.d);
        // One active set (or none: the newest) takes the whole size.
        let mut newest_first = old.to_vec();
        by_creation(&mut newest_first);
        newest_first.reverse();
        let mut candidates = newest_first.clone();
        candidates.extend(new_rs.cloned());
        let active_sets = active(&candidates);
        let single = match active_sets.len() {
            0 => new_rs.cloned().or_else(|| newest_first.first().cloned()),
            1 => active_sets.first().cloned(),
            _ => None,
        };
        if let Some(rs) = single {
            if rs_replicas(&rs) != wanted {
                self.scale_rs(&rs, wanted, "").await?;
            }
            return Ok(());
        }
        // The new set is saturated: the old ones go.
        let saturated = new_rs.is_some_and(|rs| {
            rs_replicas(rs) == wanted
                && rs_annotation(rs, DESIRED_REPLICAS) == Some(wanted)
                && rs_available(rs) == wanted
        });
        if saturated {
            for rs in active(old) {
                self.scale_rs(&rs, 0, "down").await?;
            }
            return Ok(());
        }
        if !is_rolling(&self.d) {
            return Ok(());
        }
        let mut sets = active_sets;
        let current = total(&sets, rs_replicas);
        let allowed = if wanted > 0 {
            wanted + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - current;
        let operation = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                by_size_newer(&mut sets);
                "up"
            }
            std::cmp::Ordering::Less => {
                by_size_older(&mut sets);
                "down"
            }
            std::cmp::Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(sets.len());
        for rs in &sets {
            let share = if to_add != 0 {
                proportion(rs, &self.d, to_add, added)
            } else {
                0
            };
            added += share;
            sizes.push(rs_replicas(rs) + share);
        }
        if let Some(first) = sizes.first_mut() {
            if to_add != 0 {
                *first = (*first + to_add - added).max(0);
            }
        }
        for (rs, size) in sets.iter().zip(sizes) {
            self.scale_rs(rs, size, operation).await?;
        }
        Ok(())
    }

    /// Deletes the oldest old sets beyond `revisionHistoryLimit` that have no pods left.
    async fn cleanup(&self, old: &[Arc<ReplicaSet>]) -> Result<(), Error> {
        let Some(limit) = self.d.spec.revision_history_limit else {
            return Ok(());
        };
        let mut alive: Vec<Arc<ReplicaSet>> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let excess = alive.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        alive.sort_by_key(|rs| (rs_revision(rs), rs.name_any()));
        for rs in alive.iter().take(usize::try_from(excess).unwrap_or(0)) {
            let idle = rs_actual(rs) == 0
                && rs_replicas(rs) == 0
                && rs.status.as_ref().and_then(|s| s.observed_generation) >= rs.metadata.generation;
            if !idle {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            gone_ok(self.sets_api.delete(&rs.name_any(), &params).await)?;
        }
        Ok(())
    }

    /// Upstream's `checkPausedConditions`.
    async fn check_paused_conditions(&mut self) -> Result<(), Error> {
        if !has_deadline(&self.d) {
            return Ok(());
        }
        let mut status = self.d.status.clone().unwrap_or_default();
        let reason = condition(&status, "Progressing").and_then(|c| c.reason.clone());
        let paused = self.d.spec.paused == Some(true);
        let change = if paused && reason.as_deref() != Some(PAUSED) {
            Some((PAUSED, "Deployment is paused"))
        } else if !paused && reason.as_deref() == Some(PAUSED) {
            Some((RESUMED, "Deployment is resumed"))
        } else {
            None
        };
        if let Some((reason, message)) = change {
            set_condition(
                &mut status,
                new_condition("Progressing", "Unknown", reason, message.into(), self.now),
            );
            self.write_status(status).await?;
        }
        Ok(())
    }

    /// Status for a deployment being deleted.
    async fn sync_status_only(&mut self, sets: &[Arc<ReplicaSet>]) -> Result<Action, Error> {
        let (new_rs, old) = self.new_and_old(sets, false).await?;
        let mut all = old;
        all.extend(new_rs.clone());
        self.sync_status(&all, new_rs.as_deref()).await
    }

    /// Writes the calculated status (paused and scaling syncs: no progress check).
    async fn sync_status(
        &mut self,
        all: &[Arc<ReplicaSet>],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<Action, Error> {
        let status = calculate_status(&self.d, all, new_rs, self.now);
        self.write_status(status).await?;
        Ok(Action::Done)
    }

    /// Upstream's `syncRolloutStatus`: the calculated status with the Progressing condition
    /// moved on (progress, completion, timeout), written when changed; requeued to notice a
    /// timeout.
    async fn sync_rollout_status(
        &mut self,
        all: &[Arc<ReplicaSet>],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<Action, Error> {
        let mut status = calculate_status(&self.d, all, new_rs, self.now);
        if !has_deadline(&self.d) {
            remove_condition(&mut status, "Progressing");
        }
        let current = condition(&status, "Progressing").cloned();
        let complete_already = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
        if has_deadline(&self.d) && !complete_already {
            let name = new_rs.map(|rs| rs.name_any()).unwrap_or_default();
            if is_complete(&self.d, &status) {
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "True",
                        NEW_RS_AVAILABLE,
                        format!("ReplicaSet \"{name}\" has successfully progressed."),
                        self.now,
                    ),
                );
            } else if is_progressing(&self.d, &status) {
                let mut progressing = new_condition(
                    "Progressing",
                    "True",
                    RS_UPDATED,
                    format!("ReplicaSet \"{name}\" is progressing."),
                    self.now,
                );
                // Progress moves the update time; the transition time stays while it was True.
                if let Some(c) = current
                    .as_ref()
                    .filter(|c| c.status.as_deref() == Some("True"))
                {
                    progressing.last_transition_time = c.last_transition_time.clone();
                }
                remove_condition(&mut status, "Progressing");
                set_condition(&mut status, progressing);
            } else if seconds_to_deadline(&self.d, &status, self.now).is_some_and(|s| s < 0) {
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "False",
                        TIMED_OUT,
                        format!("ReplicaSet \"{name}\" has timed out progressing."),
                        self.now,
                    ),
                );
            }
        }
        // A ReplicaSet's failure to create pods shows on the deployment.
        let failure = all.iter().find_map(|rs| {
            rs.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| {
                    c.type_.as_deref() == Some("ReplicaFailure")
                        && c.status.as_deref() == Some("True")
                })
                .cloned()
        });
        match failure {
            Some(c) => set_condition(
                &mut status,
                new_condition(
                    "ReplicaFailure",
                    "True",
                    c.reason.as_deref().unwrap_or("FailedCreate"),
                    c.message.unwrap_or_default(),
                    self.now,
                ),
            ),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        let left = seconds_to_deadline(&self.d, &status, self.now);
        let complete = is_complete(&self.d, &status);
        self.write_status(status).await?;
        Ok(match left {
            Some(left) if !complete => Action::RequeueAfter(Duration::from_secs(
                u64::try_from(left.max(0)).unwrap_or(0) + 1,
            )),
            _ => Action::Done,
        })
    }

    /// Writes `status` when it differs from the deployment's.
    async fn write_status(&mut self, status: DeploymentStatus) -> Result<(), Error> {
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api = self.deployments_api();
        let patch = json!({
            "metadata": {"resourceVersion": self.d.resource_version()},
            "status": crate::status::merge_patch(self.d.status.as_ref(), &status)?,
        });
        self.d = api
            .patch_status(&self.d.name_any(), &params(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

/// kube's errors are not `Clone`; this keeps what [`Error::status`] reads.
fn kube_clone(err: &kube::Error) -> kube::Error {
    match err {
        kube::Error::Api(status) => kube::Error::Api(status.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}
