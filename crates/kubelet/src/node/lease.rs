//! The node's heartbeat Lease `kube-node-lease/<node>`, kept as the kubelet's lease controller
//! keeps it (`component-helpers/apimachinery/lease`): created when missing, then updated with a
//! new `renewTime` from the last version written, re-read after a conflict.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::retry::timed;
use crate::KubeletError;

/// The namespace of node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Who holds the Lease.
#[derive(Clone, Debug)]
pub(crate) struct LeaseHolder {
    /// The node's name: the Lease's name and `holderIdentity`.
    pub(crate) node: String,
    /// The Node's uid, for the owner reference (the Lease goes when the Node does).
    pub(crate) node_uid: String,
    /// `leaseDurationSeconds`.
    pub(crate) duration_seconds: i32,
}

/// `existing` (or a new Lease) renewed at `now`, held by `holder`, owned by its Node.
pub(crate) fn renewed(existing: Option<Lease>, holder: &LeaseHolder, now: MicroTime) -> Lease {
    let mut lease = existing.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(holder.node.clone()),
            namespace: Some(NODE_LEASE_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(holder.node.clone());
    spec.lease_duration_seconds = Some(holder.duration_seconds);
    spec.renew_time = Some(now);
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: holder.node.clone(),
        uid: holder.node_uid.clone(),
        ..OwnerReference::default()
    };
    let owners = lease.metadata.owner_references.get_or_insert_with(Vec::new);
    if !owners
        .iter()
        .any(|o| o.kind == "Node" && o.uid == holder.node_uid)
    {
        owners.retain(|o| o.kind != "Node");
        owners.push(owner);
    }
    lease
}

/// Keeps one node's Lease: the last version written, so that a renewal is one update.
#[derive(Debug)]
pub(crate) struct LeaseKeeper {
    api: Api<Lease>,
    holder: LeaseHolder,
    /// Boxed: a Lease is large next to the rest, and the keeper sits in an enum.
    last: Option<Box<Lease>>,
}

impl Clone for LeaseKeeper {
    /// A keeper for a restarted heartbeat: it reads the Lease before its first renewal.
    fn clone(&self) -> Self {
        LeaseKeeper {
            api: self.api.clone(),
            holder: self.holder.clone(),
            last: None,
        }
    }
}

impl LeaseKeeper {
    pub(crate) fn new(client: Client, holder: LeaseHolder) -> Self {
        LeaseKeeper {
            api: Api::namespaced(client, NODE_LEASE_NAMESPACE),
            holder,
            last: None,
        }
    }

    /// Renews the Lease now (creating it when missing). After a failure the next renewal reads
    /// the Lease first.
    pub(crate) async fn renew(&mut self) -> Result<(), KubeletError> {
        let node = self.holder.node.clone();
        let result = timed(
            || format!("lease {NODE_LEASE_NAMESPACE}/{node}"),
            self.renew_once(),
        )
        .await;
        if result.is_err() {
            self.last = None;
        }
        result
    }

    async fn renew_once(&mut self) -> Result<(), KubeletError> {
        let node = self.holder.node.clone();
        let error = move |action, source| KubeletError::Lease {
            node: node.clone(),
            action,
            source,
        };
        let current = match self.last.take() {
            Some(lease) => Some(*lease),
            None => self
                .api
                .get_opt(&self.holder.node)
                .await
                .map_err(|e| error("reading", e))?,
        };
        let written = match current {
            None => {
                let lease = renewed(None, &self.holder, crate::clock::micro_now());
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(|e| error("creating", e))?
            }
            Some(current) => {
                let lease = renewed(Some(current), &self.holder, crate::clock::micro_now());
                self.api
                    .replace(&self.holder.node, &PostParams::default(), &lease)
                    .await
                    .map_err(|e| error("renewing", e))?
            }
        };
        self.last = Some(Box::new(written));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> LeaseHolder {
        LeaseHolder {
            node: "hollow-1".into(),
            node_uid: "uid-1".into(),
            duration_seconds: 40,
        }
    }

    fn micro(text: &str) -> MicroTime {
        MicroTime(text.parse().unwrap())
    }

    #[test]
    fn a_new_lease_is_held_and_owned_by_the_node() {
        let lease = renewed(None, &holder(), micro("2026-01-01T00:00:00.123456Z"));
        let json = serde_json::to_value(&lease).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": "hollow-1",
                    "namespace": "kube-node-lease",
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": "hollow-1", "uid": "uid-1"}
                    ],
                },
                "spec": {
                    "holderIdentity": "hollow-1",
                    "leaseDurationSeconds": 40,
                    "renewTime": "2026-01-01T00:00:00.123456Z",
                },
            })
        );
    }

    #[test]
    fn renewal_moves_renew_time_and_keeps_the_rest() {
        let mut first = renewed(None, &holder(), micro("2026-01-01T00:00:00Z"));
        first.metadata.resource_version = Some("7".into());
        first.metadata.labels = Some([("a".to_owned(), "b".to_owned())].into());
        let second = renewed(
            Some(first.clone()),
            &holder(),
            micro("2026-01-01T00:00:10Z"),
        );
        assert_eq!(second.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(second.metadata.labels, first.metadata.labels);
        assert_eq!(
            second.metadata.owner_references,
            first.metadata.owner_references
        );
        assert_eq!(
            second.spec.unwrap().renew_time.unwrap().0.to_string(),
            "2026-01-01T00:00:10Z"
        );
    }

    #[test]
    fn a_recreated_node_takes_over_the_owner_reference() {
        let old = renewed(None, &holder(), micro("2026-01-01T00:00:00Z"));
        let mut new_holder = holder();
        new_holder.node_uid = "uid-2".into();
        let lease = renewed(Some(old), &new_holder, micro("2026-01-01T00:00:01Z"));
        let owners = lease.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "uid-2");
    }
}
