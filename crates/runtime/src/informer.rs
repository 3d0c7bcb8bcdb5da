//! Shared informers: one list+watch per resource type for the whole process, a [`Cache`] of what
//! it saw, and change notifications to every controller that registered a handler.
//!
//! A watch that breaks is resumed, and one that is too old (410) relists; after a relist the
//! informer compares the fresh list with its cache and reports what appeared, changed and
//! disappeared, so a handler never misses a deletion that happened while the watch was down.
//!
//! Each informer's task is supervised ([`crate::supervisor`]): should it end or panic (a handler
//! that panics takes it down), it is logged, reported down in [`Health`], and restarted with a
//! fresh list, whose diff against the cache brings every handler up to date.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use futures::stream::BoxStream;
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, ObjectMeta, PartialObjectMeta};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::{Cache, ObjectKey};
use crate::health::Health;
use crate::supervisor::supervise;

/// What an informer saw happen to one object.
#[derive(Debug)]
pub enum Change<K> {
    /// The object was created or changed (`old` is the cached copy before, if any). After a
    /// relist every listed object is reported again, changed or not.
    Applied {
        /// The copy the cache held before.
        old: Option<Arc<K>>,
        /// The copy it holds now.
        new: Arc<K>,
    },
    /// The object is gone; this is its last known state.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object as it is now, or as it was last seen when deleted.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Applied { new, .. } => new,
            Change::Deleted(old) => old,
        }
    }
}

type Handler<K> = Box<dyn Fn(&Change<K>) + Send + Sync>;

/// A change seen through an informer of any kind, metadata only.
#[derive(Debug)]
pub struct MetaChange<'a> {
    /// The object's `apiVersion` (as the informer watches it).
    pub api_version: &'a str,
    /// The object's kind.
    pub kind: &'a str,
    /// Its metadata, now or as last seen when deleted.
    pub meta: &'a ObjectMeta,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// A handler of metadata changes.
pub type MetaHandler = Arc<dyn Fn(&MetaChange<'_>) + Send + Sync>;
type MetaHook = Arc<dyn Fn(MetaHandler) + Send + Sync>;
/// Starts an informer's supervised task.
type StartInformer = Box<dyn FnOnce(Client, Arc<Health>) -> JoinHandle<()> + Send>;

/// The cache and notifications of one resource type.
pub struct Informer<K> {
    cache: Cache<K>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
}

impl<K> Debug for Informer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("type", &std::any::type_name::<K>())
            .field("objects", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl<K: Resource + Send + Sync + 'static> Informer<K> {
    fn new() -> Self {
        Self {
            cache: Cache::default(),
            handlers: RwLock::new(Vec::new()),
            synced: watch::channel(false).0,
        }
    }

    /// What the informer has seen. Empty until [`Informer::wait_synced`] returns.
    pub fn cache(&self) -> &Cache<K> {
        &self.cache
    }

    /// Calls `handler` on every change, from the informer's task: it must be quick (put a key
    /// on a work queue) and must not block. Every handler sees every object as `Applied` first,
    /// whenever it registers (the initial list, or a replay of the cache).
    pub fn on_change(&self, handler: impl Fn(&Change<K>) + Send + Sync + 'static) {
        let mut handlers = self
            .handlers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A handler registered after the first list gets the cache replayed, under the lock
        // that holds back the next dispatch, so it misses nothing (and may see an object's
        // current state twice, never an older state after a newer one).
        if *self.synced.borrow() {
            for object in self.cache.all() {
                handler(&Change::Applied {
                    old: None,
                    new: object,
                });
            }
        }
        handlers.push(Box::new(handler));
    }

    /// Returns once the first full list is in the cache.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.subscribe();
        // The sender lives as long as `self`, so this only ends when synced.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    pub(crate) fn dispatch(&self, change: &Change<K>) {
        let handlers = self
            .handlers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for handler in handlers.iter() {
            handler(change);
        }
    }

    /// Keeps the cache current from `events` until the stream ends (it does not: the watcher
    /// retries with back-off).
    async fn run(&self, mut events: BoxStream<'static, Result<Event<K>, watcher::Error>>) {
        let mut listing: Option<BTreeMap<ObjectKey, Arc<K>>> = None;
        while let Some(event) = events.next().await {
            match event {
                Err(err) => {
                    tracing::debug!(kind = std::any::type_name::<K>(), %err, "watch failed; retrying");
                }
                Ok(Event::Init) => listing = Some(BTreeMap::new()),
                Ok(Event::InitApply(object)) => {
                    listing
                        .get_or_insert_with(BTreeMap::new)
                        .insert(ObjectKey::of(&object), Arc::new(object));
                }
                Ok(Event::InitDone) => {
                    let fresh = listing.take().unwrap_or_default();
                    let changes = {
                        let mut cache = self.cache.write();
                        let mut changes: Vec<Change<K>> = cache
                            .iter()
                            .filter(|(key, _)| !fresh.contains_key(key))
                            .map(|(_, old)| Change::Deleted(old.clone()))
                            .collect();
                        changes.extend(fresh.iter().map(|(key, new)| Change::Applied {
                            old: cache.get(key).cloned(),
                            new: new.clone(),
                        }));
                        *cache = fresh;
                        changes
                    };
                    self.synced.send_replace(true);
                    for change in &changes {
                        self.dispatch(change);
                    }
                }
                Ok(Event::Apply(object)) => {
                    let key = ObjectKey::of(&object);
                    let new = Arc::new(object);
                    let old = self.cache.write().insert(key, new.clone());
                    self.dispatch(&Change::Applied { old, new });
                }
                Ok(Event::Delete(object)) => {
                    self.cache.write().remove(&ObjectKey::of(&object));
                    self.dispatch(&Change::Deleted(Arc::new(object)));
                }
            }
        }
    }
}

/// Every informer of the process, one per resource type, created on first use.
pub struct Informers {
    client: Client,
    health: Arc<Health>,
    /// The watches' back-off; kube's default (0.8 s doubling to 30 s, jittered) when `None`.
    watch_backoff: Option<crate::backoff::ExponentialBuilder>,
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// By type and field selector (`""` for the whole type).
    by_type: HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>,
    /// Metadata views of the whole-type typed informers, by (group, version, plural), for
    /// controllers that only read metadata of every kind (the garbage collector).
    meta_hooks: HashMap<(String, String, String), MetaHook>,
    /// Informers created but not started yet, with their start functions.
    pending: Vec<StartInformer>,
    started: bool,
    tasks: Vec<JoinHandle<()>>,
}

impl Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.debug_struct("Informers")
            .field("types", &inner.by_type.len())
            .field("started", &inner.started)
            .finish()
    }
}

impl Informers {
    /// An empty set of informers using `client`, whose tasks report to `health`.
    pub fn new(client: Client, health: Arc<Health>) -> Self {
        Self {
            client,
            health,
            watch_backoff: None,
            inner: Mutex::new(Registry::default()),
        }
    }

    /// Like [`Informers::new`], but every watch retries after the delays of `backoff` (started
    /// over after each success) instead of kube's default: for hollow nodes, which must carry
    /// on within seconds of a server restart.
    pub fn with_watch_backoff(
        client: Client,
        health: Arc<Health>,
        backoff: crate::backoff::ExponentialBuilder,
    ) -> Self {
        let mut informers = Self::new(client, health);
        informers.watch_backoff = Some(backoff);
        informers
    }

    /// `stream` with this set's back-off between failed watches.
    fn with_backoff<K: Send + 'static>(
        backoff: Option<crate::backoff::ExponentialBuilder>,
        stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    ) -> BoxStream<'static, Result<Event<K>, watcher::Error>> {
        match backoff {
            Some(builder) => stream.backoff(crate::backoff::for_watcher(builder)).boxed(),
            None => stream.default_backoff().boxed(),
        }
    }

    /// The client the informers list and watch with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The informer of `K`, created on first use. It starts with [`Informers::start`], or at
    /// once if that has been called already.
    pub fn get<K>(&self) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.get_selected("")
    }

    /// The informer of the `K` objects that match `field_selector`: for a controller that
    /// needs a few objects of a kind with many (`metadata.name=kube-root-ca.crt` of the
    /// ConfigMaps), so the process does not cache them all.
    pub fn get_selected<K>(&self, field_selector: &str) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (TypeId::of::<K>(), field_selector.to_owned());
        if let Some(existing) = inner.by_type.get(&key) {
            if let Ok(informer) = existing.clone().downcast::<Informer<K>>() {
                return informer;
            }
        }
        let informer = Arc::new(Informer::<K>::new());
        inner.by_type.insert(key, informer.clone());
        if field_selector.is_empty() {
            let hooked = informer.clone();
            let hook: MetaHook = Arc::new(move |handler: MetaHandler| {
                let api_version = K::api_version(&()).into_owned();
                let kind = K::kind(&()).into_owned();
                hooked.on_change(move |change| {
                    handler(&MetaChange {
                        api_version: &api_version,
                        kind: &kind,
                        meta: change.object().meta(),
                        deleted: matches!(change, Change::Deleted(_)),
                    });
                });
            });
            inner.meta_hooks.insert(
                (
                    K::group(&()).into_owned(),
                    K::version(&()).into_owned(),
                    K::plural(&()).into_owned(),
                ),
                hook,
            );
        }
        let task = informer.clone();
        let mut config = watcher::Config::default();
        let mut component = format!("informer {} {}", K::api_version(&()), K::kind(&()));
        if !field_selector.is_empty() {
            config = config.fields(field_selector);
            component = format!("{component} ({field_selector})");
        }
        let backoff = self.watch_backoff;
        let start = move |client: Client, health: Arc<Health>| {
            supervise(component, health, move || {
                let task = task.clone();
                let events = Self::with_backoff(
                    backoff,
                    watcher(Api::<K>::all(client.clone()), config.clone()),
                );
                async move { task.run(events).await }
            })
        };
        self.start_or_queue(&mut inner, Box::new(start));
        informer
    }

    /// Starts `start` now if the informers run, else with [`Informers::start`].
    fn start_or_queue(&self, inner: &mut Registry, start: StartInformer) {
        if inner.started {
            let handle = start(self.client.clone(), self.health.clone());
            inner.tasks.push(handle);
        } else {
            inner.pending.push(start);
        }
    }

    /// Calls `handler` on every metadata change of `resource`: through the process's typed
    /// informer of that resource when there is one, else through a metadata-only informer
    /// (`PartialObjectMetadata`) started for it. Either way one list+watch per resource.
    /// Returns the informer's "synced" future.
    pub fn on_meta_change(
        &self,
        resource: &ApiResource,
        handler: MetaHandler,
    ) -> futures::future::BoxFuture<'static, ()> {
        let hook = {
            let inner = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inner
                .meta_hooks
                .get(&(
                    resource.group.clone(),
                    resource.version.clone(),
                    resource.plural.clone(),
                ))
                .cloned()
        };
        if let Some(hook) = hook {
            hook(handler);
            // Typed informers of the controllers are synced before their workers start; the
            // caller only needs the metadata-only ones.
            return Box::pin(async {});
        }
        let informer = self.get_metadata(resource);
        let api_version = resource.api_version.clone();
        let kind = resource.kind.clone();
        informer.on_change(move |change| {
            handler(&MetaChange {
                api_version: &api_version,
                kind: &kind,
                meta: &change.object().metadata,
                deleted: matches!(change, Change::Deleted(_)),
            });
        });
        Box::pin(async move { informer.wait_synced().await })
    }

    /// The metadata-only informer of `resource`, created on first use.
    fn get_metadata(
        &self,
        resource: &ApiResource,
    ) -> Arc<Informer<PartialObjectMeta<DynamicObject>>> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (
            TypeId::of::<PartialObjectMeta<DynamicObject>>(),
            format!(
                "{}/{}/{}",
                resource.group, resource.version, resource.plural
            ),
        );
        if let Some(existing) = inner.by_type.get(&key) {
            if let Ok(informer) = existing.clone().downcast() {
                return informer;
            }
        }
        let informer = Arc::new(Informer::<PartialObjectMeta<DynamicObject>>::new());
        inner.by_type.insert(key, informer.clone());
        let task = informer.clone();
        let resource = resource.clone();
        let component = format!(
            "metadata informer {} {}",
            resource.api_version, resource.kind
        );
        let backoff = self.watch_backoff;
        let start = move |client: Client, health: Arc<Health>| {
            supervise(component, health, move || {
                let task = task.clone();
                let api: Api<PartialObjectMeta<DynamicObject>> =
                    Api::all_with(client.clone(), &resource);
                let events = Self::with_backoff(backoff, watcher(api, watcher::Config::default()));
                async move { task.run(events).await }
            })
        };
        self.start_or_queue(&mut inner, Box::new(start));
        informer
    }

    /// Starts every informer created so far (and, from now on, each new one at once).
    pub fn start(&self) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.started = true;
        let pending = std::mem::take(&mut inner.pending);
        for start in pending {
            let handle = start(self.client.clone(), self.health.clone());
            inner.tasks.push(handle);
        }
    }
}

impl Informers {
    /// Aborts every informer task now (the runtime drops them soon after; see
    /// [`Health::wait_stopped`]); an informer created from now on is not started.
    pub fn abort(&self) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.started = false;
        for task in inner.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Informers {
    fn drop(&mut self) {
        let inner = self
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for task in &inner.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::time::Duration;

    fn config_map(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some([("v".to_owned(), value.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    fn seen(changes: &Mutex<Vec<String>>) -> Vec<String> {
        std::mem::take(&mut *changes.lock().unwrap())
    }

    fn recorder(informer: &Informer<ConfigMap>) -> Arc<Mutex<Vec<String>>> {
        let changes = Arc::new(Mutex::new(Vec::new()));
        informer.on_change({
            let changes = changes.clone();
            move |change| {
                let object = change.object();
                let value = object.data.as_ref().map(|d| d["v"].clone());
                let text = match change {
                    Change::Applied { old, .. } => format!(
                        "applied {} {} (was {})",
                        object.metadata.name.as_deref().unwrap_or_default(),
                        value.unwrap_or_default(),
                        old.is_some()
                    ),
                    Change::Deleted(_) => format!(
                        "deleted {}",
                        object.metadata.name.as_deref().unwrap_or_default()
                    ),
                };
                changes.lock().unwrap().push(text);
            }
        });
        changes
    }

    fn stream(
        events: Vec<Event<ConfigMap>>,
    ) -> BoxStream<'static, Result<Event<ConfigMap>, watcher::Error>> {
        futures::stream::iter(events.into_iter().map(Ok)).boxed()
    }

    #[tokio::test]
    async fn a_relist_reports_deletions_missed_while_the_watch_was_down() {
        let informer = Informer::<ConfigMap>::new();
        let changes = recorder(&informer);
        informer
            .run(stream(vec![
                Event::Init,
                Event::InitApply(config_map("a", "1")),
                Event::InitApply(config_map("b", "1")),
                Event::InitDone,
                Event::Apply(config_map("a", "2")),
            ]))
            .await;
        informer.wait_synced().await;
        assert_eq!(
            seen(&changes),
            [
                "applied a 1 (was false)",
                "applied b 1 (was false)",
                "applied a 2 (was true)"
            ]
        );
        // The watch broke; meanwhile b was deleted and c created. The relist (a restarted
        // informer's first list too) reports both, and every listed object again.
        informer
            .run(stream(vec![
                Event::Init,
                Event::InitApply(config_map("a", "2")),
                Event::InitApply(config_map("c", "1")),
                Event::InitDone,
                Event::Delete(config_map("c", "1")),
            ]))
            .await;
        assert_eq!(
            seen(&changes),
            [
                "deleted b",
                "applied a 2 (was true)",
                "applied c 1 (was false)",
                "deleted c"
            ]
        );
        assert_eq!(informer.cache().keys(), vec![ObjectKey::new("ns", "a")]);
    }

    #[tokio::test]
    async fn a_late_handler_gets_the_cache_replayed() {
        let informer = Informer::<ConfigMap>::new();
        let early = recorder(&informer);
        informer
            .run(stream(vec![
                Event::Init,
                Event::InitApply(config_map("a", "1")),
                Event::InitDone,
                Event::Apply(config_map("b", "1")),
            ]))
            .await;
        assert_eq!(seen(&early).len(), 2);
        // Registered after the first list: the whole cache, as Applied, at once.
        let late = recorder(&informer);
        assert_eq!(
            seen(&late),
            ["applied a 1 (was false)", "applied b 1 (was false)"]
        );
        informer
            .run(stream(vec![Event::Apply(config_map("a", "2"))]))
            .await;
        assert_eq!(seen(&late), ["applied a 2 (was true)"]);
        assert_eq!(seen(&early), ["applied a 2 (was true)"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_informer_whose_handler_panics_is_restarted_and_relists() {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let informer = Arc::new(Informer::<ConfigMap>::new());
        let panicked = Arc::new(AtomicBool::new(false));
        informer.on_change({
            let panicked = panicked.clone();
            move |change| {
                if change.object().metadata.name.as_deref() == Some("bad")
                    && !panicked.swap(true, Ordering::SeqCst)
                {
                    panic!("handler broke on bad");
                }
            }
        });
        let changes = recorder(&informer);
        let health = Arc::new(Health::default());
        let runs = Arc::new(AtomicU32::new(0));
        let _task = crate::supervisor::Supervised(supervise(
            "informer v1 ConfigMap".into(),
            health.clone(),
            {
                let informer = informer.clone();
                let runs = runs.clone();
                move || {
                    let informer = informer.clone();
                    // Each run is a fresh list, as a restarted watcher's is.
                    let events = if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        stream(vec![
                            Event::Init,
                            Event::InitApply(config_map("a", "1")),
                            Event::InitDone,
                            Event::Apply(config_map("bad", "1")),
                        ])
                    } else {
                        stream(vec![
                            Event::Init,
                            Event::InitApply(config_map("a", "2")),
                            Event::InitApply(config_map("bad", "1")),
                            Event::InitDone,
                        ])
                        .chain(futures::stream::pending())
                        .boxed()
                    };
                    async move { informer.run(events).await }
                }
            },
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The panic took the informer's task down: reported, not silent.
        let down = health.check().unwrap_err();
        assert_eq!(down.down[0].0, "informer v1 ConfigMap");
        assert_eq!(down.down[0].1, "panicked: handler broke on bad");
        // Restarted after its back-off: the relist brings every handler up to date.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(health.check().is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(
            seen(&changes),
            [
                "applied a 1 (was false)",
                "applied a 2 (was true)",
                "applied bad 1 (was true)"
            ]
        );
        assert_eq!(informer.cache().len(), 2);
    }

    #[test]
    fn a_handler_registered_before_the_first_list_gets_no_replay() {
        let informer = Informer::<ConfigMap>::new();
        informer
            .cache
            .write()
            .insert(ObjectKey::new("ns", "a"), Arc::new(config_map("a", "1")));
        let changes = recorder(&informer);
        assert!(seen(&changes).is_empty());
    }
}
