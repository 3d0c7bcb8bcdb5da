//! `k3rs-controllers`: the controllers that make the cluster do what its objects say.
//!
//! They run inside `k3rs server` but talk to the API server over HTTPS like any other client
//! (the `kube` crate, a client certificate for `system:kube-controller-manager`), so they use
//! the one path real clients use and would work the same from another machine.
//!
//! Every controller and the scheduler are built on `k3rs-runtime` (shared informers, work
//! queues, supervised workers, events, expectations); this crate holds their decisions only.
//!
//! **Invariants**
//! - One list+watch per resource type for the whole process (`k3rs_runtime::Informers`); every
//!   controller reads the shared caches and keeps nothing else between reconciles.
//! - Level-triggered: a reconcile looks at the current state of the cluster only, never at the
//!   event that queued it, so the controllers converge from any starting state — after a crash,
//!   a restart, or a missed watch event.
//! - A failing object is retried with back-off and never stalls the others
//!   (`k3rs_runtime::queue::WorkQueue`); a reconcile that panics is retried the same way, and a
//!   controller task that stops is restarted and shown in [`Controllers::health`].

#![forbid(unsafe_code)]

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod error;
pub mod gc;
pub mod job;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod ownership;
pub mod pod_gc;
mod pod_owner;
pub mod pods;
pub mod replicaset;
pub mod revisions;
pub mod scheduler;
pub mod serviceaccount;
pub mod statefulset;
pub mod taints;
pub mod ttl_after_finished;
pub mod volume_binding;

use std::sync::Arc;

pub use error::Error;
use k3rs_runtime::health::Health;
use k3rs_runtime::informer::Informers;
use k3rs_runtime::supervisor::{supervise, Supervised};
pub use k3rs_runtime::Identity;
use k3rs_runtime::{client, Runtime};

/// The field manager of the controllers' writes (upstream's controllers are
/// `kube-controller-manager` by their user agent).
pub const FIELD_MANAGER: &str = "kube-controller-manager";

/// Patch parameters naming [`FIELD_MANAGER`].
pub(crate) fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..kube::api::PatchParams::default()
    }
}

/// Create and replace parameters naming [`FIELD_MANAGER`].
pub(crate) fn post_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..kube::api::PostParams::default()
    }
}

/// What the controllers need to start.
#[derive(Clone, Debug)]
pub struct ControllersConfig {
    /// How the controllers reach the API server, as `system:kube-controller-manager`.
    pub identity: Identity,
    /// How the scheduler reaches the API server, as `system:kube-scheduler`.
    pub scheduler_identity: Identity,
    /// The CA bundle published in every namespace as `kube-root-ca.crt` (PEM).
    pub root_ca_pem: String,
    /// The range nodes' pod ranges are cut from (`--cluster-cidr`).
    pub cluster_cidr: String,
    /// How node heartbeats are watched.
    pub node_timing: node_lifecycle::Timing,
}

/// What every controller is given: the client and the shared informers.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) runtime: Runtime,
    pub(crate) client: kube::Client,
    pub(crate) informers: Arc<Informers>,
    pub(crate) ca_pem: Arc<str>,
}

/// The running controllers; [`Controllers::stop`] stops them and waits, dropping this stops
/// them without waiting.
#[derive(Debug)]
pub struct Controllers {
    informers: Arc<Informers>,
    health: Arc<Health>,
    tasks: Vec<Supervised>,
}

/// How long [`Controllers::stop`] waits for the runtime to drop the aborted tasks.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Controllers {
    /// Starts every controller. They wait (retrying with back-off) until the API server
    /// answers, so this may be called before it serves.
    pub async fn start(config: ControllersConfig) -> Result<Self, Error> {
        let cluster_cidr = k3rs_api::cidr::parse_ipv4(&config.cluster_cidr)?;
        let client = client::connect(&config.identity).await?;
        let scheduler_client = client::connect(&config.scheduler_identity).await?;
        let health = Arc::new(Health::default());
        let runtime = Runtime::new(client.clone(), health.clone());
        let informers = runtime.informers().clone();
        let ctx = Context {
            runtime,
            client,
            informers: informers.clone(),
            ca_pem: config.root_ca_pem.into(),
        };
        let mut tasks = vec![
            namespace::start(&ctx),
            serviceaccount::start(&ctx),
            replicaset::start::<k8s_openapi::api::apps::v1::ReplicaSet>(&ctx),
            replicaset::start::<k8s_openapi::api::core::v1::ReplicationController>(&ctx),
            deployment::start(&ctx),
            disruption::start(&ctx),
            node_ipam::start(&ctx, cluster_cidr),
            endpoints::start(&ctx),
            volume_binding::start(&ctx),
            statefulset::start(&ctx),
            daemonset::start(&ctx),
            node_lifecycle::start(&ctx, config.node_timing),
            pod_gc::start(&ctx),
            job::start(&ctx),
            cronjob::start(&ctx),
            ttl_after_finished::start(&ctx),
            scheduler::start(&ctx, scheduler_client),
            // Last: it reuses the typed informers the others created.
            gc::start(&ctx),
        ];
        // Supervised like the rest: should it panic, it is reported and run again (starting
        // the informers twice starts nothing twice). It then stays, so that it never counts
        // as ended.
        tasks.push(Supervised(supervise(
            "controllers start-up".to_owned(),
            health.clone(),
            {
                let informers = informers.clone();
                move || {
                    let informers = informers.clone();
                    async move {
                        client::wait_ready(informers.client()).await;
                        informers.start();
                        std::future::pending::<()>().await;
                    }
                }
            },
        )));
        Ok(Self {
            informers,
            health,
            tasks,
        })
    }

    /// Stops every controller, the scheduler and the informers, and returns once all of their
    /// tasks are gone, so none of their requests or watches is in flight: the API server can
    /// stop after this without the controllers' clients logging broken connections.
    pub async fn stop(self) {
        let Self {
            informers,
            health,
            tasks,
        } = self;
        for task in tasks {
            task.stop().await;
        }
        informers.abort();
        drop(informers);
        if tokio::time::timeout(STOP_TIMEOUT, health.wait_stopped())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?STOP_TIMEOUT, "controller tasks still running; stopping anyway");
        }
    }

    /// The health of the controllers' informers and workers (for `/readyz`).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }
}
