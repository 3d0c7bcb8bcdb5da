//! Deployments end to end with real kubectl, the controllers and hollow nodes: a rolling update
//! with `maxUnavailable: 0` never has fewer available replicas than wanted, `kubectl rollout
//! status` finishes when it is done, `kubectl rollout undo` brings the previous template back,
//! a rollout interrupted by `kill -9` of the server finishes correctly after a restart, and bad
//! workload input (selectors, immutable fields) is refused with field paths.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k3rs_hollow::annotations::{NEVER, READY_AFTER_SECONDS};
use k3rs_hollow::HollowCluster;
use k3rs_tests::K3rsServer;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use kube_support::{hollow_cluster, kubectl, kubectl_stdin, wait_for, watch_available};

async fn cluster(dir: &tempfile::TempDir, namespace: &str) -> (K3rsServer, Client, HollowCluster) {
    hollow_cluster(dir, namespace, 2).await
}

/// A Deployment of `replicas` pods whose containers become ready a second after they start,
/// placed by the scheduler.
pub(crate) fn deployment(
    namespace: &str,
    replicas: u32,
    surge: u32,
    unavailable: u32,
    image: &str,
) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: {replicas}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{"{READY_AFTER_SECONDS}": "1"}}
    spec:
      containers: [{{name: c, image: "{image}"}}]
"#
    )
}

/// Runs `kubectl rollout status deployment/<name>` (up to `timeout` seconds) and requires it to
/// report the rollout done.
fn assert_rolled_out(server: &K3rsServer, namespace: &str, name: &str, timeout: u32) {
    let out = kubectl(
        server,
        &[
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "-n",
            namespace,
            &format!("--timeout={timeout}s"),
        ],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
}

fn images(pods: &[Pod]) -> Vec<String> {
    let mut images: Vec<String> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        })
        .collect();
    images.sort();
    images
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_keeps_replicas_available_and_undo_restores_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, _nodes) = cluster(&dir, "roll").await;
    kubectl_stdin(
        &server,
        &["apply", "-f", "-"],
        &deployment("roll", 3, 1, 0, "nginx:1.25"),
    );
    assert_rolled_out(&server, "roll", "web", 60);

    let stop = Arc::new(AtomicBool::new(false));
    let (lowest, watching) = watch_available(&client, "roll", stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    kubectl(
        &server,
        &[
            "set",
            "image",
            "deployment/web",
            "c=nginx:1.26",
            "-n",
            "roll",
        ],
    );
    assert_rolled_out(&server, "roll", "web", 60);
    stop.store(true, Ordering::SeqCst);
    watching.await.unwrap();
    let lowest = lowest.load(Ordering::SeqCst);
    assert!(
        lowest >= 3,
        "available pods dropped to {lowest} during the rollout"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "roll");
    let running = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(images(&running), ["nginx:1.26"; 3]);
    let status = Api::<Deployment>::namespaced(client.clone(), "roll")
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.available_replicas
        ),
        (Some(3), Some(3), Some(3))
    );
    let describe = kubectl(&server, &["describe", "deployment", "web", "-n", "roll"]);
    assert!(describe.contains("NewReplicaSetAvailable"), "{describe}");
    assert!(
        describe.contains("Scaled down replica set web-"),
        "{describe}"
    );

    // Undo: the previous template comes back as a new revision.
    kubectl(
        &server,
        &["rollout", "undo", "deployment/web", "-n", "roll"],
    );
    assert_rolled_out(&server, "roll", "web", 60);
    let image = kubectl(
        &server,
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "roll",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image, "nginx:1.25");
    let history = kubectl(
        &server,
        &["rollout", "history", "deployment/web", "-n", "roll"],
    );
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    let running = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(images(&running), ["nginx:1.25"; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_interrupted_by_kill_9_completes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, client, _nodes) = cluster(&dir, "crash").await;
    kubectl_stdin(
        &server,
        &["apply", "-f", "-"],
        &deployment("crash", 4, 1, 1, "nginx:1.25"),
    );
    assert_rolled_out(&server, "crash", "web", 60);

    kubectl(
        &server,
        &[
            "set",
            "image",
            "deployment/web",
            "c=nginx:1.26",
            "-n",
            "crash",
        ],
    );
    // Kill the server once the new ReplicaSet has pods, in the middle of the rollout.
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "crash");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = sets.list(&ListParams::default()).await.unwrap();
        let started = list.items.iter().any(|rs| {
            rs.spec
                .template
                .as_ref()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .image
                .as_deref()
                == Some("nginx:1.26")
                && rs.status.as_ref().is_some_and(|s| s.replicas > 0)
        });
        if started {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rollout never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| server.restart_on_same_port()).unwrap();

    assert_rolled_out(&server, "crash", "web", 90);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "crash");
    let running = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(images(&running), ["nginx:1.26"; 4], "{running:#?}");
    let list = sets.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 2, "one ReplicaSet per template: {list:#?}");
    for rs in &list {
        let image = rs
            .spec
            .template
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap();
        let wanted = if image == "nginx:1.26" { 4 } else { 0 };
        assert_eq!(rs.spec.replicas, Some(wanted), "{image}");
    }
}

/// Bad workload input is refused by the API with 422 and field paths, and changes nothing: the
/// controllers go on with the good objects.
#[test]
fn bad_workload_input_is_refused_with_field_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let kubectl = k3rs_tests::kubectls().pop().unwrap();
    let apply = |yaml: &str| {
        kubectl
            .run_with_input(&server, &["apply", "-f", "-"], yaml)
            .unwrap()
    };
    let good = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: good}\nspec:\n  \
                selector: {matchLabels: {app: good}}\n  template: {metadata: {labels: {app: good}}, \
                spec: {containers: [{name: c, image: nginx}]}}\n";
    let (ok, _, err) = apply(good);
    assert!(ok, "{err}");

    let bad_operator = good.replace("name: good}", "name: bad-operator}").replace(
        "selector: {matchLabels: {app: good}}",
        "selector: {matchLabels: {app: good}, matchExpressions: [{key: tier, operator: Near}]}",
    );
    let (ok, _, err) = apply(&bad_operator);
    assert!(!ok);
    assert!(
        err.contains("spec.selector.matchExpressions[0].operator: Invalid value: \"Near\""),
        "{err}"
    );

    let moved = good.replace(
        "selector: {matchLabels: {app: good}}\n  template: {metadata: {labels: {app: good}}",
        "selector: {matchLabels: {app: moved}}\n  template: {metadata: {labels: {app: moved}}",
    );
    let (ok, _, err) = apply(&moved);
    assert!(!ok);
    assert!(err.contains("spec.selector: Invalid value"), "{err}");
    assert!(err.contains("field is immutable"), "{err}");

    let mismatch = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  \
                    serviceName: db\n  selector: {matchLabels: {app: db}}\n  template: {metadata: \
                    {labels: {app: other}}, spec: {containers: [{name: c, image: nginx}]}}\n";
    let (ok, _, err) = apply(mismatch);
    assert!(!ok);
    assert!(
        err.contains("spec.template.metadata.labels: Invalid value"),
        "{err}"
    );
    assert!(err.contains("does not match template"), "{err}");

    // Nothing of the refused objects exists; the good Deployment got its ReplicaSet.
    let names = |kind: &str| kubectl.ok(&server, &["get", kind, "-o", "name"]).unwrap();
    assert_eq!(names("deployments").trim(), "deployment.apps/good");
    assert!(names("statefulsets").trim().is_empty());
    let selector = kubectl
        .ok(
            &server,
            &[
                "get",
                "deployment",
                "good",
                "-o",
                "jsonpath={.spec.selector.matchLabels.app}",
            ],
        )
        .unwrap();
    assert_eq!(selector, "good");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !names("replicasets").contains("replicaset.apps/good-") {
        assert!(
            std::time::Instant::now() < deadline,
            "no ReplicaSet for the good Deployment\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Deployment commands of kubectl: scale, rollout pause/resume/restart/history, and
/// `rollout status` failing once progressDeadlineSeconds passes without progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_pause_resume_restart_and_the_progress_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _client, _nodes) = cluster(&dir, "cmds").await;
    let manifest = deployment("cmds", 2, 1, 0, "nginx:1").replace(
        "  revisionHistoryLimit: 5\n",
        "  revisionHistoryLimit: 5\n  minReadySeconds: 1\n  progressDeadlineSeconds: 600\n",
    );
    kubectl_stdin(&server, &["apply", "-f", "-"], &manifest);
    let deploy = ["-n", "cmds", "deployment/web"];
    let get = |server: &K3rsServer, path: &str| {
        kubectl(
            server,
            &[
                "get",
                "-n",
                "cmds",
                "deployment/web",
                "-o",
                &format!("jsonpath={path}"),
            ],
        )
    };
    let replica_sets = |server: &K3rsServer| {
        kubectl(server, &["get", "rs", "-n", "cmds", "-o", "name"])
            .lines()
            .count()
    };
    assert_rolled_out(&server, "cmds", "web", 90);

    kubectl(
        &server,
        &["scale", "--replicas=3", deploy[0], deploy[1], deploy[2]],
    );
    assert_rolled_out(&server, "cmds", "web", 90);
    assert_eq!(get(&server, "{.status.availableReplicas}"), "3");

    // Paused: a new template makes no ReplicaSet until resumed.
    kubectl(
        &server,
        &["rollout", "pause", deploy[0], deploy[1], deploy[2]],
    );
    kubectl(
        &server,
        &["set", "image", deploy[0], deploy[1], deploy[2], "c=nginx:2"],
    );
    wait_for(&server, "the Paused condition", || {
        get(
            &server,
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        ) == "DeploymentPaused"
    })
    .await;
    assert_eq!(replica_sets(&server), 1);
    kubectl(
        &server,
        &["rollout", "resume", deploy[0], deploy[1], deploy[2]],
    );
    assert_rolled_out(&server, "cmds", "web", 90);
    assert_eq!(replica_sets(&server), 2);

    // restart: a new template (restartedAt), so new pods.
    kubectl(
        &server,
        &["rollout", "restart", deploy[0], deploy[1], deploy[2]],
    );
    assert_rolled_out(&server, "cmds", "web", 90);
    assert!(!get(
        &server,
        "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}"
    )
    .is_empty());
    assert_eq!(replica_sets(&server), 3);
    let history = kubectl(
        &server,
        &["rollout", "history", deploy[0], deploy[1], deploy[2]],
    );
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2", "3"], "{history}");

    // Pods that never become ready: the rollout stalls, and once the deadline passes the
    // Progressing condition says so and `rollout status` fails.
    let never = format!(
        r#"{{"spec": {{"progressDeadlineSeconds": 3, "template": {{"metadata": {{"annotations": {{"{READY_AFTER_SECONDS}": "{NEVER}"}}}}}}}}}}"#
    );
    kubectl(
        &server,
        &["patch", deploy[0], deploy[1], deploy[2], "-p", &never],
    );
    let (ok, _, err) = kube_support::kubectl_with_input(
        &server,
        &[
            "rollout",
            "status",
            "-n",
            "cmds",
            "deployment/web",
            "--timeout=60s",
        ],
        "",
    );
    assert!(!ok);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    assert_eq!(
        get(
            &server,
            "{.status.conditions[?(@.type==\"Progressing\")].reason}"
        ),
        "ProgressDeadlineExceeded"
    );
    // Old pods stay available throughout (maxUnavailable 0).
    assert_eq!(get(&server, "{.status.availableReplicas}"), "3");
    let described = kubectl(&server, &["describe", deploy[0], deploy[1], deploy[2]]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
    assert!(
        described.contains("ProgressDeadlineExceeded"),
        "{described}"
    );
}

/// The reason of deployment `mixed/broken`'s ReplicaFailure condition, empty without one.
fn replica_failure(server: &K3rsServer) -> String {
    kubectl(
        server,
        &[
            "get",
            "-n",
            "mixed",
            "deployment/broken",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"ReplicaFailure\")].reason}",
        ],
    )
}

/// A Deployment whose pods the API refuses (their ServiceAccount does not exist) gets
/// `FailedCreate` events and the `ReplicaFailure` condition, retried with back-off, while a
/// good Deployment beside it rolls out; creating the account lets it recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_deployment_reports_its_failure_and_stalls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _client, _nodes) = cluster(&dir, "mixed").await;
    let broken = deployment("mixed", 1, 1, 0, "nginx:1")
        .replace("name: web,", "name: broken,")
        .replace("app: web", "app: broken")
        .replace(
            "    spec:\n",
            "    spec:\n      serviceAccountName: robot\n",
        );
    kubectl_stdin(&server, &["apply", "-f", "-"], &broken);
    kubectl_stdin(
        &server,
        &["apply", "-f", "-"],
        &deployment("mixed", 2, 1, 0, "nginx:1"),
    );
    assert_rolled_out(&server, "mixed", "web", 60);
    wait_for(&server, "the ReplicaFailure condition", || {
        replica_failure(&server) == "FailedCreate"
    })
    .await;
    let described = kubectl(
        &server,
        &["describe", "rs", "-n", "mixed", "-l", "app=broken"],
    );
    assert!(described.contains("FailedCreate"), "{described}");
    assert!(
        described.contains("error looking up service account mixed/robot"),
        "{described}"
    );

    // The account appears: the next retry succeeds and the condition goes.
    kubectl(
        &server,
        &["create", "serviceaccount", "robot", "-n", "mixed"],
    );
    assert_rolled_out(&server, "mixed", "broken", 90);
    wait_for(&server, "the ReplicaFailure condition gone", || {
        replica_failure(&server).is_empty()
    })
    .await;
}
