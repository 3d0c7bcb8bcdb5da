//! IP ranges in CIDR notation, over `ipnet`: parsed as Kubernetes reads them (host bits of the
//! address ignored, `10.43.7.9/16` is `10.43.0.0/16`), and the little arithmetic the allocators
//! need (the n-th address of a range). The service-IP allocator, the node IPAM controller, the
//! serving certificate's first service IP and the node side's pod-IP pool all use this module.

use std::net::{IpAddr, Ipv4Addr};

pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why a text is not the range asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `ADDRESS/PREFIX`, or the prefix is too long for the address.
    #[error("{text:?} is not a CIDR range (ADDRESS/PREFIX)")]
    Syntax {
        /// The text given.
        text: String,
        /// ipnet's reason.
        #[source]
        source: ipnet::AddrParseError,
    },
    /// An IPv6 range where only IPv4 is supported.
    #[error("{text:?} is not an IPv4 range")]
    NotIpv4 {
        /// The text given.
        text: String,
    },
}

/// Parses `address/prefix` (IPv4 or IPv6, surrounding spaces ignored) with the host bits cleared.
pub fn parse(text: &str) -> Result<IpNet, CidrError> {
    let range: IpNet = text.trim().parse().map_err(|source| CidrError::Syntax {
        text: text.to_owned(),
        source,
    })?;
    Ok(range.trunc())
}

/// Parses an IPv4 `a.b.c.d/n` with the host bits cleared.
pub fn parse_ipv4(text: &str) -> Result<Ipv4Net, CidrError> {
    match parse(text)? {
        IpNet::V4(range) => Ok(range),
        IpNet::V6(_) => Err(CidrError::NotIpv4 {
            text: text.to_owned(),
        }),
    }
}

/// How many addresses `range` spans (network and broadcast addresses included).
pub fn size(range: Ipv4Net) -> u64 {
    1u64 << (32 - u32::from(range.prefix_len()))
}

/// The address `offset` places after `range`'s network address, if it is inside the range.
pub fn nth_address(range: Ipv4Net, offset: u32) -> Option<Ipv4Addr> {
    if u64::from(offset) >= size(range) {
        return None;
    }
    Some(Ipv4Addr::from(u32::from(range.network()) + offset))
}

/// The first address after the network address (`10.43.0.0/16` → `10.43.0.1`), of either
/// family; `None` for a range of a single address.
pub fn first_host(range: IpNet) -> Option<IpAddr> {
    match range {
        IpNet::V4(range) => nth_address(range, 1).map(IpAddr::V4),
        IpNet::V6(range) => {
            let first = u128::from(range.network()).checked_add(1)?;
            (range.prefix_len() < 128).then(|| IpAddr::V6(first.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_clears_host_bits() {
        assert_eq!(
            parse_ipv4("10.43.7.9/16").map(|r| r.to_string()),
            Ok("10.43.0.0/16".to_owned())
        );
        assert_eq!(
            parse(" fd00::5/64 ").map(|r| r.to_string()),
            Ok("fd00::/64".to_owned())
        );
        assert_eq!(
            parse_ipv4("0.0.0.0/0").map(|r| r.to_string()),
            Ok("0.0.0.0/0".to_owned())
        );
        for bad in ["10.42.3.0", "10.42.3.0/33", "10.42.3/24", "x/8", ""] {
            assert!(
                matches!(parse_ipv4(bad), Err(CidrError::Syntax { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse_ipv4("fd00::/64"),
            Err(CidrError::NotIpv4 {
                text: "fd00::/64".to_owned()
            })
        );
    }

    #[test]
    fn addresses_of_a_range() {
        let range = parse_ipv4("10.43.0.0/16").expect("valid range");
        assert_eq!(size(range), 65_536);
        assert_eq!(nth_address(range, 1), Some(Ipv4Addr::new(10, 43, 0, 1)));
        assert_eq!(
            nth_address(range, 65_535),
            Some(Ipv4Addr::new(10, 43, 255, 255))
        );
        assert_eq!(nth_address(range, 65_536), None);
        let everything = parse_ipv4("0.0.0.0/0").expect("valid range");
        assert_eq!(size(everything), 1 << 32);
        assert_eq!(nth_address(everything, u32::MAX), Some(Ipv4Addr::BROADCAST));
        assert_eq!(
            first_host(parse("fd00:10:43::/112").expect("valid range")),
            Some("fd00:10:43::1".parse().expect("valid address"))
        );
        assert_eq!(first_host(parse("10.0.0.7/32").expect("valid range")), None);
    }
}
