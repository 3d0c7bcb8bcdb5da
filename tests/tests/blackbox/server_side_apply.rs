//! Server-side apply as real kubectl releases drive it: `apply --server-side` creates and
//! updates, managed fields, conflicts with another manager (`kubectl scale`) and
//! `--force-conflicts`, removal of fields the applier stopped applying, `diff --server-side`,
//! the switch from client-side apply, custom resources, and the errors of bad apply requests.

use std::process::Command;

use anyhow::{Context, Result};
use k3rs_tests::{kubectls, with_each_kubectl, K3rsServer, Kubectl};
use serde_json::Value;

fn deployment(replicas: u32, image: &str, sidecar: bool) -> String {
    let sidecar = if sidecar {
        "\n      - name: sidecar\n        image: busybox:1.36"
    } else {
        ""
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: nginx
        image: {image}
        ports: [{{containerPort: 80}}]{sidecar}
"#
    )
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.ssa.k3rs.io}
spec:
  group: ssa.k3rs.io
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
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
              size: {type: integer}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
"#;

struct Ctx<'a> {
    server: &'a K3rsServer,
    kubectl: &'a Kubectl,
    ns: String,
}

impl Ctx<'_> {
    fn args<'b>(&'b self, args: &[&'b str]) -> Vec<&'b str> {
        let mut out = vec!["-n", self.ns.as_str()];
        out.extend_from_slice(args);
        out
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        self.kubectl.ok(self.server, &self.args(args))
    }

    /// Runs kubectl with `manifest` on stdin: (success, stdout, stderr).
    fn with_input(&self, args: &[&str], manifest: &str) -> Result<(bool, String, String)> {
        self.kubectl
            .run_with_input(self.server, &self.args(args), manifest)
    }

    fn apply(&self, manifest: &str, extra: &[&str]) -> Result<String> {
        let mut args = vec!["apply", "--server-side", "-f", "-"];
        args.extend_from_slice(extra);
        let (ok, out, err) = self.with_input(&args, manifest)?;
        anyhow::ensure!(ok, "apply --server-side failed: {err}");
        Ok(out)
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
        Ok(serde_json::from_str(&self.ok(&all)?)?)
    }

    /// The object's managers other than the controllers, as `manager/operation[/subresource]`
    /// (the deployment controller writes a Deployment's status and revision annotation
    /// whenever it gets to it, as upstream's does).
    fn managers(&self, args: &[&str]) -> Result<Vec<String>> {
        let object = self.json(args)?;
        Ok(object["metadata"]["managedFields"]
            .as_array()
            .context("no managedFields")?
            .iter()
            .filter(|e| e["manager"] != "kube-controller-manager")
            .map(|e| {
                format!(
                    "{}/{}{}",
                    e["manager"].as_str().unwrap_or(""),
                    e["operation"].as_str().unwrap_or(""),
                    e["subresource"]
                        .as_str()
                        .map(|s| format!("/{s}"))
                        .unwrap_or_default()
                )
            })
            .collect())
    }
}

fn scenario(server: &K3rsServer, kubectl: &Kubectl) -> Result<()> {
    let ns = kubectl.named("ssa");
    kubectl.ok(server, &["create", "namespace", &ns])?;
    let cx = Ctx {
        server,
        kubectl,
        ns,
    };

    // Create by apply: the applier owns exactly its fields.
    let out = cx.apply(&deployment(2, "nginx:1.25", true), &[])?;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    assert_eq!(cx.managers(&["get", "deploy", "web"])?, ["kubectl/Apply"]);
    let object = cx.json(&["get", "deploy", "web"])?;
    let fields = &object["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(fields["f:spec"]["f:replicas"], serde_json::json!({}));
    assert!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
            .get(r#"k:{"name":"nginx"}"#)
            .is_some(),
        "containers are keyed by name: {fields}"
    );
    assert!(
        fields["f:spec"].get("f:progressDeadlineSeconds").is_none(),
        "defaulted fields belong to nobody: {fields}"
    );
    assert_eq!(
        object["spec"]["progressDeadlineSeconds"], 600,
        "defaults apply"
    );

    // Another manager changes replicas: re-applying the old value conflicts.
    cx.ok(&["scale", "deploy", "web", "--replicas=3"])?;
    let scaler = kubectl
        .bin
        .file_name()
        .and_then(|n| n.to_str())
        .context("kubectl's file name")?
        .to_owned();
    let managers = cx.managers(&["get", "deploy", "web"])?;
    assert!(
        managers.contains(&format!("{scaler}/Update/scale")),
        "{managers:?}"
    );
    let (ok, _, err) = cx.with_input(
        &["apply", "--server-side", "-f", "-"],
        &deployment(2, "nginx:1.25", true),
    )?;
    assert!(!ok, "a conflicting apply succeeded");
    let expected = format!(
        "Apply failed with 1 conflict: conflict with \"{scaler}\" with subresource \"scale\" \
         using apps/v1: .spec.replicas"
    );
    assert!(err.contains(&expected), "{err}");
    assert_eq!(
        cx.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])?,
        "3",
        "a refused apply writes nothing"
    );

    // Forced: the applier takes replicas back; the scaler's entry is gone.
    cx.apply(&deployment(2, "nginx:1.25", true), &["--force-conflicts"])?;
    assert_eq!(
        cx.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])?,
        "2"
    );
    assert_eq!(cx.managers(&["get", "deploy", "web"])?, ["kubectl/Apply"]);

    // Dropping the sidecar from the configuration removes it; diff shows it first.
    let smaller = deployment(2, "nginx:1.26", false);
    let (same, out, err) = cx.with_input(&["diff", "--server-side", "-f", "-"], &smaller)?;
    assert!(!same, "diff found no change: {err}");
    assert!(
        out.contains("-        name: sidecar") || out.contains("-      - image: busybox"),
        "{out}"
    );
    cx.apply(&smaller, &[])?;
    let names = cx.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ])?;
    assert_eq!(names, "nginx");
    let (same, _, err) = cx.with_input(&["diff", "--server-side", "-f", "-"], &smaller)?;
    assert!(same, "diff after apply is not empty: {err}");

    // Unknown fields: kubectl's strict validation names them; nothing is written.
    let bad = smaller.replace("replicas: 2", "replicas: 2\n  bogus: true");
    let (ok, _, err) = cx.with_input(&["apply", "--server-side", "-f", "-"], &bad)?;
    assert!(!ok && err.contains("bogus"), "{err}");

    // From client-side apply to server-side apply: kubectl takes over without conflicts.
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1'}\n";
    let (ok, _, err) = cx.with_input(&["apply", "-f", "-"], config)?;
    assert!(ok, "{err}");
    cx.apply(&config.replace("'1'", "'2'"), &[])?;
    assert_eq!(
        cx.ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.a}"])?,
        "2"
    );
    let managers = cx.managers(&["get", "configmap", "settings"])?;
    assert!(
        managers.contains(&"kubectl/Apply".to_owned()),
        "{managers:?}"
    );

    // Custom resources merge by their schema's list keys.
    cx.apply(
        "apiVersion: ssa.k3rs.io/v1\nkind: Gadget\nmetadata: {name: g}\n\
         spec: {size: 1, ports: [{name: http, port: 80}]}\n",
        &["--field-manager=alice"],
    )?;
    cx.apply(
        "apiVersion: ssa.k3rs.io/v1\nkind: Gadget\nmetadata: {name: g}\n\
         spec: {ports: [{name: metrics, port: 9090}]}\n",
        &["--field-manager=bob"],
    )?;
    let gadget = cx.json(&["get", "gadget", "g"])?;
    let ports: Vec<&str> = gadget["spec"]["ports"]
        .as_array()
        .context("ports")?
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(ports, ["http", "metrics"], "{gadget}");
    let (ok, _, err) = cx.with_input(
        &["apply", "--server-side", "--field-manager=bob", "-f", "-"],
        "apiVersion: ssa.k3rs.io/v1\nkind: Gadget\nmetadata: {name: g}\nspec: {size: 5}\n",
    )?;
    assert!(
        !ok && err.contains("conflict with \"alice\": .spec.size"),
        "{err}"
    );
    Ok(())
}

/// `curl` as the admin: (status, body).
fn curl(
    server: &K3rsServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, Value)> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20", "-X", method])
        .arg("--cacert")
        .arg(server.ca_cert())
        .arg("--cert")
        .arg(server.admin_cert())
        .arg("--key")
        .arg(server.admin_key())
        .args(["-w", "\n%{http_code}", "-H"])
        .arg(format!("Content-Type: {content_type}"))
        .arg("--data-binary")
        .arg(body)
        .arg(format!("{}{path}", server.url()))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let (body, code) = text.rsplit_once('\n').context("no status line")?;
    Ok((
        code.trim().parse()?,
        serde_json::from_str(body).unwrap_or(Value::Null),
    ))
}

#[test]
fn kubectl_server_side_apply() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    let newest = kubectls().pop().context("a kubectl")?;
    let (ok, _, err) = newest.run_with_input(&server, &["apply", "-f", "-"], CRD)?;
    assert!(ok, "{err}");
    newest.ok(
        &server,
        &[
            "wait",
            "--for=condition=Established",
            "crd/gadgets.ssa.k3rs.io",
            "--timeout=30s",
        ],
    )?;
    with_each_kubectl(&server, scenario);
    Ok(())
}

#[test]
fn bad_apply_requests_get_clear_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    let path = "/api/v1/namespaces/default/configmaps/c";
    let config =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}}"#;
    // An apply request with these query parameters.
    let apply = |query: &str, body: &str| {
        curl(
            &server,
            "PATCH",
            &format!("{path}{query}"),
            "application/apply-patch+yaml",
            body,
        )
    };
    let message = |status: &Value| status["message"].as_str().unwrap_or("").to_owned();

    let (code, status) = apply("", config)?;
    assert_eq!(code, 400, "{status}");
    assert!(message(&status).contains("fieldManager"), "{status}");

    let (code, status) = apply("?fieldManager=t", "a: [")?;
    assert_eq!(code, 400, "{status}");
    assert!(message(&status).contains("YAML"), "{status}");

    let (code, status) = apply(
        "?fieldManager=t",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","managedFields":[]}}"#,
    )?;
    assert_eq!(code, 400, "{status}");
    assert!(
        message(&status).contains("managedFields must be nil"),
        "{status}"
    );

    let (code, status) = apply(
        "?fieldManager=t",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}"#,
    )?;
    assert_eq!(code, 400, "{status}");

    // Nothing was created by the failures; a good apply creates (201), re-applying is 200.
    let (code, _) = apply("?fieldManager=t", config)?;
    assert_eq!(code, 201);
    let (code, object) = apply("?fieldManager=t", config)?;
    assert_eq!(code, 200);
    assert_eq!(object["metadata"]["managedFields"][0]["manager"], "t");

    // A conflict is a 409 with one FieldManagerConflict cause per field.
    let changed = config.replace(r#""v""#, r#""w""#);
    let (code, status) = apply("?fieldManager=u", &changed)?;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["details"]["causes"],
        serde_json::json!([{"reason": "FieldManagerConflict", "message": "conflict with \"t\"",
            "field": ".data.k"}])
    );
    let (code, _) = apply("?fieldManager=u&force=true", &changed)?;
    assert_eq!(code, 200);

    // Appliers racing to create one object all succeed: one creates it, the others apply to it.
    let racing =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raced"},"data":{"k":"v"}}"#;
    let raced = "/api/v1/namespaces/default/configmaps/raced";
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    let query = format!("{raced}?fieldManager=racer{i}");
                    curl(
                        server,
                        "PATCH",
                        &query,
                        "application/apply-patch+yaml",
                        racing,
                    )
                    .map(|(code, _)| code)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer thread").expect("curl"))
            .collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 200), "{codes:?}");
    Ok(())
}
