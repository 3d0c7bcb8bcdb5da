//! The DaemonSet controller: one pod on every node that should run it — the node matches the
//! pod template's `nodeSelector` and required node affinity, and its NoSchedule/NoExecute
//! taints are tolerated (daemon pods tolerate upstream's `node.kubernetes.io/*` taints by
//! default) — pinned to its node with node affinity `matchFields metadata.name`, as upstream,
//! and placed by the scheduler. Extra and misplaced pods go; failed pods are replaced. Templates
//! are recorded as ControllerRevisions; RollingUpdate replaces old pods node by node within
//! `maxUnavailable`, or with `maxSurge` starts the new pod beside the old one first; OnDelete
//! replaces a pod only when it is deleted. The rollout moves only when nothing else is
//! outstanding (upstream's order: manage, then update). Pods are claimed (matching orphans
//! adopted) and watched through the shared pod-owner handler, so a daemon that gets a
//! `deletionTimestamp` counts as deleted at once: a graceful deletion never holds up the
//! DaemonSet's other actions, only the replacement on that daemon's own node.

use std::collections::BTreeMap;
use std::sync::Arc;

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use crate::deployment::util::scaled;
use crate::error::Error;
use crate::ownership::{claim_pods, controller_of, controller_ref, selector_selects};
use crate::pod_owner::{delete_owned_pod, watch_owners_and_pods};
use crate::pods;
use crate::scheduler::filters::taint_toleration;
use crate::scheduler::nodeaffinity::{named_nodes, RequiredNodeAffinity};
use crate::{post_params, Context};
use k3rs_api::well_known;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::expectations::Expectations;
use k3rs_runtime::informer::Informer;
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// The label holding a pod's template hash (for DaemonSets, the hash alone).
pub use crate::revisions::REVISION_LABEL;
const GENERATION_LABEL: &str = well_known::LABEL_POD_TEMPLATE_GENERATION;

#[derive(Clone)]
struct Shared {
    client: Client,
    sets: Arc<Informer<DaemonSet>>,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    revisions: Arc<Informer<ControllerRevision>>,
    expectations: Arc<Expectations<ObjectKey>>,
    events: Recorder,
}

/// Registers the handlers and starts the workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let controller = Controller::new(&ctx.runtime, "daemonset-controller");
    let shared = Shared {
        client: ctx.client.clone(),
        sets: ctx.informers.get::<DaemonSet>(),
        pods: ctx.informers.get::<Pod>(),
        nodes: ctx.informers.get::<Node>(),
        revisions: ctx.informers.get::<ControllerRevision>(),
        expectations: Arc::new(Expectations::default()),
        events: Recorder::new(ctx.client.clone(), "daemonset-controller"),
    };
    let sets = shared.sets.clone();
    watch_owners_and_pods(
        controller,
        &shared.sets,
        &shared.pods,
        &shared.expectations,
        selects,
    )
    // A node added, relabelled or (un)tainted may change where daemons should run.
    .watches(&shared.nodes, move |_| {
        sets.cache()
            .all()
            .iter()
            .map(|set| ObjectKey::of(set.as_ref()))
            .collect::<Vec<_>>()
    })
    .reads(&shared.revisions)
    .workers(2)
    .run(move |key| {
        let shared = shared.clone();
        async move { sync(&shared, &key).await }
    })
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`: daemons stay on nodes that are not ready,
/// unreachable, under pressure or cordoned.
fn daemon_tolerations(template: &PodTemplateSpec) -> Vec<Toleration> {
    let mut tolerations = template
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let host_network = template
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let mut add = |key: &str, effect: &str| {
        if !tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect))
        {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Toleration::default()
            });
        }
    };
    add(well_known::TAINT_NODE_NOT_READY, "NoExecute");
    add(well_known::TAINT_NODE_UNREACHABLE, "NoExecute");
    add(well_known::TAINT_NODE_DISK_PRESSURE, "NoSchedule");
    add(well_known::TAINT_NODE_MEMORY_PRESSURE, "NoSchedule");
    add(well_known::TAINT_NODE_PID_PRESSURE, "NoSchedule");
    add(well_known::TAINT_NODE_UNSCHEDULABLE, "NoSchedule");
    if host_network {
        add(well_known::TAINT_NODE_NETWORK_UNAVAILABLE, "NoSchedule");
    }
    tolerations
}

/// The daemon pod for `node`: the template with the revision labels, the default tolerations,
/// and a required node affinity naming the node.
fn new_pod(set: &DaemonSet, hash: &str, node: &str) -> Pod {
    let template = &set.spec.template;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), hash.into());
    if let Some(generation) = set.metadata.generation {
        labels.insert(GENERATION_LABEL.into(), generation.to_string());
    }
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.tolerations = Some(daemon_tolerations(template));
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", set.name_any())),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Whether a daemon of `set` should run on `node` (upstream's `NodeShouldRunDaemonPod`).
fn should_run(set: &DaemonSet, node: &Node) -> bool {
    if node.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let mut probe = Pod {
        metadata: ObjectMeta::default(),
        spec: set.spec.template.spec.clone(),
        status: None,
    };
    if let Some(spec) = probe.spec.as_mut() {
        spec.tolerations = Some(daemon_tolerations(&set.spec.template));
    }
    RequiredNodeAffinity::of(&probe).matches(node) && taint_toleration(&probe, node).is_ok()
}

/// The node a daemon pod is for: its `nodeName`, or the node its affinity names.
fn node_of(pod: &Pod) -> Option<String> {
    if let Some(name) = pod
        .spec
        .as_ref()?
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
    {
        return Some(name);
    }
    named_nodes(pod)?.into_iter().next()
}

fn selects(set: &DaemonSet, pod: &Pod) -> bool {
    selector_selects(&set.spec.selector, pod)
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(set) = shared.sets.cache().get(key) else {
        shared.expectations.forget(key);
        return Ok(Action::Done);
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let hash = crate::revisions::sync(
        &shared.client,
        &shared.revisions,
        set.as_ref(),
        &set.spec.template,
        set.status.as_ref().and_then(|s| s.collision_count),
    )
    .await?
    .hash;
    let uid = set.uid().unwrap_or_default();
    // Claim: adopt matching orphans, release owned pods that no longer match (upstream's
    // `getDaemonPods`); pods being deleted are left as they are.
    let owned = claim_pods(
        &Api::namespaced(shared.client.clone(), &key.namespace),
        shared.pods.cache().in_namespace(&key.namespace),
        set.as_ref(),
        |pod| selects(&set, pod),
        |pod| pod.metadata.deletion_timestamp.is_none(),
    )
    .await?;
    let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for pod in owned {
        if let Some(node) = node_of(&pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let nodes = shared.nodes.cache().all();
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let rollout = Rollout::of(&set, hash.clone(), &nodes, now);

    let mut plan = Plan::default();
    let mut desired = 0;
    let mut on_desired_nodes: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for node in &nodes {
        let name = node.name_any();
        let pods: Vec<Arc<Pod>> = by_node.remove(&name).unwrap_or_default();
        let (terminating, live): (Vec<_>, Vec<_>) = pods
            .into_iter()
            .partition(|p| p.metadata.deletion_timestamp.is_some());
        if !should_run(&set, node) {
            plan.delete.extend(live);
            continue;
        }
        desired += 1;
        // Failed daemons are replaced.
        let (failed, live): (Vec<_>, Vec<_>) =
            live.into_iter().partition(|p| pods::phase(p) == "Failed");
        plan.delete.extend(failed);
        if live.is_empty() {
            // As upstream: while the node's daemon is still shutting down, its replacement
            // waits (it may need the same host ports); the pod's removal syncs again.
            if terminating.iter().all(|p| pods::is_finished(p)) {
                plan.create_on.push(name);
            }
        } else {
            let (keep, extra) = rollout.trim(live);
            plan.delete.extend(extra);
            on_desired_nodes.insert(name, keep);
        }
    }
    // Pods on nodes that no longer exist.
    for pods in by_node.into_values() {
        plan.delete.extend(
            pods.into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none()),
        );
    }

    if shared.expectations.satisfied(key) {
        // As upstream: the rollout moves only once nothing else is outstanding.
        if plan.is_empty() {
            plan = rollout.plan(&on_desired_nodes);
        }
        execute(shared, &set, &hash, key, plan).await?;
    }

    // Status.
    let mut current = 0;
    let mut misscheduled = 0;
    let mut ready = 0;
    let mut available = 0;
    let mut updated = 0;
    let mut by_node: BTreeMap<String, Arc<Pod>> = BTreeMap::new();
    for pod in shared.pods.cache().in_namespace(&key.namespace) {
        if controller_of(&pod.metadata).is_some_and(|o| o.uid == uid)
            && pod.metadata.deletion_timestamp.is_none()
        {
            if let Some(node) = node_of(&pod) {
                by_node.entry(node).or_insert(pod);
            }
        }
    }
    for (node, pod) in &by_node {
        let wanted = nodes
            .iter()
            .any(|n| n.name_any() == *node && should_run(&set, n));
        if !wanted {
            misscheduled += 1;
            continue;
        }
        current += 1;
        if pods::is_ready(pod) {
            ready += 1;
        }
        if pods::is_available(pod, min_ready, now) {
            available += 1;
        }
        if pod.labels().get(REVISION_LABEL) == Some(&hash) {
            updated += 1;
        }
    }
    let status = DaemonSetStatus {
        current_number_scheduled: current,
        desired_number_scheduled: desired,
        number_misscheduled: misscheduled,
        number_ready: ready,
        number_available: Some(available),
        number_unavailable: Some((desired - available).max(0)),
        updated_number_scheduled: Some(updated),
        observed_generation: set.metadata.generation,
        collision_count: set.status.as_ref().and_then(|s| s.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    let api: Api<DaemonSet> = Api::namespaced(shared.client.clone(), &key.namespace);
    k3rs_runtime::status::write(
        &api,
        &key.name,
        set.status.as_ref(),
        &status,
        &crate::patch_params(),
    )
    .await?;
    Ok(if min_ready > 0 && available < ready {
        Action::RequeueAfter(std::time::Duration::from_secs(1))
    } else {
        Action::Done
    })
}

/// Pods to create (one per node named) and to delete.
#[derive(Debug, Default)]
struct Plan {
    create_on: Vec<String>,
    delete: Vec<Arc<Pod>>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty()
    }
}

/// Expects, then makes, the plan's creations and deletions.
async fn execute(
    shared: &Shared,
    set: &DaemonSet,
    hash: &str,
    key: &ObjectKey,
    plan: Plan,
) -> Result<(), Error> {
    if plan.is_empty() {
        return Ok(());
    }
    shared.expectations.expect(
        key,
        plan.create_on.len(),
        plan.delete.iter().map(|p| p.name_any()),
    );
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &key.namespace);
    // As upstream: after a failed create the rest are skipped, every delete is tried, and
    // what is never issued (or failed) is observed at once, so it holds up no later sync.
    let mut failure = None;
    for node in &plan.create_on {
        if failure.is_some() {
            shared.expectations.creation_observed(key);
            continue;
        }
        match api.create(&post_params(), &new_pod(set, hash, node)).await {
            Ok(pod) => {
                shared
                    .events
                    .normal(
                        set,
                        "SuccessfulCreate",
                        format!("Created pod: {}", pod.name_any()),
                    )
                    .await;
            }
            Err(err) => {
                shared.expectations.creation_observed(key);
                shared
                    .events
                    .warning(set, "FailedCreate", format!("Error creating: {err}"))
                    .await;
                failure = Some(err.into());
            }
        }
    }
    for pod in &plan.delete {
        let deleted = delete_owned_pod(
            &shared.client,
            &shared.events,
            &shared.expectations,
            set,
            pod,
        )
        .await;
        if let Err(err) = deleted {
            failure.get_or_insert(err);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The update strategy applied to one sync: the current revision's hash, and for RollingUpdate
/// the surge and unavailability allowed (percentages of the nodes that should run a daemon,
/// rounded up, as upstream).
struct Rollout {
    hash: String,
    rolling: bool,
    max_surge: usize,
    max_unavailable: usize,
    min_ready: i32,
    now: Timestamp,
}

impl Rollout {
    fn of(set: &DaemonSet, hash: String, nodes: &[Arc<Node>], now: Timestamp) -> Rollout {
        let strategy = set.spec.update_strategy.as_ref();
        let rolling = strategy
            .and_then(|s| s.type_.as_deref())
            .unwrap_or("RollingUpdate")
            == "RollingUpdate";
        let desired = nodes.iter().filter(|n| should_run(set, n)).count();
        let desired = i32::try_from(desired).unwrap_or(i32::MAX);
        let params = strategy.and_then(|s| s.rolling_update.as_ref());
        let count = |value: Option<&IntOrString>, default: i32| {
            value
                .map_or(Ok(default), |v| scaled(v, desired, true))
                .unwrap_or(default)
                .max(0)
        };
        let max_surge = if rolling {
            count(params.and_then(|r| r.max_surge.as_ref()), 0)
        } else {
            0
        };
        let mut max_unavailable = count(params.and_then(|r| r.max_unavailable.as_ref()), 1);
        if max_surge == 0 {
            // Validation refuses both being zero; a percentage can still round to it.
            max_unavailable = max_unavailable.max(1);
        }
        Rollout {
            hash,
            rolling,
            max_surge: usize::try_from(max_surge).unwrap_or(0),
            max_unavailable: usize::try_from(max_unavailable).unwrap_or(1),
            min_ready: set.spec.min_ready_seconds.unwrap_or(0),
            now,
        }
    }

    fn is_new(&self, pod: &Pod) -> bool {
        pod.labels().get(REVISION_LABEL) == Some(&self.hash)
    }

    fn available(&self, pod: &Pod) -> bool {
        pods::is_available(pod, self.min_ready, self.now)
    }

    /// Of the live daemons on one node, those to keep and the extras: the oldest one, or with
    /// surge the oldest new and the oldest old one — and the old one too once the new one is
    /// available or the old one is not ready (upstream's `podsShouldBeOnNode`).
    fn trim(&self, mut live: Vec<Arc<Pod>>) -> (Vec<Arc<Pod>>, Vec<Arc<Pod>>) {
        live.sort_by_key(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second())
        });
        if self.max_surge == 0 {
            let extra = live.split_off(1.min(live.len()));
            return (live, extra);
        }
        let mut oldest_new: Option<Arc<Pod>> = None;
        let mut oldest_old: Option<Arc<Pod>> = None;
        let mut extra = Vec::new();
        for pod in live {
            let slot = if self.is_new(&pod) {
                &mut oldest_new
            } else {
                &mut oldest_old
            };
            if slot.is_none() {
                *slot = Some(pod);
            } else {
                extra.push(pod);
            }
        }
        let mut keep: Vec<Arc<Pod>> = oldest_new.iter().cloned().collect();
        match (&oldest_new, oldest_old) {
            (Some(new), Some(old)) if !pods::is_ready(&old) || self.available(new) => {
                extra.push(old);
            }
            (_, Some(old)) => keep.push(old),
            _ => {}
        }
        (keep, extra)
    }

    /// The next step of a RollingUpdate over the daemons kept on each node that should run one.
    /// Without surge: old daemons are deleted (unavailable ones first, they cost nothing) while
    /// no more than `maxUnavailable` nodes lack an available daemon; the manage pass then creates
    /// their replacements. With surge: a new daemon is started beside an available old one on at
    /// most `maxSurge` nodes at once, and the old one goes when the new one is available; an
    /// unavailable old daemon is replaced at once.
    fn plan(&self, on_nodes: &BTreeMap<String, Vec<Arc<Pod>>>) -> Plan {
        let mut plan = Plan::default();
        if !self.rolling {
            return plan;
        }
        if self.max_surge > 0 {
            let mut surging = 0;
            let mut candidates = Vec::new();
            for (node, pods) in on_nodes {
                let new = pods.iter().find(|p| self.is_new(p));
                let Some(old) = pods.iter().find(|p| !self.is_new(p)) else {
                    continue;
                };
                match new {
                    None if !self.available(old) => plan.create_on.push(node.clone()),
                    None => candidates.push(node.clone()),
                    Some(new) if !self.available(new) => surging += 1,
                    Some(_) => plan.delete.push(Arc::clone(old)),
                }
            }
            let room = self.max_surge.saturating_sub(surging);
            plan.create_on.extend(candidates.into_iter().take(room));
            return plan;
        }
        let unavailable = on_nodes
            .values()
            .filter(|pods| !pods.iter().any(|p| self.available(p)))
            .count();
        let mut budget = self.max_unavailable.saturating_sub(unavailable);
        let mut old: Vec<&Arc<Pod>> = on_nodes
            .values()
            .flatten()
            .filter(|p| !self.is_new(p))
            .collect();
        // Unavailable old pods go first: replacing them costs no availability.
        old.sort_by_key(|p| self.available(p));
        for pod in old {
            if self.available(pod) {
                if budget == 0 {
                    break;
                }
                budget -= 1;
            }
            plan.delete.push(Arc::clone(pod));
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(node_selector: serde_json::Value, tolerations: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "d1", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": node_selector, "tolerations": tolerations,
                    "containers": [{"name": "c", "image": "i"}]}}},
        }))
        .unwrap()
    }

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}),
        )
        .unwrap()
    }

    #[test]
    fn eligible_nodes_follow_selectors_and_taints() {
        let plain = set(json!(null), json!(null));
        assert!(should_run(&plain, &node("a", json!({}), json!(null))));
        let tainted = node(
            "b",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        assert!(!should_run(&plain, &tainted));
        let tolerant = set(
            json!(null),
            json!([{"key": "dedicated", "operator": "Exists"}]),
        );
        assert!(should_run(&tolerant, &tainted));
        // Not-ready and unreachable nodes keep their daemons.
        let unreachable = node(
            "c",
            json!({}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
        );
        assert!(should_run(&plain, &unreachable));
        let picky = set(json!({"disk": "ssd"}), json!(null));
        assert!(!should_run(
            &picky,
            &node("d", json!({"disk": "hdd"}), json!(null))
        ));
        assert!(should_run(
            &picky,
            &node("e", json!({"disk": "ssd"}), json!(null))
        ));
    }

    #[test]
    fn daemon_pods_name_their_node_and_revision() {
        let set = set(json!(null), json!(null));
        let pod = new_pod(&set, "abc", "n1");
        assert_eq!(node_of(&pod).as_deref(), Some("n1"));
        assert_eq!(
            pod.labels().get(REVISION_LABEL).map(String::as_str),
            Some("abc")
        );
        assert_eq!(
            pod.labels().get(GENERATION_LABEL).map(String::as_str),
            Some("2")
        );
        let tolerations = pod.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        assert!(tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unschedulable")));
    }
    /// A daemon of revision `hash`, created at second `created`, Ready or not.
    fn daemon(name: &str, hash: &str, created: i64, ready: bool) -> Arc<Pod> {
        let status = if ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {REVISION_LABEL: hash},
                    "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
                "status": {"conditions": [{"type": "Ready", "status": status,
                    "lastTransitionTime": "2020-01-01T00:00:00Z"}]},
            }))
            .unwrap(),
        )
    }

    fn rollout(surge: serde_json::Value, unavailable: serde_json::Value, nodes: usize) -> Rollout {
        let mut set = set(json!(null), json!(null));
        set.spec.update_strategy = serde_json::from_value(json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}))
        .unwrap();
        let nodes: Vec<Arc<Node>> = (0..nodes)
            .map(|i| Arc::new(node(&format!("n{i}"), json!({}), json!(null))))
            .collect();
        Rollout::of(&set, "new".into(), &nodes, Timestamp::now())
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn without_surge_old_daemons_go_within_max_unavailable_unavailable_first() {
        let rollout = rollout(json!(0), json!("50%"), 4);
        assert_eq!((rollout.max_surge, rollout.max_unavailable), (0, 2));
        let on_nodes = BTreeMap::from([
            ("n0".to_owned(), vec![daemon("a", "old", 1, true)]),
            ("n1".to_owned(), vec![daemon("b", "old", 1, false)]),
            ("n2".to_owned(), vec![daemon("c", "old", 1, true)]),
            ("n3".to_owned(), vec![daemon("d", "new", 1, true)]),
        ]);
        let plan = rollout.plan(&on_nodes);
        // n1 is already unavailable: it goes for free, and one available old daemon with it.
        assert_eq!(names(&plan.delete), ["b", "a"]);
        assert!(plan.create_on.is_empty());
    }

    #[test]
    fn with_surge_new_daemons_start_beside_old_ones_which_go_once_replaced() {
        let rollout = rollout(json!(1), json!(0), 3);
        assert_eq!((rollout.max_surge, rollout.max_unavailable), (1, 0));
        let fresh = BTreeMap::from([
            ("n0".to_owned(), vec![daemon("a", "old", 1, true)]),
            ("n1".to_owned(), vec![daemon("b", "old", 1, true)]),
            ("n2".to_owned(), vec![daemon("c", "old", 1, false)]),
        ]);
        let plan = rollout.plan(&fresh);
        // The unavailable n2 is replaced at once; one more node surges.
        assert_eq!(plan.create_on, ["n2", "n0"]);
        assert!(plan.delete.is_empty());

        let surging = BTreeMap::from([
            (
                "n0".to_owned(),
                vec![daemon("a", "old", 1, true), daemon("a2", "new", 2, false)],
            ),
            ("n1".to_owned(), vec![daemon("b", "old", 1, true)]),
        ]);
        assert!(rollout.plan(&surging).is_empty(), "the surge is used up");
        let replaced = BTreeMap::from([
            (
                "n0".to_owned(),
                vec![daemon("a", "old", 1, true), daemon("a2", "new", 2, true)],
            ),
            ("n1".to_owned(), vec![daemon("b", "old", 1, true)]),
        ]);
        let plan = rollout.plan(&replaced);
        assert_eq!(names(&plan.delete), ["a"]);
        assert_eq!(plan.create_on, ["n1"]);
    }

    #[test]
    fn trimming_keeps_one_daemon_or_with_surge_one_of_each_revision() {
        let pods = vec![
            daemon("new2", "new", 4, false),
            daemon("old1", "old", 1, true),
            daemon("new1", "new", 3, false),
            daemon("old2", "old", 2, true),
        ];
        let (keep, extra) = rollout(json!(0), json!(1), 1).trim(pods.clone());
        assert_eq!(names(&keep), ["old1"]);
        assert_eq!(names(&extra), ["old2", "new1", "new2"]);
        let (keep, extra) = rollout(json!(1), json!(0), 1).trim(pods);
        assert_eq!(names(&keep), ["new1", "old1"]);
        assert_eq!(names(&extra), ["old2", "new2"]);
        // Once the new daemon is available, the old one goes.
        let (keep, extra) = rollout(json!(1), json!(0), 1).trim(vec![
            daemon("old", "old", 1, true),
            daemon("new", "new", 2, true),
        ]);
        assert_eq!(
            (names(&keep), names(&extra)),
            (vec!["new".to_owned()], vec!["old".to_owned()])
        );
    }
}
