//! DaemonSets with hollow nodes, the scheduler and real kubectl: one pod per eligible node
//! (a tainted node only once the template tolerates it), a rolling update `kubectl rollout
//! status` follows to the end, and a new node gets its daemon; with `maxSurge` every node keeps
//! an available daemon through the update; OnDelete changes a daemon only when it is deleted;
//! `kubectl rollout history` shows the change-cause each revision was made with; a daemon still
//! terminating within its grace period holds up nothing but its own node.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k3rs_hollow::annotations::READY_AFTER_SECONDS;
use k3rs_hollow::{HollowCluster, HollowNode, HollowNodeConfig};
use kube_support::{
    client, create_namespace, hollow_cluster, kubectl, kubectl_stdin, wait_for, watch_available,
};

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
        placement(&server, "ds") == ["ds-node-0=agent:1", "ds-node-1=agent:1"]
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
        placement(&server, "ds")
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
        placement(&server, "ds").contains(&"ds-late=agent:2".to_owned())
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

/// A DaemonSet in namespace `surge` with the given update strategy; its daemons become ready a
/// second after they start.
fn updated_daemonset(image: &str, strategy: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: surge}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  updateStrategy: {strategy}
  template:
    metadata:
      labels: {{app: agent}}
      annotations: {{"{READY_AFTER_SECONDS}": "1"}}
    spec:
      containers: [{{name: c, image: "{image}"}}]
"#
    )
}

/// `node=image` of every daemon in `namespace` that is not terminating, sorted.
fn placement(server: &k3rs_tests::K3rsServer, namespace: &str) -> Vec<String> {
    let out = kubectl(
        server,
        &["get", "pods", "-n", namespace, "-o", "jsonpath={range .items[*]}{.spec.nodeName}={.spec.containers[0].image}={.metadata.deletionTimestamp} {end}"],
    );
    // Terminating pods end in a timestamp.
    let mut placed: Vec<String> = out
        .split_whitespace()
        .filter_map(|entry| entry.strip_suffix('='))
        .map(str::to_owned)
        .collect();
    placed.sort();
    placed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_surge_keeps_every_node_served_and_on_delete_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, _cluster) = hollow_cluster(&dir, "surge", 2).await;
    let surge = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";
    kubectl_stdin(
        &server,
        &["apply", "-f", "-"],
        &updated_daemonset("agent:1", surge),
    );
    let status = [
        "rollout",
        "status",
        "daemonset/agent",
        "-n",
        "surge",
        "--timeout=90s",
    ];
    assert!(kubectl(&server, &status).contains("successfully rolled out"));

    // The update surges: a new daemon starts beside the old one, which goes once it is ready.
    let stop = Arc::new(AtomicBool::new(false));
    let (lowest, watching) = watch_available(&client, "surge", stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    kubectl_stdin(
        &server,
        &["apply", "-f", "-"],
        &updated_daemonset("agent:2", surge),
    );
    assert!(kubectl(&server, &status).contains("successfully rolled out"));
    wait_for(&server, "the updated daemons alone", || {
        placement(&server, "surge") == ["surge-node-0=agent:2", "surge-node-1=agent:2"]
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    watching.await.unwrap();
    assert_eq!(
        lowest.load(Ordering::SeqCst),
        2,
        "both nodes kept an available daemon"
    );

    // OnDelete: a new template changes nothing until a daemon is deleted.
    let on_delete = "{type: OnDelete}";
    kubectl_stdin(
        &server,
        &["apply", "-f", "-"],
        &updated_daemonset("agent:3", on_delete),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        placement(&server, "surge"),
        ["surge-node-0=agent:2", "surge-node-1=agent:2"]
    );
    let on_node_0 = kubectl(
        &server,
        &[
            "get",
            "pods",
            "-n",
            "surge",
            "--field-selector",
            "spec.nodeName=surge-node-0",
            "-o",
            "name",
        ],
    );
    kubectl(&server, &["delete", "-n", "surge", on_node_0.trim()]);
    wait_for(
        &server,
        "the deleted daemon replaced from the new template",
        || placement(&server, "surge") == ["surge-node-0=agent:3", "surge-node-1=agent:2"],
    )
    .await;
}

/// Upstream's `updatePod`: a daemon the controller deletes counts as deleted as soon as it
/// has a `deletionTimestamp`, so while it terminates (its containers honour a 120 s grace
/// period) the DaemonSet still serves a node that joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_gets_its_daemon_while_another_daemon_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let server = k3rs_tests::K3rsServer::start(dir.path()).unwrap();
    let client = client(&server).await;
    create_namespace(&client, "grace").await;
    // Containers that take up to five minutes to stop: the grace period decides.
    let mut template = HollowNodeConfig::default().with_heartbeat(Duration::from_secs(1));
    template.termination_delay = Duration::from_secs(300);
    template.labels.insert("daemon".into(), "yes".into());
    let _cluster = HollowCluster::start(client.clone(), 2, "grace-node", &template)
        .await
        .unwrap();
    kubectl_stdin(
        &server,
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: grace}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {daemon: "yes"}
      terminationGracePeriodSeconds: 120
      containers: [{name: c, image: "agent:1"}]
"#,
    );
    wait_for(&server, "a daemon on each labelled node", || {
        placement(&server, "grace") == ["grace-node-0=agent:1", "grace-node-1=agent:1"]
    })
    .await;
    // Started by their kubelets: a daemon whose containers never ran would go at once.
    wait_for(&server, "both daemons running", || {
        kubectl(
            &server,
            &[
                "get",
                "pods",
                "-n",
                "grace",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        ) == "Running Running"
    })
    .await;

    // The node stops qualifying: the controller deletes its daemon, which terminates slowly.
    kubectl(&server, &["label", "node", "grace-node-0", "daemon-"]);
    let terminating_on_node_0 = || {
        kubectl(
            &server,
            &[
                "get",
                "pods",
                "-n",
                "grace",
                "--field-selector",
                "spec.nodeName=grace-node-0",
                "-o",
                "jsonpath={.items[*].metadata.deletionTimestamp}",
            ],
        )
    };
    wait_for(&server, "the daemon on grace-node-0 terminating", || {
        !terminating_on_node_0().trim().is_empty()
    })
    .await;
    assert_eq!(placement(&server, "grace"), ["grace-node-1=agent:1"]);

    // A node joins while that daemon terminates: it gets its daemon well within the grace
    // period.
    let mut late = template.clone();
    late.name = "grace-late".into();
    let _late = HollowNode::start(client.clone(), late).await.unwrap();
    wait_for(&server, "a daemon on the new node", || {
        placement(&server, "grace") == ["grace-late=agent:1", "grace-node-1=agent:1"]
    })
    .await;
    assert!(
        !terminating_on_node_0().trim().is_empty(),
        "the old daemon is still terminating"
    );
}

#[test]
fn rollout_history_shows_each_revisions_change_cause() {
    let dir = tempfile::tempdir().unwrap();
    let server = k3rs_tests::K3rsServer::start(dir.path()).unwrap();
    // Revisions need no nodes: the controller records the template whatever it places.
    kube_support::assert_rollout_history_keeps_change_causes(
        &server,
        "ds-history",
        "daemonset/agent",
        |namespace| {
            format!(
                r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: {namespace}
  annotations: {{kubernetes.io/change-cause: created with image v1}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers: [{{name: c, image: v1}}]
"#
            )
        },
    );
}
