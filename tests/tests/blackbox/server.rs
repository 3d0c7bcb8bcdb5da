//! `k3rs server` end to end: certificates, kubeconfig, curl and kubectl against the real binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use k3rs_tests::{kubectl_bin, run_k3rs, run_ok, K3rsServer, STORE_FORMAT_FILE};

#[test]
fn curl_gets_version_with_the_generated_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let body = run_ok(Command::new("curl").args([
        "--silent",
        "--show-error",
        "--fail",
        "--cacert",
        &server.ca_cert().display().to_string(),
        "--cert",
        &server.admin_cert().display().to_string(),
        "--key",
        &server.admin_key().display().to_string(),
        &format!("{}/version", server.url()),
    ]))
    .unwrap();
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["major"], "1");
    assert_eq!(info["minor"], "37");
    assert!(
        info["gitVersion"].as_str().unwrap().starts_with("v1.37."),
        "{info}"
    );
    assert_eq!(info["compiler"], "rustc");
}

#[test]
fn kubectl_version_shows_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let out = run_ok(
        Command::new(kubectl_bin())
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(["version", "-o", "json", "--request-timeout=10s"]),
    )
    .unwrap();
    let versions: serde_json::Value = serde_json::from_str(&out).unwrap();
    let server_version = &versions["serverVersion"];
    assert_eq!(server_version["major"], "1", "{versions}");
    assert_eq!(server_version["minor"], "37", "{versions}");
    assert!(
        server_version["gitVersion"]
            .as_str()
            .unwrap()
            .contains("k3rs"),
        "{versions}"
    );
}

#[test]
fn kubeconfig_files_point_at_the_server_with_the_requested_mode() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start_with(dir.path(), &["--write-kubeconfig-mode", "0640"]).unwrap();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&server.kubeconfig), 0o640);
    let copy = server.data_dir.join("server/cred/admin.kubeconfig");
    assert_eq!(mode(&copy), 0o600);
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(&server.kubeconfig).unwrap()).unwrap();
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"].as_str().unwrap(),
        server.url()
    );
    assert_eq!(doc["current-context"], "default");
    for key in [
        "server-ca.key",
        "serving-kube-apiserver.key",
        "client-admin.key",
    ] {
        assert_eq!(mode(&server.tls_dir().join(key)), 0o600, "{key}");
    }
}

#[test]
fn restart_reuses_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = K3rsServer::start(dir.path()).unwrap();
    let read = |name: &str| fs::read(server.tls_dir().join(name)).unwrap();
    let ca = read("server-ca.crt");
    let serving = read("serving-kube-apiserver.crt");
    let admin = read("client-admin.crt");
    // Let the controllers' informers establish their watches, which a SIGTERM must end
    // before the API server stops.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = server.stop().unwrap();
    let log = server.log_text();
    assert!(status.success(), "SIGTERM exits 0, got {status}\n{log}");
    // A clean stop is quiet: every controller task is gone before the API server stops, so
    // no watch or request of theirs breaks.
    let (_, stopping) = log
        .split_once("shutting down")
        .unwrap_or_else(|| panic!("no \"shutting down\" line in\n{log}"));
    let noisy: Vec<&str> = stopping
        .lines()
        .filter(|line| matches!(line.split_whitespace().nth(1), Some("WARN" | "ERROR")))
        .collect();
    assert!(noisy.is_empty(), "a SIGTERM logged:\n{}", noisy.join("\n"));
    server.restart().unwrap();
    let read = |name: &str| fs::read(server.tls_dir().join(name)).unwrap();
    assert_eq!(read("server-ca.crt"), ca, "same CA after a restart");
    assert_eq!(read("serving-kube-apiserver.crt"), serving);
    assert_eq!(read("client-admin.crt"), admin);
    assert_eq!(server.get("/readyz").unwrap(), (200, "ok".to_string()));
}

#[test]
fn tls_san_from_the_config_file_is_served() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("config.yaml"),
        "tls-san:\n  - k3rs-test.example\nnode-name: test-node\n",
    )
    .unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    for name in ["k3rs-test.example", "test-node", "kubernetes.default.svc"] {
        // curl checks the name against the certificate; --resolve points it at loopback.
        let body = run_ok(Command::new("curl").args([
            "--silent",
            "--show-error",
            "--fail",
            "--cacert",
            &server.ca_cert().display().to_string(),
            "--resolve",
            &format!("{name}:{}:127.0.0.1", server.port),
            &format!("https://{name}:{}/healthz", server.port),
        ]))
        .unwrap();
        assert_eq!(body, "ok", "{name}");
    }
}

#[test]
fn an_unreadable_store_fails_with_its_path_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/server/db");
    fs::create_dir_all(&db).unwrap();
    fs::write(db.join(STORE_FORMAT_FILE), "some-other-format-99\n").unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let config = dir.path().join("config.yaml");
    fs::write(&config, "").unwrap();
    let output = run_k3rs([
        "server".as_ref(),
        "--disable-agent".as_ref(),
        "--data-dir".as_ref(),
        dir.path().join("data").as_os_str(),
        "--write-kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
        "--https-listen-port".as_ref(),
        "0".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ])
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!kubeconfig.exists(), "no kubeconfig written");
    assert!(
        !dir.path().join("data/server/tls").exists(),
        "no certificates created"
    );
    let entries: Vec<_> = fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        [std::ffi::OsString::from(STORE_FORMAT_FILE)],
        "store directory untouched"
    );
}

/// A TLS client config trusting the cluster CA, as the admin user when `admin` is set.
fn tls_config(
    server: &K3rsServer,
    admin: bool,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = fs::read(server.ca_cert())?;
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let mut config = if admin {
        let cert = fs::read(server.admin_cert())?;
        let key = fs::read(server.admin_key())?;
        let chain = CertificateDer::pem_slice_iter(&cert).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|err| anyhow::anyhow!("no admin key: {err}"))?;
        builder.with_client_auth_cert(chain, key)?
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// Sends one keep-alive HTTP/1.1 GET and reads the head of the response (and its body, when it
/// has a length), leaving the connection open.
fn keep_alive_get(server: &K3rsServer, admin: bool, path: &str) -> anyhow::Result<Tls> {
    use std::io::{Read as _, Write as _};
    let connection =
        rustls::ClientConnection::new(tls_config(server, admin)?, "localhost".try_into()?)?;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", server.port))?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8(head)?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    if let Some(length) = length {
        let mut body = vec![0u8; length];
        tls.read_exact(&mut body)?;
    }
    Ok(tls)
}

/// SIGTERM with clients still connected: a dozen idle keep-alive connections, two that never
/// started their TLS handshake, a watch over HTTP/1.1 and kubectl's watch over HTTP/2. Idle
/// connections close at once and watches end, so the server is gone within a second (it used
/// to sit out its 10 s grace period).
#[test]
fn sigterm_with_idle_connections_and_watches_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = K3rsServer::start(dir.path()).unwrap();
    let idle: Vec<Tls> = (0..12)
        .map(|_| keep_alive_get(&server, false, "/version").unwrap())
        .collect();
    let silent: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    let watch = keep_alive_get(&server, true, "/api/v1/namespaces?watch=true").unwrap();
    let kubectls = k3rs_tests::kubectls();
    let mut kubectl_watch = kubectls[1]
        .command(&server)
        .args(["get", "namespaces", "--watch"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let kubectl's watch reach the server.
    std::thread::sleep(std::time::Duration::from_secs(2));

    let started = std::time::Instant::now();
    let status = server.stop().unwrap();
    let took = started.elapsed();
    let _ = kubectl_watch.kill();
    let _ = kubectl_watch.wait();
    drop((idle, silent, watch));
    assert!(status.success(), "exit status {status}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "stopping took {took:?}\n{}",
        server.log_text()
    );
}

/// An idle server logs no WARN or ERROR line. The in-process controllers and scheduler keep
/// pooled keep-alive connections; their client stops reusing one after 90 s idle, and the server
/// keeps an idle connection 120 s, so the client retires it and never writes a request into a
/// connection the server is closing. With the server's old 30 s limit, `ERROR
/// kube_client::client::builder: failed with error client error (SendRequest)` came every minute
/// or two on an idle server (first after about 90 s).
#[test]
fn an_idle_server_logs_no_warning_for_three_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(180));
    // Read before stopping: the shutdown itself ends the controllers' watches.
    let log = server.log_text();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|line| matches!(line.split_whitespace().nth(1), Some("WARN" | "ERROR")))
        .collect();
    assert!(
        noisy.is_empty(),
        "an idle server logged:\n{}",
        noisy.join("\n")
    );
    assert!(
        log.contains("k3rs server is ready"),
        "the log is the server's:\n{log}"
    );
}
