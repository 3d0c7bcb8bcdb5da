//! The eviction API with hollow nodes: `kubectl drain` (every kubectl release) evicts a
//! Deployment's pods one at a time as its PodDisruptionBudget allows, never taking it below the
//! budget, and gives up at its `--timeout` with upstream's message when the budget cannot be
//! met; direct evictions answer as kube-apiserver's: 429 with the `DisruptionBudget` cause,
//! 500 for two budgets, 404 for no pod, a Pending pod deleted whatever its budget says, a dry
//! run that changes nothing, a policy/v1beta1 body.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k3rs_hollow::annotations::{READY_AFTER_SECONDS, STOP_AFTER_SECONDS};
use k3rs_tests::{kubectls, K3rsServer, Kubectl};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::{Api, Client};
use kube_support::{apply_in_own_namespace, hollow_cluster, watch_available};
use serde_json::{json, Value};

/// Upstream's message for an eviction its budget refuses.
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// A Deployment `web` of `replicas` pods (ready a second after they start, and stopping two
/// seconds after they are deleted, so a drain has to wait for them) and the budget `web` over
/// them with `minAvailable`.
fn web(namespace: &str, replicas: u32, min_available: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{"{READY_AFTER_SECONDS}": "1", "{STOP_AFTER_SECONDS}": "5"}}
    spec:
      containers: [{{name: c, image: "nginx:1.25"}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web, namespace: {namespace}}}
spec:
  minAvailable: {min_available}
  selector: {{matchLabels: {{app: web}}}}
"#
    )
}

/// Polls `check` every 200 ms for up to 40 s; fails the test with `what` and the server log.
async fn until<T, F>(server: &K3rsServer, what: &str, mut check: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}\nserver log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until budget `name` has observed its generation `generation` and counts `healthy`
/// ready pods with `allowed` disruptions.
async fn wait_budget(
    server: &K3rsServer,
    client: &Client,
    namespace: &str,
    name: &str,
    (generation, healthy, allowed): (i64, i32, i32),
) {
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), namespace);
    let what = format!(
        "budget {namespace}/{name}: generation {generation}, {healthy} healthy, {allowed} allowed"
    );
    until(server, &what, || async {
        let status = budgets.get(name).await.ok()?.status?;
        (status.observed_generation == Some(generation)
            && status.current_healthy == Some(healthy)
            && status.disruptions_allowed == Some(allowed))
        .then_some(())
    })
    .await;
}

/// Lowers budget `web` to `minAvailable: 2` and waits until its three ready pods allow one
/// disruption under the new spec.
async fn relax_to_two(kubectl: &Kubectl, server: &K3rsServer, client: &Client, ns: &str) {
    let patch = r#"{"spec":{"minAvailable":2}}"#;
    ok(
        kubectl,
        server,
        &["patch", "pdb", "web", "-n", ns, "--type=merge", "-p", patch],
    );
    wait_budget(server, client, ns, "web", (2, 3, 1)).await;
}

/// The web pods: (name, node, ready and not terminating).
async fn web_pods(client: &Client, namespace: &str) -> Vec<(String, String, bool)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|pod| {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            (
                pod.metadata.name.clone().unwrap(),
                node.unwrap_or_default(),
                kube_support::is_available(pod),
            )
        })
        .collect()
}

/// Waits until `replicas` web pods are ready on `node`, and nothing else is left.
async fn wait_web_on(server: &K3rsServer, client: &Client, ns: &str, node: &str, replicas: usize) {
    until(
        server,
        &format!("{replicas} ready web pods on {node}"),
        || async {
            let pods = web_pods(client, ns).await;
            (pods.len() == replicas && pods.iter().all(|(_, n, ready)| n == node && *ready))
                .then_some(())
        },
    )
    .await;
}

fn run(kubectl: &Kubectl, server: &K3rsServer, args: &[&str]) -> (bool, String, String) {
    tokio::task::block_in_place(|| kubectl.run(server, args)).unwrap()
}

fn ok(kubectl: &Kubectl, server: &K3rsServer, args: &[&str]) -> String {
    tokio::task::block_in_place(|| kubectl.ok(server, args))
        .unwrap_or_else(|err| panic!("{err:#}\nserver log:\n{}", server.log_text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_evicts_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, nodes) = hollow_cluster(&dir, "drain", 2).await;
    let names = nodes.names();
    let (from, to) = (names[0].as_str(), names[1].as_str());
    for kubectl in kubectls() {
        let version = kubectl.version;
        // Every web pod starts on `from`: the other node takes none until the drain.
        ok(&kubectl, &server, &["uncordon", from]);
        ok(&kubectl, &server, &["cordon", to]);
        let namespace = tokio::task::block_in_place(|| {
            apply_in_own_namespace(&server, &kubectl, "drain", |ns| web(ns, 3, 3))
        })
        .unwrap();
        let ns = namespace.as_str();
        wait_web_on(&server, &client, ns, from, 3).await;
        wait_budget(&server, &client, ns, "web", (1, 3, 0)).await;
        ok(&kubectl, &server, &["uncordon", to]);

        // A budget that needs all three: every eviction is refused, and the drain gives up at
        // its timeout, having said why while it retried.
        let drain = [
            "drain",
            from,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=6s",
        ];
        let (drained, out, err) = run(&kubectl, &server, &drain);
        assert!(
            !drained,
            "kubectl {version}: the drain should fail: {out}{err}"
        );
        assert!(
            err.contains(&format!("(will retry after 5s): {VIOLATION}")),
            "kubectl {version}: {err}"
        );
        assert!(
            err.contains("global timeout reached: 6s"),
            "kubectl {version}: {err}"
        );
        wait_web_on(&server, &client, ns, from, 3).await;

        // Two of three must stay: the drain evicts one pod at a time, each once its
        // predecessor's replacement is ready on the other node.
        relax_to_two(&kubectl, &server, &client, ns).await;
        let stop = Arc::new(AtomicBool::new(false));
        let (lowest, watcher) = watch_available(&client, ns, stop.clone());
        // Let the watcher list the pods before anything goes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let drain = [
            "drain",
            from,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ];
        let out = ok(&kubectl, &server, &drain);
        stop.store(true, Ordering::SeqCst);
        watcher.await.unwrap();
        assert_eq!(
            out.matches(" evicted").count(),
            3,
            "kubectl {version}: {out}"
        );
        assert!(
            out.contains(&format!("node/{from} drained")),
            "kubectl {version}: {out}"
        );
        let lowest = lowest.load(Ordering::SeqCst);
        assert!(
            (2..=3).contains(&lowest),
            "kubectl {version}: the drain took the Deployment down to {lowest} available pods"
        );
        wait_web_on(&server, &client, ns, to, 3).await;
    }
}

/// Sends an eviction of `pod` in `ns` (`query` appended to the path) with `body`; returns the
/// status code and the parsed answer.
fn evict(server: &K3rsServer, ns: &str, pod: &str, query: &str, body: &Value) -> (u16, Value) {
    let path = format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction{query}");
    let (code, text) =
        tokio::task::block_in_place(|| server.request("POST", &path, &body.to_string())).unwrap();
    let answer = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{code}: {text}"));
    (code, answer)
}

fn eviction(pod: &str, api_version: &str) -> Value {
    json!({"apiVersion": api_version, "kind": "Eviction", "metadata": {"name": pod}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_answer_as_kube_apiserver() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, _nodes) = hollow_cluster(&dir, "evict", 1).await;
    let kubectl = kubectls().pop().unwrap();
    let manifests = |ns: &str| {
        format!(
            r#"{}
---
apiVersion: v1
kind: Pod
metadata: {{name: stuck, namespace: {ns}, labels: {{app: stuck}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: nowhere}}
  containers: [{{name: c, image: "nginx:1.25"}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: stuck, namespace: {ns}}}
spec:
  maxUnavailable: 0
  selector: {{matchLabels: {{app: stuck}}}}
"#,
            web(ns, 3, 3)
        )
    };
    let namespace = tokio::task::block_in_place(|| {
        apply_in_own_namespace(&server, &kubectl, "evict", manifests)
    })
    .unwrap();
    let ns = namespace.as_str();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_budget(&server, &client, ns, "web", (1, 3, 0)).await;
    let victim = web_pods(&client, ns).await[0].0.clone();

    // The budget needs all three: upstream's 429, with the budget's counts as its cause.
    let (code, status) = evict(&server, ns, &victim, "", &eviction(&victim, "policy/v1"));
    assert_eq!(code, 429, "{status}");
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": VIOLATION, "reason": "TooManyRequests",
               "details": {"causes": [{"reason": "DisruptionBudget",
                   "message": "The disruption budget web needs 3 healthy pods and has 3 currently"}]},
               "code": 429})
    );

    // No such pod: 404.
    let (code, status) = evict(&server, ns, "nope", "", &eviction("nope", "policy/v1"));
    assert_eq!(code, 404, "{status}");
    assert_eq!(status["message"], "pods \"nope\" not found");
    // The body must name the pod of the path.
    let (code, status) = evict(&server, ns, &victim, "", &eviction("other", "policy/v1"));
    assert_eq!(
        (code, status["message"].as_str().unwrap()),
        (400, "name in URL does not match name in Eviction object")
    );

    // A Pending pod disrupts nothing: deleted although its budget allows no disruption.
    let (code, status) = evict(&server, ns, "stuck", "", &eviction("stuck", "policy/v1"));
    assert_eq!(code, 201, "{status}");
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    assert!(pods.get_opt("stuck").await.unwrap().is_none());

    // One disruption allowed: a dry run takes nothing and deletes nothing.
    relax_to_two(&kubectl, &server, &client, ns).await;
    let (code, status) = evict(
        &server,
        ns,
        &victim,
        "?dryRun=All",
        &eviction(&victim, "policy/v1"),
    );
    assert_eq!(code, 201, "{status}");
    let pod = pods.get(&victim).await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_none());
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let status = budgets.get("web").await.unwrap().status.unwrap();
    assert_eq!(
        (status.disruptions_allowed, status.disrupted_pods),
        (Some(1), None)
    );

    // The real one, in a policy/v1beta1 body as old clients send: the budget gives up its
    // disruption, and the pod is marked and deleted gracefully (it stops five seconds later, time
    // enough to read it on a busy machine).
    let (code, status) = evict(
        &server,
        ns,
        &victim,
        "",
        &eviction(&victim, "policy/v1beta1"),
    );
    assert_eq!(code, 201, "{status}");
    let pod = pods.get(&victim).await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_some(), "{pod:?}");
    let conditions = pod.status.unwrap().conditions.unwrap();
    let target = conditions
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .unwrap();
    assert_eq!(
        (
            target.status.as_str(),
            target.reason.as_deref(),
            target.message.as_deref()
        ),
        (
            "True",
            Some("EvictionByEvictionAPI"),
            Some("Eviction API: evicting")
        )
    );
    let status = budgets.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.disruptions_allowed, Some(0));

    // Until the replacement is ready, the next eviction is refused.
    let second = web_pods(&client, ns)
        .await
        .into_iter()
        .find(|(name, _, ready)| *ready && *name != victim)
        .unwrap()
        .0;
    let (code, status) = evict(&server, ns, &second, "", &eviction(&second, "policy/v1"));
    assert_eq!(code, 429, "{status}");

    // Two budgets over one pod: upstream's 500, a Status without a reason.
    let also_web = format!(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: also-web, namespace: {ns}}}\nspec:\n  maxUnavailable: 1\n  selector: {{matchLabels: {{app: web}}}}\n"
    );
    kube_support::kubectl_stdin(&server, &["apply", "-n", ns, "-f", "-"], &also_web);
    let (code, status) = evict(&server, ns, &second, "", &eviction(&second, "policy/v1"));
    assert_eq!(code, 500, "{status}");
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
               "code": 500})
    );
    assert!(pods
        .get(&second)
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());
}
