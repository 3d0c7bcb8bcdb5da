//! StatefulSets with hollow nodes and real kubectl: pods `<set>-<ordinal>` created one after the
//! other (each once the previous is ready), claims from `volumeClaimTemplates` that outlive
//! the pods, a rolling update that `kubectl rollout status` follows to the end, and scale-down
//! from the highest ordinal; with `podManagementPolicy: Parallel` all pods start at once;
//! `kubectl rollout history` shows the change-cause each revision was made with.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::time::Duration;

use k3rs_hollow::annotations::READY_AFTER_SECONDS;
use k3rs_hollow::{HollowCluster, HollowNodeConfig};
use k3rs_tests::K3rsServer;
use kube_support::{client, create_namespace, kubectl, kubectl_stdin, wait_for};
use serde_json::Value;

fn set(image: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: sts}}
spec:
  serviceName: db
  replicas: {replicas}
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata:
      labels: {{app: db}}
      annotations: {{"{READY_AFTER_SECONDS}": "1"}}
    spec:
      nodeName: sts-node-0
      containers: [{{name: c, image: "{image}"}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

/// A server with namespace `sts` and one hollow node, `sts-node-0`.
async fn cluster(dir: &tempfile::TempDir) -> (K3rsServer, HollowCluster) {
    let server = K3rsServer::start(dir.path()).unwrap();
    let client = client(&server).await;
    create_namespace(&client, "sts").await;
    let nodes = HollowCluster::start(
        client,
        1,
        "sts-node",
        &HollowNodeConfig::default().with_heartbeat(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    (server, nodes)
}

fn pods(server: &K3rsServer) -> Value {
    serde_json::from_str(&kubectl(
        server,
        &["get", "pods", "-n", "sts", "-o", "json"],
    ))
    .unwrap()
}

fn ready_time(pod: &Value) -> String {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_pods_claims_rolling_update_and_scale_down() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _nodes) = cluster(&dir).await;
    kubectl_stdin(&server, &["apply", "-f", "-"], &set("nginx:1.25", 3));
    kubectl(
        &server,
        &[
            "rollout",
            "status",
            "statefulset/db",
            "-n",
            "sts",
            "--timeout=60s",
        ],
    );

    // Ordered: each pod was created only after the one before it was ready.
    let all = pods(&server);
    let items = all["items"].as_array().unwrap();
    let by_name = |name: &str| {
        items
            .iter()
            .find(|p| p["metadata"]["name"] == name)
            .unwrap()
    };
    for (before, after) in [("db-0", "db-1"), ("db-1", "db-2")] {
        let ready = ready_time(by_name(before));
        let created = by_name(after)["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            ready <= created,
            "{after} created at {created}, before {before} was ready at {ready}"
        );
    }
    assert_eq!(by_name("db-1")["spec"]["hostname"], "db-1");
    assert_eq!(by_name("db-1")["spec"]["subdomain"], "db");
    let claims = kubectl(
        &server,
        &[
            "get",
            "pvc",
            "-n",
            "sts",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    assert_eq!(claims, "data-db-0 data-db-1 data-db-2");

    // Rolling update, highest ordinal first, followed by rollout status.
    kubectl(
        &server,
        &[
            "set",
            "image",
            "statefulset/db",
            "c=nginx:1.26",
            "-n",
            "sts",
        ],
    );
    let out = kubectl(
        &server,
        &[
            "rollout",
            "status",
            "statefulset/db",
            "-n",
            "sts",
            "--timeout=90s",
        ],
    );
    // (The API defaults `partition: 0`, so kubectl reports a partitioned roll out, as it does
    // against kube-apiserver.)
    assert!(
        out.contains("roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    let images = kubectl(
        &server,
        &[
            "get",
            "pods",
            "-n",
            "sts",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
    );
    assert_eq!(images, "nginx:1.26 nginx:1.26 nginx:1.26");
    let history = kubectl(
        &server,
        &["rollout", "history", "statefulset/db", "-n", "sts"],
    );
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Scale down: the highest ordinals go; their claims stay.
    kubectl(
        &server,
        &["scale", "statefulset/db", "--replicas=1", "-n", "sts"],
    );
    wait_for(&server, "one pod left", || {
        kubectl(
            &server,
            &[
                "get",
                "pods",
                "-n",
                "sts",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ],
        ) == "db-0"
    })
    .await;
    let claims = kubectl(
        &server,
        &[
            "get",
            "pvc",
            "-n",
            "sts",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    assert_eq!(claims, "data-db-0 data-db-1 data-db-2");
}

/// `podManagementPolicy: Parallel`: every pod is created at once, none waiting for the one
/// before to be ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_pods_start_together() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _nodes) = cluster(&dir).await;
    let manifest = set("nginx:1.25", 3)
        .replace(
            "  serviceName: db\n",
            "  serviceName: db\n  podManagementPolicy: Parallel\n",
        )
        .replace(
            &format!("\"{READY_AFTER_SECONDS}\": \"1\""),
            &format!("\"{READY_AFTER_SECONDS}\": \"6\""),
        );
    kubectl_stdin(&server, &["apply", "-f", "-"], &manifest);
    let mut seen = Value::Null;
    wait_for(&server, "three pods", || {
        seen = pods(&server);
        seen["items"]
            .as_array()
            .is_some_and(|items| items.len() == 3)
    })
    .await;
    let ready: Vec<&Value> = seen["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pod| {
            pod["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .collect();
    assert!(ready.is_empty(), "created one by one: {ready:?}");
    let out = kubectl(
        &server,
        &[
            "rollout",
            "status",
            "statefulset/db",
            "-n",
            "sts",
            "--timeout=60s",
        ],
    );
    assert!(out.contains("roll out complete: 3 new pods"), "{out}");
}

#[test]
fn rollout_history_shows_each_revisions_change_cause() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    // Revisions need no nodes: the controller records the template before making pods.
    kube_support::assert_rollout_history_keeps_change_causes(
        &server,
        "sts-history",
        "statefulset/db",
        |namespace| {
            format!(
                r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: {namespace}
  annotations: {{kubernetes.io/change-cause: created with image v1}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: c, image: v1}}]
"#
            )
        },
    );
}
