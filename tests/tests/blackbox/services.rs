//! EndpointSlices and Endpoints from Services and pod readiness, with hollow nodes and real
//! kubectl: named target ports resolved per pod, ready / not-ready / terminating endpoints,
//! `publishNotReadyAddresses`, the headless label, Services without a selector left alone, and
//! the endpoints removed with the Service.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::time::Duration;

use k3rs_hollow::annotations::{READY_AFTER_SECONDS, STOP_AFTER_SECONDS};
use k3rs_hollow::{HollowCluster, HollowNodeConfig};
use k3rs_tests::K3rsServer;
use kube_support::{client, create_namespace, kubectl, kubectl_stdin, wait_for};
use serde_json::Value;

fn json(server: &K3rsServer, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl(server, args)).unwrap()
}

/// (address, ready, serving, terminating) of every endpoint of the Service's slices, sorted.
fn slice_endpoints(server: &K3rsServer, service: &str) -> Vec<(String, bool, bool, bool)> {
    let slices = json(
        server,
        &[
            "get",
            "endpointslices",
            "-n",
            "svc",
            "-l",
            &format!("kubernetes.io/service-name={service}"),
            "-o",
            "json",
        ],
    );
    let mut out = Vec::new();
    for slice in slices["items"].as_array().unwrap() {
        for e in slice["endpoints"].as_array().into_iter().flatten() {
            let c = &e["conditions"];
            out.push((
                e["addresses"][0].as_str().unwrap().to_owned(),
                c["ready"] == true,
                c["serving"] == true,
                c["terminating"] == true,
            ));
        }
    }
    out.sort();
    out
}

fn pod_ip(server: &K3rsServer, name: &str) -> String {
    kubectl(
        server,
        &[
            "get",
            "pod",
            name,
            "-n",
            "svc",
            "-o",
            "jsonpath={.status.podIP}",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_endpoints_from_pod_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let server = K3rsServer::start(dir.path()).unwrap();
    let client = client(&server).await;
    create_namespace(&client, "svc").await;
    let _nodes = HollowCluster::start(
        client.clone(),
        1,
        "svc-node",
        &HollowNodeConfig::default().with_heartbeat(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let pod = |name: &str, ready_after: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: svc
  labels: {{app: web}}
  annotations: {{"{READY_AFTER_SECONDS}": "{ready_after}", "{STOP_AFTER_SECONDS}": "60"}}
spec:
  containers: [{{name: c, image: nginx, ports: [{{name: http, containerPort: 8080}}]}}]
"#
        )
    };
    let manifests = [
        pod("ready", "0"),
        pod("never", "never"),
        pod("leaving", "0"),
        r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: svc}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: all, namespace: svc}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: web}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: svc}
spec:
  ports: [{port: 80}]
"#
        .to_owned(),
    ];
    kubectl_stdin(&server, &["apply", "-f", "-"], &manifests.join("---"));
    wait_for(&server, "pod IPs", || {
        ["ready", "never", "leaving"]
            .iter()
            .all(|p| !pod_ip(&server, p).is_empty())
    })
    .await;
    let (ready, never, leaving) = (
        pod_ip(&server, "ready"),
        pod_ip(&server, "never"),
        pod_ip(&server, "leaving"),
    );

    let mut expected = vec![
        (ready.clone(), true, true, false),
        (never.clone(), false, false, false),
        (leaving.clone(), true, true, false),
    ];
    expected.sort();
    wait_for(&server, "the web slice", || {
        slice_endpoints(&server, "web") == expected
    })
    .await;
    let slice = json(
        &server,
        &[
            "get",
            "endpointslices",
            "-n",
            "svc",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "json",
        ],
    );
    let slice = &slice["items"][0];
    assert_eq!(
        slice["ports"][0]["port"], 8080,
        "the named target port resolved: {slice}"
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");

    // Legacy Endpoints, as `kubectl get endpoints` and `describe` show them.
    let endpoints = json(
        &server,
        &["get", "endpoints", "web", "-n", "svc", "-o", "json"],
    );
    let subset = &endpoints["subsets"][0];
    let mut addresses: Vec<&str> = subset["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    addresses.sort();
    let mut wanted = vec![ready.as_str(), leaving.as_str()];
    wanted.sort();
    assert_eq!(addresses, wanted);
    assert_eq!(subset["notReadyAddresses"][0]["ip"], never.as_str());
    assert_eq!(subset["ports"][0]["port"], 8080);

    // Headless with publishNotReadyAddresses: everything ready; labelled headless.
    wait_for(&server, "the headless slice", || {
        let all = slice_endpoints(&server, "all");
        all.len() == 3 && all.iter().all(|e| e.1)
    })
    .await;
    let labels = kubectl(
        &server,
        &[
            "get",
            "endpointslices",
            "-n",
            "svc",
            "-l",
            "kubernetes.io/service-name=all",
            "-o",
            "jsonpath={.items[0].metadata.labels}",
        ],
    );
    assert!(
        labels.contains("service.kubernetes.io/headless"),
        "{labels}"
    );
    // No selector: nothing managed.
    let manual = kubectl(
        &server,
        &[
            "get",
            "endpointslices",
            "-n",
            "svc",
            "-l",
            "kubernetes.io/service-name=manual",
            "-o",
            "name",
        ],
    );
    assert_eq!(manual, "");

    // A terminating pod (its containers take their grace period to stop) stays in the slice
    // as terminating and serving, and leaves the Endpoints.
    kubectl(
        &server,
        &["delete", "pod", "leaving", "-n", "svc", "--wait=false"],
    );
    let mut expected = vec![
        (ready.clone(), true, true, false),
        (never.clone(), false, false, false),
        (leaving.clone(), false, true, true),
    ];
    expected.sort();
    wait_for(&server, "the terminating endpoint", || {
        slice_endpoints(&server, "web") == expected
    })
    .await;
    wait_for(&server, "the Endpoints without it", || {
        let ips = kubectl(
            &server,
            &[
                "get",
                "endpoints",
                "web",
                "-n",
                "svc",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}",
            ],
        );
        ips == ready
    })
    .await;
    kubectl(
        &server,
        &[
            "delete",
            "pod",
            "leaving",
            "-n",
            "svc",
            "--force",
            "--grace-period=0",
        ],
    );

    // The Service goes: so do its slices and Endpoints.
    kubectl(&server, &["delete", "service", "web", "-n", "svc"]);
    wait_for(&server, "the endpoints removed", || {
        kubectl(
            &server,
            &[
                "get",
                "endpointslices,endpoints",
                "-n",
                "svc",
                "-l",
                "kubernetes.io/service-name=web",
                "-o",
                "name",
            ],
        )
        .is_empty()
            && kubectl(&server, &["get", "endpoints", "-n", "svc", "-o", "name"])
                .lines()
                .all(|l| l != "endpoints/web")
    })
    .await;
}
