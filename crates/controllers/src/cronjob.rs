//! The CronJob controller (upstream's `cronjob_controllerv2.go`): creates a Job at each time the
//! schedule fires (in `spec.timeZone`, UTC by default), within `startingDeadlineSeconds`, as
//! `concurrencyPolicy` allows; tracks the Jobs it runs in `status.active`; and keeps
//! `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` finished Jobs.
//!
//! Level-triggered: which schedule times are due comes from `status.lastScheduleTime` (or the
//! creation time) and the clock, and a Job is named after its scheduled minute, so a sync after
//! a crash between creating a Job and recording it finds the Job instead of making another.
//! After each sync the CronJob is queued again for the next time the schedule fires.

use std::sync::Arc;
use std::time::Duration;

use k3rs_api::cron::{time_zone, CronSchedule};
use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, PropagationPolicy};
use kube::{Api, Client, Resource, ResourceExt};

use crate::error::{gone_ok, Error};
use crate::ownership::{controller_of, controller_ref, is_controlled_by};
use crate::Context;
use k3rs_api::well_known;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::runner::Action;
use k3rs_runtime::status::Written;
use k3rs_runtime::Controller;

/// The annotation with the time a Job was scheduled for (RFC 3339 in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP: &str = well_known::ANNOTATION_CRONJOB_SCHEDULED_TIMESTAMP;
/// More missed schedule times than this since the last one run is reported as a warning.
const MISSED_WARNING: i64 = 100;
/// Slack after a schedule time before looking again, so the clock is surely past it.
const REQUEUE_SLACK: Duration = Duration::from_millis(100);

#[derive(Clone)]
struct Shared {
    client: Client,
    cronjobs: Arc<Informer<CronJob>>,
    jobs: Arc<Informer<Job>>,
    events: Recorder,
}

/// Registers the controller's handlers and starts its workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let controller = Controller::new(&ctx.runtime, "cronjob-controller");
    let shared = Shared {
        client: ctx.client.clone(),
        cronjobs: ctx.informers.get::<CronJob>(),
        jobs: ctx.informers.get::<Job>(),
        events: Recorder::new(ctx.client.clone(), "cronjob-controller"),
    };
    controller
        .reconciles(&shared.cronjobs)
        .watches(&shared.jobs, |change: &Change<Job>| {
            let job = change.object();
            let mut owners = vec![owner_key(job)];
            if let Change::Applied { old: Some(old), .. } = change {
                owners.push(owner_key(old));
            }
            owners.into_iter().flatten()
        })
        .workers(2)
        .run(move |key| {
            let shared = shared.clone();
            async move { sync(&shared, &key).await }
        })
}

fn owner_key(job: &Job) -> Option<ObjectKey> {
    controller_of(&job.metadata)
        .filter(|r| r.kind == "CronJob")
        .map(|r| ObjectKey::new(job.namespace().unwrap_or_default(), r.name.clone()))
}

/// `Complete` or `Failed`, if the Job finished.
fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn job_reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(cronjob) = shared.cronjobs.cache().get(key) else {
        return Ok(Action::Done);
    };
    let uid = cronjob.uid().unwrap_or_default();
    let jobs: Vec<Arc<Job>> = shared
        .jobs
        .cache()
        .in_namespace(&key.namespace)
        .into_iter()
        .filter(|j| is_controlled_by(&j.metadata, &uid))
        .collect();
    let jobs_api: Api<Job> = Api::namespaced(shared.client.clone(), &key.namespace);
    let mut status = cronjob.status.clone().unwrap_or_default();
    let mut active = status.active.take().unwrap_or_default();

    // The active list follows the Jobs: finished ones leave it, running ones are in it.
    for job in &jobs {
        let listed = active.iter().position(|r| r.uid == job.metadata.uid);
        match (listed, finished(job)) {
            (Some(at), Some(condition)) => {
                active.remove(at);
                shared
                    .events
                    .normal(
                        cronjob.as_ref(),
                        "SawCompletedJob",
                        format!(
                            "Saw completed job: {}, condition: {condition}",
                            job.name_any()
                        ),
                    )
                    .await;
            }
            // A Job being deleted (replaced, or trimmed from the history) stays out.
            (None, None) if job.metadata.deletion_timestamp.is_none() => {
                if job.annotations().get(SCHEDULED_TIMESTAMP).is_none() {
                    shared
                        .events
                        .warning(
                            cronjob.as_ref(),
                            "UnexpectedJob",
                            format!(
                                "Saw a job that the controller did not create or forgot: {}",
                                job.name_any()
                            ),
                        )
                        .await;
                }
                active.push(job_reference(job));
            }
            _ => {}
        }
        if finished(job) == Some("Complete") {
            let done = job.status.as_ref().and_then(|s| s.completion_time.clone());
            if done.as_ref().map(|t| t.0) > status.last_successful_time.as_ref().map(|t| t.0) {
                status.last_successful_time = done;
            }
        }
    }
    let mut kept = Vec::new();
    for reference in active {
        let in_cache = jobs.iter().any(|j| j.metadata.uid == reference.uid);
        let name = reference.name.clone().unwrap_or_default();
        // Not in the cache: ask the API before calling it gone (the cache may lag a create).
        let exists = in_cache || gone_ok(jobs_api.get(&name).await)?.is_some();
        if exists {
            kept.push(reference);
        } else {
            shared
                .events
                .warning(
                    cronjob.as_ref(),
                    "MissingJob",
                    format!("Active job went missing: {name}"),
                )
                .await;
        }
    }
    active = kept;

    let spec = cronjob.spec.clone();
    let now = Timestamp::now();
    let mut requeue = None;
    if cronjob.metadata.deletion_timestamp.is_none() {
        match schedule_of(&spec.schedule, spec.time_zone.as_deref()) {
            Err((reason, message)) => {
                shared
                    .events
                    .warning(cronjob.as_ref(), reason, message)
                    .await;
            }
            Ok((schedule, tz)) if spec.suspend != Some(true) => {
                requeue = run_due(
                    shared,
                    &cronjob,
                    &jobs_api,
                    Due {
                        schedule: &schedule,
                        tz: &tz,
                        now,
                    },
                    &mut status,
                    &mut active,
                )
                .await?;
            }
            Ok(_) => {}
        }
    }

    status.active = (!active.is_empty()).then_some(active);
    let api: Api<CronJob> = Api::namespaced(shared.client.clone(), &key.namespace);
    if let Written::Gone = k3rs_runtime::status::write(
        &api,
        &key.name,
        cronjob.status.as_ref(),
        &status,
        &crate::patch_params(),
    )
    .await?
    {
        return Ok(Action::Done);
    }
    clean_up_history(shared, &cronjob, &jobs_api, &jobs).await?;
    Ok(requeue.map_or(Action::Done, |d| Action::RequeueAfter(d + REQUEUE_SLACK)))
}

/// The schedule and its zone, or the warning event (reason, message) that says why not.
fn schedule_of(
    schedule: &str,
    zone: Option<&str>,
) -> Result<(CronSchedule, TimeZone), (&'static str, String)> {
    let tz = match zone {
        None => TimeZone::UTC,
        Some(zone) => time_zone(zone).map_err(|err| {
            (
                "UnknownTimeZone",
                format!("invalid timeZone: {zone:?}: {err}"),
            )
        })?,
    };
    let schedule = CronSchedule::parse(schedule).map_err(|err| {
        (
            "UnparseableSchedule",
            format!("unparseable schedule: {schedule:?} : {err}"),
        )
    })?;
    Ok((schedule, tz))
}

struct Due<'a> {
    schedule: &'a CronSchedule,
    tz: &'a TimeZone,
    now: Timestamp,
}

/// Starts the Job of the most recent due schedule time, if any and allowed; returns how long
/// until the next schedule time.
async fn run_due(
    shared: &Shared,
    cronjob: &CronJob,
    jobs_api: &Api<Job>,
    due: Due<'_>,
    status: &mut CronJobStatus,
    active: &mut Vec<ObjectReference>,
) -> Result<Option<Duration>, Error> {
    let spec = cronjob.spec.clone();
    let next = due
        .schedule
        .next_after(due.now, due.tz)
        .map(|t| Duration::try_from(t.duration_since(due.now)).unwrap_or_default());
    let earliest = status
        .last_schedule_time
        .as_ref()
        .or(cronjob.metadata.creation_timestamp.as_ref())
        .map_or(due.now, |t| t.0);
    let Some(recent) = most_recent(
        due.schedule,
        due.tz,
        earliest,
        spec.starting_deadline_seconds,
        due.now,
    ) else {
        return Ok(next);
    };
    if recent.missed > MISSED_WARNING {
        shared
            .events
            .warning(
                cronjob,
                "TooManyMissedTimes",
                format!(
                    "too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                    recent.missed
                ),
            )
            .await;
    }
    let scheduled = recent.time;
    if let Some(deadline) = spec.starting_deadline_seconds {
        if scheduled + SignedDuration::from_secs(deadline) < due.now {
            shared
                .events
                .warning(
                    cronjob,
                    "MissSchedule",
                    format!(
                        "Missed scheduled time to start a job: {}",
                        scheduled.strftime("%a, %d %b %Y %H:%M:%S %z")
                    ),
                )
                .await;
            return Ok(next);
        }
    }
    let name = job_name(&cronjob.name_any(), scheduled);
    let already = active.iter().any(|r| r.name.as_deref() == Some(&name))
        || status.last_schedule_time.as_ref().map(|t| t.0) == Some(scheduled);
    if already {
        return Ok(next);
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            shared
                .events
                .normal(
                    cronjob,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                )
                .await;
            return Ok(next);
        }
        Some("Replace") => {
            for reference in std::mem::take(active) {
                let job = reference.name.unwrap_or_default();
                delete_job(shared, cronjob, jobs_api, &job).await?;
            }
        }
        _ => {}
    }
    let job = job_for(cronjob, scheduled, due.tz, &name);
    let params = crate::post_params();
    let created = match jobs_api.create(&params, &job).await.map_err(Error::from) {
        Ok(job) => {
            shared
                .events
                .normal(cronjob, "SuccessfulCreate", format!("Created job {name}"))
                .await;
            job
        }
        Err(err) if err.is_conflict() => {
            // Created before a crash or by a sync whose status write was lost: take it over
            // if it is ours.
            let existing = jobs_api.get(&name).await?;
            if !is_controlled_by(&existing.metadata, &cronjob.uid().unwrap_or_default()) {
                return Err(err);
            }
            existing
        }
        Err(err) => {
            shared
                .events
                .warning(
                    cronjob,
                    "FailedCreate",
                    format!("Error creating job: {err}"),
                )
                .await;
            return Err(err);
        }
    };
    if !active.iter().any(|r| r.uid == created.metadata.uid) && finished(&created).is_none() {
        active.push(job_reference(&created));
    }
    status.last_schedule_time = Some(Time(scheduled));
    Ok(next)
}

/// `<cronjob>-<scheduled time in minutes since the epoch>`.
fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The Job for `scheduled`: the template's metadata and spec, the scheduled-time annotation
/// and the CronJob as controller.
fn job_for(cronjob: &CronJob, scheduled: Timestamp, tz: &TimeZone, name: &str) -> Job {
    let template = cronjob.spec.job_template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let zoned = scheduled.to_zoned(tz.clone());
    let stamp = if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    };
    annotations.insert(SCHEDULED_TIMESTAMP.into(), stamp);
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: cronjob.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cronjob)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

async fn delete_job(
    shared: &Shared,
    cronjob: &CronJob,
    jobs_api: &Api<Job>,
    name: &str,
) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match gone_ok(jobs_api.delete(name, &params).await) {
        Ok(_) => {
            shared
                .events
                .normal(cronjob, "SuccessfulDelete", format!("Deleted job {name}"))
                .await;
            Ok(())
        }
        Err(err) => {
            shared
                .events
                .warning(cronjob, "FailedDelete", format!("Deleted job: {err}"))
                .await;
            Err(err)
        }
    }
}

/// Deletes the oldest finished Jobs beyond the history limits.
async fn clean_up_history(
    shared: &Shared,
    cronjob: &CronJob,
    jobs_api: &Api<Job>,
    jobs: &[Arc<Job>],
) -> Result<(), Error> {
    let spec = cronjob.spec.clone();
    for (condition, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| finished(j) == Some(condition) && j.metadata.deletion_timestamp.is_none())
            .collect();
        let keep = usize::try_from(limit).unwrap_or(0);
        if done.len() <= keep {
            continue;
        }
        done.sort_by_key(|j| started(j));
        let excess = done.len() - keep;
        for job in done.into_iter().take(excess) {
            delete_job(shared, cronjob, jobs_api, &job.name_any()).await?;
        }
    }
    Ok(())
}

/// When a Job started (its creation when it never did), for oldest-first ordering.
fn started(job: &Job) -> (Option<Timestamp>, Option<Timestamp>, String) {
    let start = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0);
    let created = job.meta().creation_timestamp.as_ref().map(|t| t.0);
    (start.or(created), created, job.name_any())
}

/// The most recent schedule time that is due, and how many were missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Recent {
    time: Timestamp,
    missed: i64,
}

/// Upstream's `mostRecentScheduleTime`: the latest schedule time in (`earliest`, `now`], where
/// `earliest` is the last schedule time (or creation), moved up to `now - deadline` when a
/// starting deadline is set; `None` when no time is due.
fn most_recent(
    schedule: &CronSchedule,
    tz: &TimeZone,
    earliest: Timestamp,
    starting_deadline_seconds: Option<i64>,
    now: Timestamp,
) -> Option<Recent> {
    let mut earliest = earliest;
    if let Some(deadline) = starting_deadline_seconds {
        let cutoff = now - SignedDuration::from_secs(deadline);
        if cutoff > earliest {
            earliest = cutoff;
        }
    }
    let t1 = schedule.next_after(earliest, tz)?;
    if now < t1 {
        return None;
    }
    let Some(t2) = schedule.next_after(t1, tz).filter(|t2| now >= *t2) else {
        return Some(Recent {
            time: t1,
            missed: 1,
        });
    };
    // Many missed: jump close to `now` by the interval between the first two, then walk.
    let interval = t2.duration_since(t1).as_secs().max(1);
    let elapsed = now.duration_since(t1).as_secs();
    let missed = elapsed / interval + 1;
    let jump = interval.saturating_mul((missed - 2).max(0));
    let mut cursor = t1
        .checked_add(SignedDuration::from_secs(jump))
        .unwrap_or(t1);
    let mut time = None;
    while let Some(t) = schedule.next_after(cursor, tz).filter(|t| *t <= now) {
        time = Some(t);
        cursor = t;
    }
    if time.is_none() {
        // An irregular schedule (`30 6-16/4 * * 1-5`) can make the jump overshoot into a
        // quiet stretch: walk from the start instead.
        cursor = t1;
        time = Some(t1);
        while let Some(t) = schedule.next_after(cursor, tz).filter(|t| *t <= now) {
            time = Some(t);
            cursor = t;
        }
    }
    Some(Recent {
        time: time.unwrap_or(t1),
        missed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn recent(spec: &str, earliest: &str, deadline: Option<i64>, now: &str) -> Option<Recent> {
        let schedule = CronSchedule::parse(spec).unwrap();
        most_recent(&schedule, &TimeZone::UTC, at(earliest), deadline, at(now))
    }

    #[test]
    fn most_recent_schedule_times() {
        // Nothing due yet.
        assert_eq!(
            recent(
                "*/5 * * * *",
                "2026-01-01T00:00:00Z",
                None,
                "2026-01-01T00:04:59Z"
            ),
            None
        );
        // One due.
        assert_eq!(
            recent(
                "*/5 * * * *",
                "2026-01-01T00:00:00Z",
                None,
                "2026-01-01T00:05:00Z"
            ),
            Some(Recent {
                time: at("2026-01-01T00:05:00Z"),
                missed: 1
            })
        );
        // Several: the latest, and how many.
        assert_eq!(
            recent(
                "*/5 * * * *",
                "2026-01-01T00:00:00Z",
                None,
                "2026-01-01T00:17:00Z"
            ),
            Some(Recent {
                time: at("2026-01-01T00:15:00Z"),
                missed: 3
            })
        );
        // A day of minutes: many missed, still the latest.
        let many = recent(
            "* * * * *",
            "2026-01-01T00:00:00Z",
            None,
            "2026-01-02T00:00:30Z",
        )
        .unwrap();
        assert_eq!(many.time, at("2026-01-02T00:00:00Z"));
        assert_eq!(many.missed, 1440);
        // A starting deadline only looks that far back.
        assert_eq!(
            recent(
                "* * * * *",
                "2026-01-01T00:00:00Z",
                Some(200),
                "2026-01-02T00:00:30Z"
            )
            .unwrap()
            .missed,
            3
        );
        // Irregular schedules walk to the right time, also across a weekend.
        assert_eq!(
            recent(
                "30 6-16/4 * * 1-5",
                "2026-01-05T00:00:00Z",
                None,
                "2026-01-10T12:00:00Z"
            )
            .unwrap()
            .time,
            at("2026-01-09T14:30:00Z")
        );
        assert_eq!(
            recent(
                "30 6-16/4 * * 1-5",
                "2026-01-05T00:00:00Z",
                None,
                "2026-01-09T15:00:00Z"
            )
            .unwrap()
            .time,
            at("2026-01-09T14:30:00Z")
        );
    }

    #[test]
    fn job_names_and_annotations() {
        let cronjob: CronJob = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "nightly", "namespace": "ns", "uid": "u1"},
            "spec": {"schedule": "0 1 * * *", "jobTemplate": {
                "metadata": {"labels": {"app": "n"}},
                "spec": {"template": {"spec": {"containers": []}}}}},
        }))
        .unwrap();
        let scheduled = at("2026-01-01T06:00:00Z");
        let name = job_name("nightly", scheduled);
        assert_eq!(name, "nightly-29454120");
        let job = job_for(&cronjob, scheduled, &TimeZone::UTC, &name);
        assert_eq!(
            job.annotations()
                .get(SCHEDULED_TIMESTAMP)
                .map(String::as_str),
            Some("2026-01-01T06:00:00Z")
        );
        assert_eq!(job.labels().get("app").map(String::as_str), Some("n"));
        assert!(is_controlled_by(&job.metadata, "u1"));
        let new_york = time_zone("America/New_York").unwrap();
        let job = job_for(&cronjob, scheduled, &new_york, &name);
        assert_eq!(
            job.annotations()
                .get(SCHEDULED_TIMESTAMP)
                .map(String::as_str),
            Some("2026-01-01T01:00:00-05:00")
        );
        assert!(schedule_of("* * * * *", Some("Nowhere/Else"))
            .is_err_and(|(r, _)| r == "UnknownTimeZone"));
        assert!(schedule_of("bad", None).is_err_and(|(r, _)| r == "UnparseableSchedule"));
    }
}
