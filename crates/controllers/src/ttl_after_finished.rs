//! The TTL-after-finished controller (upstream's `ttlafterfinished`): deletes a finished Job
//! `spec.ttlSecondsAfterFinished` seconds after it finished, in the foreground, so its pods go
//! first. The Job is read again from the API just before the delete, and the delete carries its
//! uid and resourceVersion, so a Job changed in the meantime (its TTL raised) is not deleted.

use std::sync::Arc;
use std::time::Duration;

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::{Api, Client};

use crate::error::{gone_ok, Error};
use crate::Context;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::informer::Informer;
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

#[derive(Clone)]
struct Shared {
    client: Client,
    jobs: Arc<Informer<Job>>,
}

/// Registers the controller's handlers and starts its workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let shared = Shared {
        client: ctx.client.clone(),
        jobs: ctx.informers.get::<Job>(),
    };
    Controller::new(&ctx.runtime, "ttl-after-finished-controller")
        .watches(&shared.jobs, |change| {
            let job = change.object();
            job.spec
                .as_ref()
                .and_then(|s| s.ttl_seconds_after_finished)
                .map(|_| ObjectKey::of(job.as_ref()))
        })
        .workers(2)
        .run(move |key| {
            let shared = shared.clone();
            async move { sync(&shared, &key).await }
        })
}

/// When the Job expires: `None` if it has no TTL, has not finished, or is being deleted.
fn expires_at(job: &Job) -> Option<Timestamp> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let status = job.status.as_ref()?;
    let finished = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    let at = status
        .completion_time
        .as_ref()
        .filter(|_| finished.type_ == "Complete")
        .or(finished.last_transition_time.as_ref())?
        .0;
    at.checked_add(SignedDuration::from_secs(i64::from(ttl)))
        .ok()
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(job) = shared.jobs.cache().get(key) else {
        return Ok(Action::Done);
    };
    let Some(expires) = expires_at(&job) else {
        return Ok(Action::Done);
    };
    let now = Timestamp::now();
    if expires > now {
        let left = Duration::try_from(expires.duration_since(now)).unwrap_or_default();
        return Ok(Action::RequeueAfter(left + Duration::from_millis(100)));
    }
    // The cache may be stale (a raised TTL): decide on the live object.
    let api: Api<Job> = Api::namespaced(shared.client.clone(), &key.namespace);
    let Some(live) = gone_ok(api.get(&key.name).await)? else {
        return Ok(Action::Done);
    };
    match expires_at(&live) {
        None => return Ok(Action::Done),
        Some(expires) if expires > now => {
            let left = Duration::try_from(expires.duration_since(now)).unwrap_or_default();
            return Ok(Action::RequeueAfter(left));
        }
        Some(_) => {}
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: live.metadata.uid.clone(),
            resource_version: live.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    tracing::debug!(job = %key, "deleting a finished job after its TTL");
    gone_ok(api.delete(&key.name, &params).await)?;
    Ok(Action::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_finished_job_expires_its_ttl_after_it_finished() {
        let job = |ttl: serde_json::Value, conditions: serde_json::Value| -> Job {
            serde_json::from_value(json!({
                "metadata": {"name": "j"},
                "spec": {"ttlSecondsAfterFinished": ttl, "template": {}},
                "status": {"completionTime": "2026-01-01T00:00:10Z", "conditions": conditions},
            }))
            .unwrap()
        };
        let complete = json!([{"type": "Complete", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:11Z"}]);
        let failed = json!([{"type": "Failed", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:20Z"}]);
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            expires_at(&job(json!(5), complete.clone())),
            Some(at("2026-01-01T00:00:15Z"))
        );
        assert_eq!(
            expires_at(&job(json!(0), failed)),
            Some(at("2026-01-01T00:00:20Z"))
        );
        assert_eq!(expires_at(&job(json!(null), complete)), None);
        assert_eq!(expires_at(&job(json!(5), json!([]))), None);
    }
}
