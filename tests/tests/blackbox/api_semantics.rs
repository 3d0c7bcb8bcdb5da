//! Request semantics of kube-apiserver that kubectl users meet, with real kubectl (1.33 and
//! 1.37): Secret `stringData` merged into `data` on every write path, `kubectl replace` of an
//! exported object (`resourceVersion: "0"`), DefaultTolerationSeconds on updates, and decoding
//! errors in upstream's words, of bodies and of patches.

use anyhow::{ensure, Context as _, Result};
use k3rs_tests::{with_each_kubectl, K3rsServer, Kubectl};
use serde_json::{json, Value};

fn get(kubectl: &Kubectl, server: &K3rsServer, args: &[&str]) -> Result<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&kubectl.ok(server, &all)?).context("kubectl get -o json")
}

fn feed(
    kubectl: &Kubectl,
    server: &K3rsServer,
    args: &[&str],
    input: &str,
) -> Result<(bool, String)> {
    let (ok, out, err) = kubectl.run_with_input(server, args, input)?;
    Ok((ok, format!("{out}{err}")))
}

#[test]
fn secret_string_data_is_merged_into_data_on_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    with_each_kubectl(&server, |server, kubectl| {
        let name = kubectl.named("s");
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"k1": "djE=", "k2": ""},
            "stringData": {"k2": "v2"},
        });
        let (ok, out) = feed(kubectl, server, &["create", "-f", "-"], &secret.to_string())?;
        ensure!(ok, "{out}");
        let stored = get(kubectl, server, &["secret", &name])?;
        ensure!(
            stored["data"] == json!({"k1": "djE=", "k2": "djI="}),
            "{stored}"
        );
        ensure!(stored.get("stringData").is_none(), "{stored}");

        // Update (replace): stringData overwrites the key it shares with data.
        let mut replaced = stored.clone();
        replaced["stringData"] = json!({"k1": "one", "k4": "four"});
        let (ok, out) = feed(
            kubectl,
            server,
            &["replace", "-f", "-"],
            &replaced.to_string(),
        )?;
        ensure!(ok, "{out}");
        let stored = get(kubectl, server, &["secret", &name])?;
        ensure!(
            stored["data"] == json!({"k1": "b25l", "k2": "djI=", "k4": "Zm91cg=="}),
            "{stored}"
        );
        ensure!(stored.get("stringData").is_none(), "{stored}");

        // Patch, strategic and merge.
        for (kind, patch) in [
            ("strategic", r#"{"stringData":{"k5":"five"}}"#),
            ("merge", r#"{"stringData":{"k6":"six"}}"#),
        ] {
            kubectl.ok(
                server,
                &["patch", "secret", &name, "--type", kind, "-p", patch],
            )?;
        }
        let stored = get(kubectl, server, &["secret", &name])?;
        ensure!(
            stored["data"]["k5"] == "Zml2ZQ==" && stored["data"]["k6"] == "c2l4",
            "{stored}"
        );
        ensure!(stored.get("stringData").is_none(), "{stored}");

        // Server-side apply, creating and updating.
        let applied = format!("applied-{name}");
        for value in ["first", "second"] {
            let config = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": applied, "namespace": "default"},
                "stringData": {"k": value},
            });
            let (ok, out) = feed(
                kubectl,
                server,
                &["apply", "--server-side", "-f", "-"],
                &config.to_string(),
            )?;
            ensure!(ok, "{out}");
            let stored = get(kubectl, server, &["secret", &applied])?;
            let encoded = if value == "first" {
                "Zmlyc3Q="
            } else {
                "c2Vjb25k"
            };
            ensure!(stored["data"] == json!({"k": encoded}), "{stored}");
            ensure!(stored.get("stringData").is_none(), "{stored}");
        }
        Ok(())
    });
}

#[test]
fn replace_of_an_exported_object_with_resource_version_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    with_each_kubectl(&server, |server, kubectl| {
        let name = kubectl.named("cm");
        kubectl.ok(
            server,
            &["create", "configmap", &name, "--from-literal=a=1"],
        )?;
        let mut exported = get(kubectl, server, &["configmap", &name])?;
        exported["metadata"]["resourceVersion"] = json!("0");
        exported["data"]["a"] = json!("2");
        let (ok, out) = feed(
            kubectl,
            server,
            &["replace", "-f", "-"],
            &exported.to_string(),
        )?;
        ensure!(ok, "replace with resourceVersion 0: {out}");
        let stored = get(kubectl, server, &["configmap", &name])?;
        ensure!(stored["data"]["a"] == "2", "{stored}");
        // Without one at all, the same.
        exported["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        exported["data"]["a"] = json!("3");
        let (ok, out) = feed(
            kubectl,
            server,
            &["replace", "-f", "-"],
            &exported.to_string(),
        )?;
        ensure!(ok, "replace without resourceVersion: {out}");
        // A stale one is still a conflict.
        let mut stale = stored.clone();
        stale["data"]["a"] = json!("4");
        let (ok, out) = feed(kubectl, server, &["replace", "-f", "-"], &stale.to_string())?;
        ensure!(!ok && out.contains("the object has been modified"), "{out}");

        // Leases must name the version they replace (their strategy disallows unconditional
        // updates): upstream's 422, and the lease is unchanged.
        let lease = kubectl.named("lease");
        let manifest = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": lease, "namespace": "default"},
            "spec": {"holderIdentity": "a"},
        });
        let (ok, out) = feed(
            kubectl,
            server,
            &["create", "-f", "-"],
            &manifest.to_string(),
        )?;
        ensure!(ok, "{out}");
        let mut exported = get(kubectl, server, &["lease", &lease])?;
        exported["metadata"]["resourceVersion"] = json!("0");
        exported["spec"]["holderIdentity"] = json!("b");
        let (ok, out) = feed(
            kubectl,
            server,
            &["replace", "-f", "-"],
            &exported.to_string(),
        )?;
        // kubectl words a 422 from its details (`kind: leases`), as it does upstream's.
        let wanted = format!("The leases \"{lease}\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update");
        ensure!(!ok && out.contains(&wanted), "{out}\nwanted: {wanted}");
        let stored = get(kubectl, server, &["lease", &lease])?;
        ensure!(stored["spec"]["holderIdentity"] == "a", "{stored}");
        Ok(())
    });
}

#[test]
fn default_tolerations_come_back_on_update() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    server.wait_for_default_service_account("default").unwrap();
    with_each_kubectl(&server, |server, kubectl| {
        let name = kubectl.named("p");
        kubectl.ok(
            server,
            &["run", &name, "--image=busybox", "--restart=Never"],
        )?;
        let pod = get(kubectl, server, &["pod", &name])?;
        let tolerations = pod["spec"]["tolerations"].clone();
        ensure!(
            tolerations
                == json!([
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                ]),
            "{tolerations}"
        );
        // Without a resourceVersion (unconditional): the scheduler writes the pod's status
        // meanwhile, as it finds no node.
        let mut sent = pod.clone();
        sent["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        sent["spec"].as_object_mut().unwrap().remove("tolerations");
        sent["metadata"]["labels"]["changed"] = json!("yes");
        let (ok, out) = feed(kubectl, server, &["replace", "-f", "-"], &sent.to_string())?;
        ensure!(ok, "replace without the default tolerations: {out}");
        let stored = get(kubectl, server, &["pod", &name])?;
        ensure!(stored["spec"]["tolerations"] == tolerations, "{stored}");
        ensure!(stored["metadata"]["labels"]["changed"] == "yes", "{stored}");
        // A patch that sets the list without them gets them back too.
        kubectl.ok(
            server,
            &[
                "patch",
                "pod",
                &name,
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/spec/tolerations"}]"#,
            ],
        )?;
        let stored = get(kubectl, server, &["pod", &name])?;
        ensure!(stored["spec"]["tolerations"] == tolerations, "{stored}");
        Ok(())
    });
}

#[test]
fn wrong_types_in_a_body_are_reported_in_upstreams_words() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    with_each_kubectl(&server, |server, kubectl| {
        let name = kubectl.named("bad");
        let cases = [
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": "invalid"}),
                "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                    "spec": {"replicas": "two", "selector": {"matchLabels": {"a": "b"}}}}),
                "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
            ),
            (
                // (A wrong `metadata` never leaves kubectl: it decodes that part itself, in the
                // same words.)
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": ["a"]}),
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal array into Go struct field ConfigMap.data of type map[string]string",
            ),
        ];
        for (body, wanted) in cases {
            for validate in ["--validate=strict", "--validate=false"] {
                let (ok, out) = feed(
                    kubectl,
                    server,
                    &["create", validate, "-f", "-"],
                    &body.to_string(),
                )?;
                ensure!(!ok, "created: {out}");
                let line = format!(
                    "Error from server (BadRequest): error when creating \"STDIN\": {wanted}"
                );
                ensure!(out.contains(&line), "{out}\nwanted: {line}");
            }
            let kind = body["kind"].as_str().unwrap_or_default().to_lowercase();
            let (found, _, _) = kubectl.run(server, &["get", &kind, &name])?;
            ensure!(!found, "a {kind} was created");
        }
        Ok(())
    });
}

#[test]
fn patches_that_do_not_decode_are_reported_in_upstreams_words_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    with_each_kubectl(&server, |server, kubectl| {
        let suffix = kubectl.version.replace('.', "-");
        let (deploy, cm) = (format!("d-{suffix}"), format!("c-{suffix}"));
        kubectl.ok(server, &["create", "deployment", &deploy, "--image=nginx"])?;
        kubectl.ok(server, &["create", "configmap", &cm, "--from-literal=a=1"])?;
        let version = |kind: &str, name: &str| -> Result<String> {
            kubectl.ok(
                server,
                &[
                    "get",
                    kind,
                    name,
                    "-o",
                    "jsonpath={.metadata.resourceVersion}",
                ],
            )
        };
        // The deployment controller's writes (ReplicaSet created, revision, status) end with
        // the status counting the new ReplicaSet's pod; only then is the Deployment left alone.
        let settled = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while kubectl.ok(
            server,
            &[
                "get",
                "deployment",
                &deploy,
                "-o",
                "jsonpath={.status.updatedReplicas}",
            ],
        )? != "1"
        {
            ensure!(
                std::time::Instant::now() < settled,
                "the deployment controller never reported the new ReplicaSet"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let (deploy_version, cm_version) =
            (version("deployment", &deploy)?, version("configmap", &cm)?);
        // kubectl words a 422 without kind or name as "The request is invalid".
        let invalid = |value: &str, detail: &str| {
            format!("The request is invalid: patch: Invalid value: {value}: {detail}\n")
        };

        // Strategic merge patch: the unstructured converter's words, the patch as Go prints
        // the decoded map.
        for (patch, printed, detail) in [
            (
                r#"{"spec":{"template":"invalid"}}"#,
                "map[spec:map[template:invalid]]",
                "cannot restore struct from: string",
            ),
            (
                r#"{"spec":{"replicas":"x"}}"#,
                "map[spec:map[replicas:x]]",
                "unrecognized type: int32",
            ),
            (
                r#"{"spec":{"template":{"spec":{"containers":{"name":"c"}}}}}"#,
                "map[spec:map[template:map[spec:map[containers:map[name:c]]]]]",
                "cannot restore slice from map",
            ),
            (
                r#"{"metadata":{"labels":"a"}}"#,
                "map[metadata:map[labels:a]]",
                "cannot restore map from string",
            ),
        ] {
            let err = kubectl.fails(server, &["patch", "deployment", &deploy, "-p", patch])?;
            let wanted = invalid(&format!("{printed:?}"), detail);
            ensure!(err == wanted, "{patch}: {err}\nwanted: {wanted}");
        }

        // Merge and JSON patch: the patched object's text as upstream's patch library writes
        // it — the top level opened and sorted, the rest (metadata) as the server encoded it.
        let (code, raw) = server.request(
            "GET",
            &format!("/api/v1/namespaces/default/configmaps/{cm}"),
            "",
        )?;
        ensure!(code == 200, "{code} {raw}");
        let metadata = raw
            .split_once("\"metadata\":")
            .and_then(|(_, rest)| rest.split_once(",\"data\":"))
            .map(|(metadata, _)| metadata)
            .context("metadata in the ConfigMap")?;
        let patched =
            format!(r#"{{"apiVersion":"v1","data":"x","kind":"ConfigMap","metadata":{metadata}}}"#);
        let wanted = invalid(
            &serde_json::to_string(&patched)?,
            "json: cannot unmarshal string into Go struct field ConfigMap.data of type map[string]string",
        );
        for (kind, patch) in [
            ("merge", r#"{"data":"x"}"#),
            ("json", r#"[{"op":"replace","path":"/data","value":"x"}]"#),
        ] {
            let err = kubectl.fails(
                server,
                &["patch", "configmap", &cm, "--type", kind, "-p", patch],
            )?;
            ensure!(err == wanted, "{kind}: {err}\nwanted: {wanted}");
        }
        // The same on a Deployment, where the field is nested.
        let err = kubectl.fails(
            server,
            &[
                "patch",
                "deployment",
                &deploy,
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/selector","value":"x"}]"#,
            ],
        )?;
        let tail = ": json: cannot unmarshal string into Go struct field DeploymentSpec.spec.selector of type v1.LabelSelector\n";
        ensure!(
            err.starts_with(r#"The request is invalid: patch: Invalid value: "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","#)
                && err.contains(r#"\"selector\":\"x\""#)
                && err.ends_with(tail),
            "{err}"
        );

        // Bodies that are not what the patch type takes (kubectl sends `notjson` as a JSON
        // string): upstream's 400s.
        for (kind, detail) in [
            (
                "strategic",
                "json: cannot unmarshal string into Go value of type map[string]interface {}",
            ),
            ("merge", "Invalid JSON Patch"),
            (
                "json",
                "json: cannot unmarshal string into Go value of type jsonpatch.Patch",
            ),
        ] {
            let err = kubectl.fails(
                server,
                &["patch", "configmap", &cm, "--type", kind, "-p", "notjson"],
            )?;
            let wanted = format!("Error from server (BadRequest): {detail}\n");
            ensure!(err == wanted, "{kind}: {err}\nwanted: {wanted}");
        }

        // Nothing was written.
        ensure!(
            version("deployment", &deploy)? == deploy_version,
            "the deployment changed"
        );
        ensure!(
            version("configmap", &cm)? == cm_version,
            "the configmap changed"
        );
        Ok(())
    });

    // The Status itself: 422 Invalid, one cause on `patch`, no kind or name; and text that is
    // not JSON at all in Go's words.
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, _) = server
        .request(
            "POST",
            path,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw"}}"#,
        )
        .unwrap();
    assert_eq!(code, 201);
    let patch = |content_type: &str, body: &str| -> (u16, Value) {
        let output = std::process::Command::new("curl")
            .args([
                "--silent",
                "-X",
                "PATCH",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(server.ca_cert())
            .arg("--cert")
            .arg(server.admin_cert())
            .arg("--key")
            .arg(server.admin_key())
            .args([
                "-H",
                &format!("Content-Type: {content_type}"),
                "--data-binary",
                body,
            ])
            .arg(format!("{}{path}/raw", server.url()))
            .output()
            .unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), serde_json::from_str(body).unwrap())
    };
    let (code, status) = patch("application/strategic-merge-patch+json", r#"{"data":"x"}"#);
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": " \"\" is invalid: patch: Invalid value: \"map[data:x]\": cannot restore map from string",
            "reason": "Invalid",
            "details": {"causes": [{
                "reason": "FieldValueInvalid",
                "message": "Invalid value: \"map[data:x]\": cannot restore map from string",
                "field": "patch",
            }]},
            "code": 422,
        })
    );
    for (content_type, body, message) in [
        (
            "application/strategic-merge-patch+json",
            "{\"data\":",
            "unexpected end of JSON input",
        ),
        (
            "application/json-patch+json",
            "xyz",
            "invalid character 'x' looking for beginning of value",
        ),
        (
            "application/json-patch+json",
            "[] x",
            "invalid character 'x' after top-level value",
        ),
        ("application/merge-patch+json", "{", "Invalid JSON Patch"),
        (
            "application/json-patch+json",
            "[1]",
            "json: cannot unmarshal number into Go value of type jsonpatch.Operation",
        ),
    ] {
        let (code, status) = patch(content_type, body);
        assert_eq!(
            (code, status["reason"].as_str()),
            (400, Some("BadRequest")),
            "{body}: {status}"
        );
        assert_eq!(status["message"], message, "{body}");
    }
}

#[test]
fn bodies_that_are_not_objects_are_unrecognized_in_upstreams_words() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    // kubectl's own test (`run_kubectl_create_error_tests`): a YAML Pod posted raw, as JSON, to
    // the namespaces collection.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: raw\nspec:\n  containers: []\n";
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, pod).unwrap();
    let hex: String = pod.as_bytes()[..30]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let wanted = format!(
        "the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; json parse error: invalid character 'a' looking for beginning of value ({hex} ...)"
    );
    with_each_kubectl(&server, |server, kubectl| {
        let file = file.display().to_string();
        let error = kubectl.fails(
            server,
            &["create", "--raw", "/api/v1/namespaces", "-f", &file],
        )?;
        ensure!(error.contains(&wanted), "{error}\nwanted: {wanted}");
        Ok(())
    });
    let (code, body) = server
        .request("POST", "/api/v1/namespaces/default/configmaps", "[1]")
        .unwrap();
    assert_eq!(code, 400, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["message"],
        "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" } (5b315d)"
    );
    assert_eq!(status["reason"], "BadRequest");
}
