//! [`Runtime`] over a CRI endpoint (containerd's CRI plugin): each method is one gRPC call with a
//! deadline, and gRPC failures become [`RuntimeError`]s that keep the runtime's message (what
//! users see in events and statuses, as upstream shows it).

use std::time::Duration;

use async_trait::async_trait;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::runtime::{Runtime, RuntimeError, RuntimeErrorKind, RuntimeReadiness, RuntimeVersion};

/// The deadline of most calls (upstream's `--runtime-request-timeout`, 2 minutes).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A CRI runtime behind one gRPC channel.
#[derive(Clone, Debug)]
pub struct CriRuntime {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl CriRuntime {
    /// A runtime over the CRI's two services (`k3rs_containerd::CriClient` hands out both).
    pub fn new(
        runtime: RuntimeServiceClient<Channel>,
        images: ImageServiceClient<Channel>,
    ) -> Self {
        CriRuntime { runtime, images }
    }
}

fn request<T>(message: T, timeout: Option<Duration>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

fn error(operation: &'static str) -> impl FnOnce(tonic::Status) -> RuntimeError {
    move |status| {
        let kind = match status.code() {
            tonic::Code::NotFound => RuntimeErrorKind::NotFound,
            tonic::Code::Unavailable => RuntimeErrorKind::Unavailable,
            tonic::Code::DeadlineExceeded => RuntimeErrorKind::DeadlineExceeded,
            _ => RuntimeErrorKind::Failed,
        };
        RuntimeError {
            kind,
            operation,
            message: format!(
                "rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            ),
            source: Some(Box::new(status)),
        }
    }
}

#[async_trait]
impl Runtime for CriRuntime {
    async fn version(&self) -> Result<RuntimeVersion, RuntimeError> {
        let answer = self
            .runtime
            .clone()
            .version(request(cri::VersionRequest::default(), Some(CALL_TIMEOUT)))
            .await
            .map_err(error("Version"))?
            .into_inner();
        Ok(RuntimeVersion {
            name: answer.runtime_name,
            version: answer.runtime_version,
        })
    }

    async fn readiness(&self) -> Result<RuntimeReadiness, RuntimeError> {
        let answer = self
            .runtime
            .clone()
            .status(request(cri::StatusRequest::default(), Some(CALL_TIMEOUT)))
            .await
            .map_err(error("Status"))?
            .into_inner();
        Ok(RuntimeReadiness::from_cri(answer.status.as_ref()))
    }

    async fn update_pod_cidr(&self, pod_cidr: &str) -> Result<(), RuntimeError> {
        let message = cri::UpdateRuntimeConfigRequest {
            runtime_config: Some(cri::RuntimeConfig {
                network_config: Some(cri::NetworkConfig {
                    pod_cidr: pod_cidr.to_owned(),
                }),
            }),
        };
        self.runtime
            .clone()
            .update_runtime_config(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("UpdateRuntimeConfig"))?;
        Ok(())
    }

    async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String, RuntimeError> {
        let message = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        // Creating the network (CNI) and pulling nothing: the runtime's own deadline applies.
        Ok(self
            .runtime
            .clone()
            .run_pod_sandbox(request(message, Some(4 * CALL_TIMEOUT)))
            .await
            .map_err(error("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let message = cri::StopPodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        self.runtime
            .clone()
            .stop_pod_sandbox(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("StopPodSandbox"))?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let message = cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        self.runtime
            .clone()
            .remove_pod_sandbox(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("RemovePodSandbox"))?;
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, RuntimeError> {
        let message = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: false,
        };
        self.runtime
            .clone()
            .pod_sandbox_status(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("PodSandboxStatus"))?
            .into_inner()
            .status
            .ok_or_else(|| {
                RuntimeError::new(
                    RuntimeErrorKind::NotFound,
                    "PodSandboxStatus",
                    format!("sandbox {id} has no status"),
                )
            })
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<cri::PodSandbox>, RuntimeError> {
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(request(
                cri::ListPodSandboxRequest::default(),
                Some(CALL_TIMEOUT),
            ))
            .await
            .map_err(error("ListPodSandbox"))?
            .into_inner()
            .items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, RuntimeError> {
        let message = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(self
            .runtime
            .clone()
            .create_container(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("CreateContainer"))?
            .into_inner()
            .container_id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let message = cri::StartContainerRequest {
            container_id: id.to_owned(),
        };
        self.runtime
            .clone()
            .start_container(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("StartContainer"))?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<(), RuntimeError> {
        let message = cri::StopContainerRequest {
            container_id: id.to_owned(),
            timeout: timeout_seconds,
        };
        let grace = Duration::from_secs(u64::try_from(timeout_seconds).unwrap_or(0));
        self.runtime
            .clone()
            .stop_container(request(message, Some(CALL_TIMEOUT + grace)))
            .await
            .map_err(error("StopContainer"))?;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let message = cri::RemoveContainerRequest {
            container_id: id.to_owned(),
        };
        self.runtime
            .clone()
            .remove_container(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("RemoveContainer"))?;
        Ok(())
    }

    async fn list_containers(&self) -> Result<Vec<cri::Container>, RuntimeError> {
        Ok(self
            .runtime
            .clone()
            .list_containers(request(
                cri::ListContainersRequest::default(),
                Some(CALL_TIMEOUT),
            ))
            .await
            .map_err(error("ListContainers"))?
            .into_inner()
            .containers)
    }

    async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, RuntimeError> {
        let message = cri::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        self.runtime
            .clone()
            .container_status(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("ContainerStatus"))?
            .into_inner()
            .status
            .ok_or_else(|| {
                RuntimeError::new(
                    RuntimeErrorKind::NotFound,
                    "ContainerStatus",
                    format!("container {id} has no status"),
                )
            })
    }

    async fn reopen_container_log(&self, id: &str) -> Result<(), RuntimeError> {
        let message = cri::ReopenContainerLogRequest {
            container_id: id.to_owned(),
        };
        self.runtime
            .clone()
            .reopen_container_log(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("ReopenContainerLog"))?;
        Ok(())
    }

    async fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        timeout_seconds: i64,
    ) -> Result<cri::ExecSyncResponse, RuntimeError> {
        let message = cri::ExecSyncRequest {
            container_id: id.to_owned(),
            cmd: command,
            timeout: timeout_seconds,
        };
        let limit = Duration::from_secs(u64::try_from(timeout_seconds).unwrap_or(0));
        Ok(self
            .runtime
            .clone()
            .exec_sync(request(message, Some(CALL_TIMEOUT + limit)))
            .await
            .map_err(error("ExecSync"))?
            .into_inner())
    }

    async fn image_status(&self, image: &str) -> Result<Option<cri::Image>, RuntimeError> {
        let message = cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: image.to_owned(),
                ..cri::ImageSpec::default()
            }),
            verbose: false,
        };
        Ok(self
            .images
            .clone()
            .image_status(request(message, Some(CALL_TIMEOUT)))
            .await
            .map_err(error("ImageStatus"))?
            .into_inner()
            .image)
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<cri::AuthConfig>,
        sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String, RuntimeError> {
        let message = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.to_owned(),
                ..cri::ImageSpec::default()
            }),
            auth,
            sandbox_config,
        };
        // A pull takes as long as the image is big: no deadline (upstream's kubelet has none
        // either, only the runtime's progress timeout).
        Ok(self
            .images
            .clone()
            .pull_image(request(message, None))
            .await
            .map_err(error("PullImage"))?
            .into_inner()
            .image_ref)
    }

    async fn list_container_stats(&self) -> Result<Vec<cri::ContainerStats>, RuntimeError> {
        Ok(self
            .runtime
            .clone()
            .list_container_stats(request(
                cri::ListContainerStatsRequest::default(),
                Some(CALL_TIMEOUT),
            ))
            .await
            .map_err(error("ListContainerStats"))?
            .into_inner()
            .stats)
    }
}
