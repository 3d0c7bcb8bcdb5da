//! `k3rs-controllers`: the controllers that make the cluster do what its objects say.
//!
//! They run inside `k3rs server` but talk to the API server over HTTPS like any other client
//! (the `kube` crate, a client certificate for `system:kube-controller-manager`), so they use
//! the one path real clients use and would work the same from another machine.
//!
//! **Invariants**
//! - One list+watch per resource type for the whole process ([`informer::Informers`]); every
//!   controller reads the shared caches and keeps nothing else between reconciles.
//! - Level-triggered: a reconcile looks at the current state of the cluster only, never at the
//!   event that queued it, so the controllers converge from any starting state — after a crash,
//!   a restart, or a missed watch event.
//! - A failing object is retried with back-off and never stalls the others
//!   ([`queue::WorkQueue`], [`runner::spawn_workers`]).

#![forbid(unsafe_code)]

pub mod cache;
pub mod client;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod informer;
pub mod job;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod ownership;
pub mod pod_gc;
mod pod_owner;
pub mod pods;
pub mod queue;
pub mod replicaset;
pub mod revisions;
pub mod runner;
pub mod scheduler;
pub mod serviceaccount;
pub mod statefulset;
mod status;
pub mod taints;
pub mod ttl_after_finished;
pub mod volume_binding;

use std::sync::Arc;

pub use client::Identity;
pub use error::Error;
use informer::Informers;
use tokio::task::JoinHandle;

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
    pub(crate) client: kube::Client,
    pub(crate) informers: Arc<Informers>,
    pub(crate) ca_pem: Arc<str>,
}

/// The running controllers; dropping this stops them.
#[derive(Debug)]
pub struct Controllers {
    _informers: Arc<Informers>,
    tasks: Vec<JoinHandle<()>>,
}

impl Controllers {
    /// Starts every controller. They wait (retrying with back-off) until the API server
    /// answers, so this may be called before it serves.
    pub async fn start(config: ControllersConfig) -> Result<Self, Error> {
        let cluster_cidr = node_ipam::Cidr::parse(&config.cluster_cidr)
            .map_err(|err| Error::Config(format!("--cluster-cidr: {err}")))?;
        let client = client::connect(&config.identity).await?;
        let scheduler_client = client::connect(&config.scheduler_identity).await?;
        let informers = Arc::new(Informers::new(client.clone()));
        let ctx = Context {
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
        tasks.push(tokio::spawn({
            let informers = informers.clone();
            async move {
                client::wait_ready(informers.client()).await;
                informers.start();
            }
        }));
        Ok(Self {
            _informers: informers,
            tasks,
        })
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
