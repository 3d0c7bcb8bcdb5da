//! Response bodies as kube-apiserver writes them: Go's field order, the zero values Go always
//! writes, the trailing newline, discovery's `storageVersionHash` — compared as text, since
//! scripts grep it and clients (the Python client's own tests) compare it byte for byte.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use k3rs_tests::{kubectls, with_each_kubectl, K3rsServer};

const CONFIG_MAP: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"default","labels":{"z":"1","b":"2"}},"data":{"k":"v"}}"#;

#[test]
fn bodies_follow_go_field_order_and_end_with_a_newline() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;

    let (code, created) =
        server.request("POST", "/api/v1/namespaces/default/configmaps", CONFIG_MAP)?;
    ensure!(code == 201, "create: {code} {created}");
    ensure!(
        created.starts_with(
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","namespace":"default","uid":""#
        ) && created.ends_with("}\n"),
        "create response: {created:?}"
    );
    let rest = created
        .split_once(r#""creationTimestamp":""#)
        .context("creationTimestamp")?
        .1;
    ensure!(
        rest.contains(r#""labels":{"b":"2","z":"1"},"managedFields":[{"manager":"curl","operation":"Update","apiVersion":"v1","time":"#),
        "metadata order: {created}"
    );
    ensure!(
        created.ends_with("]},\"data\":{\"k\":\"v\"}}\n"),
        "{created:?}"
    );

    // The same conflict kube-apiserver 1.33 answers, to the byte.
    let (code, conflict) =
        server.request("POST", "/api/v1/namespaces/default/configmaps", CONFIG_MAP)?;
    ensure!(code == 409, "{code}");
    assert_eq!(
        conflict,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"a\\\" already exists\",\"reason\":\"AlreadyExists\",\"details\":{\"name\":\"a\",\"kind\":\"configmaps\"},\"code\":409}\n"
    );
    let (code, missing) = server.request("GET", "/api/v1/namespaces/default/pods/nope", "")?;
    ensure!(code == 404, "{code}");
    assert_eq!(
        missing,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"nope\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"nope\",\"kind\":\"pods\"},\"code\":404}\n"
    );

    // A list: TypeMeta, ListMeta, then items without their (empty) TypeMeta.
    let (code, list) = server.request("GET", "/api/v1/namespaces/default/configmaps", "")?;
    ensure!(code == 200, "{code} {list}");
    ensure!(
        list.starts_with(
            r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":""#
        ) && list.contains(r#""items":[{"metadata":{"name":"a","namespace":"default","uid":""#)
            && list.ends_with("}]}\n"),
        "list: {list:?}"
    );

    // A watch event: `type`, then `object` with its TypeMeta.
    let (code, events) = server.request(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%3Da",
        "",
    )?;
    ensure!(code == 200, "{code}");
    ensure!(
        events.starts_with(
            r#"{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","#
        ) && events.ends_with("}}\n"),
        "watch: {events:?}"
    );

    with_each_kubectl(&server, |server, kubectl| {
        let core = kubectl.ok(server, &["get", "--raw", "/api/v1"])?;
        ensure!(
            core.starts_with(r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[{"name":"bindings","singularName":"binding","namespaced":true,"kind":"Binding","verbs":["create"]}"#),
            "/api/v1: {core}"
        );
        ensure!(
            core.contains(r#"{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["po"],"categories":["all"],"storageVersionHash":"xPOwRZ+Yhw8="}"#),
            "/api/v1 pods: {core}"
        );
        let apps = kubectl.ok(server, &["get", "--raw", "/apis/apps/v1"])?;
        ensure!(
            apps.contains(r#""kind":"Deployment","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["deploy"],"categories":["all"],"storageVersionHash":"8aSe+NMegvE="}"#),
            "/apis/apps/v1: {apps}"
        );
        let object = kubectl.ok(
            server,
            &["get", "--raw", "/api/v1/namespaces/default/configmaps/a"],
        )?;
        ensure!(
            object.starts_with(r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","namespace":"default","uid":"#),
            "get: {object}"
        );
        let error = kubectl.fails(server, &["create", "configmap", "a"])?;
        ensure!(
            error.contains(r#"configmaps "a" already exists"#),
            "{error}"
        );
        Ok(())
    });
    Ok(())
}

const ZERO_STATUS_KINDS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec:
  replicas: 0
  selector: {app: rc}
  template:
    metadata: {labels: {app: rc}}
    spec:
      containers: [{name: c, image: busybox}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: nothing}}
"#;

/// Go never omits a struct value: a kind whose status is a struct is written with that status
/// even before anything set it, and clients (the Python client's models) rely on it.
#[test]
fn new_objects_carry_the_status_go_writes_for_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    let manifest = dir.path().join("kinds.yaml");
    std::fs::write(&manifest, ZERO_STATUS_KINDS)?;

    let manifest = manifest.display().to_string();
    with_each_kubectl(&server, |server, kubectl| {
        let ns = kubectl.named("zero");
        kubectl.ok(server, &["create", "namespace", &ns])?;
        kubectl.ok(server, &["create", "-n", &ns, "-f", &manifest])?;
        let path = format!("/api/v1/namespaces/{ns}/services/web");
        let service = kubectl.ok(server, &["get", "--raw", &path])?;
        ensure!(
            service
                .trim_end()
                .ends_with(",\"status\":{\"loadBalancer\":{}}}"),
            "service: {service}"
        );
        for (kind, field) in [("rc/rc", "replicas"), ("pdb/pdb", "expectedPods")] {
            let jsonpath = format!("jsonpath={{.status.{field}}}");
            let value = kubectl.ok(server, &["get", "-n", &ns, kind, "-o", &jsonpath])?;
            ensure!(value == "0", "{kind} status.{field}: {value:?}");
        }
        Ok(())
    });
    let ns = kubectls()[0].named("zero");
    // The create responses, before any controller wrote a status.
    let (code, created) = server.request(
        "POST",
        "/apis/apps/v1/namespaces/default/replicasets",
        r#"{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"rs"},"spec":{"replicas":0,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}"#,
    )?;
    ensure!(code == 201, "{code} {created}");
    ensure!(
        created.ends_with(",\"status\":{\"replicas\":0}}\n"),
        "replicaset: {created}"
    );
    let (code, created) = server.request(
        "POST",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"p2"},"spec":{"maxUnavailable":1}}"#,
    )?;
    ensure!(code == 201, "{code} {created}");
    ensure!(
        created.ends_with(
            ",\"status\":{\"disruptionsAllowed\":0,\"currentHealthy\":0,\"desiredHealthy\":0,\"expectedPods\":0}}\n"
        ),
        "pdb: {created}"
    );

    // The Python client sees a status object, not `None`.
    let script = r#"
import sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
core, policy = client.CoreV1Api(), client.PolicyV1Api()
ns = sys.argv[2]
svc = core.read_namespaced_service("web", ns)
assert svc.status is not None and svc.status.load_balancer is not None, svc.status
rc = core.read_namespaced_replication_controller("rc", ns)
assert rc.status is not None and rc.status.replicas == 0, rc.status
pdb = policy.read_namespaced_pod_disruption_budget("pdb", ns)
assert pdb.status is not None and pdb.status.expected_pods == 0, pdb.status
print("ok")
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(&server.kubeconfig)
        .arg(&ns)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success() && stdout.trim() == "ok",
        "python client: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
