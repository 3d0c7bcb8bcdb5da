//! The Deployment controller's decisions without I/O: from a deployment, its claimed
//! ReplicaSets, (for Recreate) the namespace's pods and the time, the ordered writes one sync
//! makes and when to look again. `super::apply` performs them.
//!
//! Upstream's sync makes its writes one after another, each reading what the previous one
//! returned; the planner does the same against its own copy of the deployment and the sets,
//! changed as each write would change them, so a step is decided on what the world will be
//! once the steps before it are made.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::util::*;
use crate::ownership::{controller_of, controller_ref};
use crate::pods;

/// One write of a sync. Each step was decided assuming the ones before it succeed; `apply`
/// stops at the first that fails.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Step {
    /// Write the deployment's status (a merge patch from the current one).
    Status(DeploymentStatus),
    /// Set the deployment's revision annotation.
    Revision(i64),
    /// Bring the new ReplicaSet's annotations (revision, its history, the ones copied from the
    /// deployment) and `minReadySeconds` up to date.
    UpdateSet {
        name: String,
        annotations: BTreeMap<String, String>,
        min_ready_seconds: Option<i32>,
    },
    /// Create the current template's ReplicaSet. `event`: the `ScalingReplicaSet` message to
    /// record once it exists.
    CreateSet {
        set: Box<ReplicaSet>,
        event: Option<String>,
    },
    /// Set a ReplicaSet's replicas and its deployment-size annotations. `event`: the
    /// `ScalingReplicaSet` message, when the size changes.
    Scale {
        name: String,
        replicas: i32,
        desired: i32,
        max: i32,
        event: Option<String>,
    },
    /// Delete an old, idle ReplicaSet beyond the revision history (only that incarnation).
    DeleteSet { name: String, uid: Option<String> },
}

/// What one sync does: its writes in order, and when to look again (to notice a progress
/// deadline passing).
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) steps: Vec<Step>,
    pub(super) requeue: Option<Duration>,
}

/// Upstream's `syncDeployment` for `d` and its claimed `sets` at `now`. `pods` are the
/// namespace's pods; only a Recreate deployment reads them (its new set waits for the old pods
/// to be gone), so the caller may pass none for a RollingUpdate one.
pub(super) fn plan(
    d: &Deployment,
    sets: &[Arc<ReplicaSet>],
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> Plan {
    let mut planner = Planner {
        d: d.clone(),
        sets: sets.to_vec(),
        pods,
        now,
        steps: Vec::new(),
    };
    let requeue = if d.metadata.deletion_timestamp.is_some() {
        planner.sync_status_only(sets);
        None
    } else {
        planner.check_paused_conditions();
        if planner.d.spec.paused == Some(true) || planner.is_scaling_event(sets) {
            planner.sync_scale(sets);
            None
        } else if is_rolling(&planner.d) {
            planner.rollout_rolling(sets)
        } else {
            planner.rollout_recreate(sets)
        }
    };
    Plan {
        steps: planner.steps,
        requeue,
    }
}

/// The deployment and its sets as they will be after the steps decided so far.
struct Planner<'a> {
    d: Deployment,
    sets: Vec<Arc<ReplicaSet>>,
    pods: &'a [Arc<Pod>],
    now: Timestamp,
    steps: Vec<Step>,
}

impl Planner<'_> {
    /// Records that `rs` will be as given (created or written) and returns it.
    fn will_be(&mut self, rs: ReplicaSet) -> Arc<ReplicaSet> {
        let rs = Arc::new(rs);
        match self.sets.iter_mut().find(|s| s.name_any() == rs.name_any()) {
            Some(slot) => *slot = rs.clone(),
            None => self.sets.push(rs.clone()),
        }
        rs
    }

    /// `sets` as they will be after the steps decided so far.
    fn refreshed(&self, sets: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
        sets.iter()
            .map(|rs| {
                self.sets
                    .iter()
                    .find(|s| s.name_any() == rs.name_any())
                    .unwrap_or(rs)
                    .clone()
            })
            .collect()
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
            .filter(|rs| {
                new_rs
                    .as_ref()
                    .is_none_or(|n| n.name_any() != rs.name_any())
            })
            .collect();
        (new_rs, old)
    }

    /// Upstream's `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when asked
    /// and missing) with its revision brought up to date, and the old ones.
    fn new_and_old(
        &mut self,
        sets: &[Arc<ReplicaSet>],
        create: bool,
    ) -> (Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>) {
        let (new_rs, old) = self.split(sets);
        let max_old = old.iter().map(|rs| rs_revision(rs)).max().unwrap_or(0);
        let new_revision = max_old + 1;
        let new_rs = match new_rs {
            Some(rs) => Some(self.sync_existing(&rs, new_revision)),
            None if create => Some(self.create_new(&old, new_revision)),
            None => None,
        };
        (new_rs, old)
    }

    /// Brings an existing new ReplicaSet's revision, copied annotations and minReadySeconds up
    /// to date, and the deployment's revision with it.
    fn sync_existing(&mut self, rs: &Arc<ReplicaSet>, new_revision: i64) -> Arc<ReplicaSet> {
        let mut annotations = rs.metadata.annotations.clone().unwrap_or_default();
        let before = annotations.clone();
        annotations.extend(copied_annotations(&self.d));
        let current = rs_revision(rs);
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
            self.steps.push(Step::UpdateSet {
                name: rs.name_any(),
                annotations: annotations.clone(),
                min_ready_seconds: self.d.spec.min_ready_seconds,
            });
            let mut updated = (**rs).clone();
            updated.metadata.annotations = Some(annotations);
            updated.spec.min_ready_seconds = self.d.spec.min_ready_seconds;
            self.will_be(updated)
        } else {
            rs.clone()
        };
        let revision = rs_revision(&rs);
        let mut status = self.d.status.clone().unwrap_or_default();
        if has_deadline(&self.d) && condition(&status, "Progressing").is_none() {
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
            self.write_status(status);
        }
        self.set_deployment_revision(revision);
        rs
    }

    /// Sets the deployment's revision annotation when it differs.
    fn set_deployment_revision(&mut self, revision: i64) {
        if deployment_revision(&self.d) == revision {
            return;
        }
        self.steps.push(Step::Revision(revision));
        self.d
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(REVISION.into(), revision.to_string());
    }

    /// Creates the ReplicaSet of the current template, sized as a rolling update allows.
    fn create_new(&mut self, old: &[Arc<ReplicaSet>], revision: i64) -> Arc<ReplicaSet> {
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
        let event =
            (wanted > 0).then(|| format!("Scaled up replica set {name} from 0 to {wanted}"));
        self.steps.push(Step::CreateSet {
            set: Box::new(rs.clone()),
            event,
        });
        let mut created = rs;
        created.metadata.creation_timestamp = Some(Time(self.now));
        let created = self.will_be(created);
        self.set_progressing(
            "True",
            NEW_RS_CREATED,
            format!("Created new replica set \"{name}\""),
        );
        self.set_deployment_revision(revision);
        created
    }

    /// Sets the Progressing condition, when the deployment has a progress deadline.
    fn set_progressing(&mut self, status: &str, reason: &str, message: String) {
        if !has_deadline(&self.d) {
            return;
        }
        let mut current = self.d.status.clone().unwrap_or_default();
        set_condition(
            &mut current,
            new_condition("Progressing", status, reason, message, self.now),
        );
        self.write_status(current);
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

    /// Sets a ReplicaSet's replicas (and the deployment-size annotations), with an event when
    /// the size changes. Returns the set as it will be.
    fn scale_rs(&mut self, rs: &ReplicaSet, to: i32, operation: &str) -> Arc<ReplicaSet> {
        let from = rs_replicas(rs);
        let desired = replicas(&self.d);
        let max = replicas(&self.d) + max_surge(&self.d);
        let annotations_ok = rs.metadata.annotations.as_ref().is_some_and(|a| {
            a.get(DESIRED_REPLICAS) == Some(&desired.to_string())
                && a.get(MAX_REPLICAS) == Some(&max.to_string())
        });
        if from == to && annotations_ok {
            return Arc::new(rs.clone());
        }
        let event = (from != to).then(|| {
            let operation = match operation {
                "" if to > from => "up",
                "" => "down",
                given => given,
            };
            format!(
                "Scaled {operation} replica set {} from {from} to {to}",
                rs.name_any()
            )
        });
        self.steps.push(Step::Scale {
            name: rs.name_any(),
            replicas: to,
            desired,
            max,
            event,
        });
        let mut scaled = rs.clone();
        let annotations = scaled
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), max.to_string());
        scaled.spec.replicas = Some(to);
        self.will_be(scaled)
    }

    fn rollout_rolling(&mut self, sets: &[Arc<ReplicaSet>]) -> Option<Duration> {
        let (new_rs, old) = self.new_and_old(sets, true);
        let new_rs = new_rs?;
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
            let new_rs = self.scale_rs(&new_rs, target, "");
            let mut all = old.clone();
            all.push(new_rs.clone());
            return self.sync_rollout_status(&all, Some(&new_rs));
        }

        // Scale down old sets as far as availability allows.
        if self.reconcile_old(&all, &old, &new_rs) {
            let sets = self.refreshed(&all);
            let (new_rs, _) = self.split(&sets);
            return self.sync_rollout_status(&sets, new_rs.as_deref());
        }

        let status = calculate_status(&self.d, &all, Some(&new_rs), self.now);
        if is_complete(&self.d, &status) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, Some(&new_rs))
    }

    /// Upstream's `reconcileOldReplicaSets`: first removes unhealthy old replicas, then scales
    /// old sets down while the available count stays at least `replicas - maxUnavailable`.
    /// Whether it scaled anything.
    fn reconcile_old(
        &mut self,
        all: &[Arc<ReplicaSet>],
        old: &[Arc<ReplicaSet>],
        new_rs: &ReplicaSet,
    ) -> bool {
        let old_active = active(old);
        if total(&old_active, rs_replicas) == 0 {
            return false;
        }
        let all_pods = total(all, rs_replicas);
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
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
            let scaled = self.scale_rs(&rs, rs_replicas(&rs) - down, "down");
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
                self.scale_rs(&rs, rs_replicas(&rs) - down, "down");
                scaled_down += down;
            }
        }
        cleaned + scaled_down > 0
    }

    fn rollout_recreate(&mut self, sets: &[Arc<ReplicaSet>]) -> Option<Duration> {
        let (new_rs, old) = self.new_and_old(sets, false);
        let mut all = old.clone();
        all.extend(new_rs.clone());

        // Scale every old set to zero first.
        let mut scaled = false;
        for rs in active(&old) {
            self.scale_rs(&rs, 0, "down");
            scaled = true;
        }
        if scaled {
            return self.sync_rollout_status(&all, new_rs.as_deref());
        }
        // Wait for the old pods to be gone.
        if self.old_pods_running(&old) {
            return self.sync_rollout_status(&all, new_rs.as_deref());
        }
        let new_rs = match new_rs {
            Some(rs) => rs,
            None => self.new_and_old(sets, true).0?,
        };
        let new_rs = self.scale_rs(&new_rs, replicas(&self.d), "up");
        let mut all = old.clone();
        all.push(new_rs.clone());
        let status = calculate_status(&self.d, &all, Some(&new_rs), self.now);
        if is_complete(&self.d, &status) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, Some(&new_rs))
    }

    /// Whether a pod of an old set is still running (not finished and not gone).
    fn old_pods_running(&self, old: &[Arc<ReplicaSet>]) -> bool {
        if total(old, rs_actual) > 0 {
            return true;
        }
        let uids: Vec<String> = old.iter().filter_map(|rs| rs.uid()).collect();
        self.pods.iter().any(|pod| {
            controller_of(&pod.metadata).is_some_and(|r| uids.contains(&r.uid))
                && !pods::is_finished(pod)
        })
    }

    /// A scaling event or a paused deployment: resize the sets (proportionally during a
    /// rollout) without moving the rollout on.
    fn sync_scale(&mut self, sets: &[Arc<ReplicaSet>]) {
        let (new_rs, old) = self.new_and_old(sets, false);
        self.scale(new_rs.as_ref(), &old);
        if self.d.spec.paused == Some(true) {
            self.cleanup(&old);
        }
        let mut all = old;
        all.extend(new_rs);
        let all = self.refreshed(&all);
        let (new_rs, _) = self.split(&all);
        self.sync_status(&all, new_rs.as_deref());
    }

    /// Upstream's `scale`.
    fn scale(&mut self, new_rs: Option<&Arc<ReplicaSet>>, old: &[Arc<ReplicaSet>]) {
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
                self.scale_rs(&rs, wanted, "");
            }
            return;
        }
        // The new set is saturated: the old ones go.
        let saturated = new_rs.is_some_and(|rs| {
            rs_replicas(rs) == wanted
                && rs_annotation(rs, DESIRED_REPLICAS) == Some(wanted)
                && rs_available(rs) == wanted
        });
        if saturated {
            for rs in active(old) {
                self.scale_rs(&rs, 0, "down");
            }
            return;
        }
        if !is_rolling(&self.d) {
            return;
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
            self.scale_rs(rs, size, operation);
        }
    }

    /// Deletes the oldest old sets beyond `revisionHistoryLimit` that have no pods left.
    fn cleanup(&mut self, old: &[Arc<ReplicaSet>]) {
        let Some(limit) = self.d.spec.revision_history_limit else {
            return;
        };
        let mut alive: Vec<Arc<ReplicaSet>> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let excess = alive.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return;
        }
        alive.sort_by_key(|rs| (rs_revision(rs), rs.name_any()));
        for rs in alive.iter().take(usize::try_from(excess).unwrap_or(0)) {
            let idle = rs_actual(rs) == 0
                && rs_replicas(rs) == 0
                && rs.status.as_ref().and_then(|s| s.observed_generation) >= rs.metadata.generation;
            if idle {
                self.steps.push(Step::DeleteSet {
                    name: rs.name_any(),
                    uid: rs.uid(),
                });
            }
        }
    }

    /// Upstream's `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if !has_deadline(&self.d) {
            return;
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
            self.write_status(status);
        }
    }

    /// Status for a deployment being deleted.
    fn sync_status_only(&mut self, sets: &[Arc<ReplicaSet>]) {
        let (new_rs, old) = self.new_and_old(sets, false);
        let mut all = old;
        all.extend(new_rs.clone());
        self.sync_status(&all, new_rs.as_deref());
    }

    /// Writes the calculated status (paused and scaling syncs: no progress check).
    fn sync_status(&mut self, all: &[Arc<ReplicaSet>], new_rs: Option<&ReplicaSet>) {
        let status = calculate_status(&self.d, all, new_rs, self.now);
        self.write_status(status);
    }

    /// Upstream's `syncRolloutStatus`: the calculated status with the Progressing condition
    /// moved on (progress, completion, timeout), written when changed; requeued to notice a
    /// timeout.
    fn sync_rollout_status(
        &mut self,
        all: &[Arc<ReplicaSet>],
        new_rs: Option<&ReplicaSet>,
    ) -> Option<Duration> {
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
        self.write_status(status);
        match left {
            Some(left) if !complete => Some(Duration::from_secs(
                u64::try_from(left.max(0)).unwrap_or(0) + 1,
            )),
            _ => None,
        }
    }

    /// Writes `status` when it differs from the deployment's.
    fn write_status(&mut self, status: DeploymentStatus) {
        if self.d.status.as_ref() == Some(&status) {
            return;
        }
        self.steps.push(Step::Status(status.clone()));
        self.d.status = Some(status);
    }
}

/// The deployment's revision annotation.
fn deployment_revision(d: &Deployment) -> i64 {
    super::util::revision(d.metadata.annotations.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const NOW: i64 = 1_700_000_000;

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    /// Deployment `web` (4 replicas unless `spec` says otherwise) of image `image`, with a
    /// progress deadline; `spec` and `status` are merged in.
    fn deployment(image: &str, spec: Value, status: Value) -> Deployment {
        let mut value = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "d1", "generation": 1},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}},
                "progressDeadlineSeconds": 600,
                "revisionHistoryLimit": 10,
            },
            "status": {"observedGeneration": 1},
        });
        for (k, v) in spec.as_object().unwrap() {
            value["spec"][k] = v.clone();
        }
        for (k, v) in status.as_object().unwrap() {
            value["status"][k] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    fn rolling(surge: i32, unavailable: i32) -> Value {
        json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    /// `d`'s ReplicaSet `web-<image>` for the template of `image`, at `revision`, sized for
    /// `d`'s replicas: `replicas` wanted and present, `available` of them available.
    fn set(
        d: &Deployment,
        image: &str,
        revision: i64,
        replicas: i32,
        available: i32,
    ) -> ReplicaSet {
        let mut template = serde_json::to_value(&d.spec.template).unwrap();
        template["spec"]["containers"][0]["image"] = json!(image);
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("web-{image}"), "namespace": "ns", "uid": format!("rs-{image}"),
                "generation": 1,
                "creationTimestamp": Timestamp::from_second(NOW - 1000 + revision).unwrap().to_string(),
                "annotations": {
                    REVISION: revision.to_string(),
                    DESIRED_REPLICAS: replicas_of(d).to_string(),
                    MAX_REPLICAS: (replicas_of(d) + max_surge(d)).to_string(),
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "d1", "controller": true}],
            },
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": template},
            "status": {"replicas": replicas, "readyReplicas": available,
                "availableReplicas": available, "observedGeneration": 1},
        }))
        .unwrap()
    }

    fn replicas_of(d: &Deployment) -> i32 {
        replicas(d)
    }

    fn sets(sets: impl IntoIterator<Item = ReplicaSet>) -> Vec<Arc<ReplicaSet>> {
        sets.into_iter().map(Arc::new).collect()
    }

    /// The plan's writes to ReplicaSets, as `create <name>=<replicas>`, `scale <name> <from
    /// annotation-less>=<to>` and `delete <name>`.
    fn set_writes(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|step| match step {
                Step::CreateSet { set, .. } => {
                    Some(format!("create {}={}", set.name_any(), rs_replicas(set)))
                }
                Step::Scale { name, replicas, .. } => Some(format!("scale {name}={replicas}")),
                Step::DeleteSet { name, .. } => Some(format!("delete {name}")),
                _ => None,
            })
            .collect()
    }

    fn statuses(plan: &Plan) -> Vec<&DeploymentStatus> {
        plan.steps
            .iter()
            .filter_map(|step| match step {
                Step::Status(status) => Some(status),
                _ => None,
            })
            .collect()
    }

    /// `<type>=<status>/<reason>` of the last status the plan writes, sorted.
    fn conditions(plan: &Plan) -> Vec<String> {
        let last = statuses(plan).pop().expect("a status is written");
        let mut conditions: Vec<String> = last
            .conditions
            .iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={}/{}",
                    c.type_.clone().unwrap_or_default(),
                    c.status.clone().unwrap_or_default(),
                    c.reason.clone().unwrap_or_default()
                )
            })
            .collect();
        conditions.sort();
        conditions
    }

    fn new_set_name(d: &Deployment) -> String {
        format!("web-{}", template_hash(&d.spec.template, None))
    }

    #[test]
    fn a_first_rollout_creates_its_replica_set_at_full_size() {
        let d = deployment("v1", json!({}), json!({}));
        let plan = plan(&d, &[], &[], now());
        let name = new_set_name(&d);
        assert_eq!(set_writes(&plan), [format!("create {name}=4")]);
        let Some(Step::CreateSet { set, event }) = plan.steps.first() else {
            panic!("{:?}", plan.steps);
        };
        let annotations = set.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[REVISION], "1");
        assert_eq!(annotations[DESIRED_REPLICAS], "4");
        // Surge 25 % of 4, rounded up.
        assert_eq!(annotations[MAX_REPLICAS], "5");
        assert_eq!(
            set.spec.selector.match_labels.as_ref().unwrap()[TEMPLATE_HASH_LABEL],
            template_hash(&d.spec.template, None)
        );
        assert_eq!(
            event.as_deref(),
            Some(format!("Scaled up replica set {name} from 0 to 4").as_str())
        );
        assert!(plan.steps.contains(&Step::Revision(1)));
        let first_status = statuses(&plan)[0];
        assert_eq!(
            condition(first_status, "Progressing").and_then(|c| c.reason.as_deref()),
            Some(NEW_RS_CREATED)
        );
        // Not complete yet: looked at again before the deadline passes.
        assert_eq!(plan.requeue, Some(Duration::from_secs(601)));
    }

    #[test]
    fn a_rolling_update_moves_within_max_surge_and_max_unavailable() {
        let d = deployment("v2", json!({"strategy": rolling(1, 1)}), json!({}));
        let new = new_set_name(&d);
        // A new template: the new set starts at the surge (one), and one old replica goes
        // (availability may drop to 3 of 4).
        let plan1 = plan(&d, &sets([set(&d, "v1", 1, 4, 4)]), &[], now());
        assert_eq!(
            set_writes(&plan1),
            [format!("create {new}=1"), "scale web-v1=3".to_owned()]
        );
        assert!(plan1.steps.contains(&Step::Revision(2)));

        // Old 3 available, new 1 not yet available: the new set grows to the surge again.
        let mut new_set = set(&d, "v2", 2, 1, 0);
        new_set.metadata.name = Some(new.clone());
        let plan2 = plan(
            &d,
            &sets([set(&d, "v1", 1, 3, 3), new_set.clone()]),
            &[],
            now(),
        );
        assert_eq!(set_writes(&plan2), [format!("scale {new}=2")]);

        // Both at the fenceposts (5 pods, 3 available): nothing moves until a new pod is up.
        let mut new_set = set(&d, "v2", 2, 2, 0);
        new_set.metadata.name = Some(new.clone());
        let stuck = sets([set(&d, "v1", 1, 3, 3), new_set.clone()]);
        assert!(set_writes(&plan(&d, &stuck, &[], now())).is_empty());

        // One new pod available: one old one may go.
        let mut new_set = set(&d, "v2", 2, 2, 1);
        new_set.metadata.name = Some(new);
        let plan3 = plan(&d, &sets([set(&d, "v1", 1, 3, 3), new_set]), &[], now());
        assert_eq!(set_writes(&plan3), ["scale web-v1=2"]);
    }

    fn pod_of(owner_uid: &str, phase: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns", "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x",
                    "uid": owner_uid, "controller": true}]},
                "status": {"phase": phase},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn recreate_scales_the_old_sets_to_zero_and_waits_for_their_pods_first() {
        let d = deployment(
            "v2",
            json!({"replicas": 3, "strategy": {"type": "Recreate"}}),
            json!({}),
        );
        let new = new_set_name(&d);
        let plan1 = plan(&d, &sets([set(&d, "v1", 1, 3, 3)]), &[], now());
        assert_eq!(set_writes(&plan1), ["scale web-v1=0"]);

        // Scaled down, but its pods are still there (by the set's status, or by the pods).
        let mut draining = set(&d, "v1", 1, 0, 0);
        draining.status.as_mut().unwrap().replicas = 2;
        assert!(set_writes(&plan(&d, &sets([draining]), &[], now())).is_empty());
        let idle = sets([set(&d, "v1", 1, 0, 0)]);
        let running = [pod_of("rs-v1", "Running")];
        assert!(set_writes(&plan(&d, &idle, &running, now())).is_empty());

        // Gone (or finished): the new set comes up at full size at once.
        let finished = [pod_of("rs-v1", "Succeeded")];
        assert_eq!(
            set_writes(&plan(&d, &idle, &finished, now())),
            [format!("create {new}=3")]
        );
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // Upstream's example: 10 replicas, maxSurge 3, maxUnavailable 2, a rollout in flight
        // with 8 old and 5 new replicas; scaled to 15, the 5 more go 3 to the old set and 2
        // to the new one.
        let before = deployment(
            "v2",
            json!({"replicas": 10, "strategy": rolling(3, 2)}),
            json!({}),
        );
        let mut new_set = set(&before, "v2", 2, 5, 0);
        new_set.metadata.name = Some(new_set_name(&before));
        let current = sets([set(&before, "v1", 1, 8, 8), new_set]);
        let d = deployment(
            "v2",
            json!({"replicas": 15, "strategy": rolling(3, 2)}),
            json!({}),
        );
        let plan = plan(&d, &current, &[], now());
        assert_eq!(
            set_writes(&plan),
            [
                "scale web-v1=11".to_owned(),
                format!("scale {}=7", new_set_name(&d))
            ]
        );
        let first_scale = plan.steps.iter().find(|s| matches!(s, Step::Scale { .. }));
        let Some(Step::Scale {
            desired,
            max,
            event,
            ..
        }) = first_scale
        else {
            panic!("{:?}", plan.steps);
        };
        assert_eq!((*desired, *max), (15, 18));
        assert_eq!(
            event.as_deref(),
            Some("Scaled up replica set web-v1 from 8 to 11")
        );
    }

    #[test]
    fn a_paused_deployment_scales_but_does_not_roll_out() {
        let d = deployment("v2", json!({"paused": true}), json!({}));
        let plan1 = plan(&d, &sets([set(&d, "v1", 1, 4, 4)]), &[], now());
        assert!(set_writes(&plan1).is_empty(), "no new set while paused");
        assert_eq!(
            condition(statuses(&plan1)[0], "Progressing")
                .map(|c| (c.status.as_deref(), c.reason.as_deref())),
            Some((Some("Unknown"), Some(PAUSED)))
        );
        // A new size still applies.
        let bigger = deployment("v2", json!({"paused": true, "replicas": 6}), json!({}));
        assert_eq!(
            set_writes(&plan(&bigger, &sets([set(&d, "v1", 1, 4, 4)]), &[], now())),
            ["scale web-v1=6"]
        );
        // Resumed: the rollout starts, and the condition says so.
        let resumed = deployment(
            "v2",
            json!({}),
            json!({"conditions": [{"type": "Progressing", "status": "Unknown",
                "reason": PAUSED}]}),
        );
        let plan2 = plan(&resumed, &sets([set(&d, "v1", 1, 4, 4)]), &[], now());
        assert_eq!(
            condition(statuses(&plan2)[0], "Progressing").and_then(|c| c.reason.as_deref()),
            Some(RESUMED)
        );
        assert_eq!(
            set_writes(&plan2)[0],
            format!("create {}=1", new_set_name(&resumed))
        );
    }

    #[test]
    fn a_complete_rollout_keeps_revision_history_limit_idle_old_sets() {
        let d = deployment("v4", json!({"revisionHistoryLimit": 1}), json!({}));
        let mut new_set = set(&d, "v4", 4, 4, 4);
        new_set.metadata.name = Some(new_set_name(&d));
        // The oldest set's controller has not seen its scale-down yet: not idle.
        let mut unsettled = set(&d, "v1", 1, 0, 0);
        unsettled.metadata.generation = Some(2);
        let all = sets([
            unsettled,
            set(&d, "v2", 2, 0, 0),
            set(&d, "v3", 3, 0, 0),
            new_set,
        ]);
        let plan = plan(&d, &all, &[], now());
        // Two old sets too many: of the oldest two, the idle one goes; the other waits.
        assert_eq!(set_writes(&plan), ["delete web-v2"]);
        assert_eq!(
            conditions(&plan),
            [
                "Available=True/MinimumReplicasAvailable".to_owned(),
                format!("Progressing=True/{NEW_RS_AVAILABLE}"),
            ]
        );
        assert_eq!(plan.requeue, None);
    }

    #[test]
    fn a_stalled_rollout_exceeds_its_progress_deadline() {
        let at = |seconds_ago: i64| {
            Timestamp::from_second(NOW - seconds_ago)
                .unwrap()
                .to_string()
        };
        let stalled = |updated_ago: i64| {
            deployment(
                "v2",
                json!({"strategy": rolling(1, 1)}),
                json!({"replicas": 5, "updatedReplicas": 2, "readyReplicas": 3,
                    "availableReplicas": 3, "conditions": [{"type": "Progressing",
                    "status": "True", "reason": RS_UPDATED, "lastUpdateTime": at(updated_ago),
                    "lastTransitionTime": at(updated_ago)}]}),
            )
        };
        let d = stalled(100);
        let mut new_set = set(&d, "v2", 2, 2, 0);
        new_set.metadata.name = Some(new_set_name(&d));
        let current = sets([set(&d, "v1", 1, 3, 3), new_set]);
        // Within the deadline: still progressing, looked at again when it would pass.
        let plan1 = plan(&d, &current, &[], now());
        assert_eq!(
            conditions(&plan1),
            [
                "Available=True/MinimumReplicasAvailable".to_owned(),
                format!("Progressing=True/{RS_UPDATED}"),
            ]
        );
        assert_eq!(plan1.requeue, Some(Duration::from_secs(501)));
        // Past it: Progressing False, and nothing more to wait for.
        let plan2 = plan(&stalled(700), &current, &[], now());
        assert_eq!(
            conditions(&plan2),
            [
                "Available=True/MinimumReplicasAvailable".to_owned(),
                format!("Progressing=False/{TIMED_OUT}"),
            ]
        );
        assert_eq!(plan2.requeue, None);
        // Below minimum availability, Available goes False.
        let mut new_set = set(&d, "v2", 2, 2, 0);
        new_set.metadata.name = Some(new_set_name(&d));
        let degraded = sets([set(&d, "v1", 1, 3, 1), new_set]);
        assert!(conditions(&plan(&d, &degraded, &[], now()))
            .contains(&"Available=False/MinimumReplicasUnavailable".to_owned()));
    }
}
