//! The controller builder, in kube-runtime's shape: a controller says which informers queue which
//! keys ([`Controller::watches`], [`Controller::owns`]), how many workers it runs, and how it
//! reconciles a key ([`Controller::run`]); the builder makes the queue, registers the handlers,
//! waits for every watched informer to sync, and starts supervised workers.
//!
//! ```ignore
//! Controller::new(&runtime, "replicaset-controller")
//!     .watches(&replica_sets, |change| Some(ObjectKey::of(change.object().as_ref())))
//!     .owns::<ReplicaSet, Pod>(&pods)
//!     .workers(5)
//!     .run(move |key| reconcile(state.clone(), key))
//! ```

use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures::future::BoxFuture;
use kube::Resource;

use crate::cache::ObjectKey;
use crate::health::Health;
use crate::informer::{Change, Informer};
use crate::queue::WorkQueue;
use crate::runner::{spawn_workers, Action};
use crate::supervisor::Supervised;
use crate::Runtime;

/// A controller being put together; [`Controller::run`] starts it. `T` is its queue's key.
pub struct Controller<T = ObjectKey> {
    name: &'static str,
    health: Arc<Health>,
    queue: Arc<WorkQueue<T>>,
    synced: Vec<BoxFuture<'static, ()>>,
    workers: usize,
}

impl<T> Debug for Controller<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name)
            .field("informers", &self.synced.len())
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl<T> Controller<T>
where
    T: Clone + Eq + Hash + Send + Sync + Display + 'static,
{
    /// A controller named `name` (its log and health name) on `runtime`, with one worker.
    pub fn new(runtime: &Runtime, name: &'static str) -> Self {
        Self {
            name,
            health: runtime.health().clone(),
            queue: WorkQueue::new(),
            synced: Vec::new(),
            workers: 1,
        }
    }

    /// The controller's work queue, for handlers and reconciles that queue keys themselves
    /// (a delayed look, a key of another kind's change).
    pub fn queue(&self) -> Arc<WorkQueue<T>> {
        self.queue.clone()
    }

    /// Queues the keys `map` returns for each change `informer` sees; the workers start only
    /// once `informer` is synced. `map` runs on the informer's task: it must be quick.
    pub fn watches<K, I>(
        mut self,
        informer: &Arc<Informer<K>>,
        map: impl Fn(&Change<K>) -> I + Send + Sync + 'static,
    ) -> Self
    where
        K: Resource + Send + Sync + 'static,
        I: IntoIterator<Item = T>,
    {
        let queue = self.queue.clone();
        informer.on_change(move |change| {
            for key in map(change) {
                queue.add(key);
            }
        });
        let informer = informer.clone();
        self.synced
            .push(Box::pin(async move { informer.wait_synced().await }));
        self
    }

    /// Waits for `informer` to sync before the workers start, without queueing anything from
    /// it (the controller only reads its cache).
    pub fn reads<K>(mut self, informer: &Arc<Informer<K>>) -> Self
    where
        K: Resource + Send + Sync + 'static,
    {
        let informer = informer.clone();
        self.synced
            .push(Box::pin(async move { informer.wait_synced().await }));
        self
    }

    /// How many keys are reconciled at once (at least one).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Starts the workers, which run `reconcile` on each queued key once every watched
    /// informer is synced. Dropping the result stops them.
    pub fn run<F, Fut, E>(self, reconcile: F) -> Supervised
    where
        F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let synced = self.synced;
        let ready = async move {
            for informer in synced {
                informer.await;
            }
        };
        spawn_workers(
            self.name,
            self.health,
            self.queue,
            self.workers,
            ready,
            reconcile,
        )
    }
}

impl Controller<ObjectKey> {
    /// Queues, for each change of a `C` that `informer` sees, the `P` (the controller's own
    /// kind) in the same namespace that is its controller (`ownerReferences` with
    /// `controller: true`), kube-runtime's `owns`.
    pub fn owns<P, C>(self, informer: &Arc<Informer<C>>) -> Self
    where
        P: Resource<DynamicType = ()>,
        C: Resource + Send + Sync + 'static,
    {
        let kind = P::kind(&()).into_owned();
        let api_version = P::api_version(&()).into_owned();
        self.watches(informer, move |change| {
            let meta = change.object().meta();
            meta.owner_references
                .iter()
                .flatten()
                .find(|owner| owner.controller == Some(true))
                .filter(|owner| owner.kind == kind && owner.api_version == api_version)
                .map(|owner| {
                    ObjectKey::new(meta.namespace.clone().unwrap_or_default(), &owner.name)
                })
        })
    }
}
