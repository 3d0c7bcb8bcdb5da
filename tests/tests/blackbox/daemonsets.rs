//! DaemonSets with hollow nodes, the scheduler and real kubectl: one pod per eligible node
//! (a tainted node only once the template tolerates it), a rolling update `kubectl rollout
//! status` follows to the end, and a new node gets its daemon.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::time::Duration;

use k3rs_hollow::{HollowNode, HollowNodeConfig};
use kube_support::{hollow_cluster, kubectl, kubectl_stdin, wait_for};

fn daemonset(image: &str, tolerate: bool) -> String {
    let tolerations = if tolerate {
        "tolerations: [{key: dedicated, operator: Exists}]"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: ds}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      {tolerations}
      containers: [{{name: c, image: "{image}"}}]
"#
    )
}

/// `node=image` of every running daemon pod, sorted.
fn placement(server: &k3rs_tests::K3rsServer) -> Vec<String> {
    let out = kubectl(
        server,
        &["get", "pods", "-n", "ds", "-o", "jsonpath={range .items[?(@.status.phase==\"Running\")]}{.spec.nodeName}={.spec.containers[0].image} {end}"],
    );
    let mut placed: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    placed.sort();
    placed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_per_eligible_node() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, _cluster) = hollow_cluster(&dir, "ds", 2).await;
    let mut tainted = HollowNodeConfig::new("ds-tainted").with_heartbeat(Duration::from_secs(1));
    tainted.taints = vec![serde_json::from_value(serde_json::json!(
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    ))
    .unwrap()];
    let _tainted = HollowNode::start(client.clone(), tainted).await.unwrap();

    kubectl_stdin(&server, &["apply", "-f", "-"], &daemonset("agent:1", false));
    wait_for(&server, "a daemon on each untainted node", || {
        placement(&server) == ["ds-node-0=agent:1", "ds-node-1=agent:1"]
    })
    .await;
    let out = kubectl(
        &server,
        &[
            "rollout",
            "status",
            "daemonset/agent",
            "-n",
            "ds",
            "--timeout=60s",
        ],
    );
    assert!(out.contains("successfully rolled out"), "{out}");

    // Tolerating the taint is a new template: rolled out node by node, and the tainted node
    // gets a daemon too.
    kubectl_stdin(&server, &["apply", "-f", "-"], &daemonset("agent:2", true));
    let out = kubectl(
        &server,
        &[
            "rollout",
            "status",
            "daemonset/agent",
            "-n",
            "ds",
            "--timeout=90s",
        ],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for(&server, "the updated daemons everywhere", || {
        placement(&server)
            == [
                "ds-node-0=agent:2",
                "ds-node-1=agent:2",
                "ds-tainted=agent:2",
            ]
    })
    .await;
    let history = kubectl(
        &server,
        &["rollout", "history", "daemonset/agent", "-n", "ds"],
    );
    assert!(history.contains('2'), "{history}");

    // A node that joins gets its daemon.
    let _late = HollowNode::start(
        client.clone(),
        HollowNodeConfig::new("ds-late").with_heartbeat(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    wait_for(&server, "a daemon on the new node", || {
        placement(&server).contains(&"ds-late=agent:2".to_owned())
    })
    .await;
    let desired = kubectl(
        &server,
        &[
            "get",
            "daemonset",
            "agent",
            "-n",
            "ds",
            "-o",
            "jsonpath={.status.desiredNumberScheduled}",
        ],
    );
    assert_eq!(desired, "4");
}
