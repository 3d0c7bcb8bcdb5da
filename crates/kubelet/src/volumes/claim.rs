//! persistentVolumeClaim and ephemeral volumes (upstream's desired-state populator
//! `getPVCExtractPV` / `getPVSpec`): the claim must be bound, its volume bound back to it, and the
//! volume a `hostPath` or `local` one, whose path the pod then uses as it is.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};

/// A claim or its volume the kubelet cannot use (upstream's words, after
/// `error processing PVC <ns>/<claim>: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimProblem {
    #[error("PVC is being deleted")]
    Deleting,
    #[error("PVC is not bound")]
    NotBound,
    #[error("PVC has empty pvc.Spec.VolumeName")]
    NoVolumeName,
    #[error("failed to fetch PVC from API server: persistentvolumeclaims \"{0}\" not found")]
    ClaimNotFound(String),
    #[error("failed to fetch PV {0} from API server: persistentvolumes \"{0}\" not found")]
    VolumeNotFound(String),
    #[error("found PV object {0} but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim")]
    VolumeUnbound(String),
    #[error("found PV object {volume} but its pv.Spec.ClaimRef.UID ({volume_claim_uid}) does not point to claim.UID ({claim_uid})")]
    WrongClaim {
        volume: String,
        volume_claim_uid: String,
        claim_uid: String,
    },
    #[error("PV {0} has a volume source k3rs cannot mount: only hostPath and local volumes are supported")]
    UnsupportedSource(String),
    #[error(
        "PVC {namespace}/{claim} was not created for pod {namespace}/{pod} (pod is not owner)"
    )]
    NotOwner {
        namespace: String,
        claim: String,
        pod: String,
    },
}

/// Where a bound volume is on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VolumePath {
    pub(crate) path: String,
    /// The hostPath `type` to check; `None` for a local volume.
    pub(crate) host_path_type: Option<String>,
}

/// The claim name of a generic ephemeral volume: `<pod>-<volume>`.
pub(crate) fn ephemeral_claim_name(pod: &Pod, volume: &str) -> String {
    format!(
        "{}-{volume}",
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// An ephemeral volume's claim must be controlled by the pod, or it belongs to someone else.
pub(crate) fn check_ephemeral_owner(
    pod: &Pod,
    claim: &PersistentVolumeClaim,
) -> Result<(), ClaimProblem> {
    let pod_uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let owned = claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.controller == Some(true) && owner.uid == pod_uid);
    if owned {
        Ok(())
    } else {
        Err(ClaimProblem::NotOwner {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            claim: claim.metadata.name.clone().unwrap_or_default(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
        })
    }
}

/// The name of the volume a usable claim is bound to.
pub(crate) fn bound_volume_name(claim: &PersistentVolumeClaim) -> Result<String, ClaimProblem> {
    if claim.metadata.deletion_timestamp.is_some() {
        return Err(ClaimProblem::Deleting);
    }
    if claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        return Err(ClaimProblem::NotBound);
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|name| !name.is_empty())
        .ok_or(ClaimProblem::NoVolumeName)
}

/// The node path of a volume bound to `claim_uid`.
pub(crate) fn volume_path(
    volume: &PersistentVolume,
    claim_uid: &str,
) -> Result<VolumePath, ClaimProblem> {
    let name = volume.metadata.name.clone().unwrap_or_default();
    let spec = volume.spec.as_ref();
    let claim_ref = spec
        .and_then(|s| s.claim_ref.as_ref())
        .ok_or_else(|| ClaimProblem::VolumeUnbound(name.clone()))?;
    let bound_uid = claim_ref.uid.clone().unwrap_or_default();
    if bound_uid != claim_uid {
        return Err(ClaimProblem::WrongClaim {
            volume: name,
            volume_claim_uid: bound_uid,
            claim_uid: claim_uid.to_owned(),
        });
    }
    if let Some(host_path) = spec.and_then(|s| s.host_path.as_ref()) {
        return Ok(VolumePath {
            path: host_path.path.clone(),
            host_path_type: host_path.type_.clone(),
        });
    }
    if let Some(local) = spec.and_then(|s| s.local.as_ref()) {
        return Ok(VolumePath {
            path: local.path.clone(),
            host_path_type: None,
        });
    }
    Err(ClaimProblem::UnsupportedSource(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        HostPathVolumeSource, LocalVolumeSource, NFSVolumeSource, ObjectReference,
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

    fn claim(phase: &str, volume: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                uid: Some("claim-uid".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                volume_name: volume.map(str::to_owned),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn claim_must_be_bound() {
        assert_eq!(
            bound_volume_name(&claim("Bound", Some("pv-1"))).unwrap(),
            "pv-1"
        );
        assert_eq!(
            bound_volume_name(&claim("Pending", None))
                .unwrap_err()
                .to_string(),
            "PVC is not bound"
        );
        assert_eq!(
            bound_volume_name(&claim("Bound", None))
                .unwrap_err()
                .to_string(),
            "PVC has empty pvc.Spec.VolumeName"
        );
        let mut deleting = claim("Bound", Some("pv-1"));
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        assert_eq!(
            bound_volume_name(&deleting).unwrap_err(),
            ClaimProblem::Deleting
        );
    }

    fn volume(claim_uid: Option<&str>, spec: PersistentVolumeSpec) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some("pv-1".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                claim_ref: claim_uid.map(|uid| ObjectReference {
                    uid: Some(uid.into()),
                    ..Default::default()
                }),
                ..spec
            }),
            ..Default::default()
        }
    }

    #[test]
    fn volume_paths_of_host_path_and_local() {
        let host = PersistentVolumeSpec {
            host_path: Some(HostPathVolumeSource {
                path: "/srv/data".into(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            volume_path(&volume(Some("claim-uid"), host.clone()), "claim-uid").unwrap(),
            VolumePath {
                path: "/srv/data".into(),
                host_path_type: Some("DirectoryOrCreate".into())
            }
        );
        let local = PersistentVolumeSpec {
            local: Some(LocalVolumeSource {
                path: "/mnt/disk1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            volume_path(&volume(Some("claim-uid"), local), "claim-uid")
                .unwrap()
                .path,
            "/mnt/disk1"
        );
        assert_eq!(
            volume_path(&volume(None, host.clone()), "claim-uid").unwrap_err().to_string(),
            "found PV object pv-1 but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"
        );
        assert_eq!(
            volume_path(&volume(Some("other"), host), "claim-uid").unwrap_err().to_string(),
            "found PV object pv-1 but its pv.Spec.ClaimRef.UID (other) does not point to claim.UID (claim-uid)"
        );
        let nfs = PersistentVolumeSpec {
            nfs: Some(NFSVolumeSource::default()),
            ..Default::default()
        };
        assert!(matches!(
            volume_path(&volume(Some("claim-uid"), nfs), "claim-uid"),
            Err(ClaimProblem::UnsupportedSource(_))
        ));
    }

    #[test]
    fn ephemeral_claims_belong_to_their_pod() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("pod-uid".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(ephemeral_claim_name(&pod, "scratch"), "web-scratch");
        let mut pvc = claim("Bound", Some("pv-1"));
        pvc.metadata.name = Some("web-scratch".into());
        assert_eq!(
            check_ephemeral_owner(&pod, &pvc).unwrap_err().to_string(),
            "PVC prod/web-scratch was not created for pod prod/web (pod is not owner)"
        );
        pvc.metadata.owner_references = Some(vec![OwnerReference {
            controller: Some(true),
            uid: "pod-uid".into(),
            ..Default::default()
        }]);
        check_ephemeral_owner(&pod, &pvc).unwrap();
    }
}
