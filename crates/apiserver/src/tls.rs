//! The rustls server configuration: ring provider, ALPN h2 + http/1.1, optional client certs.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use secrecy::ExposeSecret as _;

use crate::{ApiServerError, TlsMaterial};

/// Builds the TLS configuration. Client certificates are requested but not required: a client
/// that presents one must chain to the client CA (the handshake fails otherwise, as in
/// kube-apiserver); a client that presents none is anonymous.
pub(crate) fn server_config(tls: &TlsMaterial) -> Result<Arc<ServerConfig>, ApiServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs("serving certificate", &tls.cert_chain_pem)?;
    let key = private_key(tls.private_key_pem.expose_secret())?;

    let mut roots = RootCertStore::empty();
    for ca in certs("client CA", &tls.client_ca_pem)? {
        roots.add(ca).map_err(|err| ApiServerError::InvalidPem {
            what: "client CA",
            reason: err.to_string(),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(ApiServerError::ClientVerifier)?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ApiServerError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(ApiServerError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certs(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, ApiServerError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ApiServerError::InvalidPem {
            what,
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ApiServerError::InvalidPem {
            what,
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, ApiServerError> {
    let what = "serving key";
    // The parser's error text names the PEM section, never its contents.
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => ApiServerError::InvalidPem {
            what,
            reason: "no PRIVATE KEY block found".into(),
        },
        err => ApiServerError::InvalidPem {
            what,
            reason: err.to_string(),
        },
    })
}
