//! The kubelet's HTTPS API (`:10250`, upstream's `pkg/kubelet/server`): `/healthz`, `/pods`,
//! `/containerLogs/{namespace}/{pod}/{container}` and `/logs/` (the node's `/var/log`), for the API server's `pods/log` and
//! for anyone the API server says may (client certificate or bearer token, then a
//! SubjectAccessReview on the node). It also runs the container log rotation.

pub mod authn;
pub mod authz;
pub mod container_logs;
pub mod node_logs;
mod response;
mod routes;
mod tls;

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k3rs_runtime::informer::Informers;
use k3rs_runtime::Health;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::logs::{LogRotation, RotationPolicy};
use crate::runtime::Runtime;

/// The kubelet's port (upstream's default `--port`).
pub const DEFAULT_PORT: u16 = 10250;
/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server needs: where to listen, its certificate and the CA of client certificates.
#[derive(Clone)]
pub struct KubeletServerConfig {
    pub bind_address: SocketAddr,
    pub node_name: String,
    /// The serving certificate (leaf first), PEM.
    pub serving_cert_pem: String,
    /// Its key, PEM.
    pub serving_key_pem: String,
    /// The CA client certificates must chain to (the cluster CA), PEM.
    pub client_ca_pem: String,
    /// When container logs are rotated.
    pub log_rotation: RotationPolicy,
    /// What `/logs/` serves (`nodes/log`): `/var/log` on a node.
    pub node_logs_dir: std::path::PathBuf,
    /// The kubelet's directory, whose filesystem `/stats/summary` reports as the node's.
    pub kubelet_root: std::path::PathBuf,
}

impl fmt::Debug for KubeletServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeletServerConfig")
            .field("bind_address", &self.bind_address)
            .field("node_name", &self.node_name)
            .field("serving_key_pem", &"<redacted>")
            .field("log_rotation", &self.log_rotation)
            .field("node_logs_dir", &self.node_logs_dir)
            .finish_non_exhaustive()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("kubelet server: invalid {what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("kubelet server: TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    #[error("kubelet server: client certificate verifier: {0}")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("kubelet server: listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What every request handler reads.
#[derive(Debug)]
pub(crate) struct ServerState {
    pub(crate) node_logs_dir: std::path::PathBuf,
    pub(crate) runtime: Arc<dyn Runtime>,
    /// The pods bound to the node, as the API has them.
    pub(crate) pods: Arc<k3rs_runtime::informer::Informer<Pod>>,
    pub(crate) tokens: authn::TokenAuthenticator,
    pub(crate) authorizer: authz::Authorizer,
    /// `/stats/summary` and `/metrics/resource`.
    pub(crate) stats: crate::stats::StatsProvider,
}

/// The running server. Dropping it does not stop it: call [`KubeletServer::stop`].
#[derive(Debug)]
pub struct KubeletServer {
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
    rotation: JoinHandle<()>,
    informers: Informers,
}

impl KubeletServer {
    /// Binds the port and serves; `client` is the kubelet's own (TokenReview,
    /// SubjectAccessReview, its pods).
    pub async fn start(
        config: KubeletServerConfig,
        client: kube::Client,
        runtime: Arc<dyn Runtime>,
    ) -> Result<KubeletServer, ServerError> {
        let tls = tls::server_config(
            &config.serving_cert_pem,
            &config.serving_key_pem,
            &config.client_ca_pem,
        )?;
        let listener = TcpListener::bind(config.bind_address)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.bind_address,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.bind_address,
            source,
        })?;
        let informers = Informers::new(client.clone(), Arc::new(Health::default()));
        let pods = informers.get_selected::<Pod>(&format!("spec.nodeName={}", config.node_name));
        informers.start();
        let state = Arc::new(ServerState {
            node_logs_dir: config.node_logs_dir.clone(),
            runtime: runtime.clone(),
            pods,
            tokens: authn::TokenAuthenticator::new(client.clone()),
            authorizer: authz::Authorizer::new(client, config.node_name.clone()),
            stats: crate::stats::StatsProvider::new(
                runtime.clone(),
                config.node_name.clone(),
                config.kubelet_root.clone(),
            ),
        });
        let accept = tokio::spawn(accept(listener, TlsAcceptor::from(tls), state));
        let rotation = tokio::spawn(LogRotation::new(runtime, config.log_rotation).run());
        tracing::info!(address = %local_addr, "kubelet server listening");
        Ok(KubeletServer {
            local_addr,
            accept,
            rotation,
            informers,
        })
    }

    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and rotating logs.
    pub async fn stop(self) {
        self.accept.abort();
        self.rotation.abort();
        self.informers.abort();
        let _ = self.accept.await;
        let _ = self.rotation.await;
    }
}

async fn accept(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<ServerState>) {
    loop {
        let (tcp, remote_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("kubelet server: accepting a connection: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%remote_addr, "kubelet server: TLS handshake: {err}");
                    return;
                }
                Err(_) => return,
            };
            let certificate_user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| authn::certificate_user(leaf));
            let service = service_fn(move |request: http::Request<Incoming>| {
                let state = state.clone();
                let user = certificate_user.clone();
                async move { Ok::<_, Infallible>(routes::handle(&state, user, request).await) }
            });
            if let Err(err) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%remote_addr, "kubelet server: connection: {err}");
            }
        });
    }
}
