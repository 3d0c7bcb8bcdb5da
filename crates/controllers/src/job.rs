//! The Job controller (upstream's `job_controller.go`): runs a Job's pods to `completions`
//! successes, `parallelism` at a time, in NonIndexed or Indexed mode; replaces failed pods after
//! an exponential back-off until `backoffLimit` or `activeDeadlineSeconds` ends the Job; and
//! reports counts and conditions in the status.
//!
//! A Job's state machine, read from its conditions (never from the event that queued it):
//!
//! ```text
//! Running ──(suspend)──► Suspended ──(resume)──► Running
//! Running ──(completions reached)──► SuccessCriteriaMet ──(no pod left running)──► Complete
//! Running ──(backoff limit / deadline)──► FailureTarget ──(no pod left running)──► Failed
//! ```
//!
//! Counts come from the pods the Job controls, and `status.succeeded`/`status.failed` never go
//! down: a finished pod deleted by someone else is not subtracted. (Upstream additionally holds
//! each pod with the `batch.kubernetes.io/job-tracking` finalizer until it is counted, which
//! also counts pods deleted while still running; k3rs does not, yet.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k3rs_api::LabelSelector;
use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};

use crate::error::Error;
use crate::ownership::claim_pods;
use crate::pod_owner::PodOwners;
use crate::pods;
use crate::replicaset::pod_from_template;
use crate::Context;
use k3rs_api::well_known;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::runner::Action;
use k3rs_runtime::status::Written;

/// The label and annotation that carry an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = well_known::ANNOTATION_JOB_COMPLETION_INDEX;
/// The first delay before a failed pod is replaced (upstream's `DefaultJobPodFailureBackOff`).
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest delay before a failed pod is replaced (`MaxJobPodFailureBackOff`).
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);
/// The most pods one sync creates or deletes (upstream's `MaxPodCreateDeletePerSync`).
const BURST: usize = 500;

const COMPLETE: &str = "Complete";
const FAILED: &str = "Failed";
const FAILURE_TARGET: &str = "FailureTarget";
const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
const SUSPENDED: &str = "Suspended";
const COMPLETIONS_REACHED: &str = "CompletionsReached";
const COMPLETIONS_MESSAGE: &str = "Reached expected number of succeeded pods";
const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
const BACKOFF_MESSAGE: &str = "Job has reached the specified backoff limit";
const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
const DEADLINE_MESSAGE: &str = "Job was active longer than specified deadline";

type Shared = PodOwners<Job>;

/// Registers the controller's handlers and starts its workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    PodOwners::start(
        ctx,
        "job-controller",
        4,
        selects,
        |shared, key| async move { sync(&shared, &key).await },
    )
}

fn selects(job: &Job, pod: &Pod) -> bool {
    let Some(selector) = job.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    LabelSelector::from_typed(Some(selector))
        .ok()
        .filter(|s| !s.is_everything())
        .is_some_and(|s| s.matches(&labels))
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(job) = shared.owners.cache().get(key) else {
        shared.expectations.forget(key);
        return Ok(Action::Done);
    };
    if job.metadata.deletion_timestamp.is_some() || job.spec.is_none() {
        // The garbage collector deletes its pods.
        return Ok(Action::Done);
    }
    let pods_api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    let candidates = shared.pods.cache().in_namespace(&key.namespace);
    let owned = claim_pods(
        &pods_api,
        candidates,
        job.as_ref(),
        |pod| selects(&job, pod),
        |pod| pod.metadata.deletion_timestamp.is_none(),
    )
    .await?;
    if !shared.expectations.satisfied(key) {
        // The pod events that satisfy them queue the Job again.
        return Ok(Action::Done);
    }
    let now = Timestamp::now();
    let plan = plan(&job, &owned, now);

    shared.expectations.expect(
        key,
        plan.create.len(),
        plan.delete.iter().map(|p| p.name_any()),
    );
    let mut failure = None;
    for pod in &plan.delete {
        if let Err(err) = shared.delete_pod(&job, pod).await {
            failure.get_or_insert(err);
        }
    }
    let mut created = 0;
    for (i, index) in plan.create.iter().enumerate() {
        if failure.is_some() {
            // Creates never issued are never observed.
            for _ in i..plan.create.len() {
                shared.expectations.creation_observed(key);
            }
            break;
        }
        match create_pod(shared, &job, &pods_api, *index).await {
            Ok(()) => created += 1,
            Err(err) => {
                shared.expectations.creation_observed(key);
                failure = Some(err);
            }
        }
    }
    let mut status = plan.status;
    // Pods not created are not active.
    let missing = i32::try_from(plan.create.len() - created).unwrap_or(0);
    status.active = Some(status.active.unwrap_or(0) - missing).filter(|a| *a != 0);

    let api: Api<Job> = Api::namespaced(shared.client.clone(), &key.namespace);
    let written = k3rs_runtime::status::write(
        &api,
        &key.name,
        job.status.as_ref(),
        &status,
        &crate::patch_params(),
    )
    .await?;
    match written {
        Written::Gone => return Ok(Action::Done),
        Written::Unchanged => {}
        // A plan's events describe its status change: they go out once it is written.
        Written::Updated(_) => {
            for event in &plan.events {
                match event {
                    JobEvent::Normal(reason, message) => {
                        shared
                            .events
                            .normal(job.as_ref(), reason, (*message).to_owned())
                            .await;
                    }
                    JobEvent::Warning(reason, message) => {
                        shared
                            .events
                            .warning(job.as_ref(), reason, (*message).to_owned())
                            .await;
                    }
                }
            }
        }
    }
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(plan.requeue.map_or(Action::Done, |delay| {
        Action::RequeueAfter(delay.max(Duration::from_secs(1)))
    }))
}

async fn create_pod(
    shared: &Shared,
    job: &Job,
    api: &Api<Pod>,
    index: Option<i32>,
) -> Result<(), Error> {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let pod = job_pod(&template, job, index);
    let params = crate::post_params();
    match api.create(&params, &pod).await {
        Ok(pod) => {
            shared
                .events
                .normal(
                    job,
                    "SuccessfulCreate",
                    format!("Created pod: {}", pod.name_any()),
                )
                .await;
            Ok(())
        }
        Err(err) => {
            shared
                .events
                .warning(job, "FailedCreate", format!("Error creating: {err}"))
                .await;
            Err(err.into())
        }
    }
}

/// A pod of `job` from its template; an Indexed Job's pod carries its index (annotation,
/// label, `JOB_COMPLETION_INDEX`, hostname `<job>-<index>`, name `<job>-<index>-…`).
fn job_pod(template: &PodTemplateSpec, job: &Job, index: Option<i32>) -> Pod {
    let mut pod = pod_from_template(template, job);
    let Some(index) = index else {
        return pod;
    };
    let name = job.name_any();
    let value = index.to_string();
    pod.metadata.generate_name = Some(format!("{name}-{index}-"));
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(COMPLETION_INDEX.into(), value.clone());
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(COMPLETION_INDEX.into(), value);
    if let Some(spec) = pod.spec.as_mut() {
        if spec.hostname.as_deref().is_none_or(str::is_empty) {
            spec.hostname = Some(format!("{name}-{index}"));
        }
        let env = EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                }),
                ..EnvVarSource::default()
            }),
        };
        for container in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            let vars = container.env.get_or_insert_with(Vec::new);
            if !vars.iter().any(|v| v.name == env.name) {
                vars.push(env.clone());
            }
        }
    }
    pod
}

/// An event to record once the status that goes with it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
enum JobEvent {
    Normal(&'static str, &'static str),
    Warning(&'static str, &'static str),
}

/// What one sync does: the pods to delete and create, the status to write, the events that go
/// with it, and when to look again.
#[derive(Debug)]
struct Plan {
    delete: Vec<Arc<Pod>>,
    /// One entry per pod to create: its index for an Indexed Job.
    create: Vec<Option<i32>>,
    status: JobStatus,
    events: Vec<JobEvent>,
    requeue: Option<Duration>,
}

/// The pods of a Job, sorted by what they mean for it.
struct Tally<'a> {
    active: Vec<&'a Arc<Pod>>,
    terminating: usize,
    succeeded: usize,
    failed: usize,
    /// Indexed Jobs: the indexes with a succeeded pod.
    succeeded_indexes: BTreeSet<i32>,
}

fn tally<'a>(pods: &'a [Arc<Pod>], completions: Option<i32>) -> Tally<'a> {
    let mut tally = Tally {
        active: Vec::new(),
        terminating: 0,
        succeeded: 0,
        failed: 0,
        succeeded_indexes: BTreeSet::new(),
    };
    for pod in pods {
        match pods::phase(pod) {
            "Succeeded" => {
                tally.succeeded += 1;
                if let Some(index) = index_of(pod).filter(|i| completions.is_some_and(|c| *i < c)) {
                    tally.succeeded_indexes.insert(index);
                }
            }
            "Failed" => tally.failed += 1,
            _ if pod.metadata.deletion_timestamp.is_some() => tally.terminating += 1,
            _ => tally.active.push(pod),
        }
    }
    tally
}

/// An Indexed Job pod's index (annotation, else label).
fn index_of(pod: &Pod) -> Option<i32> {
    let from = |map: &Option<BTreeMap<String, String>>| {
        map.as_ref()?.get(COMPLETION_INDEX)?.parse::<i32>().ok()
    };
    from(&pod.metadata.annotations)
        .or_else(|| from(&pod.metadata.labels))
        .filter(|i| *i >= 0)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Sets the condition `type_` (keeping its transition time when its status does not change).
fn set_condition(
    status: &mut JobStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let value = if value { "True" } else { "False" };
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != value {
            existing.status = value.into();
            existing.last_transition_time = Some(Time(now));
        }
        existing.last_probe_time = Some(Time(now));
        existing.reason = Some(reason.into());
        existing.message = Some(message.into());
        return;
    }
    conditions.push(JobCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

/// When a pod finished: its containers' last exit, else its last condition change.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    let exits = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    exits.or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .max()
    })
}

/// The delay before the `failures`-th failure in a row is replaced: 10 s, doubling, at most
/// six minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exponent = (failures - 1).min(16);
    BACKOFF_BASE
        .checked_mul(1u32 << exponent)
        .map_or(BACKOFF_MAX, |d| d.min(BACKOFF_MAX))
}

/// How long until a new pod may be created: the back-off after the failures since the last
/// success, counted from the last failure (upstream's `backoffRecord`, recomputed from pods).
fn backoff_remaining(pods: &[Arc<Pod>], now: Timestamp) -> Duration {
    let last_success = pods
        .iter()
        .filter(|p| pods::phase(p) == "Succeeded")
        .filter_map(|p| finished_at(p))
        .max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| pods::phase(p) == "Failed")
        .filter_map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last) = failures.iter().max() else {
        return Duration::ZERO;
    };
    let delay = backoff_delay(u32::try_from(failures.len()).unwrap_or(u32::MAX));
    let elapsed = now.duration_since(*last);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

/// `"1,3-5,7"`: the sorted indexes as intervals.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((start, end)) if end + 1 == i => Some((start, i)),
            Some(done) => {
                parts.push(interval(done));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(done) = run {
        parts.push(interval(done));
    }
    parts.join(",")
}

fn interval((start, end): (i32, i32)) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start}-{end}")
    }
}

/// The indexes of `"1,3-5"`; what does not parse is skipped.
fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut indexes = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (start, end) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(start), Ok(end)) = (start.parse::<i32>(), end.parse::<i32>()) {
            indexes.extend(start..=end);
        }
    }
    indexes
}

/// Decides one sync of `job` over its `pods` at `now` (pure: no I/O).
fn plan(job: &Job, pods: &[Arc<Pod>], now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let previous = job.status.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let tally = tally(pods, completions);
    let mut status = previous.clone();
    let mut plan = Plan {
        delete: Vec::new(),
        create: Vec::new(),
        status: JobStatus::default(),
        events: Vec::new(),
        requeue: None,
    };

    // Counts only ever grow: a finished pod someone deleted stays counted.
    let mut succeeded_indexes = parse_indexes(previous.completed_indexes.as_deref().unwrap_or(""));
    succeeded_indexes.extend(tally.succeeded_indexes.iter().copied());
    if let Some(c) = completions {
        succeeded_indexes.retain(|i| *i < c);
    }
    let succeeded = if indexed {
        count(succeeded_indexes.len())
    } else {
        count(tally.succeeded)
    }
    .max(previous.succeeded.unwrap_or(0));
    let failed = count(tally.failed).max(previous.failed.unwrap_or(0));
    status.succeeded = Some(succeeded).filter(|n| *n > 0);
    status.failed = Some(failed).filter(|n| *n > 0);
    if indexed {
        status.completed_indexes =
            Some(format_indexes(&succeeded_indexes)).filter(|s| !s.is_empty());
    }
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());

    let finished =
        condition(&previous, COMPLETE).is_some() || condition(&previous, FAILED).is_some();
    let failure_target = condition(&previous, FAILURE_TARGET).map(|c| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    });
    let success_met = condition(&previous, SUCCESS_CRITERIA_MET).is_some();
    let suspend = spec.suspend == Some(true);

    let mut active: Vec<&Arc<Pod>> = tally.active.clone();
    let mut terminating = tally.terminating;
    let delete_all = |plan: &mut Plan, active: &mut Vec<&Arc<Pod>>, terminating: &mut usize| {
        *terminating += active.len();
        plan.delete.extend(active.drain(..).take(BURST).cloned());
    };

    if finished {
        // A finished Job keeps no running pods (someone may have added one).
        delete_all(&mut plan, &mut active, &mut terminating);
    } else if let Some((reason, message)) = failure_target {
        delete_all(&mut plan, &mut active, &mut terminating);
        if terminating == 0 {
            set_condition(&mut status, FAILED, true, &reason, &message, now);
            plan.events.push(failure_event(&reason));
        }
    } else if success_met {
        delete_all(&mut plan, &mut active, &mut terminating);
        if terminating == 0 {
            complete(&mut status, &mut plan, now);
        }
    } else if suspend {
        delete_all(&mut plan, &mut active, &mut terminating);
        if condition(&previous, SUSPENDED).is_none() {
            set_condition(
                &mut status,
                SUSPENDED,
                true,
                "JobSuspended",
                "Job suspended",
                now,
            );
            plan.events
                .push(JobEvent::Normal("Suspended", "Job suspended"));
        }
    } else {
        if condition(&previous, SUSPENDED).is_some() {
            set_condition(
                &mut status,
                SUSPENDED,
                false,
                "JobResumed",
                "Job resumed",
                now,
            );
            plan.events.push(JobEvent::Normal("Resumed", "Job resumed"));
            // The deadline counts from the resume.
            status.start_time = Some(Time(now));
        }
        let start = status.start_time.get_or_insert(Time(now)).0;
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let on_failure = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure");
        let deadline = spec
            .active_deadline_seconds
            .and_then(|s| start.checked_add(jiff::SignedDuration::from_secs(s)).ok());
        let failure = if failed > backoff_limit
            || (on_failure && past_backoff_limit_on_failure(&active, backoff_limit))
        {
            Some((BACKOFF_LIMIT_EXCEEDED, BACKOFF_MESSAGE))
        } else if deadline.is_some_and(|d| d <= now) {
            Some((DEADLINE_EXCEEDED, DEADLINE_MESSAGE))
        } else {
            None
        };
        let done = match completions {
            Some(c) => succeeded >= c,
            // Without completions the first success ends the Job once no pod runs.
            None => succeeded > 0 && active.is_empty(),
        };
        if let Some((reason, message)) = failure {
            set_condition(&mut status, FAILURE_TARGET, true, reason, message, now);
            delete_all(&mut plan, &mut active, &mut terminating);
            if terminating == 0 {
                set_condition(&mut status, FAILED, true, reason, message, now);
                plan.events.push(failure_event(reason));
            }
        } else if done {
            set_condition(
                &mut status,
                SUCCESS_CRITERIA_MET,
                true,
                COMPLETIONS_REACHED,
                COMPLETIONS_MESSAGE,
                now,
            );
            delete_all(&mut plan, &mut active, &mut terminating);
            if terminating == 0 {
                complete(&mut status, &mut plan, now);
            }
        } else {
            manage_pods(
                &mut plan,
                &mut active,
                &mut terminating,
                ManageInput {
                    pods,
                    indexed,
                    completions,
                    parallelism,
                    succeeded,
                    succeeded_indexes: &succeeded_indexes,
                    replace_terminating: spec.pod_replacement_policy.as_deref() != Some("Failed"),
                    now,
                },
            );
            if let Some(deadline) = deadline {
                let left = Duration::try_from(deadline.duration_since(now)).unwrap_or_default();
                plan.requeue = Some(plan.requeue.map_or(left, |r| r.min(left)));
            }
        }
    }

    status.active = Some(count(active.len() + plan.create.len())).filter(|n| *n > 0);
    status.ready = Some(count(active.iter().filter(|p| pods::is_ready(p)).count()));
    status.terminating = Some(count(terminating));
    plan.status = status;
    plan
}

fn failure_event(reason: &str) -> JobEvent {
    if reason == DEADLINE_EXCEEDED {
        JobEvent::Warning(DEADLINE_EXCEEDED, DEADLINE_MESSAGE)
    } else {
        JobEvent::Warning(BACKOFF_LIMIT_EXCEEDED, BACKOFF_MESSAGE)
    }
}

fn complete(status: &mut JobStatus, plan: &mut Plan, now: Timestamp) {
    set_condition(
        status,
        COMPLETE,
        true,
        COMPLETIONS_REACHED,
        COMPLETIONS_MESSAGE,
        now,
    );
    status.completion_time = Some(Time(now));
    plan.events
        .push(JobEvent::Normal("Completed", "Job completed"));
}

/// `restartPolicy: OnFailure`: the restarts of the running pods count as failures.
fn past_backoff_limit_on_failure(active: &[&Arc<Pod>], backoff_limit: i32) -> bool {
    let restarts: i32 = active
        .iter()
        .filter(|p| matches!(pods::phase(p), "Running" | "Pending"))
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if backoff_limit == 0 {
        restarts > 0
    } else {
        restarts >= backoff_limit
    }
}

struct ManageInput<'a> {
    pods: &'a [Arc<Pod>],
    indexed: bool,
    completions: Option<i32>,
    parallelism: i32,
    succeeded: i32,
    succeeded_indexes: &'a BTreeSet<i32>,
    replace_terminating: bool,
    now: Timestamp,
}

/// Creates or deletes pods so that the right number run (upstream's `manageJob`).
fn manage_pods(
    plan: &mut Plan,
    active: &mut Vec<&Arc<Pod>>,
    terminating: &mut usize,
    input: ManageInput<'_>,
) {
    let wanted = match input.completions {
        Some(c) => (c - input.succeeded).clamp(0, input.parallelism),
        None if input.succeeded > 0 => 0,
        None => input.parallelism,
    };
    let wanted = usize::try_from(wanted).unwrap_or(0);
    if input.indexed {
        // Pods of an index that already succeeded, or a second pod of a running index, go.
        let mut seen = BTreeSet::new();
        let (keep, extra): (Vec<&Arc<Pod>>, Vec<&Arc<Pod>>) = active.iter().partition(|p| {
            index_of(p).is_some_and(|i| {
                !input.succeeded_indexes.contains(&i)
                    && input.completions.is_some_and(|c| i < c)
                    && seen.insert(i)
            })
        });
        *terminating += extra.len();
        plan.delete.extend(extra.into_iter().cloned());
        *active = keep;
    }
    if active.len() > wanted {
        // Not ready before ready, newest first.
        let mut ranked = active.clone();
        ranked.sort_by_key(|p| {
            let created = p
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second());
            (pods::is_ready(p), std::cmp::Reverse(created))
        });
        let doomed: Vec<&Arc<Pod>> = ranked.into_iter().take(active.len() - wanted).collect();
        active.retain(|p| !doomed.iter().any(|d| Arc::ptr_eq(d, p)));
        *terminating += doomed.len();
        plan.delete.extend(doomed.into_iter().cloned());
        return;
    }
    let mut room = wanted - active.len();
    if !input.replace_terminating {
        room = room.saturating_sub(*terminating);
    }
    if room == 0 {
        return;
    }
    let backoff = backoff_remaining(input.pods, input.now);
    if !backoff.is_zero() {
        plan.requeue = Some(backoff);
        return;
    }
    let room = room.min(BURST);
    if input.indexed {
        let running: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
        let completions = input.completions.unwrap_or(0);
        plan.create.extend(
            (0..completions)
                .filter(|i| !input.succeeded_indexes.contains(i) && !running.contains(i))
                .take(room)
                .map(Some),
        );
    } else {
        plan.create.extend(std::iter::repeat_n(None, room));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: serde_json::Value, status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "ns", "uid": "u1"},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    fn pod(name: &str, phase: &str, finished: Option<&str>, index: Option<i32>) -> Arc<Pod> {
        let state = match finished {
            Some(at) => json!({"terminated": {"exitCode": 1, "finishedAt": at}}),
            None => json!({"running": {}}),
        };
        let annotations = index.map_or(json!({}), |i| json!({COMPLETION_INDEX: i.to_string()}));
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": annotations,
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"containers": []},
                "status": {"phase": phase, "containerStatuses": [
                    {"name": "c", "image": "i", "imageID": "", "ready": false,
                     "restartCount": 0, "state": state}]},
            }))
            .unwrap(),
        )
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn types(status: &JobStatus) -> Vec<String> {
        status
            .conditions
            .iter()
            .flatten()
            .filter(|c| c.status == "True")
            .map(|c| c.type_.clone())
            .collect()
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_six_minutes() {
        assert_eq!(backoff_delay(0), Duration::ZERO);
        assert_eq!(backoff_delay(1), Duration::from_secs(10));
        assert_eq!(backoff_delay(2), Duration::from_secs(20));
        assert_eq!(backoff_delay(6), Duration::from_secs(320));
        assert_eq!(backoff_delay(7), BACKOFF_MAX);
        assert_eq!(backoff_delay(100), BACKOFF_MAX);
        let pods = vec![
            pod("a", "Failed", Some("2026-01-01T00:00:10Z"), None),
            pod("b", "Failed", Some("2026-01-01T00:00:20Z"), None),
        ];
        // Two failures: 20 s after the last one.
        assert_eq!(
            backoff_remaining(&pods, at("2026-01-01T00:00:25Z")),
            Duration::from_secs(15)
        );
        // A success resets the count.
        let mut reset = pods.clone();
        reset.push(pod("c", "Succeeded", Some("2026-01-01T00:00:30Z"), None));
        assert_eq!(
            backoff_remaining(&reset, at("2026-01-01T00:00:31Z")),
            Duration::ZERO
        );
    }

    #[test]
    fn runs_parallelism_pods_until_completions() {
        let now = at("2026-01-01T00:01:00Z");
        let j = job(
            json!({"completions": 3, "parallelism": 2, "template": {}}),
            json!({}),
        );
        let p = plan(&j, &[], now);
        assert_eq!(p.create, vec![None, None]);
        assert_eq!(p.status.active, Some(2));
        assert_eq!(p.status.start_time, Some(Time(now)));
        // Two succeeded: one more to run.
        let pods = vec![
            pod("a", "Succeeded", Some("2026-01-01T00:00:30Z"), None),
            pod("b", "Succeeded", Some("2026-01-01T00:00:31Z"), None),
        ];
        let p = plan(&j, &pods, now);
        assert_eq!(p.create, vec![None]);
        assert_eq!(p.status.succeeded, Some(2));
        // Three: complete, with both conditions and the event.
        let mut all = pods.clone();
        all.push(pod("c", "Succeeded", Some("2026-01-01T00:00:40Z"), None));
        let p = plan(&j, &all, now);
        assert!(p.create.is_empty());
        assert_eq!(types(&p.status), [SUCCESS_CRITERIA_MET, COMPLETE]);
        assert_eq!(p.status.completion_time, Some(Time(now)));
        assert_eq!(p.events, [JobEvent::Normal("Completed", "Job completed")]);
        // Counts never go down when finished pods are deleted.
        let j = job(
            json!({"completions": 3, "parallelism": 2, "template": {}}),
            json!({"succeeded": 2, "failed": 1}),
        );
        let p = plan(&j, &[], now);
        assert_eq!((p.status.succeeded, p.status.failed), (Some(2), Some(1)));
        assert_eq!(p.create, vec![None]);
    }

    #[test]
    fn backoff_limit_fails_the_job_after_the_right_number_of_failures() {
        let spec = json!({"completions": 1, "parallelism": 1, "backoffLimit": 1,
            "template": {"spec": {"restartPolicy": "Never", "containers": []}}});
        let j = job(spec.clone(), json!({}));
        let one = vec![pod("a", "Failed", Some("2026-01-01T00:00:10Z"), None)];
        // One failure: within the limit, replaced after 10 s.
        let p = plan(&j, &one, at("2026-01-01T00:00:15Z"));
        assert!(p.create.is_empty());
        assert_eq!(p.requeue, Some(Duration::from_secs(5)));
        let p = plan(&j, &one, at("2026-01-01T00:00:20Z"));
        assert_eq!(p.create, vec![None]);
        // Two: past the limit; no pod runs, so FailureTarget and Failed at once.
        let mut two = one.clone();
        two.push(pod("b", "Failed", Some("2026-01-01T00:00:30Z"), None));
        let p = plan(&j, &two, at("2026-01-01T00:00:31Z"));
        assert!(p.create.is_empty());
        assert_eq!(types(&p.status), [FAILURE_TARGET, FAILED]);
        let failed = condition(&p.status, FAILED).unwrap();
        assert_eq!(failed.reason.as_deref(), Some(BACKOFF_LIMIT_EXCEEDED));
        assert_eq!(failed.message.as_deref(), Some(BACKOFF_MESSAGE));
        assert_eq!(
            p.events,
            [JobEvent::Warning(BACKOFF_LIMIT_EXCEEDED, BACKOFF_MESSAGE)]
        );
        // With a pod still running, it is deleted first and Failed waits for it.
        let j = job(
            json!({"completions": 2, "parallelism": 2, "backoffLimit": 0,
            "template": {}}),
            json!({}),
        );
        let pods = vec![
            pod("a", "Failed", Some("2026-01-01T00:00:10Z"), None),
            pod("b", "Running", None, None),
        ];
        let p = plan(&j, &pods, at("2026-01-01T00:00:11Z"));
        assert_eq!(p.delete.len(), 1);
        assert_eq!(types(&p.status), [FAILURE_TARGET]);
        assert_eq!(p.status.terminating, Some(1));
        assert!(p.events.is_empty());
    }

    #[test]
    fn active_deadline_fails_the_job() {
        let j = job(
            json!({"completions": 1, "parallelism": 1, "activeDeadlineSeconds": 30,
                "template": {}}),
            json!({"startTime": "2026-01-01T00:00:00Z"}),
        );
        let running = vec![pod("a", "Running", None, None)];
        let p = plan(&j, &running, at("2026-01-01T00:00:10Z"));
        assert_eq!(p.requeue, Some(Duration::from_secs(20)));
        let p = plan(&j, &running, at("2026-01-01T00:00:30Z"));
        assert_eq!(types(&p.status), [FAILURE_TARGET]);
        assert_eq!(
            condition(&p.status, FAILURE_TARGET)
                .unwrap()
                .reason
                .as_deref(),
            Some(DEADLINE_EXCEEDED)
        );
        assert_eq!(p.delete.len(), 1);
    }

    #[test]
    fn indexed_jobs_run_each_index_once() {
        let j = job(
            json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed",
                "template": {}}),
            json!({}),
        );
        let now = at("2026-01-01T00:01:00Z");
        assert_eq!(plan(&j, &[], now).create, vec![Some(0), Some(1)]);
        let pods = vec![
            pod("a", "Succeeded", Some("2026-01-01T00:00:10Z"), Some(0)),
            pod("b", "Running", None, Some(1)),
            pod("c", "Succeeded", Some("2026-01-01T00:00:10Z"), Some(3)),
        ];
        let p = plan(&j, &pods, now);
        assert_eq!(p.create, vec![Some(2)]);
        assert_eq!(p.status.completed_indexes.as_deref(), Some("0,3"));
        assert_eq!(p.status.succeeded, Some(2));
        let pod = job_pod(&PodTemplateSpec::default(), &j, Some(2));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(index_of(&pod), Some(2));
    }

    #[test]
    fn index_intervals() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }
}
