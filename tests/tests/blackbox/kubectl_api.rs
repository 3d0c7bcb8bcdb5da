//! The Kubernetes API as real kubectl releases use it: discovery, OpenAPI, create/get/list,
//! apply (client-side), patch of every type, label/annotate/scale/set image, selectors, Table
//! output, watch, dry-run, diff, edit, delete, and the errors kubectl prints.

use anyhow::Result;
use k3rs_tests::{with_each_kubectl, K3rsServer, Kubectl};

const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {tier: web}
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {tier: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80}]
"#;

fn scenario(server: &K3rsServer, kubectl: &Kubectl) -> Result<()> {
    let ns = kubectl.named("scenario");
    let n = ["-n", ns.as_str()];
    let with_ns = |args: &[&str]| -> Vec<String> {
        n.iter().chain(args.iter()).map(|s| s.to_string()).collect()
    };
    let run = |args: &[&str]| {
        kubectl.ok(
            server,
            &with_ns(args).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let fails = |args: &[&str]| {
        kubectl.fails(
            server,
            &with_ns(args).iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let apply = |manifest: &str| -> Result<String> {
        let (ok, out, err) =
            kubectl.run_with_input(server, &["-n", &ns, "apply", "-f", "-"], manifest)?;
        anyhow::ensure!(ok, "apply failed: {err}");
        Ok(out)
    };

    // Discovery and OpenAPI.
    let namespaces = kubectl.ok(server, &["get", "namespaces"])?;
    assert!(namespaces.starts_with("NAME"), "{namespaces}");
    for system in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(system), "{namespaces}");
    }
    let resources = kubectl.ok(server, &["api-resources"])?;
    let deploy_line = resources
        .lines()
        .find(|l| l.starts_with("deployments "))
        .unwrap_or_default();
    let words: Vec<&str> = deploy_line.split_whitespace().collect();
    assert_eq!(
        words,
        ["deployments", "deploy", "apps/v1", "true", "Deployment"],
        "{resources}"
    );
    let explained = kubectl.ok(server, &["explain", "pod.spec.containers"])?;
    assert!(
        explained.contains("containers <[]Container>"),
        "{explained}"
    );
    assert!(explained.contains("-required-"), "{explained}");

    let (ok, _, err) = kubectl.run_with_input(
        server,
        &["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
    )?;
    assert!(ok, "{err}");

    // Create, then re-apply with a change and a removed container.
    let out = apply(MANIFEST)?;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("service/web created"), "{out}");
    let table = run(&["get", "deployments", "-o", "wide"])?;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(table.contains("nginx,sidecar"), "{table}");
    let services = run(&["get", "svc", "web"])?;
    assert!(
        services.contains("NodePort") && services.contains("10.43."),
        "{services}"
    );
    assert!(
        services.contains("80:3"),
        "a NodePort was allocated: {services}"
    );

    let changed = MANIFEST
        .replace("nginx:1.25", "nginx:1.26")
        .replace("      - name: sidecar\n        image: busybox:1.36\n", "");
    let out = apply(&changed)?;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("configmap/settings unchanged"), "{out}");
    let images = run(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ])?;
    assert_eq!(
        images, "nginx:1.26",
        "client-side apply removed the sidecar by merge key"
    );
    let generation = run(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.generation}",
    ])?;
    assert_eq!(generation, "2");
    let diff = kubectl.run_with_input(server, &["-n", &ns, "diff", "-f", "-"], &changed)?;
    assert!(diff.0, "no difference after apply: {}{}", diff.1, diff.2);

    // Defaults users see.
    let policy = run(&["get", "deploy", "web", "-o", "jsonpath={.spec.strategy.type} {.spec.template.spec.containers[0].imagePullPolicy} {.spec.template.spec.restartPolicy}"])?;
    assert_eq!(policy, "RollingUpdate IfNotPresent Always");

    // label, annotate, scale, set image, and the three patch types.
    run(&["label", "configmap", "settings", "stage=test"])?;
    run(&["annotate", "configmap", "settings", "note=kept"])?;
    run(&["scale", "deployment", "web", "--replicas=3"])?;
    assert_eq!(
        run(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])?,
        "3"
    );
    run(&["set", "image", "deployment/web", "nginx=nginx:1.27"])?;
    run(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"extra":"1"}}"#,
    ])?;
    run(&[
        "patch",
        "configmap",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/greeting"}]"#,
    ])?;
    run(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"MODE","value":"x"}]}]}}}}"#,
    ])?;
    let data = run(&["get", "cm", "settings", "-o", "jsonpath={.data}"])?;
    assert_eq!(data, r#"{"extra":"1"}"#);
    let container = run(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].name}"])?;
    assert_eq!(
        container, "nginx:1.27 MODE",
        "strategic merge kept the image"
    );

    // A PUT that changes nothing writes nothing and answers with the stored resourceVersion
    // (an object made by `create`: `replace` rewrites apply's last-applied annotation).
    let made = kubectl.run_with_input(
        server,
        &["-n", &ns, "create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unchanged}\ndata: {a: b}\n",
    )?;
    assert!(made.0, "{}", made.2);
    let current: serde_json::Value =
        serde_json::from_str(&run(&["get", "cm", "unchanged", "-o", "json"])?)?;
    let revision = current["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut unversioned = current.clone();
    if let Some(meta) = unversioned["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    let replaced = kubectl.run_with_input(
        server,
        &[
            "-n",
            &ns,
            "replace",
            "-f",
            "-",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
        &unversioned.to_string(),
    )?;
    assert!(replaced.0, "{}", replaced.2);
    assert_eq!(
        replaced.1, revision,
        "an unchanged replace keeps the resourceVersion"
    );

    // Selectors.
    let selected = run(&["get", "cm", "-l", "stage=test", "-o", "name"])?;
    assert_eq!(selected.trim(), "configmap/settings");
    assert!(run(&["get", "cm", "-l", "stage in (prod)", "-o", "name"])?
        .trim()
        .is_empty());
    let by_field = run(&[
        "get",
        "deploy",
        "--field-selector",
        "metadata.name=web",
        "-o",
        "name",
    ])?;
    assert_eq!(by_field.trim(), "deployment.apps/web");
    let bad = fails(&["get", "pods", "--field-selector", "spec.nope=x"])?;
    assert!(
        bad.contains("field label not supported: spec.nope"),
        "{bad}"
    );
    let bad = fails(&["get", "pods", "-l", "a in (b"])?;
    assert!(bad.contains("unable to parse requirement"), "{bad}");

    // Errors kubectl prints.
    let dup = kubectl.run_with_input(server, &["-n", &ns, "create", "-f", "-"], MANIFEST)?;
    assert!(!dup.0);
    assert!(
        dup.2.contains("configmaps \"settings\" already exists"),
        "{}",
        dup.2
    );
    let missing = fails(&["get", "configmap", "nope"])?;
    assert!(
        missing.contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{missing}"
    );
    let invalid = kubectl.run_with_input(
        server,
        &["-n", &ns, "apply", "-f", "-"],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: one}}\n  template: {metadata: {labels: {app: two}}, spec: {containers: [{name: c, image: i}]}}\n",
    )?;
    assert!(!invalid.0);
    assert!(
        invalid
            .2
            .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{}",
        invalid.2
    );
    assert!(
        invalid.2.contains("does not match template"),
        "{}",
        invalid.2
    );
    let unknown = kubectl.run_with_input(
        server,
        &["-n", &ns, "apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nspec: {nonsense: 1}\n",
    )?;
    assert!(!unknown.0);
    assert!(
        unknown.2.contains("unknown field \"spec\""),
        "{}",
        unknown.2
    );

    // Server-side dry run writes nothing.
    let dry = kubectl.run_with_input(
        server,
        &["-n", &ns, "apply", "--dry-run=server", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry}\ndata: {a: b}\n",
    )?;
    assert!(dry.0, "{}", dry.2);
    assert!(fails(&["get", "cm", "dry"])?.contains("not found"));

    // edit with EDITOR set to a script.
    let script = server_dir_file(
        server,
        "editor.sh",
        "#!/bin/sh\nsed -i 's/extra: \"1\"/extra: \"2\"/' \"$1\"\n",
    )?;
    let mut edit = kubectl.command(server);
    edit.args(["-n", &ns, "edit", "configmap", "settings"])
        .env("EDITOR", &script);
    let edited = edit.output()?;
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    assert_eq!(
        run(&["get", "cm", "settings", "-o", "jsonpath={.data.extra}"])?,
        "2"
    );

    // Watch sees a change, with Table output.
    let watch = kubectl
        .command(server)
        .args([
            "-n",
            &ns,
            "get",
            "configmaps",
            "--watch",
            "--request-timeout=8s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    run(&["label", "configmap", "settings", "watched=yes"])?;
    let watched = watch.wait_with_output()?;
    let seen = String::from_utf8_lossy(&watched.stdout);
    assert!(
        seen.matches("settings").count() >= 2,
        "initial row and the change: {seen}"
    );

    // Typed `kubectl create <kind>` sends protobuf bodies.
    run(&["create", "configmap", "typed-cm", "--from-literal=a=b"])?;
    run(&[
        "create",
        "secret",
        "generic",
        "typed-secret",
        "--from-literal=x=y",
    ])?;
    run(&[
        "create",
        "deployment",
        "typed-deploy",
        "--image=nginx:1.25",
        "--replicas=2",
    ])?;
    run(&[
        "create",
        "service",
        "clusterip",
        "typed-svc",
        "--tcp=80:8080",
    ])?;
    run(&["create", "job", "typed-job", "--image=busybox:1.36"])?;
    run(&["create", "serviceaccount", "typed-sa"])?;
    let typed = run(&["get", "cm,secret,deploy,svc,job,sa", "-o", "name"])?;
    for name in [
        "configmap/typed-cm",
        "secret/typed-secret",
        "deployment.apps/typed-deploy",
        "service/typed-svc",
        "job.batch/typed-job",
        "serviceaccount/typed-sa",
    ] {
        assert!(typed.lines().any(|l| l == name), "{name} in {typed}");
    }
    assert_eq!(
        run(&["get", "secret", "typed-secret", "-o", "jsonpath={.data.x}"])?,
        "eQ==",
        "binary data survives protobuf"
    );

    // Delete.
    run(&["delete", "deployment", "web"])?;
    run(&["delete", "service", "web"])?;
    assert!(fails(&["get", "deploy", "web"])?.contains("not found"));
    Ok(())
}

fn server_dir_file(server: &K3rsServer, name: &str, text: &str) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = server.data_dir.with_file_name(name);
    std::fs::write(&path, text)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

#[test]
fn kubectl_releases_drive_the_api() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    with_each_kubectl(&server, scenario);
    Ok(())
}
