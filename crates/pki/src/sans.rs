//! Subject alternative names: parsing, normalising, and the first IP of a service CIDR.

use std::fmt;
use std::net::IpAddr;

use k3rs_api::cidr::IpNet;

use crate::PkiError;

/// One subject alternative name of a serving certificate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectAltName {
    /// A DNS name, lowercase (DNS names compare case-insensitively).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl SubjectAltName {
    /// Parses a `--tls-san` style value: an IP address if it parses as one, a DNS name otherwise.
    pub fn parse(value: &str) -> Result<Self, PkiError> {
        let trimmed = value.trim();
        // Accept bracketed IPv6 (`[::1]`) as users copy it from URLs.
        let unbracketed = trimmed
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(trimmed);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        Self::dns(trimmed)
    }

    /// A DNS name, checked for the characters a certificate may carry.
    pub fn dns(name: &str) -> Result<Self, PkiError> {
        let invalid = |reason| PkiError::InvalidSan {
            value: name.to_string(),
            reason,
        };
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Err(invalid("empty name"));
        }
        if name.len() > 253 {
            return Err(invalid("longer than 253 characters"));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(invalid("empty label"));
            }
            if label.len() > 63 {
                return Err(invalid("label longer than 63 characters"));
            }
            // `*` is allowed as a whole leftmost label (wildcard certificates).
            let ok = label == "*"
                || label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(invalid(
                    "only letters, digits, '-', '_' and '.' are allowed",
                ));
            }
        }
        if name.contains('*') && !name.starts_with("*.") {
            return Err(invalid("a wildcard may only be the whole leftmost label"));
        }
        Ok(Self::Dns(name))
    }

    pub(crate) fn to_rcgen(&self) -> Result<rcgen::SanType, PkiError> {
        Ok(match self {
            Self::Ip(ip) => rcgen::SanType::IpAddress(*ip),
            Self::Dns(name) => rcgen::SanType::DnsName(name.as_str().try_into().map_err(|_| {
                PkiError::InvalidSan {
                    value: name.clone(),
                    reason: "not an IA5 string",
                }
            })?),
        })
    }
}

impl fmt::Display for SubjectAltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => write!(f, "DNS:{name}"),
            Self::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// The DNS names every Kubernetes API server answers to inside the cluster.
pub const KUBERNETES_SERVICE_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The first host address of a CIDR: the ClusterIP of the `kubernetes` Service
/// (`10.43.0.0/16` → `10.43.0.1`). Host bits set in the address are ignored, as Kubernetes does.
pub fn first_service_ip(cidr: &str) -> Result<IpAddr, PkiError> {
    let invalid = |reason| PkiError::InvalidServiceCidr {
        cidr: cidr.to_string(),
        reason,
    };
    let range = k3rs_api::cidr::parse(cidr)
        .map_err(|_| invalid("expected ADDRESS/PREFIX with an IP address"))?;
    match range {
        IpNet::V4(v4) if v4.prefix_len() > 30 => Err(invalid(
            "an IPv4 service CIDR needs a prefix of at most /30",
        )),
        IpNet::V6(v6) if v6.prefix_len() > 126 => Err(invalid(
            "an IPv6 service CIDR needs a prefix of at most /126",
        )),
        range => k3rs_api::cidr::first_host(range)
            .ok_or_else(|| invalid("the range has no host address")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn first_service_ip_of_defaults_and_edge_cases() {
        assert_eq!(
            first_service_ip("10.43.0.0/16").unwrap().to_string(),
            "10.43.0.1"
        );
        assert_eq!(
            first_service_ip("10.43.7.9/16").unwrap().to_string(),
            "10.43.0.1"
        );
        assert_eq!(
            first_service_ip("fd00:43::/112").unwrap().to_string(),
            "fd00:43::1"
        );
        assert_eq!(
            first_service_ip("0.0.0.0/0").unwrap().to_string(),
            "0.0.0.1"
        );
        for bad in [
            "10.43.0.0",
            "10.43.0.0/33",
            "10.43.0.0/31",
            "x/16",
            "10.43.0.0/x",
            "",
        ] {
            assert!(first_service_ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_sans() {
        assert_eq!(
            SubjectAltName::parse("1.2.3.4").unwrap(),
            SubjectAltName::Ip([1, 2, 3, 4].into())
        );
        assert_eq!(
            SubjectAltName::parse("[::1]").unwrap(),
            SubjectAltName::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            SubjectAltName::parse("API.Example.com.").unwrap(),
            SubjectAltName::Dns("api.example.com".into())
        );
        assert!(SubjectAltName::parse("*.example.com").is_ok());
        for bad in ["", "a..b", "bad name", "a.*.b", "é.example"] {
            assert!(SubjectAltName::parse(bad).is_err(), "{bad}");
        }
    }
}
