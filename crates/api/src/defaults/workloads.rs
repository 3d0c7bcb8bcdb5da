//! Defaults of the workload kinds: apps/v1 and batch/v1, plus core/v1 ReplicationController.

use serde_json::{json, Map, Value};

use super::json::{child_obj, existing_obj, items_mut, set_default, set_default_str, str_at};
use super::pod;
use crate::well_known;

pub(crate) fn replication_controller(obj: &mut Value) {
    pod::template_at(obj, &["spec", "template"]);
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(labels) = labels {
        if super::json::is_zero(spec.get("selector")) {
            spec["selector"] = labels.clone();
        }
        if let Some(metadata) = child_obj(obj, "metadata") {
            if super::json::is_zero(metadata.get("labels")) {
                metadata["labels"] = labels;
            }
        }
    }
}

pub(crate) fn deployment(obj: &mut Value) {
    pod::template_at(obj, &["spec", "template"]);
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = child_obj(spec, "strategy") {
        set_default_str(strategy, "type", "RollingUpdate");
        if str_at(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = child_obj(strategy, "rollingUpdate") {
                set_default(rolling, "maxUnavailable", json!("25%"));
                set_default(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
}

pub(crate) fn replica_set(obj: &mut Value) {
    pod::template_at(obj, &["spec", "template"]);
    if let Some(spec) = existing_obj(obj, "spec") {
        set_default(spec, "replicas", json!(1));
    }
}

pub(crate) fn stateful_set(obj: &mut Value) {
    pod::template_at(obj, &["spec", "template"]);
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    set_default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child_obj(spec, "updateStrategy") {
        if str_at(strategy, "type").is_empty() {
            strategy["type"] = json!("RollingUpdate");
            set_default(strategy, "rollingUpdate", json!({}));
        }
        if str_at(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = existing_obj(strategy, "rollingUpdate") {
                set_default(rolling, "partition", json!(0));
            }
        }
    }
    if let Some(policy) = child_obj(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default_str(policy, "whenDeleted", "Retain");
        set_default_str(policy, "whenScaled", "Retain");
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for claim in items_mut(spec, "volumeClaimTemplates") {
        super::persistent_volume_claim(claim);
    }
}

pub(crate) fn daemon_set(obj: &mut Value) {
    pod::template_at(obj, &["spec", "template"]);
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    if let Some(strategy) = child_obj(spec, "updateStrategy") {
        set_default_str(strategy, "type", "RollingUpdate");
        if str_at(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = child_obj(strategy, "rollingUpdate") {
                set_default(rolling, "maxUnavailable", json!(1));
                set_default(rolling, "maxSurge", json!(0));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
}

pub(crate) fn job(obj: &mut Value) {
    pod::template_at(obj, &["spec", "template"]);
    if let Some(spec) = existing_obj(obj, "spec") {
        job_spec(spec);
    }
    job_selector(obj);
    // Upstream copies the template's labels when it reads the Job back (defaulting runs on
    // decode from storage), so the generated labels show up on the Job too: copy them after.
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|l| !l.is_empty()))
        .cloned();
    if let Some(labels) = template_labels {
        if let Some(metadata) = child_obj(obj, "metadata") {
            if super::json::is_zero(metadata.get("labels")) {
                metadata["labels"] = labels;
            }
        }
    }
}

/// `SetDefaults_Job` on the spec.
fn job_spec(spec: &mut Value) {
    let unset = |spec: &Value, key: &str| spec.get(key).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_default(spec, "parallelism", json!(1));
    if unset(spec, "backoffLimit") {
        // With a per-index limit the global one is effectively off: MaxInt32.
        let limit = if unset(spec, "backoffLimitPerIndex") {
            6
        } else {
            i64::from(i32::MAX)
        };
        spec["backoffLimit"] = json!(limit);
    }
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    if unset(spec, "podReplacementPolicy") {
        let policy = if unset(spec, "podFailurePolicy") {
            "TerminatingOrFailed"
        } else {
            "Failed"
        };
        spec["podReplacementPolicy"] = json!(policy);
    }
    if let Some(policy) = existing_obj(spec, "podFailurePolicy") {
        for rule in items_mut(policy, "rules") {
            for condition in items_mut(rule, "onPodConditions") {
                set_default_str(condition, "status", "True");
            }
        }
    }
}

/// The Job registry's generated selector: unless `spec.manualSelector` is true, a Job with a
/// `metadata.uid` gets `spec.selector.matchLabels` `batch.kubernetes.io/controller-uid: <uid>`,
/// and its template the labels `batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`,
/// `controller-uid` and `job-name`. [`apply_defaults`](super::apply_defaults) calls this, so the
/// API server should set the uid before defaulting a new Job; calling it again is harmless.
pub fn job_selector(obj: &mut Value) {
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let manual = obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    if uid.is_empty() || manual || obj.get("spec").is_none_or(|s| !s.is_object()) {
        return;
    }
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    if spec.get("selector").is_none_or(Value::is_null) {
        let mut match_labels = Map::new();
        match_labels.insert(well_known::LABEL_JOB_CONTROLLER_UID.into(), json!(uid));
        spec["selector"] = json!({ "matchLabels": match_labels });
    }
    let Some(labels) = child_obj(spec, "template")
        .and_then(|t| child_obj(t, "metadata"))
        .and_then(|m| child_obj(m, "labels"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (key, value) in [
        (well_known::LABEL_JOB_CONTROLLER_UID, &uid),
        (well_known::LABEL_JOB_NAME, &name),
        (well_known::LABEL_LEGACY_CONTROLLER_UID, &uid),
        (well_known::LABEL_LEGACY_JOB_NAME, &name),
    ] {
        labels.entry(key).or_insert_with(|| json!(value));
    }
}

pub(crate) fn cron_job(obj: &mut Value) {
    pod::template_at(obj, &["spec", "jobTemplate", "spec", "template"]);
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    set_default_str(spec, "concurrencyPolicy", "Allow");
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
}
