//! Evicting a pod, as upstream's `EvictionREST`: `POST …/pods/<name>/eviction` with a policy/v1
//! (or v1beta1) `Eviction` deletes the pod when its PodDisruptionBudget allows it.
//!
//! A pod that is Pending, has finished or is already terminating is deleted at once: it
//! disrupts nothing any more. Otherwise the budgets selecting it decide: none → delete; more than
//! one → upstream's 500; a pod that is not ready goes without taking a disruption when the
//! budget says `AlwaysAllow` or is healthy anyway (`IfHealthyBudget`); else one disruption is
//! taken from the budget's status — `disruptionsAllowed` down by one, the pod recorded in
//! `disruptedPods` for the disruption controller — in a guarded write, or the eviction is
//! refused with upstream's 429. The pod is then marked `DisruptionTarget` and deleted with the
//! eviction's `deleteOptions` (gracefully: its kubelet finishes it). `dryRun` writes nothing.
//! The decisions are the pure [`pod_gate`], [`budget_plan`] and [`take_disruption`].

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use k3rs_api::{LabelSelector, ResourceInfo};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;
use serde_json::{json, Value};

use super::binding::update_pod_condition;
use super::crud::{self, parse_body, Ownership};
use super::error::{ApiError, Subject};
use super::objects::{self, meta_str};
use super::query::Query;
use super::strategy::Precondition;
use super::target::ResourcePath;
use super::{Call, Format};
use crate::response::{created_status, ResponseBody};

/// How often, and how far apart, an eviction that lost a race over the pod is tried again
/// (upstream's `EvictionsRetry`: 20 steps, 500 ms).
const RETRY_STEPS: usize = 20;
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// More pods than this in `disruptedPods` means the disruption controller is not keeping up:
/// evictions stop until it does (upstream's `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

/// Upstream's words for a refused eviction.
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
const SEVERAL_BUDGETS: &str =
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";

/// The field manager of the budget status writes: upstream's eviction writes them through
/// kube-apiserver's loopback client, whose user agent names the program.
const LOOPBACK_AGENT: &str = "kube-apiserver";

/// Whether the request is an eviction: the pods' `eviction` subresource.
pub(crate) fn serves(call: &Call<'_>) -> bool {
    call.resource.group.is_empty()
        && call.resource.kind == "Pod"
        && call.path.subresource.as_deref() == Some("eviction")
}

/// Evicts the pod the request names.
pub(crate) async fn evict(
    call: &Call<'_>,
    method: &Method,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    // The subresource takes creates only.
    if *method != Method::POST {
        return Err(ApiError::method_not_allowed(method));
    }
    let (Some(namespace), Some(name)) = (call.namespace(), call.path.name.as_deref()) else {
        return Err(ApiError::no_route());
    };
    let eviction = parse_body(call, body)?;
    check_type(&eviction)?;
    if meta_str(&eviction, "name").unwrap_or("") != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    if meta_str(&eviction, "namespace").is_some_and(|ns| !ns.is_empty() && ns != namespace) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut options = match eviction.get("deleteOptions") {
        None | Some(Value::Null) => json!({}),
        Some(options @ Value::Object(_)) => options.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "deleteOptions: must be a DeleteOptions object",
            ))
        }
    };
    let dry_run = propagate_dry_run(&mut options, call.query.dry_run()?)?;
    let eviction = Eviction {
        call,
        name,
        options,
        dry_run,
    };
    eviction.run().await?;
    Ok(created_status())
}

/// Upstream accepts an `Eviction` of policy/v1 and of policy/v1beta1 (the two are the same);
/// a body without `apiVersion`/`kind` is taken as one.
fn check_type(eviction: &Value) -> Result<(), ApiError> {
    let api_version = eviction
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !matches!(api_version, "" | "policy/v1" | "policy/v1beta1") {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version (policy/v1)"
        )));
    }
    match eviction.get("kind").and_then(Value::as_str).unwrap_or("") {
        "" | "Eviction" => Ok(()),
        other => Err(ApiError::bad_request(format!(
            "not a Eviction object: *policy.{other}"
        ))),
    }
}

/// Upstream's `propagateDryRun`: the request's `dryRun` goes into the delete options unless they
/// name their own, which must then agree. Whether the eviction is a dry run.
fn propagate_dry_run(options: &mut Value, query_dry_run: bool) -> Result<bool, ApiError> {
    let requested: Vec<String> = if query_dry_run {
        vec!["All".to_owned()]
    } else {
        Vec::new()
    };
    let own: Vec<String> = match options.get("dryRun") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
            ApiError::bad_request("deleteOptions.dryRun: must be a list of strings")
        })?,
    };
    if own.is_empty() {
        if let Some(fields) = options.as_object_mut() {
            fields.insert("dryRun".into(), Value::from(requested.clone()));
        }
        return Ok(!requested.is_empty());
    }
    if !requested.is_empty() && requested != own {
        // Upstream returns a plain error here, which the API server reports without a reason.
        return Err(ApiError::unknown(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Non-matching dry-run options in request and content: [{}] and [{}]",
                requested.join(" "),
                own.join(" ")
            ),
        ));
    }
    Ok(true)
}

/// What the pod's state alone decides (upstream's `canIgnorePDB` and
/// `shouldEnforceResourceVersion`).
#[derive(Debug, PartialEq, Eq)]
enum PodGate {
    /// Pending, finished or already terminating: deleted without asking a budget. A pending
    /// pod's deletion is pinned to the version read, so that it cannot have become ready (and
    /// counted by a budget) in between.
    Delete { pin_version: bool },
    /// Its budget decides.
    AskBudget,
}

fn pod_gate(pod: &Value) -> PodGate {
    let terminating = meta_str(pod, "deletionTimestamp").is_some();
    match pod.pointer("/status/phase").and_then(Value::as_str) {
        Some("Succeeded" | "Failed") => PodGate::Delete { pin_version: false },
        _ if terminating => PodGate::Delete { pin_version: false },
        Some("Pending") => PodGate::Delete { pin_version: true },
        _ => PodGate::AskBudget,
    }
}

/// What the budgets selecting a pod decide.
#[derive(Debug, PartialEq, Eq)]
enum BudgetPlan {
    /// No budget selects the pod: delete it.
    Unguarded,
    /// More than one does: upstream refuses with a 500.
    Several,
    /// The pod is not ready, so it counts towards no budget: delete it without taking a
    /// disruption, pinned to the version read (so it cannot have become ready meanwhile).
    Unhealthy { budget: String },
    /// Take one disruption from this budget, then delete.
    TakeDisruption { budget: String },
}

/// Decides over the budgets of the pod's namespace (upstream's `getPodDisruptionBudgets` and the
/// unhealthy-pod rules of `unhealthyPodEvictionPolicy`).
fn budget_plan(pod: &Value, budgets: &[Value]) -> BudgetPlan {
    let selecting: Vec<&Value> = budgets.iter().filter(|b| selects(b, pod)).collect();
    let budget = match selecting.as_slice() {
        [] => return BudgetPlan::Unguarded,
        [one] => *one,
        _ => return BudgetPlan::Several,
    };
    let name = meta_str(budget, "name").unwrap_or("").to_owned();
    if !is_ready(pod) {
        let policy = budget
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str);
        if policy == Some("AlwaysAllow") {
            return BudgetPlan::Unhealthy { budget: name };
        }
        // `IfHealthyBudget`, the default: only while the application is not disrupted.
        let current = status_int(budget, "currentHealthy");
        let desired = status_int(budget, "desiredHealthy");
        if current >= desired && desired > 0 {
            return BudgetPlan::Unhealthy { budget: name };
        }
    }
    BudgetPlan::TakeDisruption { budget: name }
}

/// Whether `budget` selects `pod`: policy/v1's selector, where `null` selects nothing, `{}`
/// every pod, and a selector that does not parse nothing.
fn selects(budget: &Value, pod: &Value) -> bool {
    let selector = budget.pointer("/spec/selector").unwrap_or(&Value::Null);
    LabelSelector::from_label_selector(selector).is_ok_and(|s| s.matches_object(pod))
}

/// The pod's `Ready` condition is true (upstream's `IsPodReady`).
fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn status_int(budget: &Value, field: &str) -> i64 {
    budget
        .get("status")
        .and_then(|s| s.get(field))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Why a budget refuses to give up a disruption (upstream's `checkAndDecrement`).
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// The disruption controller has not yet worked out the budget's current spec.
    Unobserved,
    Negative,
    TooManyDisrupted,
    NoneLeft {
        desired: i64,
        current: i64,
    },
}

impl Refusal {
    fn into_error(self, budget: &str) -> ApiError {
        let subject = Subject {
            group: "policy",
            resource: "poddisruptionbudget",
            name: budget,
        };
        match self {
            Refusal::Unobserved => processing(budget),
            Refusal::Negative => {
                ApiError::forbidden(subject, "pdb disruptions allowed is negative")
            }
            Refusal::TooManyDisrupted => ApiError::forbidden(
                subject,
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ),
            Refusal::NoneLeft { desired, current } => violation(
                0,
                format!(
                    "The disruption budget {budget} needs {desired} healthy pods and has {current} currently"
                ),
            ),
        }
    }
}

/// The 429 for a budget the server has not caught up with; clients retry after 10 s.
fn processing(budget: &str) -> ApiError {
    violation(
        10,
        format!("The disruption budget {budget} is still being processed by the server."),
    )
}

fn violation(retry_after: i32, cause: String) -> ApiError {
    ApiError::too_many_requests(
        VIOLATION,
        retry_after,
        vec![StatusCause {
            reason: Some("DisruptionBudget".into()),
            message: Some(cause),
            field: None,
        }],
    )
}

/// Takes one disruption from `budget` for the pod `pod` at `now`: the budget with
/// `disruptionsAllowed` one lower (and `DisruptionAllowed` false when none is left, upstream's
/// `UpdateDisruptionAllowedCondition`) and the pod in `disruptedPods`; or why not.
fn take_disruption(budget: &Value, pod: &str, now: &str) -> Result<Value, Refusal> {
    let generation = budget
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let observed = status_int(budget, "observedGeneration");
    if observed < generation {
        return Err(Refusal::Unobserved);
    }
    let allowed = status_int(budget, "disruptionsAllowed");
    if allowed < 0 {
        return Err(Refusal::Negative);
    }
    let disrupted = budget
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |pods| pods.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(Refusal::TooManyDisrupted);
    }
    if allowed == 0 {
        return Err(Refusal::NoneLeft {
            desired: status_int(budget, "desiredHealthy"),
            current: status_int(budget, "currentHealthy"),
        });
    }
    let mut taken = budget.clone();
    let status = taken
        .as_object_mut()
        .map(|b| b.entry("status").or_insert_with(|| json!({})));
    let Some(status) = status.and_then(Value::as_object_mut) else {
        return Err(Refusal::Negative);
    };
    status.insert("disruptionsAllowed".into(), Value::from(allowed - 1));
    if allowed == 1 {
        set_insufficient(status, observed, now);
    }
    let pods = status.entry("disruptedPods").or_insert_with(|| json!({}));
    if !pods.is_object() {
        *pods = json!({});
    }
    if let Some(pods) = pods.as_object_mut() {
        pods.insert(pod.to_owned(), Value::from(now));
    }
    Ok(taken)
}

/// `DisruptionAllowed` false for `InsufficientPods`, as apimachinery's `SetStatusCondition`
/// writes it: the transition time moves only when the status changes.
fn set_insufficient(status: &mut serde_json::Map<String, Value>, observed: i64, now: &str) {
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(conditions) = conditions.as_array_mut() else {
        return;
    };
    let existing = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed"));
    let since = existing
        .map(|i| &conditions[i])
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("False"))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| Value::from(now));
    let mut condition = json!({
        "type": "DisruptionAllowed",
        "status": "False",
        "lastTransitionTime": since,
        "reason": "InsufficientPods",
        "message": "",
    });
    if observed != 0 {
        condition["observedGeneration"] = Value::from(observed);
    }
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// The pod's `DisruptionTarget` condition an eviction sets before it deletes.
fn disruption_target() -> Value {
    json!({
        "type": "DisruptionTarget",
        "status": "True",
        "lastProbeTime": null,
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    })
}

/// One eviction request in progress.
struct Eviction<'c, 'a> {
    call: &'c Call<'a>,
    name: &'c str,
    /// The eviction's `DeleteOptions`, with the request's `dryRun` propagated.
    options: Value,
    dry_run: bool,
}

impl Eviction<'_, '_> {
    async fn run(&self) -> Result<(), ApiError> {
        let client_pinned = pinned_version(&self.options).is_some();
        // A pod that needs no budget is deleted at once; a conflict (it changed under us) is
        // tried again from a fresh read, unless the client pinned the version itself.
        let mut attempt = 0;
        let pod = loop {
            attempt += 1;
            let (_, pod) = crud::read(self.call, self.name).await?;
            let PodGate::Delete { pin_version } = pod_gate(&pod) else {
                break pod;
            };
            let mut options = self.options.clone();
            if pin_version && !client_pinned {
                pin(&mut options, &pod);
            }
            match self.mark_and_delete(options).await {
                Err(err) if is_conflict(&err) && !client_pinned && attempt < RETRY_STEPS => {
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                done => return done,
            }
        };
        let budgets = self.budgets().await?;
        let mut options = self.options.clone();
        let unhealthy = match budget_plan(&pod, &budgets) {
            BudgetPlan::Unguarded => None,
            BudgetPlan::Several => {
                return Err(ApiError::unknown(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    SEVERAL_BUDGETS,
                ))
            }
            BudgetPlan::Unhealthy { budget } => {
                pin(&mut options, &pod);
                Some(budget)
            }
            BudgetPlan::TakeDisruption { budget } => {
                let listed = budgets
                    .iter()
                    .find(|b| meta_str(b, "name") == Some(budget.as_str()));
                self.take_from_budget(&budget, listed).await?;
                None
            }
        };
        match (self.mark_and_delete(options).await, unhealthy) {
            // The unready pod changed since it was read (it may be ready now): the client
            // should ask again.
            (Err(err), Some(budget)) if is_conflict(&err) && !client_pinned => {
                Err(processing(&budget))
            }
            (result, _) => result,
        }
    }

    /// The budgets of the pod's namespace, as stored.
    async fn budgets(&self) -> Result<Vec<Value>, ApiError> {
        let resource = self.budget_resource()?;
        let prefix = objects::collection_prefix(&resource, self.call.namespace());
        let page = self
            .call
            .state
            .store
            .list(&prefix, k3rs_store::ListOptions::default())
            .await
            .map_err(ApiError::internal)?;
        page.items
            .iter()
            .map(|kv| objects::decode(&resource, kv))
            .collect()
    }

    fn budget_resource(&self) -> Result<Arc<ResourceInfo>, ApiError> {
        self.call
            .state
            .registry
            .find("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| {
                ApiError::internal("the poddisruptionbudgets resource is not registered")
            })
    }

    /// Takes one disruption from the budget `name` for this pod: a status write guarded by the
    /// budget's resourceVersion, worked out again from a fresh read when another writer (the
    /// disruption controller, another eviction) got there first. A dry run only checks.
    async fn take_from_budget(&self, name: &str, listed: Option<&Value>) -> Result<(), ApiError> {
        let now = objects::now_rfc3339();
        if self.dry_run {
            let budget = listed.ok_or_else(|| ApiError::internal("the budget went away"))?;
            return take_disruption(budget, self.name, &now)
                .map(drop)
                .map_err(|refusal| refusal.into_error(name));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(LOOPBACK_AGENT),
        );
        let status_call = self.scoped(self.budget_resource()?, name, Some("status"), &headers);
        let pod = self.name;
        crud::write(
            &status_call,
            name,
            Precondition::None,
            Ownership::Track,
            |budget| take_disruption(budget, pod, &now).map_err(|r| r.into_error(name)),
        )
        .await
        .map(drop)
    }

    /// Upstream's `addConditionAndDeletePod`: marks the pod `DisruptionTarget` (checking the
    /// delete preconditions against the pod as stored; the mark moves its resourceVersion, so
    /// a pinned version follows it), then deletes it with `options`.
    async fn mark_and_delete(&self, mut options: Value) -> Result<(), ApiError> {
        let pods = self.call.resource.clone();
        let headers = HeaderMap::new();
        if !self.dry_run {
            let status_call = self.scoped(pods.clone(), self.name, Some("status"), &headers);
            let uid = options
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty());
            let version = pinned_version(&options);
            let subject = Subject {
                group: "",
                resource: "Pod",
                name: self.name,
            };
            let now = objects::now_rfc3339();
            // The pod's own managed fields stay as they are: upstream writes the condition
            // straight to storage, past the field manager.
            let marked = crud::write(
                &status_call,
                self.name,
                Precondition::None,
                Ownership::Applied,
                |pod| {
                    check_preconditions(pod, uid, version.as_deref())
                        .map_err(|why| ApiError::conflict(subject, &why.to_string()))?;
                    let mut pod = pod.clone();
                    update_pod_condition(&mut pod, disruption_target(), &now);
                    Ok(pod)
                },
            )
            .await?;
            if version.is_some() {
                if let Some(moved) = meta_str(&marked, "resourceVersion") {
                    options["preconditions"]["resourceVersion"] = Value::from(moved);
                }
            }
        }
        let query = if self.dry_run {
            Query::parse(Some("dryRun=All"))
        } else {
            Query::default()
        };
        let mut delete_call = self.scoped(pods, self.name, None, &headers);
        delete_call.query = query;
        let body = serde_json::to_vec(&options).map_err(ApiError::internal)?;
        crud::delete(&delete_call, self.name, &body).await.map(drop)
    }

    /// A call on `resource`'s object `name` (or its `subresource`) in the request's namespace,
    /// for the writes an eviction makes on its own account.
    fn scoped<'h>(
        &self,
        resource: Arc<ResourceInfo>,
        name: &str,
        subresource: Option<&str>,
        headers: &'h HeaderMap,
    ) -> Call<'h>
    where
        Self: 'h,
    {
        Call {
            state: self.call.state,
            path: ResourcePath {
                group: resource.group.to_owned(),
                version: resource.version.to_owned(),
                namespace: self.call.path.namespace.clone(),
                resource: resource.plural.to_owned(),
                name: Some(name.to_owned()),
                subresource: subresource.map(str::to_owned),
            },
            resource,
            query: Query::default(),
            format: Format::Json,
            headers,
            warnings: Default::default(),
        }
    }
}

/// The delete options' `preconditions.resourceVersion`, when set.
fn pinned_version(options: &Value) -> Option<String> {
    options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Pins the deletion to the pod's resourceVersion as read.
fn pin(options: &mut Value, pod: &Value) {
    let version = meta_str(pod, "resourceVersion").unwrap_or("").to_owned();
    if !options.get("preconditions").is_some_and(Value::is_object) {
        options["preconditions"] = json!({});
    }
    options["preconditions"]["resourceVersion"] = Value::from(version);
}

/// The delete preconditions checked against the pod as stored, in upstream's words.
fn check_preconditions(
    pod: &Value,
    uid: Option<&str>,
    version: Option<&str>,
) -> Result<(), PreconditionFailed> {
    if let Some(uid) = uid {
        let actual = meta_str(pod, "uid").unwrap_or("");
        if uid != actual {
            return Err(PreconditionFailed::Uid {
                expected: uid.to_owned(),
                actual: actual.to_owned(),
            });
        }
    }
    if let Some(version) = version.filter(|v| !v.is_empty()) {
        let actual = meta_str(pod, "resourceVersion").unwrap_or("");
        if version != actual {
            return Err(PreconditionFailed::ResourceVersion {
                expected: version.to_owned(),
                actual: actual.to_owned(),
            });
        }
    }
    Ok(())
}

/// A delete precondition the stored pod does not meet, in upstream's words (its 409).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum PreconditionFailed {
    #[error("the UID in the precondition ({expected}) does not match the UID in record ({actual}). The object might have been deleted and then recreated")]
    Uid { expected: String, actual: String },
    #[error("the ResourceVersion in the precondition ({expected}) does not match the ResourceVersion in record ({actual}). The object might have been modified")]
    ResourceVersion { expected: String, actual: String },
}

fn is_conflict(err: &ApiError) -> bool {
    err.code == StatusCode::CONFLICT && err.reason == "Conflict"
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn pod(phase: &str, ready: bool, deleting: bool) -> Value {
        let mut pod = json!({
            "metadata": {"name": "web-1", "labels": {"app": "web"}, "resourceVersion": "7"},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]}
        });
        if deleting {
            pod["metadata"]["deletionTimestamp"] = Value::from(NOW);
        }
        pod
    }

    fn budget(name: &str, spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": name, "generation": 1}, "spec": spec, "status": status})
    }

    fn healthy(allowed: i64) -> Value {
        json!({"observedGeneration": 1, "currentHealthy": 3, "desiredHealthy": 2,
               "disruptionsAllowed": allowed, "expectedPods": 3})
    }

    #[test]
    fn finished_pending_and_terminating_pods_need_no_budget() {
        let cases = [
            (
                pod("Succeeded", false, false),
                PodGate::Delete { pin_version: false },
            ),
            (
                pod("Failed", false, false),
                PodGate::Delete { pin_version: false },
            ),
            (
                pod("Pending", false, false),
                PodGate::Delete { pin_version: true },
            ),
            (
                pod("Pending", false, true),
                PodGate::Delete { pin_version: false },
            ),
            (
                pod("Running", true, true),
                PodGate::Delete { pin_version: false },
            ),
            (pod("Running", true, false), PodGate::AskBudget),
            (pod("Running", false, false), PodGate::AskBudget),
            (pod("Unknown", false, false), PodGate::AskBudget),
        ];
        for (pod, gate) in cases {
            assert_eq!(pod_gate(&pod), gate, "{pod}");
        }
    }

    #[test]
    fn the_one_selecting_budget_decides() {
        let ready = pod("Running", true, false);
        let web = json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}});
        let db = json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}});
        let take = |name: &str| BudgetPlan::TakeDisruption {
            budget: name.to_owned(),
        };
        assert_eq!(budget_plan(&ready, &[]), BudgetPlan::Unguarded);
        assert_eq!(
            budget_plan(&ready, &[budget("db", db.clone(), healthy(1))]),
            BudgetPlan::Unguarded
        );
        assert_eq!(
            budget_plan(
                &ready,
                &[
                    budget("db", db, healthy(1)),
                    budget("web", web.clone(), healthy(1))
                ]
            ),
            take("web")
        );
        // policy/v1: `{}` selects every pod, a missing selector none, a broken one none.
        let all = budget(
            "all",
            json!({"minAvailable": 1, "selector": {}}),
            healthy(1),
        );
        let none = budget("none", json!({"minAvailable": 1}), healthy(1));
        let broken = budget(
            "broken",
            json!({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "app", "operator": "Frob"}]}}),
            healthy(1),
        );
        assert_eq!(
            budget_plan(&ready, &[none.clone(), broken.clone()]),
            BudgetPlan::Unguarded
        );
        assert_eq!(
            budget_plan(&ready, &[none, broken, all.clone()]),
            take("all")
        );
        assert_eq!(
            budget_plan(&ready, &[all, budget("web", web, healthy(0))]),
            BudgetPlan::Several
        );
    }

    #[test]
    fn unready_pods_go_without_a_disruption_while_the_budget_is_healthy_or_always_allows() {
        let unready = pod("Running", false, false);
        let spec = |policy: Option<&str>| {
            let mut spec = json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}});
            if let Some(policy) = policy {
                spec["unhealthyPodEvictionPolicy"] = Value::from(policy);
            }
            spec
        };
        let disrupted = json!({"observedGeneration": 1, "currentHealthy": 1, "desiredHealthy": 2,
                               "disruptionsAllowed": 0});
        let unhealthy = BudgetPlan::Unhealthy {
            budget: "web".into(),
        };
        let take = BudgetPlan::TakeDisruption {
            budget: "web".into(),
        };
        for policy in [None, Some("IfHealthyBudget")] {
            assert_eq!(
                budget_plan(&unready, &[budget("web", spec(policy), healthy(1))]),
                unhealthy
            );
            assert_eq!(
                budget_plan(&unready, &[budget("web", spec(policy), disrupted.clone())]),
                take
            );
            // Nothing desired yet (the controller has not counted): the budget decides.
            assert_eq!(
                budget_plan(&unready, &[budget("web", spec(policy), json!({}))]),
                take
            );
        }
        assert_eq!(
            budget_plan(
                &unready,
                &[budget("web", spec(Some("AlwaysAllow")), disrupted.clone())]
            ),
            unhealthy
        );
        // A ready pod is always guarded.
        assert_eq!(
            budget_plan(
                &pod("Running", true, false),
                &[budget("web", spec(Some("AlwaysAllow")), disrupted)]
            ),
            take
        );
    }

    #[test]
    fn taking_a_disruption_records_the_pod() {
        let before = budget(
            "web",
            json!({"minAvailable": 1}),
            json!({"observedGeneration": 1, "currentHealthy": 3, "desiredHealthy": 1,
                   "disruptionsAllowed": 2, "expectedPods": 3,
                   "conditions": [{"type": "DisruptionAllowed", "status": "True",
                                   "reason": "SufficientPods", "message": "",
                                   "lastTransitionTime": "2025-01-01T00:00:00Z"}]}),
        );
        let after = take_disruption(&before, "web-1", NOW).unwrap();
        assert_eq!(after["status"]["disruptionsAllowed"], 1);
        assert_eq!(after["status"]["disruptedPods"], json!({"web-1": NOW}));
        assert_eq!(
            after["status"]["conditions"],
            before["status"]["conditions"]
        );

        // The last one: the condition turns false, and stays so with its time.
        let last = take_disruption(&after, "web-2", NOW).unwrap();
        assert_eq!(last["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            last["status"]["disruptedPods"],
            json!({"web-1": NOW, "web-2": NOW})
        );
        assert_eq!(
            last["status"]["conditions"],
            json!([{"type": "DisruptionAllowed", "status": "False", "observedGeneration": 1,
                    "lastTransitionTime": NOW, "reason": "InsufficientPods", "message": ""}])
        );
        let mut again = last.clone();
        again["status"]["disruptionsAllowed"] = Value::from(1);
        let later = take_disruption(&again, "web-3", "2026-01-01T00:05:00Z").unwrap();
        assert_eq!(later["status"]["conditions"][0]["lastTransitionTime"], NOW);
    }

    #[test]
    fn budgets_refuse_as_upstream() {
        let status = |allowed: i64, observed: i64| {
            json!({"observedGeneration": observed, "currentHealthy": 2, "desiredHealthy": 2,
                   "disruptionsAllowed": allowed})
        };
        let spec = json!({"minAvailable": 2});
        let refused = |status: Value| {
            take_disruption(&budget("web", spec.clone(), status), "web-1", NOW).unwrap_err()
        };
        assert_eq!(refused(status(1, 0)), Refusal::Unobserved);
        assert_eq!(refused(status(-1, 1)), Refusal::Negative);
        assert_eq!(
            refused(status(0, 1)),
            Refusal::NoneLeft {
                desired: 2,
                current: 2
            }
        );
        let crowded: serde_json::Map<String, Value> = (0..=MAX_DISRUPTED_PODS)
            .map(|i| (format!("p{i}"), Value::from(NOW)))
            .collect();
        let mut full = status(1, 1);
        full["disruptedPods"] = Value::Object(crowded);
        assert_eq!(refused(full), Refusal::TooManyDisrupted);
    }

    #[test]
    fn refusals_are_upstreams_statuses() {
        let none_left = Refusal::NoneLeft {
            desired: 2,
            current: 2,
        }
        .into_error("web");
        assert_eq!(
            (
                none_left.code.as_u16(),
                none_left.reason,
                none_left.message.as_str()
            ),
            (429, "TooManyRequests", VIOLATION)
        );
        let details = none_left.details.unwrap();
        assert_eq!(details.retry_after_seconds, None);
        let cause = &details.causes.unwrap()[0];
        assert_eq!(cause.reason.as_deref(), Some("DisruptionBudget"));
        assert_eq!(
            cause.message.as_deref(),
            Some("The disruption budget web needs 2 healthy pods and has 2 currently")
        );

        let unobserved = Refusal::Unobserved.into_error("web");
        let details = unobserved.details.unwrap();
        assert_eq!(details.retry_after_seconds, Some(10));
        assert_eq!(
            details.causes.unwrap()[0].message.as_deref(),
            Some("The disruption budget web is still being processed by the server.")
        );

        let negative = Refusal::Negative.into_error("web");
        assert_eq!(
            (negative.code.as_u16(), negative.message.as_str()),
            (
                403,
                "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
            )
        );
    }

    #[test]
    fn dry_run_comes_from_the_request_or_the_options() {
        let mut options = json!({});
        assert!(propagate_dry_run(&mut options, true).unwrap());
        assert_eq!(options["dryRun"], json!(["All"]));
        let mut options = json!({"gracePeriodSeconds": 5});
        assert!(!propagate_dry_run(&mut options, false).unwrap());
        let mut options = json!({"dryRun": ["All"]});
        assert!(propagate_dry_run(&mut options, false).unwrap());
        assert!(propagate_dry_run(&mut options, true).unwrap());
        let mut options = json!({"dryRun": ["Some"]});
        let err = propagate_dry_run(&mut options, true).unwrap_err();
        assert_eq!(
            (err.code.as_u16(), err.reason, err.message.as_str()),
            (
                500,
                "",
                "Non-matching dry-run options in request and content: [All] and [Some]"
            )
        );
    }

    #[test]
    fn evictions_of_both_policy_versions_are_accepted() {
        for ok in [
            json!({"apiVersion": "policy/v1", "kind": "Eviction"}),
            json!({"apiVersion": "policy/v1beta1", "kind": "Eviction"}),
            json!({"metadata": {"name": "web"}}),
        ] {
            assert!(check_type(&ok).is_ok(), "{ok}");
        }
        let err = check_type(&json!({"apiVersion": "apps/v1", "kind": "Eviction"})).unwrap_err();
        assert_eq!(
            err.message,
            "the API version in the data (apps/v1) does not match the expected API version (policy/v1)"
        );
        let err = check_type(&json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}))
            .unwrap_err();
        assert_eq!(
            err.message,
            "not a Eviction object: *policy.PodDisruptionBudget"
        );
    }

    #[test]
    fn preconditions_are_checked_against_the_stored_pod() {
        let pod = json!({"metadata": {"uid": "u1", "resourceVersion": "7"}});
        assert!(check_preconditions(&pod, Some("u1"), Some("7")).is_ok());
        assert!(check_preconditions(&pod, None, Some("")).is_ok());
        assert_eq!(
            check_preconditions(&pod, Some("u2"), None)
                .unwrap_err()
                .to_string(),
            "the UID in the precondition (u2) does not match the UID in record (u1). The object might have been deleted and then recreated"
        );
        assert_eq!(
            check_preconditions(&pod, None, Some("6"))
                .unwrap_err()
                .to_string(),
            "the ResourceVersion in the precondition (6) does not match the ResourceVersion in record (7). The object might have been modified"
        );
        let mut options = json!({"gracePeriodSeconds": 0});
        pin(&mut options, &pod);
        assert_eq!(pinned_version(&options).as_deref(), Some("7"));
    }

    #[test]
    fn the_pod_is_marked_as_a_disruption_target() {
        let mut marked = pod("Running", true, false);
        update_pod_condition(&mut marked, disruption_target(), NOW);
        let conditions = marked["status"]["conditions"].as_array().unwrap();
        assert_eq!(
            conditions[1],
            json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                   "lastTransitionTime": NOW, "reason": "EvictionByEvictionAPI",
                   "message": "Eviction API: evicting"})
        );
    }
}
