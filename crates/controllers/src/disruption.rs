//! The disruption controller: PodDisruptionBudget status — how many selected pods are healthy,
//! how many must be, how many are expected, and so how many may be disrupted now — which the
//! eviction API and `kubectl drain` read before taking a pod away.
//!
//! As upstream's: `minAvailable` as a number compares against the pods there are; a percentage
//! and `maxUnavailable` against the scale of the pods' controllers (Deployment — counted once
//! for all its ReplicaSets —, ReplicaSet, ReplicationController, StatefulSet from the caches,
//! any other kind through its `scale` subresource). A pod that an eviction took (in
//! `status.disruptedPods`) is not counted healthy for two minutes or until it is deleted. When
//! the status cannot be worked out, `disruptionsAllowed` is set to 0 (upstream's fail-safe).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k3rs_api::LabelSelector;
use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::{Api, Client, ResourceExt};

use crate::deployment::util::{scaled, ScaleError};
use crate::error::Error;
use crate::ownership::controller_of;
use crate::pods;
use crate::Context;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// How long a pod an eviction disrupted stays in `disruptedPods` without being seen deleted
/// (upstream's `DeletionTimeout`).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// The condition the status carries, and its reasons.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
const SUFFICIENT_PODS: &str = "SufficientPods";
const INSUFFICIENT_PODS: &str = "InsufficientPods";
const SYNC_FAILED: &str = "SyncFailed";

#[derive(Clone)]
struct Shared {
    client: Client,
    budgets: Arc<Informer<PodDisruptionBudget>>,
    pods: Arc<Informer<Pod>>,
    replication_controllers: Arc<Informer<ReplicationController>>,
    replica_sets: Arc<Informer<ReplicaSet>>,
    deployments: Arc<Informer<Deployment>>,
    stateful_sets: Arc<Informer<StatefulSet>>,
    events: Recorder,
}

/// Registers the controller's handlers and starts its worker.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let controller = Controller::new(&ctx.runtime, "disruption-controller");
    let shared = Shared {
        client: ctx.client.clone(),
        budgets: ctx.informers.get(),
        pods: ctx.informers.get(),
        replication_controllers: ctx.informers.get(),
        replica_sets: ctx.informers.get(),
        deployments: ctx.informers.get(),
        stateful_sets: ctx.informers.get(),
        events: Recorder::new(ctx.client.clone(), "controllermanager"),
    };
    let budgets = shared.budgets.clone();
    controller
        .reconciles(&shared.budgets)
        .watches(&shared.pods, move |change| {
            // Every budget selecting the pod before or after the change (upstream picks one
            // arbitrarily when several do; each of them counts the pod, so all are synced).
            let (old, new) = match change {
                Change::Applied { old, new } => (old.as_deref(), new.as_ref()),
                Change::Deleted(pod) => (None, pod.as_ref()),
            };
            let namespace = new.namespace().unwrap_or_default();
            budgets
                .cache()
                .in_namespace(&namespace)
                .iter()
                .filter(|budget| {
                    selects(budget, new) || old.is_some_and(|old| selects(budget, old))
                })
                .map(|budget| ObjectKey::of(budget.as_ref()))
                .collect::<Vec<_>>()
        })
        .reads(&shared.replication_controllers)
        .reads(&shared.replica_sets)
        .reads(&shared.deployments)
        .reads(&shared.stateful_sets)
        .workers(2)
        .run(move |key| {
            let shared = shared.clone();
            async move { sync(&shared, &key).await }
        })
}

/// The budget's pod selector: `null` selects nothing, `{}` every pod of the namespace (policy/v1).
fn selector(budget: &PodDisruptionBudget) -> Option<LabelSelector> {
    let selector = budget.spec.as_ref()?.selector.as_ref()?;
    LabelSelector::from_typed(Some(selector)).ok()
}

fn selects(budget: &PodDisruptionBudget, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    selector(budget).is_some_and(|s| !s.is_nothing() && s.matches(&labels))
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(budget) = shared.budgets.cache().get(key) else {
        return Ok(Action::Done);
    };
    let pods: Vec<Arc<Pod>> = shared
        .pods
        .cache()
        .in_namespace(&key.namespace)
        .into_iter()
        .filter(|pod| selects(&budget, pod))
        .collect();
    if pods.is_empty() {
        let message = "No matching pods found".to_string();
        shared
            .events
            .normal(budget.as_ref(), "NoPods", message)
            .await;
    }
    let now = Timestamp::now();
    let outcome = match scales(shared, &key.namespace, &pods).await {
        Ok(scales) => plan(&budget, &pods, &scales, now),
        Err(err) => Err(PlanError::Scales(err)),
    };
    let (status, recheck) = match outcome {
        Ok(plan) => {
            if !plan.unmanaged.is_empty() {
                tracing::debug!(budget = %key, pods = ?plan.unmanaged, "unmanaged pods");
                let selector = budget
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .map(|s| {
                        k3rs_api::selector::format_label_selector(
                            &serde_json::to_value(s).unwrap_or_default(),
                        )
                    })
                    .unwrap_or_default();
                let message = format!(
                    "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be \
                     unmanaged. As a result, the status of the PDB cannot be calculated correctly, \
                     which may result in undefined behavior. To account for these pods please set \
                     \".spec.minAvailable\" field of the PDB to an integer value."
                );
                shared
                    .events
                    .warning(budget.as_ref(), "UnmanagedPods", message)
                    .await;
            }
            for name in &plan.expired {
                if let Some(pod) = pods.iter().find(|p| p.name_any() == *name) {
                    let message = format!(
                        "Pod was expected by PDB {}/{} to be deleted but it wasn't",
                        key.namespace, key.name
                    );
                    shared
                        .events
                        .warning(pod.as_ref(), "NotDeleted", message)
                        .await;
                }
            }
            (plan.status, plan.recheck)
        }
        Err(err) => {
            let message = err.to_string();
            tracing::warn!(budget = %key, %message, "failed to sync PodDisruptionBudget");
            shared
                .events
                .warning(
                    budget.as_ref(),
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {message}"),
                )
                .await;
            (fail_safe(&budget, &message, now), None)
        }
    };
    if budget.status.as_ref() != Some(&status) {
        // A replace carrying the cached resourceVersion, as upstream's UpdateStatus: a budget
        // an eviction changed meanwhile is a conflict, retried from the fresh cache.
        let mut updated = (*budget).clone();
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(shared.client.clone(), &key.namespace);
        let params = crate::post_params();
        crate::error::gone_ok(api.replace_status(&key.name, &params, &updated).await)?;
    }
    Ok(match recheck {
        Some(after) => Action::RequeueAfter(after),
        None => Action::Done,
    })
}

/// The scale of the controller of each pod's controller reference (by the reference's uid):
/// `Some((uid, replicas))` of the object whose scale counts — a ReplicaSet's Deployment —,
/// `None` when no finder knows it. Pods without a controller are left out.
async fn scales(
    shared: &Shared,
    namespace: &str,
    pods: &[Arc<Pod>],
) -> Result<BTreeMap<String, Option<(String, i32)>>, Error> {
    let mut scales = BTreeMap::new();
    for pod in pods {
        let Some(reference) = controller_of(&pod.metadata) else {
            continue;
        };
        if scales.contains_key(&reference.uid) {
            continue;
        }
        let found = match find_in_caches(shared, namespace, reference) {
            Some(found) => found,
            None => find_by_scale(&shared.client, namespace, reference).await?,
        };
        scales.insert(reference.uid.clone(), found);
    }
    Ok(scales)
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Upstream's finders over the caches: `Some(found)` when the reference is of a kind they
/// handle (RC, ReplicaSet with or without a Deployment, StatefulSet), `None` otherwise.
fn find_in_caches(
    shared: &Shared,
    namespace: &str,
    reference: &OwnerReference,
) -> Option<Option<(String, i32)>> {
    let same = |uid: Option<String>| uid.as_deref() == Some(reference.uid.as_str());
    let group = group_of(&reference.api_version);
    Some(match (reference.kind.as_str(), group) {
        ("ReplicationController", "") => shared
            .replication_controllers
            .cache()
            .get_named(namespace, &reference.name)
            .filter(|rc| same(rc.uid()))
            .map(|rc| {
                let replicas = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                (reference.uid.clone(), replicas)
            }),
        ("ReplicaSet", "apps" | "extensions") => {
            let rs = shared
                .replica_sets
                .cache()
                .get_named(namespace, &reference.name)
                .filter(|rs| same(rs.uid()))?;
            match controller_of(&rs.metadata) {
                Some(owner)
                    if owner.kind == "Deployment"
                        && matches!(group_of(&owner.api_version), "apps" | "extensions") =>
                {
                    shared
                        .deployments
                        .cache()
                        .get_named(namespace, &owner.name)
                        .filter(|d| d.uid().as_deref() == Some(owner.uid.as_str()))
                        .map(|d| (owner.uid.clone(), d.spec.replicas.unwrap_or(1)))
                }
                _ => Some((reference.uid.clone(), rs.spec.replicas.unwrap_or(1))),
            }
        }
        ("StatefulSet", "apps") => shared
            .stateful_sets
            .cache()
            .get_named(namespace, &reference.name)
            .filter(|ss| same(ss.uid()))
            .map(|ss| (reference.uid.clone(), ss.spec.replicas.unwrap_or(1))),
        _ => return None,
    })
}

/// Upstream's last finder: any other kind through its `scale` subresource.
async fn find_by_scale(
    client: &Client,
    namespace: &str,
    reference: &OwnerReference,
) -> Result<Option<(String, i32)>, Error> {
    let (group, version) = match reference.api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", reference.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &reference.kind);
    let (resource, capabilities) =
        kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|source| Error::NoKind {
                kind: reference.kind.clone(),
                api_version: reference.api_version.clone(),
                source,
            })?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    match api.get_scale(&reference.name).await.map_err(Error::from) {
        Ok(scale) => Ok(
            (scale.metadata.uid.as_deref() == Some(reference.uid.as_str())).then(|| {
                (
                    reference.uid.clone(),
                    scale.spec.and_then(|s| s.replicas).unwrap_or(0),
                )
            }),
        ),
        Err(err) if err.is_not_found() => {
            if capabilities
                .subresources
                .iter()
                .any(|(sub, _)| sub.plural == "scale")
            {
                Ok(None)
            } else {
                let name = match resource.group.as_str() {
                    "" => resource.plural.clone(),
                    group => format!("{}.{group}", resource.plural),
                };
                Err(Error::NoScale { resource: name })
            }
        }
        Err(err) => Err(err),
    }
}

/// What one sync decided.
#[derive(Debug, PartialEq)]
struct Plan {
    status: PodDisruptionBudgetStatus,
    /// Selected pods without a controller (an event warns about them).
    unmanaged: Vec<String>,
    /// Pods disrupted more than [`DELETION_TIMEOUT`] ago and still not being deleted.
    expired: Vec<String>,
    /// When the oldest entry of `disruptedPods` expires.
    recheck: Option<Duration>,
}

/// Why a budget's expected pod count could not be computed: the message of its fail-safe status.
#[derive(Debug, thiserror::Error)]
enum PlanError {
    /// A selected pod's controller was not found (or has no scale).
    #[error("found no controllers for pod {0:?}")]
    NoController(String),
    /// The budget's percentage does not scale.
    #[error(transparent)]
    Scale(#[from] ScaleError),
    /// The pods' controllers could not be read.
    #[error(transparent)]
    Scales(#[from] Error),
}

/// The budget's status from its selected `pods` and their controllers' `scales` (see
/// [`scales`]), at `now`. An error is the message of the fail-safe status.
fn plan(
    budget: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scales: &BTreeMap<String, Option<(String, i32)>>,
    now: Timestamp,
) -> Result<Plan, PlanError> {
    let spec = budget.spec.clone().unwrap_or_default();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    // The sum of the scales of the pods' controllers, each counted once.
    let expected_scale = || -> Result<(i32, Vec<String>), PlanError> {
        let mut unmanaged = Vec::new();
        let mut counted: BTreeMap<&str, i32> = BTreeMap::new();
        for pod in pods {
            let Some(reference) = controller_of(&pod.metadata) else {
                unmanaged.push(pod.name_any());
                continue;
            };
            match scales.get(&reference.uid) {
                Some(Some((uid, replicas))) => {
                    counted.insert(uid, *replicas);
                }
                _ => return Err(PlanError::NoController(pod.name_any())),
            }
        }
        Ok((counted.values().sum(), unmanaged))
    };
    let (expected, desired, unmanaged) = match (&spec.max_unavailable, &spec.min_available) {
        (Some(max_unavailable), _) => {
            let (expected, unmanaged) = expected_scale()?;
            let unavailable = scaled(max_unavailable, expected, true)?;
            (expected, (expected - unavailable).max(0), unmanaged)
        }
        (None, Some(IntOrString::Int(min))) => (count(pods.len()), *min, Vec::new()),
        (None, Some(min @ IntOrString::String(_))) => {
            let (expected, unmanaged) = expected_scale()?;
            (expected, scaled(min, expected, true)?, unmanaged)
        }
        (None, None) => (0, 0, Vec::new()),
    };

    // Disrupted pods still expected to go, and when the first of them expires.
    let previous = budget.status.clone().unwrap_or_default();
    let mut disrupted = BTreeMap::new();
    let mut expired = Vec::new();
    let mut recheck: Option<Timestamp> = None;
    if let Some(listed) = &previous.disrupted_pods {
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(at) = listed.get(&pod.name_any()) else {
                continue;
            };
            let deadline = at.0.saturating_add(DELETION_TIMEOUT).unwrap_or(at.0);
            if deadline < now {
                expired.push(pod.name_any());
            } else {
                recheck = Some(recheck.map_or(deadline, |r| r.min(deadline)));
                disrupted.insert(pod.name_any(), at.clone());
            }
        }
    }
    let healthy = count(
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| !disrupted.contains_key(&p.name_any()))
            .filter(|p| pods::is_ready(p))
            .count(),
    );
    // A budget whose pods have no expected count yet allows nothing: its first pods may appear
    // before this controller has looked.
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };

    let generation = budget.metadata.generation;
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: Some(healthy),
        desired_healthy: Some(desired),
        expected_pods: Some(expected),
        disruptions_allowed: Some(allowed),
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: generation,
        conditions: previous.conditions.clone(),
    };
    let (value, reason) = if allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    set_condition(&mut status, value, reason, "", now);
    // Nothing changed: keep the stored status as it is (no write).
    let same = |a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus| {
        let disrupted =
            |s: &PodDisruptionBudgetStatus| s.disrupted_pods.clone().unwrap_or_default();
        a.current_healthy.unwrap_or(0) == b.current_healthy.unwrap_or(0)
            && a.desired_healthy.unwrap_or(0) == b.desired_healthy.unwrap_or(0)
            && a.expected_pods.unwrap_or(0) == b.expected_pods.unwrap_or(0)
            && a.disruptions_allowed.unwrap_or(0) == b.disruptions_allowed.unwrap_or(0)
            && disrupted(a) == disrupted(b)
            && a.observed_generation == b.observed_generation
            && a.conditions == b.conditions
    };
    if budget.status.as_ref().is_some_and(|old| same(old, &status)) {
        status = previous;
    }
    let recheck = recheck.map(|at| {
        let left = at.as_second().saturating_sub(now.as_second()).max(1);
        Duration::from_secs(u64::try_from(left).unwrap_or(1))
    });
    Ok(Plan {
        status,
        unmanaged,
        expired,
        recheck,
    })
}

/// The status when the budget cannot be worked out: the previous one with nothing allowed and
/// `DisruptionAllowed` false for `SyncFailed` (upstream's `failSafe`).
fn fail_safe(
    budget: &PodDisruptionBudget,
    message: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = budget.status.clone().unwrap_or_default();
    status.disruptions_allowed = Some(0);
    set_condition(&mut status, "False", SYNC_FAILED, message, now);
    status
}

/// Sets the `DisruptionAllowed` condition (upstream's `SetStatusCondition`: the transition time
/// moves only when the status changes), with the status's observed generation.
fn set_condition(
    status: &mut PodDisruptionBudgetStatus,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let generation = status.observed_generation;
    let wanted = |since: Time| Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    };
    match conditions
        .iter_mut()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    {
        Some(existing) => {
            let since = if existing.status == value {
                existing.last_transition_time.clone()
            } else {
                Time(now)
            };
            *existing = wanted(since);
        }
        None => conditions.push(wanted(Time(now))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const NOW: &str = "2026-01-01T00:10:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn budget(spec: Value, status: Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "ns", "generation": 2},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    /// A pod of the controller `owner` (uid), ready or not, maybe being deleted.
    fn pod(name: &str, owner: Option<&str>, ready: bool, deleting: bool) -> Arc<Pod> {
        let owners = owner.map_or(json!([]), |uid| {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": uid, "uid": uid,
                    "controller": true}])
        });
        let ready = if ready { "True" } else { "False" };
        let mut meta = json!({"name": name, "namespace": "ns", "labels": {"app": "web"},
            "ownerReferences": owners});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:09:00Z");
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": meta,
                "spec": {"containers": []},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready,
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
            }))
            .unwrap(),
        )
    }

    fn scales(entries: &[(&str, Option<(&str, i32)>)]) -> BTreeMap<String, Option<(String, i32)>> {
        entries
            .iter()
            .map(|(uid, found)| (uid.to_string(), found.map(|(u, n)| (u.to_string(), n))))
            .collect()
    }

    fn counts(plan: &Plan) -> (i32, i32, i32, i32) {
        let s = &plan.status;
        (
            s.current_healthy.unwrap(),
            s.desired_healthy.unwrap(),
            s.expected_pods.unwrap(),
            s.disruptions_allowed.unwrap(),
        )
    }

    fn condition(plan: &Plan) -> (String, String) {
        let c = &plan.status.conditions.as_ref().unwrap()[0];
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn min_available_as_a_number_counts_the_pods_there_are() {
        let b = budget(json!({"minAvailable": 2, "selector": {}}), json!({}));
        let pods = [
            pod("a", Some("rs"), true, false),
            pod("b", Some("rs"), true, false),
            pod("c", Some("rs"), false, false),
            pod("d", None, true, true),
        ];
        // No controller lookup is needed: an unknown controller does not matter.
        let plan = plan(&b, &pods, &BTreeMap::new(), now()).unwrap();
        assert_eq!(counts(&plan), (2, 2, 4, 0));
        assert_eq!(condition(&plan), ("False".into(), INSUFFICIENT_PODS.into()));
        assert_eq!(plan.status.observed_generation, Some(2));
        assert!(plan.unmanaged.is_empty());
    }

    #[test]
    fn max_unavailable_scales_against_the_controllers_counted_once() {
        // Two ReplicaSets of one Deployment of 4 replicas: the Deployment counts once.
        let b = budget(json!({"maxUnavailable": "25%", "selector": {}}), json!({}));
        let pods = [
            pod("a", Some("old"), true, false),
            pod("b", Some("new"), true, false),
            pod("c", Some("new"), true, false),
            pod("d", Some("new"), true, false),
        ];
        let found = scales(&[("old", Some(("dep", 4))), ("new", Some(("dep", 4)))]);
        let plan = plan(&b, &pods, &found, now()).unwrap();
        assert_eq!(counts(&plan), (4, 3, 4, 1));
        assert_eq!(condition(&plan), ("True".into(), SUFFICIENT_PODS.into()));
    }

    #[test]
    fn percentages_round_up_and_unmanaged_pods_are_reported() {
        let b = budget(json!({"minAvailable": "50%", "selector": {}}), json!({}));
        let pods = [
            pod("a", Some("rs"), true, false),
            pod("b", Some("rs"), true, false),
            pod("loose", None, true, false),
        ];
        let plan = plan(&b, &pods, &scales(&[("rs", Some(("rs", 3)))]), now()).unwrap();
        // ceil(50% of 3) = 2 desired; the unmanaged pod still counts as healthy.
        assert_eq!(counts(&plan), (3, 2, 3, 1));
        assert_eq!(plan.unmanaged, ["loose"]);
    }

    #[test]
    fn a_pod_without_a_known_controller_fails_safe() {
        let b = budget(
            json!({"maxUnavailable": 1, "selector": {}}),
            json!({"disruptionsAllowed": 3, "currentHealthy": 4}),
        );
        let pods = [pod("a", Some("gone"), true, false)];
        let err = plan(&b, &pods, &scales(&[("gone", None)]), now())
            .unwrap_err()
            .to_string();
        assert_eq!(err, r#"found no controllers for pod "a""#);
        let status = fail_safe(&b, &err, now());
        assert_eq!(status.disruptions_allowed, Some(0));
        assert_eq!(status.current_healthy, Some(4));
        let c = &status.conditions.unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", SYNC_FAILED)
        );
        assert_eq!(c.message, err);
    }

    #[test]
    fn no_expected_pods_allows_nothing() {
        let b = budget(json!({"maxUnavailable": 1, "selector": {}}), json!({}));
        let plan = plan(&b, &[], &BTreeMap::new(), now()).unwrap();
        assert_eq!(counts(&plan), (0, 0, 0, 0));
    }

    #[test]
    fn disrupted_pods_are_not_healthy_until_they_expire() {
        let b = budget(
            json!({"minAvailable": 1, "selector": {}}),
            json!({"disruptedPods": {
                "a": "2026-01-01T00:09:30Z",
                "b": "2026-01-01T00:07:00Z",
                "c": "2026-01-01T00:09:00Z",
                "gone": "2026-01-01T00:09:00Z"}}),
        );
        let pods = [
            pod("a", Some("rs"), true, false),
            pod("b", Some("rs"), true, false),
            pod("c", Some("rs"), true, true),
        ];
        let plan = plan(&b, &pods, &BTreeMap::new(), now()).unwrap();
        // a: disrupted 30 s ago, not healthy; b: expired, healthy again; c: being deleted.
        assert_eq!(counts(&plan), (1, 1, 3, 0));
        let disrupted = plan.status.disrupted_pods.clone().unwrap();
        assert_eq!(disrupted.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(plan.expired, ["b"]);
        assert_eq!(plan.recheck, Some(Duration::from_secs(90)));
    }

    #[test]
    fn an_unchanged_status_is_kept_and_a_transition_moves_the_time() {
        let b = budget(json!({"minAvailable": 1, "selector": {}}), json!({}));
        let pods = [
            pod("a", Some("rs"), true, false),
            pod("b", Some("rs"), true, false),
        ];
        let first = plan(&b, &pods, &BTreeMap::new(), now()).unwrap();
        let b = PodDisruptionBudget {
            status: Some(first.status.clone()),
            ..b
        };
        let later: Timestamp = "2026-01-01T00:20:00Z".parse().unwrap();
        let again = plan(&b, &pods, &BTreeMap::new(), later).unwrap();
        assert_eq!(again.status, first.status);
        let pods = [
            pod("a", Some("rs"), true, false),
            pod("b", Some("rs"), false, false),
        ];
        let down = plan(&b, &pods, &BTreeMap::new(), later).unwrap();
        assert_eq!(condition(&down), ("False".into(), INSUFFICIENT_PODS.into()));
        let c = &down.status.conditions.unwrap()[0];
        assert_eq!(c.last_transition_time, Time(later));
    }

    #[test]
    fn selection_follows_policy_v1() {
        let pod = pod("a", None, true, false);
        let all = budget(json!({"minAvailable": 1, "selector": {}}), json!({}));
        let none = budget(json!({"minAvailable": 1}), json!({}));
        let other = budget(
            json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}),
            json!({}),
        );
        assert!(selects(&all, &pod));
        assert!(!selects(&none, &pod));
        assert!(!selects(&other, &pod));
    }
}
