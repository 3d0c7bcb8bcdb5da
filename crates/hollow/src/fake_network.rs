//! Made-up addresses for hollow nodes: each node name started in this process takes the next
//! slot, which gives it an InternalIP and a pod range of its own; a node started again under
//! the same name gets the same ones. Nothing is ever sent to them.
//!
//! [`FakePodNetwork`] is the kubelet's pod network for hollow nodes: there is nothing to set up
//! (the fake runtime hands out the pod IPs from the pod CIDR the kubelet tells it).
//!
//! Both come from the shared address space `100.64.0.0/10` (RFC 6598), away from k3rs's
//! defaults (cluster CIDR `10.42.0.0/16`, service CIDR `10.43.0.0/16`): node InternalIPs from
//! `100.64.0.0/11`, and — for pods on a node whose `spec.podCIDR` is not set yet — one `/24` per
//! node from `100.96.0.0/11`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};

use crate::ip_pool::Ipv4Cidr;

/// Node InternalIPs: `100.64.0.1` onwards (about two million nodes).
const NODE_ADDRESSES: u32 = u32::from_be_bytes([100, 64, 0, 0]);
/// Pod ranges of nodes without a `spec.podCIDR`: `100.96.0.0/24` onwards (8192 of them).
const POD_RANGES: u32 = u32::from_be_bytes([100, 96, 0, 0]);
/// How many `/24`s fit in `100.96.0.0/11`.
const POD_RANGE_COUNT: u32 = 1 << 13;
/// How many node addresses fit in `100.64.0.0/11`, without its first and last.
const NODE_ADDRESS_COUNT: u32 = (1 << 21) - 2;

/// The pod network of a hollow node: nothing to set up.
#[derive(Debug, Default)]
pub(crate) struct FakePodNetwork;

#[async_trait::async_trait]
impl k3rs_kubelet::PodNetwork for FakePodNetwork {
    async fn set_pod_cidr(
        &self,
        pod_cidr: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        tracing::debug!(pod_cidr, "hollow node: pod network (nothing to set up)");
        Ok(())
    }
}

/// The slot of every node name seen in this process.
static SLOTS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// The made-up addresses of one hollow node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FakeAddresses {
    /// The node's InternalIP (and every pod's `hostIP`).
    pub(crate) internal_ip: Ipv4Addr,
    /// Pod IPs while the node has no `spec.podCIDR`.
    pub(crate) fallback_pod_range: Ipv4Cidr,
}

/// The addresses of the node `name`: the same for every start in this process, and different
/// from every other name's among the first 8192 names (pod ranges) and two million
/// (InternalIPs).
pub(crate) fn addresses_for(name: &str) -> FakeAddresses {
    // A panic elsewhere while holding the lock leaves the map intact: go on with it.
    let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    let slots = slots.get_or_insert_with(HashMap::new);
    let next = u32::try_from(slots.len()).unwrap_or(u32::MAX);
    addresses_for_slot(*slots.entry(name.to_owned()).or_insert(next))
}

fn addresses_for_slot(slot: u32) -> FakeAddresses {
    let internal_ip = Ipv4Addr::from(NODE_ADDRESSES + 1 + slot % NODE_ADDRESS_COUNT);
    let range_base = Ipv4Addr::from(POD_RANGES + (slot % POD_RANGE_COUNT) * 256);
    FakeAddresses {
        internal_ip,
        fallback_pod_range: Ipv4Cidr::new(range_base, 24)
            .expect("24 is a valid prefix")
            .trunc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_have_their_own_addresses() {
        let first = addresses_for_slot(0);
        assert_eq!(first.internal_ip, Ipv4Addr::new(100, 64, 0, 1));
        assert_eq!(first.fallback_pod_range.to_string(), "100.96.0.0/24");
        let later = addresses_for_slot(300);
        assert_eq!(later.internal_ip, Ipv4Addr::new(100, 64, 1, 45));
        assert_eq!(later.fallback_pod_range.to_string(), "100.97.44.0/24");
        let last = addresses_for_slot(POD_RANGE_COUNT - 1);
        assert_eq!(last.fallback_pod_range.to_string(), "100.127.255.0/24");
    }

    #[test]
    fn a_name_keeps_its_addresses() {
        let first = addresses_for("fake-network-a");
        assert_ne!(addresses_for("fake-network-b"), first);
        assert_eq!(addresses_for("fake-network-a"), first);
    }
}
