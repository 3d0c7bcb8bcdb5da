//! Namespace lifecycle with real kubectl (1.33 and 1.37): a new namespace gets its `default`
//! ServiceAccount and `kube-root-ca.crt` ConfigMap (put back when deleted); deleting a
//! namespace deletes everything in it — built-in kinds and custom resources — then the
//! namespace; an object whose finalizer holds it keeps the namespace `Terminating`, with
//! upstream's conditions saying why, until the finalizer goes.

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use k3rs_tests::{eventually, with_each_kubectl, K3rsServer, Kubectl};
use serde_json::Value;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn content(ns: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{a: "1"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: token, namespace: {ns}}}
stringData: {{t: x}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: c, image: nginx}}]}}
---
apiVersion: example.com/v1
kind: Widget
metadata: {{name: plain, namespace: {ns}}}
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: held
  namespace: {ns}
  finalizers: [example.com/hold]
"#
    )
}

fn json(kubectl: &Kubectl, server: &K3rsServer, args: &[&str]) -> Result<Value> {
    Ok(serde_json::from_str(&kubectl.ok(server, args)?)?)
}

fn condition<'a>(namespace: &'a Value, type_: &str) -> Option<&'a Value> {
    namespace["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[test]
fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let kubectls = k3rs_tests::kubectls();
    let first = &kubectls[0];
    let (ok, _, err) = first
        .run_with_input(&server, &["apply", "-f", "-"], CRD)
        .unwrap();
    assert!(ok, "{err}");
    first
        .ok(
            &server,
            &[
                "wait",
                "--for=condition=Established",
                "crd/widgets.example.com",
            ],
        )
        .unwrap();

    with_each_kubectl(&server, |server, kubectl| {
        let ns = kubectl.named("doomed");
        kubectl.ok(server, &["create", "namespace", &ns])?;
        let defaults = || {
            let out = kubectl
                .ok(
                    server,
                    &["get", "serviceaccounts,configmaps", "-n", &ns, "-o", "name"],
                )
                .ok()?;
            (out.contains("serviceaccount/default") && out.contains("configmap/kube-root-ca.crt"))
                .then_some(())
        };
        ensure!(
            eventually(Duration::from_secs(20), defaults).is_some(),
            "no default ServiceAccount or kube-root-ca.crt in {ns}"
        );
        let ca = kubectl.ok(
            server,
            &[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                &ns,
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ],
        )?;
        ensure!(
            ca == std::fs::read_to_string(server.ca_cert())?,
            "kube-root-ca.crt is not the cluster CA: {ca}"
        );
        kubectl.ok(server, &["delete", "serviceaccount", "default", "-n", &ns])?;
        kubectl.ok(
            server,
            &["delete", "configmap", "kube-root-ca.crt", "-n", &ns],
        )?;
        ensure!(
            eventually(Duration::from_secs(20), defaults).is_some(),
            "the defaults were not put back in {ns}"
        );

        let (ok, _, err) = kubectl.run_with_input(server, &["apply", "-f", "-"], &content(&ns))?;
        ensure!(ok, "apply: {err}");

        // `kubectl delete namespace` waits for it to go; here one object's finalizer holds it.
        kubectl.ok(server, &["delete", "namespace", &ns, "--wait=false"])?;
        let held = eventually(Duration::from_secs(30), || {
            let namespace = json(kubectl, server, &["get", "namespace", &ns, "-o", "json"]).ok()?;
            let remaining = condition(&namespace, "NamespaceFinalizersRemaining")?;
            (remaining["status"] == "True").then(|| namespace.clone())
        });
        let Some(held) = held else {
            bail!("the namespace never reported the finalizer holding it");
        };
        ensure!(held["status"]["phase"] == "Terminating", "{held}");
        ensure!(
            condition(&held, "NamespaceFinalizersRemaining").unwrap()["message"]
                == "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
            "{held}"
        );
        ensure!(
            condition(&held, "NamespaceContentRemaining").unwrap()["message"]
                == "Some resources are remaining: widgets.example.com has 1 resource instances",
            "{held}"
        );
        // Everything without a finalizer is gone already.
        let left = kubectl.ok(
            server,
            &[
                "get",
                "configmaps,secrets,deployments,widgets",
                "-n",
                &ns,
                "-o",
                "name",
            ],
        )?;
        ensure!(left.trim() == "widget.example.com/held", "left: {left}");
        // The defaults are not put back into a terminating namespace.
        let left = kubectl.ok(
            server,
            &["get", "serviceaccounts,configmaps", "-n", &ns, "-o", "name"],
        )?;
        ensure!(left.trim().is_empty(), "left: {left}");
        // New content is refused while the namespace terminates.
        let refused = kubectl.fails(server, &["create", "configmap", "late", "-n", &ns])?;
        ensure!(
            refused.contains("because it is being terminated"),
            "{refused}"
        );

        kubectl.ok(
            server,
            &[
                "patch",
                "widget",
                "held",
                "-n",
                &ns,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
        )?;
        kubectl.ok(
            server,
            &[
                "wait",
                "--for=delete",
                &format!("namespace/{ns}"),
                "--timeout=30s",
            ],
        )?;
        let (found, _, _) = kubectl.run(server, &["get", "namespace", &ns])?;
        ensure!(!found, "the namespace is still there");

        // A namespace with nothing in it goes at once, and `kubectl delete` (which waits) returns.
        kubectl.ok(server, &["create", "namespace", &format!("{ns}-empty")])?;
        kubectl.ok(
            server,
            &[
                "delete",
                "namespace",
                &format!("{ns}-empty"),
                "--timeout=30s",
            ],
        )?;
        Ok(())
    });
}

/// Upstream's NamespaceLifecycle admission: `default`, `kube-system` and `kube-public` may not be
/// deleted (403 with upstream's words, kubectl reports it and exits 1), while every other
/// namespace — `kube-node-lease` included — goes.
#[test]
fn the_immortal_namespaces_survive_delete_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    with_each_kubectl(&server, |server, kubectl| {
        let ns = kubectl.named("mortal");
        kubectl.ok(server, &["create", "namespace", &ns])?;
        let (ok, _, err) =
            kubectl.run(server, &["delete", "namespace", "--all", "--wait=false"])?;
        ensure!(!ok, "delete --all succeeded: {err}");
        for name in ["default", "kube-system", "kube-public"] {
            let line = format!(
                "Error from server (Forbidden): namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            );
            ensure!(err.contains(&line), "no {line:?} in {err}");
            let namespace = json(kubectl, server, &["get", "namespace", name, "-o", "json"])?;
            ensure!(
                namespace["status"]["phase"] == "Active"
                    && namespace["metadata"].get("deletionTimestamp").is_none(),
                "{name} was touched: {namespace}"
            );
        }
        ensure!(!err.contains("kube-node-lease"), "{err}");
        // The others are deleted (or on their way).
        for name in [ns.as_str(), "kube-node-lease"] {
            let gone = eventually(Duration::from_secs(20), || {
                let (found, out, _) = kubectl
                    .run(server, &["get", "namespace", name, "-o", "json"])
                    .ok()?;
                let terminating = found
                    && serde_json::from_str::<Value>(&out).ok()?["status"]["phase"]
                        == "Terminating";
                (!found || terminating).then_some(())
            });
            ensure!(gone.is_some(), "{name} was not deleted");
        }
        // One at a time, and in dry run, the same answer.
        for args in [
            &["delete", "namespace", "kube-system"][..],
            &["delete", "namespace", "default", "--dry-run=server"][..],
        ] {
            let err = kubectl.fails(server, args)?;
            ensure!(
                err.contains("is forbidden: this namespace may not be deleted"),
                "{err}"
            );
        }
        Ok(())
    });
}
