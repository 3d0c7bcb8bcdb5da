//! The scheduler with real kubectl (1.33 and 1.37), each against its own server with three
//! Node objects — `small` (1 CPU, labelled `example.com/special`), `big` (4 CPUs) and `tainted`
//! (8 CPUs, `dedicated=gpu:NoSchedule`): requests that fit one node only, `nodeSelector`,
//! required node affinity, a toleration, host port conflicts, required anti-affinity by
//! hostname, replicas of one Service spread over the nodes, and a pod that fits nowhere — its
//! `FailedScheduling` event and `PodScheduled=False` condition carry upstream's message — until
//! a node is added or a pod deleted. Also the binding subresource's refusal of a bound pod.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k3rs_tests::{eventually, K3rsServer, Kubectl};
use serde_json::Value;

const NS: &str = "sched";
const WAIT: Duration = Duration::from_secs(30);

fn node(name: &str, cpu: &str, memory: &str, labels: &str, taints: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}, kubernetes.io/os: linux{labels}}}
spec: {{taints: [{taints}]}}
status:
  capacity: {{cpu: "{cpu}", memory: {memory}, pods: "110"}}
  allocatable: {{cpu: "{cpu}", memory: {memory}, pods: "110"}}
  conditions:
  - {{type: Ready, status: "True", reason: KubeletReady, message: ready}}
"#
    )
}

/// A pod in [`NS`]; `spec` is YAML for the fields beside `containers`, indented by two.
fn pod(name: &str, labels: &str, cpu: &str, port: Option<u16>, spec: &str) -> String {
    let ports = port
        .map(|p| format!("\n    ports: [{{containerPort: 80, hostPort: {p}}}]"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NS}
  labels: {{{labels}}}
spec:
  containers:
  - name: c
    image: busybox
    resources: {{requests: {{cpu: "{cpu}"}}}}{ports}
{spec}
"#
    )
}

fn apply(kubectl: &Kubectl, server: &K3rsServer, yaml: &str) -> Result<()> {
    let (ok, stdout, stderr) = kubectl.run_with_input(server, &["create", "-f", "-"], yaml)?;
    ensure!(ok, "kubectl create failed: {stderr}{stdout}");
    Ok(())
}

fn pod_json(kubectl: &Kubectl, server: &K3rsServer, name: &str) -> Result<Value> {
    let out = kubectl.ok(server, &["get", "pod", name, "-n", NS, "-o", "json"])?;
    Ok(serde_json::from_str(&out)?)
}

fn node_of(kubectl: &Kubectl, server: &K3rsServer, name: &str) -> Option<String> {
    let pod = pod_json(kubectl, server, name).ok()?;
    pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

fn scheduled(kubectl: &Kubectl, server: &K3rsServer, name: &str) -> Result<String> {
    eventually(WAIT, || node_of(kubectl, server, name))
        .with_context(|| format!("pod {name} was not scheduled"))
}

/// The pod's `PodScheduled` condition once it is `False`.
fn unschedulable(kubectl: &Kubectl, server: &K3rsServer, name: &str) -> Result<Value> {
    eventually(WAIT, || {
        let pod = pod_json(kubectl, server, name).ok()?;
        let condition = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        (condition["status"] == "False").then_some(condition)
    })
    .with_context(|| format!("pod {name} never became PodScheduled=False"))
}

fn delete(kubectl: &Kubectl, server: &K3rsServer, names: &[&str]) -> Result<()> {
    let mut args = vec!["delete", "pod", "-n", NS, "--grace-period=0", "--force"];
    args.extend(names);
    kubectl.ok(server, &args)?;
    Ok(())
}

fn scenario(server: &K3rsServer, kubectl: &Kubectl) -> Result<()> {
    kubectl.ok(server, &["create", "namespace", NS])?;
    server.wait_for_default_service_account(NS)?;
    let nodes = [
        node("small", "1", "2Gi", ", example.com/special: \"yes\"", ""),
        node("big", "4", "8Gi", "", ""),
        node(
            "tainted",
            "8",
            "16Gi",
            "",
            "{key: dedicated, value: gpu, effect: NoSchedule}",
        ),
    ];
    apply(kubectl, server, &nodes.join("---"))?;

    // Requests that fit only one node (the tainted one has room but no toleration).
    apply(kubectl, server, &pod("needs-3", "", "3", None, ""))?;
    ensure!(scheduled(kubectl, server, "needs-3")? == "big");
    // The scheduler's own event.
    let describe = kubectl.ok(server, &["describe", "pod", "needs-3", "-n", NS])?;
    ensure!(
        describe.contains("Scheduled")
            && describe.contains("Successfully assigned sched/needs-3 to big"),
        "no Scheduled event:\n{describe}"
    );
    // A bound pod cannot be bound again.
    let binding = r#"{"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "needs-3"},
                      "target": {"kind": "Node", "name": "small"}}"#;
    let (ok, _, stderr) = kubectl.run_with_input(
        server,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/sched/pods/needs-3/binding",
            "-f",
            "-",
        ],
        binding,
    )?;
    ensure!(
        !ok && stderr.contains("pod needs-3 is already assigned to node \"big\""),
        "rebinding: {stderr}"
    );

    // nodeSelector.
    apply(
        kubectl,
        server,
        &pod(
            "special",
            "",
            "100m",
            None,
            "  nodeSelector: {example.com/special: \"yes\"}",
        ),
    )?;
    ensure!(scheduled(kubectl, server, "special")? == "small");

    // Required node affinity.
    let affinity = r#"  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: kubernetes.io/hostname, operator: In, values: [small, tainted]}"#;
    apply(kubectl, server, &pod("affine", "", "100m", None, affinity))?;
    ensure!(scheduled(kubectl, server, "affine")? == "small");

    // A toleration opens the tainted node, the only one with 6 CPUs free.
    let toleration =
        "  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]";
    apply(kubectl, server, &pod("tolerant", "", "6", None, toleration))?;
    ensure!(scheduled(kubectl, server, "tolerant")? == "tainted");
    delete(
        kubectl,
        server,
        &["needs-3", "special", "affine", "tolerant"],
    )?;

    // Host ports: the second pod avoids the first's node, the third fits nowhere.
    apply(
        kubectl,
        server,
        &pod(
            "port-a",
            "",
            "100m",
            Some(8080),
            "  nodeSelector: {example.com/special: \"yes\"}",
        ),
    )?;
    ensure!(scheduled(kubectl, server, "port-a")? == "small");
    apply(kubectl, server, &pod("port-b", "", "100m", Some(8080), ""))?;
    ensure!(scheduled(kubectl, server, "port-b")? == "big");
    apply(kubectl, server, &pod("port-c", "", "100m", Some(8080), ""))?;
    let condition = unschedulable(kubectl, server, "port-c")?;
    ensure!(
        condition["message"]
            == "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
                2 node(s) didn't have free ports for the requested pod ports. preemption: 0/3 \
                nodes are available: 1 Preemption is not helpful for scheduling, 2 No \
                preemption victims found for incoming pod.",
        "{condition}"
    );
    delete(kubectl, server, &["port-a", "port-b", "port-c"])?;

    // Required anti-affinity by hostname: two eligible nodes, three replicas.
    let anti = r#"  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector: {matchLabels: {app: db}}"#;
    for name in ["db-0", "db-1", "db-2"] {
        apply(kubectl, server, &pod(name, "app: db", "100m", None, anti))?;
    }
    let placed: Vec<Option<String>> = eventually(WAIT, || {
        let placed: Vec<Option<String>> = ["db-0", "db-1", "db-2"]
            .iter()
            .map(|name| node_of(kubectl, server, name))
            .collect();
        (placed.iter().flatten().count() == 2).then_some(placed)
    })
    .context("two of three anti-affine replicas should be placed")?;
    let pending = ["db-0", "db-1", "db-2"][placed.iter().position(Option::is_none).unwrap_or(0)];
    let mut nodes: Vec<&String> = placed.iter().flatten().collect();
    nodes.sort();
    ensure!(nodes == ["big", "small"], "replicas on {nodes:?}");
    let condition = unschedulable(kubectl, server, pending)?;
    ensure!(
        condition["reason"] == "Unschedulable"
            && condition["message"]
                .as_str()
                .unwrap_or("")
                .contains("2 node(s) didn't match pod anti-affinity rules"),
        "{condition}"
    );
    // Deleting a replica makes room for the pending one.
    let leaving = ["db-0", "db-1", "db-2"]
        .into_iter()
        .find(|name| *name != pending)
        .unwrap_or("db-0");
    delete(kubectl, server, &[leaving])?;
    scheduled(kubectl, server, pending)?;
    delete(
        kubectl,
        server,
        &["db-0", "db-1", "db-2"]
            .into_iter()
            .filter(|name| *name != leaving)
            .collect::<Vec<_>>(),
    )?;

    // Replicas selected by one Service spread 2/2 over the two untainted nodes.
    apply(
        kubectl,
        server,
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: spread, namespace: {NS}}}\n\
             spec: {{selector: {{app: spread}}, ports: [{{port: 80}}]}}\n"
        ),
    )?;
    for i in 0..4 {
        apply(
            kubectl,
            server,
            &pod(&format!("spread-{i}"), "app: spread", "0", None, ""),
        )?;
        scheduled(kubectl, server, &format!("spread-{i}"))?;
    }
    let mut spread: Vec<String> = (0..4)
        .filter_map(|i| node_of(kubectl, server, &format!("spread-{i}")))
        .collect();
    spread.sort();
    ensure!(
        spread == ["big", "big", "small", "small"],
        "spread: {spread:?}"
    );
    delete(
        kubectl,
        server,
        &["spread-0", "spread-1", "spread-2", "spread-3"],
    )?;

    // A pod that fits nowhere says why, in upstream's words, until a node with room comes.
    apply(kubectl, server, &pod("huge", "", "6", None, ""))?;
    let wanted = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
                  2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not \
                  helpful for scheduling, 2 No preemption victims found for incoming pod.";
    let condition = unschedulable(kubectl, server, "huge")?;
    ensure!(
        condition["reason"] == "Unschedulable" && condition["message"] == wanted,
        "{condition}"
    );
    let describe = eventually(WAIT, || {
        let out = kubectl
            .ok(server, &["describe", "pod", "huge", "-n", NS])
            .ok()?;
        out.contains("FailedScheduling").then_some(out)
    })
    .context("no FailedScheduling event")?;
    // `describe` wraps long messages; compare without line breaks.
    let flat = describe.split_whitespace().collect::<Vec<_>>().join(" ");
    ensure!(
        flat.contains("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.")
            && flat.contains("default-scheduler"),
        "describe:\n{describe}"
    );
    apply(kubectl, server, &node("roomy", "8", "16Gi", "", ""))?;
    ensure!(scheduled(kubectl, server, "huge")? == "roomy");
    let pod = pod_json(kubectl, server, "huge")?;
    let scheduled_condition = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned());
    match scheduled_condition {
        Some(c) if c["status"] == "True" => Ok(()),
        other => bail!("PodScheduled after binding: {other:?}"),
    }
}

#[test]
fn the_scheduler_places_pods_with_kubectl() {
    for kubectl in k3rs_tests::kubectls() {
        let dir = tempfile::tempdir().unwrap();
        let server = K3rsServer::start(dir.path()).unwrap();
        if let Err(err) = scenario(&server, &kubectl) {
            panic!(
                "kubectl {}: {err:#}\nserver log:\n{}",
                kubectl.version,
                server.log_text()
            );
        }
    }
}
