//! The wiring the controllers that create pods share (ReplicaSet, Job): the owner and pod
//! informers, expectations, a work queue, an event recorder, and the handlers that queue an
//! owner when it changes or one of its pods (or a matching orphan) does; and the pod delete with
//! its events and expectations, which the DaemonSet controller (with its own wiring) uses too.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::ownership::queue_pod_owners;
use crate::Context;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::expectations::Expectations;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::queue::WorkQueue;
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// What a pod-creating controller of owners `K` reads and writes through.
pub(crate) struct PodOwners<K> {
    pub(crate) client: Client,
    pub(crate) owners: Arc<Informer<K>>,
    pub(crate) pods: Arc<Informer<Pod>>,
    pub(crate) expectations: Arc<Expectations<ObjectKey>>,
    pub(crate) queue: Arc<WorkQueue<ObjectKey>>,
    pub(crate) events: Recorder,
}

impl<K> Clone for PodOwners<K> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            owners: self.owners.clone(),
            pods: self.pods.clone(),
            expectations: self.expectations.clone(),
            queue: self.queue.clone(),
            events: self.events.clone(),
        }
    }
}

impl<K> PodOwners<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Registers the handlers of the controller `component` (also its events' source) and
    /// starts its `workers`, which run `reconcile` once both informers are synced. `selects`
    /// says whether an owner's selector matches a pod (an orphan it may adopt).
    pub(crate) fn start<F, Fut>(
        ctx: &Context,
        component: &'static str,
        workers: usize,
        selects: fn(&K, &Pod) -> bool,
        reconcile: F,
    ) -> Supervised
    where
        F: Fn(Self, ObjectKey) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let controller = Controller::new(&ctx.runtime, component);
        let shared = Self {
            client: ctx.client.clone(),
            owners: ctx.informers.get::<K>(),
            pods: ctx.informers.get::<Pod>(),
            expectations: Arc::new(Expectations::default()),
            queue: controller.queue(),
            events: Recorder::new(ctx.client.clone(), component),
        };
        watch_owners_and_pods(
            controller,
            &shared.owners,
            &shared.pods,
            &shared.expectations,
            selects,
        )
        .workers(workers)
        .run(move |key| reconcile.clone()(shared.clone(), key))
    }

    /// Deletes `owner`'s pod `pod`: [`delete_owned_pod`] through this controller's client,
    /// events and expectations.
    pub(crate) async fn delete_pod(&self, owner: &K, pod: &Pod) -> Result<(), Error> {
        delete_owned_pod(&self.client, &self.events, &self.expectations, owner, pod).await
    }
}

/// Registers on `controller` the handlers every pod-creating controller shares: a change of
/// an owner queues it (a deleted owner's expectations are forgotten), and a change of a pod goes
/// through the one pod handler ([`queue_pod_owners`]), which counts expectations and queues the
/// pod's owner — or, for an orphan, the owners `selects` says may adopt it.
pub(crate) fn watch_owners_and_pods<K>(
    controller: Controller,
    owners: &Arc<Informer<K>>,
    pods: &Arc<Informer<Pod>>,
    expectations: &Arc<Expectations<ObjectKey>>,
    selects: fn(&K, &Pod) -> bool,
) -> Controller
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&()).into_owned();
    let queue = controller.queue();
    controller
        .watches(owners, {
            let expectations = expectations.clone();
            move |change| {
                let key = ObjectKey::of(change.object().as_ref());
                if let Change::Deleted(_) = change {
                    expectations.forget(&key);
                }
                Some(key)
            }
        })
        .watches(pods, {
            let owners = owners.clone();
            let expectations = expectations.clone();
            move |change| {
                queue_pod_owners(change, &kind, &expectations, &queue, |namespace, pod| {
                    owners_selecting(&owners, namespace, pod, selects)
                });
                None
            }
        })
}

/// The keys of the owners in `namespace` whose selector matches `pod`, per `selects`: for an
/// orphan, the owners that may adopt it.
pub(crate) fn owners_selecting<K>(
    owners: &Informer<K>,
    namespace: &str,
    pod: &Pod,
    selects: impl Fn(&K, &Pod) -> bool,
) -> Vec<ObjectKey>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    owners
        .cache()
        .in_namespace(namespace)
        .iter()
        .filter(|owner| selects(owner, pod))
        .map(|owner| ObjectKey::of(owner.as_ref()))
        .collect()
}

/// Deletes `owner`'s pod `pod` (only that incarnation: the uid is a precondition), with
/// upstream's `SuccessfulDelete`/`FailedDelete` events. The caller expected the deletion in
/// `expectations`; a failed one will never be observed, so it is marked observed here. A pod
/// already gone is not an error.
pub(crate) async fn delete_owned_pod<K: Resource<DynamicType = ()>>(
    client: &Client,
    events: &Recorder,
    expectations: &Expectations<ObjectKey>,
    owner: &K,
    pod: &Pod,
) -> Result<(), Error> {
    let key = ObjectKey::of(owner);
    let api: Api<Pod> = Api::namespaced(client.clone(), &key.namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => {
            let message = format!("Deleted pod: {}", pod.name_any());
            events.normal(owner, "SuccessfulDelete", message).await;
            Ok(())
        }
        Err(err) => {
            expectations.deletion_observed(&key, &pod.name_any());
            let err = Error::from(err);
            if err.is_not_found() {
                return Ok(());
            }
            let message = format!("Error deleting: {err}");
            events.warning(owner, "FailedDelete", message).await;
            Err(err)
        }
    }
}
