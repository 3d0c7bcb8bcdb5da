//! Running one probe or lifecycle handler of a container, as upstream's `pkg/probe` does: exec
//! through the runtime (`ExecSync`), HTTP GET, TCP connect and gRPC health checks against the
//! pod's IP, each within its timeout, with upstream's failure messages (they end up in
//! `Unhealthy` events).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::Runtime;

/// The outcome of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Failed, with upstream's message.
    Failure(String),
}

/// What a probe or handler does.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    Exec(&'a ExecAction),
    HttpGet(&'a HTTPGetAction),
    TcpSocket(&'a TCPSocketAction),
    Grpc(&'a GRPCAction),
}

impl<'a> Action<'a> {
    pub fn of_probe(probe: &'a Probe) -> Option<Action<'a>> {
        if let Some(exec) = &probe.exec {
            Some(Action::Exec(exec))
        } else if let Some(http) = &probe.http_get {
            Some(Action::HttpGet(http))
        } else if let Some(tcp) = &probe.tcp_socket {
            Some(Action::TcpSocket(tcp))
        } else {
            probe.grpc.as_ref().map(Action::Grpc)
        }
    }

    pub fn of_handler(handler: &'a LifecycleHandler) -> Option<Action<'a>> {
        if let Some(exec) = &handler.exec {
            Some(Action::Exec(exec))
        } else if let Some(http) = &handler.http_get {
            Some(Action::HttpGet(http))
        } else {
            handler.tcp_socket.as_ref().map(Action::TcpSocket)
        }
    }
}

/// The port a probe names: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(number) => number,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("couldn't find port: {name:?} in {:?}", container.name))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// Runs `action` once for the container `container_id` of a pod at `pod_ip`.
pub async fn run(
    runtime: &dyn Runtime,
    action: Action<'_>,
    container: &Container,
    container_id: &str,
    pod_ip: Option<IpAddr>,
    timeout: Duration,
) -> Outcome {
    match action {
        Action::Exec(exec) => run_exec(runtime, exec, container_id, timeout).await,
        Action::HttpGet(http) => {
            let port = match resolve_port(&http.port, container) {
                Ok(port) => port,
                Err(message) => return Outcome::Failure(message),
            };
            let host = match http.host.as_deref().filter(|h| !h.is_empty()) {
                Some(host) => host.to_owned(),
                None => match pod_ip {
                    Some(ip) => ip.to_string(),
                    None => return Outcome::Failure("the pod has no IP".into()),
                },
            };
            run_http(http, &host, port, timeout).await
        }
        Action::TcpSocket(tcp) => {
            let port = match resolve_port(&tcp.port, container) {
                Ok(port) => port,
                Err(message) => return Outcome::Failure(message),
            };
            let host = match tcp.host.as_deref().filter(|h| !h.is_empty()) {
                Some(host) => host.to_owned(),
                None => match pod_ip {
                    Some(ip) => ip.to_string(),
                    None => return Outcome::Failure("the pod has no IP".into()),
                },
            };
            run_tcp(&host, port, timeout).await
        }
        Action::Grpc(grpc) => match pod_ip {
            Some(ip) => match u16::try_from(grpc.port) {
                Ok(port) => {
                    run_grpc(ip, port, grpc.service.as_deref().unwrap_or(""), timeout).await
                }
                Err(_) => Outcome::Failure(format!("invalid port number: {}", grpc.port)),
            },
            None => Outcome::Failure("the pod has no IP".into()),
        },
    }
}

async fn run_exec(
    runtime: &dyn Runtime,
    exec: &ExecAction,
    container_id: &str,
    timeout: Duration,
) -> Outcome {
    let command = exec.command.clone().unwrap_or_default();
    let seconds = i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX);
    match runtime
        .exec_sync(container_id, command.clone(), seconds)
        .await
    {
        Ok(answer) if answer.exit_code == 0 => Outcome::Success,
        Ok(answer) => {
            let mut output = String::from_utf8_lossy(&answer.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&answer.stderr));
            Outcome::Failure(output)
        }
        Err(err) if err.kind == crate::runtime::RuntimeErrorKind::DeadlineExceeded => {
            Outcome::Failure(format!("command {command:?} timed out",))
        }
        Err(err) => Outcome::Failure(err.message),
    }
}

/// `host:port` for a URL or a dial message, bracketing IPv6 addresses.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let target = host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect(&target)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(format!("dial tcp {target}: connect: {}", go_error(&err))),
        Err(_) => Err(format!("dial tcp {target}: i/o timeout")),
    }
}

/// An OS error as Go prints it (`connection refused`, not `Connection refused (os error 111)`).
fn go_error(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => {
            let text = err.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

async fn run_tcp(host: &str, port: u16, timeout: Duration) -> Outcome {
    match connect(host, port, timeout).await {
        Ok(_) => Outcome::Success,
        Err(message) => Outcome::Failure(message),
    }
}

/// The request line, headers and status of an HTTP/1.1 GET, upstream's probe: `Host`,
/// `User-Agent: kube-probe/<major.minor>`, `Accept: */*` unless the probe sets them, and the
/// probe's headers; 200–399 is a success.
pub fn http_request(http: &HTTPGetAction, host: &str, port: u16) -> String {
    let mut path = http.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let headers: Vec<(String, String)> = http
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        request.push_str(&format!("Host: {}\r\n", host_port(host, port)));
    }
    if !has("user-agent") {
        request.push_str("User-Agent: kube-probe/1.37\r\n");
    }
    if !has("accept") {
        request.push_str("Accept: */*\r\n");
    }
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    request
}

/// The status code of an HTTP response's first line.
fn status_code(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

async fn run_http(http: &HTTPGetAction, host: &str, port: u16, timeout: Duration) -> Outcome {
    let scheme = http.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
    let url = format!(
        "{scheme}://{}{}",
        host_port(host, port),
        http.path.as_deref().unwrap_or("/")
    );
    let exchange = async {
        let stream = connect(host, port, timeout).await?;
        let request = http_request(http, host, port);
        if scheme == "https" {
            // Upstream's HTTPS probes skip certificate verification.
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|err| format!("tls: {err}"))?;
            let tls = tokio_rustls::TlsConnector::from(insecure_tls())
                .connect(name, stream)
                .await
                .map_err(|err| format!("tls: {err}"))?;
            exchange_head(tls, &request).await
        } else {
            exchange_head(stream, &request).await
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Outcome::Failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Ok(Err(message)) => Outcome::Failure(format!("Get {url:?}: {message}")),
        Ok(Ok(head)) => match status_code(&head) {
            Some(code) if (200..400).contains(&code) => Outcome::Success,
            Some(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            None => Outcome::Failure(format!("Get {url:?}: malformed HTTP response")),
        },
    }
}

/// Sends an HTTP request and reads the response up to its status line.
async fn exchange_head<S>(mut stream: S, request: &str) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| go_error(&err))?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    // The status line is all that is needed.
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|err| go_error(&err))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A TLS client that accepts any server certificate (handshake signatures still checked), as
/// upstream's HTTPS probes and hooks (`InsecureSkipVerify`).
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(AnyCertificate(provider.clone()));
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(rustls::DEFAULT_VERSIONS)
                .map(|builder| {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(verifier.clone())
                        .with_no_client_auth()
                })
                .unwrap_or_else(|err| {
                    // The ring provider has every default version: not expected.
                    tracing::error!("building the probes' TLS client: {err}");
                    rustls::ClientConfig::builder()
                        .dangerous()
                        .with_custom_certificate_verifier(verifier)
                        .with_no_client_auth()
                });
            Arc::new(config)
        })
        .clone()
}

/// Accepts every certificate chain; checks handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The serving status of a gRPC health answer (`grpc.health.v1.HealthCheckResponse`): field 1,
/// a varint.
fn health_status(message: &[u8]) -> Option<u64> {
    let mut index = 0;
    while index < message.len() {
        let key = message[index];
        index += 1;
        let (field, wire) = (key >> 3, key & 7);
        let mut value: u64 = 0;
        let mut shift = 0;
        match wire {
            0 => loop {
                let byte = *message.get(index)?;
                index += 1;
                value |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            },
            _ => return None,
        }
        if field == 1 {
            return Some(value);
        }
    }
    Some(0)
}

/// A gRPC status code's name as grpc-go prints it.
fn grpc_code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("Unknown")
}

async fn run_grpc(ip: IpAddr, port: u16, service: &str, timeout: Duration) -> Outcome {
    let target = SocketAddr::new(ip, port);
    let call = async {
        let stream = TcpStream::connect(target).await.map_err(|err| {
            format!(
                "failed to connect service {target:?} within {}s: {}",
                timeout.as_secs(),
                go_error(&err)
            )
        })?;
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|err| format!("failed to connect service {target:?}: {err}"))?;
        tokio::spawn(connection);
        // HealthCheckRequest { service = 1 }, in a gRPC frame (no compression, length).
        let mut message = Vec::new();
        if !service.is_empty() {
            message.push(0x0a);
            message.push(u8::try_from(service.len()).unwrap_or(u8::MAX));
            message.extend_from_slice(service.as_bytes());
        }
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(message.len()).unwrap_or(0).to_be_bytes());
        frame.extend_from_slice(&message);
        let request = http::Request::post(format!("http://{target}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(bytes::Bytes::from(frame)))
            .map_err(|err| err.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| format!("health rpc probe failed: {err}"))?;
        let headers = response.headers().clone();
        let collected = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|err| format!("health rpc probe failed: {err}"))?;
        // The status is in the trailers, or in the headers of a trailers-only answer.
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let field = |name: &str| {
            trailers
                .get(name)
                .or_else(|| headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let code: u32 = field("grpc-status")
            .and_then(|c| c.parse().ok())
            .unwrap_or(2);
        if code != 0 {
            return Err(format!(
                "health rpc probe failed: rpc error: code = {} desc = {}",
                grpc_code_name(code),
                field("grpc-message").unwrap_or_default()
            ));
        }
        Ok::<_, String>(collected.to_bytes())
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
        Ok(Err(message)) => Outcome::Failure(message),
        Ok(Ok(body)) => match body.get(5..).and_then(health_status) {
            Some(1) => Outcome::Success,
            Some(status) => {
                let name = match status {
                    0 => "UNKNOWN",
                    2 => "NOT_SERVING",
                    3 => "SERVICE_UNKNOWN",
                    _ => "UNKNOWN",
                };
                Outcome::Failure(format!("service unhealthy (responded with {name:?})"))
            }
            None => Outcome::Failure("health rpc probe failed: malformed response".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Container {
        serde_json::from_value(
            json!({"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}),
        )
        .unwrap()
    }

    #[test]
    fn ports_by_number_or_name() {
        assert_eq!(resolve_port(&IntOrString::Int(80), &container()), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &container()),
            Ok(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("81".into()), &container()),
            Ok(81)
        );
        assert!(
            resolve_port(&IntOrString::String("nope".into()), &container())
                .unwrap_err()
                .starts_with("couldn't find port")
        );
        assert!(resolve_port(&IntOrString::Int(0), &container()).is_err());
    }

    #[test]
    fn http_requests_as_kube_probe_sends_them() {
        let http: HTTPGetAction = serde_json::from_value(json!({
            "path": "healthz", "port": 8080,
            "httpHeaders": [{"name": "X-Check", "value": "1"}, {"name": "accept", "value": "text/plain"}],
        }))
        .unwrap();
        assert_eq!(
            http_request(&http, "10.42.0.5", 8080),
            "GET /healthz HTTP/1.1\r\nHost: 10.42.0.5:8080\r\nUser-Agent: kube-probe/1.37\r\nX-Check: 1\r\naccept: text/plain\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(status_code("HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code("garbage"), None);
    }

    #[test]
    fn grpc_health_answers() {
        assert_eq!(health_status(&[0x08, 0x01]), Some(1));
        assert_eq!(health_status(&[0x08, 0x02]), Some(2));
        assert_eq!(health_status(&[]), Some(0));
    }

    #[tokio::test]
    async fn tcp_and_http_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut codes = ["200 OK", "500 Internal Server Error"].into_iter().cycle();
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let code = codes.next().unwrap();
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let timeout = Duration::from_secs(2);
        assert_eq!(run_tcp("127.0.0.1", port, timeout).await, Outcome::Success);
        let http: HTTPGetAction =
            serde_json::from_value(json!({"path": "/", "port": port})).unwrap();
        // The TCP check above took the first answer (200); now 500, then 200.
        assert_eq!(
            run_http(&http, "127.0.0.1", port, timeout).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        assert_eq!(
            run_http(&http, "127.0.0.1", port, timeout).await,
            Outcome::Success
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(
            run_tcp("127.0.0.1", closed_port, timeout).await,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{closed_port}: connect: connection refused"
            ))
        );
    }

    /// An HTTPS probe completes the TLS handshake with a self-signed server (no verification,
    /// as upstream) and reads its status; a plain-TCP server on that port fails it.
    #[tokio::test]
    async fn https_probes_skip_verification_but_speak_tls() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["self-signed.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    continue;
                };
                let mut buffer = [0u8; 1024];
                let read = tls.read(&mut buffer).await.unwrap_or(0);
                let code = if buffer[..read].starts_with(b"GET /ok ") {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = tls
                    .write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        let timeout = Duration::from_secs(5);
        let probe = |path: &str| -> HTTPGetAction {
            serde_json::from_value(json!({"path": path, "port": port, "scheme": "HTTPS"})).unwrap()
        };
        assert_eq!(
            run_http(&probe("/ok"), "127.0.0.1", port, timeout).await,
            Outcome::Success
        );
        assert_eq!(
            run_http(&probe("/down"), "127.0.0.1", port, timeout).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );

        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_port = plain.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = plain.accept().await.unwrap();
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        });
        let https_to_plain: HTTPGetAction =
            serde_json::from_value(json!({"path": "/", "port": plain_port, "scheme": "HTTPS"}))
                .unwrap();
        let outcome = run_http(&https_to_plain, "127.0.0.1", plain_port, timeout).await;
        assert!(
            matches!(&outcome, Outcome::Failure(m) if m.contains("tls")),
            "{outcome:?}"
        );
    }

    /// A gRPC health server on HTTP/2: SERVING, NOT_SERVING, and an unknown service answered
    /// with a NotFound status in the trailers.
    #[tokio::test]
    async fn grpc_probes_against_a_health_server() {
        use http_body_util::BodyExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(
                    |request: http::Request<hyper::body::Incoming>| async move {
                        assert_eq!(request.uri().path(), "/grpc.health.v1.Health/Check");
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        // 5-byte frame header, then field 1 (service) if any.
                        let service = body
                            .get(7..)
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .unwrap_or_default();
                        let mut trailers = http::HeaderMap::new();
                        let mut frames = Vec::new();
                        match service.as_str() {
                            "" | "sick" => {
                                let status = if service.is_empty() { 1 } else { 2 };
                                frames.push(Ok::<_, std::convert::Infallible>(
                                    hyper::body::Frame::data(bytes::Bytes::from(vec![
                                        0, 0, 0, 0, 2, 0x08, status,
                                    ])),
                                ));
                                trailers.insert("grpc-status", "0".parse().unwrap());
                            }
                            _ => {
                                trailers.insert("grpc-status", "5".parse().unwrap());
                                trailers.insert("grpc-message", "unknown service".parse().unwrap());
                            }
                        }
                        frames.push(Ok(hyper::body::Frame::trailers(trailers)));
                        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(body)
                                .unwrap(),
                        )
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service),
                );
            }
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let timeout = Duration::from_secs(5);
        assert_eq!(run_grpc(ip, port, "", timeout).await, Outcome::Success);
        assert_eq!(
            run_grpc(ip, port, "sick", timeout).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        assert_eq!(
            run_grpc(ip, port, "absent", timeout).await,
            Outcome::Failure(
                "health rpc probe failed: rpc error: code = NotFound desc = unknown service".into()
            )
        );
    }
}
