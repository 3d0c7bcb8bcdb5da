//! `VolumeBinding`, the part k3rs has today: every PersistentVolumeClaim a pod mounts must exist
//! and (for immediate binding) be bound, and a bound volume's node affinity must match the node.
//!
//! Claims of a `WaitForFirstConsumer` class that are still unbound are where dynamic
//! provisioning will hook in (pick the node, annotate the claim with
//! `volume.kubernetes.io/selected-node`, wait for the provisioner); until then no node can take
//! such a pod ([`REASON_BIND_CONFLICT`]).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::{NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

use super::filters::{Rejection, Verdict};
use super::nodeaffinity::volume_affinity_matches;

/// A claim the pod needs is bound but not to a volume that exists (yet).
pub const REASON_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// A bound volume's node affinity excludes the node.
pub const REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// No volume can be bound or provisioned for an unbound `WaitForFirstConsumer` claim.
pub const REASON_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// An unbound claim of immediate binding: the volume controller has not bound it yet.
pub const REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The annotation the volume controller sets once a claim's binding is complete.
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// The storage class annotation that predates `spec.storageClassName` (and wins over it).
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The objects volume checks read: claims, volumes and classes from the informers.
pub trait VolumeObjects {
    /// The claim `name` in `namespace`.
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>>;
    /// The volume `name`.
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>>;
    /// The storage class `name`.
    fn class(&self, name: &str) -> Option<Arc<StorageClass>>;
}

/// What the pod's claims require of a node, worked out once per cycle.
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    /// The node affinity of each bound volume that has one.
    bound_affinity: Vec<NodeSelector>,
    /// A bound claim names a volume that does not exist.
    missing_volume: bool,
    /// Unbound claims of a `WaitForFirstConsumer` class.
    waiting_for_consumer: usize,
}

impl PodVolumes {
    /// Whether the pod's volumes constrain nodes at all.
    pub fn is_empty(&self) -> bool {
        self.bound_affinity.is_empty() && !self.missing_volume && self.waiting_for_consumer == 0
    }
}

/// The claims of `pod` (upstream's VolumeBinding PreFilter): a missing, lost or deleting
/// claim, or an unbound claim of immediate binding, rejects the pod on every node.
pub fn prefilter(pod: &Pod, objects: &dyn VolumeObjects) -> Result<PodVolumes, Rejection> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let mut claims = Vec::new();
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let (name, ephemeral) = match (&volume.persistent_volume_claim, &volume.ephemeral) {
            (Some(source), _) => (source.claim_name.clone(), false),
            (None, Some(_)) => (format!("{pod_name}-{}", volume.name), true),
            (None, None) => continue,
        };
        let Some(claim) = objects.claim(namespace, &name) else {
            return Err(Rejection::unresolvable(if ephemeral {
                format!("waiting for ephemeral volume controller to create the persistentvolumeclaim \"{name}\"")
            } else {
                format!("persistentvolumeclaim \"{name}\" not found")
            }));
        };
        let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .unwrap_or("");
        if phase == Some("Lost") {
            return Err(Rejection::unresolvable(format!(
                "persistentvolumeclaim \"{name}\" bound to non-existent persistentvolume \"{volume_name}\""
            )));
        }
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(Rejection::unresolvable(format!(
                "persistentvolumeclaim \"{name}\" is being deleted"
            )));
        }
        if ephemeral && !owned_by(&claim, pod) {
            return Err(Rejection::unresolvable(format!(
                "PVC {namespace}/{name} was not created for pod {namespace}/{pod_name} (pod is not owner)"
            )));
        }
        claims.push(claim);
    }
    let mut volumes = PodVolumes::default();
    let mut unbound_immediate = false;
    for claim in claims {
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .unwrap_or("");
        let bound = !volume_name.is_empty()
            && claim
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(BIND_COMPLETED));
        if bound {
            match objects.volume(volume_name) {
                None => volumes.missing_volume = true,
                Some(volume) => {
                    if let Some(required) = volume
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_affinity.as_ref())
                        .and_then(|a| a.required.clone())
                    {
                        volumes.bound_affinity.push(required);
                    }
                }
            }
        } else if volume_name.is_empty() && waits_for_first_consumer(&claim, objects) {
            volumes.waiting_for_consumer += 1;
        } else {
            // Immediate binding, or pre-bound to a volume: the volume controller binds these.
            unbound_immediate = true;
        }
    }
    if unbound_immediate {
        return Err(Rejection::unresolvable(REASON_UNBOUND_IMMEDIATE));
    }
    Ok(volumes)
}

fn owned_by(claim: &PersistentVolumeClaim, pod: &Pod) -> bool {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn waits_for_first_consumer(claim: &PersistentVolumeClaim, objects: &dyn VolumeObjects) -> bool {
    let class = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BETA_STORAGE_CLASS).cloned())
        .or_else(|| {
            claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone())
        })
        .unwrap_or_default();
    if class.is_empty() {
        return false;
    }
    objects
        .class(&class)
        .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
}

/// `VolumeBinding` on one node: bound volumes must allow it, volumes must exist, and unbound
/// `WaitForFirstConsumer` claims have nothing to bind to yet.
pub fn volume_binding(volumes: &PodVolumes, node: &Node) -> Verdict {
    let mut reasons = Vec::new();
    if !volumes
        .bound_affinity
        .iter()
        .all(|required| volume_affinity_matches(required, node))
    {
        reasons.push(REASON_NODE_CONFLICT.to_owned());
    }
    // Dynamic provisioning for WaitForFirstConsumer claims goes here: a node passes when a
    // matching volume exists or the class's provisioner can make one there.
    if volumes.waiting_for_consumer > 0 {
        reasons.push(REASON_BIND_CONFLICT.to_owned());
    }
    if volumes.missing_volume {
        reasons.push(REASON_PV_NOT_EXIST.to_owned());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            code: super::filters::Code::UnschedulableAndUnresolvable,
            reasons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Objects {
        claims: BTreeMap<String, Arc<PersistentVolumeClaim>>,
        volumes: BTreeMap<String, Arc<PersistentVolume>>,
        classes: BTreeMap<String, Arc<StorageClass>>,
    }

    impl VolumeObjects for Objects {
        fn claim(&self, _namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
            self.claims.get(name).cloned()
        }
        fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
            self.volumes.get(name).cloned()
        }
        fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
            self.classes.get(name).cloned()
        }
    }

    fn objects() -> Objects {
        let claim = |name: &str, value: serde_json::Value| {
            let mut claim: PersistentVolumeClaim = serde_json::from_value(value).unwrap();
            claim.metadata.name = Some(name.to_owned());
            (name.to_owned(), Arc::new(claim))
        };
        let bound = json!({"metadata": {"annotations": {BIND_COMPLETED: "yes"}}, "spec": {"volumeName": "pv1"}});
        Objects {
            claims: BTreeMap::from([
                claim("bound", bound),
                claim("nowhere", json!({"metadata": {"annotations": {BIND_COMPLETED: "yes"}}, "spec": {"volumeName": "gone"}})),
                claim("pending", json!({"spec": {"storageClassName": "fast"}})),
                claim("later", json!({"spec": {"storageClassName": "local"}})),
                claim("lost", json!({"spec": {"volumeName": "pv9"}, "status": {"phase": "Lost"}})),
            ]),
            volumes: BTreeMap::from([(
                "pv1".to_owned(),
                Arc::new(serde_json::from_value(json!({"metadata": {"name": "pv1"}, "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}}})).unwrap()),
            )]),
            classes: BTreeMap::from([
                ("fast".to_owned(), Arc::new(serde_json::from_value(json!({"metadata": {"name": "fast"}, "provisioner": "x", "volumeBindingMode": "Immediate"})).unwrap())),
                ("local".to_owned(), Arc::new(serde_json::from_value(json!({"metadata": {"name": "local"}, "provisioner": "x", "volumeBindingMode": "WaitForFirstConsumer"})).unwrap())),
            ]),
        }
    }

    fn pod_with(claims: &[&str]) -> Pod {
        let volumes: Vec<_> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [], "volumes": volumes}}))
        .unwrap()
    }

    fn node(name: &str) -> Node {
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
        )
        .unwrap()
    }

    #[test]
    fn prefilter_reasons() {
        let objects = objects();
        let reason = |claims: &[&str]| {
            prefilter(&pod_with(claims), &objects)
                .err()
                .map(|r| r.message())
        };
        assert_eq!(reason(&[]), None);
        assert_eq!(reason(&["bound"]), None);
        assert_eq!(reason(&["later"]), None);
        assert_eq!(
            reason(&["bound", "missing"]).as_deref(),
            Some("persistentvolumeclaim \"missing\" not found")
        );
        assert_eq!(
            reason(&["pending"]).as_deref(),
            Some(REASON_UNBOUND_IMMEDIATE)
        );
        assert_eq!(
            reason(&["lost"]).as_deref(),
            Some("persistentvolumeclaim \"lost\" bound to non-existent persistentvolume \"pv9\"")
        );
    }

    #[test]
    fn filter_reasons() {
        let objects = objects();
        let reason = |claims: &[&str], node_name: &str| {
            let volumes = prefilter(&pod_with(claims), &objects).unwrap();
            volume_binding(&volumes, &node(node_name))
                .err()
                .map(|r| r.message())
        };
        assert_eq!(reason(&["bound"], "n1"), None);
        assert_eq!(
            reason(&["bound"], "n2").as_deref(),
            Some(REASON_NODE_CONFLICT)
        );
        assert_eq!(
            reason(&["nowhere"], "n1").as_deref(),
            Some(REASON_PV_NOT_EXIST)
        );
        assert_eq!(
            reason(&["bound", "later"], "n2").as_deref(),
            Some("node(s) had volume node affinity conflict, node(s) didn't find available persistent volumes to bind")
        );
    }
}
