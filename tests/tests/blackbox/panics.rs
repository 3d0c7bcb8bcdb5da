//! Panics are contained: a panicking request is one 500 `Status` and the connection goes on,
//! a panicking background task is logged and restarted. Both use the debug build's test hooks
//! (`K3RS_TEST_PANIC_PATH`, `K3RS_TEST_PANIC_TASK`), which release builds do not have.

use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use k3rs_tests::{eventually, kubectls, run_ok, K3rsServer};

const PANIC_PATH: &str = "/api/v1/namespaces/default/configmaps/panic-here";

/// Upstream's `WithPanicRecovery` words.
const PANIC_MESSAGE: &str = "This request caused apiserver to panic. Look in the logs for details.";

/// GETs `first` then `second` with one curl, which reuses its connection; returns each
/// response's code, body and whether curl had to open a new connection for it.
fn two_gets_on_one_connection(
    server: &K3rsServer,
    protocol: &str,
    first: &str,
    second: &str,
) -> anyhow::Result<Vec<(u16, String, bool)>> {
    let dir = tempfile::tempdir()?;
    let bodies = [dir.path().join("first"), dir.path().join("second")];
    let out = run_ok(
        Command::new("curl")
            .args(["--silent", "--show-error", protocol, "--cacert"])
            .arg(server.ca_cert())
            .arg("--cert")
            .arg(server.admin_cert())
            .arg("--key")
            .arg(server.admin_key())
            .args(["-w", "%{http_code} %{num_connects}\\n", "-o"])
            .arg(&bodies[0])
            .arg(format!("{}{first}", server.url()))
            .arg("-o")
            .arg(&bodies[1])
            .arg(format!("{}{second}", server.url())),
    )?;
    out.lines()
        .zip(&bodies)
        .map(|(line, body)| {
            let (code, connects) = line
                .split_once(' ')
                .with_context(|| format!("curl's write-out {line:?}"))?;
            Ok((
                code.parse()?,
                std::fs::read_to_string(body)?,
                connects != "0",
            ))
        })
        .collect()
}

#[test]
fn a_panicking_request_gets_a_500_status_and_the_connection_serves_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        K3rsServer::start_with_env(dir.path(), &[], &[("K3RS_TEST_PANIC_PATH", PANIC_PATH)])
            .unwrap();
    for protocol in ["--http1.1", "--http2"] {
        let answers = two_gets_on_one_connection(
            &server,
            protocol,
            PANIC_PATH,
            "/api/v1/namespaces/default/configmaps",
        )
        .unwrap();
        assert_eq!(answers.len(), 2, "{protocol}: {answers:?}");
        let (code, body, _) = &answers[0];
        assert_eq!(
            *code, 500,
            "{protocol}: the test hook needs a debug build of k3rs: {body}"
        );
        let status: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(status["kind"], "Status", "{body}");
        assert_eq!(status["status"], "Failure", "{body}");
        assert_eq!(status["reason"], "InternalError", "{body}");
        assert_eq!(status["code"], 500, "{body}");
        assert_eq!(status["message"], PANIC_MESSAGE, "{body}");
        let (code, body, new_connection) = &answers[1];
        assert_eq!(*code, 200, "{protocol}: the next request is served: {body}");
        assert!(body.contains("\"kind\":\"ConfigMapList\""), "{body}");
        assert!(
            !new_connection,
            "{protocol}: the next request went over the same connection"
        );
    }

    let kubectl = &kubectls()[0];
    let stderr = kubectl
        .fails(&server, &["get", "configmap", "panic-here"])
        .unwrap();
    assert!(
        stderr.contains(&format!(
            "Error from server (InternalError): {PANIC_MESSAGE}"
        )),
        "{stderr}"
    );
    kubectl
        .ok(&server, &["create", "configmap", "after-the-panic"])
        .unwrap();

    let log = server.log_text();
    let line = log
        .lines()
        .find(|line| line.contains("apiserver panicked serving a request"))
        .unwrap_or_else(|| panic!("the panic is logged:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("verb=GET"), "{line}");
    assert!(line.contains(&format!("path={PANIC_PATH}")), "{line}");
    assert!(line.contains("user=\"system:admin\""), "{line}");
    assert!(line.contains("a test asked"), "the panic message: {line}");
}

#[test]
fn a_panicking_background_task_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    // The CRD controller's first pass is what `/readyz` waits for (`crd-informer-synced`), so
    // the server becomes ready only if the controller runs again after its panic.
    let server = K3rsServer::start_with_env(
        dir.path(),
        &[],
        &[("K3RS_TEST_PANIC_TASK", "crd-controller")],
    )
    .unwrap();
    let log = server.log_text();
    let line = log
        .lines()
        .find(|line| line.contains("background task panicked; restarting it"))
        .unwrap_or_else(|| panic!("the panic is logged:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("task=\"crd-controller\""), "{line}");

    let (code, body) = server.get("/readyz?verbose").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("[+]crd-controller ok\n"), "{body}");
    assert!(body.contains("[+]rbac-policy-cache ok\n"), "{body}");
    // The controllers' supervised tasks report through the check `k3rs server` registers.
    assert!(body.contains("[+]controllers ok\n"), "{body}");
    assert!(
        body.ends_with("[+]shutdown ok\nreadyz check passed\n"),
        "{body}"
    );

    // The restarted controller serves a new CRD.
    let crd = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
        "metadata":{"name":"widgets.example.com"},
        "spec":{"group":"example.com","scope":"Namespaced",
          "names":{"plural":"widgets","singular":"widget","kind":"Widget"},
          "versions":[{"name":"v1","served":true,"storage":true,
            "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}"#;
    let (code, body) = server
        .request(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd,
        )
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let served = eventually(Duration::from_secs(20), || {
        let (code, _) = server
            .get("/apis/example.com/v1/namespaces/default/widgets")
            .ok()?;
        (code == 200).then_some(())
    });
    assert!(
        served.is_some(),
        "the CRD is served after the controller's restart"
    );
}
