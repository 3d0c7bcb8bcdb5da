//! A CRI v1 client over a unix socket (containerd's CRI plugin, or any CRI runtime).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{StatusRequest, StatusResponse, VersionRequest, VersionResponse};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The CRI API version the kubelet announces in `Version`.
pub const CRI_API_VERSION: &str = "v1";

/// The largest CRI message accepted (the kubelet's limit: long container lists and image lists
/// pass the gRPC default of 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// A failed CRI call or connection.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The endpoint could not be reached.
    #[error("cri socket {socket}: cannot connect")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// tonic's transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The runtime answered a call with an error (or the connection broke during it).
    #[error("cri {call} on {socket}: {}", status.message())]
    Call {
        /// The RPC.
        call: &'static str,
        /// The socket.
        socket: PathBuf,
        /// The gRPC status, with its code and details.
        #[source]
        status: Box<tonic::Status>,
    },
    /// Status did not report RuntimeReady in time.
    #[error("cri runtime on {socket} not ready after {waited:?}: {conditions}")]
    NotReady {
        /// The socket.
        socket: PathBuf,
        /// How long it was polled.
        waited: Duration,
        /// The last conditions it reported.
        conditions: Box<RuntimeConditions>,
    },
}

impl CriError {
    /// The gRPC status of a failed call.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            CriError::Call { status, .. } => Some(status),
            CriError::Connect { .. } | CriError::NotReady { .. } => None,
        }
    }
}

/// A connection to a CRI endpoint. Cloning is cheap (the clients share one HTTP/2 channel); the
/// channel reconnects by itself when the runtime restarts.
#[derive(Debug, Clone)]
pub struct CriClient {
    socket: PathBuf,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl CriClient {
    /// Connects to the CRI endpoint at the unix socket `socket`; fails when nothing accepts
    /// there.
    pub async fn connect(socket: &Path) -> Result<CriClient, CriError> {
        let channel = endpoint()
            .connect_with_connector(unix_connector(socket))
            .await
            .map_err(|source| CriError::Connect {
                socket: socket.to_path_buf(),
                source,
            })?;
        Ok(CriClient::from_channel(socket, channel))
    }

    /// A client for the CRI endpoint at `socket` that connects on its first call (so it can
    /// be made before the runtime is up; calls fail until it is).
    pub fn connect_lazy(socket: &Path) -> CriClient {
        let channel = endpoint().connect_with_connector_lazy(unix_connector(socket));
        CriClient::from_channel(socket, channel)
    }

    fn from_channel(socket: &Path, channel: Channel) -> CriClient {
        CriClient {
            socket: socket.to_path_buf(),
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            images: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES),
        }
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The CRI RuntimeService client (pods, containers, exec, stats).
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// The CRI ImageService client (pull, list, remove, fs info).
    pub fn images(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    /// A [`CriError::Call`] for `status` from the RPC `call`.
    pub fn call_error(&self, call: &'static str, status: tonic::Status) -> CriError {
        CriError::Call {
            call,
            socket: self.socket.clone(),
            status: Box::new(status),
        }
    }

    /// `RuntimeService/Version`: the runtime's name and version.
    pub async fn version(&self) -> Result<VersionResponse, CriError> {
        let request = VersionRequest {
            version: CRI_API_VERSION.to_owned(),
        };
        self.runtime()
            .version(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| self.call_error("Version", status))
    }

    /// `RuntimeService/Status`, reduced to its two conditions.
    pub async fn status(&self) -> Result<RuntimeConditions, CriError> {
        self.runtime()
            .status(StatusRequest { verbose: false })
            .await
            .map(|response| RuntimeConditions::from_status(response.get_ref()))
            .map_err(|status| self.call_error("Status", status))
    }

    /// Polls `Status` every `interval` until it reports RuntimeReady (NetworkReady may still be
    /// false: CRI reports it only once a CNI conflist exists) and returns both conditions. Gives
    /// up after `timeout` with the last conditions seen; a failing call ends the wait at once.
    pub async fn wait_runtime_ready(
        &self,
        timeout: Duration,
        interval: Duration,
    ) -> Result<RuntimeConditions, CriError> {
        let started = tokio::time::Instant::now();
        loop {
            let conditions = self.status().await?;
            if conditions.runtime.ready {
                return Ok(conditions);
            }
            if started.elapsed() >= timeout {
                return Err(CriError::NotReady {
                    socket: self.socket.clone(),
                    waited: started.elapsed(),
                    conditions: Box::new(conditions),
                });
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// Dials `socket` for every new HTTP/2 connection of a channel.
fn unix_connector(
    socket: &Path,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<UnixStream>,
    Error = io::Error,
    Future = impl std::future::Future<Output = io::Result<TokioIo<UnixStream>>> + Send,
> + Send
       + 'static {
    let target = socket.to_path_buf();
    tower::service_fn(move |_: Uri| {
        let target = target.clone();
        async move { Ok(TokioIo::new(UnixStream::connect(target).await?)) }
    })
}

fn endpoint() -> Endpoint {
    // The authority is never used: the connector dials the socket. Keep-alive pings notice a
    // runtime that died without closing the connection.
    Endpoint::from_static("http://cri.invalid")
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
}

/// One CRI runtime condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// Whether it holds.
    pub ready: bool,
    /// The runtime's one-word reason when it does not (empty when it did not say, or the
    /// condition was missing).
    pub reason: String,
    /// The runtime's message.
    pub message: String,
}

/// The two runtime conditions CRI `Status` must report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConditions {
    /// `RuntimeReady`: the runtime can run pods.
    pub runtime: Condition,
    /// `NetworkReady`: pod networking (CNI) is configured.
    pub network: Condition,
}

impl RuntimeConditions {
    /// The conditions of a `Status` answer; a condition missing from it is not ready.
    pub fn from_status(status: &StatusResponse) -> RuntimeConditions {
        let find = |kind: &str| -> Condition {
            status
                .status
                .iter()
                .flat_map(|status| status.conditions.iter())
                .find(|condition| condition.r#type == kind)
                .map(|condition| Condition {
                    ready: condition.status,
                    reason: condition.reason.clone(),
                    message: condition.message.clone(),
                })
                .unwrap_or_else(|| Condition {
                    ready: false,
                    reason: "NotReported".to_owned(),
                    message: format!("the runtime's status has no {kind} condition"),
                })
        };
        RuntimeConditions {
            runtime: find("RuntimeReady"),
            network: find("NetworkReady"),
        }
    }
}

impl std::fmt::Display for RuntimeConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn one(f: &mut std::fmt::Formatter<'_>, name: &str, c: &Condition) -> std::fmt::Result {
            write!(f, "{name}={}", c.ready)?;
            if !c.ready && (!c.reason.is_empty() || !c.message.is_empty()) {
                write!(f, " ({}: {})", c.reason, c.message)?;
            }
            Ok(())
        }
        one(f, "RuntimeReady", &self.runtime)?;
        write!(f, ", ")?;
        one(f, "NetworkReady", &self.network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{RuntimeCondition, RuntimeStatus};

    fn condition(kind: &str, status: bool, reason: &str, message: &str) -> RuntimeCondition {
        RuntimeCondition {
            r#type: kind.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn conditions_of_a_node_without_cni_config() {
        // What containerd 1.6 answers before a conflist exists.
        let response = StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![
                    condition("RuntimeReady", true, "", ""),
                    condition(
                        "NetworkReady",
                        false,
                        "NetworkPluginNotReady",
                        "Network plugin returns error: cni plugin not initialized",
                    ),
                ],
            }),
            ..Default::default()
        };
        let conditions = RuntimeConditions::from_status(&response);
        assert!(conditions.runtime.ready);
        assert!(!conditions.network.ready);
        assert_eq!(conditions.network.reason, "NetworkPluginNotReady");
        assert_eq!(
            conditions.to_string(),
            "RuntimeReady=true, NetworkReady=false (NetworkPluginNotReady: \
             Network plugin returns error: cni plugin not initialized)"
        );
    }

    #[test]
    fn missing_conditions_are_not_ready() {
        let conditions = RuntimeConditions::from_status(&StatusResponse::default());
        assert!(!conditions.runtime.ready);
        assert!(!conditions.network.ready);
        assert_eq!(conditions.runtime.reason, "NotReported");
        let only_runtime = StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![condition("RuntimeReady", true, "", "")],
            }),
            ..Default::default()
        };
        let conditions = RuntimeConditions::from_status(&only_runtime);
        assert!(conditions.runtime.ready);
        assert!(!conditions.network.ready);
    }

    #[test]
    fn call_errors_keep_the_status() {
        let error = CriError::Call {
            call: "Version",
            socket: "/run/x.sock".into(),
            status: Box::new(tonic::Status::unimplemented("unknown service")),
        };
        assert_eq!(
            error.status().map(tonic::Status::code),
            Some(tonic::Code::Unimplemented)
        );
        assert_eq!(
            error.to_string(),
            "cri Version on /run/x.sock: unknown service"
        );
    }
}
