//! The API client every controller shares: HTTPS to the API server with a client certificate,
//! exactly as a controller manager on another machine would connect.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{HeaderValue, USER_AGENT};
use kube::config::{KubeConfigOptions, Kubeconfig};
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
    /// The client certificate's private key (PEM).
    pub key_pem: String,
    /// The program name sent as `User-Agent`, which the API server records as the field
    /// manager of the component's writes (`kube-controller-manager`, `kube-scheduler`).
    pub program: &'static str,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never appears in logs.
        f.debug_struct("Identity")
            .field("server_url", &self.server_url)
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
            "client-key-data": STANDARD.encode(&identity.key_pem),
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
    kube::Client::try_from(config).map_err(|source| ClientError::Build { program, source })
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
