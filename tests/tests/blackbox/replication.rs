//! ReplicationControllers with hollow nodes and every kubectl release: an RC creates its pods
//! (controlled by it), reports `replicas`, `fullyLabeledReplicas`, `readyReplicas`,
//! `availableReplicas` and `observedGeneration`, and `kubectl scale` takes it down again.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::time::Duration;

use k3rs_hollow::annotations::READY_AFTER_SECONDS;
use k3rs_tests::{eventually, kubectls, K3rsServer, Kubectl};
use kube_support::{apply_in_own_namespace, hollow_cluster};
use serde_json::Value;

fn controller(namespace: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: v1
kind: ReplicationController
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: {replicas}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{"{READY_AFTER_SECONDS}": "1"}}
    spec:
      containers: [{{name: c, image: "nginx:1.25"}}]
"#
    )
}

fn get_json(kubectl: &Kubectl, server: &K3rsServer, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    serde_json::from_str(&kubectl.ok(server, &args).unwrap()).unwrap()
}

/// The RC's status counts (replicas, fullyLabeled, ready, available, observedGeneration).
fn counts(status: &Value) -> [i64; 5] {
    [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ]
    .map(|field| status[field].as_i64().unwrap_or(0))
}

/// Pods of the RC that are not terminating: (name, controller kind).
fn live_pods(kubectl: &Kubectl, server: &K3rsServer, namespace: &str) -> Vec<(String, String)> {
    let list = get_json(
        kubectl,
        server,
        &["get", "pods", "-n", namespace, "-l", "app=web"],
    );
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .map(|pod| {
            (
                pod["metadata"]["name"].as_str().unwrap().to_owned(),
                pod["metadata"]["ownerReferences"][0]["kind"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controller_creates_pods_reports_status_and_scales_down() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _client, _nodes) = hollow_cluster(&dir, "rc", 2).await;
    tokio::task::block_in_place(|| {
        for kubectl in kubectls() {
            let namespace =
                apply_in_own_namespace(&server, &kubectl, "rc", |ns| controller(ns, 3)).unwrap();
            let status = || {
                get_json(&kubectl, &server, &["get", "rc", "web", "-n", &namespace])["status"]
                    .clone()
            };
            let settled = eventually(Duration::from_secs(40), || {
                (counts(&status()) == [3, 3, 3, 3, 1]).then_some(())
            });
            assert!(
                settled.is_some(),
                "kubectl {}: RC status {} (pods {:?})\n{}",
                kubectl.version,
                status(),
                live_pods(&kubectl, &server, &namespace),
                server.log_text()
            );
            let pods = live_pods(&kubectl, &server, &namespace);
            assert_eq!(pods.len(), 3, "{pods:?}");
            assert!(
                pods.iter()
                    .all(|(name, kind)| name.starts_with("web-") && kind == "ReplicationController"),
                "{pods:?}"
            );
            // kubectl's table reads the same status: DESIRED CURRENT READY.
            let table = kubectl
                .ok(&server, &["get", "rc", "web", "-n", &namespace])
                .unwrap();
            let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
            assert_eq!(&row[..4], ["web", "3", "3", "3"], "{table}");
            let described = kubectl
                .ok(&server, &["describe", "rc", "web", "-n", &namespace])
                .unwrap();
            assert!(described.contains("SuccessfulCreate"), "{described}");

            kubectl
                .ok(
                    &server,
                    &["scale", "rc", "web", "--replicas=1", "-n", &namespace],
                )
                .unwrap();
            let scaled = eventually(Duration::from_secs(40), || {
                (counts(&status()) == [1, 1, 1, 1, 2]
                    && live_pods(&kubectl, &server, &namespace).len() == 1)
                    .then_some(())
            });
            assert!(
                scaled.is_some(),
                "kubectl {}: after scaling to 1: {} {:?}",
                kubectl.version,
                status(),
                live_pods(&kubectl, &server, &namespace)
            );
        }
    });
}
