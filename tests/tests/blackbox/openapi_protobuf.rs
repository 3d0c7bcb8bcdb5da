//! `/openapi/v2` as protobuf, which kubectl's client-side validation reads for every kind whose
//! group-version `/openapi/v3` does not list: `kind: List` files, multi-object `kubectl edit`, a
//! CRD with its custom resource (and an unknown kind) in one file, and every `create -f` of
//! kubectl 1.27. Also how the documents are negotiated (content types, ETag, `Vary`, 304, 406).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use k3rs_tests::{eventually, with_each_kubectl, K3rsServer, Kubectl};

/// What kubectl 1.27 says when the v2 document cannot be had (the defect this module covers).
const NO_CONTENT_TYPE: &str = "the server was unable to respond with a content type";

fn file(server: &K3rsServer, name: &str, text: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = server.root.join(name);
    std::fs::write(&path, text)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

fn namespace(server: &K3rsServer, kubectl: &Kubectl, purpose: &str) -> Result<String> {
    let ns = kubectl.named(purpose);
    kubectl.ok(server, &["create", "namespace", &ns])?;
    Ok(ns)
}

fn config_map_data(server: &K3rsServer, kubectl: &Kubectl, ns: &str, name: &str) -> Result<String> {
    kubectl.ok(
        server,
        &[
            "-n",
            ns,
            "get",
            "configmap",
            name,
            "-o",
            "jsonpath={.data.k}",
        ],
    )
}

fn list_scenario(server: &K3rsServer, kubectl: &Kubectl) -> Result<()> {
    let ns = namespace(server, kubectl, "list")?;
    let list = file(
        server,
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n\
         - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {k: v}}\n\
         - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}, data: {k: v}}\n",
    )?;
    let list = list.to_str().context("path")?;
    let out = kubectl.ok(server, &["-n", &ns, "create", "-f", list])?;
    ensure!(
        out.contains("configmap/a created") && out.contains("configmap/b created"),
        "{out}"
    );

    // The items are validated against the v2 document, in kube-openapi's words.
    let bad = file(
        server,
        "bad-list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n\
         - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}, bogus: 1}\n\
         - apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: d}\n  spec: {replicas: two, selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n",
    )?;
    let stderr = kubectl.fails(
        server,
        &["-n", &ns, "create", "-f", bad.to_str().context("path")?],
    )?;
    for expected in [
        "error validating data: ",
        r#"ValidationError(ConfigMap): unknown field "bogus" in io.k8s.api.core.v1.ConfigMap"#,
        r#"ValidationError(Deployment.spec.replicas): invalid type for io.k8s.api.apps.v1.DeploymentSpec.replicas: got "string", expected "integer""#,
        "if you choose to ignore these errors, turn validation off with --validate=false",
    ] {
        ensure!(
            stderr.contains(expected),
            "missing {expected:?} in: {stderr}"
        );
    }
    ensure!(
        !kubectl
            .run(server, &["-n", &ns, "get", "configmap", "c"])?
            .0,
        "an invalid file creates nothing"
    );

    // `kubectl edit` of two objects edits a List.
    let editor = file(
        server,
        "editor.sh",
        "#!/bin/sh\nsed -i 's/k: v$/k: edited/' \"$1\"\n",
    )?;
    let edit = kubectl
        .command(server)
        .args(["-n", &ns, "edit", "configmap", "a", "b"])
        .env("EDITOR", &editor)
        .output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&edit.stdout),
        String::from_utf8_lossy(&edit.stderr),
    );
    ensure!(edit.status.success(), "edit failed: {stderr}{stdout}");
    ensure!(
        stdout.contains("configmap/a edited") && stdout.contains("configmap/b edited"),
        "{stdout}"
    );
    for name in ["a", "b"] {
        ensure!(
            config_map_data(server, kubectl, &ns, name)? == "edited",
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn kind_list_files_and_multi_object_edits_validate_and_apply() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    with_each_kubectl(&server, list_scenario);
    Ok(())
}

fn crd_scenario(server: &K3rsServer, kubectl: &Kubectl) -> Result<()> {
    let group = format!("v{}.example.com", kubectl.version.replace('.', ""));
    let ns = namespace(server, kubectl, "crd")?;
    let manifest = format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer}}
---
apiVersion: {group}/v1
kind: Widget
metadata: {{name: w1}}
spec: {{size: 3}}
---
apiVersion: {group}/v1
kind: Gadget
metadata: {{name: g1}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: after}}
"#
    );
    let path = file(server, "crd-mix.yaml", &manifest)?;
    let path = path.to_str().context("path")?;
    let unknown = format!(
        "resource mapping not found for name: \"g1\" namespace: \"\" from \"{path}\": no matches for kind \"Gadget\" in version \"{group}/v1\""
    );
    // The CRD and the objects after it are created, the unknown kind is reported as upstream
    // reports it. The Widget can come too early (before its CRD is established and discovery
    // shows it): as with kube-apiserver, running the file again creates it.
    let created = eventually(std::time::Duration::from_secs(30), || {
        let (_, stdout, stderr) = kubectl
            .run(server, &["-n", &ns, "create", "-f", path])
            .ok()?;
        assert!(
            stderr.contains(&unknown) && !stderr.contains("error validating"),
            "kubectl {}: {stderr}{stdout}",
            kubectl.version
        );
        kubectl
            .run(
                server,
                &["-n", &ns, "get", &format!("widgets.{group}"), "w1"],
            )
            .ok()?
            .0
            .then_some(())
    });
    ensure!(created.is_some(), "the Widget was never created");
    kubectl.ok(server, &["get", "crd", &format!("widgets.{group}")])?;
    kubectl.ok(server, &["-n", &ns, "get", "configmap", "after"])?;

    // The v2 document (both forms) follows the CRDs: a Widget in a List is validated against
    // its schema.
    let bad = file(
        server,
        "bad-widget.yaml",
        &format!("apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: {group}/v1, kind: Widget, metadata: {{name: w2}}, spec: {{size: big}}}}\n"),
    )?;
    let stderr = kubectl.fails(
        server,
        &["-n", &ns, "create", "-f", bad.to_str().context("path")?],
    )?;
    let reversed: Vec<&str> = group.split('.').rev().collect();
    let expected = format!(
        "ValidationError(Widget.spec.size): invalid type for {}.v1.Widget.spec.size: got \"string\", expected \"integer\"",
        reversed.join(".")
    );
    ensure!(
        stderr.contains(&expected),
        "missing {expected:?} in: {stderr}"
    );
    Ok(())
}

#[test]
fn crd_with_its_resource_and_an_unknown_kind_in_one_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    with_each_kubectl(&server, crd_scenario);
    Ok(())
}

/// kubectl 1.27 (`$KUBECTL_1_27`, else beside the 1.33 the machine carries): the last release
/// that validated every `create -f` with the v2 document.
fn kubectl_1_27() -> Kubectl {
    let bin = std::env::var_os("KUBECTL_1_27")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.27"));
    assert!(
        bin.is_file(),
        "kubectl 1.27 not found at {}; run `cargo xtask deps`",
        bin.display()
    );
    Kubectl {
        version: "1.27",
        bin,
    }
}

#[test]
fn kubectl_1_27_creates_a_pod_from_a_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    let kubectl = kubectl_1_27();
    let pod = file(
        &server,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: old-client}\nspec:\n  containers: [{name: c, image: busybox:1.36}]\n",
    )?;
    let (ok, stdout, stderr) =
        kubectl.run(&server, &["create", "-f", pod.to_str().context("path")?])?;
    assert!(
        ok && stdout.contains("pod/old-client created") && !stderr.contains(NO_CONTENT_TYPE),
        "{stderr}{stdout}"
    );
    Ok(())
}

/// One GET with curl as the admin: (status, response headers in lower case, body).
fn fetch(server: &K3rsServer, path: &str, headers: &[&str]) -> Result<(u16, String, Vec<u8>)> {
    let body = server.root.join("body");
    // curl writes no file for an empty body: a 304 must not read the last one.
    let _ = std::fs::remove_file(&body);
    let mut command = Command::new("curl");
    command
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--dump-header",
            "-",
        ])
        .arg("--cacert")
        .arg(server.ca_cert())
        .arg("--cert")
        .arg(server.admin_cert())
        .arg("--key")
        .arg(server.admin_key())
        .arg("--output")
        .arg(&body);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.arg(format!("{}{path}", server.url())).output()?;
    if !output.status.success() {
        bail!("curl {path}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let head = String::from_utf8_lossy(&output.stdout).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status")?;
    Ok((status, head, read(&body)?))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    Ok(std::fs::read(path).unwrap_or_default())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

#[test]
fn documents_are_negotiated_as_kube_apiserver_negotiates_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    let protobuf = "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

    let (status, json_head, json) = fetch(&server, "/openapi/v2", &["Accept: application/json"])?;
    assert_eq!(status, 200);
    assert_eq!(header(&json_head, "content-type"), Some("application/json"));
    let document: serde_json::Value = serde_json::from_slice(&json)?;
    assert_eq!(document["swagger"], "2.0");

    let (status, head, body) = fetch(&server, "/openapi/v2", &[protobuf])?;
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    );
    // Field 1 (`swagger`, a string) first: `0a 03 "2.0"`.
    assert!(
        body.starts_with(b"\x0a\x032.0\x12"),
        "{:?}",
        &body[..body.len().min(16)]
    );
    assert!(body.len() > 100_000 && body.len() < json.len());
    // One ETag for both forms (the JSON's hash), told apart by `Vary: Accept`.
    let etag = header(&head, "etag").context("no ETag")?.to_owned();
    assert_eq!(header(&json_head, "etag"), Some(etag.as_str()));
    assert_eq!(header(&head, "vary"), Some("accept"));
    let (status, _, body) = fetch(
        &server,
        "/openapi/v2",
        &[protobuf, &format!("If-None-Match: {}", etag.to_uppercase())],
    )?;
    assert_eq!((status, body.len()), (304, 0));
    // The newer media type name and wildcards.
    let (status, head, _) = fetch(
        &server,
        "/openapi/v2",
        &["Accept: application/com.github.proto-openapi.spec.v2.v1.0+protobuf"],
    )?;
    assert_eq!(status, 200);
    assert!(header(&head, "content-type").is_some_and(|t| t.ends_with("+protobuf")));
    let (status, head, _) = fetch(&server, "/openapi/v2", &["Accept: */*"])?;
    assert_eq!(
        (status, header(&head, "content-type")),
        (200, Some("application/json"))
    );
    let (status, _, body) = fetch(&server, "/openapi/v2", &["Accept: application/yaml"])?;
    assert_eq!(status, 406);
    let status_body: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(status_body["reason"], "NotAcceptable");

    // v3: JSON only; a stale hash is sent to the current one, the current one is immutable.
    let (_, _, index) = fetch(&server, "/openapi/v3", &[])?;
    let index: serde_json::Value = serde_json::from_slice(&index)?;
    let url = index["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .context("no api/v1")?
        .to_owned();
    let (status, head, _) = fetch(&server, &url, &["Accept: application/json"])?;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "cache-control"), Some("public, immutable"));
    let (status, head, _) = fetch(&server, "/openapi/v3/api/v1?hash=0BSOLETE", &[])?;
    assert_eq!(status, 301);
    assert_eq!(header(&head, "location"), Some(url.to_lowercase().as_str()));
    let (status, _, _) = fetch(
        &server,
        "/openapi/v3/api/v1",
        &["Accept: application/com.github.proto-openapi.spec.v3@v1.0+protobuf"],
    )?;
    assert_eq!(status, 406, "no JSON under a protobuf request");
    Ok(())
}
