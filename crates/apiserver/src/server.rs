//! The listener: TCP accept loop, TLS handshakes, HTTP/1.1 + HTTP/2, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::routes::{self, AppState};
use crate::supervise::{supervise, Lifetime, Readiness};
use crate::{tls, ApiServerConfig, ApiServerError};

/// How long an HTTP/1.1 connection may wait for the next request's headers: both the time a
/// client may take to send them and how long an idle keep-alive connection stays open (hyper
/// starts this timer as soon as it waits for a request head, so it is also the idle timeout).
///
/// It must be longer than the clients' own idle limit, so that the client, which knows whether
/// it is about to send, is the side that retires an idle connection. hyper-util's pool (kube-rs,
/// so the in-process controllers and scheduler) and Go's `http.Transport` (kubectl, client-go)
/// stop reusing a connection after 90 s idle. With 30 s here, the server closed a pooled
/// connection while a controller's periodic request was being written to it, and the client
/// logged `failed with error client error (SendRequest)` every minute or two on an idle server.
/// kube-apiserver keeps idle connections for 90 s and slow headers for 32 s; hyper has one timer
/// for both, so the longer one wins.
const KEEP_ALIVE_AND_HEADER_TIMEOUT: Duration = Duration::from_secs(120);

/// Who is on the other end of a connection, as far as TLS tells. Every request carries one in
/// its extensions; authentication reads the client certificate from it.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// The verified client certificate chain (leaf first), or `None` for an anonymous client.
    pub client_cert_chain: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// The negotiated ALPN protocol (`h2` or `http/1.1`), if any.
    pub alpn_protocol: Option<Vec<u8>>,
}

/// A bound, not yet serving API server.
pub struct ApiServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    shutdown_grace: Duration,
    tls_handshake_timeout: Duration,
}

impl ApiServer {
    /// Checks the TLS material and binds the listening socket, so that a bad certificate or a
    /// port in use is reported before anything is served.
    pub async fn bind(config: ApiServerConfig) -> Result<Self, ApiServerError> {
        let tls = tls::server_config(&config.tls)?;
        let listener = TcpListener::bind(config.bind_address)
            .await
            .map_err(|source| ApiServerError::Bind {
                addr: config.bind_address,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(ApiServerError::LocalAddr)?;
        let auth = crate::auth::Auth::new(&config.service_accounts)
            .map_err(|err| ApiServerError::ServiceAccountKey(Box::new(err)))?;
        let service_cidr = crate::api::ServiceCidr::parse(&config.service_cidr)
            .map_err(ApiServerError::ServiceCidr)?;
        let mut state = AppState::new(config.store, service_cidr, local_addr.port(), auth);
        state.kubelet_client = config
            .kubelet_client
            .as_ref()
            .map(crate::kubelet_client::KubeletClient::new)
            .transpose()?;
        Ok(Self {
            listener,
            local_addr,
            acceptor: TlsAcceptor::from(tls),
            state: Arc::new(state),
            shutdown_grace: config.shutdown_grace,
            tls_handshake_timeout: config.tls_handshake_timeout,
        })
    }

    /// The readiness checks `/readyz` runs besides its own: a component that runs beside the
    /// API server (the controllers) registers its check here.
    pub fn readiness(&self) -> Readiness {
        self.state.readiness.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting, fails `/readyz`, lets open
    /// connections finish for up to the grace period, and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ApiServerError> {
        let Self {
            listener,
            local_addr,
            acceptor,
            state,
            shutdown_grace,
            tls_handshake_timeout,
        } = self;
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(KEEP_ALIVE_AND_HEADER_TIMEOUT);
        let builder = Arc::new(builder);
        tracing::info!(address = %local_addr, "API server listening");
        let policy_cache = supervise(
            "rbac-policy-cache",
            Lifetime::UntilShutdown,
            &state.readiness,
            {
                let state = Arc::clone(&state);
                move || {
                    let state = Arc::clone(&state);
                    async move { state.auth.policy.run(state.store.clone()).await }
                }
            },
        );
        // Before the first request and before the bootstrap claims the `kubernetes` Service's
        // address: with no claim in flight, the repair can tell a leaked record from a new one.
        match crate::api::repair_allocations(state.store.as_ref(), &state.registry).await {
            Ok(repaired) => tracing::info!(
                ?repaired,
                "checked the ClusterIP and NodePort records against the Services"
            ),
            Err(err) => {
                tracing::warn!(error = %err.message, "repairing the ClusterIP and NodePort records failed")
            }
        }
        let bootstrap = supervise("bootstrap", Lifetime::UntilDone, &state.readiness, {
            let state = Arc::clone(&state);
            move || bootstrap(Arc::clone(&state))
        });
        let crd_controller = supervise(
            "crd-controller",
            Lifetime::UntilShutdown,
            &state.readiness,
            {
                let state = Arc::clone(&state);
                move || crate::api::crd::run(Arc::clone(&state))
            },
        );

        tokio::pin!(shutdown);
        loop {
            let (tcp, remote_addr) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Usually EMFILE/ENFILE: back off instead of spinning.
                        tracing::warn!(error = %err, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let connection = Connection {
                acceptor: acceptor.clone(),
                builder: builder.clone(),
                state: state.clone(),
                watcher: graceful.watcher(),
                remote_addr,
                tls_handshake_timeout,
            };
            tokio::spawn(connection.run(tcp));
        }

        drop(listener);
        bootstrap.abort();
        policy_cache.abort();
        crd_controller.abort();
        state.shutting_down.store(true, Ordering::SeqCst);
        // Ends watches and handshakes in progress; idle keep-alive connections close as the
        // graceful shutdown below reaches them, in-flight requests finish within the grace.
        state.shutdown.send_replace(true);
        tracing::info!(
            open_connections = graceful.count(),
            "API server shutting down"
        );
        if tokio::time::timeout(shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?shutdown_grace, "open connections did not finish in time; closing them");
        }
        tracing::info!("API server stopped");
        Ok(())
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

struct Connection {
    acceptor: TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    state: Arc<AppState>,
    watcher: hyper_util::server::graceful::Watcher,
    remote_addr: SocketAddr,
    tls_handshake_timeout: Duration,
}

impl Connection {
    async fn run(self, tcp: TcpStream) {
        let remote_addr = self.remote_addr;
        let _ = tcp.set_nodelay(true);
        // A connection that has not finished its handshake holds the graceful-shutdown watcher
        // too: at shutdown it is dropped at once rather than waited for until the handshake
        // times out.
        let mut shutdown = self.state.shutdown.subscribe();
        let handshake = tokio::time::timeout(self.tls_handshake_timeout, self.acceptor.accept(tcp));
        let tls = tokio::select! {
            done = handshake => match done {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%remote_addr, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote_addr, "TLS handshake timed out");
                    return;
                }
            },
            _ = async { shutdown.wait_for(|stopping| *stopping).await.is_ok() } => {
                tracing::debug!(%remote_addr, "dropped a connection in its TLS handshake at shutdown");
                return;
            }
        };
        let (_, session) = tls.get_ref();
        let info = ConnectionInfo {
            remote_addr,
            client_cert_chain: session
                .peer_certificates()
                .map(|chain| Arc::new(chain.to_vec())),
            alpn_protocol: session.alpn_protocol().map(<[u8]>::to_vec),
        };
        let state = self.state;
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(info.clone());
            let state = state.clone();
            async move { Ok::<_, Infallible>(routes::handle(&state, request).await) }
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(tls), service);
        if let Err(err) = self.watcher.watch(connection.into_owned()).await {
            tracing::debug!(%remote_addr, error = %err, "connection ended with an error");
        }
    }
}

/// Creates the system namespaces, then the default RBAC policy, retrying until the store takes
/// them; `/readyz` reports not ready until then.
async fn bootstrap(state: Arc<AppState>) {
    let namespaces = || async {
        crate::api::bootstrap(state.store.as_ref(), &state.registry).await?;
        crate::api::bootstrap_kubernetes_service(
            state.store.as_ref(),
            &state.registry,
            state.service_cidr,
            state.api_port,
        )
        .await
    };
    let namespaces = namespaces
        .retry(crate::retry::store_backoff())
        .notify(|err, _| {
            tracing::warn!(error = %err, "creating the system namespaces failed; retrying")
        })
        .await;
    if namespaces.is_err() {
        return;
    }
    state
        .bootstrapped
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // The store backoff never gives up, so this ends only once the roles are in place.
    let _ = (|| crate::auth::bootstrap(&state))
        .retry(crate::retry::store_backoff())
        .notify(|err, _| {
            tracing::warn!(error = %err, "creating the default RBAC roles failed; retrying")
        })
        .await;
}
