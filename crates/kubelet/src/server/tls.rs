//! The rustls configuration of the kubelet's server: its serving certificate, and client
//! certificates verified against the cluster CA when a client presents one.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::ServerError;

fn certs(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ServerError::Pem {
            what,
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ServerError::Pem {
            what,
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// HTTP/1.1 and h2; client certificates requested, not required (a token may do instead).
pub(crate) fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs("serving certificate", cert_pem)?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|err| ServerError::Pem {
            what: "serving key",
            reason: err.to_string(),
        })?;
    let mut roots = RootCertStore::empty();
    for ca in certs("client CA", client_ca_pem)? {
        roots.add(ca).map_err(|err| ServerError::Pem {
            what: "client CA",
            reason: err.to_string(),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(ServerError::ClientVerifier)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ServerError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(ServerError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
