//! Workload checks: apps/v1 Deployment, ReplicaSet, StatefulSet, DaemonSet; batch/v1 Job and
//! CronJob; core/v1 ReplicationController.

use serde_json::{json, Value};

use super::pod::{template_restart_policy, validate_template};
use super::{forbidden, immutable, invalid, names, non_negative, not_supported, required, string};
use crate::defaults::json::items;
use crate::{FieldError, FieldErrorKind, FieldPath};

fn spec_of(obj: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    obj.get("spec").unwrap_or(&EMPTY)
}

/// Go's `%#v` of a `map[string]string`, as upstream prints template labels in
/// `selector does not match template labels`.
fn go_string_map(labels: Option<&Value>) -> String {
    let Some(map) = labels.and_then(Value::as_object) else {
        return "map[string]string(nil)".to_owned();
    };
    let entries: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{}", json!(k), json!(v.as_str().unwrap_or(""))))
        .collect();
    format!("map[string]string{{{}}}", entries.join(", "))
}

/// A label selector (`matchLabels` + `matchExpressions`), checked and matched against labels.
struct Selector<'a> {
    value: &'a Value,
}

impl Selector<'_> {
    fn is_empty(&self) -> bool {
        let labels = self
            .value
            .get("matchLabels")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty());
        let expressions = items(self.value, "matchExpressions").is_empty();
        labels && expressions
    }

    fn validate(&self, path: &FieldPath, errs: &mut Vec<FieldError>) {
        super::meta::labels(
            self.value.get("matchLabels"),
            &path.child("matchLabels"),
            errs,
        );
        for (i, expression) in items(self.value, "matchExpressions").iter().enumerate() {
            let path = path.child("matchExpressions").index(i);
            let operator = string(expression, "operator");
            let values = items(expression, "values");
            match operator {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        errs.push(required(
                            path.child("values"),
                            "must be specified when `operator` is 'In' or 'NotIn'",
                        ));
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !values.is_empty() {
                        errs.push(forbidden(
                            path.child("values"),
                            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                        ));
                    }
                }
                _ => errs.push(invalid(
                    path.child("operator"),
                    &json!(operator),
                    "not a valid selector operator",
                )),
            }
            let key = string(expression, "key");
            for msg in names::qualified_name(key) {
                errs.push(invalid(path.child("key"), &json!(key), msg));
            }
        }
    }

    fn matches(&self, labels: Option<&Value>) -> bool {
        let empty = serde_json::Map::new();
        let labels = labels.and_then(Value::as_object).unwrap_or(&empty);
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        let match_labels = self
            .value
            .get("matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .all(|(k, v)| label(k).is_some() && label(k) == v.as_str());
        match_labels
            && items(self.value, "matchExpressions").iter().all(|e| {
                let key = string(e, "key");
                let values: Vec<&str> = items(e, "values")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                match string(e, "operator") {
                    "In" => label(key).is_some_and(|v| values.contains(&v)),
                    "NotIn" => !label(key).is_some_and(|v| values.contains(&v)),
                    "Exists" => label(key).is_some(),
                    "DoesNotExist" => label(key).is_none(),
                    _ => false,
                }
            })
    }
}

/// The shared part of Deployment/ReplicaSet/StatefulSet/DaemonSet: selector required, non-empty,
/// valid and matching the template's labels; the template valid with `restartPolicy: Always`.
fn selector_and_template(spec: &Value, kind: &str, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let template = spec.get("template").filter(|t| !t.is_null());
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.push(required(path.child("selector"), "")),
        Some(selector_value) => {
            let selector = Selector {
                value: selector_value,
            };
            selector.validate(&path.child("selector"), errs);
            if selector.is_empty() {
                errs.push(invalid(
                    path.child("selector"),
                    selector_value,
                    format!("empty selector is invalid for {kind}"),
                ));
            } else if let Some(template) = template {
                let labels = template.get("metadata").and_then(|m| m.get("labels"));
                if !selector.matches(labels) {
                    errs.push(FieldError {
                        kind: FieldErrorKind::Invalid,
                        field: path.child("template").child("metadata").child("labels"),
                        value: Some(go_string_map(labels)),
                        detail: "`selector` does not match template `labels`".to_owned(),
                    });
                }
            }
        }
    }
    validate_template(template, &path.child("template"), false, errs);
    if template.is_some() {
        template_restart_policy(template, &path.child("template"), &["Always"], errs);
        if template
            .and_then(|t| t.get("spec"))
            .and_then(|s| s.get("activeDeadlineSeconds"))
            .is_some_and(|d| !d.is_null())
        {
            errs.push(forbidden(
                path.child("template")
                    .child("spec")
                    .child("activeDeadlineSeconds"),
                format!("activeDeadlineSeconds in {kind} is not Supported"),
            ));
        }
    }
    non_negative(spec, "replicas", &path, errs);
    non_negative(spec, "minReadySeconds", &path, errs);
    non_negative(spec, "revisionHistoryLimit", &path, errs);
}

/// An int-or-percent field (`maxUnavailable`, `maxSurge`): non-negative, at most 100%.
fn int_or_percent(value: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => {
            let msgs = names::percent(s);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(invalid(path.clone(), &json!(s), msg));
                }
                return false;
            }
            let n: u64 = s.trim_end_matches('%').parse().unwrap_or(u64::MAX);
            if n > 100 {
                errs.push(invalid(
                    path.clone(),
                    &json!(s),
                    "must not be greater than 100%",
                ));
            }
            n != 0
        }
        Some(v) => match v.as_i64() {
            Some(n) if n < 0 => {
                errs.push(invalid(
                    path.clone(),
                    v,
                    "must be greater than or equal to 0",
                ));
                true
            }
            Some(n) => n != 0,
            None => {
                errs.push(invalid(
                    path.clone(),
                    v,
                    "must be an integer or percentage (e.g '5%')",
                ));
                true
            }
        },
    }
}

pub(crate) fn deployment(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(obj);
    let path = FieldPath::new("spec");
    selector_and_template(spec, "deployment", errs);
    if let Some(strategy) = spec.get("strategy").filter(|s| s.is_object()) {
        let strategy_path = path.child("strategy");
        let kind = string(strategy, "type");
        match kind {
            "" | "RollingUpdate" => {
                if let Some(rolling) = strategy.get("rollingUpdate").filter(|r| r.is_object()) {
                    let rolling_path = strategy_path.child("rollingUpdate");
                    let unavailable = int_or_percent(
                        rolling.get("maxUnavailable"),
                        &rolling_path.child("maxUnavailable"),
                        errs,
                    );
                    let surge = int_or_percent(
                        rolling.get("maxSurge"),
                        &rolling_path.child("maxSurge"),
                        errs,
                    );
                    let set = |k: &str| rolling.get(k).is_some_and(|v| !v.is_null());
                    if set("maxUnavailable") && set("maxSurge") && !unavailable && !surge {
                        errs.push(invalid(
                            rolling_path.child("maxUnavailable"),
                            rolling.get("maxUnavailable").unwrap_or(&Value::Null),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                }
            }
            "Recreate" => {
                if strategy.get("rollingUpdate").is_some_and(|r| !r.is_null()) {
                    errs.push(forbidden(
                        strategy_path.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            other => errs.push(not_supported(
                strategy_path.child("type"),
                &json!(other),
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        non_negative(spec, "progressDeadlineSeconds", &path, errs);
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if deadline >= 0 && deadline <= min_ready {
            errs.push(invalid(
                path.child("progressDeadlineSeconds"),
                &json!(deadline),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

pub(crate) fn replica_set(obj: &Value, errs: &mut Vec<FieldError>) {
    selector_and_template(spec_of(obj), "replicaset", errs);
}

pub(crate) fn daemon_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(obj);
    selector_and_template(spec, "daemonset", errs);
    if let Some(strategy) = spec.get("updateStrategy").filter(|s| s.is_object()) {
        let path = FieldPath::new("spec").child("updateStrategy");
        match string(strategy, "type") {
            "" | "RollingUpdate" | "OnDelete" => {}
            other => errs.push(not_supported(
                path.child("type"),
                &json!(other),
                &["OnDelete", "RollingUpdate"],
            )),
        }
        if let Some(rolling) = strategy.get("rollingUpdate").filter(|r| r.is_object()) {
            let rolling_path = path.child("rollingUpdate");
            let unavailable = int_or_percent(
                rolling.get("maxUnavailable"),
                &rolling_path.child("maxUnavailable"),
                errs,
            );
            let surge = int_or_percent(
                rolling.get("maxSurge"),
                &rolling_path.child("maxSurge"),
                errs,
            );
            if !unavailable && !surge {
                errs.push(invalid(
                    rolling_path.child("maxUnavailable"),
                    rolling.get("maxUnavailable").unwrap_or(&json!(0)),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
    }
}

pub(crate) fn stateful_set(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(obj);
    let path = FieldPath::new("spec");
    selector_and_template(spec, "statefulset", errs);
    match string(spec, "podManagementPolicy") {
        "" | "OrderedReady" | "Parallel" => {}
        other => errs.push(invalid(
            path.child("podManagementPolicy"),
            &json!(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    if let Some(strategy) = spec.get("updateStrategy").filter(|s| s.is_object()) {
        match string(strategy, "type") {
            "" | "RollingUpdate" => {
                if let Some(partition) = strategy.get("rollingUpdate").filter(|r| r.is_object()) {
                    non_negative(
                        partition,
                        "partition",
                        &path.child("updateStrategy").child("rollingUpdate"),
                        errs,
                    );
                }
            }
            "OnDelete" => {
                if strategy.get("rollingUpdate").is_some_and(|r| !r.is_null()) {
                    errs.push(invalid(
                        path.child("updateStrategy").child("rollingUpdate"),
                        strategy.get("rollingUpdate").unwrap_or(&Value::Null),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            other => errs.push(invalid(
                path.child("updateStrategy"),
                &json!(other),
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        }
    }
    for (i, claim) in items(spec, "volumeClaimTemplates").iter().enumerate() {
        let name = claim
            .get("metadata")
            .map(|m| string(m, "name"))
            .unwrap_or("");
        let claim_path = path.child("volumeClaimTemplates").index(i);
        if name.is_empty() {
            errs.push(required(claim_path.child("metadata").child("name"), ""));
        }
        super::resources::claim_spec(claim.get("spec"), &claim_path.child("spec"), errs);
    }
}

/// ReplicationController: a map selector, defaulted from the template's labels.
pub(crate) fn replication_controller(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(obj);
    let path = FieldPath::new("spec");
    let selector = spec.get("selector").and_then(Value::as_object);
    if selector.is_none_or(|s| s.is_empty()) {
        errs.push(required(path.child("selector"), ""));
    }
    super::meta::labels(spec.get("selector"), &path.child("selector"), errs);
    let template = spec.get("template").filter(|t| !t.is_null());
    if let (Some(selector), Some(template)) = (selector, template) {
        let labels = template.get("metadata").and_then(|m| m.get("labels"));
        let matches = selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)).and_then(Value::as_str) == v.as_str());
        if !selector.is_empty() && !matches {
            errs.push(FieldError {
                kind: FieldErrorKind::Invalid,
                field: path.child("template").child("metadata").child("labels"),
                value: Some(go_string_map(labels)),
                detail: "`selector` does not match template `labels`".to_owned(),
            });
        }
    }
    validate_template(template, &path.child("template"), false, errs);
    if template.is_some() {
        template_restart_policy(template, &path.child("template"), &["Always"], errs);
    }
    non_negative(spec, "replicas", &path, errs);
    non_negative(spec, "minReadySeconds", &path, errs);
}

/// Deployment/ReplicaSet/DaemonSet: the selector may not change.
pub(crate) fn selector_immutable(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let old_selector = spec_of(old).get("selector");
    let new_selector = spec_of(new).get("selector");
    if old_selector != new_selector {
        errs.push(immutable(
            FieldPath::new("spec").child("selector"),
            new_selector.unwrap_or(&Value::Null),
        ));
    }
}

/// Which StatefulSet spec fields an update may change.
const STATEFUL_SET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
    "revisionHistoryLimit",
];

pub(crate) fn stateful_set_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let strip = |spec: &Value| -> Value {
        let mut spec = spec.clone();
        if let Some(map) = spec.as_object_mut() {
            for key in STATEFUL_SET_MUTABLE {
                map.remove(*key);
            }
        }
        spec
    };
    if strip(spec_of(old)) != strip(spec_of(new)) {
        errs.push(forbidden(
            FieldPath::new("spec"),
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

pub(crate) fn job(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(obj);
    let path = FieldPath::new("spec");
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    let name = obj.get("metadata").map(|m| string(m, "name")).unwrap_or("");
    // Without a manual selector the Job's name becomes a label value of its pods.
    if !manual && !name.is_empty() {
        for msg in names::label_value(name) {
            errs.push(invalid(
                FieldPath::new("metadata").child("name"),
                &json!(name),
                msg,
            ));
        }
    }
    job_spec(spec, &path, true, errs);
}

/// `ValidateJobSpec`; `selector_required` is false inside a CronJob's job template, where the
/// selector is generated per Job.
fn job_spec(spec: &Value, path: &FieldPath, selector_required: bool, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
        "ttlSecondsAfterFinished",
    ] {
        non_negative(spec, key, path, errs);
    }
    if let Some(deadline) = spec.get("activeDeadlineSeconds").filter(|d| !d.is_null()) {
        if deadline.as_i64().is_none_or(|d| d <= 0) {
            errs.push(invalid(
                path.child("activeDeadlineSeconds"),
                deadline,
                "must be greater than 0",
            ));
        }
    }
    let template = spec.get("template").filter(|t| !t.is_null());
    match spec.get("selector").filter(|s| !s.is_null()) {
        None if selector_required => errs.push(required(path.child("selector"), "")),
        None => {}
        Some(selector_value) => {
            let selector = Selector {
                value: selector_value,
            };
            selector.validate(&path.child("selector"), errs);
            let labels = template
                .and_then(|t| t.get("metadata"))
                .and_then(|m| m.get("labels"));
            if !selector.is_empty() && !selector.matches(labels) {
                errs.push(FieldError {
                    kind: FieldErrorKind::Invalid,
                    field: path.child("template").child("metadata").child("labels"),
                    value: Some(go_string_map(labels)),
                    detail: "`selector` does not match template `labels`".to_owned(),
                });
            }
        }
    }
    match string(spec, "completionMode") {
        "" | "NonIndexed" | "Indexed" => {}
        other => errs.push(not_supported(
            path.child("completionMode"),
            &json!(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    if string(spec, "completionMode") == "Indexed"
        && spec.get("completions").is_none_or(Value::is_null)
    {
        errs.push(required(
            path.child("completions"),
            "when completion mode is Indexed",
        ));
    }
    validate_template(template, &path.child("template"), false, errs);
    if template.is_some() {
        template_restart_policy(
            template,
            &path.child("template"),
            &["OnFailure", "Never"],
            errs,
        );
    }
}

pub(crate) fn job_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let (old_spec, new_spec) = (spec_of(old), spec_of(new));
    for key in [
        "selector",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
    ] {
        if old_spec.get(key) != new_spec.get(key) {
            errs.push(immutable(
                path.child(key),
                new_spec.get(key).unwrap_or(&Value::Null),
            ));
        }
    }
    // Completions may only change together with parallelism for Indexed Jobs (elastic Jobs).
    let elastic = string(new_spec, "completionMode") == "Indexed"
        && new_spec.get("completions") == new_spec.get("parallelism");
    if old_spec.get("completions") != new_spec.get("completions") && !elastic {
        errs.push(immutable(
            path.child("completions"),
            new_spec.get("completions").unwrap_or(&Value::Null),
        ));
    }
    // The template may change only while the Job is suspended (and never started), as upstream.
    let suspended = new_spec.get("suspend").and_then(Value::as_bool) == Some(true);
    let never_started = old.pointer("/status/startTime").is_none_or(Value::is_null);
    if old_spec.get("template") != new_spec.get("template") && !(suspended && never_started) {
        errs.push(immutable(
            path.child("template"),
            new_spec.get("template").unwrap_or(&Value::Null),
        ));
    }
}

pub(crate) fn cron_job(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = spec_of(obj);
    let path = FieldPath::new("spec");
    let name = obj.get("metadata").map(|m| string(m, "name")).unwrap_or("");
    // Job names are `<cronjob>-<11 digits>` and must stay valid label values.
    if name.len() > 52 {
        errs.push(invalid(
            FieldPath::new("metadata").child("name"),
            &json!(name),
            "must be no more than 52 characters",
        ));
    }
    let schedule = string(spec, "schedule");
    if schedule.is_empty() {
        errs.push(required(path.child("schedule"), ""));
    } else {
        if schedule.contains("TZ") {
            errs.push(invalid(
                path.child("schedule"),
                &json!(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        } else if let Err(msg) = crate::cron::CronSchedule::parse(schedule) {
            errs.push(invalid(
                path.child("schedule"),
                &json!(schedule),
                msg.to_string(),
            ));
        }
    }
    // `ValidateCronJobSpec`'s time zone: an explicit IANA name the controller can load.
    if let Some(zone) = spec.get("timeZone").and_then(Value::as_str) {
        let problem = if zone.is_empty() {
            Some("timeZone must be nil or non-empty string".to_owned())
        } else if zone.eq_ignore_ascii_case("local") {
            Some(
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                    .to_owned(),
            )
        } else {
            crate::cron::time_zone(zone)
                .err()
                .map(|err| err.to_string())
        };
        if let Some(problem) = problem {
            errs.push(invalid(path.child("timeZone"), &json!(zone), problem));
        }
    }
    match string(spec, "concurrencyPolicy") {
        "" | "Allow" | "Forbid" | "Replace" => {}
        other => errs.push(not_supported(
            path.child("concurrencyPolicy"),
            &json!(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(spec, key, &path, errs);
    }
    let job_template_path = path.child("jobTemplate");
    match spec.get("jobTemplate").and_then(|t| t.get("spec")) {
        Some(job_spec_value) if job_spec_value.is_object() => {
            job_spec(
                job_spec_value,
                &job_template_path.child("spec"),
                false,
                errs,
            );
        }
        _ => errs.push(required(
            job_template_path.child("spec").child("template"),
            "",
        )),
    }
}
