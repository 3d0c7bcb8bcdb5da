//! `GET /containerLogs/{namespace}/{pod}/{container}`: which run of the container the client
//! means (upstream's `validateContainerLogStatus`, from the pod's status), its log file (the
//! runtime's `ContainerStatus.log_path`) and the log read as the query asks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use tokio::sync::mpsc;

use super::response::{stream, text, Body};
use crate::logs::{read_logs, ContainerRunning, LogOptions, LogOptionsError};
use crate::runtime::Runtime;

/// How long the first piece of a log is waited for before the response starts without it (a
/// follow of a quiet container streams from then on).
const FIRST_CHUNK_WAIT: Duration = Duration::from_secs(1);

/// Why a container's log cannot be read, with upstream's status and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRefusal {
    pub status: StatusCode,
    pub message: String,
}

impl LogRefusal {
    fn bad_request(message: String) -> Self {
        LogRefusal {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

/// Whether the pod's spec has a container, init container or ephemeral container `name`.
fn in_spec(pod: &Pod, name: &str) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers.iter().any(|c| c.name == name)
            || spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
            || spec
                .ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
    })
}

fn find_status<'a>(status: &'a PodStatus, name: &str) -> Option<&'a ContainerStatus> {
    [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|c| c.name == name)
}

/// The runtime ID (without `containerd://`) of the run whose log the client asks for, or
/// upstream's refusal: the pod or container unknown (404), the container without such a run
/// (400).
pub fn log_container_id(
    pod: Option<&Pod>,
    pod_name: &str,
    container: &str,
    previous: bool,
) -> Result<String, LogRefusal> {
    let Some(pod) = pod else {
        return Err(LogRefusal {
            status: StatusCode::NOT_FOUND,
            message: format!("pod {pod_name:?} does not exist"),
        });
    };
    if !in_spec(pod, container) {
        return Err(LogRefusal {
            status: StatusCode::NOT_FOUND,
            message: format!("container {container:?} not found in pod {pod_name:?}"),
        });
    }
    let status = pod.status.as_ref().and_then(|s| find_status(s, container));
    let Some(status) = status else {
        return Err(LogRefusal::bad_request(format!(
            "container {container:?} in pod {pod_name:?} is not available"
        )));
    };
    let last_terminated = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.as_deref())
        .filter(|id| !id.is_empty());
    let state = status.state.clone().unwrap_or_default();
    let terminated_here = || {
        LogRefusal::bad_request(format!(
            "container {container:?} in pod {pod_name:?} is terminated"
        ))
    };
    let id = if previous {
        last_terminated.ok_or_else(|| {
            LogRefusal::bad_request(format!(
                "previous terminated container {container:?} in pod {pod_name:?} not found"
            ))
        })?
    } else if state.running.is_some() {
        status.container_id.as_deref().unwrap_or_default()
    } else if let Some(terminated) = &state.terminated {
        // The next run did not start: the last one's ID is in lastState.
        match terminated
            .container_id
            .as_deref()
            .filter(|id| !id.is_empty())
        {
            Some(id) => id,
            None => last_terminated.ok_or_else(terminated_here)?,
        }
    } else if status
        .last_state
        .as_ref()
        .is_some_and(|s| s.terminated.is_some())
    {
        last_terminated.ok_or_else(terminated_here)?
    } else if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let why = match reason {
            "ErrImagePull" => "image can't be pulled".to_owned(),
            "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
            other => other.to_owned(),
        };
        return Err(LogRefusal::bad_request(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start: {why}"
        )));
    } else {
        return Err(LogRefusal::bad_request(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
        )));
    };
    let bare = id.split_once("://").map_or(id, |(_, bare)| bare);
    if bare.is_empty() {
        return Err(LogRefusal::bad_request(format!(
            "container {container:?} in pod {pod_name:?} is not available"
        )));
    }
    Ok(bare.to_owned())
}

/// Asks the runtime whether the followed container still runs.
#[derive(Debug)]
struct RuntimeContainer {
    runtime: Arc<dyn Runtime>,
    id: String,
}

#[async_trait]
impl ContainerRunning for RuntimeContainer {
    async fn running(&self) -> bool {
        match self.runtime.container_status(&self.id).await {
            Ok(status) => status.state == cri::ContainerState::ContainerRunning as i32,
            Err(_) => false,
        }
    }
}

/// Answers a `containerLogs` request for `pod` (from the kubelet's pods, `None` when it has
/// none by that name).
pub(crate) async fn serve(
    runtime: Arc<dyn Runtime>,
    pod: Option<&Pod>,
    pod_name: &str,
    container: &str,
    query: Option<&str>,
) -> http::Response<Body> {
    if container.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Missing container name."}"#,
        );
    }
    let options = match LogOptions::from_query(query, jiff::Timestamp::now()) {
        Ok(options) => options,
        Err(err @ LogOptionsError::Decode) => {
            return text(StatusCode::BAD_REQUEST, err.to_string())
        }
        Err(err @ LogOptionsError::Invalid) => {
            return text(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
        }
    };
    let id = match log_container_id(pod, pod_name, container, options.previous) {
        Ok(id) => id,
        Err(refusal) => return text(refusal.status, refusal.message),
    };
    let status = match runtime.container_status(&id).await {
        Ok(status) => status,
        Err(err) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("failed to get container status {id:?}: {err}"),
            )
        }
    };
    let path = std::path::PathBuf::from(&status.log_path);
    let (sender, mut receiver) = mpsc::channel::<Bytes>(16);
    let running = RuntimeContainer { runtime, id };
    let mut reading =
        tokio::spawn(async move { read_logs(&path, &options, &running, sender).await });
    // An error before the first byte (no log file) is the client's 400; after it, the stream
    // just ends.
    let first = tokio::select! {
        biased;
        chunk = receiver.recv() => chunk,
        done = &mut reading => match done {
            Ok(Err(err)) => return text(StatusCode::BAD_REQUEST, err.to_string()),
            Ok(Ok(())) => receiver.recv().await,
            Err(err) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the log: {err}")),
        },
        () = tokio::time::sleep(FIRST_CHUNK_WAIT) => None,
    };
    stream(first, receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "app"}],
            },
            "status": status,
        }))
        .unwrap()
    }

    fn refusal(result: Result<String, LogRefusal>) -> (u16, String) {
        let err = result.unwrap_err();
        (err.status.as_u16(), err.message)
    }

    #[test]
    fn current_and_previous_runs() {
        let running = pod(serde_json::json!({"containerStatuses": [{
            "name": "app", "image": "", "imageID": "", "ready": true, "restartCount": 1,
            "containerID": "containerd://new",
            "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://old"}},
        }]}));
        assert_eq!(
            log_container_id(Some(&running), "web", "app", false).unwrap(),
            "new"
        );
        assert_eq!(
            log_container_id(Some(&running), "web", "app", true).unwrap(),
            "old"
        );
        // In back-off: the current state is waiting, the last run is what there is.
        let crashing = pod(serde_json::json!({"containerStatuses": [{
            "name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 1,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://old"}},
        }]}));
        assert_eq!(
            log_container_id(Some(&crashing), "web", "app", false).unwrap(),
            "old"
        );
        let done = pod(serde_json::json!({"containerStatuses": [{
            "name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
            "containerID": "containerd://only",
            "state": {"terminated": {"exitCode": 0, "containerID": "containerd://only"}},
        }]}));
        assert_eq!(
            log_container_id(Some(&done), "web", "app", false).unwrap(),
            "only"
        );
        assert_eq!(
            refusal(log_container_id(Some(&done), "web", "app", true)),
            (
                400,
                r#"previous terminated container "app" in pod "web" not found"#.to_owned()
            )
        );
    }

    #[test]
    fn refusals_as_upstream() {
        let pulling = pod(serde_json::json!({"containerStatuses": [{
            "name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff"}},
        }]}));
        assert_eq!(
            refusal(log_container_id(None, "web", "app", false)),
            (404, r#"pod "web" does not exist"#.to_owned())
        );
        assert_eq!(
            refusal(log_container_id(Some(&pulling), "web", "nope", false)),
            (404, r#"container "nope" not found in pod "web""#.to_owned())
        );
        assert_eq!(
            refusal(log_container_id(Some(&pulling), "web", "init", false)),
            (
                400,
                r#"container "init" in pod "web" is not available"#.to_owned()
            )
        );
        assert_eq!(
            refusal(log_container_id(Some(&pulling), "web", "app", false)),
            (
                400,
                r#"container "app" in pod "web" is waiting to start: trying and failing to pull image"#
                    .to_owned()
            )
        );
    }
}
