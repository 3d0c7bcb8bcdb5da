//! The hollow kubelet's pod loop: one task per node that follows the pods bound to it
//! (`spec.nodeName=<node>`) and its own Node (for `spec.podCIDR`), starts new pods (an IP, a
//! start time), writes their status through `pods/<name>/status` whenever it should change, and
//! finishes graceful deletions.
//!
//! It is level-triggered: every change and every due time leads to one sync of the pod, which
//! computes the status the pod should have now ([`crate::pod_status`]) and writes it only when it
//! differs from the pod's. A failed write is retried with back-off; a conflict re-reads the pod
//! first. The pods and the Node come from the node's own field-selected informers of the runtime
//! ([`NodeWatches`]): their watches are re-established with back-off and relisted when needed,
//! a relist reports the pods deleted meanwhile, and their tasks are supervised.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use k3rs_runtime::informer::{Change, Informer, Informers};
use k3rs_runtime::Health;
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::annotations::{self, Behaviour};
use crate::clock;
use crate::ip_pool::{IpPool, Ipv4Cidr};
use crate::pod_status::{pod_status, PodRun};
use crate::retry::{delay_after, is_transient, timed};
use crate::HollowError;

/// How long to wait before trying again to start a pod for which no IP is free.
const NO_IP_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// What the pod loop of one node needs to know.
#[derive(Clone, Debug)]
pub(crate) struct PodWorkerConfig {
    /// The node's name.
    pub(crate) node: String,
    /// The node's InternalIP: every pod's `hostIP`, and the `podIP` of host-network pods.
    pub(crate) host_ip: Ipv4Addr,
    /// Where pod IPs come from while the Node has no IPv4 `spec.podCIDR`.
    pub(crate) fallback_pod_range: Ipv4Cidr,
    /// How long a deleted pod's containers take to stop unless the pod says otherwise
    /// ([`crate::HollowNodeConfig::termination_delay`]).
    pub(crate) termination_delay: std::time::Duration,
}

/// One pod bound to the node, as the loop knows it.
#[derive(Debug)]
struct TrackedPod {
    /// The newest version seen (from the watch or a write's answer).
    pod: Pod,
    /// Set once the node has started the pod.
    run: Option<PodRun>,
    /// The IP the pod holds in the node's pool (not for host-network pods, nor after the pod
    /// finished).
    held_ip: Option<Ipv4Addr>,
    /// When to sync the pod next.
    due: Option<Instant>,
    /// Failed writes in a row, for back-off.
    failures: u32,
    /// The last status written and the one the server answered with: when the server stores a
    /// status slightly differently, the same write is not repeated for ever.
    last_write: Option<(PodStatus, Option<PodStatus>)>,
    /// The final delete was accepted.
    deleted: bool,
    /// When the node saw the pod's deletion (its containers' stop starts then).
    stopping_since: Option<Instant>,
}

impl TrackedPod {
    fn new(pod: Pod) -> Self {
        TrackedPod {
            pod,
            run: None,
            held_ip: None,
            due: Some(Instant::now()),
            stopping_since: None,
            failures: 0,
            last_write: None,
            deleted: false,
        }
    }

    fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.namespace().unwrap_or_default(),
            self.pod.name_any()
        )
    }

    fn retry_later(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.due = Some(Instant::now() + delay_after(self.failures));
    }
}

/// How a status write went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusWrite {
    /// Written, or nothing to write.
    Done,
    /// Failed for a reason that may pass (a conflict, no connection); a retry is scheduled.
    Retrying,
    /// The server refused the status; a retry is scheduled all the same.
    Refused,
    /// The pod is gone.
    Gone,
}

/// Whether the pod's status says it has finished for good.
fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn uses_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The start time and IPv4 podIP a pod already reports (started by an earlier hollow node of
/// the same name, or before this one lost track of it).
fn reported_run(pod: &Pod) -> Option<(k8s_openapi::jiff::Timestamp, Ipv4Addr)> {
    let status = pod.status.as_ref()?;
    let started = status.start_time.as_ref()?.0;
    let ip = status.pod_ip.as_deref()?.parse().ok()?;
    Some((started, ip))
}

/// The first IPv4 range of the Node's `spec.podCIDRs` (or `spec.podCIDR`).
fn node_pod_range(node: &Node) -> Option<Ipv4Cidr> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .find_map(|cidr| k3rs_api::cidr::parse_ipv4(cidr).ok())
}

/// What the node's informers tell its pod loop.
#[derive(Debug)]
enum Seen {
    /// A pod bound to the node was created or changed (or listed again).
    Pod(Arc<Pod>),
    /// The pod with this uid is gone.
    PodGone(String),
    /// The Node's IPv4 pod range, now (`None` once the Node is gone).
    PodRange(Option<Ipv4Cidr>),
}

/// Where the informers' handlers send what they see: the running pod loop's channel.
type Sink = Arc<Mutex<Option<mpsc::UnboundedSender<Seen>>>>;

fn send(sink: &Sink, seen: Seen) {
    let sink = sink
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(sender) = sink.as_ref() {
        // A closed channel: the loop is being restarted and will get the caches replayed.
        let _ = sender.send(seen);
    }
}

/// The watches of one node: a set of the runtime's informers of its own (a `Pod` informer
/// selected by `spec.nodeName=<node>`, a `Node` informer by `metadata.name=<node>`), supervised
/// and reporting to the node's health. Dropping it stops them.
///
/// Per node, not per process: each node sees only its own pods (as a kubelet does), so 50 nodes
/// hold 50 small caches rather than one of every pod.
pub(crate) struct NodeWatches {
    pods: Arc<Informer<Pod>>,
    node: Arc<Informer<Node>>,
    sink: Sink,
    /// Owns the informers' tasks.
    _informers: Informers,
}

impl std::fmt::Debug for NodeWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeWatches")
            .field("pods", &self.pods)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodeWatches {
    /// Starts the informers of `node`; their watches retry with the hollow back-off.
    pub(crate) fn start(client: Client, node: &str, health: Arc<Health>) -> Self {
        let informers = Informers::with_watch_backoff(client, health, crate::retry::backoff());
        let pods = informers.get_selected::<Pod>(&format!("spec.nodeName={node}"));
        let node = informers.get_selected::<Node>(&format!("metadata.name={node}"));
        let sink: Sink = Arc::default();
        pods.on_change({
            let sink = sink.clone();
            move |change| match change {
                Change::Applied { new, .. } => send(&sink, Seen::Pod(new.clone())),
                Change::Deleted(old) => {
                    if let Some(uid) = old.uid() {
                        send(&sink, Seen::PodGone(uid));
                    }
                }
            }
        });
        node.on_change({
            let sink = sink.clone();
            move |change| {
                let range = match change {
                    Change::Applied { new, .. } => node_pod_range(new),
                    Change::Deleted(_) => None,
                };
                send(&sink, Seen::PodRange(range));
            }
        });
        informers.start();
        NodeWatches {
            pods,
            node,
            sink,
            _informers: informers,
        }
    }

    /// A channel for a (re)started pod loop: what the caches hold now, then every change. It
    /// replaces the previous loop's channel.
    fn subscribe(&self) -> mpsc::UnboundedReceiver<Seen> {
        let (sender, receiver) = mpsc::unbounded_channel();
        // Under the sink's lock, which holds back the handlers: nothing is missed, and a change
        // already in the cache but not yet sent is only seen twice, newest last.
        let mut sink = self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for node in self.node.cache().all() {
            let _ = sender.send(Seen::PodRange(node_pod_range(&node)));
        }
        for pod in self.pods.cache().all() {
            let _ = sender.send(Seen::Pod(pod));
        }
        *sink = Some(sender);
        receiver
    }
}

/// The pod loop of one node.
struct PodWorker {
    config: PodWorkerConfig,
    client: Client,
    pods: HashMap<String, TrackedPod>,
    pool: IpPool,
    node_range: Option<Ipv4Cidr>,
}

/// Runs the pod loop of one node over `watches` until the task is aborted. A restarted loop
/// starts from the informers' caches and takes over what its pods report (start time, IP).
pub(crate) async fn run(client: Client, config: PodWorkerConfig, watches: Arc<NodeWatches>) {
    let mut seen = watches.subscribe();
    let mut worker = PodWorker {
        config,
        client,
        pods: HashMap::new(),
        pool: IpPool::default(),
        node_range: None,
    };
    loop {
        let wake = worker.next_due();
        tokio::select! {
            event = seen.recv() => match event {
                Some(event) => worker.on_seen(event),
                // Replaced by a newer loop.
                None => return,
            },
            () = sleep_until(wake) => {}
        }
        worker.sync_due().await;
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl PodWorker {
    fn next_due(&self) -> Option<Instant> {
        self.pods.values().filter_map(|tracked| tracked.due).min()
    }

    fn on_seen(&mut self, seen: Seen) {
        match seen {
            Seen::Pod(pod) => self.seen(Arc::unwrap_or_clone(pod)),
            Seen::PodGone(uid) => self.forget(&uid),
            Seen::PodRange(range) => {
                if range != self.node_range {
                    tracing::debug!(node = %self.config.node, ?range, "pod range");
                    self.node_range = range;
                }
            }
        }
    }

    /// Records the newest version of a pod and syncs it soon.
    fn seen(&mut self, pod: Pod) {
        let Some(uid) = pod.uid() else {
            return;
        };
        match self.pods.get_mut(&uid) {
            Some(tracked) => {
                tracked.pod = pod;
                tracked.due = Some(Instant::now());
            }
            None => {
                self.pods.insert(uid, TrackedPod::new(pod));
            }
        }
    }

    /// Drops a pod that is gone, giving its IP back.
    fn forget(&mut self, uid: &str) {
        if let Some(tracked) = self.pods.remove(uid) {
            if let Some(ip) = tracked.held_ip {
                self.pool.release(ip);
            }
        }
    }

    async fn sync_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, tracked)| tracked.due.is_some_and(|at| at <= now))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in due {
            self.sync(&uid).await;
        }
    }

    /// One level-triggered step for one pod.
    async fn sync(&mut self, uid: &str) {
        let Some(mut tracked) = self.pods.remove(uid) else {
            return;
        };
        tracked.due = None;
        if tracked.pod.metadata.deletion_timestamp.is_some() {
            self.finish_deletion(&mut tracked).await;
        } else if is_terminal(&tracked.pod) {
            // Finished pods are left alone; their IP is free again.
            self.release(&mut tracked);
        } else if self.start(&mut tracked) {
            self.write_status(&mut tracked).await;
        }
        self.pods.insert(uid.to_owned(), tracked);
    }

    /// Starts the pod if it is not running yet: start time and IP (taking over what it
    /// already reports when it can). False when no IP is free.
    fn start(&mut self, tracked: &mut TrackedPod) -> bool {
        if tracked.run.is_some() {
            return true;
        }
        let pod = &tracked.pod;
        for problem in annotations::behaviour(pod.metadata.annotations.as_ref()).1 {
            tracing::warn!(node = %self.config.node, pod = %tracked.key(), "{problem}");
        }
        let reported = reported_run(pod);
        let started = reported.map_or_else(clock::now, |(started, _)| started);
        let pod_ip = if uses_host_network(pod) {
            self.config.host_ip
        } else {
            let reusable = reported
                .map(|(_, ip)| ip)
                .filter(|ip| *ip != self.config.host_ip && self.pool.reserve(*ip));
            let ip = match reusable {
                Some(ip) => Some(ip),
                None => self
                    .pool
                    .allocate(self.node_range.unwrap_or(self.config.fallback_pod_range)),
            };
            let Some(ip) = ip else {
                tracing::warn!(node = %self.config.node, pod = %tracked.key(), "no free pod IP; will retry");
                tracked.due = Some(Instant::now() + NO_IP_RETRY);
                return false;
            };
            tracked.held_ip = Some(ip);
            ip
        };
        tracked.run = Some(PodRun {
            started,
            pod_ip,
            host_ip: self.config.host_ip,
            stopped: None,
        });
        true
    }

    fn release(&mut self, tracked: &mut TrackedPod) {
        if let Some(ip) = tracked.held_ip.take() {
            self.pool.release(ip);
        }
    }

    fn behaviour(tracked: &TrackedPod) -> Behaviour {
        annotations::behaviour(tracked.pod.metadata.annotations.as_ref()).0
    }

    /// Writes the status the pod should have now, if it differs from the pod's, and schedules
    /// the next sync for when it changes by itself.
    async fn write_status(&mut self, tracked: &mut TrackedPod) -> StatusWrite {
        let Some(run) = tracked.run.clone() else {
            return StatusWrite::Done;
        };
        let (desired, next_change) =
            pod_status(&tracked.pod, &run, Self::behaviour(tracked), clock::now());
        if matches!(desired.phase.as_deref(), Some("Succeeded" | "Failed")) {
            self.release(tracked);
        }
        let unchanged = tracked.pod.status.as_ref() == Some(&desired)
            || tracked
                .last_write
                .as_ref()
                .is_some_and(|(written, answer)| {
                    *written == desired && *answer == tracked.pod.status
                });
        if !unchanged {
            let mut pod = tracked.pod.clone();
            pod.status = Some(desired.clone());
            match self.put_status(&pod).await {
                Ok(written) => {
                    tracked.failures = 0;
                    tracked.last_write = Some((desired, written.status.clone()));
                    tracked.pod = written;
                }
                Err(err) => return self.on_write_error(tracked, err).await,
            }
        }
        tracked.due = next_change.map(|at| Instant::now() + clock::until(at));
        StatusWrite::Done
    }

    async fn put_status(&self, pod: &Pod) -> Result<Pod, HollowError> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let name = pod.name_any();
        let key = format!("{}/{name}", pod.namespace().unwrap_or_default());
        timed(|| format!("pod {key}: updating status"), async {
            api.replace_status(&name, &PostParams::default(), pod)
                .await
                .map_err(|source| HollowError::Pod {
                    pod: key.clone(),
                    action: "updating status",
                    source,
                })
        })
        .await
    }

    /// After a failed write: on a conflict read the pod again and retry at once (with
    /// back-off if it keeps happening); a pod that is gone waits for the watch's delete event;
    /// anything else is retried with back-off.
    async fn on_write_error(&mut self, tracked: &mut TrackedPod, err: HollowError) -> StatusWrite {
        match err.status_code() {
            Some(404) => {
                tracing::debug!(node = %self.config.node, "{err}");
                return StatusWrite::Gone;
            }
            Some(409) => {
                tracing::debug!(node = %self.config.node, "{err}; reading it again");
                let api: Api<Pod> = Api::namespaced(
                    self.client.clone(),
                    &tracked.pod.namespace().unwrap_or_default(),
                );
                if let Ok(Ok(Some(fresh))) = tokio::time::timeout(
                    crate::retry::CALL_TIMEOUT,
                    api.get_opt(&tracked.pod.name_any()),
                )
                .await
                {
                    if fresh.uid() == tracked.pod.uid() {
                        tracked.pod = fresh;
                    }
                }
            }
            _ => tracing::warn!(node = %self.config.node, "{err}; will retry"),
        }
        tracked.retry_later();
        if is_transient(&err) {
            StatusWrite::Retrying
        } else {
            StatusWrite::Refused
        }
    }

    /// A pod with a `deletionTimestamp`: stop its containers (a final status), then delete it
    /// for good (grace period 0, uid precondition), as the kubelet's status manager does.
    async fn finish_deletion(&mut self, tracked: &mut TrackedPod) {
        if tracked.deleted {
            return;
        }
        // Containers that take a while to stop keep running (and keep their readiness) for
        // that long, within the pod's grace period.
        let stop_after = stop_delay(
            Self::behaviour(tracked).stop_after,
            self.config.termination_delay,
            tracked.pod.metadata.deletion_grace_period_seconds,
        );
        if !stop_after.is_zero() && !is_terminal(&tracked.pod) {
            let since = *tracked.stopping_since.get_or_insert_with(Instant::now);
            if since.elapsed() < stop_after {
                tracked.due = Some(since + stop_after);
                return;
            }
        }
        if !is_terminal(&tracked.pod) {
            if let Some(run) = tracked.run.as_mut() {
                run.stopped.get_or_insert_with(clock::now);
                match self.write_status(tracked).await {
                    // The final status is a courtesy to watchers: one the server refuses does
                    // not hold up the deletion.
                    StatusWrite::Done | StatusWrite::Refused => {}
                    StatusWrite::Retrying | StatusWrite::Gone => return,
                }
            }
        }
        self.release(tracked);
        let key = tracked.key();
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            &tracked.pod.namespace().unwrap_or_default(),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: tracked.pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = tracked.pod.name_any();
        let result = timed(|| format!("pod {key}: deleting"), async {
            api.delete(&name, &params)
                .await
                .map_err(|source| HollowError::Pod {
                    pod: key.clone(),
                    action: "deleting",
                    source,
                })
        })
        .await;
        match result {
            Ok(_) => {
                tracked.deleted = true;
                tracing::debug!(node = %self.config.node, pod = %key, "deleted");
            }
            // Gone already, or replaced by a pod of the same name (the uid precondition).
            Err(err) if matches!(err.status_code(), Some(404 | 409)) => tracked.deleted = true,
            Err(err) => {
                tracing::warn!(node = %self.config.node, "{err}; will retry");
                tracked.retry_later();
            }
        }
    }
}

/// How long a deleted pod's containers take to stop: the pod's own `stop_after` seconds (its
/// annotation) or else the node's `termination_delay`, at most the pod's deletion grace period
/// (a kubelet kills what outlives it).
fn stop_delay(
    stop_after: Option<u64>,
    termination_delay: std::time::Duration,
    grace_seconds: Option<i64>,
) -> std::time::Duration {
    let wanted = stop_after.map_or(termination_delay, std::time::Duration::from_secs);
    match grace_seconds {
        Some(grace) => wanted.min(std::time::Duration::from_secs(
            u64::try_from(grace).unwrap_or(0),
        )),
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_first_ipv4_pod_range() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"podCIDR": "fd00::/64", "podCIDRs": ["fd00::/64", "10.42.7.0/24"]},
        }))
        .unwrap();
        assert_eq!(node_pod_range(&node).unwrap().to_string(), "10.42.7.0/24");
        let bare: Node = serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap();
        assert_eq!(node_pod_range(&bare), None);
    }

    #[test]
    fn takes_over_what_a_pod_reports() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"startTime": "2026-01-01T00:00:00Z", "podIP": "10.42.0.9", "phase": "Running"},
        }))
        .unwrap();
        let (started, ip) = reported_run(&pod).unwrap();
        assert_eq!(started.to_string(), "2026-01-01T00:00:00Z");
        assert_eq!(ip, Ipv4Addr::new(10, 42, 0, 9));
        assert!(!is_terminal(&pod));
        let pending: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"hostNetwork": true, "containers": []},
            "status": {"phase": "Failed"},
        }))
        .unwrap();
        assert_eq!(reported_run(&pending), None);
        assert!(is_terminal(&pending));
        assert!(uses_host_network(&pending));
    }

    #[test]
    fn containers_stop_within_the_grace_period() {
        use std::time::Duration;
        let node_delay = Duration::from_secs(120);
        // The node's delay, cut to the pod's grace period.
        assert_eq!(
            stop_delay(None, node_delay, Some(60)),
            Duration::from_secs(60)
        );
        assert_eq!(
            stop_delay(None, Duration::from_secs(5), Some(60)),
            Duration::from_secs(5)
        );
        // The pod's annotation wins over the node's delay.
        assert_eq!(
            stop_delay(Some(7), node_delay, Some(30)),
            Duration::from_secs(7)
        );
        // A forced delete (grace 0) or no delay stops at once.
        assert_eq!(stop_delay(None, node_delay, Some(0)), Duration::ZERO);
        assert_eq!(stop_delay(None, Duration::ZERO, Some(30)), Duration::ZERO);
        assert_eq!(
            stop_delay(Some(9), Duration::ZERO, None),
            Duration::from_secs(9)
        );
    }
}
