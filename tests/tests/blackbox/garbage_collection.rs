//! The garbage collector with real kubectl: background deletion takes a Deployment's
//! ReplicaSets and pods with it; `--cascade=foreground` keeps the Deployment until its
//! ReplicaSets and pods are gone; `--cascade=orphan` leaves them without the owner reference;
//! objects whose owners never existed or went away (also custom resources as owners) are
//! collected, and a dangling reference next to a live owner is removed.

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use k3rs_tests::{eventually, with_each_kubectl, K3rsServer, Kubectl};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn deployment(name: &str, finalizer: bool) -> String {
    let finalizers = if finalizer {
        "finalizers: [example.com/hold]"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      {finalizers}
    spec: {{containers: [{{name: c, image: nginx}}]}}
"#
    )
}

fn names(
    kubectl: &Kubectl,
    server: &K3rsServer,
    what: &str,
    selector: &str,
) -> Result<Vec<String>> {
    let out = kubectl.ok(server, &["get", what, "-l", selector, "-o", "name"])?;
    Ok(out.lines().map(str::to_owned).collect())
}

fn json(kubectl: &Kubectl, server: &K3rsServer, args: &[&str]) -> Result<Value> {
    Ok(serde_json::from_str(&kubectl.ok(server, args)?)?)
}

fn wait_for(what: &str, check: impl FnMut() -> Option<()>) -> Result<()> {
    match eventually(WAIT, check) {
        Some(()) => Ok(()),
        None => bail!("timed out waiting for {what}"),
    }
}

fn apply(kubectl: &Kubectl, server: &K3rsServer, yaml: &str) -> Result<()> {
    let (ok, _, err) = kubectl.run_with_input(server, &["apply", "-f", "-"], yaml)?;
    ensure!(ok, "apply: {err}");
    Ok(())
}

#[test]
fn deletion_cascades_in_the_background_in_the_foreground_or_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    with_each_kubectl(&server, |server, kubectl| {
        let v = kubectl.version.replace('.', "");
        // Background (kubectl's default): the Deployment goes at once, then its ReplicaSet
        // and pods.
        let bg = format!("bg{v}");
        apply(kubectl, server, &deployment(&bg, false))?;
        wait_for("2 pods", || {
            (names(kubectl, server, "pods", &format!("app={bg}"))
                .ok()?
                .len()
                == 2)
                .then_some(())
        })?;
        kubectl.ok(server, &["delete", "deployment", &bg])?;
        wait_for("the ReplicaSet and pods to go", || {
            let left = names(kubectl, server, "replicasets,pods", &format!("app={bg}")).ok()?;
            left.is_empty().then_some(())
        })?;

        // Foreground: pods held by a finalizer hold their ReplicaSet, which holds the
        // Deployment.
        let fg = format!("fg{v}");
        apply(kubectl, server, &deployment(&fg, true))?;
        wait_for("2 pods", || {
            (names(kubectl, server, "pods", &format!("app={fg}"))
                .ok()?
                .len()
                == 2)
                .then_some(())
        })?;
        kubectl.ok(
            server,
            &[
                "delete",
                "deployment",
                &fg,
                "--cascade=foreground",
                "--wait=false",
            ],
        )?;
        wait_for("the pods to be terminating", || {
            let pods = json(
                kubectl,
                server,
                &["get", "pods", "-l", &format!("app={fg}"), "-o", "json"],
            )
            .ok()?;
            let items = pods["items"].as_array()?;
            (items.len() == 2
                && items
                    .iter()
                    .all(|p| p["metadata"]["deletionTimestamp"].is_string()))
            .then_some(())
        })?;
        let held = json(kubectl, server, &["get", "deployment", &fg, "-o", "json"])?;
        ensure!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
        ensure!(
            held["metadata"]["finalizers"] == serde_json::json!(["foregroundDeletion"]),
            "{held}"
        );
        let sets = json(
            kubectl,
            server,
            &[
                "get",
                "replicasets",
                "-l",
                &format!("app={fg}"),
                "-o",
                "json",
            ],
        )?;
        ensure!(sets["items"].as_array().map(Vec::len) == Some(1), "{sets}");
        ensure!(
            sets["items"][0]["metadata"]["deletionTimestamp"].is_string(),
            "{sets}"
        );
        for pod in names(kubectl, server, "pods", &format!("app={fg}"))? {
            kubectl.ok(
                server,
                &[
                    "patch",
                    &pod,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ],
            )?;
        }
        kubectl.ok(
            server,
            &[
                "wait",
                "--for=delete",
                &format!("deployment/{fg}"),
                "--timeout=30s",
            ],
        )?;
        ensure!(names(kubectl, server, "replicasets,pods", &format!("app={fg}"))?.is_empty());

        // Orphan: the ReplicaSet stays, without the reference.
        let orphan = format!("or{v}");
        apply(kubectl, server, &deployment(&orphan, false))?;
        wait_for("2 pods", || {
            (names(kubectl, server, "pods", &format!("app={orphan}"))
                .ok()?
                .len()
                == 2)
                .then_some(())
        })?;
        kubectl.ok(
            server,
            &["delete", "deployment", &orphan, "--cascade=orphan"],
        )?;
        std::thread::sleep(Duration::from_secs(2));
        let sets = json(
            kubectl,
            server,
            &[
                "get",
                "replicasets",
                "-l",
                &format!("app={orphan}"),
                "-o",
                "json",
            ],
        )?;
        ensure!(sets["items"].as_array().map(Vec::len) == Some(1), "{sets}");
        ensure!(
            sets["items"][0]["metadata"]["ownerReferences"].is_null(),
            "{sets}"
        );
        ensure!(names(kubectl, server, "pods", &format!("app={orphan}"))?.len() == 2);
        kubectl.ok(
            server,
            &["delete", "replicasets", "-l", &format!("app={orphan}")],
        )?;
        Ok(())
    });
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: apps.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: apps, singular: app, kind: App}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn owned_config_map(name: &str, owners: &[(&str, &str, &str, &str)]) -> String {
    let refs: Vec<String> = owners
        .iter()
        .map(|(api, kind, owner, uid)| {
            format!("{{apiVersion: {api}, kind: {kind}, name: {owner}, uid: {uid}}}")
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, ownerReferences: [{}]}}\n",
        refs.join(", ")
    )
}

#[test]
fn dependents_of_missing_owners_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let kubectl = &k3rs_tests::kubectls()[0];
    let check = || -> Result<()> {
        apply(kubectl, &server, CRD)?;
        kubectl.ok(
            &server,
            &[
                "wait",
                "--for=condition=Established",
                "crd/apps.example.com",
            ],
        )?;
        apply(
            kubectl,
            &server,
            "apiVersion: example.com/v1\nkind: App\nmetadata: {name: owner}\n",
        )?;
        let owner_uid = kubectl.ok(
            &server,
            &["get", "app", "owner", "-o", "jsonpath={.metadata.uid}"],
        )?;
        let keeper_uid = kubectl.ok(
            &server,
            &[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-o",
                "jsonpath={.metadata.uid}",
            ],
        )?;

        // An owner that never existed.
        apply(
            kubectl,
            &server,
            &owned_config_map(
                "ghost",
                &[(
                    "v1",
                    "ConfigMap",
                    "nobody",
                    "00000000-0000-0000-0000-000000000001",
                )],
            ),
        )?;
        // A custom resource as owner, alive for now.
        apply(
            kubectl,
            &server,
            &owned_config_map("by-app", &[("example.com/v1", "App", "owner", &owner_uid)]),
        )?;
        // One live owner and one dangling reference.
        apply(
            kubectl,
            &server,
            &owned_config_map(
                "two-owners",
                &[
                    ("v1", "ConfigMap", "kube-root-ca.crt", &keeper_uid),
                    (
                        "v1",
                        "ConfigMap",
                        "nobody",
                        "00000000-0000-0000-0000-000000000002",
                    ),
                ],
            ),
        )?;
        wait_for("the ghost's dependent to go", || {
            let (found, _, _) = kubectl.run(&server, &["get", "configmap", "ghost"]).ok()?;
            (!found).then_some(())
        })?;
        wait_for("the dangling reference to go", || {
            let refs = kubectl
                .ok(
                    &server,
                    &[
                        "get",
                        "configmap",
                        "two-owners",
                        "-o",
                        "jsonpath={.metadata.ownerReferences[*].name}",
                    ],
                )
                .ok()?;
            (refs.trim() == "kube-root-ca.crt").then_some(())
        })?;
        let (found, _, _) = kubectl.run(&server, &["get", "configmap", "by-app"])?;
        ensure!(found, "a dependent of a live owner was collected");
        kubectl.ok(&server, &["delete", "app", "owner"])?;
        wait_for("the custom resource's dependent to go", || {
            let (found, _, _) = kubectl.run(&server, &["get", "configmap", "by-app"]).ok()?;
            (!found).then_some(())
        })?;
        Ok(())
    };
    if let Err(err) = check() {
        panic!("{err:#}\nserver log:\n{}", server.log_text());
    }
}
