//! Node IPAM (upstream's range allocator): each node gets a /24 of the cluster CIDR as
//! `spec.podCIDR`/`podCIDRs`, the lowest one free. A range is never handed out twice while
//! its node exists: what is in use is read from every node, plus what this allocator assigned
//! and has not yet seen come back through its cache.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::core::v1::Node;
use kube::api::Patch;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::error::{gone_ok, Error};
use crate::Context;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// The prefix length of every node's range.
pub const NODE_PREFIX: u8 = 24;

/// An IPv4 range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The first address.
    pub network: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

/// Why a text is not an IPv4 CIDR.
#[derive(Debug, thiserror::Error)]
pub enum CidrError {
    /// There is no `/`.
    #[error("{0:?} is not a CIDR (a.b.c.d/n)")]
    NotCidr(String),
    /// The address part is not an IPv4 address.
    #[error("{text:?}: {address:?} is not an IPv4 address")]
    Address {
        /// The whole text.
        text: String,
        /// Its address part.
        address: String,
        /// The parser's error.
        #[source]
        source: std::net::AddrParseError,
    },
    /// The prefix length is not 0 to 32.
    #[error("{0:?}: bad prefix length")]
    Prefix(String),
}

impl Cidr {
    /// Parses `a.b.c.d/n`; the address is masked to the network.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let (address, prefix) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| CidrError::NotCidr(text.to_owned()))?;
        let address: Ipv4Addr = address.parse().map_err(|source| CidrError::Address {
            text: text.to_owned(),
            address: address.to_owned(),
            source,
        })?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| CidrError::Prefix(text.to_owned()))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Self {
            network: Ipv4Addr::from(u32::from(address) & mask),
            prefix,
        })
    }

    /// The `index`-th subrange of prefix length `prefix`, if there is one.
    fn subrange(self, prefix: u8, index: u32) -> Option<Cidr> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let bits = u32::from(prefix - self.prefix);
        if bits < 32 && index >= (1u32 << bits) {
            return None;
        }
        let step = if prefix == 32 {
            1
        } else {
            1u32 << (32 - prefix)
        };
        let start = u32::from(self.network).checked_add(index.checked_mul(step)?)?;
        Some(Cidr {
            network: Ipv4Addr::from(start),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The lowest /24 of `cluster` not in `used`.
pub fn first_free(cluster: Cidr, used: &BTreeSet<Cidr>) -> Option<Cidr> {
    (0u32..)
        .map_while(|i| cluster.subrange(NODE_PREFIX, i))
        .find(|c| !used.contains(c))
}

#[derive(Clone)]
struct Shared {
    client: Client,
    nodes: Arc<Informer<Node>>,
    cluster: Cidr,
    /// Assigned by this allocator, not yet seen on the node in the cache.
    assigned: Arc<Mutex<HashMap<String, Cidr>>>,
    events: Recorder,
}

/// Starts the allocator (one worker: assignments are decided one at a time).
pub(crate) fn start(ctx: &Context, cluster: Cidr) -> Supervised {
    let shared = Shared {
        client: ctx.client.clone(),
        nodes: ctx.informers.get::<Node>(),
        cluster,
        assigned: Arc::new(Mutex::new(HashMap::new())),
        events: Recorder::new(ctx.client.clone(), "node-ipam-controller"),
    };
    let assigned = shared.assigned.clone();
    Controller::new(&ctx.runtime, "node-ipam-controller")
        .watches(&shared.nodes, move |change| {
            let node = change.object();
            match change {
                Change::Deleted(_) => {
                    assigned
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&node.name_any());
                    None
                }
                Change::Applied { .. } => pod_cidr(node).is_none().then(|| node.name_any()),
            }
        })
        .run(move |name: String| {
            let shared = shared.clone();
            async move { allocate(&shared, &name).await }
        })
}

fn pod_cidr(node: &Node) -> Option<Cidr> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .as_deref()
        .or_else(|| spec.pod_cidrs.as_ref()?.first().map(String::as_str))
        .and_then(|c| Cidr::parse(c).ok())
}

async fn allocate(shared: &Shared, name: &str) -> Result<Action, Error> {
    let Some(node) = shared.nodes.cache().get_named("", name) else {
        return Ok(Action::Done);
    };
    if pod_cidr(&node).is_some() {
        return Ok(Action::Done);
    }
    let mut assigned = shared
        .assigned
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    // Forget assignments the cache has caught up with (or whose node is gone).
    assigned.retain(|node_name, _| {
        shared
            .nodes
            .cache()
            .get_named("", node_name)
            .is_some_and(|n| pod_cidr(&n).is_none())
    });
    let cidr = match assigned.get(name) {
        Some(cidr) => *cidr,
        None => {
            let mut used: BTreeSet<Cidr> = shared
                .nodes
                .cache()
                .all()
                .iter()
                .filter_map(|n| pod_cidr(n))
                .collect();
            used.extend(assigned.values().copied());
            match first_free(shared.cluster, &used) {
                Some(cidr) => cidr,
                None => {
                    shared
                        .events
                        .warning(
                            node.as_ref(),
                            "CIDRNotAvailable",
                            format!("Node {name} status is now: CIDRNotAvailable"),
                        )
                        .await;
                    return Err(Error::NoPodRange {
                        prefix: NODE_PREFIX,
                        cluster: shared.cluster.to_string(),
                        node: name.to_owned(),
                    });
                }
            }
        }
    };
    assigned.insert(name.to_owned(), cidr);
    *shared
        .assigned
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = assigned;
    let api: Api<Node> = Api::all(shared.client.clone());
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]},
    });
    let params = crate::patch_params();
    gone_ok(api.patch(name, &params, &Patch::Merge(&patch)).await)?;
    tracing::info!(node = name, %cidr, "assigned the node's pod range");
    Ok(Action::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_the_lowest_free_slash_24() {
        let cluster = Cidr::parse("10.42.0.0/16").unwrap();
        let mut used = BTreeSet::new();
        assert_eq!(
            first_free(cluster, &used).unwrap().to_string(),
            "10.42.0.0/24"
        );
        used.insert(Cidr::parse("10.42.0.0/24").unwrap());
        used.insert(Cidr::parse("10.42.2.0/24").unwrap());
        assert_eq!(
            first_free(cluster, &used).unwrap().to_string(),
            "10.42.1.0/24"
        );
        let small = Cidr::parse("10.42.0.0/23").unwrap();
        used.insert(Cidr::parse("10.42.1.0/24").unwrap());
        assert_eq!(first_free(small, &used), None, "exhausted");
        assert_eq!(
            Cidr::parse("10.42.7.9/16").unwrap().to_string(),
            "10.42.0.0/16"
        );
        assert!(Cidr::parse("10.42.0.0").is_err());
        assert!(Cidr::parse("10.42.0.0/33").is_err());
        assert!(Cidr::parse("fd00::/8").is_err());
    }
}
