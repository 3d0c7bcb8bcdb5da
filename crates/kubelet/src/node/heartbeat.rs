//! The node's two heartbeats, each a loop in its own task: renewing the Lease every heartbeat
//! interval, and writing the Node's status (conditions with a fresh `lastHeartbeatTime`) every
//! status interval. Both stop while paused and retry failures with back-off, never slower than
//! their interval.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;

use super::lease::LeaseKeeper;
use super::{object, NodeConfig, NodeReadiness};
use crate::retry::{delay_after, timed};
use crate::{clock, KubeletError};

/// Writes the Node's status.
#[derive(Clone, Debug)]
pub(crate) struct NodeStatusReporter {
    api: Api<Node>,
    config: NodeConfig,
    boot_id: String,
    readiness: watch::Receiver<NodeReadiness>,
}

impl NodeStatusReporter {
    pub(crate) fn new(
        client: Client,
        config: NodeConfig,
        boot_id: String,
        readiness: watch::Receiver<NodeReadiness>,
    ) -> Self {
        NodeStatusReporter {
            api: Api::all(client),
            config,
            boot_id,
            readiness,
        }
    }

    /// Reads the Node and patches its status (strategic merge: conditions merge by type, so
    /// conditions others own stay).
    async fn report(&self) -> Result<(), KubeletError> {
        let name = &self.config.name;
        let error = |action, source| KubeletError::NodeStatus {
            node: name.clone(),
            action,
            source,
        };
        let node = self.api.get(name).await.map_err(|e| error("reading", e))?;
        let readiness = self.readiness.borrow().clone();
        let status = object::status(
            &self.config,
            &self.boot_id,
            &readiness,
            node.status.as_ref(),
            clock::now(),
        );
        let patch = serde_json::json!({ "status": status });
        self.api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map_err(|e| error("updating status", e))?;
        Ok(())
    }
}

/// One of the node's heartbeats (a copy starts a restarted heartbeat afresh).
#[derive(Clone, Debug)]
pub(crate) enum Heartbeat {
    /// Both boxed: each is large and the tasks hold one or the other.
    Lease(Box<LeaseKeeper>),
    NodeStatus(Box<NodeStatusReporter>),
}

impl Heartbeat {
    pub(crate) async fn beat(&mut self) -> Result<(), KubeletError> {
        match self {
            Heartbeat::Lease(keeper) => keeper.renew().await,
            Heartbeat::NodeStatus(reporter) => {
                let node = reporter.config.name.clone();
                timed(|| format!("node {node}: status"), reporter.report()).await
            }
        }
    }

    /// Resolves when the heartbeat should beat before its interval is up: the node's
    /// readiness changed (never for the Lease).
    async fn changed(&mut self) {
        match self {
            Heartbeat::Lease(_) => std::future::pending().await,
            Heartbeat::NodeStatus(reporter) => {
                if reporter.readiness.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Beats every `interval` (the first time one interval from now: starting the node beat
/// once already) until the task is aborted or the pause switch is dropped; waits while `paused`
/// is true and beats at once when it turns false.
pub(crate) async fn run(
    mut heartbeat: Heartbeat,
    interval: Duration,
    mut paused: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    let mut delay = interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = heartbeat.changed() => {}
            changed = paused.changed() => if changed.is_err() {
                return;
            },
        }
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        delay = match heartbeat.beat().await {
            Ok(()) => {
                failures = 0;
                interval
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!("{err}; retrying");
                } else {
                    tracing::debug!(failures, "{err}; retrying");
                }
                delay_after(failures).min(interval)
            }
        };
    }
}
