//! PodDisruptionBudgets with hollow nodes and every kubectl release: the disruption controller
//! counts the healthy (ready) pods a budget selects and works out `desiredHealthy`,
//! `expectedPods` (from the Deployment's scale for `maxUnavailable` and percentages, from the
//! pods for a number) and `disruptionsAllowed`, with the `DisruptionAllowed` condition; a pod
//! that stops being ready takes an allowed disruption away.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::time::Duration;

use k3rs_hollow::annotations::{NEVER, READY_AFTER_SECONDS};
use k3rs_tests::{eventually, kubectls, K3rsServer, Kubectl};
use kube_support::{apply_in_own_namespace, hollow_cluster};
use serde_json::Value;

/// The Deployment of 3 pods (ready a second after they start) and three budgets over them.
fn manifests(namespace: &str) -> String {
    format!(
        r#"{}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: max-one, namespace: {namespace}}}
spec:
  maxUnavailable: 1
  selector: {{matchLabels: {{app: web}}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: half, namespace: {namespace}}}
spec:
  minAvailable: 50%
  selector: {{matchLabels: {{app: web}}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: at-least-one, namespace: {namespace}}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: web}}}}
"#,
        crate::workloads::deployment(namespace, 3, 1, 0, "nginx:1.25")
    )
}

/// (currentHealthy, desiredHealthy, expectedPods, disruptionsAllowed, observedGeneration,
/// DisruptionAllowed status and reason) of budget `name`.
fn budget(
    kubectl: &Kubectl,
    server: &K3rsServer,
    namespace: &str,
    name: &str,
) -> (Vec<i64>, String) {
    let out = kubectl
        .ok(server, &["get", "pdb", name, "-n", namespace, "-o", "json"])
        .unwrap();
    let status = serde_json::from_str::<Value>(&out).unwrap()["status"].clone();
    let counts = [
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
        "disruptionsAllowed",
        "observedGeneration",
    ]
    .iter()
    .map(|field| status[field].as_i64().unwrap_or(-1))
    .collect();
    let condition = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "DisruptionAllowed"))
        .map(|c| {
            format!(
                "{}/{}",
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap()
            )
        })
        .unwrap_or_default();
    (counts, condition)
}

/// What a budget's status should come to: name, the counts of [`budget`], the condition.
type Wanted<'a> = (&'a str, [i64; 5], &'a str);

/// Waits until every budget of `wanted` has its status.
fn wait_budgets(kubectl: &Kubectl, server: &K3rsServer, namespace: &str, wanted: &[Wanted<'_>]) {
    for (name, counts, condition) in wanted {
        let wanted = (counts.to_vec(), (*condition).to_owned());
        let seen = eventually(Duration::from_secs(40), || {
            (budget(kubectl, server, namespace, name) == wanted).then_some(())
        });
        assert!(
            seen.is_some(),
            "kubectl {}: budget {name}: {:?}, wanted {wanted:?}",
            kubectl.version,
            budget(kubectl, server, namespace, name)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_count_healthy_pods_of_hollow_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _client, _nodes) = hollow_cluster(&dir, "pdb", 2).await;
    tokio::task::block_in_place(|| {
        for kubectl in kubectls() {
            let namespace = apply_in_own_namespace(&server, &kubectl, "pdb", manifests).unwrap();
            let ns = namespace.as_str();
            // maxUnavailable 1 of the Deployment's 3: 2 must stay healthy, 1 may go.
            wait_budgets(
                &kubectl,
                &server,
                ns,
                &[
                    ("max-one", [3, 2, 3, 1, 1], "True/SufficientPods"),
                    // 50% of 3 rounds up to 2.
                    ("half", [3, 2, 3, 1, 1], "True/SufficientPods"),
                    ("at-least-one", [3, 1, 3, 2, 1], "True/SufficientPods"),
                ],
            );
            let table = kubectl
                .ok(&server, &["get", "pdb", "max-one", "-n", ns])
                .unwrap();
            let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
            assert_eq!(&row[..4], ["max-one", "N/A", "1", "1"], "{table}");

            // One pod stops being ready: no disruption is left for the two budgets needing 2.
            let pods = kubectl
                .ok(
                    &server,
                    &["get", "pods", "-n", ns, "-l", "app=web", "-o", "name"],
                )
                .unwrap();
            let pod = pods.lines().next().unwrap();
            kubectl
                .ok(
                    &server,
                    &[
                        "annotate",
                        "-n",
                        ns,
                        pod,
                        "--overwrite",
                        &format!("{READY_AFTER_SECONDS}={NEVER}"),
                    ],
                )
                .unwrap();
            wait_budgets(
                &kubectl,
                &server,
                ns,
                &[
                    ("max-one", [2, 2, 3, 0, 1], "False/InsufficientPods"),
                    ("half", [2, 2, 3, 0, 1], "False/InsufficientPods"),
                    ("at-least-one", [2, 1, 3, 1, 1], "True/SufficientPods"),
                ],
            );

            // A new spec is observed: a budget of 2 unavailable allows one more.
            kubectl
                .ok(
                    &server,
                    &[
                        "patch",
                        "pdb",
                        "max-one",
                        "-n",
                        ns,
                        "--type=merge",
                        "-p",
                        r#"{"spec":{"maxUnavailable":2}}"#,
                    ],
                )
                .unwrap();
            wait_budgets(
                &kubectl,
                &server,
                ns,
                &[("max-one", [2, 1, 3, 1, 2], "True/SufficientPods")],
            );
        }
    });
}
