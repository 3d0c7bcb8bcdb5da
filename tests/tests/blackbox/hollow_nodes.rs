//! Hollow nodes (`k3rs-hollow`) against the real binary, checked with the real kubectl: they
//! register Ready nodes, run pods bound to them (Running, Ready, one IP each), follow the
//! behaviour annotations, finish graceful deletions, stop heartbeating when paused, and carry
//! on through a server restart. Pods are bound by `spec.nodeName` at create: no scheduler.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use k3rs_hollow::annotations::{EXIT_AFTER_SECONDS, EXIT_CODE, READY_AFTER_SECONDS};
use k3rs_hollow::{HollowCluster, HollowNode, HollowNodeConfig, NODE_LEASE_NAMESPACE};
use k3rs_tests::{kubectls, K3rsServer, Kubectl};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::PostParams;
use kube::{Api, Client};
use kube_support::{client, create_namespace};
use serde_json::{json, Value};

const NAMESPACE: &str = "hollow";
/// How long anything a hollow node does may take to show.
const PATIENCE: Duration = Duration::from_secs(30);

/// A node template that heartbeats every second.
fn fast_heartbeats() -> HollowNodeConfig {
    HollowNodeConfig::default().with_heartbeat(Duration::from_secs(1))
}

/// A server in `dir` with the test namespace, a client for it, and `count` hollow nodes named
/// `<prefix>-<i>` that heartbeat every second.
async fn start(
    dir: &tempfile::TempDir,
    count: usize,
    prefix: &str,
) -> (K3rsServer, Client, HollowCluster) {
    let server = K3rsServer::start(dir.path()).expect("k3rs server starts");
    let client = client(&server).await;
    create_namespace(&client, NAMESPACE).await;
    let cluster = HollowCluster::start(client.clone(), count, prefix, &fast_heartbeats())
        .await
        .unwrap();
    (server, client, cluster)
}

/// The newest kubectl, run without blocking the runtime the hollow nodes live on.
fn kubectl(server: &K3rsServer, args: &[&str]) -> String {
    let newest = kubectls().pop().unwrap();
    run_kubectl(&newest, server, args)
}

fn run_kubectl(kubectl: &Kubectl, server: &K3rsServer, args: &[&str]) -> String {
    tokio::task::block_in_place(|| kubectl.ok(server, args))
        .unwrap_or_else(|err| panic!("{err:#}\nserver log:\n{}", server.log_text()))
}

/// Polls `check` every 200 ms until it gives a value; fails the test after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pod bound to `node` with one container (two when `sidecar_and_init`), annotated.
fn pod(name: &str, node: &str, restart_policy: &str, annotations: &[(&str, &str)]) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": annotations.iter().copied().collect::<BTreeMap<_, _>>(),
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": restart_policy,
            "containers": [{"name": "app", "image": "busybox:1.36"}],
        },
    }))
    .unwrap()
}

async fn create(client: &Client, pod: Pod) {
    Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

async fn get_pod(client: &Client, name: &str) -> Option<Value> {
    let pod = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .get_opt(name)
        .await
        .ok()??;
    Some(serde_json::to_value(pod).unwrap())
}

fn ready_status(pod: &Value) -> &str {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
}

/// Waits until the pod's phase is `phase` and returns it.
async fn wait_for_phase(client: &Client, name: &str, phase: &str) -> Value {
    eventually(&format!("pod {name} {phase}"), || async {
        get_pod(client, name)
            .await
            .filter(|pod| pod["status"]["phase"] == phase)
    })
    .await
}

async fn renew_time(client: &Client, node: &str) -> String {
    let lease = Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE)
        .get(node)
        .await
        .unwrap();
    serde_json::to_value(lease.spec.unwrap().renew_time.unwrap())
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until every node's Lease has been renewed after `since` (an RFC 3339 time with
/// microseconds, which compare as text).
async fn wait_for_renewals(client: &Client, nodes: &[String], since: &str) {
    for node in nodes {
        eventually(
            &format!("lease of {node} renewed after {since}"),
            || async { (renew_time(client, node).await.as_str() > since).then_some(()) },
        )
        .await;
    }
}

/// `kubectl get nodes` as (name, status) pairs.
fn node_statuses(kubectl: &Kubectl, server: &K3rsServer) -> BTreeMap<String, String> {
    run_kubectl(kubectl, server, &["get", "nodes", "--no-headers"])
        .lines()
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            Some((columns.next()?.to_owned(), columns.next()?.to_owned()))
        })
        .collect()
}

/// Registration, pods through their life, annotations, deletion and paused heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_register_heartbeat_and_run_pods() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, cluster) = start(&dir, 3, "hollow").await;
    let names = cluster.names();
    assert_eq!(names, ["hollow-0", "hollow-1", "hollow-2"]);

    // Three Ready nodes, for every kubectl.
    for kubectl in kubectls() {
        let statuses = node_statuses(&kubectl, &server);
        let expected: BTreeMap<String, String> = names
            .iter()
            .map(|n| (n.clone(), "Ready".to_owned()))
            .collect();
        assert_eq!(statuses, expected, "kubectl {}", kubectl.version);
    }
    let node: Node = Api::all(client.clone()).get("hollow-1").await.unwrap();
    let node = serde_json::to_value(node).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "hollow-1"
    );
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert_eq!(
        node["status"]["addresses"][0]["address"],
        cluster.nodes()[1].internal_ip().to_string()
    );

    // Plain pods run, are ready, and get distinct IPs; hostIP is their node's.
    let plain = [("web-a", 0), ("web-b", 0), ("web-c", 1), ("web-d", 2)];
    for (name, node) in plain {
        create(&client, pod(name, &names[node], "Always", &[])).await;
    }
    let mut ips = BTreeSet::new();
    for (name, node) in plain {
        let pod = wait_for_phase(&client, name, "Running").await;
        assert_eq!(ready_status(&pod), "True", "{pod:#}");
        assert_eq!(
            pod["status"]["hostIP"],
            cluster.nodes()[node].internal_ip().to_string()
        );
        assert_eq!(
            pod["status"]["containerStatuses"][0]["imageID"],
            "hollow://busybox:1.36"
        );
        assert!(ips.insert(pod["status"]["podIP"].as_str().unwrap().to_owned()));
    }
    let wide = kubectl(&server, &["get", "pods", "-n", NAMESPACE, "-o", "wide"]);
    let web_a = wide.lines().find(|l| l.starts_with("web-a ")).unwrap();
    let columns: Vec<&str> = web_a.split_whitespace().collect();
    assert_eq!(&columns[1..3], ["1/1", "Running"], "{wide}");
    assert!(ips.contains(columns[5]), "{wide}");
    assert_eq!(columns[6], "hollow-0", "{wide}");

    // A running pod's status is written once, not over and over.
    let before = get_pod(&client, "web-a").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = get_pod(&client, "web-a").await.unwrap();
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );

    // Annotations: slow to become ready, finishing, failing, crash-looping.
    create(
        &client,
        pod("slow", &names[1], "Always", &[(READY_AFTER_SECONDS, "3")]),
    )
    .await;
    let exits = |code: &'static str| [(EXIT_AFTER_SECONDS, "1"), (EXIT_CODE, code)];
    create(&client, pod("job-ok", &names[2], "Never", &exits("0"))).await;
    create(&client, pod("job-fail", &names[2], "Never", &exits("3"))).await;
    create(&client, pod("crash", &names[2], "Always", &exits("1"))).await;

    // Probes are the kubelet's: an exec probe goes to the fake runtime (every command
    // succeeds), an HTTP one is never sent to a made-up pod IP and counts as passed.
    let mut probed = pod("probed", &names[0], "Always", &[]);
    probed.spec.as_mut().unwrap().containers[0] = serde_json::from_value(json!({
        "name": "app",
        "image": "busybox:1.36",
        "readinessProbe": {"httpGet": {"port": 8080, "path": "/ready"}, "periodSeconds": 1},
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
    }))
    .unwrap();
    create(&client, probed).await;
    let slow = wait_for_phase(&client, "slow", "Running").await;
    assert_eq!(ready_status(&slow), "False", "{slow:#}");
    eventually("slow to become ready", || async {
        get_pod(&client, "slow")
            .await
            .filter(|pod| ready_status(pod) == "True")
    })
    .await;

    eventually("the probed pod ready", || async {
        get_pod(&client, "probed")
            .await
            .filter(|pod| ready_status(pod) == "True")
    })
    .await;
    let probed = get_pod(&client, "probed").await.unwrap();
    assert_eq!(probed["status"]["containerStatuses"][0]["restartCount"], 0);

    let ok = wait_for_phase(&client, "job-ok", "Succeeded").await;
    let state = &ok["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (state["exitCode"].as_i64(), state["reason"].as_str()),
        (Some(0), Some("Completed"))
    );
    let failed = wait_for_phase(&client, "job-fail", "Failed").await;
    let state = &failed["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (state["exitCode"].as_i64(), state["reason"].as_str()),
        (Some(3), Some("Error"))
    );
    assert_eq!(ready_status(&failed), "False");
    let crash = eventually("crash to restart twice", || async {
        get_pod(&client, "crash").await.filter(|pod| {
            pod["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .is_some_and(|n| n >= 2)
        })
    })
    .await;
    assert_eq!(crash["status"]["phase"], "Running");
    assert_eq!(
        crash["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    let pods = kubectl(&server, &["get", "pods", "-n", NAMESPACE, "--no-headers"]);
    let status_of = |name: &str| {
        let line = pods
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        line.split_whitespace().nth(2).unwrap().to_owned()
    };
    assert_eq!(status_of("job-ok"), "Completed", "{pods}");
    assert_eq!(status_of("job-fail"), "Error", "{pods}");

    // Graceful deletion (30 s by default) is finished by the node at once, for running and
    // finished pods alike.
    let started = Instant::now();
    kubectl(
        &server,
        &[
            "delete",
            "pod",
            "-n",
            NAMESPACE,
            "web-a",
            "job-fail",
            "--timeout=20s",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(get_pod(&client, "web-a").await.is_none());
    assert!(get_pod(&client, "job-fail").await.is_none());

    // A paused node's Lease stops moving; the others' go on; resumed, it moves again.
    let paused = &cluster.nodes()[2];
    paused.pause_heartbeats();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let frozen = renew_time(&client, paused.name()).await;
    let others_before = renew_time(&client, &names[0]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(renew_time(&client, paused.name()).await, frozen);
    assert!(renew_time(&client, &names[0]).await > others_before);
    paused.resume_heartbeats();
    wait_for_renewals(&client, &names[2..], &frozen).await;

    cluster.stop().await;
}

/// A server restart does not stop hollow nodes: Leases are renewed again and new pods run.
/// A node started again under the same name takes over its Node and its pods as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_carry_on_through_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, client, cluster) = start(&dir, 2, "survivor").await;
    let names = cluster.names();
    create(&client, pod("before", &names[0], "Always", &[])).await;
    let before = wait_for_phase(&client, "before", "Running").await;

    tokio::task::block_in_place(|| server.restart_on_same_port()).unwrap();
    let restarted = renew_time(&client, &names[0]).await;
    wait_for_renewals(&client, &names, &restarted).await;
    create(&client, pod("after", &names[1], "Always", &[])).await;
    wait_for_phase(&client, "after", "Running").await;
    let still = get_pod(&client, "before").await.unwrap();
    assert_eq!(still["status"]["podIP"], before["status"]["podIP"]);
    let statuses = node_statuses(&kubectls().pop().unwrap(), &server);
    assert!(statuses.values().all(|s| s == "Ready"), "{statuses:?}");

    // Stop everything; a new hollow node with the old name takes over, with the same addresses.
    let old_ip = cluster.nodes()[0].internal_ip();
    cluster.stop().await;
    let config = HollowNodeConfig::new(names[0].clone()).with_heartbeat(Duration::from_secs(1));
    let again = HollowNode::start(client.clone(), config).await.unwrap();
    assert_eq!(again.internal_ip(), old_ip);
    create(&client, pod("third", &names[0], "Always", &[])).await;
    let third = wait_for_phase(&client, "third", "Running").await;
    assert_ne!(third["status"]["podIP"], before["status"]["podIP"]);
    // The pod it took over already has the status it would write: nothing is written.
    let adopted = get_pod(&client, "before").await.unwrap();
    assert_eq!(
        adopted["metadata"]["resourceVersion"],
        still["metadata"]["resourceVersion"]
    );
    again.stop().await;
}
