//! Time from spawning `k3rs server` to its Node's Ready condition, polled through the API.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use k3rs_tests::node::TestNode;
use k8s_openapi::api::core::v1::Node;
use kube::Api;

/// How often the Node is read.
const POLL: Duration = Duration::from_millis(50);
/// How long a start may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Spawns the node's server and waits until its Node is Ready with a heartbeat from this run
/// (a restarted node's object still says Ready from before); how long that took.
pub(super) async fn time_to_ready(node: &mut TestNode) -> Result<Duration> {
    // A heartbeat has a resolution of one second: start a fresh second after any earlier one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let start = Instant::now();
    node.spawn()?;
    let mut nodes: Option<Api<Node>> = None;
    loop {
        if let Some(status) = node.exited()? {
            bail!(
                "k3rs server exited with {status} before its node was Ready; see {}",
                node.log.display()
            );
        }
        if nodes.is_none() && node.refresh_kubeconfig()? {
            if let Ok(client) = super::workload::client(&node.kubeconfig).await {
                nodes = Some(Api::all(client));
            }
        }
        if let Some(api) = &nodes {
            if let Ok(Some(found)) = api.get_opt(&node.name).await {
                if ready_since(&found, since) {
                    return Ok(start.elapsed());
                }
            }
        }
        if start.elapsed() > TIMEOUT {
            bail!(
                "the node was not Ready within {TIMEOUT:?}; see {}",
                node.log.display()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether the Node's Ready condition is True with a heartbeat at or after `since` (seconds
/// since the epoch).
fn ready_since(node: &Node, since: u64) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "Ready"
                && c.status == "True"
                && c.last_heartbeat_time
                    .as_ref()
                    .is_some_and(|t| u64::try_from(t.0.as_second()).is_ok_and(|s| s >= since))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: &str, heartbeat: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat},
                {"type": "Ready", "status": status, "lastHeartbeatTime": heartbeat},
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn ready_only_with_a_heartbeat_of_this_run() {
        // 2026-01-01T00:00:10Z is 1767225610.
        let at = "2026-01-01T00:00:10Z";
        assert!(ready_since(&node("True", at), 1_767_225_610));
        assert!(ready_since(&node("True", at), 1_767_225_600));
        assert!(!ready_since(&node("True", at), 1_767_225_611));
        assert!(!ready_since(&node("False", at), 1_767_225_600));
        let none: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}})).unwrap();
        assert!(!ready_since(&none, 0));
    }
}
