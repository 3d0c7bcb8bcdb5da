//! The deployment controller's arithmetic, as upstream's `deploymentutil`: surge and
//! unavailability fenceposts, the pod-template hash, revisions and their annotations,
//! proportional scaling, and the status and conditions a deployment should report.

use std::collections::BTreeMap;
use std::sync::Arc;

use k3rs_api::well_known;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// The label that ties a ReplicaSet and its pods to one template of a deployment.
pub(crate) const TEMPLATE_HASH_LABEL: &str = well_known::LABEL_POD_TEMPLATE_HASH;
/// The revision of a deployment (and of each of its ReplicaSets).
pub(crate) const REVISION: &str = well_known::ANNOTATION_DEPLOYMENT_REVISION;
/// Earlier revisions a ReplicaSet served (when a rollback reused it).
pub(crate) const REVISION_HISTORY: &str = well_known::ANNOTATION_DEPLOYMENT_REVISION_HISTORY;
/// The deployment's replicas when the ReplicaSet was last scaled.
pub(crate) const DESIRED_REPLICAS: &str = well_known::ANNOTATION_DEPLOYMENT_DESIRED_REPLICAS;
/// The deployment's replicas plus surge when the ReplicaSet was last scaled.
pub(crate) const MAX_REPLICAS: &str = well_known::ANNOTATION_DEPLOYMENT_MAX_REPLICAS;
/// Annotations of a deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    well_known::ANNOTATION_LAST_APPLIED_CONFIGURATION,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// `Progressing` condition reasons.
pub(crate) const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// `Progressing`: an existing ReplicaSet matches the template.
pub(crate) const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// `Progressing`: the new ReplicaSet gained replicas.
pub(crate) const RS_UPDATED: &str = "ReplicaSetUpdated";
/// `Progressing`: the rollout is complete.
pub(crate) const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// `Progressing` is False: no progress within `progressDeadlineSeconds`.
pub(crate) const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// `Progressing` is Unknown: paused.
pub(crate) const PAUSED: &str = "DeploymentPaused";
/// `Progressing` is Unknown: resumed.
pub(crate) const RESUMED: &str = "DeploymentResumed";

/// The desired replicas (`spec.replicas`, 1 when unset).
pub(crate) fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

/// The replicas a ReplicaSet wants.
pub(crate) fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

fn rs_status(
    rs: &ReplicaSet,
    f: impl Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> Option<i32>,
) -> i32 {
    rs.status.as_ref().and_then(f).unwrap_or(0)
}

/// Pods a ReplicaSet has (active, by its status).
pub(crate) fn rs_actual(rs: &ReplicaSet) -> i32 {
    rs_status(rs, |s| Some(s.replicas))
}

/// Available pods of a ReplicaSet.
pub(crate) fn rs_available(rs: &ReplicaSet) -> i32 {
    rs_status(rs, |s| s.available_replicas)
}

/// Whether the deployment uses the RollingUpdate strategy (the default).
pub(crate) fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// Why an int-or-percent could not be scaled (upstream's wording).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScaleError {
    /// The string is not a percentage.
    #[error("invalid value for IntOrString: invalid value {0:?}")]
    NotPercent(String),
    /// The scaled value does not fit an `int32`.
    #[error("{percent} of {total} is out of range")]
    OutOfRange {
        /// The percentage as written.
        percent: String,
        /// What it was scaled against.
        total: i32,
    },
}

/// An int-or-percent scaled against `total` (upstream's `GetScaledValueFromIntOrPercent`).
pub(crate) fn scaled(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, ScaleError> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| ScaleError::NotPercent(s.clone()))?;
            let product = percent * i64::from(total);
            let value = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).map_err(|_| ScaleError::OutOfRange {
                percent: s.clone(),
                total,
            })
        }
    }
}

/// (maxSurge, maxUnavailable) for `replicas` — surge rounds up, unavailability down, and both
/// zero means one unavailable (upstream's `ResolveFenceposts`). Defaults are 25%.
pub(crate) fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let surge = rolling
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&quarter);
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    let total = replicas(d);
    let surge = scaled(surge, total, true).unwrap_or(0);
    let unavailable = scaled(unavailable, total, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// How many pods may be above the desired count during a rolling update.
pub(crate) fn max_surge(d: &Deployment) -> i32 {
    if is_rolling(d) {
        fenceposts(d).0
    } else {
        0
    }
}

/// How many pods may be unavailable during a rolling update (never more than replicas).
pub(crate) fn max_unavailable(d: &Deployment) -> i32 {
    let total = replicas(d);
    if !is_rolling(d) || total == 0 {
        return 0;
    }
    fenceposts(d).1.min(total)
}

/// The template's hash with the collision count (FNV-1a 32 over the template's JSON), encoded
/// with Kubernetes' safe alphabet (no vowels, no look-alikes) as pod-template-hash values are.
pub(crate) fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(&normalized(template)).unwrap_or_default());
    if let Some(count) = collision_count {
        feed(&count.to_le_bytes());
    }
    safe_encode(&hash.to_string())
}

/// Upstream's `rand.SafeEncodeString`.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The template as JSON without its pod-template-hash label, and without empty values: Go's
/// semantic equality that upstream compares templates with treats a nil and an empty slice,
/// map or struct alike (`resources: {}` and no `resources` are the same template).
fn normalized(template: &PodTemplateSpec) -> serde_json::Value {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(TEMPLATE_HASH_LABEL);
    }
    let mut value = serde_json::to_value(&template).unwrap_or_default();
    prune_empty(&mut value);
    value
}

/// Removes nulls and empty objects and arrays, innermost first.
fn prune_empty(value: &mut serde_json::Value) {
    use serde_json::Value;
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    };
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune_empty(child);
            }
            map.retain(|_, child| !empty(child));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

/// Whether two templates are the same but for the hash label (upstream's `EqualIgnoreHash`).
pub(crate) fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a) == normalized(b)
}

/// The revision annotation of an object, 0 when missing or unreadable.
pub(crate) fn revision(annotations: Option<&BTreeMap<String, String>>) -> i64 {
    annotations
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A ReplicaSet's revision.
pub(crate) fn rs_revision(rs: &ReplicaSet) -> i64 {
    revision(rs.metadata.annotations.as_ref())
}

/// An integer annotation of a ReplicaSet.
pub(crate) fn rs_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The deployment's annotations that its ReplicaSets carry too.
pub(crate) fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The ReplicaSets with replicas wanted or present.
pub(crate) fn active(sets: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    sets.iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .cloned()
        .collect()
}

/// The sum of `f` over `sets`.
pub(crate) fn total(sets: &[Arc<ReplicaSet>], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
    sets.iter().map(|rs| f(rs)).sum()
}

fn created(rs: &ReplicaSet) -> (i64, String) {
    (
        rs.metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second()),
        rs.metadata.name.clone().unwrap_or_default(),
    )
}

/// Oldest first.
pub(crate) fn by_creation(sets: &mut [Arc<ReplicaSet>]) {
    sets.sort_by_key(|rs| created(rs));
}

/// Upstream's `ReplicaSetsBySizeNewer`: larger first, newer first among equals.
pub(crate) fn by_size_newer(sets: &mut [Arc<ReplicaSet>]) {
    sets.sort_by(|a, b| {
        rs_replicas(b)
            .cmp(&rs_replicas(a))
            .then_with(|| created(b).cmp(&created(a)))
    });
}

/// Upstream's `ReplicaSetsBySizeOlder`: larger first, older first among equals.
pub(crate) fn by_size_older(sets: &mut [Arc<ReplicaSet>]) {
    sets.sort_by(|a, b| {
        rs_replicas(b)
            .cmp(&rs_replicas(a))
            .then_with(|| created(a).cmp(&created(b)))
    });
}

/// How many replicas `rs` gains or loses when the deployment adds `to_add` in all, `added` of
/// them handed out already (upstream's `GetProportion`).
pub(crate) fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let max_now = replicas(d) + max_surge(d);
    let max_before = match rs_annotation(rs, MAX_REPLICAS) {
        Some(n) if n != 0 => n,
        _ => {
            let status = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            if status == 0 {
                return 0;
            }
            status
        }
    };
    let size = f64::from(rs_replicas(rs)) * f64::from(max_now) / f64::from(max_before);
    // Go's math.Floor(x + 0.5).
    let rounded = (size + 0.5).floor();
    i32::try_from(rounded as i64).unwrap_or(i32::MAX) - rs_replicas(rs)
}

/// A condition of the status by type.
pub(crate) fn condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// A new condition (both times `now`).
pub(crate) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets `condition`, keeping the old transition time when the status did not change, and
/// leaving the old condition alone when only its times would change (upstream's
/// `SetDeploymentCondition`).
pub(crate) fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(existing) = conditions.iter().find(|c| c.type_ == condition.type_) {
        if existing.status == condition.status && existing.reason == condition.reason {
            return;
        }
        if existing.status == condition.status {
            condition.last_transition_time = existing.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != condition.type_);
    conditions.push(condition);
}

/// Removes the condition of `type_`.
pub(crate) fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

/// The status computed from the ReplicaSets (upstream's `calculateStatus`), with the
/// `Available` condition.
pub(crate) fn calculate_status(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let available = total(all, rs_available);
    let wanted = replicas(d);
    let previous = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total(all, rs_actual)),
        updated_replicas: Some(new_rs.map_or(0, rs_actual)),
        ready_replicas: Some(total(all, |rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })),
        available_replicas: Some(available),
        unavailable_replicas: Some((wanted - available).max(0)),
        terminating_replicas: Some(total(all, |rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.terminating_replicas)
                .unwrap_or(0)
        })),
        collision_count: previous.collision_count,
        conditions: previous.conditions.clone(),
    };
    let condition = if available >= wanted - max_unavailable(d) {
        new_condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

/// Whether the rollout is done: every replica updated and available, and the spec seen
/// (upstream's `DeploymentComplete`).
pub(crate) fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let wanted = replicas(d);
    status.updated_replicas == Some(wanted)
        && status.replicas == Some(wanted)
        && status.available_replicas == Some(wanted)
        && status.observed_generation >= d.metadata.generation
}

/// Whether the new status shows progress over the deployment's current one (upstream's
/// `DeploymentProgressing`).
pub(crate) fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas > old.updated_replicas
        || old_old > new_old
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

/// Whether the deployment has a progress deadline (`progressDeadlineSeconds` below MaxInt32).
pub(crate) fn has_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|s| s != i32::MAX)
}

/// Seconds left before the deployment times out, from its Progressing condition's last update;
/// `None` when it has no deadline or no such condition.
pub(crate) fn seconds_to_deadline(
    d: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> Option<i64> {
    if !has_deadline(d) {
        return None;
    }
    let deadline = i64::from(d.spec.progress_deadline_seconds?);
    let progressing = condition(status, "Progressing")?;
    if progressing.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let from = progressing.last_update_time.as_ref()?.0.as_second();
    Some(from + deadline - now.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(spec: serde_json::Value) -> Deployment {
        let mut value = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}},
        }});
        for (k, v) in spec.as_object().unwrap() {
            value["spec"][k] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn fenceposts_round_like_upstream() {
        let d = deployment(json!({"replicas": 10}));
        assert_eq!(
            fenceposts(&d),
            (3, 2),
            "25% of 10: surge up, unavailable down"
        );
        let d = deployment(json!({"replicas": 1}));
        assert_eq!(fenceposts(&d), (1, 0));
        let d = deployment(json!({"replicas": 3, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}));
        assert_eq!(fenceposts(&d), (0, 1), "never both zero");
        let d = deployment(json!({"replicas": 3, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}}}));
        assert_eq!(fenceposts(&d), (2, 0));
        assert_eq!(max_unavailable(&d), 0);
        let d = deployment(json!({"replicas": 2, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 5}}}));
        assert_eq!(max_unavailable(&d), 2, "capped at replicas");
        let d = deployment(json!({"replicas": 4, "strategy": {"type": "Recreate"}}));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 0));
        assert!(scaled(&IntOrString::String("x%".into()), 4, true).is_err());
    }

    #[test]
    fn template_hash_is_stable_safe_and_moves_with_collisions() {
        let d = deployment(json!({}));
        let a = template_hash(&d.spec.template, None);
        assert_eq!(a, template_hash(&d.spec.template, None));
        assert!(
            a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{a}"
        );
        assert_ne!(a, template_hash(&d.spec.template, Some(1)));
        let mut labeled = d.spec.template.clone();
        labeled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(TEMPLATE_HASH_LABEL.into(), a.clone());
        assert!(same_template(&labeled, &d.spec.template));
        // Empty and missing values are the same template, and hash the same.
        let mut with_empty: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}, "annotations": {}},
            "spec": {"containers": [{"name": "c", "resources": {}, "env": []}]},
        }))
        .unwrap();
        let without: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c"}]},
        }))
        .unwrap();
        assert!(same_template(&with_empty, &without));
        assert_eq!(
            template_hash(&with_empty, None),
            template_hash(&without, None)
        );
        with_empty.spec.as_mut().unwrap().containers[0].image = Some("x".into());
        assert!(!same_template(&with_empty, &without));
    }

    fn rs(name: &str, replicas: i32, max_replicas: Option<i32>) -> ReplicaSet {
        let annotations = max_replicas
            .map(|m| json!({MAX_REPLICAS: m.to_string()}))
            .unwrap_or(json!({}));
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"replicas": replicas, "selector": {}},
        }))
        .unwrap()
    }

    #[test]
    fn proportional_scaling_follows_the_max_replicas_annotation() {
        // 10 → 15 replicas with surge 25%: max 13 → 19 (rounded up surge of 15 is 4).
        let d = deployment(json!({"replicas": 15}));
        let old = rs("old", 8, Some(13));
        let new = rs("new", 5, Some(13));
        // 8 * 19 / 13 = 11.69 → 12: +4; 5 * 19 / 13 = 7.3 → 7: +2
        assert_eq!(proportion(&old, &d, 6, 0), 4);
        assert_eq!(proportion(&new, &d, 6, 4), 2);
        assert_eq!(proportion(&new, &d, 6, 6), 0);
        let d0 = deployment(json!({"replicas": 0}));
        assert_eq!(proportion(&old, &d0, -13, 0), -8);
    }
}
