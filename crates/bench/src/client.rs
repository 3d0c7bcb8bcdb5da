//! A small HTTPS client for the k3rs API: HTTP/2 over rustls with the admin's client
//! certificate (or a bearer token), several connections used round-robin, whole bodies or
//! streamed watch lines.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The TLS files of the k3rs server's admin.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) ca: std::path::PathBuf,
    pub(crate) cert: std::path::PathBuf,
    pub(crate) key: std::path::PathBuf,
}

/// How requests authenticate.
#[derive(Debug, Clone, Copy)]
enum Identity<'a> {
    /// The admin's client certificate.
    Admin,
    /// `Authorization: Bearer <token>`, no client certificate.
    Bearer(&'a str),
}

fn tls_config(credentials: &Credentials, identity: Identity<'_>) -> Result<rustls::ClientConfig> {
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(&credentials.ca)?) {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    if let Identity::Bearer(_) = identity {
        let mut config = builder.with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        return Ok(config);
    }
    let chain =
        CertificateDer::pem_slice_iter(&read(&credentials.cert)?).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&read(&credentials.key)?)
        .context("no private key in the admin key file")?;
    let mut config = builder.with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Connections to one API server.
#[derive(Clone)]
pub(crate) struct ApiClient {
    connections: Arc<Vec<SendRequest<Full<Bytes>>>>,
    next: Arc<AtomicUsize>,
    authority: String,
    port: u16,
    credentials: Credentials,
    /// `Authorization: Bearer …` on every request instead of the client certificate.
    authorization: Option<http::HeaderValue>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ApiClient({}, {} connections)",
            self.authority,
            self.connections.len()
        )
    }
}

impl ApiClient {
    /// Opens `connections` HTTP/2 connections to `127.0.0.1:port`.
    pub(crate) async fn connect(
        port: u16,
        credentials: &Credentials,
        connections: usize,
    ) -> Result<ApiClient> {
        ApiClient::connect_as(port, credentials, connections, Identity::Admin).await
    }

    /// Connects without a client certificate; every request carries `token` as its bearer
    /// token (`credentials` gives the CA only).
    pub(crate) async fn connect_with_token(
        port: u16,
        credentials: &Credentials,
        connections: usize,
        token: &str,
    ) -> Result<ApiClient> {
        ApiClient::connect_as(port, credentials, connections, Identity::Bearer(token)).await
    }

    async fn connect_as(
        port: u16,
        credentials: &Credentials,
        connections: usize,
        identity: Identity<'_>,
    ) -> Result<ApiClient> {
        let authorization = match identity {
            Identity::Admin => None,
            Identity::Bearer(token) => Some(
                http::HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("a bearer token that is no header value")?,
            ),
        };
        let connector = TlsConnector::from(Arc::new(tls_config(credentials, identity)?));
        let mut senders = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let tcp = TcpStream::connect(("127.0.0.1", port))
                .await
                .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
            tcp.set_nodelay(true)?;
            let tls = connector
                .connect("localhost".try_into()?, tcp)
                .await
                .context("TLS handshake with k3rs")?;
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .context("HTTP/2 handshake with k3rs")?;
            tokio::spawn(connection);
            senders.push(sender);
        }
        Ok(ApiClient {
            connections: Arc::new(senders),
            next: Arc::new(AtomicUsize::new(0)),
            authority: format!("localhost:{port}"),
            port,
            credentials: credentials.clone(),
            authorization,
        })
    }

    /// The server's port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The credentials the connections use.
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    fn sender(&self) -> SendRequest<Full<Bytes>> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[index].clone()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.authority))
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization.clone());
        }
        let request = request.body(Full::new(body))?;
        let mut sender = self.sender();
        sender.ready().await.context("connection to k3rs closed")?;
        Ok(sender.send_request(request).await?)
    }

    /// A request with a JSON (or patch) body; the whole response body, failing on a non-2xx
    /// status.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Bytes> {
        let response = self.send(method.clone(), path, content_type, body).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes)
    }

    /// GET with the whole body.
    pub(crate) async fn get(&self, path: &str) -> Result<Bytes> {
        self.call(Method::GET, path, "application/json", Bytes::new())
            .await
    }

    /// Starts a watch (`path` has `watch=1`) and returns its body once the server answered.
    pub(crate) async fn watch(&self, path: &str) -> Result<hyper::body::Incoming> {
        let response = self
            .send(Method::GET, path, "application/json", Bytes::new())
            .await?;
        if response.status() != StatusCode::OK {
            bail!("watch {path}: {}", response.status());
        }
        Ok(response.into_body())
    }
}
