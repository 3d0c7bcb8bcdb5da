//! What the API server needs to start: where to listen, its TLS material, and the store.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

/// The serving certificate, its key, and the CA that client certificates must chain to.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The serving certificate (leaf first, then intermediates), PEM.
    pub cert_chain_pem: String,
    /// The serving key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub private_key_pem: SecretString,
    /// The CA certificates client certificates are verified against, PEM.
    pub client_ca_pem: String,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field(
                "cert_chain_pem",
                &format_args!("<{} bytes>", self.cert_chain_pem.len()),
            )
            .field("private_key_pem", &format_args!("<redacted>"))
            .field(
                "client_ca_pem",
                &format_args!("<{} bytes>", self.client_ca_pem.len()),
            )
            .finish()
    }
}

/// The issuer of service-account tokens when none is configured (upstream's and k3s's).
pub const DEFAULT_SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How service-account tokens are signed and checked (`--service-account-key-file`,
/// `--service-account-issuer`, `--api-audiences` of kube-apiserver).
#[derive(Clone)]
pub struct ServiceAccountConfig {
    /// The private key tokens are signed with: PEM, PKCS#8, ECDSA P-256 (ES256) or RSA (RS256).
    /// `None` makes an ephemeral key at start, so tokens do not outlive the process.
    pub signing_key_pem: Option<SecretString>,
    /// `iss` of issued tokens; tokens from any other issuer are refused.
    pub issuer: String,
    /// Tokens must be for one of these audiences; new tokens are for all of them by default.
    pub api_audiences: Vec<String>,
}

impl Default for ServiceAccountConfig {
    /// No key (ephemeral), upstream's issuer, and k3s's audiences (the issuer and `k3s`).
    fn default() -> Self {
        Self {
            signing_key_pem: None,
            issuer: DEFAULT_SERVICE_ACCOUNT_ISSUER.to_owned(),
            api_audiences: vec![DEFAULT_SERVICE_ACCOUNT_ISSUER.to_owned(), "k3s".to_owned()],
        }
    }
}

impl fmt::Debug for ServiceAccountConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountConfig")
            .field(
                "signing_key_pem",
                &self.signing_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer", &self.issuer)
            .field("api_audiences", &self.api_audiences)
            .finish()
    }
}

/// How the API server is started.
#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    /// Where to listen (`0.0.0.0:6443` by default in k3rs; port 0 picks a free port).
    pub bind_address: SocketAddr,
    /// Serving certificate, key and client CA.
    pub tls: TlsMaterial,
    /// The store behind the API.
    pub store: Arc<dyn k3rs_store::Store>,
    /// How long open connections may take to finish after shutdown is asked for, before they
    /// are cut.
    pub shutdown_grace: Duration,
    /// How long a client may take to finish the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Service-account token signing and checking.
    pub service_accounts: ServiceAccountConfig,
    /// The IPv4 range Service ClusterIPs come from (`--service-cidr`); its first address is the
    /// `default/kubernetes` Service's.
    pub service_cidr: String,
    /// How to reach kubelets (`pods/log`); without it, those requests fail with a 500.
    pub kubelet_client: Option<crate::KubeletClientTls>,
}

impl ApiServerConfig {
    /// A configuration with the default timeouts.
    pub fn new(
        bind_address: SocketAddr,
        tls: TlsMaterial,
        store: Arc<dyn k3rs_store::Store>,
    ) -> Self {
        Self {
            bind_address,
            tls,
            store,
            shutdown_grace: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            service_accounts: ServiceAccountConfig::default(),
            service_cidr: "10.43.0.0/16".to_owned(),
            kubelet_client: None,
        }
    }
}
