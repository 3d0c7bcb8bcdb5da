//! Pod IPs of one node: IPv4 CIDR ranges and the set of addresses pods hold, handed out the way
//! CNI's host-local IPAM does (the next free address after the last one given, skipping the
//! network address, the bridge's `.1` and the broadcast address).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use k3rs_api::cidr::Ipv4Net;

/// An IPv4 range in CIDR notation (`10.42.3.0/24`), host bits cleared: see [`k3rs_api::cidr`].
pub(crate) type Ipv4Cidr = Ipv4Net;

/// The addresses pods may get in `range`, in order: from network + 2 to broadcast − 1. Empty
/// for ranges smaller than /30.
fn pod_addresses(range: Ipv4Cidr) -> std::ops::RangeInclusive<u32> {
    if range.prefix_len() > 30 {
        #[allow(clippy::reversed_empty_ranges)] // deliberately empty
        return 1..=0;
    }
    u32::from(range.network()) + 2..=u32::from(range.broadcast()) - 1
}

/// The pod IPs in use on one node.
///
/// **Invariant:** an address is handed out again only after it was released: two pods that hold
/// an IP at the same time never share it.
#[derive(Debug, Default)]
pub(crate) struct IpPool {
    held: HashSet<u32>,
    last: Option<u32>,
}

impl IpPool {
    /// The next free address of `range` after the last one handed out (wrapping around), now
    /// held; `None` when every address of the range is held.
    pub(crate) fn allocate(&mut self, range: Ipv4Cidr) -> Option<Ipv4Addr> {
        let addresses = pod_addresses(range);
        let (first, last) = (*addresses.start(), *addresses.end());
        if first > last {
            return None;
        }
        let start = match self.last {
            Some(previous) if addresses.contains(&previous) && previous < last => previous + 1,
            _ => first,
        };
        let candidate = (start..=last)
            .chain(first..start)
            .find(|address| !self.held.contains(address))?;
        self.held.insert(candidate);
        self.last = Some(candidate);
        Some(candidate.into())
    }

    /// Gives `address` back.
    pub(crate) fn release(&mut self, address: Ipv4Addr) {
        self.held.remove(&u32::from(address));
    }

    /// How many addresses are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Cidr {
        k3rs_api::cidr::parse_ipv4(text).unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_cidrs() {
        assert_eq!(cidr("10.42.3.0/24").to_string(), "10.42.3.0/24");
        assert_eq!(cidr("10.42.3.77/24").to_string(), "10.42.3.0/24");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "10.42.3.0",
            "10.42.3.0/33",
            "fd00::/64",
            "10.42.3/24",
            "x/8",
        ] {
            assert!(k3rs_api::cidr::parse_ipv4(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hands_out_addresses_in_order_from_dot_two() {
        let mut pool = IpPool::default();
        let range = cidr("10.42.3.0/24");
        assert_eq!(pool.allocate(range), Some(ip("10.42.3.2")));
        assert_eq!(pool.allocate(range), Some(ip("10.42.3.3")));
        pool.release(ip("10.42.3.2"));
        // Host-local IPAM goes on after the last address rather than reusing one at once.
        assert_eq!(pool.allocate(range), Some(ip("10.42.3.4")));
    }

    #[test]
    fn never_gives_a_held_address_and_wraps_around() {
        let mut pool = IpPool::default();
        let range = cidr("10.0.0.0/29"); // pods get .2 to .6
        let mut given: Vec<Ipv4Addr> = (0..5).map(|_| pool.allocate(range).unwrap()).collect();
        assert_eq!(pool.allocate(range), None, "the range is full");
        given.sort();
        given.dedup();
        assert_eq!(given.len(), 5);
        pool.release(ip("10.0.0.4"));
        assert_eq!(pool.allocate(range), Some(ip("10.0.0.4")));
        assert_eq!(pool.len(), 5);
    }

    #[test]
    fn tiny_ranges_have_no_pod_addresses() {
        let mut pool = IpPool::default();
        assert_eq!(pool.allocate(cidr("10.0.0.0/31")), None);
        assert_eq!(pool.allocate(cidr("10.0.0.1/32")), None);
        assert_eq!(pool.allocate(cidr("10.0.0.0/30")), Some(ip("10.0.0.2")));
    }
}
