//! The API server's HTTPS client toward kubelets (`pods/log` now; exec, attach and
//! port-forward later): the kubelet's serving certificate verified against the cluster CA, the
//! API server's own client certificate presented, one connection per request.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::ApiServerError;

/// How long connecting to a kubelet (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS material of the API server's kubelet client (kube-apiserver's
/// `--kubelet-certificate-authority`, `--kubelet-client-certificate`, `--kubelet-client-key`).
#[derive(Clone)]
pub struct KubeletClientTls {
    /// The CA kubelets' serving certificates chain to, PEM.
    pub ca_pem: String,
    /// The client certificate, PEM.
    pub cert_pem: String,
    /// Its key, PEM.
    pub key_pem: SecretString,
}

impl fmt::Debug for KubeletClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeletClientTls")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A request to a kubelet that got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KubeletCallError {
    #[error("dial tcp {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("dial tcp {addr}: i/o timeout")]
    Timeout { addr: SocketAddr },
    #[error("{0}")]
    Http(#[source] hyper::Error),
    #[error("{0}")]
    Request(#[source] http::Error),
}

/// Connects to kubelets.
#[derive(Clone)]
pub(crate) struct KubeletClient {
    verified: Arc<ClientConfig>,
    /// For `insecureSkipTLSVerifyBackend`: the kubelet's certificate is not checked.
    unverified: Arc<ClientConfig>,
}

impl fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

fn pem_error(what: &'static str) -> impl FnOnce(rustls::pki_types::pem::Error) -> ApiServerError {
    move |err| ApiServerError::InvalidPem {
        what,
        reason: err.to_string(),
    }
}

/// Accepts any server certificate (signatures are still checked, so the handshake is sound).
#[derive(Debug)]
struct AnyServerCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl KubeletClient {
    pub(crate) fn new(tls: &KubeletClientTls) -> Result<Self, ApiServerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("kubelet client certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(tls.key_pem.expose_secret().as_bytes())
            .map_err(pem_error("kubelet client key"))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
            let ca = ca.map_err(pem_error("kubelet CA"))?;
            roots.add(ca).map_err(|err| ApiServerError::InvalidPem {
                what: "kubelet CA",
                reason: err.to_string(),
            })?;
        }
        let verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(ApiServerError::Tls)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(ApiServerError::Tls)?;
        let unverified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(ApiServerError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
            .with_client_auth_cert(chain, key)
            .map_err(ApiServerError::Tls)?;
        Ok(KubeletClient {
            verified: Arc::new(verified),
            unverified: Arc::new(unverified),
        })
    }

    /// `GET https://<addr><path_and_query>` over HTTP/1.1; the answer's body streams from the
    /// kubelet as it comes.
    pub(crate) async fn get(
        &self,
        addr: SocketAddr,
        path_and_query: &str,
        skip_verify: bool,
    ) -> Result<http::Response<Incoming>, KubeletCallError> {
        let config = if skip_verify {
            self.unverified.clone()
        } else {
            self.verified.clone()
        };
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|source| KubeletCallError::Connect { addr, source })?;
            let name = ServerName::IpAddress(addr.ip().into());
            TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|source| KubeletCallError::Connect { addr, source })
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| KubeletCallError::Timeout { addr })??;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(KubeletCallError::Http)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%addr, "kubelet connection: {err}");
            }
        });
        let host = match addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
            IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
        };
        let request = http::Request::get(path_and_query)
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, "kube-apiserver")
            .body(Empty::<Bytes>::new())
            .map_err(KubeletCallError::Request)?;
        sender
            .send_request(request)
            .await
            .map_err(KubeletCallError::Http)
    }
}
