//! Helpers shared by the authentication and authorization black-box tests: kubectl as the admin,
//! as a bearer-token user, and curl for the JSON requests kubectl would send as protobuf.

// Test set-up: a failure here should stop the test loudly.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use k3rs_tests::{kubectl_bin, K3rsServer};
use serde_json::Value;

/// Who a request is sent as.
#[derive(Clone, Copy, Debug)]
pub(crate) enum As<'a> {
    /// The admin client certificate (`system:admin`, `system:masters`).
    Admin,
    /// A bearer token, without any client certificate.
    Token(&'a str),
    /// No credentials.
    Anonymous,
}

/// kubectl as the admin (the server's kubeconfig).
pub(crate) fn kubectl(server: &K3rsServer) -> Command {
    kubectl_release(&kubectl_bin(), server)
}

/// A given kubectl binary as the admin.
pub(crate) fn kubectl_release(bin: &Path, server: &K3rsServer) -> Command {
    let mut command = Command::new(bin);
    command
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .arg("--request-timeout=20s");
    command
}

/// kubectl with only a bearer token: no kubeconfig, so no client certificate is sent along
/// (a certificate would win over the token, as upstream's authenticator order has it).
pub(crate) fn kubectl_with_token(server: &K3rsServer, token: &str) -> Command {
    kubectl_release_with_token(&kubectl_bin(), server, token)
}

/// A given kubectl binary with only a bearer token.
pub(crate) fn kubectl_release_with_token(bin: &Path, server: &K3rsServer, token: &str) -> Command {
    let mut command = Command::new(bin);
    command
        .arg("--kubeconfig=/dev/null")
        .arg(format!("--server={}", server.url()))
        .arg(format!(
            "--certificate-authority={}",
            server.ca_cert().display()
        ))
        .arg(format!("--token={token}"))
        .arg("--request-timeout=20s");
    command
}

/// Runs a command and returns (success, stdout, stderr).
pub(crate) fn run(command: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .unwrap_or_else(|err| panic!("running {command:?}: {err}"));
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Runs a command that must succeed; returns its stdout.
pub(crate) fn ok(command: &mut Command) -> String {
    let (success, stdout, stderr) = run(command);
    assert!(
        success,
        "{command:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

/// `kubectl create -f -` of a JSON or YAML manifest (sent as JSON, as for every unstructured
/// object); `-o json` of what the server answered.
pub(crate) fn create(server: &K3rsServer, manifest: &str) -> Value {
    let mut command = kubectl(server);
    command.args(["create", "--validate=false", "-o", "json", "-f", "-"]);
    let stdout = with_stdin(&mut command, manifest);
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

/// Runs `command` with `input` on stdin; it must succeed.
pub(crate) fn with_stdin(command: &mut Command, input: &str) -> String {
    use std::io::Write as _;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// An HTTPS request with curl; returns the status code and the body parsed as JSON (or as a
/// JSON string when it is not JSON).
pub(crate) fn curl(
    server: &K3rsServer,
    who: As<'_>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--max-time", "20", "-X", method])
        .arg("--cacert")
        .arg(server.ca_cert())
        .args(["-w", "\n%{http_code}"]);
    match who {
        As::Admin => {
            command
                .arg("--cert")
                .arg(server.admin_cert())
                .arg("--key")
                .arg(server.admin_key());
        }
        As::Token(token) => {
            command
                .arg("-H")
                .arg(format!("Authorization: Bearer {token}"));
        }
        As::Anonymous => {}
    }
    if let Some(body) = body {
        command
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(body.to_string());
    }
    command.arg(format!("{}{path}", server.url()));
    let stdout = ok(&mut command);
    let (text, code) = stdout.rsplit_once('\n').unwrap();
    let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
    (code.trim().parse().unwrap(), value)
}

pub(crate) use k3rs_tests::eventually;

/// Starts a server in `dir`.
pub(crate) fn start(dir: &Path) -> K3rsServer {
    K3rsServer::start(dir).unwrap()
}
