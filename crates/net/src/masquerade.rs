//! Egress masquerade and forwarding for the cluster's pod range, as flannel sets them up for k3s,
//! in two chains of our own that `iptables-restore --noflush` replaces whole.
//!
//! `K3RS-POSTROUTING` (table `nat`, jumped to from `POSTROUTING`) follows flannel's `masqRules`
//! (`pkg/trafficmngr/iptables`): pod traffic within the cluster keeps its addresses, traffic from
//! pods to the outside (multicast excepted) leaves with the node's address, traffic from outside
//! the cluster to this node's pods keeps its source (a NodePort client's address), and traffic
//! from the node or elsewhere to other nodes' pods is masqueraded so the answer comes back here.
//! flannel's first rule, RETURN for packets kube-proxy marked 0x4000 (kube-proxy masquerades
//! them itself), is left out: k3rs runs no kube-proxy.
//!
//! `K3RS-FORWARD` (table `filter`, jumped to from `FORWARD`) accepts traffic from and to the
//! cluster range, for hosts whose `FORWARD` policy is DROP (Docker sets it).
//!
//! Both jumps are inserted first in their chain, so nothing a host appends (a REJECT, a catch-all
//! rule) comes before them. Applying again replaces the chains' rules and adds a jump only where
//! none is; removing deletes every jump to the chains and the chains, and finds nothing the
//! second time. Nothing outside these two chains and the jumps to them is changed.

use std::fmt::Write as _;

use ipnet::Ipv4Net;

use crate::iptables::{self, declares, jumps_to, IptablesError};

/// The chain in table `nat` with the masquerade rules.
pub const NAT_CHAIN: &str = "K3RS-POSTROUTING";

/// The chain in table `filter` with the forwarding rules.
pub const FORWARD_CHAIN: &str = "K3RS-FORWARD";

/// Multicast, which is never masqueraded.
const MULTICAST: &str = "224.0.0.0/4";

/// A chain of ours and the built-in chain that jumps to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hook {
    table: &'static str,
    builtin: &'static str,
    chain: &'static str,
}

const HOOKS: [Hook; 2] = [
    Hook {
        table: "nat",
        builtin: "POSTROUTING",
        chain: NAT_CHAIN,
    },
    Hook {
        table: "filter",
        builtin: "FORWARD",
        chain: FORWARD_CHAIN,
    },
];

/// The ranges the rules are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasqueradeRanges {
    /// The cluster's pod range.
    pub cluster_cidr: Ipv4Net,
    /// This node's pod range.
    pub pod_cidr: Ipv4Net,
}

impl MasqueradeRanges {
    /// The rules of `chain`, in order, as `iptables` arguments after `-A <chain>`.
    pub fn rules(&self, chain: &str) -> Vec<String> {
        let cluster = self.cluster_cidr.trunc();
        let pod = self.pod_cidr.trunc();
        match chain {
            NAT_CHAIN => vec![
                // Between pods, wherever they run: no NAT.
                format!("-s {pod} -d {cluster} -j RETURN"),
                format!("-s {cluster} -d {pod} -j RETURN"),
                // From outside the cluster to this node's pods: keep the client's address.
                format!("! -s {cluster} -d {pod} -j RETURN"),
                // From pods to the world (not multicast): the node's address.
                format!("-s {cluster} ! -d {MULTICAST} -j MASQUERADE --random-fully"),
                // From the node (or beyond) to other nodes' pods: the node's address, so the
                // answer comes back through the overlay.
                format!("! -s {cluster} -d {cluster} -j MASQUERADE --random-fully"),
            ],
            FORWARD_CHAIN => vec![
                format!("-s {cluster} -j ACCEPT"),
                format!("-d {cluster} -j ACCEPT"),
            ],
            _ => Vec::new(),
        }
    }
}

/// `iptables-save -t <table>` output for the two tables the rules are in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedTables {
    /// Table `nat`.
    pub nat: String,
    /// Table `filter`.
    pub filter: String,
}

impl SavedTables {
    fn table(&self, table: &str) -> &str {
        match table {
            "nat" => &self.nat,
            "filter" => &self.filter,
            _ => "",
        }
    }
}

/// The `iptables-restore --noflush` input that makes the chains hold exactly the rules for
/// `ranges`, given what the tables hold now. Declaring a chain flushes it (or creates it); the
/// jump is inserted only when the built-in chain has none, and extra copies are deleted.
pub fn apply_ruleset(ranges: &MasqueradeRanges, saved: &SavedTables) -> String {
    let mut text = String::new();
    for hook in HOOKS {
        let _ = writeln!(text, "*{}", hook.table);
        let _ = writeln!(text, ":{} - [0:0]", hook.chain);
        for rule in ranges.rules(hook.chain) {
            let _ = writeln!(text, "-A {} {rule}", hook.chain);
        }
        let jumps: Vec<&str> = jumps_to(saved.table(hook.table), hook.chain)
            .into_iter()
            .filter(|(from, _)| *from == hook.builtin)
            .map(|(_, spec)| spec)
            .collect();
        match jumps.split_first() {
            None => {
                let _ = writeln!(text, "-I {} 1 -j {}", hook.builtin, hook.chain);
            }
            Some((_, extra)) => {
                for spec in extra {
                    let _ = writeln!(text, "-D {} {spec}", hook.builtin);
                }
            }
        }
        text.push_str("COMMIT\n");
    }
    text
}

/// The `iptables-restore --noflush` input that deletes every jump to our chains and the chains,
/// given what the tables hold now; `None` when there is nothing to delete.
pub fn removal_ruleset(saved: &SavedTables) -> Option<String> {
    let mut text = String::new();
    for hook in HOOKS {
        let table = saved.table(hook.table);
        let jumps = jumps_to(table, hook.chain);
        let exists = declares(table, hook.chain);
        if jumps.is_empty() && !exists {
            continue;
        }
        let _ = writeln!(text, "*{}", hook.table);
        for (from, spec) in jumps {
            let _ = writeln!(text, "-D {from} {spec}");
        }
        if exists {
            let _ = writeln!(text, "-F {}", hook.chain);
            let _ = writeln!(text, "-X {}", hook.chain);
        }
        text.push_str("COMMIT\n");
    }
    (!text.is_empty()).then_some(text)
}

/// Makes the chains hold the rules for `ranges` and jumps point at them, in one transaction per
/// table. Runs in the calling thread's network namespace (the programs are children of it).
pub async fn apply(ranges: &MasqueradeRanges) -> Result<(), IptablesError> {
    let saved = save().await?;
    iptables::restore(&apply_ruleset(ranges, &saved)).await?;
    tracing::debug!(cluster = %ranges.cluster_cidr, pod = %ranges.pod_cidr, "applied masquerade rules");
    Ok(())
}

/// Deletes the jumps and the chains; nothing to delete is not an error.
pub async fn remove() -> Result<(), IptablesError> {
    let saved = save().await?;
    if let Some(text) = removal_ruleset(&saved) {
        iptables::restore(&text).await?;
        tracing::info!("removed masquerade rules");
    }
    Ok(())
}

/// Reads the tables we touch.
pub async fn save() -> Result<SavedTables, IptablesError> {
    Ok(SavedTables {
        nat: iptables::save_table("nat").await?,
        filter: iptables::save_table("filter").await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> MasqueradeRanges {
        MasqueradeRanges {
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            pod_cidr: "10.42.3.0/24".parse().unwrap(),
        }
    }

    /// `iptables-save` of a host where Docker runs and our rules were applied once.
    const APPLIED: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:K3RS-POSTROUTING - [0:0]
-A POSTROUTING -j K3RS-POSTROUTING
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A K3RS-POSTROUTING -s 10.42.3.0/24 -d 10.42.0.0/16 -j RETURN
COMMIT
";

    const APPLIED_FILTER: &str = "\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:K3RS-FORWARD - [0:0]
-A FORWARD -j K3RS-FORWARD
-A FORWARD -j DOCKER-USER
-A FORWARD -m comment --comment \"an older k3rs\" -j K3RS-FORWARD
-A K3RS-FORWARD -s 10.42.0.0/16 -j ACCEPT
COMMIT
";

    #[test]
    fn rules_follow_flannel() {
        let r = ranges();
        assert_eq!(
            r.rules(NAT_CHAIN),
            [
                "-s 10.42.3.0/24 -d 10.42.0.0/16 -j RETURN",
                "-s 10.42.0.0/16 -d 10.42.3.0/24 -j RETURN",
                "! -s 10.42.0.0/16 -d 10.42.3.0/24 -j RETURN",
                "-s 10.42.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully",
                "! -s 10.42.0.0/16 -d 10.42.0.0/16 -j MASQUERADE --random-fully",
            ]
        );
        assert_eq!(
            r.rules(FORWARD_CHAIN),
            ["-s 10.42.0.0/16 -j ACCEPT", "-d 10.42.0.0/16 -j ACCEPT"]
        );
        assert!(r.rules("INPUT").is_empty());
    }

    #[test]
    fn host_bits_do_not_reach_the_rules() {
        let r = MasqueradeRanges {
            cluster_cidr: "10.42.9.9/16".parse().unwrap(),
            pod_cidr: "10.42.3.7/24".parse().unwrap(),
        };
        assert_eq!(r.rules(NAT_CHAIN), ranges().rules(NAT_CHAIN));
    }

    #[test]
    fn apply_on_empty_tables_inserts_the_jumps() {
        let text = apply_ruleset(&ranges(), &SavedTables::default());
        crate::snapshot::check("masquerade-apply.rules", &text);
    }

    #[test]
    fn apply_again_adds_no_jump_and_drops_duplicates() {
        let saved = SavedTables {
            nat: APPLIED.to_owned(),
            filter: APPLIED_FILTER.to_owned(),
        };
        let text = apply_ruleset(&ranges(), &saved);
        assert!(!text.contains("-I "), "{text}");
        assert!(
            text.contains("-D FORWARD -m comment --comment \"an older k3rs\" -j K3RS-FORWARD\n"),
            "{text}"
        );
        assert_eq!(text.matches("-D ").count(), 1, "{text}");
        crate::snapshot::check("masquerade-reapply.rules", &text);
    }

    #[test]
    fn removal_deletes_every_jump_then_the_chains() {
        let saved = SavedTables {
            nat: APPLIED.to_owned(),
            filter: APPLIED_FILTER.to_owned(),
        };
        let text = removal_ruleset(&saved).unwrap();
        crate::snapshot::check("masquerade-remove.rules", &text);
    }

    #[test]
    fn removal_of_nothing_is_nothing() {
        assert_eq!(removal_ruleset(&SavedTables::default()), None);
        let unrelated = SavedTables {
            nat: "*nat\n:POSTROUTING ACCEPT [0:0]\n:K3RS-POSTROUTING-X - [0:0]\n-A POSTROUTING -j K3RS-POSTROUTING-X\nCOMMIT\n"
                .to_owned(),
            filter: String::new(),
        };
        assert_eq!(removal_ruleset(&unrelated), None);
    }

    #[test]
    fn removal_of_a_chain_left_without_its_jump() {
        let saved = SavedTables {
            nat: String::new(),
            filter: "*filter\n:FORWARD ACCEPT [0:0]\n:K3RS-FORWARD - [0:0]\nCOMMIT\n".to_owned(),
        };
        assert_eq!(
            removal_ruleset(&saved).unwrap(),
            "*filter\n-F K3RS-FORWARD\n-X K3RS-FORWARD\nCOMMIT\n"
        );
    }

    #[test]
    fn jumps_are_found_by_target_only() {
        let found = jumps_to(APPLIED_FILTER, FORWARD_CHAIN);
        assert_eq!(
            found,
            [
                ("FORWARD", "-j K3RS-FORWARD"),
                (
                    "FORWARD",
                    "-m comment --comment \"an older k3rs\" -j K3RS-FORWARD"
                )
            ]
        );
        assert!(jumps_to(APPLIED_FILTER, "K3RS").is_empty());
        assert!(declares(APPLIED, NAT_CHAIN));
        assert!(!declares(APPLIED, "K3RS"));
    }
}
