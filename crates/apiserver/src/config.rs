//! What the API server needs to start: where to listen, its TLS material, and the store.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The serving certificate, its key, and the CA that client certificates must chain to.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The serving certificate (leaf first, then intermediates), PEM.
    pub cert_chain_pem: String,
    /// The serving key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub private_key_pem: String,
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
    /// The IPv4 range Service ClusterIPs come from (`--service-cidr`); its first address is the
    /// `default/kubernetes` Service's.
    pub service_cidr: String,
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
            service_cidr: "10.43.0.0/16".to_owned(),
        }
    }
}
