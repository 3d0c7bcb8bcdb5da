//! CustomResourceDefinitions end to end with real kubectl 1.33: a CRD is created, served
//! (discovery, short name, printer columns, status subresource, schema validation and
//! pruning), and deleted with its objects.
//!
//! kubectl validates as it does by default (against `/openapi/v3`, which includes the served
//! CRDs, and with `fieldValidation=Strict`), except for the one create that shows pruning.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k3rs_tests::K3rsServer;

/// kubectl 1.33 from the Google Cloud SDK, or `$KUBECTL`.
fn kubectl_133() -> PathBuf {
    if let Some(kubectl) = std::env::var_os("KUBECTL") {
        return PathBuf::from(kubectl);
    }
    PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
}

struct Cluster {
    server: K3rsServer,
    dir: PathBuf,
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kubectl_133())
            .arg("--kubeconfig")
            .arg(&self.server.kubeconfig)
            .arg("--request-timeout=20s")
            // Discovery is cached per host and port; keep the cache inside the test directory.
            .arg(format!(
                "--cache-dir={}",
                self.dir.join("kube-cache").display()
            ))
            .args(args)
            .output()
            .expect("running kubectl")
    }

    /// Runs kubectl and returns its stdout, failing the test with its stderr.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure and returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("writing a manifest");
        path.display().to_string()
    }

    /// Polls `check` on kubectl's output until it holds or 20 s pass.
    fn eventually(&self, args: &[&str], check: impl Fn(&Output) -> bool) -> Output {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.kubectl(args);
            if check(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {args:?} never got there:\nstdout: {}\nstderr: {}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.server.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
              image:
                type: string
                default: busybox
              replicas:
                type: integer
                minimum: 1
                maximum: 10
          status:
            type: object
            properties:
              replicas:
                type: integer
"#;

#[test]
fn crd_serves_its_custom_resources_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let cluster = Cluster {
        server,
        dir: dir.path().to_path_buf(),
    };

    let crd = cluster.file("crd.yaml", CRD);
    let out = cluster.ok(&["create", "-f", &crd]);
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"
        ),
        "{out}"
    );

    // The CRD becomes established and its resource shows up in discovery, with its short name.
    cluster.eventually(
        &["api-resources", "--api-group=stable.example.com"],
        |out| String::from_utf8_lossy(&out.stdout).contains("crontabs"),
    );
    let resources = cluster.ok(&["api-resources", "--api-group=stable.example.com"]);
    let line = resources
        .lines()
        .find(|l| l.starts_with("crontabs"))
        .unwrap_or_else(|| panic!("{resources}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns,
        ["crontabs", "ct", "stable.example.com/v1", "true", "CronTab"],
        "{resources}"
    );
    let status = cluster.ok(&[
        "get",
        "crd",
        "crontabs.stable.example.com",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Established\")].status} {.status.acceptedNames.kind} {.status.storedVersions}",
    ]);
    assert_eq!(status, "True CronTab [\"v1\"]");

    // The OpenAPI documents describe it.
    let explain = cluster.ok(&["explain", "crontab.spec.replicas"]);
    assert!(explain.contains("FIELD: replicas <integer>"), "{explain}");

    // A custom object: created (pruned, defaulted), listed, shown with the printer columns.
    let object = cluster.file(
        "crontab.yaml",
        r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: my-cron
spec:
  cronSpec: "* * * * */5"
  replicas: 3
  unknownField: dropped
status:
  replicas: 9
"#,
    );
    // Unknown fields are pruned when the client does not ask for strict validation.
    cluster.ok(&["create", "--validate=false", "-f", &object]);
    let stored: serde_json::Value =
        serde_json::from_str(&cluster.ok(&["get", "crontab", "my-cron", "-o", "json"])).unwrap();
    assert_eq!(
        stored["spec"],
        serde_json::json!({"cronSpec": "* * * * */5", "image": "busybox", "replicas": 3}),
        "pruned and defaulted: {stored}"
    );
    assert_eq!(stored["metadata"]["generation"], 1, "{stored}");
    assert!(
        stored.get("status").is_none(),
        "status is reset on create: {stored}"
    );

    let table = cluster.ok(&["get", "ct"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["my-cron", "*", "*", "*", "*", "*/5", "3"],
        "{table}"
    );
    let list = cluster.ok(&["get", "crontabs", "-o", "name"]);
    assert_eq!(list.trim(), "crontab.stable.example.com/my-cron");

    // Status through its subresource only; spec changes bump the generation.
    cluster.ok(&[
        "patch",
        "ct",
        "my-cron",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2}}"#,
    ]);
    cluster.ok(&[
        "patch",
        "ct",
        "my-cron",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":4},"status":{"replicas":7}}"#,
    ]);
    let fields = cluster.ok(&[
        "get",
        "ct",
        "my-cron",
        "-o",
        "jsonpath={.status.replicas} {.spec.replicas} {.metadata.generation}",
    ]);
    assert_eq!(fields, "2 4 2");
    cluster.ok(&["scale", "crontab/my-cron", "--replicas=5"]);
    let replicas = cluster.ok(&["get", "ct", "my-cron", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "5");

    // Schema violations are 422s naming the field.
    let invalid = cluster.file(
        "invalid.yaml",
        r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: bad-cron
spec:
  cronSpec: "* * * * *"
  replicas: "three"
"#,
    );
    let err = cluster.fails(&["create", "-f", &invalid]);
    // kubectl prints a 422's causes after `The <kind> "<name>" is invalid: `.
    assert!(
        err.contains(r#"The CronTab "bad-cron" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
        "{err}"
    );
    let err = cluster.fails(&[
        "patch",
        "ct",
        "my-cron",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":11}}"#,
    ]);
    assert!(
        err.contains("spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
        "{err}"
    );

    // Under fieldValidation=Strict, unknown fields are refused instead of pruned.
    let strict = cluster.file(
        "strict.json",
        r#"{"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "strict-cron"},
            "spec": {"cronSpec": "* * * * *", "unknownField": 1}}"#,
    );
    let err = cluster.fails(&[
        "create",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs?fieldValidation=Strict",
        "-f",
        &strict,
    ]);
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.unknownField""#),
        "{err}"
    );

    // After a restart the CRD is served again from the store.
    let mut cluster = cluster;
    cluster.server.restart().unwrap();
    cluster.eventually(&["get", "ct", "my-cron", "-o", "name"], |out| {
        String::from_utf8_lossy(&out.stdout).trim() == "crontab.stable.example.com/my-cron"
    });

    // Deleting the CRD deletes its objects and stops serving them.
    cluster.ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=30s",
    ]);
    cluster.eventually(
        &["api-resources", "--api-group=stable.example.com"],
        |out| !String::from_utf8_lossy(&out.stdout).contains("crontabs"),
    );
    let err = cluster.fails(&["get", "crontabs.stable.example.com"]);
    assert!(
        err.contains("the server doesn't have a resource type")
            || err.contains("the server could not find the requested resource"),
        "{err}"
    );
    let crds = cluster.ok(&["get", "crd", "-o", "name"]);
    assert_eq!(crds.trim(), "");

    // Created again, the CRD serves an empty collection: its old objects are gone.
    cluster.ok(&["create", "-f", &crd]);
    cluster.eventually(&["get", "crontabs", "-o", "name"], |out| {
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
}
