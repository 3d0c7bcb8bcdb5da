//! kubectl's own auth commands against k3rs: `auth can-i` (with `--as`), `create token` and
//! using the token, `auth whoami`. kubectl sends these (and `create serviceaccount`,
//! `create rolebinding`) as protobuf, so this file needs the API server's protobuf decoding;
//! `auth.rs` covers the same server behaviour through JSON requests. Every scenario runs with
//! each kubectl release of [`kubectls`] (1.33 and 1.37), each against a fresh server.

use crate::auth_support;

use std::time::Duration;

use std::path::Path;
use std::process::Command;

use auth_support::{eventually, kubectl_release, kubectl_release_with_token, ok, run, start};
use k3rs_tests::{kubectls, K3rsServer};

/// Runs `scenario` once per kubectl release, on a fresh server each time.
fn with_each_kubectl(scenario: impl Fn(&dyn Fn(&K3rsServer) -> Command, &Path, &K3rsServer)) {
    for release in kubectls() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server = start(dir.path());
        eprintln!("kubectl {}", release.version);
        let admin = |server: &K3rsServer| kubectl_release(&release.bin, server);
        scenario(&admin, &release.bin, &server);
    }
}

#[test]
fn kubectl_auth_can_i_as_admin_and_as_an_impersonated_user() {
    with_each_kubectl(|kubectl, _, server| can_i(kubectl, server));
}

fn can_i(kubectl: &dyn Fn(&K3rsServer) -> Command, server: &K3rsServer) {
    let out = ok(kubectl(server).args(["auth", "can-i", "create", "pods"]));
    assert_eq!(out.trim(), "yes");
    let out = ok(kubectl(server).args(["auth", "can-i", "*", "*", "--all-namespaces"]));
    assert_eq!(out.trim(), "yes");
    // `can-i` exits 1 for "no".
    let (allowed, out, _) =
        run(kubectl(server).args(["auth", "can-i", "list", "pods", "--as=bob"]));
    assert!(!allowed);
    assert_eq!(out.trim(), "no");
    ok(kubectl(server).args([
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
        "--namespace=default",
    ]));
    let out = ok(kubectl(server).args(["auth", "can-i", "list", "pods", "--as=bob"]));
    assert_eq!(out.trim(), "yes");
    let (allowed, out, _) = run(kubectl(server).args([
        "auth",
        "can-i",
        "list",
        "pods",
        "--as=bob",
        "-n",
        "kube-system",
    ]));
    assert!(!allowed);
    assert_eq!(out.trim(), "no");
    let (allowed, _, _) =
        run(kubectl(server).args(["auth", "can-i", "delete", "pods", "--as=bob"]));
    assert!(!allowed);
    // `--list` is a SelfSubjectRulesReview.
    let out = ok(kubectl(server).args(["auth", "can-i", "--list", "--as=bob"]));
    assert!(out.contains("pods"), "{out}");
}

#[test]
fn kubectl_create_token_then_use_it() {
    with_each_kubectl(|kubectl, bin, server| create_token(kubectl, bin, server));
}

fn create_token(kubectl: &dyn Fn(&K3rsServer) -> Command, bin: &Path, server: &K3rsServer) {
    let kubectl_with_token =
        |server: &K3rsServer, token: &str| kubectl_release_with_token(bin, server, token);
    // The serviceaccount controller creates the default service account.
    let exists = eventually(Duration::from_secs(20), || {
        let (found, _, _) = run(kubectl(server).args(["get", "serviceaccount", "default"]));
        found.then_some(())
    });
    assert!(exists.is_some(), "no default service account");
    let token = ok(kubectl(server).args(["create", "token", "default", "--duration=1h"]));
    let token = token.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");

    let (success, _, stderr) = run(kubectl_with_token(server, &token).args(["get", "pods"]));
    assert!(!success);
    assert!(
        stderr.contains(r#"pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{stderr}"
    );
    ok(kubectl(server).args([
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]));
    let listed = eventually(Duration::from_secs(5), || {
        let (success, out, _) = run(kubectl_with_token(server, &token).args(["get", "pods"]));
        success.then_some(out)
    });
    assert!(listed.is_some(), "the token still cannot list pods");
    let out = ok(kubectl_with_token(server, &token).args([
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]));
    assert_eq!(out, "system:serviceaccount:default:default");
}

#[test]
fn kubectl_auth_whoami() {
    with_each_kubectl(|kubectl, _, server| whoami(kubectl, server));
}

fn whoami(kubectl: &dyn Fn(&K3rsServer) -> Command, server: &K3rsServer) {
    let out = ok(kubectl(server).args(["auth", "whoami"]));
    assert!(out.contains("system:admin"), "{out}");
    assert!(out.contains("system:masters"), "{out}");
    let out = ok(kubectl(server).args(["auth", "whoami", "--as=bob", "--as-group=devs"]));
    assert!(out.contains("bob"), "{out}");
    assert!(out.contains("devs"), "{out}");
}
