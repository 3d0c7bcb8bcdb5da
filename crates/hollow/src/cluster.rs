//! [`HollowCluster`]: many hollow nodes started together on one client, for scale tests.

use futures::{StreamExt, TryStreamExt};
use kube::Client;

use crate::{HollowError, HollowNode, HollowNodeConfig};

/// How many nodes register at the same time.
const CONCURRENT_STARTS: usize = 8;

/// A set of hollow nodes named `<prefix>-0` … `<prefix>-<count-1>`, sharing one client (and so
/// its connections). Each node has its own watch, Lease and tasks, as kubemark's do.
#[derive(Debug)]
pub struct HollowCluster {
    nodes: Vec<HollowNode>,
}

impl HollowCluster {
    /// Starts `count` nodes configured like `template` (its name is replaced), a few at a
    /// time. When one fails to start, the ones already started are stopped and its error is
    /// returned.
    pub async fn start(
        client: Client,
        count: usize,
        prefix: &str,
        template: &HollowNodeConfig,
    ) -> Result<HollowCluster, HollowError> {
        let nodes = futures::stream::iter(0..count)
            .map(|index| {
                let mut config = template.clone();
                config.name = format!("{prefix}-{index}");
                HollowNode::start(client.clone(), config)
            })
            .buffered(CONCURRENT_STARTS)
            .try_collect()
            .await?;
        Ok(HollowCluster { nodes })
    }

    /// The nodes, in name order of their index.
    pub fn nodes(&self) -> &[HollowNode] {
        &self.nodes
    }

    /// The nodes' names.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name().to_owned()).collect()
    }

    /// Stops every node (see [`HollowNode::stop`]).
    pub async fn stop(self) {
        futures::future::join_all(self.nodes.into_iter().map(HollowNode::stop)).await;
    }
}
