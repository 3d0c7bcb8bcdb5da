//! The container runtime the kubelet drives, in the CRI's shape: containerd's CRI plugin in a
//! real node ([`crate::cri_runtime`]), an in-memory fake in hollow nodes. The messages are the
//! CRI v1 types themselves, so a runtime is a thin translation and the kubelet's logic above it
//! is the same for both.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use k8s_cri::v1 as cri;

/// What went wrong in a runtime call, as far as the kubelet's decisions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeErrorKind {
    /// The object (sandbox, container, image) does not exist. Stop and remove treat it as done.
    NotFound,
    /// The runtime cannot be reached or is not ready; the call may succeed later.
    Unavailable,
    /// The call took longer than its deadline.
    DeadlineExceeded,
    /// The runtime refused or failed the call; its message says why.
    Failed,
}

/// A failed runtime call: which call, how it failed, and the runtime's message (shown to users
/// in events and pod status, as upstream shows the CRI's error text).
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct RuntimeError {
    pub kind: RuntimeErrorKind,
    pub operation: &'static str,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl RuntimeError {
    /// An error with no underlying cause (the fake runtime's).
    pub fn new(
        kind: RuntimeErrorKind,
        operation: &'static str,
        message: impl Into<String>,
    ) -> Self {
        RuntimeError {
            kind,
            operation,
            message: message.into(),
            source: None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == RuntimeErrorKind::NotFound
    }
}

/// The runtime's answer to `Version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeVersion {
    /// `containerd`, or the fake's name.
    pub name: String,
    pub version: String,
}

impl fmt::Display for RuntimeVersion {
    /// `containerd://1.6.20`: `nodeInfo.containerRuntimeVersion`'s format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name, self.version)
    }
}

/// The runtime's readiness (`Status`): `RuntimeReady` and `NetworkReady`, each with the reason
/// and message the runtime gives when false.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeReadiness {
    pub runtime: Condition,
    pub network: Condition,
}

/// One CRI runtime condition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl RuntimeReadiness {
    /// Reads the two conditions the kubelet needs out of a CRI `Status` answer; a condition the
    /// runtime does not report counts as not ready.
    pub fn from_cri(status: Option<&cri::RuntimeStatus>) -> Self {
        let find = |type_: &str| {
            status
                .and_then(|s| s.conditions.iter().find(|c| c.r#type == type_))
                .map(|c| Condition {
                    ready: c.status,
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .unwrap_or_else(|| Condition {
                    ready: false,
                    reason: "NotReported".to_owned(),
                    message: format!("the runtime does not report {type_}"),
                })
        };
        RuntimeReadiness {
            runtime: find("RuntimeReady"),
            network: find("NetworkReady"),
        }
    }

    pub fn ready(&self) -> bool {
        self.runtime.ready && self.network.ready
    }
}

/// The container runtime, in the CRI's terms. Every method is one CRI call (or the fake's
/// equivalent); the kubelet decides, the runtime does.
#[async_trait]
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    async fn version(&self) -> Result<RuntimeVersion, RuntimeError>;
    async fn readiness(&self) -> Result<RuntimeReadiness, RuntimeError>;
    /// Tells the runtime the node's pod CIDR (CRI `UpdateRuntimeConfig`).
    async fn update_pod_cidr(&self, pod_cidr: &str) -> Result<(), RuntimeError>;

    async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String, RuntimeError>;
    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError>;
    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError>;
    async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, RuntimeError>;
    /// Every sandbox, ready or not.
    async fn list_pod_sandboxes(&self) -> Result<Vec<cri::PodSandbox>, RuntimeError>;

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, RuntimeError>;
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// Stops a container: its stop signal, then SIGKILL after `timeout_seconds`.
    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<(), RuntimeError>;
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// Every container, in any state.
    async fn list_containers(&self) -> Result<Vec<cri::Container>, RuntimeError>;
    async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, RuntimeError>;
    /// Runs a command in a container and waits for it (probes, exec hooks).
    async fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        timeout_seconds: i64,
    ) -> Result<cri::ExecSyncResponse, RuntimeError>;

    /// The image as the runtime has it, or `None` when it is not present.
    async fn image_status(&self, image: &str) -> Result<Option<cri::Image>, RuntimeError>;
    /// Pulls an image; returns its reference (the `imageID` of container statuses).
    async fn pull_image(
        &self,
        image: &str,
        auth: Option<cri::AuthConfig>,
        sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String, RuntimeError>;

    /// CPU and memory of every container (`/stats/summary`, `/metrics/resource`).
    async fn list_container_stats(&self) -> Result<Vec<cri::ContainerStats>, RuntimeError>;

    /// Makes the runtime write a running container's log to a new file at its log path (after
    /// the kubelet renamed the old one: log rotation).
    async fn reopen_container_log(&self, id: &str) -> Result<(), RuntimeError>;
}

/// The labels the kubelet puts on every sandbox and container it creates (upstream's
/// `kuberuntime/labels.go`): how it finds a pod's objects again, after a restart too.
pub mod labels {
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
    /// Set on sandboxes k3rs's kubelet created (upstream's `io.kubernetes.container.name=POD`
    /// is kept as well, for tools that look for it).
    pub const INFRA_CONTAINER_NAME: &str = "POD";
}

/// The annotations the kubelet puts on every container (upstream's names), read back when it
/// adopts containers after a restart.
pub mod annotations {
    pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
    pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
    pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
    pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
    pub const TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
}

/// A string map from optional CRI fields.
pub(crate) fn label<'a>(map: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    map.get(key).map(String::as_str)
}
