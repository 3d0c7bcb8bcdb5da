//! The controller builder, in kube-runtime's shape: a controller says which informers queue which
//! keys ([`Controller::watches`], [`Controller::owns`]), how many workers it runs, and how it
//! reconciles a key ([`Controller::run`]); the builder makes the queue, registers the handlers,
//! waits for every watched informer to sync, and starts supervised workers.
//!
//! ```text
//! Controller::new(&runtime, "replicaset-controller")
//!     .reconciles(&replica_sets)
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
    after_sync: Option<Box<dyn FnOnce() + Send>>,
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
            after_sync: None,
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

    /// Waits for `ready` too before the workers start (informers the controller finds at run
    /// time, such as the garbage collector's, by discovery).
    pub fn waits_for(mut self, ready: impl Future<Output = ()> + Send + 'static) -> Self {
        self.synced.push(Box::pin(ready));
        self
    }

    /// Runs `prepare` once every watched informer is synced, before the first reconcile (the
    /// scheduler builds its view of the cluster from the caches there).
    pub fn after_sync(mut self, prepare: impl FnOnce() + Send + 'static) -> Self {
        self.after_sync = Some(Box::new(prepare));
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
        let after_sync = self.after_sync;
        let ready = async move {
            for informer in synced {
                informer.await;
            }
            if let Some(prepare) = after_sync {
                prepare();
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
    /// Queues each object `informer` sees by its own key: the kind the controller reconciles
    /// (kube-runtime's `Controller::new`).
    pub fn reconciles<K>(self, informer: &Arc<Informer<K>>) -> Self
    where
        K: Resource + Send + Sync + 'static,
    {
        self.watches(informer, |change| {
            Some(ObjectKey::of(change.object().as_ref()))
        })
    }

    /// Queues, for each change of a `C` that `informer` sees, the object of the controller's
    /// kind `P` in the same namespace that controls it (`ownerReferences` with
    /// `controller: true`) — before and after the change, so an object that changed hands
    /// wakes both (client-go's `updatePod`; kube-runtime's `owns`).
    pub fn owns<P, C>(self, informer: &Arc<Informer<C>>) -> Self
    where
        P: Resource<DynamicType = ()>,
        C: Resource + Send + Sync + 'static,
    {
        let kind = P::kind(&()).into_owned();
        self.watches(informer, move |change| {
            let mut owners: Vec<ObjectKey> = Vec::with_capacity(2);
            let mut note = |object: &C| {
                let meta = object.meta();
                let owner = meta
                    .owner_references
                    .iter()
                    .flatten()
                    .find(|owner| owner.controller == Some(true))
                    .filter(|owner| owner.kind == kind);
                if let Some(owner) = owner {
                    let key =
                        ObjectKey::new(meta.namespace.clone().unwrap_or_default(), &owner.name);
                    if !owners.contains(&key) {
                        owners.push(key);
                    }
                }
            };
            note(change.object());
            if let Change::Applied { old: Some(old), .. } = change {
                note(old);
            }
            owners
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(owner: Option<(&str, &str)>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("p".into()),
                owner_references: owner.map(|(kind, name)| {
                    vec![OwnerReference {
                        kind: kind.into(),
                        name: name.into(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        })
    }

    #[tokio::test]
    async fn owns_queues_the_controller_before_and_after_a_change() {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let runtime = Runtime::new(client, Arc::new(Health::default()));
        let pods = runtime.informer::<Pod>();
        let controller = Controller::new(&runtime, "test").owns::<StatefulSet, Pod>(&pods);
        let queue = controller.queue();
        pods.dispatch(&Change::Applied {
            old: Some(pod(Some(("StatefulSet", "a")))),
            new: pod(Some(("StatefulSet", "b"))),
        });
        pods.dispatch(&Change::Deleted(pod(Some(("ReplicaSet", "c")))));
        pods.dispatch(&Change::Deleted(pod(None)));
        let mut queued = vec![
            queue.next().await.to_string(),
            queue.next().await.to_string(),
        ];
        queued.sort();
        assert_eq!(queued, ["ns/a", "ns/b"]);
        assert!(queue.is_empty());
    }
}
