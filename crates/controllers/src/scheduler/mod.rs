//! The scheduler (upstream's `kube-scheduler` with its default profile): pods of
//! `schedulerName: default-scheduler` without a node are placed one at a time — filters, scores,
//! a random pick among the best — and bound through `pods/<name>/binding`; a pod no node can
//! take gets `PodScheduled=False` (`Unschedulable`) and a `FailedScheduling` event saying why.
//!
//! It writes as `system:kube-scheduler` (user agent `kube-scheduler`) with its own client; it
//! reads the process's shared informers. Cycles run one after another on a single worker over
//! [`state::ClusterState`], where a placed pod is assumed at once, so binding runs in the
//! background while the next pod is placed. A pod that fits nowhere waits with back-off
//! (1 s doubling to 10 s) until a change could help it — a node added or changed, a pod gone,
//! a volume claim changed — or the minute's flush.
//!
//! The pure parts live beside this file: [`cycle`] (one scheduling cycle), [`filters`],
//! [`scores`], [`spread`], [`nodeaffinity`], [`podaffinity`], [`volumes`], [`resources`],
//! [`diagnosis`] (upstream's `0/N nodes are available` message) and [`state`].

pub mod cycle;
pub mod diagnosis;
pub mod filters;
pub mod nodeaffinity;
pub mod podaffinity;
pub mod resources;
pub mod scores;
pub mod spread;
pub mod state;
pub mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Binding, Namespace, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::pods;
use crate::Context;
use cycle::{Incoming, Lookups};
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::queue::WorkQueue;
use k3rs_runtime::runner::Action;
use k3rs_runtime::supervisor::supervise;
use k3rs_runtime::Controller;
use state::ClusterState;

/// The `schedulerName` this scheduler serves (the API server's default).
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// The first wait of a pod that could not be placed (upstream's `podInitialBackoff`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest (upstream's `podMaxBackoff`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often every waiting pod is tried again, whatever happened.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// How long an assumed pod whose binding was written may go unconfirmed by the watch.
pub const ASSUMED_TTL: Duration = Duration::from_secs(30);
/// Bindings in flight at once.
const BIND_CONCURRENCY: usize = 32;
/// Events carry at most this many characters of a message (upstream's `truncateMessage`).
const EVENT_MESSAGE_LIMIT: usize = 1024;

/// The wait before attempt number `attempts + 1` of a pod that failed `attempts` times.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// Whether this scheduler should place `pod`: ours, not on a node, not being deleted, not
/// finished, and not held by scheduling gates.
pub fn wants_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.scheduler_name.as_deref().unwrap_or(SCHEDULER_NAME) == SCHEDULER_NAME
        && !pods::is_scheduled(pod)
        && pod.metadata.deletion_timestamp.is_none()
        && !pods::is_finished(pod)
        && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
}

/// A pod that could not be placed, waiting.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    attempts: u32,
    retry_at: Instant,
    /// It has required pod affinity: a new pod elsewhere may be what it waits for.
    wants_pods: bool,
}

/// The informers the scheduler reads.
#[derive(Clone)]
struct Caches {
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    namespaces: Arc<Informer<Namespace>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    volumes: Arc<Informer<PersistentVolume>>,
    classes: Arc<Informer<StorageClass>>,
    services: Arc<Informer<Service>>,
    replication_controllers: Arc<Informer<ReplicationController>>,
    replica_sets: Arc<Informer<ReplicaSet>>,
    stateful_sets: Arc<Informer<StatefulSet>>,
}

impl Caches {
    fn of(ctx: &Context) -> Caches {
        let informers = &ctx.informers;
        Caches {
            pods: informers.get(),
            nodes: informers.get(),
            namespaces: informers.get(),
            claims: informers.get(),
            volumes: informers.get(),
            classes: informers.get(),
            services: informers.get(),
            replication_controllers: informers.get(),
            replica_sets: informers.get(),
            stateful_sets: informers.get(),
        }
    }

    async fn wait_synced(&self) {
        self.pods.wait_synced().await;
        self.nodes.wait_synced().await;
        self.namespaces.wait_synced().await;
        self.claims.wait_synced().await;
        self.volumes.wait_synced().await;
        self.classes.wait_synced().await;
        self.services.wait_synced().await;
        self.replication_controllers.wait_synced().await;
        self.replica_sets.wait_synced().await;
        self.stateful_sets.wait_synced().await;
    }

    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces
            .cache()
            .get_named("", namespace)
            .map(|n| n.metadata.labels.clone().unwrap_or_default())
    }
}

impl volumes::VolumeObjects for Caches {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.cache().get_named(namespace, name)
    }
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.cache().get_named("", name)
    }
    fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.classes.cache().get_named("", name)
    }
}

impl spread::Workloads for Caches {
    fn services(&self, namespace: &str) -> Vec<Arc<Service>> {
        self.services.cache().in_namespace(namespace)
    }
    fn replication_controller(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<ReplicationController>> {
        self.replication_controllers
            .cache()
            .get_named(namespace, name)
    }
    fn replica_set(&self, namespace: &str, name: &str) -> Option<Arc<ReplicaSet>> {
        self.replica_sets.cache().get_named(namespace, name)
    }
    fn stateful_set(&self, namespace: &str, name: &str) -> Option<Arc<StatefulSet>> {
        self.stateful_sets.cache().get_named(namespace, name)
    }
}

/// Everything the scheduler's handlers, worker and background tasks share.
struct Scheduler {
    /// Writes as `system:kube-scheduler`.
    client: Client,
    recorder: Recorder,
    caches: Caches,
    state: Mutex<ClusterState>,
    waiting: Mutex<HashMap<ObjectKey, Waiting>>,
    queue: Arc<WorkQueue<ObjectKey>>,
    binds: Semaphore,
}

impl Scheduler {
    fn state(&self) -> MutexGuard<'_, ClusterState> {
        // Every change to the state is one call that cannot panic half-way in practice; a
        // poisoned lock still holds a usable state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<ObjectKey, Waiting>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues the waiting pods (all, or those waiting for other pods); each still sits out the
    /// rest of its back-off.
    fn wake(&self, only_pod_followers: bool) {
        let keys: Vec<ObjectKey> = self
            .waiting()
            .iter()
            .filter(|(_, w)| !only_pod_followers || w.wants_pods)
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            self.queue.add(key);
        }
    }

    fn on_pod(&self, change: &Change<Pod>) {
        match change {
            Change::Applied { old, new } => {
                let key = ObjectKey::of(new.as_ref());
                self.state().apply_pod(&key, new);
                let was_scheduled = old.as_deref().is_some_and(pods::is_scheduled);
                if pods::is_scheduled(new) {
                    if !was_scheduled {
                        self.waiting().remove(&key);
                        // A new pod in a domain may be what a pod with affinity waits for.
                        self.wake(true);
                    } else if pods::is_finished(new)
                        && !old.as_deref().is_some_and(pods::is_finished)
                    {
                        // A finished pod frees its node.
                        self.wake(false);
                    }
                    return;
                }
                // Our own status writes change only status: not a reason to try again.
                let changed = old.as_deref().is_none_or(|old| {
                    old.spec != new.spec || old.metadata.labels != new.metadata.labels
                });
                if wants_scheduling(new) && changed {
                    self.queue.add(key);
                }
            }
            Change::Deleted(old) => {
                let key = ObjectKey::of(old.as_ref());
                self.state().remove_pod(&key);
                self.waiting().remove(&key);
                if pods::is_scheduled(old) {
                    self.wake(false);
                }
            }
        }
    }

    fn on_node(&self, change: &Change<Node>) {
        match change {
            Change::Applied { old, new } => {
                self.state().set_node(new.clone());
                // Heartbeats change only conditions: not a reason to try again.
                let relevant = old.as_deref().is_none_or(|old| {
                    old.metadata.labels != new.metadata.labels
                        || old.spec != new.spec
                        || old.status.as_ref().and_then(|s| s.allocatable.as_ref())
                            != new.status.as_ref().and_then(|s| s.allocatable.as_ref())
                });
                if relevant {
                    self.wake(false);
                }
            }
            Change::Deleted(old) => {
                self.state()
                    .remove_node(old.metadata.name.as_deref().unwrap_or(""));
            }
        }
    }

    /// Rebuilds the state from the caches: the informers mark themselves synced before their
    /// first list reaches the handlers, so the first cycle must not rely on the handlers alone.
    fn resync(&self) {
        let nodes = self.caches.nodes.cache().all();
        let pods = self.caches.pods.cache().all();
        let mut state = self.state();
        for node in nodes {
            state.set_node(node);
        }
        for pod in &pods {
            state.apply_pod(&ObjectKey::of(pod.as_ref()), pod);
        }
        drop(state);
        for pod in pods.iter().filter(|p| wants_scheduling(p)) {
            self.queue.add(ObjectKey::of(pod.as_ref()));
        }
    }

    /// One scheduling cycle for the pod at `key`.
    async fn schedule(self: &Arc<Self>, key: ObjectKey) -> Result<Action, Error> {
        let Some(pod) = self.caches.pods.cache().get(&key) else {
            self.waiting().remove(&key);
            return Ok(Action::Done);
        };
        if !wants_scheduling(&pod) {
            self.waiting().remove(&key);
            return Ok(Action::Done);
        }
        if self.state().is_assumed(&key) {
            // Placed already; its binding is on the way.
            return Ok(Action::Done);
        }
        let now = Instant::now();
        if let Some(waiting) = self.waiting().get(&key) {
            if waiting.retry_at > now {
                return Ok(Action::RequeueAfter(waiting.retry_at - now));
            }
        }
        let namespace_labels = |ns: &str| self.caches.namespace_labels(ns);
        let lookups = Lookups {
            volumes: &self.caches,
            workloads: &self.caches,
            namespace_labels: &namespace_labels,
        };
        let incoming = Incoming::new(&pod, lookups);
        let outcome = {
            let mut state = self.state();
            let mut pick = |n: usize| rand::random_range(0..n.max(1));
            let outcome = cycle::schedule(&incoming, &state, &namespace_labels, &mut pick);
            if let Ok(node) = &outcome {
                state.assume(&key, &pod, node);
            }
            outcome
        };
        match outcome {
            Ok(node) => {
                tracing::debug!(pod = %key, node, "scheduled");
                let scheduler = self.clone();
                tokio::spawn(async move { scheduler.bind(key, pod, node).await });
            }
            Err(fit) => {
                let message = fit.message();
                tracing::debug!(pod = %key, %message, "unschedulable");
                let wants_pods = !podaffinity::required_affinity(&pod).is_empty();
                self.wait(&key, wants_pods);
                let scheduler = self.clone();
                tokio::spawn(async move { scheduler.report_unschedulable(&pod, message).await });
            }
        }
        Ok(Action::Done)
    }

    /// Counts a failed attempt; returns the back-off before the next.
    fn wait(&self, key: &ObjectKey, wants_pods: bool) -> Duration {
        let mut waiting = self.waiting();
        let attempts = waiting.get(key).map_or(0, |w| w.attempts) + 1;
        let delay = backoff(attempts);
        waiting.insert(
            key.clone(),
            Waiting {
                attempts,
                retry_at: Instant::now() + delay,
                wants_pods,
            },
        );
        delay
    }

    /// Writes the binding of an assumed pod; on failure forgets the assumption and tries again
    /// after the back-off.
    async fn bind(self: Arc<Self>, key: ObjectKey, pod: Arc<Pod>, node: String) {
        let permit = self.binds.acquire().await;
        let namespace = key.namespace.clone();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(key.name.clone()),
                namespace: Some(namespace.clone()),
                uid: pod.metadata.uid.clone(),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Node".to_owned()),
                name: Some(node.clone()),
                ..ObjectReference::default()
            },
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let result: Result<serde_json::Value, kube::Error> = pods
            .create_subresource("binding", &key.name, &PostParams::default(), &binding)
            .await;
        // Events need not hold back the next binding.
        drop(permit);
        match result.map_err(Error::from) {
            Ok(_) => {
                self.state().finish_binding(&key, Instant::now());
                self.waiting().remove(&key);
                self.recorder
                    .normal(
                        pod.as_ref(),
                        "Scheduled",
                        format!("Successfully assigned {key} to {node}"),
                    )
                    .await;
            }
            Err(err) => {
                self.state().forget(&key);
                if err.is_not_found() {
                    // The pod is gone.
                    return;
                }
                tracing::debug!(pod = %key, node, %err, "binding failed");
                let delay = self.wait(&key, false);
                self.queue.add_after(key, delay);
                let message =
                    format!("Binding rejected: running Bind plugin \"DefaultBinder\": {err}");
                self.recorder
                    .warning(pod.as_ref(), "FailedScheduling", truncate(message))
                    .await;
            }
        }
    }

    /// Sets `PodScheduled=False` (when it says something else) and records `FailedScheduling`.
    async fn report_unschedulable(self: Arc<Self>, pod: &Pod, message: String) {
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        });
        if !unchanged {
            let since = current
                .filter(|c| c.status == "False")
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(Timestamp::now()));
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": since,
            }]}});
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
            let name = pod.metadata.name.as_deref().unwrap_or("");
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            if let Err(err) = pods
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                // The next attempt writes it again; a pod that went away needs nothing.
                tracing::debug!(pod = %ObjectKey::of(pod), %err, "updating PodScheduled failed");
            }
        }
        self.recorder
            .warning(pod, "FailedScheduling", truncate(message))
            .await;
    }

    /// The background work: assumed pods that expired, and the minute's flush.
    async fn housekeeping(self: Arc<Self>) {
        let mut expiry = tokio::time::interval(Duration::from_secs(5));
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        loop {
            tokio::select! {
                _ = expiry.tick() => {
                    let expired = self.state().expire(Instant::now(), ASSUMED_TTL);
                    for key in expired {
                        tracing::warn!(pod = %key, "assumed pod was never confirmed by the watch; placing it again");
                        self.queue.add(key);
                    }
                }
                _ = flush.tick() => self.wake(false),
            }
        }
    }
}

/// Upstream's `truncateMessage`: events keep at most 1024 characters.
fn truncate(message: String) -> String {
    if message.chars().count() <= EVENT_MESSAGE_LIMIT {
        return message;
    }
    let mut short: String = message.chars().take(EVENT_MESSAGE_LIMIT - 3).collect();
    short.push_str("...");
    short
}

/// A handler calling `on`: the scheduler's handlers queue pods themselves (a node or volume
/// change wakes the pods waiting on one), so it returns no key.
fn handler<K: 'static>(
    scheduler: &Arc<Scheduler>,
    on: fn(&Scheduler, &Change<K>),
) -> impl Fn(&Change<K>) -> Option<ObjectKey> + Send + Sync + 'static {
    let scheduler = scheduler.clone();
    move |change| {
        on(&scheduler, change);
        None
    }
}

/// Registers the scheduler's handlers and starts its worker; `client` is the scheduler's own
/// (`system:kube-scheduler`).
pub(crate) fn start(ctx: &Context, client: Client) -> Supervised {
    let caches = Caches::of(ctx);
    let controller = Controller::new(&ctx.runtime, SCHEDULER_NAME);
    let scheduler = Arc::new(Scheduler {
        recorder: Recorder::new(client.clone(), SCHEDULER_NAME),
        client,
        caches: caches.clone(),
        state: Mutex::new(ClusterState::new()),
        waiting: Mutex::new(HashMap::new()),
        queue: controller.queue(),
        binds: Semaphore::new(BIND_CONCURRENCY),
    });
    let workers = controller
        .watches(&caches.pods, handler(&scheduler, Scheduler::on_pod))
        .watches(&caches.nodes, handler(&scheduler, Scheduler::on_node))
        // A claim bound, a volume or class added: pods waiting on volumes may fit now.
        .watches(&caches.claims, handler(&scheduler, |s, _| s.wake(false)))
        .watches(&caches.volumes, handler(&scheduler, |s, _| s.wake(false)))
        .watches(&caches.classes, handler(&scheduler, |s, _| s.wake(false)))
        .reads(&caches.namespaces)
        .reads(&caches.services)
        .reads(&caches.replication_controllers)
        .reads(&caches.replica_sets)
        .reads(&caches.stateful_sets)
        .after_sync({
            let scheduler = scheduler.clone();
            move || scheduler.resync()
        })
        // One worker: cycles are serial, as upstream's, so each sees every placement before it.
        .workers(1)
        .run({
            let scheduler = scheduler.clone();
            move |key: ObjectKey| {
                let scheduler = scheduler.clone();
                async move { scheduler.schedule(key).await }
            }
        });
    let housekeeping = supervise(
        format!("{SCHEDULER_NAME} housekeeping"),
        ctx.runtime.health().clone(),
        move || {
            let scheduler = scheduler.clone();
            async move {
                scheduler.caches.wait_synced().await;
                scheduler.housekeeping().await;
            }
        },
    );
    Supervised::all(vec![workers, Supervised(housekeeping)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn back_off_doubles_from_one_to_ten_seconds() {
        let waits: Vec<u64> = (1..=6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn which_pods_are_ours() {
        let pod = |spec: serde_json::Value, extra: serde_json::Value| -> Pod {
            let mut value = json!({"metadata": {"name": "p"}, "spec": spec});
            if let Some(extra) = extra.as_object() {
                for (k, v) in extra {
                    value[k] = v.clone();
                }
            }
            serde_json::from_value(value).unwrap()
        };
        let plain = json!({"containers": []});
        assert!(wants_scheduling(&pod(plain.clone(), json!({}))));
        assert!(wants_scheduling(&pod(
            json!({"containers": [], "schedulerName": "default-scheduler"}),
            json!({})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"containers": [], "schedulerName": "other"}),
            json!({})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"containers": [], "nodeName": "n1"}),
            json!({})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"containers": [], "schedulingGates": [{"name": "g"}]}),
            json!({})
        )));
        assert!(!wants_scheduling(&pod(
            plain.clone(),
            json!({"status": {"phase": "Failed"}})
        )));
        let mut deleting = pod(plain, json!({}));
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert!(!wants_scheduling(&deleting));
    }

    #[test]
    fn event_messages_are_truncated() {
        assert_eq!(truncate("short".into()), "short");
        let long = truncate("x".repeat(2000));
        assert_eq!(long.len(), EVENT_MESSAGE_LIMIT);
        assert!(long.ends_with("..."));
    }
}
