//! Unit tests of the server PKI: names, reuse, re-issue, modes, kubeconfig.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

use crate::*;

fn config(dir: &Path) -> ServerPkiConfig {
    let mut config = ServerPkiConfig::new(dir.join("server/tls"));
    config.node_ips = vec!["192.0.2.10".parse().unwrap()];
    config.hostnames = vec!["Node-1".into()];
    config
}

fn read_all(paths: &ServerTlsPaths) -> Vec<Vec<u8>> {
    [
        &paths.ca_cert,
        &paths.ca_key,
        &paths.serving_cert,
        &paths.serving_key,
        &paths.admin_cert,
        &paths.admin_key,
    ]
    .iter()
    .map(|p| fs::read(p).unwrap())
    .collect()
}

fn sans_of(pem: &str) -> Vec<String> {
    let (_, block) = parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let ext = cert.subject_alternative_name().unwrap().unwrap();
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => dns.to_string(),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap()).to_string(),
                _ => IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap()).to_string(),
            },
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

#[test]
fn serving_cert_has_every_requested_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path())
        .with_service_cidr("10.50.0.0/16,fd00:43::/112")
        .unwrap();
    config.extra_sans = vec!["203.0.113.7".into(), "api.example.com".into()];
    let pki = ensure_server_pki(&config).unwrap();
    let sans = sans_of(&pki.serving.cert_pem);
    for want in [
        "192.0.2.10",
        "127.0.0.1",
        "::1",
        "localhost",
        "node-1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.50.0.1",
        "fd00:43::1",
        "203.0.113.7",
        "api.example.com",
    ] {
        assert!(
            sans.iter().any(|s| s == want),
            "{want} missing from {sans:?}"
        );
    }
    assert_eq!(
        pki.actions,
        [
            CertAction::Created,
            CertAction::Created,
            CertAction::Created,
            CertAction::Created,
            CertAction::Created
        ]
    );
}

#[test]
fn an_empty_service_cidr_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(config(dir.path()).with_service_cidr(" , ").is_err());
}

#[test]
fn default_service_ip_is_10_43_0_1() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_server_pki(&config(dir.path())).unwrap();
    assert!(sans_of(&pki.serving.cert_pem)
        .iter()
        .any(|s| s == "10.43.0.1"));
}

#[test]
fn admin_cert_names_system_admin_in_system_masters() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_server_pki(&config(dir.path())).unwrap();
    let (_, block) = parse_x509_pem(pki.admin.cert_pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let subject = cert.subject();
    let cn: Vec<_> = subject
        .iter_common_name()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let o: Vec<_> = subject
        .iter_organization()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cn, ["system:admin"]);
    assert_eq!(o, ["system:masters"]);
    let days = cert.validity().time_to_expiration().unwrap().whole_days();
    assert!((364..=365).contains(&days), "leaf valid for {days} days");
    let (_, ca_block) = parse_x509_pem(pki.ca_cert_pem.as_bytes()).unwrap();
    let ca = ca_block.parse_x509().unwrap();
    assert!(ca.is_ca());
    let ca_days = ca.validity().time_to_expiration().unwrap().whole_days();
    assert!(
        (3649..=3650).contains(&ca_days),
        "CA valid for {ca_days} days"
    );
}

#[test]
fn apiserver_kubelet_client_is_system_apiserver_in_system_masters() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_server_pki(&config(dir.path())).unwrap();
    let (_, block) = parse_x509_pem(pki.apiserver_kubelet_client.cert_pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let subject = cert.subject();
    let cn: Vec<_> = subject
        .iter_common_name()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let o: Vec<_> = subject
        .iter_organization()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cn, ["system:apiserver"]);
    assert_eq!(o, ["system:masters"]);
    assert!(pki
        .paths
        .apiserver_kubelet_client_cert
        .ends_with("client-kube-apiserver.crt"));
    let again = ensure_server_pki(&config(dir.path())).unwrap();
    assert_eq!(again.apiserver_kubelet_client, pki.apiserver_kubelet_client);
}

#[test]
fn second_start_reuses_every_file_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let first = ensure_server_pki(&config).unwrap();
    let before = read_all(&first.paths);
    let second = ensure_server_pki(&config).unwrap();
    assert_eq!(
        second.actions,
        [
            CertAction::Reused,
            CertAction::Reused,
            CertAction::Reused,
            CertAction::Reused,
            CertAction::Reused
        ]
    );
    assert_eq!(read_all(&second.paths), before);
    assert_eq!(first.serving, second.serving);
}

#[test]
fn a_new_san_reissues_only_the_serving_cert() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let first = ensure_server_pki(&config).unwrap();
    let before = read_all(&first.paths);
    config.extra_sans.push("k3rs.example.org".into());
    let second = ensure_server_pki(&config).unwrap();
    assert_eq!(second.actions[0], CertAction::Reused);
    assert!(
        matches!(&second.actions[1], CertAction::Reissued(r) if r.contains("DNS:k3rs.example.org")),
        "{:?}",
        second.actions
    );
    assert_eq!(second.actions[2], CertAction::Reused);
    let after = read_all(&second.paths);
    assert_eq!(after[0..2], before[0..2], "CA kept");
    assert_ne!(after[2], before[2], "serving cert re-issued");
    assert_eq!(after[4..6], before[4..6], "admin cert kept");
    assert!(sans_of(&second.serving.cert_pem)
        .iter()
        .any(|s| s == "k3rs.example.org"));
    // Removing the SAN again does not churn the certificate.
    config.extra_sans.clear();
    assert_eq!(
        ensure_server_pki(&config).unwrap().actions[1],
        CertAction::Reused
    );
}

#[test]
fn leaves_close_to_expiry_are_reissued() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.leaf_validity = Duration::from_secs(30 * 24 * 3600);
    let first = ensure_server_pki(&config).unwrap();
    let before = read_all(&first.paths);
    let second = ensure_server_pki(&config).unwrap();
    assert_eq!(second.actions[0], CertAction::Reused);
    for action in &second.actions[1..] {
        assert!(
            matches!(action, CertAction::Reissued(r) if r.contains("expires")),
            "{action:?}"
        );
    }
    let after = read_all(&second.paths);
    assert_eq!(after[0..2], before[0..2]);
    assert_ne!(after[2..], before[2..]);
}

#[test]
fn a_missing_ca_is_recreated_and_every_leaf_reissued() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let first = ensure_server_pki(&config).unwrap();
    fs::remove_file(&first.paths.ca_cert).unwrap();
    let second = ensure_server_pki(&config).unwrap();
    assert_eq!(second.actions[0], CertAction::Created);
    assert!(matches!(second.actions[1], CertAction::Reissued(_)));
    assert!(matches!(second.actions[2], CertAction::Reissued(_)));
    assert_ne!(first.ca_cert_pem, second.ca_cert_pem);
}

#[test]
fn a_ca_without_its_key_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let first = ensure_server_pki(&config).unwrap();
    fs::remove_file(&first.paths.ca_key).unwrap();
    let err = ensure_server_pki(&config).unwrap_err();
    assert!(matches!(err, PkiError::CaKeyMissing { .. }));
    assert!(err.to_string().contains("server-ca.key"), "{err}");
}

#[test]
fn a_leaf_with_a_foreign_key_or_garbage_is_reissued() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let first = ensure_server_pki(&config).unwrap();
    fs::copy(&first.paths.admin_key, &first.paths.serving_key).unwrap();
    fs::write(&first.paths.admin_cert, "not a certificate").unwrap();
    let second = ensure_server_pki(&config).unwrap();
    assert!(
        matches!(&second.actions[1], CertAction::Reissued(r) if r.contains("key does not match")),
        "{:?}",
        second.actions
    );
    assert!(
        matches!(&second.actions[2], CertAction::Reissued(r) if r.contains("client-admin.crt")),
        "{:?}",
        second.actions
    );
    assert_eq!(
        ensure_server_pki(&config).unwrap().actions[1..],
        [
            CertAction::Reused,
            CertAction::Reused,
            CertAction::Reused,
            CertAction::Reused
        ]
    );
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_server_pki(&config(dir.path())).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&pki.paths.dir), 0o700);
    for path in [
        &pki.paths.ca_cert,
        &pki.paths.ca_key,
        &pki.paths.serving_cert,
        &pki.paths.serving_key,
        &pki.paths.admin_cert,
        &pki.paths.admin_key,
        &pki.paths.service_key,
    ] {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
}

#[test]
fn the_service_account_key_is_kept_across_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let first = ensure_server_pki(&config).unwrap();
    assert!(first
        .service_account_key
        .expose()
        .contains("BEGIN PRIVATE KEY"));
    let again = ensure_server_pki(&config).unwrap();
    assert_eq!(first.service_account_key, again.service_account_key);
    // A damaged key is reported, not replaced: replacing it would void every token.
    fs::write(&first.paths.service_key, "garbage").unwrap();
    assert!(ensure_server_pki(&config).is_err());
    assert_eq!(
        fs::read_to_string(&first.paths.service_key).unwrap(),
        "garbage"
    );
}

#[test]
fn debug_output_never_shows_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_server_pki(&config(dir.path())).unwrap();
    let debug = format!("{pki:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains("<redacted>"));
}

#[test]
fn kubeconfig_is_yaml_with_the_admin_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_server_pki(&config(dir.path())).unwrap();
    let path = dir.path().join("etc/k3rs/k3rs.yaml");
    write_admin_kubeconfig(&pki, "https://127.0.0.1:6443", &path, 0o640).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    write_admin_kubeconfig(
        &pki,
        "https://127.0.0.1:6443",
        &path,
        DEFAULT_KUBECONFIG_MODE,
    )
    .unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let decode = |v: &serde_yaml_ng::Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(doc["apiVersion"], "v1");
    assert_eq!(doc["kind"], "Config");
    assert_eq!(doc["current-context"], "default");
    let cluster = &doc["clusters"][0];
    assert_eq!(cluster["name"], "default");
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:6443");
    assert_eq!(
        decode(&cluster["cluster"]["certificate-authority-data"]),
        fs::read_to_string(&pki.paths.ca_cert).unwrap()
    );
    assert_eq!(doc["contexts"][0]["name"], "default");
    assert_eq!(doc["contexts"][0]["context"]["cluster"], "default");
    assert_eq!(doc["contexts"][0]["context"]["user"], "default");
    let user = &doc["users"][0];
    assert_eq!(user["name"], "default");
    let cert = decode(&user["user"]["client-certificate-data"]);
    let key = decode(&user["user"]["client-key-data"]);
    assert_eq!(cert, fs::read_to_string(&pki.paths.admin_cert).unwrap());
    assert_eq!(key, fs::read_to_string(&pki.paths.admin_key).unwrap());
    // The key belongs to the certificate.
    let parsed = crate::certs::parse_cert(&cert, &path).unwrap();
    let key = rcgen::KeyPair::from_pem(&key).unwrap();
    assert_eq!(key.public_key_raw(), parsed.public_key.as_slice());
}
