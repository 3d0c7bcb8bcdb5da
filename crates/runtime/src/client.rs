//! The API client every controller shares: HTTPS to the API server with a client certificate,
//! exactly as a controller manager on another machine would connect.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{HeaderValue, USER_AGENT};
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

/// Why a component's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The generated kubeconfig did not decode (a bug, never the operator's input).
    #[error("client of {program}: building its kubeconfig")]
    Kubeconfig {
        /// The component.
        program: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The kubeconfig's certificates, key or URL are unusable.
    #[error("client of {program}: loading its kubeconfig")]
    Load {
        /// The component.
        program: &'static str,
        /// Why it does not load.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The `User-Agent` is not a valid header value.
    #[error("client of {program}: user agent {agent:?}")]
    UserAgent {
        /// The component.
        program: &'static str,
        /// The user agent.
        agent: String,
        /// Why it is invalid.
        #[source]
        source: http::header::InvalidHeaderValue,
    },
    /// The client could not be built from the configuration (TLS settings).
    #[error("client of {program}: building the client")]
    Build {
        /// The component.
        program: &'static str,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// Who a component is and how it reaches the API server.
#[derive(Clone)]
pub struct Identity {
    /// The API server's URL (`https://127.0.0.1:6443`).
    pub server_url: String,
    /// The cluster CA certificate (PEM) the serving certificate chains to.
    pub ca_pem: String,
    /// The component's client certificate (PEM); its subject names the Kubernetes user.
    pub cert_pem: String,
    /// The client certificate's private key (PEM), a secret: its `Debug` never shows it.
    pub key_pem: SecretString,
    /// The program name sent as `User-Agent`, which the API server records as the field
    /// manager of the component's writes (`kube-controller-manager`, `kube-scheduler`).
    pub program: &'static str,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never appears in logs (a `SecretString` prints as redacted).
        f.debug_struct("Identity")
            .field("server_url", &self.server_url)
            .field("key_pem", &self.key_pem)
            .field("program", &self.program)
            .finish_non_exhaustive()
    }
}

/// A client for `identity`. It only builds the connection settings: nothing is sent until the
/// first request, so the API server need not be up yet.
pub async fn connect(identity: &Identity) -> Result<kube::Client, ClientError> {
    let program = identity.program;
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "k3rs", "cluster": {
            "server": identity.server_url,
            "certificate-authority-data": STANDARD.encode(&identity.ca_pem),
        }}],
        "users": [{"name": identity.program, "user": {
            "client-certificate-data": STANDARD.encode(&identity.cert_pem),
            "client-key-data": STANDARD.encode(identity.key_pem.expose_secret()),
        }}],
        "contexts": [{"name": "k3rs", "context": {"cluster": "k3rs", "user": identity.program}}],
        "current-context": "k3rs",
    });
    let kubeconfig: Kubeconfig = serde_json::from_value(kubeconfig)
        .map_err(|source| ClientError::Kubeconfig { program, source })?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|source| ClientError::Load { program, source })?;
    let agent = format!(
        "{}/v{} (linux/amd64) k3rs",
        identity.program,
        env!("CARGO_PKG_VERSION")
    );
    let agent = HeaderValue::from_str(&agent).map_err(|source| ClientError::UserAgent {
        program,
        agent: agent.clone(),
        source,
    })?;
    config.headers.push((USER_AGENT, agent));
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|source| ClientError::Build { program, source })?;
    Ok(builder
        .with_layer(&ComponentSpanLayer::new(program))
        .build())
}

/// Runs every request of a component's client inside an ERROR-level `client{component=…}`
/// span (enabled whenever errors are logged), around kube's own `HTTP` span: a failed request
/// is logged as `client{component=kube-scheduler}:HTTP{…}: … failed with error …`, naming who
/// sent it.
#[derive(Clone, Copy, Debug)]
pub struct ComponentSpanLayer {
    component: &'static str,
}

impl ComponentSpanLayer {
    /// A layer naming `component` (`kube-controller-manager`, `kube-scheduler`).
    pub fn new(component: &'static str) -> Self {
        Self { component }
    }
}

impl<S> tower::Layer<S> for ComponentSpanLayer {
    type Service = ComponentSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ComponentSpan {
            inner,
            component: self.component,
        }
    }
}

/// The service of [`ComponentSpanLayer`].
#[derive(Clone, Debug)]
pub struct ComponentSpan<S> {
    inner: S,
    component: &'static str,
}

impl<S, Request> tower::Service<Request> for ComponentSpan<S>
where
    S: tower::Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        use tracing::Instrument as _;
        let span = tracing::error_span!("client", component = self.component);
        // Entered while the inner stack is called too, so kube's `HTTP` span (made there) is a
        // child of this one, and so are the events of a response body read later.
        let future = span.in_scope(|| self.inner.call(request));
        future.instrument(span)
    }
}

/// Returns once the API server lets this client list namespaces: its default policy (and so
/// the component's own grants) is in place, so the first list of every informer is answered
/// rather than refused. (Not `/readyz`: its 500s before then would be logged as errors by the
/// client.)
pub async fn wait_ready(client: &kube::Client) {
    let mut delays = crate::backoff::delays(crate::backoff::exponential(
        READY_FIRST_RETRY,
        READY_MAX_RETRY,
    ));
    loop {
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(client.clone());
        if namespaces
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(delays.next().unwrap_or(READY_MAX_RETRY)).await;
    }
}

/// The first delay of [`wait_ready`]'s retries, doubling up to [`READY_MAX_RETRY`].
const READY_FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(50);
/// The longest delay of [`wait_ready`]'s retries.
const READY_MAX_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tower::{Layer as _, Service as _};

    /// A service that logs an error when called and another when its answer is awaited.
    struct Failing;

    impl tower::Service<&'static str> for Failing {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = futures::future::BoxFuture<'static, Result<(), Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: &'static str) -> Self::Future {
            // Enabled, as `k3rs`'s log filter keeps kube's `HTTP` spans whatever the level.
            let span = tracing::info_span!("HTTP", http.url = request);
            span.in_scope(|| tracing::error!("calling failed"));
            Box::pin(async move {
                let _entered = span.enter();
                tracing::error!("failed with error client error (SendRequest)");
                Ok(())
            })
        }
    }

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_identity_never_shows_its_key() {
        let identity = Identity {
            server_url: "https://127.0.0.1:6443".into(),
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: SecretString::from("-----BEGIN PRIVATE KEY-----\nsecret-bytes"),
            program: "kube-scheduler",
        };
        let shown = format!("{identity:?}");
        assert!(!shown.contains("secret-bytes"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        assert_eq!(
            identity.key_pem.expose_secret(),
            "-----BEGIN PRIVATE KEY-----\nsecret-bytes"
        );
    }

    #[test]
    fn a_failed_request_names_its_component() {
        let log = Log::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let log = log.clone();
                move || log.clone()
            })
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut service = ComponentSpanLayer::new("kube-scheduler").layer(Failing);
            futures::executor::block_on(service.call("/api/v1/pods")).unwrap();
        });
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            assert!(
                line.contains(
                    "client{component=\"kube-scheduler\"}:HTTP{http.url=\"/api/v1/pods\"}"
                ),
                "{line}"
            );
        }
    }
}
