//! The hostPort rules `portmap` left for pods of our network, removed at teardown: after a
//! killall the pods are gone without a CNI DEL, and their DNAT rules would otherwise point at
//! addresses the next pods get.
//!
//! portmap (containernetworking-plugins 1.x) gives each pod a chain `CNI-DN-<hash>` in table
//! `nat`, jumped to from its shared `CNI-HOSTPORT-DNAT` by rules commented
//! `dnat name: "<network>" id: "<container>"`. Only the rules and chains with our network's name
//! are removed; the shared chains stay, as portmap's own DEL leaves them (other CNI users on the
//! host may share them).

use std::fmt::Write as _;

use crate::iptables::{self, declares, IptablesError};

/// portmap's shared chain of DNAT jumps.
const DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";

/// The prefix of portmap's per-pod chains.
const POD_CHAIN_PREFIX: &str = "CNI-DN-";

/// The `iptables-restore --noflush` input that deletes network `network`'s per-pod portmap rules
/// and chains from `saved_nat` (`iptables-save -t nat`); `None` when there are none.
pub fn removal_ruleset(saved_nat: &str, network: &str) -> Option<String> {
    let marker = format!("dnat name: \\\"{network}\\\" id: ");
    let mut deletions = String::new();
    let mut chains: Vec<&str> = Vec::new();
    for line in saved_nat.lines() {
        let Some(spec) = line
            .strip_prefix("-A ")
            .and_then(|rest| rest.strip_prefix(DNAT_CHAIN))
            .and_then(|rest| rest.strip_prefix(' '))
        else {
            continue;
        };
        if !spec.contains(&marker) {
            continue;
        }
        let tokens: Vec<&str> = spec.split_whitespace().collect();
        let target = tokens
            .windows(2)
            .find(|pair| pair[0] == "-j")
            .map(|pair| pair[1])
            .filter(|target| target.starts_with(POD_CHAIN_PREFIX));
        let Some(target) = target else { continue };
        let _ = writeln!(deletions, "-D {DNAT_CHAIN} {spec}");
        if !chains.contains(&target) {
            chains.push(target);
        }
    }
    if deletions.is_empty() {
        return None;
    }
    let mut text = String::from("*nat\n");
    text.push_str(&deletions);
    for chain in chains
        .into_iter()
        .filter(|chain| declares(saved_nat, chain))
    {
        let _ = writeln!(text, "-F {chain}");
        let _ = writeln!(text, "-X {chain}");
    }
    text.push_str("COMMIT\n");
    Some(text)
}

/// Removes network `network`'s per-pod portmap rules in the calling thread's network namespace;
/// returns whether there were any (none is not an error).
pub async fn remove(network: &str) -> Result<bool, IptablesError> {
    let saved = iptables::save_table("nat").await?;
    match removal_ruleset(&saved, network) {
        Some(text) => {
            iptables::restore(&text).await?;
            tracing::info!(network, "removed portmap's hostPort rules");
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `iptables-save -t nat` after portmap ADD for a pod of `k3rs` (8080/tcp and 5353/udp) and
    /// one of another network.
    const SAVED: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-a6b885170bbbb98616c01 - [0:0]
:CNI-DN-0123456789abcdef01234 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-a6b885170bbbb98616c01 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.42.3.2:80
-A CNI-DN-a6b885170bbbb98616c01 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.42.3.2:53
-A CNI-DN-0123456789abcdef01234 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.88.0.2:90
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"k3rs\" id: \"abc\"" -m multiport --dports 8080 -j CNI-DN-a6b885170bbbb98616c01
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"k3rs\" id: \"abc\"" -m multiport --dports 5353 -j CNI-DN-a6b885170bbbb98616c01
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"podman\" id: \"def\"" -m multiport --dports 9090 -j CNI-DN-0123456789abcdef01234
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
COMMIT
"#;

    #[test]
    fn removes_only_our_networks_pods() {
        assert_eq!(
            removal_ruleset(SAVED, "k3rs").unwrap(),
            r#"*nat
-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"k3rs\" id: \"abc\"" -m multiport --dports 8080 -j CNI-DN-a6b885170bbbb98616c01
-D CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"k3rs\" id: \"abc\"" -m multiport --dports 5353 -j CNI-DN-a6b885170bbbb98616c01
-F CNI-DN-a6b885170bbbb98616c01
-X CNI-DN-a6b885170bbbb98616c01
COMMIT
"#
        );
    }

    #[test]
    fn a_name_that_only_starts_like_ours_is_not_ours() {
        assert_eq!(removal_ruleset(SAVED, "k3r"), None);
        assert_eq!(removal_ruleset(SAVED, "k3rs2"), None);
        assert_eq!(removal_ruleset("", "k3rs"), None);
    }
}
