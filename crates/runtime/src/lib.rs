//! `k3rs-runtime`: the machinery every k3rs controller runs on, and nothing else — no
//! controller logic lives here.
//!
//! A controller states what it watches and how it reconciles ([`controller::Controller`], in
//! kube-runtime's shape); the runtime supplies the rest: shared informers and their caches
//! ([`informer`], [`cache`]), a de-duplicating work queue with per-key exponential back-off
//! ([`queue`]), workers that contain panics ([`runner`]), supervision of every long-running task
//! with a health report ([`supervisor`], [`health`]), an event recorder ([`events`]),
//! create/delete expectations ([`expectations`]), the status writer ([`status`]) and the API
//! client of a component ([`client`]).
//!
//! **Invariants**
//! - One list+watch per resource type (and field selector) for the whole process
//!   ([`informer::Informers`]); controllers read the shared caches and keep nothing else between
//!   reconciles.
//! - A key is queued at most once however often it is added, and never handed to two workers at
//!   once; a failed key comes back after a back-off that grows with each failure in a row and is
//!   reset by a success.
//! - A reconcile that panics is an error like any other: it is logged with the controller and
//!   key, retried with back-off, and its key is released, so other keys keep being served.
//! - A runtime task (an informer, a controller's workers) that ends or panics is logged with its
//!   component name, reported as down in [`health::Health`], and restarted with back-off — never a
//!   silently frozen cache.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod cache;
pub mod client;
pub mod controller;
pub mod events;
pub mod expectations;
pub mod health;
pub mod informer;
pub mod queue;
pub mod runner;
pub mod status;
pub mod supervisor;

use std::sync::Arc;

pub use cache::{Cache, ObjectKey};
pub use client::Identity;
pub use controller::Controller;
pub use health::Health;
pub use informer::{Change, Informer, Informers};
pub use runner::Action;

/// What a component built on the runtime shares: its API client, the process's informers and
/// the health report its tasks write to.
#[derive(Clone)]
pub struct Runtime {
    client: kube::Client,
    informers: Arc<Informers>,
    health: Arc<Health>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("informers", &self.informers)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime over `client`, with its own informers reporting to `health`.
    pub fn new(client: kube::Client, health: Arc<Health>) -> Self {
        let informers = Arc::new(Informers::new(client.clone(), health.clone()));
        Self {
            client,
            informers,
            health,
        }
    }

    /// The API client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The process's shared informers.
    pub fn informers(&self) -> &Arc<Informers> {
        &self.informers
    }

    /// The health report of the runtime's tasks.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The shared informer of `K` (see [`Informers::get`]).
    pub fn informer<K>(&self) -> Arc<Informer<K>>
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        self.informers.get()
    }
}
