//! The HTTPS shell end to end over loopback: TLS, ALPN, client certificates, health, version,
//! 404s and graceful shutdown, driven by hyper's client over tokio-rustls.

// The helpers below are test set-up: a failure there should stop the test loudly.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k3rs_apiserver::{ApiServer, ApiServerConfig, Readiness, TlsMaterial};
use k3rs_pki::{ensure_server_pki, ServerPki, ServerPkiConfig};
use k3rs_store::{
    Deleted, KeyValue, ListOptions, ListPage, Revision, Store, StoreError, WatchStream,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A store that fails every call: fault injection for the not-ready paths, which the real store
/// cannot be made to take on demand. Healthy servers in these tests use the real `SledStore`.
#[derive(Debug)]
struct FakeStore {
    healthy: bool,
}

impl FakeStore {
    fn result<T>(&self, ok: T) -> Result<T, StoreError> {
        if self.healthy {
            Ok(ok)
        } else {
            Err(StoreError::Closed)
        }
    }
}

#[async_trait]
impl Store for FakeStore {
    fn current_revision(&self) -> Revision {
        0
    }
    fn compacted_revision(&self) -> Revision {
        0
    }
    async fn get(&self, _key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.result(None)
    }
    async fn list(&self, _prefix: &str, _options: ListOptions) -> Result<ListPage, StoreError> {
        self.result(ListPage {
            items: vec![],
            revision: 0,
            continue_token: None,
            remaining: None,
        })
    }
    async fn count(&self, _prefix: &str) -> Result<u64, StoreError> {
        self.result(0)
    }
    async fn create(&self, _key: &str, _value: Vec<u8>) -> Result<KeyValue, StoreError> {
        Err(StoreError::Closed)
    }
    async fn update(
        &self,
        _key: &str,
        _value: Vec<u8>,
        _rev: Revision,
    ) -> Result<KeyValue, StoreError> {
        Err(StoreError::Closed)
    }
    async fn delete(&self, _key: &str, _rev: Option<Revision>) -> Result<Deleted, StoreError> {
        Err(StoreError::Closed)
    }
    async fn watch(&self, _prefix: &str, _after: Revision) -> Result<WatchStream, StoreError> {
        Err(StoreError::Closed)
    }
    async fn compact(&self, _revision: Revision) -> Result<(), StoreError> {
        Err(StoreError::Closed)
    }
}

struct TestServer {
    addr: SocketAddr,
    pki: ServerPki,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), k3rs_apiserver::ApiServerError>>,
    /// Where components outside the API server register readiness checks.
    readiness: Readiness,
}

fn make_pki() -> (tempfile::TempDir, ServerPki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_server_pki(&ServerPkiConfig::new(dir.path().join("tls"))).unwrap();
    (dir, pki)
}

async fn start(healthy: bool, grace: Duration) -> TestServer {
    let (dir, pki) = make_pki();
    let tls = TlsMaterial {
        cert_chain_pem: pki.serving.cert_pem.clone(),
        private_key_pem: pki.serving.key_pem.secret().clone(),
        client_ca_pem: pki.ca_cert_pem.clone(),
    };
    let store: Arc<dyn Store> = if healthy {
        k3rs_store::SledStore::open(k3rs_store::SledStoreConfig {
            path: dir.path().join("db"),
            ..Default::default()
        })
        .unwrap()
    } else {
        Arc::new(FakeStore { healthy })
    };
    let mut config = ApiServerConfig::new("127.0.0.1:0".parse().unwrap(), tls, store);
    config.shutdown_grace = grace;
    let server = ApiServer::bind(config).await.unwrap();
    let addr = server.local_addr();
    let readiness = server.readiness();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let server = TestServer {
        addr,
        pki,
        _dir: dir,
        stop: Some(stop),
        task,
        readiness,
    };
    if healthy {
        // The system namespaces are created right after the server starts serving.
        for _ in 0..200 {
            if server.get("/readyz").await.status == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    server
}

/// Client credentials: `None` for anonymous.
type ClientCert<'a> = Option<(&'a str, &'a str)>;

async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &str,
    client: ClientCert<'_>,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
    version: http::Version,
}

async fn get_with(
    addr: SocketAddr,
    ca_pem: &str,
    client: ClientCert<'_>,
    alpn: &[&[u8]],
    path: &str,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let tls = tls_connect(addr, ca_pem, client, alpn).await?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let request = Request::get(format!("https://localhost{path}")).body(Empty::<Bytes>::new())?;
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    };
    let status = response.status();
    let version = response.version();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        content_type,
        body: String::from_utf8(body.to_vec())?,
        version,
    })
}

impl TestServer {
    async fn get(&self, path: &str) -> Reply {
        let admin = (
            self.pki.admin.cert_pem.as_str(),
            self.pki.admin.key_pem.expose(),
        );
        get_with(
            self.addr,
            &self.pki.ca_cert_pem,
            Some(admin),
            &[b"h2", b"http/1.1"],
            path,
        )
        .await
        .unwrap()
    }

    async fn stop(mut self) -> Result<(), k3rs_apiserver::ApiServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn health_endpoints_answer_ok_in_plain_text() {
    let server = start(true, Duration::from_secs(5)).await;
    for path in [
        "/healthz",
        "/livez",
        "/readyz",
        "/readyz/",
        "/healthz/ping",
        "/readyz/store",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.body, "ok", "{path}");
        assert!(
            reply.content_type.starts_with("text/plain"),
            "{path}: {}",
            reply.content_type
        );
    }
    let verbose = server.get("/readyz?verbose").await;
    assert_eq!(verbose.status, StatusCode::OK);
    assert_eq!(
        verbose.body,
        "[+]ping ok\n[+]log ok\n[+]store ok\n[+]poststarthook/bootstrap-system-namespaces ok\n[+]poststarthook/rbac/bootstrap-roles ok\n[+]poststarthook/crd-informer-synced ok\n[+]rbac-policy-cache ok\n[+]bootstrap ok\n[+]crd-controller ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    let livez = server.get("/livez?verbose=1").await;
    assert_eq!(livez.body, "[+]ping ok\n[+]log ok\nlivez check passed\n");
    assert_eq!(
        server.get("/healthz/nonsense").await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_fails_when_the_store_does() {
    let server = start(false, Duration::from_secs(5)).await;
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.body.contains("[-]store failed: reason withheld\n"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.ends_with("readyz check failed\n"),
        "{}",
        reply.body
    );
    // Liveness does not depend on the store; an excluded check does not count.
    assert_eq!(server.get("/livez").await.status, StatusCode::OK);
    let excluded = server
        .get("/readyz?verbose&exclude=store&exclude=poststarthook/bootstrap-system-namespaces&exclude=poststarthook/rbac/bootstrap-roles&exclude=poststarthook/crd-informer-synced")
        .await;
    assert_eq!(excluded.status, StatusCode::OK, "{}", excluded.body);
    assert!(excluded.body.contains("[+]store excluded: ok"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_runs_the_checks_registered_from_outside() {
    let server = start(true, Duration::from_secs(5)).await;
    let controllers_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    server.readiness.register("controllers", {
        let ready = Arc::clone(&controllers_ready);
        move || ready.load(std::sync::atomic::Ordering::SeqCst)
    });
    let reply = server.get("/readyz?verbose").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.body.ends_with(
            "[-]controllers failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n"
        ),
        "{}",
        reply.body
    );
    let one = server.get("/readyz/controllers").await;
    assert_eq!(
        one.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        one.body
    );
    assert_eq!(
        server.get("/readyz?exclude=controllers").await.status,
        StatusCode::OK
    );
    // Liveness never depends on a component's readiness.
    assert_eq!(server.get("/livez").await.status, StatusCode::OK);
    controllers_ready.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(server.get("/readyz").await.body, "ok");
    assert_eq!(server.get("/readyz/controllers").await.body, "ok");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn version_is_kubernetes_info_json() {
    let server = start(true, Duration::from_secs(5)).await;
    let reply = server.get("/version").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/json");
    let info: k8s_openapi::apimachinery::pkg::version::Info =
        serde_json::from_str(&reply.body).unwrap();
    assert_eq!(info.major, "1");
    assert_eq!(info.minor, "37");
    assert_eq!(
        info.git_version,
        format!("v1.37.0+k3rs.{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(info.compiler, "rustc");
    assert_eq!(info.go_version, "rustc");
    assert!(info.platform.starts_with("linux/"), "{}", info.platform);
    assert_ne!(info.platform, "linux/x86_64", "Go architecture names");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_get_a_not_found_status() {
    let server = start(true, Duration::from_secs(5)).await;
    for path in [
        "/",
        "/api/v2/pods",
        "/apis/nothing.example.com/v1/things",
        "/api/v1/namespaces/default/nothings",
        "/versionx",
        "/version/extra",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.content_type, "application/json");
        let status: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["apiVersion"], "v1");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn alpn_selects_http2_or_http1() {
    let server = start(true, Duration::from_secs(5)).await;
    let ca = server.pki.ca_cert_pem.clone();
    let h2 = get_with(server.addr, &ca, None, &[b"h2", b"http/1.1"], "/healthz")
        .await
        .unwrap();
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert_eq!(h2.body, "ok");
    let h1 = get_with(server.addr, &ca, None, &[b"http/1.1"], "/healthz")
        .await
        .unwrap();
    assert_eq!(h1.version, http::Version::HTTP_11);
    let none = get_with(server.addr, &ca, None, &[], "/healthz")
        .await
        .unwrap();
    assert_eq!(none.body, "ok");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_certs_are_optional_but_must_chain_to_the_cluster_ca() {
    let server = start(true, Duration::from_secs(5)).await;
    let ca = server.pki.ca_cert_pem.clone();
    // Anonymous: fine for health and version.
    let anonymous = get_with(server.addr, &ca, None, &[b"http/1.1"], "/version")
        .await
        .unwrap();
    assert_eq!(anonymous.status, StatusCode::OK);
    // A certificate from another cluster's CA is refused during the handshake.
    let (_other_dir, other) = make_pki();
    let foreign = (other.admin.cert_pem.as_str(), other.admin.key_pem.expose());
    let refused = get_with(server.addr, &ca, Some(foreign), &[b"http/1.1"], "/version").await;
    assert!(
        refused.is_err(),
        "a foreign client certificate must be rejected"
    );
    // The cluster's own admin certificate works.
    assert_eq!(server.get("/version").await.status, StatusCode::OK);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_the_listener() {
    let server = start(true, Duration::from_secs(30)).await;
    let addr = server.addr;
    // An idle keep-alive HTTP/1.1 connection must not hold shutdown for the whole grace period.
    let tls = tls_connect(addr, &server.pki.ca_cert_pem, None, &[b"http/1.1"])
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn_task = tokio::spawn(conn);
    let reply = sender
        .send_request(
            Request::get("/healthz")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let _ = reply.into_body().collect().await.unwrap();

    let started = std::time::Instant::now();
    server.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), conn_task)
        .await
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still open"
    );
}

#[tokio::test]
async fn bad_tls_material_is_reported_before_serving() {
    let (_dir, pki) = make_pki();
    let tls = TlsMaterial {
        cert_chain_pem: "garbage".into(),
        private_key_pem: pki.serving.key_pem.secret().clone(),
        client_ca_pem: pki.ca_cert_pem.clone(),
    };
    let config = ApiServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        tls.clone(),
        Arc::new(FakeStore { healthy: true }),
    );
    let err = ApiServer::bind(config).await.unwrap_err();
    assert!(err.to_string().contains("serving certificate"), "{err}");
    assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
}
