//! Node lifecycle (upstream's node lifecycle controller and taint eviction): a node whose
//! kubelet stops renewing its Lease and posting status for the grace period gets its
//! conditions set to `Unknown` and its pods marked not ready; every node carries the
//! `node.kubernetes.io/*` taints its conditions call for (`unreachable`, `not-ready` with both
//! NoSchedule and NoExecute, pressure taints, `unschedulable`); and pods on a node with a
//! NoExecute taint they do not tolerate are evicted — at once, or after the
//! `tolerationSeconds` they do tolerate it for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::error::{gone_ok, Error};
use crate::patch_params as params;
use crate::taints::tolerated;
use crate::Context;
use k3rs_api::well_known;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::runner::Action;
use k3rs_runtime::supervisor::supervise;
use k3rs_runtime::Controller;

/// Where kubelets keep their Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Taint keys this controller manages (others are left alone).
const NOT_READY: &str = well_known::TAINT_NODE_NOT_READY;
const UNREACHABLE: &str = well_known::TAINT_NODE_UNREACHABLE;
const MANAGED: &[&str] = &[
    NOT_READY,
    UNREACHABLE,
    well_known::TAINT_NODE_MEMORY_PRESSURE,
    well_known::TAINT_NODE_DISK_PRESSURE,
    well_known::TAINT_NODE_PID_PRESSURE,
    well_known::TAINT_NODE_NETWORK_UNAVAILABLE,
    well_known::TAINT_NODE_UNSCHEDULABLE,
];
/// The conditions a kubelet posts, set to Unknown when it goes silent.
const KUBELET_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// How often nodes are checked, and how long one may stay silent.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `--node-monitor-period` (upstream: 5 s).
    pub monitor_period: Duration,
    /// `--node-monitor-grace-period` (upstream: 50 s).
    pub grace_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(50),
        }
    }
}

/// What was last seen of a node's heartbeats, and when (by this process's clock: a kubelet's
/// clock may be off).
#[derive(Debug)]
struct Health {
    heartbeat: Option<Timestamp>,
    renewed: Option<Timestamp>,
    probed: Instant,
}

#[derive(Clone)]
struct Shared {
    client: Client,
    nodes: Arc<Informer<Node>>,
    leases: Arc<Informer<Lease>>,
    pods: Arc<Informer<Pod>>,
    health: Arc<Mutex<HashMap<String, Health>>>,
    events: Recorder,
    timing: Timing,
}

/// Starts the monitor loop and the eviction workers.
pub(crate) fn start(ctx: &Context, timing: Timing) -> Supervised {
    let controller = Controller::new(&ctx.runtime, "taint-eviction-controller");
    let shared = Shared {
        client: ctx.client.clone(),
        nodes: ctx.informers.get::<Node>(),
        leases: ctx.informers.get::<Lease>(),
        pods: ctx.informers.get::<Pod>(),
        health: Arc::new(Mutex::new(HashMap::new())),
        events: Recorder::new(ctx.client.clone(), "node-controller"),
        timing,
    };
    let evictions = controller
        .watches(&shared.nodes, {
            let pods = shared.pods.clone();
            move |change| {
                let node = change.object();
                let old_taints = match change {
                    Change::Applied { old: Some(old), .. } => no_execute(old),
                    _ => Vec::new(),
                };
                if !matches!(change, Change::Applied { .. }) || no_execute(node) == old_taints {
                    return Vec::new();
                }
                let name = node.name_any();
                pods.cache()
                    .all()
                    .iter()
                    .filter(|pod| node_name(pod) == Some(name.as_str()))
                    .map(|pod| ObjectKey::of(pod.as_ref()))
                    .collect()
            }
        })
        .watches(&shared.pods, {
            let nodes = shared.nodes.clone();
            move |change| {
                let Change::Applied { new, .. } = change else {
                    return None;
                };
                let tainted = node_name(new)
                    .and_then(|n| nodes.cache().get_named("", n))
                    .is_some_and(|node| !no_execute(&node).is_empty());
                tainted.then(|| ObjectKey::of(new.as_ref()))
            }
        })
        .reads(&shared.leases)
        .workers(2)
        .run({
            let shared = shared.clone();
            move |key: ObjectKey| {
                let shared = shared.clone();
                async move { evict_if_due(&shared, &key).await }
            }
        });
    let monitor = supervise(
        "node-lifecycle-controller".to_owned(),
        ctx.runtime.health().clone(),
        move || {
            let shared = shared.clone();
            async move {
                shared.nodes.wait_synced().await;
                shared.leases.wait_synced().await;
                shared.pods.wait_synced().await;
                let mut tick = tokio::time::interval(shared.timing.monitor_period);
                loop {
                    tick.tick().await;
                    for node in shared.nodes.cache().all() {
                        if let Err(err) = monitor(&shared, &node).await {
                            tracing::debug!(node = %node.name_any(), %err, "node monitoring failed; retrying next period");
                        }
                    }
                }
            }
        },
    );
    Supervised::all(vec![evictions, Supervised(monitor)])
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|taints| {
            taints
                .iter()
                .filter(|t| t.effect == "NoExecute")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// One node's check: heartbeats seen, conditions set to Unknown when silent too long, taints
/// brought in line with the conditions.
async fn monitor(shared: &Shared, node: &Node) -> Result<(), Error> {
    let name = node.name_any();
    let heartbeat = condition(node, "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let renewed = shared
        .leases
        .cache()
        .get_named(LEASE_NAMESPACE, &name)
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
    let silent = {
        let mut health = shared
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        health.retain(|n, _| shared.nodes.cache().get_named("", n).is_some());
        let entry = health.entry(name.clone()).or_insert(Health {
            heartbeat,
            renewed,
            probed: Instant::now(),
        });
        if entry.heartbeat != heartbeat || entry.renewed != renewed {
            entry.heartbeat = heartbeat;
            entry.renewed = renewed;
            entry.probed = Instant::now();
        }
        entry.probed.elapsed() > shared.timing.grace_period
    };
    let mut node = node.clone();
    let ready_status = condition(&node, "Ready").map(|c| c.status.clone());
    if silent && ready_status.as_deref() != Some("Unknown") {
        node = mark_unknown(shared, &node).await?;
        shared
            .events
            .normal(
                &node,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            )
            .await;
        mark_pods_not_ready(shared, &name).await;
    }
    sync_taints(shared, &node).await
}

/// Sets every kubelet condition to Unknown ("Kubelet stopped posting node status.").
async fn mark_unknown(shared: &Shared, node: &Node) -> Result<Node, Error> {
    let now = Time(Timestamp::now());
    let mut conditions: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for type_ in KUBELET_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == *type_) {
            Some(c) => {
                if c.status != "Unknown" {
                    c.last_transition_time = Some(now.clone());
                }
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
            }
            None => conditions.push(NodeCondition {
                type_: (*type_).into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now.clone()),
            }),
        }
    }
    let api: Api<Node> = Api::all(shared.client.clone());
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "status": {"conditions": conditions},
    });
    Ok(api
        .patch_status(&node.name_any(), &params(), &Patch::Merge(&patch))
        .await?)
}

/// Upstream's `MarkPodsNotReady`: the pods of a silent node are not ready any more.
async fn mark_pods_not_ready(shared: &Shared, node: &str) {
    let now = Time(Timestamp::now());
    for pod in shared.pods.cache().all() {
        if node_name(&pod) != Some(node) || !crate::pods::is_ready(&pod) {
            continue;
        }
        let api: Api<Pod> =
            Api::namespaced(shared.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": now},
        ]}});
        if let Err(err) = api
            .patch_status(&pod.name_any(), &params(), &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(pod = %pod.name_any(), %err, "marking a pod not ready failed");
        }
    }
}

/// The managed taints the node's conditions call for.
fn wanted_taints(node: &Node) -> Vec<(&'static str, &'static str)> {
    let status = |type_: &str| condition(node, type_).map(|c| c.status.as_str());
    let mut wanted = Vec::new();
    match status("Ready") {
        Some("False") => {
            wanted.push((NOT_READY, "NoSchedule"));
            wanted.push((NOT_READY, "NoExecute"));
        }
        Some("Unknown") => {
            wanted.push((UNREACHABLE, "NoSchedule"));
            wanted.push((UNREACHABLE, "NoExecute"));
        }
        _ => {}
    }
    for (type_, key) in [
        ("MemoryPressure", well_known::TAINT_NODE_MEMORY_PRESSURE),
        ("DiskPressure", well_known::TAINT_NODE_DISK_PRESSURE),
        ("PIDPressure", well_known::TAINT_NODE_PID_PRESSURE),
        (
            "NetworkUnavailable",
            well_known::TAINT_NODE_NETWORK_UNAVAILABLE,
        ),
    ] {
        if status(type_) == Some("True") {
            wanted.push((key, "NoSchedule"));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((well_known::TAINT_NODE_UNSCHEDULABLE, "NoSchedule"));
    }
    wanted
}

/// Adds and removes managed taints so they match the conditions; others stay as they are.
async fn sync_taints(shared: &Shared, node: &Node) -> Result<(), Error> {
    let wanted = wanted_taints(node);
    let current: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !MANAGED.contains(&t.key.as_str())
                || wanted.iter().any(|(k, e)| *k == t.key && *e == t.effect)
        })
        .cloned()
        .collect();
    for (key, effect) in &wanted {
        if !taints.iter().any(|t| t.key == *key && t.effect == *effect) {
            taints.push(Taint {
                key: (*key).into(),
                effect: (*effect).into(),
                value: None,
                time_added: Some(Time(Timestamp::now())),
            });
        }
    }
    if taints == current {
        return Ok(());
    }
    let api: Api<Node> = Api::all(shared.client.clone());
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"taints": if taints.is_empty() { serde_json::Value::Null } else { json!(taints) }},
    });
    gone_ok(
        api.patch(&node.name_any(), &params(), &Patch::Merge(&patch))
            .await,
    )?;
    Ok(())
}

/// Evicts a pod from a node with NoExecute taints it does not tolerate, now or when its
/// toleration runs out.
async fn evict_if_due(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(pod) = shared.pods.cache().get(key) else {
        return Ok(Action::Done);
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let Some(node) = node_name(&pod).and_then(|n| shared.nodes.cache().get_named("", n)) else {
        return Ok(Action::Done);
    };
    let taints = no_execute(&node);
    if taints.is_empty() {
        return Ok(Action::Done);
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let now = Timestamp::now();
    let mut due: Option<Timestamp> = None;
    for taint in &taints {
        if !tolerated(&tolerations, taint) {
            due = Some(now);
            break;
        }
        // Tolerated for the shortest tolerationSeconds among the tolerations that match;
        // a matching toleration without seconds tolerates it for ever.
        let seconds = tolerations
            .iter()
            .filter(|t| crate::taints::tolerates(t, taint))
            .map(|t| t.toleration_seconds)
            .collect::<Option<Vec<i64>>>()
            .and_then(|all| all.into_iter().min());
        if let Some(seconds) = seconds {
            let added = taint.time_added.as_ref().map_or(now, |t| t.0);
            let at = added
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds.max(0)))
                .unwrap_or(added);
            due = Some(due.map_or(at, |d| d.min(at)));
        }
    }
    let Some(due) = due else {
        return Ok(Action::Done);
    };
    if due > now {
        let wait = (due.as_millisecond() - now.as_millisecond()).max(0);
        return Ok(Action::RequeueAfter(Duration::from_millis(
            u64::try_from(wait).unwrap_or(0),
        )));
    }
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": Time(now),
    }]}});
    gone_ok(
        api.patch_status(&key.name, &params(), &Patch::Strategic(&condition))
            .await,
    )?;
    shared
        .events
        .normal(
            pod.as_ref(),
            "TaintManagerEviction",
            format!("Marking for deletion Pod {}/{}", key.namespace, key.name),
        )
        .await;
    gone_ok(api.delete(&key.name, &DeleteParams::default()).await)?;
    Ok(Action::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>, unschedulable: bool) -> Node {
        let conditions = ready
            .map(|s| json!([{"type": "Ready", "status": s}, {"type": "DiskPressure", "status": "True"}]))
            .unwrap_or(json!([]));
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn conditions_call_for_upstreams_taints() {
        assert_eq!(
            wanted_taints(&node(Some("Unknown"), false)),
            [
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule")
            ]
        );
        assert_eq!(
            wanted_taints(&node(Some("False"), true))[..2],
            [(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
        );
        assert!(wanted_taints(&node(Some("False"), true))
            .contains(&("node.kubernetes.io/unschedulable", "NoSchedule")));
        assert_eq!(
            wanted_taints(&node(Some("True"), false)),
            [("node.kubernetes.io/disk-pressure", "NoSchedule")]
        );
        assert!(wanted_taints(&node(None, false)).is_empty());
    }
}
