//! What the runtime holds for one pod — its sandboxes and containers, newest first — read from
//! the CRI's lists and statuses (upstream's `kubecontainer.PodStatus`). Everything the kubelet
//! plans and reports is computed from this and the pod, so a restarted kubelet that reads the
//! same runtime makes the same decisions.

use std::collections::HashMap;
use std::net::IpAddr;

use k8s_cri::v1 as cri;
use k8s_openapi::jiff::Timestamp;

use crate::runtime::{annotations, label, labels, Runtime, RuntimeError};

/// The state of a container as the runtime reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl ContainerState {
    fn from_cri(state: i32) -> Self {
        match cri::ContainerState::try_from(state) {
            Ok(cri::ContainerState::ContainerCreated) => ContainerState::Created,
            Ok(cri::ContainerState::ContainerRunning) => ContainerState::Running,
            Ok(cri::ContainerState::ContainerExited) => ContainerState::Exited,
            _ => ContainerState::Unknown,
        }
    }
}

/// One sandbox of the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: String,
    /// How many sandboxes the pod had before this one.
    pub attempt: u32,
    pub ready: bool,
    pub created_at: Timestamp,
    /// The pod's IPs in this sandbox (none for host-network pods and stopped sandboxes).
    pub ips: Vec<IpAddr>,
}

/// One container of the pod (a run of one of its containers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// The container's name in the pod spec.
    pub name: String,
    pub sandbox_id: String,
    pub state: ContainerState,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: i32,
    /// The runtime's reason for an exit (`OOMKilled`, `Error`, `Completed`).
    pub reason: String,
    pub message: String,
    /// The image as the pod spec names it.
    pub image: String,
    /// The image's digest reference (`imageID`).
    pub image_ref: String,
    /// `restartCount` when this run was created.
    pub restart_count: i32,
    /// The hash of the container's spec this run was created from.
    pub hash: String,
    /// The pod's termination grace period when it was created (for a kill with no pod).
    pub termination_grace_period: Option<i64>,
}

/// Everything the runtime holds for one pod, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimePod {
    pub sandboxes: Vec<SandboxInfo>,
    pub containers: Vec<ContainerInfo>,
}

impl RuntimePod {
    /// The newest run of the named container.
    pub fn latest(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The runs of the named container, newest first.
    pub fn runs<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ContainerInfo> + 'a {
        self.containers.iter().filter(move |c| c.name == name)
    }

    /// The same pod with only the containers of one sandbox.
    pub fn in_sandbox(&self, sandbox_id: &str) -> RuntimePod {
        RuntimePod {
            sandboxes: self.sandboxes.clone(),
            containers: self
                .containers
                .iter()
                .filter(|c| c.sandbox_id == sandbox_id)
                .cloned()
                .collect(),
        }
    }

    /// The newest sandbox.
    pub fn sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes.first()
    }

    /// Whether any container of the pod is running.
    pub fn any_running(&self) -> bool {
        self.containers
            .iter()
            .any(|c| c.state == ContainerState::Running)
    }

    /// The pod's IPs: those of its newest sandbox.
    pub fn ips(&self) -> &[IpAddr] {
        self.sandbox().map_or(&[], |s| s.ips.as_slice())
    }
}

/// Nanoseconds since the epoch (the CRI's timestamps) as a time; 0 is "not set".
pub(crate) fn timestamp(nanos: i64) -> Option<Timestamp> {
    (nanos > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(nanos)).ok())
        .flatten()
}

fn pod_uid_of(labels_map: &HashMap<String, String>) -> Option<&str> {
    label(labels_map, labels::POD_UID)
}

/// A snapshot of the runtime: every sandbox and container, grouped by pod uid (objects without
/// the kubelet's labels are not the kubelet's and are left out).
#[derive(Clone, Debug, Default)]
pub struct RuntimeSnapshot {
    pub sandboxes: HashMap<String, Vec<cri::PodSandbox>>,
    pub containers: HashMap<String, Vec<cri::Container>>,
}

impl RuntimeSnapshot {
    /// Lists every sandbox and container once.
    pub async fn read(runtime: &dyn Runtime) -> Result<RuntimeSnapshot, RuntimeError> {
        let mut snapshot = RuntimeSnapshot::default();
        for sandbox in runtime.list_pod_sandboxes().await? {
            if let Some(uid) = pod_uid_of(&sandbox.labels) {
                snapshot
                    .sandboxes
                    .entry(uid.to_owned())
                    .or_default()
                    .push(sandbox);
            }
        }
        for container in runtime.list_containers().await? {
            if let Some(uid) = pod_uid_of(&container.labels) {
                snapshot
                    .containers
                    .entry(uid.to_owned())
                    .or_default()
                    .push(container);
            }
        }
        Ok(snapshot)
    }

    /// Every pod uid the runtime holds something for.
    pub fn pod_uids(&self) -> impl Iterator<Item = &String> {
        self.sandboxes.keys().chain(
            self.containers
                .keys()
                .filter(|uid| !self.sandboxes.contains_key(*uid)),
        )
    }
}

/// Reads what the runtime holds for the pod with `uid`: the listed sandboxes and containers,
/// then the status of each container and of the newest sandbox (its IPs). An object that
/// vanishes between the list and its status is left out.
pub async fn read_pod(runtime: &dyn Runtime, uid: &str) -> Result<RuntimePod, RuntimeError> {
    let snapshot = RuntimeSnapshot::read(runtime).await?;
    read_pod_from(runtime, &snapshot, uid).await
}

/// [`read_pod`] from a snapshot already taken.
pub async fn read_pod_from(
    runtime: &dyn Runtime,
    snapshot: &RuntimeSnapshot,
    uid: &str,
) -> Result<RuntimePod, RuntimeError> {
    let mut pod = RuntimePod::default();
    let mut sandboxes: Vec<&cri::PodSandbox> =
        snapshot.sandboxes.get(uid).into_iter().flatten().collect();
    sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    for (index, sandbox) in sandboxes.iter().enumerate() {
        let ready = sandbox.state == cri::PodSandboxState::SandboxReady as i32;
        let mut ips = Vec::new();
        if index == 0 && ready {
            match runtime.pod_sandbox_status(&sandbox.id).await {
                Ok(status) => ips = sandbox_ips(&status),
                Err(err) if err.is_not_found() => continue,
                Err(err) => return Err(err),
            }
        }
        pod.sandboxes.push(SandboxInfo {
            id: sandbox.id.clone(),
            attempt: sandbox.metadata.as_ref().map_or(0, |m| m.attempt),
            ready,
            created_at: timestamp(sandbox.created_at).unwrap_or(Timestamp::UNIX_EPOCH),
            ips,
        });
    }
    let mut containers: Vec<&cri::Container> =
        snapshot.containers.get(uid).into_iter().flatten().collect();
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    for container in containers {
        let status = match runtime.container_status(&container.id).await {
            Ok(status) => status,
            Err(err) if err.is_not_found() => continue,
            Err(err) => return Err(err),
        };
        pod.containers.push(container_info(container, &status));
    }
    Ok(pod)
}

/// The IPs a sandbox's status reports, primary first.
fn sandbox_ips(status: &cri::PodSandboxStatus) -> Vec<IpAddr> {
    let Some(network) = status.network.as_ref() else {
        return Vec::new();
    };
    std::iter::once(network.ip.as_str())
        .chain(network.additional_ips.iter().map(|ip| ip.ip.as_str()))
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// The runtime's message, and after it what the container left as its termination message
/// (upstream's `toKubeContainerStatus`).
fn with_termination_message(
    status: &cri::ContainerStatus,
    annotations: &HashMap<String, String>,
) -> String {
    let written = crate::logs::termination_message(status, annotations);
    match (status.message.is_empty(), written.is_empty()) {
        (_, true) => status.message.clone(),
        (true, false) => written,
        (false, false) => format!("{}: {written}", status.message),
    }
}

fn container_info(container: &cri::Container, status: &cri::ContainerStatus) -> ContainerInfo {
    let annotations_map = if status.annotations.is_empty() {
        &container.annotations
    } else {
        &status.annotations
    };
    let name = label(&container.labels, labels::CONTAINER_NAME)
        .map(str::to_owned)
        .or_else(|| container.metadata.as_ref().map(|m| m.name.clone()))
        .unwrap_or_default();
    let restart_count = label(annotations_map, annotations::RESTART_COUNT)
        .and_then(|count| count.parse().ok())
        .or_else(|| {
            container
                .metadata
                .as_ref()
                .and_then(|m| i32::try_from(m.attempt).ok())
        })
        .unwrap_or(0);
    ContainerInfo {
        id: container.id.clone(),
        name,
        sandbox_id: container.pod_sandbox_id.clone(),
        state: ContainerState::from_cri(status.state),
        created_at: timestamp(status.created_at)
            .or_else(|| timestamp(container.created_at))
            .unwrap_or(Timestamp::UNIX_EPOCH),
        started_at: timestamp(status.started_at),
        finished_at: timestamp(status.finished_at),
        exit_code: status.exit_code,
        reason: status.reason.clone(),
        message: with_termination_message(status, annotations_map),
        image: status
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .or_else(|| container.image.as_ref().map(|i| i.image.clone()))
            .unwrap_or_default(),
        image_ref: if status.image_ref.is_empty() {
            container.image_ref.clone()
        } else {
            status.image_ref.clone()
        },
        restart_count,
        hash: label(annotations_map, annotations::CONTAINER_HASH)
            .unwrap_or_default()
            .to_owned(),
        termination_grace_period: label(annotations_map, annotations::TERMINATION_GRACE_PERIOD)
            .and_then(|seconds| seconds.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_times_are_nanoseconds_and_zero_is_unset() {
        assert_eq!(timestamp(0), None);
        assert_eq!(
            timestamp(1_767_225_600_000_000_000).map(|t| t.to_string()),
            Some("2026-01-01T00:00:00Z".to_owned())
        );
    }

    #[test]
    fn a_sandbox_reports_its_primary_ip_first() {
        let status = cri::PodSandboxStatus {
            network: Some(cri::PodSandboxNetworkStatus {
                ip: "10.42.0.7".to_owned(),
                additional_ips: vec![cri::PodIp {
                    ip: "fd00::7".to_owned(),
                }],
            }),
            ..cri::PodSandboxStatus::default()
        };
        assert_eq!(
            sandbox_ips(&status),
            vec![
                "10.42.0.7".parse::<IpAddr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
        assert!(sandbox_ips(&cri::PodSandboxStatus::default()).is_empty());
    }

    #[test]
    fn a_container_is_read_from_its_labels_and_annotations() {
        let labels_map: HashMap<String, String> =
            [(labels::POD_UID, "u1"), (labels::CONTAINER_NAME, "app")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let annotations_map: HashMap<String, String> = [
            (annotations::RESTART_COUNT, "3"),
            (annotations::CONTAINER_HASH, "abc"),
            (annotations::TERMINATION_GRACE_PERIOD, "30"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let container = cri::Container {
            id: "c1".to_owned(),
            pod_sandbox_id: "s1".to_owned(),
            labels: labels_map,
            annotations: annotations_map,
            created_at: 5,
            ..cri::Container::default()
        };
        let status = cri::ContainerStatus {
            id: "c1".to_owned(),
            state: cri::ContainerState::ContainerExited as i32,
            exit_code: 137,
            reason: "OOMKilled".to_owned(),
            started_at: 1_767_225_600_000_000_000,
            ..cri::ContainerStatus::default()
        };
        let info = container_info(&container, &status);
        assert_eq!(info.name, "app");
        assert_eq!(info.state, ContainerState::Exited);
        assert_eq!(info.restart_count, 3);
        assert_eq!(info.hash, "abc");
        assert_eq!(info.termination_grace_period, Some(30));
        assert_eq!(info.reason, "OOMKilled");
        assert_eq!(info.finished_at, None);
        assert!(info.started_at.is_some());
    }
}
