//! `k3rs server` end to end: certificates, kubeconfig, curl and kubectl against the real binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

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
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(&server.kubeconfig).unwrap()).unwrap();
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
    let status = server.stop().unwrap();
    assert!(
        status.success(),
        "SIGTERM exits 0, got {status}\n{}",
        server.log_text()
    );
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
