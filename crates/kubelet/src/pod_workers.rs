//! One task per pod (upstream's pod workers): each syncs its pod when the pod changes, when the
//! runtime's state of it changes (the relist, upstream's PLEG), when a back-off ends, and every
//! [`RESYNC`]; a pod the API no longer has is removed from the runtime and the worker ends. A
//! sync that panics costs one retry, never the worker.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::FutureExt;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use tokio::sync::watch;

use crate::pod_runtime::RuntimeSnapshot;
use crate::pod_sync::{PodContext, PodWorkerState, RESYNC};

/// How often the runtime is listed for changes.
pub const RELIST: Duration = Duration::from_secs(1);

/// What a worker is told: the newest pod (`None` once the API has no pod of this uid) and a
/// counter that other wake-ups bump.
#[derive(Clone, Debug, Default)]
struct Input {
    pod: Option<Arc<Pod>>,
    pokes: u64,
}

#[derive(Debug)]
struct Worker {
    input: watch::Sender<Input>,
}

/// The pod workers of one node.
#[derive(Debug)]
pub struct PodWorkers {
    ctx: Arc<PodContext>,
    workers: Mutex<HashMap<String, Worker>>,
    tasks: tokio::task::JoinSet<()>,
}

/// Shared handle to the workers (the informer handlers and the relist hold it).
pub type Workers = Arc<Mutex<PodWorkers>>;

impl PodWorkers {
    pub fn new(ctx: Arc<PodContext>) -> Workers {
        Arc::new(Mutex::new(PodWorkers {
            ctx,
            workers: Mutex::new(HashMap::new()),
            tasks: tokio::task::JoinSet::new(),
        }))
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pod was created or changed.
    pub fn update(this: &Workers, pod: Arc<Pod>) {
        let Some(uid) = pod.uid() else {
            return;
        };
        Self::send(this, &uid, Some(pod));
    }

    /// The API no longer has the pod with `uid`.
    pub fn gone(this: &Workers, uid: &str) {
        Self::send(this, uid, None);
    }

    /// Wakes the worker of `uid` (its runtime state changed); false when it has none.
    pub fn poke(this: &Workers, uid: &str) -> bool {
        let guard = this.lock().unwrap_or_else(PoisonError::into_inner);
        let workers = guard.workers();
        match workers.get(uid) {
            Some(worker) => {
                worker.input.send_modify(|input| input.pokes += 1);
                true
            }
            None => false,
        }
    }

    fn send(this: &Workers, uid: &str, pod: Option<Arc<Pod>>) {
        let mut guard = this.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(worker) = guard.workers().get(uid) {
            worker.input.send_modify(|input| input.pod = pod);
            return;
        }
        let (sender, receiver) = watch::channel(Input { pod, pokes: 0 });
        guard
            .workers()
            .insert(uid.to_owned(), Worker { input: sender });
        let ctx = guard.ctx.clone();
        let weak = Arc::downgrade(this);
        let uid = uid.to_owned();
        guard.tasks.spawn(run_worker(ctx, uid, receiver, weak));
        // Reap the workers that ended.
        while guard.tasks.try_join_next().is_some() {}
    }

    /// Whether a worker runs for `uid`.
    pub fn has(this: &Workers, uid: &str) -> bool {
        let guard = this.lock().unwrap_or_else(PoisonError::into_inner);
        let found = guard.workers().contains_key(uid);
        found
    }
}

fn until(at: Timestamp) -> Duration {
    crate::clock::until(at)
}

async fn run_worker(
    ctx: Arc<PodContext>,
    uid: String,
    mut input: watch::Receiver<Input>,
    workers: Weak<Mutex<PodWorkers>>,
) {
    let mut state = PodWorkerState::default();
    let mut failures = 0u32;
    loop {
        let current = input.borrow_and_update().clone();
        let Some(pod) = current.pod else {
            ctx.clean_up(&uid).await;
            break;
        };
        let sync = AssertUnwindSafe(ctx.sync(&pod, &mut state))
            .catch_unwind()
            .await;
        let mut wake = state.take_wake().map_or(RESYNC, until).min(RESYNC);
        if sync.is_err() {
            failures = failures.saturating_add(1);
            let delay = k3rs_runtime::backoff::delay(
                k3rs_runtime::backoff::jittered(
                    Duration::from_millis(100),
                    Duration::from_secs(10),
                ),
                failures,
            );
            tracing::error!(pod = %pod.name_any(), failures, "pod sync panicked; retrying in {delay:?}");
            wake = wake.min(delay);
        } else {
            failures = 0;
        }
        tokio::select! {
            changed = input.changed() => if changed.is_err() {
                break;
            },
            () = tokio::time::sleep(wake) => {}
        }
    }
    if let Some(workers) = workers.upgrade() {
        let guard = workers.lock().unwrap_or_else(PoisonError::into_inner);
        guard.workers().remove(&uid);
    }
}

/// A cheap fingerprint of what the runtime holds for each pod: ids and states of its sandboxes
/// and containers.
fn fingerprints(snapshot: &RuntimeSnapshot) -> HashMap<String, Vec<(String, i32)>> {
    let mut out: HashMap<String, Vec<(String, i32)>> = HashMap::new();
    for (uid, sandboxes) in &snapshot.sandboxes {
        let entry = out.entry(uid.clone()).or_default();
        entry.extend(
            sandboxes
                .iter()
                .map(|s: &cri::PodSandbox| (s.id.clone(), s.state)),
        );
    }
    for (uid, containers) in &snapshot.containers {
        let entry = out.entry(uid.clone()).or_default();
        entry.extend(
            containers
                .iter()
                .map(|c: &cri::Container| (c.id.clone(), c.state)),
        );
    }
    for entry in out.values_mut() {
        entry.sort();
    }
    out
}

/// Lists the runtime every [`RELIST`] and wakes the workers of pods whose containers or
/// sandboxes changed; removes what belongs to pods the API does not have (`known` says whether
/// it has a pod with that uid; asked only once the pod cache has synced).
pub async fn relist(
    workers: Workers,
    runtime: Arc<dyn crate::runtime::Runtime>,
    known: impl Fn(&str) -> bool,
) {
    let mut previous: HashMap<String, Vec<(String, i32)>> = HashMap::new();
    let mut interval = tokio::time::interval(RELIST);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let snapshot = match RuntimeSnapshot::read(runtime.as_ref()).await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                tracing::debug!("relist: {err}");
                continue;
            }
        };
        let current = fingerprints(&snapshot);
        for (uid, fingerprint) in &current {
            if previous.get(uid) == Some(fingerprint) && PodWorkers::has(&workers, uid) {
                continue;
            }
            if !PodWorkers::poke(&workers, uid) && !known(uid) {
                tracing::info!(pod_uid = %uid, "removing the containers of a pod the API does not have");
                PodWorkers::gone(&workers, uid);
            }
        }
        previous = current;
    }
}
