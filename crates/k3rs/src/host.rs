//! Facts about this host: its name and its primary IPv4 address.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// The host name, lowercase (node names must be DNS labels); `localhost` if it cannot be read.
pub(crate) fn hostname() -> String {
    match nix::unistd::gethostname() {
        Ok(name) => {
            let name = name.to_string_lossy().trim().to_ascii_lowercase();
            if name.is_empty() {
                "localhost".into()
            } else {
                name
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the host name; using localhost");
            "localhost".into()
        }
    }
}

/// The host's primary IPv4 address: the source address of the default route, found by
/// "connecting" a UDP socket (which sends nothing); else the first global address of an
/// interface that is up; else 127.0.0.1.
pub(crate) fn primary_ipv4() -> IpAddr {
    if let Some(ip) = default_route_source() {
        return ip;
    }
    if let Some(ip) = first_interface_address() {
        return ip;
    }
    tracing::warn!(
        "no non-loopback IPv4 address found; using 127.0.0.1 as the node IP (set --node-ip)"
    );
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn default_route_source() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // A documentation address (TEST-NET-1) takes the default route like any public one, and
    // connect() on a UDP socket only picks the route and the source address: nothing is sent.
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 53)).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(v4) if !v4.is_unspecified() && !v4.is_loopback() => Some(IpAddr::V4(v4)),
        _ => None,
    }
}

fn first_interface_address() -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for ifaddr in addrs {
        if !ifaddr.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP) {
            continue;
        }
        let Some(v4) = ifaddr
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|sin| sin.ip())
        else {
            continue;
        };
        if !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified() {
            return Some(IpAddr::V4(v4));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_facts_are_usable() {
        let name = hostname();
        assert!(!name.is_empty());
        assert_eq!(name, name.to_ascii_lowercase());
        assert!(primary_ipv4().is_ipv4());
    }
}
