//! Node lifecycle and IPAM with hollow nodes and real kubectl: each node gets its own /24 of
//! the cluster CIDR; pods get the default 300 s tolerations of unreachable and not-ready nodes;
//! a node that stops heartbeating turns `Unknown` (kubectl: NotReady), is tainted
//! `unreachable` (NoSchedule and NoExecute), and its pods are evicted once their toleration
//! runs out — pods that tolerate it for ever stay; a Deployment's evicted replica is replaced on
//! the healthy node; when the node heartbeats again the taints go. Pods of a deleted node are
//! collected (after upstream's 40 s quarantine) and replaced on a node that exists.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::time::Duration;

use k3rs_hollow::{HollowCluster, HollowNode, HollowNodeConfig};
use k3rs_tests::K3rsServer;
use kube_support::{client, create_namespace, kubectl, kubectl_stdin, wait_for};

/// Two replicas, one per node (the scheduler spreads a ReplicaSet's pods), that tolerate an
/// unreachable node for 2 s.
const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}]
      containers: [{name: c, image: nginx}]
"#;

/// The nodes of the Deployment's Running pods in `namespace`, sorted.
fn web_nodes(server: &K3rsServer, namespace: &str) -> Vec<String> {
    let nodes = kubectl(
        server,
        &[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            "app=web",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
    );
    let mut nodes: Vec<String> = nodes.split_whitespace().map(str::to_owned).collect();
    nodes.sort();
    nodes
}

fn pod(name: &str, node: &str, toleration: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: nodes, labels: {{bare: "yes"}}}}
spec:
  nodeName: {node}
  tolerations: [{toleration}]
  containers: [{{name: c, image: nginx}}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_nodes_are_tainted_and_their_pods_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start_with(
        dir.path(),
        &[
            "--kube-controller-manager-arg=node-monitor-period=1s",
            "--kube-controller-manager-arg=node-monitor-grace-period=4s",
        ],
    )
    .unwrap();
    let client = client(&server).await;
    create_namespace(&client, "nodes").await;
    let cluster = HollowCluster::start(
        client.clone(),
        2,
        "n",
        &HollowNodeConfig::default().with_heartbeat(Duration::from_secs(1)),
    )
    .await
    .unwrap();

    // IPAM: one /24 each, from 10.42.0.0/16.
    wait_for(&server, "pod CIDRs", || {
        let cidrs = kubectl(
            &server,
            &["get", "nodes", "-o", "jsonpath={.items[*].spec.podCIDR}"],
        );
        let mut cidrs: Vec<&str> = cidrs.split_whitespace().collect();
        cidrs.sort();
        cidrs == ["10.42.0.0/24", "10.42.1.0/24"]
    })
    .await;

    // The Deployment first, on empty nodes: its replicas spread one per node.
    kubectl_stdin(&server, &["apply", "-n", "nodes", "-f", "-"], DEPLOYMENT);
    wait_for(&server, "a web replica on each node", || {
        web_nodes(&server, "nodes") == ["n-0", "n-1"]
    })
    .await;
    kubectl_stdin(
        &server,
        &["apply", "-f", "-"],
        &[
            pod("brief", "n-0", r#"{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}"#),
            pod("steadfast", "n-0", r#"{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}"#),
            pod("elsewhere", "n-1", r#"{key: example.com/other, operator: Exists}"#),
        ]
        .join("---"),
    );
    // Default tolerations (DefaultTolerationSeconds admission) for what a pod does not tolerate.
    let tolerations = kubectl(
        &server,
        &[
            "get",
            "pod",
            "elsewhere",
            "-n",
            "nodes",
            "-o",
            "jsonpath={range .spec.tolerations[*]}{.key}={.tolerationSeconds};{end}",
        ],
    );
    assert_eq!(
        tolerations,
        "example.com/other=;node.kubernetes.io/not-ready=300;node.kubernetes.io/unreachable=300;"
    );
    wait_for(&server, "the pods running", || {
        kubectl(
            &server,
            &[
                "get",
                "pods",
                "-n",
                "nodes",
                "-l",
                "bare",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        ) == "Running Running Running"
    })
    .await;

    cluster.nodes()[0].pause_heartbeats();
    wait_for(&server, "n-0 NotReady", || {
        kubectl(&server, &["get", "node", "n-0", "--no-headers"]).contains("NotReady")
    })
    .await;
    wait_for(&server, "the unreachable taints", || {
        kubectl(
            &server,
            &[
                "get",
                "node",
                "n-0",
                "-o",
                "jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}",
            ],
        )
        .trim()
            == "node.kubernetes.io/unreachable:NoSchedule node.kubernetes.io/unreachable:NoExecute"
    })
    .await;
    let ready = kubectl(
        &server,
        &[
            "get",
            "node",
            "n-0",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}",
        ],
    );
    assert_eq!(ready, "NodeStatusUnknown");
    wait_for(&server, "the brief pod evicted", || {
        kubectl(
            &server,
            &["get", "pods", "-n", "nodes", "-l", "bare", "-o", "name"],
        )
        .lines()
        .count()
            == 2
    })
    .await;
    let left = kubectl(
        &server,
        &[
            "get",
            "pods",
            "-n",
            "nodes",
            "-l",
            "bare",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    assert_eq!(left, "elsewhere steadfast");
    let events = kubectl(
        &server,
        &[
            "get",
            "events",
            "-n",
            "nodes",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    );
    assert!(events.contains("TaintManagerEviction"), "{events}");
    let healthy = kubectl(
        &server,
        &["get", "node", "n-1", "-o", "jsonpath={.spec.taints}"],
    );
    assert_eq!(healthy, "", "the other node stays untainted");
    // The web replica on n-0 was evicted too; its replacement runs on the healthy node.
    wait_for(&server, "both web replicas on n-1", || {
        web_nodes(&server, "nodes") == ["n-1", "n-1"]
    })
    .await;

    cluster.nodes()[0].resume_heartbeats();
    wait_for(&server, "n-0 Ready and untainted", || {
        kubectl(
            &server,
            &["get", "node", "n-0", "-o", "jsonpath={.spec.taints}"],
        )
        .is_empty()
            && !kubectl(&server, &["get", "node", "n-0", "--no-headers"]).contains("NotReady")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_deleted_node_are_replaced_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let client = client(&server).await;
    create_namespace(&client, "podgc").await;
    let config = |name: &str| HollowNodeConfig::new(name).with_heartbeat(Duration::from_secs(1));
    let doomed = HollowNode::start(client.clone(), config("gc-0"))
        .await
        .unwrap();
    let _kept = HollowNode::start(client.clone(), config("gc-1"))
        .await
        .unwrap();
    kubectl_stdin(&server, &["apply", "-n", "podgc", "-f", "-"], DEPLOYMENT);
    wait_for(&server, "a web replica on each node", || {
        web_nodes(&server, "podgc") == ["gc-0", "gc-1"]
    })
    .await;
    // The node's machine goes away for good, and its Node object with it.
    doomed.stop().await;
    kubectl(&server, &["delete", "node", "gc-0"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while web_nodes(&server, "podgc") != ["gc-1", "gc-1"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the pod of gc-0 was not replaced: {:?}",
            kubectl(&server, &["get", "pods", "-n", "podgc", "-o", "wide"])
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
