//! Errors from starting the API server.

use std::net::SocketAddr;

/// Everything that can keep the API server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The listening socket could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM input (certificate chain, key or client CA) that cannot be used.
    #[error("{what}: {reason}")]
    InvalidPem {
        /// Which input ("serving certificate", "serving key", "client CA").
        what: &'static str,
        /// What is wrong with it (never contains key material).
        reason: String,
    },
    /// rustls refused the TLS configuration.
    #[error("building the TLS configuration")]
    Tls(#[source] rustls::Error),
    /// The client certificate verifier could not be built from the client CA.
    #[error("building the client certificate verifier")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    /// The service-account signing key cannot be used.
    #[error("service-account signing key")]
    ServiceAccountKey(
        /// What is wrong with it (never contains key material).
        #[source]
        Box<dyn std::error::Error + Send + Sync>,
    ),
    /// The service CIDR cannot be used.
    #[error("--service-cidr")]
    ServiceCidr(#[source] crate::api::ServiceCidrError),
    /// Reading the bound socket's address failed.
    #[error("reading the listening address")]
    LocalAddr(#[source] std::io::Error),
}
