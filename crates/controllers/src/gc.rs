//! The garbage collector (upstream's): a graph of every object's owner references, kept from
//! one informer per resource (metadata only where no controller caches the kind), and two
//! queues. An object whose owners are all gone is deleted; one whose owner is being deleted in
//! the foreground is deleted first (its owner keeps `foregroundDeletion` until every dependent
//! with `blockOwnerDeletion` is gone); an owner deleted with the `orphan` finalizer has its
//! dependents' references removed before the finalizer goes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject, Patch, Preconditions, PropagationPolicy};
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::error::{gone_ok, Error};
use crate::patch_params as params;
use crate::Context;
use k3rs_runtime::informer::{Informers, MetaChange, MetaHandler};
use k3rs_runtime::queue::WorkQueue;
use k3rs_runtime::runner::Action;
use k3rs_runtime::supervisor::supervise;
use k3rs_runtime::Controller;

/// How often new resources (CRDs) are looked for.
const REDISCOVER: Duration = Duration::from_secs(30);
/// The first delay before the first discovery is tried again (the API server may not serve
/// yet), doubling up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest delay between tries of the first discovery.
const MAX_RETRY: Duration = Duration::from_secs(5);
const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// Which object a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
    uid: String,
}

#[derive(Clone, Debug)]
struct Node {
    identity: Identity,
    /// Known only from some dependent's owner reference so far.
    virtual_: bool,
    owners: Vec<OwnerReference>,
    being_deleted: bool,
    finalizers: Vec<String>,
    dependents: BTreeSet<String>,
}

impl Node {
    fn deleting_dependents(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == FOREGROUND)
    }
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
}

/// Where each kind is served: (apiVersion, kind) → resource and scope.
#[derive(Default)]
struct Mapping {
    kinds: HashMap<(String, String), (ApiResource, bool)>,
}

struct Gc {
    client: Client,
    informers: Arc<Informers>,
    graph: Mutex<Graph>,
    mapping: RwLock<Mapping>,
    monitored: Mutex<BTreeSet<String>>,
    delete_queue: Arc<WorkQueue<String>>,
    orphan_queue: Arc<WorkQueue<String>>,
}

/// Starts the collector: discovery, monitors, workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let deleter = Controller::new(&ctx.runtime, "garbage-collector");
    let orphaner = Controller::new(&ctx.runtime, "garbage-collector-orphan");
    let gc = Arc::new(Gc {
        client: ctx.client.clone(),
        informers: ctx.informers.clone(),
        graph: Mutex::new(Graph::default()),
        mapping: RwLock::new(Mapping::default()),
        monitored: Mutex::new(BTreeSet::new()),
        delete_queue: deleter.queue(),
        orphan_queue: orphaner.queue(),
    });
    let health = ctx.runtime.health().clone();
    // Set once the first discovery's informers have their first lists: the workers wait for it.
    let (discovered, mut ready) = tokio::sync::watch::channel(false);
    let ready = futures::FutureExt::shared(Box::pin(async move {
        // Only a stopped collector drops the sender; then nothing runs any more either way.
        let _ = ready.wait_for(|discovered| *discovered).await;
    }));
    let deleter = deleter.waits_for(ready.clone()).workers(4).run({
        let gc = gc.clone();
        move |uid: String| {
            let gc = gc.clone();
            async move { gc.attempt_to_delete(&uid).await }
        }
    });
    let orphaner = orphaner.waits_for(ready).workers(2).run({
        let gc = gc.clone();
        move |uid: String| {
            let gc = gc.clone();
            async move { gc.attempt_to_orphan(&uid).await }
        }
    });
    // The first discovery decides what the graph is built from (retried with back-off until
    // it succeeds); then discovery runs again every 30 s for new kinds. Supervised: a restart
    // starts with a first discovery again, which the informers already running make cheap.
    let discovery = supervise(
        "garbage-collector discovery".to_owned(),
        health,
        move || {
            let gc = gc.clone();
            let discovered = discovered.clone();
            async move {
                let mut delays = k3rs_runtime::backoff::delays(k3rs_runtime::backoff::exponential(
                    FIRST_RETRY,
                    MAX_RETRY,
                ));
                let synced = loop {
                    match gc.discover().await {
                        Ok(synced) => break synced,
                        Err(err) => {
                            let delay = delays.next().unwrap_or(MAX_RETRY);
                            tracing::debug!(%err, ?delay, "garbage collector discovery failed; retrying");
                            tokio::time::sleep(delay).await;
                        }
                    }
                };
                futures::future::join_all(synced).await;
                discovered.send_replace(true);
                loop {
                    tokio::time::sleep(REDISCOVER).await;
                    if let Err(err) = gc.discover().await {
                        tracing::debug!(%err, "garbage collector rediscovery failed");
                    }
                }
            }
        },
    );
    Supervised::all(vec![deleter, orphaner, Supervised(discovery)])
}

impl Gc {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refreshes the kind mapping and monitors every listable, watchable, deletable resource
    /// not monitored yet. Returns the new monitors' "synced" futures.
    async fn discover(
        self: &Arc<Self>,
    ) -> Result<Vec<futures::future::BoxFuture<'static, ()>>, Error> {
        let discovery = Discovery::new(self.client.clone()).run_aggregated().await?;
        let mut kinds = HashMap::new();
        let mut monitor = Vec::new();
        for group in discovery.groups() {
            let preferred = group.preferred_version_or_latest().to_owned();
            for version in group.versions() {
                for (resource, caps) in group.versioned_resources(version) {
                    let namespaced = caps.scope == Scope::Namespaced;
                    kinds.insert(
                        (resource.api_version.clone(), resource.kind.clone()),
                        (resource.clone(), namespaced),
                    );
                    let watchable = ["list", "watch", "delete"]
                        .iter()
                        .all(|op| caps.supports_operation(op));
                    if version == preferred && watchable {
                        monitor.push(resource);
                    }
                }
            }
        }
        self.mapping
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .kinds = kinds;
        let mut synced = Vec::new();
        for resource in monitor {
            let id = format!("{}/{}", resource.group, resource.plural);
            let new = self
                .monitored
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id);
            if new {
                let gc = Arc::downgrade(self);
                let handler: MetaHandler = Arc::new(move |change: &MetaChange<'_>| {
                    if let Some(gc) = gc.upgrade() {
                        gc.observe(change);
                    }
                });
                synced.push(self.informers.on_meta_change(&resource, handler));
            }
        }
        Ok(synced)
    }

    /// Updates the graph for one change and queues what it may have made collectable.
    fn observe(&self, change: &MetaChange<'_>) {
        let meta = change.meta;
        let Some(uid) = meta.uid.clone() else {
            return;
        };
        let identity = Identity {
            api_version: change.api_version.to_owned(),
            kind: change.kind.to_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: uid.clone(),
        };
        let mut graph = self.graph();
        if change.deleted {
            let Some(node) = graph.nodes.remove(&uid) else {
                return;
            };
            for dependent in &node.dependents {
                self.delete_queue.add(dependent.clone());
            }
            for owner in &node.owners {
                if let Some(owner_node) = graph.nodes.get_mut(&owner.uid) {
                    owner_node.dependents.remove(&uid);
                    if owner_node.deleting_dependents() {
                        self.delete_queue.add(owner.uid.clone());
                    }
                }
            }
            return;
        }
        let owners = meta.owner_references.clone().unwrap_or_default();
        let being_deleted = meta.deletion_timestamp.is_some();
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        let previous = graph.nodes.get(&uid).cloned();
        let (old_owners, was_virtual, old_finalizers, was_deleted) = match &previous {
            Some(p) => (
                p.owners.clone(),
                p.virtual_,
                p.finalizers.clone(),
                p.being_deleted,
            ),
            None => (Vec::new(), false, Vec::new(), false),
        };
        let dependents = previous.map(|p| p.dependents).unwrap_or_default();
        let node = Node {
            identity,
            virtual_: false,
            owners: owners.clone(),
            being_deleted,
            finalizers: finalizers.clone(),
            dependents,
        };
        // Owner links: drop removed owners, add new ones (creating virtual owners to verify).
        for removed in old_owners
            .iter()
            .filter(|o| !owners.iter().any(|n| n.uid == o.uid))
        {
            if let Some(owner_node) = graph.nodes.get_mut(&removed.uid) {
                owner_node.dependents.remove(&uid);
                if owner_node.deleting_dependents() {
                    self.delete_queue.add(removed.uid.clone());
                }
            }
        }
        let mut owners_changed = was_virtual || old_owners != owners;
        for owner in &owners {
            match graph.nodes.get_mut(&owner.uid) {
                Some(owner_node) => {
                    owner_node.dependents.insert(uid.clone());
                    if owner_node.deleting_dependents() {
                        self.delete_queue.add(owner.uid.clone());
                    }
                }
                None => {
                    let virtual_owner = Node {
                        identity: Identity {
                            api_version: owner.api_version.clone(),
                            kind: owner.kind.clone(),
                            namespace: meta.namespace.clone(),
                            name: owner.name.clone(),
                            uid: owner.uid.clone(),
                        },
                        virtual_: true,
                        owners: Vec::new(),
                        being_deleted: false,
                        finalizers: Vec::new(),
                        dependents: BTreeSet::from([uid.clone()]),
                    };
                    graph.nodes.insert(owner.uid.clone(), virtual_owner);
                    self.delete_queue.add(owner.uid.clone());
                    owners_changed = true;
                }
            }
        }
        let dependents: Vec<String> = node.dependents.iter().cloned().collect();
        let starts_foreground = being_deleted
            && finalizers.iter().any(|f| f == FOREGROUND)
            && !(was_deleted && old_finalizers.iter().any(|f| f == FOREGROUND));
        let starts_orphan = being_deleted && finalizers.iter().any(|f| f == ORPHAN);
        graph.nodes.insert(uid.clone(), node);
        drop(graph);
        if starts_orphan {
            self.orphan_queue.add(uid.clone());
        }
        if starts_foreground {
            for dependent in dependents {
                self.delete_queue.add(dependent);
            }
            self.delete_queue.add(uid.clone());
        } else if being_deleted && finalizers.iter().any(|f| f == FOREGROUND) {
            self.delete_queue.add(uid.clone());
        }
        if owners_changed && !owners.is_empty() {
            self.delete_queue.add(uid);
        }
    }

    /// The dynamic API of the object a node or reference names.
    fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Option<Api<DynamicObject>> {
        let mapping = self
            .mapping
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (resource, namespaced) = mapping
            .kinds
            .get(&(api_version.to_owned(), kind.to_owned()))?;
        Some(match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, resource),
            (true, None) => return None,
            (false, _) => Api::all_with(self.client.clone(), resource),
        })
    }

    /// The API of `identity`'s kind, rediscovering once when the kind is unknown (a CRD
    /// established since the last discovery). A kind still unknown is an error, retried: an
    /// object is never taken for gone just because its kind cannot be resolved.
    async fn api_of(self: &Arc<Self>, identity: &Identity) -> Result<Api<DynamicObject>, Error> {
        let lookup = || {
            self.api_for(
                &identity.api_version,
                &identity.kind,
                identity.namespace.as_deref(),
            )
        };
        if let Some(api) = lookup() {
            return Ok(api);
        }
        // New monitors start on their own; their sync is not waited for here.
        drop(self.discover().await?);
        lookup().ok_or_else(|| Error::NotServed {
            api_version: identity.api_version.clone(),
            kind: identity.kind.clone(),
        })
    }

    /// The object as the API has it now, `None` when it is gone (or replaced by another
    /// object of the same name).
    async fn live(self: &Arc<Self>, identity: &Identity) -> Result<Option<DynamicObject>, Error> {
        let api = self.api_of(identity).await?;
        let object = api.get_opt(&identity.name).await?;
        Ok(object.filter(|o| o.uid().as_deref() == Some(identity.uid.as_str())))
    }

    async fn attempt_to_delete(self: &Arc<Self>, uid: &str) -> Result<Action, Error> {
        let Some(node) = self.graph().nodes.get(uid).cloned() else {
            return Ok(Action::Done);
        };
        if node.being_deleted && !node.deleting_dependents() {
            return Ok(Action::Done);
        }
        let Some(latest) = self.live(&node.identity).await? else {
            if node.virtual_ {
                // An owner that does not exist: its dependents are orphans to collect.
                let dependents = {
                    let mut graph = self.graph();
                    graph
                        .nodes
                        .remove(uid)
                        .map(|n| n.dependents)
                        .unwrap_or_default()
                };
                for dependent in dependents {
                    self.delete_queue.add(dependent);
                }
            }
            return Ok(Action::Done);
        };
        let deleting_dependents = latest.metadata.deletion_timestamp.is_some()
            && latest.finalizers().iter().any(|f| f == FOREGROUND);
        if deleting_dependents {
            return self.finish_foreground(&node, &latest).await;
        }
        let owners = latest.owner_references().to_vec();
        if owners.is_empty() {
            return Ok(Action::Done);
        }
        let namespace = latest.namespace();
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for owner in &owners {
            let identity = Identity {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                namespace: namespace.clone(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
            };
            match self.live(&identity).await? {
                None => dangling.push(owner.clone()),
                Some(o)
                    if o.metadata.deletion_timestamp.is_some()
                        && o.finalizers().iter().any(|f| f == FOREGROUND) =>
                {
                    waiting.push(owner.clone());
                }
                Some(_) => solid.push(owner.clone()),
            }
        }
        let api = self.api_of(&node.identity).await?;
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(Action::Done);
            }
            let gone: Vec<&str> = dangling
                .iter()
                .chain(&waiting)
                .map(|o| o.uid.as_str())
                .collect();
            let kept: Vec<&OwnerReference> = owners
                .iter()
                .filter(|o| !gone.contains(&o.uid.as_str()))
                .collect();
            patch_owners(&api, &latest, &kept).await?;
            return Ok(Action::Done);
        }
        let policy = if !waiting.is_empty() && !node.dependents.is_empty() {
            PropagationPolicy::Foreground
        } else if latest.finalizers().iter().any(|f| f == ORPHAN) {
            PropagationPolicy::Orphan
        } else if latest.finalizers().iter().any(|f| f == FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(kind = %node.identity.kind, name = %node.identity.name, ?policy, "deleting an object whose owners are gone");
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(node.identity.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        gone_ok(api.delete(&node.identity.name, &params).await)?;
        Ok(Action::Done)
    }

    /// An owner deleted in the foreground: delete its blocking dependents; once none is
    /// left, remove its `foregroundDeletion` finalizer.
    async fn finish_foreground(
        self: &Arc<Self>,
        node: &Node,
        latest: &DynamicObject,
    ) -> Result<Action, Error> {
        let blocking: Vec<Node> = {
            let graph = self.graph();
            node.dependents
                .iter()
                .filter_map(|d| graph.nodes.get(d))
                .filter(|d| {
                    d.owners
                        .iter()
                        .any(|o| o.uid == node.identity.uid && o.block_owner_deletion == Some(true))
                })
                .cloned()
                .collect()
        };
        if blocking.is_empty() {
            let api = self.api_of(&node.identity).await?;
            remove_finalizer(&api, latest, FOREGROUND).await?;
            return Ok(Action::Done);
        }
        for dependent in blocking {
            if !dependent.being_deleted {
                self.delete_queue.add(dependent.identity.uid.clone());
            }
        }
        // Dependents' deletions queue this owner again; look anyway in a while.
        Ok(Action::RequeueAfter(Duration::from_secs(5)))
    }

    /// An owner deleted with the `orphan` finalizer: remove it from its dependents' owner
    /// references, then remove the finalizer.
    async fn attempt_to_orphan(self: &Arc<Self>, uid: &str) -> Result<Action, Error> {
        let Some(node) = self.graph().nodes.get(uid).cloned() else {
            return Ok(Action::Done);
        };
        let dependents: Vec<Node> = {
            let graph = self.graph();
            node.dependents
                .iter()
                .filter_map(|d| graph.nodes.get(d).cloned())
                .collect()
        };
        for dependent in dependents {
            let api = self.api_of(&dependent.identity).await?;
            let Some(latest) = self.live(&dependent.identity).await? else {
                continue;
            };
            let kept: Vec<&OwnerReference> = latest
                .owner_references()
                .iter()
                .filter(|o| o.uid != uid)
                .collect();
            if kept.len() != latest.owner_references().len() {
                patch_owners(&api, &latest, &kept).await?;
            }
        }
        let Some(latest) = self.live(&node.identity).await? else {
            return Ok(Action::Done);
        };
        let api = self.api_of(&node.identity).await?;
        remove_finalizer(&api, &latest, ORPHAN).await?;
        Ok(Action::Done)
    }
}

/// Replaces the object's owner references with `kept` (a JSON merge patch, which every kind
/// takes, guarded by the object's uid and resourceVersion).
async fn patch_owners(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    kept: &[&OwnerReference],
) -> Result<(), Error> {
    let patch = json!({"metadata": {
        "ownerReferences": if kept.is_empty() { serde_json::Value::Null } else { json!(kept) },
        "uid": object.uid(),
        "resourceVersion": object.resource_version(),
    }});
    gone_ok(
        api.patch(&object.name_any(), &params(), &Patch::Merge(&patch))
            .await,
    )?;
    Ok(())
}

/// Removes one finalizer from the object.
async fn remove_finalizer(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    finalizer: &str,
) -> Result<(), Error> {
    let kept: Vec<&String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    if kept.len() == object.finalizers().len() {
        return Ok(());
    }
    let patch = json!({"metadata": {
        "finalizers": if kept.is_empty() { serde_json::Value::Null } else { json!(kept) },
        "resourceVersion": object.resource_version(),
    }});
    gone_ok(
        api.patch(&object.name_any(), &params(), &Patch::Merge(&patch))
            .await,
    )?;
    Ok(())
}
