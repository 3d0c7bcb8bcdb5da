//! PersistentVolume binding (upstream's `persistentvolume-binder`, static binding): a pending
//! claim is bound to the smallest Available volume that fits it — same storage class, the
//! access modes and volume mode it asks for, at least its requested size, and matching its
//! selector — or to the volume it names; a volume whose claim is gone is Released, then
//! deleted or kept by its reclaim policy. Dynamic provisioning (local-path) comes later:
//! claims of a class with a provisioner, or with `WaitForFirstConsumer`, are left pending with
//! an event saying so.

use std::collections::BTreeMap;
use std::sync::Arc;

use k3rs_api::LabelSelector;
use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, Patch};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::error::{gone_ok, Error};
use crate::patch_params as params;
use crate::Context;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::informer::Informer;
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";

/// What the worker syncs: a claim, or a volume.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    Claim(ObjectKey),
    Volume(String),
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Claim(key) => write!(f, "claim {key}"),
            Item::Volume(name) => write!(f, "volume {name}"),
        }
    }
}

#[derive(Clone)]
struct Shared {
    client: Client,
    volumes: Arc<Informer<PersistentVolume>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    classes: Arc<Informer<StorageClass>>,
    events: Recorder,
}

/// Registers the handlers and starts one worker (bindings are decided one at a time, so a
/// volume is never promised to two claims).
pub(crate) fn start(ctx: &Context) -> Supervised {
    let shared = Shared {
        client: ctx.client.clone(),
        volumes: ctx.informers.get::<PersistentVolume>(),
        claims: ctx.informers.get::<PersistentVolumeClaim>(),
        classes: ctx.informers.get::<StorageClass>(),
        events: Recorder::new(ctx.client.clone(), "persistentvolume-controller"),
    };
    let volumes = shared.volumes.clone();
    let claims = shared.claims.clone();
    Controller::new(&ctx.runtime, "persistentvolume-binder")
        .watches(&shared.claims, move |change| {
            let claim = change.object();
            let mut items = vec![Item::Claim(ObjectKey::of(claim.as_ref()))];
            // Its volume may now be released.
            if let Some(volume) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) {
                items.push(Item::Volume(volume));
            }
            // A claim that went away may free a volume another pending claim wants.
            for volume in volumes.cache().all() {
                if claim_ref_is(&volume, claim) {
                    items.push(Item::Volume(volume.name_any()));
                }
            }
            items
        })
        .watches(&shared.volumes, move |change| {
            let mut items = vec![Item::Volume(change.object().name_any())];
            // A new or freed volume may fit a pending claim.
            for claim in claims.cache().all() {
                if phase_of_claim(&claim) == "Pending" {
                    items.push(Item::Claim(ObjectKey::of(claim.as_ref())));
                }
            }
            items
        })
        .reads(&shared.classes)
        .run(move |item: Item| {
            let shared = shared.clone();
            async move {
                match item {
                    Item::Claim(key) => sync_claim(&shared, &key).await,
                    Item::Volume(name) => sync_volume(&shared, &name).await,
                }
            }
        })
}

fn phase_of_claim(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn claim_ref_is(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some_and(|r| {
            r.name.as_deref() == claim.metadata.name.as_deref()
                && r.namespace.as_deref() == claim.metadata.namespace.as_deref()
        })
}

fn storage_bytes(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Option<i64> {
    map?.get("storage")
        .and_then(|q| k3rs_api::quantity::value(&q.0))
}

fn class_of_claim(claim: &PersistentVolumeClaim) -> String {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// Whether `volume` can hold `claim` (upstream's `checkVolumeSatisfyClaim` plus the selector).
fn fits(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let (Some(vspec), Some(cspec)) = (volume.spec.as_ref(), claim.spec.as_ref()) else {
        return false;
    };
    if vspec.storage_class_name.clone().unwrap_or_default() != class_of_claim(claim) {
        return false;
    }
    let requested =
        storage_bytes(cspec.resources.as_ref().and_then(|r| r.requests.as_ref())).unwrap_or(0);
    if storage_bytes(vspec.capacity.as_ref()).unwrap_or(0) < requested {
        return false;
    }
    let modes = vspec.access_modes.clone().unwrap_or_default();
    if !cspec
        .access_modes
        .iter()
        .flatten()
        .all(|m| modes.contains(m))
    {
        return false;
    }
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "Filesystem".into());
    if mode(&vspec.volume_mode) != mode(&cspec.volume_mode) {
        return false;
    }
    match &cspec.selector {
        None => true,
        Some(selector) => LabelSelector::from_typed(Some(selector))
            .ok()
            .is_some_and(|s| s.matches(&volume.metadata.labels.clone().unwrap_or_default())),
    }
}

fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

async fn sync_claim(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(claim) = shared.claims.cache().get(key) else {
        return Ok(Action::Done);
    };
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let named = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty());
    let volume = match &named {
        Some(name) => match shared.volumes.cache().get_named("", name) {
            Some(volume) => volume,
            None => {
                if phase_of_claim(&claim) == "Bound" {
                    set_claim_phase(shared, &claim, "Lost").await?;
                    shared
                        .events
                        .warning(claim.as_ref(), "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!".into())
                        .await;
                }
                return Ok(Action::Done);
            }
        },
        None => {
            if let Some(class) = shared
                .classes
                .cache()
                .get_named("", &class_of_claim(&claim))
            {
                if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") {
                    shared
                        .events
                        .normal(
                            claim.as_ref(),
                            "WaitForFirstConsumer",
                            "waiting for first consumer to be created before binding".into(),
                        )
                        .await;
                    return Ok(Action::Done);
                }
            }
            let mut candidates: Vec<Arc<PersistentVolume>> = shared
                .volumes
                .cache()
                .all()
                .into_iter()
                .filter(|v| {
                    let free = v
                        .spec
                        .as_ref()
                        .and_then(|s| s.claim_ref.as_ref())
                        .is_none_or(|r| {
                            // Pre-bound to this claim by name (no uid yet) or already ours.
                            r.name.as_deref() == claim.metadata.name.as_deref()
                                && r.namespace.as_deref() == claim.metadata.namespace.as_deref()
                                && r.uid
                                    .as_deref()
                                    .is_none_or(|u| Some(u) == claim.metadata.uid.as_deref())
                        });
                    free && v.metadata.deletion_timestamp.is_none() && fits(v, &claim)
                })
                .collect();
            candidates.sort_by_key(|v| {
                (
                    storage_bytes(v.spec.as_ref().and_then(|s| s.capacity.as_ref())).unwrap_or(0),
                    v.name_any(),
                )
            });
            match candidates.into_iter().next() {
                Some(volume) => volume,
                None => {
                    let class = class_of_claim(&claim);
                    let message = if class.is_empty() {
                        "no persistent volumes available for this claim and no storage class is set"
                            .to_owned()
                    } else {
                        format!("storageclass.storage.k8s.io \"{class}\" not found or no volume of that class fits")
                    };
                    shared
                        .events
                        .normal(claim.as_ref(), "FailedBinding", message)
                        .await;
                    return Ok(Action::Done);
                }
            }
        }
    };
    bind(shared, &volume, &claim, named.is_none()).await?;
    Ok(Action::Done)
}

/// Binds in upstream's order: the volume's claimRef first (it is the lock), then the claim's
/// volumeName, then both statuses.
async fn bind(
    shared: &Shared,
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
    chosen: bool,
) -> Result<(), Error> {
    let volumes: Api<PersistentVolume> = Api::all(shared.client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(
        shared.client.clone(),
        &claim.namespace().unwrap_or_default(),
    );
    let claim_ref = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        ..ObjectReference::default()
    };
    let current = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    if current.and_then(|r| r.uid.as_deref()) != claim.metadata.uid.as_deref() {
        let mut annotations = json!({});
        if current.is_none() {
            annotations[BOUND_BY_CONTROLLER] = json!("yes");
        }
        let patch = json!({
            "metadata": {"resourceVersion": volume.resource_version(), "annotations": annotations},
            "spec": {"claimRef": claim_ref},
        });
        volumes
            .patch(&volume.name_any(), &params(), &Patch::Merge(&patch))
            .await?;
    }
    if volume_phase(volume) != "Bound" {
        let patch = json!({"status": {"phase": "Bound"}});
        volumes
            .patch_status(&volume.name_any(), &params(), &Patch::Merge(&patch))
            .await?;
    }
    let named = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
    if named != Some(volume.name_any().as_str())
        || claim.annotations().get(BIND_COMPLETED).is_none()
    {
        let mut annotations = json!({BIND_COMPLETED: "yes"});
        if chosen {
            annotations[BOUND_BY_CONTROLLER] = json!("yes");
        }
        let patch = json!({
            "metadata": {"annotations": annotations},
            "spec": {"volumeName": volume.name_any()},
        });
        claims
            .patch(&claim.name_any(), &params(), &Patch::Merge(&patch))
            .await?;
    }
    let vspec = volume.spec.clone().unwrap_or_default();
    let patch = json!({"status": {
        "phase": "Bound",
        "accessModes": vspec.access_modes,
        "capacity": vspec.capacity,
    }});
    claims
        .patch_status(&claim.name_any(), &params(), &Patch::Merge(&patch))
        .await?;
    if phase_of_claim(claim) != "Bound" {
        tracing::info!(claim = %claim.name_any(), volume = %volume.name_any(), "bound");
    }
    Ok(())
}

async fn set_claim_phase(
    shared: &Shared,
    claim: &PersistentVolumeClaim,
    phase: &str,
) -> Result<(), Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(
        shared.client.clone(),
        &claim.namespace().unwrap_or_default(),
    );
    let patch = json!({"status": {"phase": phase}});
    gone_ok(
        claims
            .patch_status(&claim.name_any(), &params(), &Patch::Merge(&patch))
            .await,
    )?;
    Ok(())
}

/// A volume's phase from its claim: Available without one, Bound to a live claim, Released
/// when the claim is gone (then deleted, for the Delete reclaim policy).
async fn sync_volume(shared: &Shared, name: &str) -> Result<Action, Error> {
    let Some(volume) = shared.volumes.cache().get_named("", name) else {
        return Ok(Action::Done);
    };
    let volumes: Api<PersistentVolume> = Api::all(shared.client.clone());
    let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.clone());
    let wanted = match &claim_ref {
        None => "Available",
        Some(r) => {
            let claim = shared.claims.cache().get_named(
                r.namespace.as_deref().unwrap_or(""),
                r.name.as_deref().unwrap_or(""),
            );
            match (claim, r.uid.as_deref()) {
                // Pre-bound by name: waits for its claim.
                (None, None) => "Available",
                (Some(c), Some(uid)) if c.metadata.uid.as_deref() == Some(uid) => "Bound",
                (Some(_), None) => "Available",
                _ => "Released",
            }
        }
    };
    if wanted == "Released" && volume_phase(&volume) != "Released" {
        let patch = json!({"status": {"phase": "Released"}});
        volumes
            .patch_status(name, &params(), &Patch::Merge(&patch))
            .await?;
    }
    if wanted == "Released" {
        let policy = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or("Retain");
        if policy == "Delete" {
            gone_ok(volumes.delete(name, &DeleteParams::default()).await)?;
        }
        return Ok(Action::Done);
    }
    if wanted == "Available" && volume_phase(&volume) != "Available" {
        let patch = json!({"status": {"phase": "Available"}});
        volumes
            .patch_status(name, &params(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(Action::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(
        size: &str,
        class: &str,
        modes: &[&str],
        labels: serde_json::Value,
    ) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pv", "labels": labels},
            "spec": {"capacity": {"storage": size}, "storageClassName": class, "accessModes": modes},
        }))
        .unwrap()
    }

    fn claim(
        size: &str,
        class: Option<&str>,
        modes: &[&str],
        selector: serde_json::Value,
    ) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"resources": {"requests": {"storage": size}}, "storageClassName": class,
                "accessModes": modes, "selector": selector},
        }))
        .unwrap()
    }

    #[test]
    fn a_volume_fits_by_class_size_modes_and_selector() {
        let pv = volume(
            "10Gi",
            "",
            &["ReadWriteOnce", "ReadOnlyMany"],
            json!({"tier": "fast"}),
        );
        assert!(fits(
            &pv,
            &claim("5Gi", None, &["ReadWriteOnce"], json!(null))
        ));
        assert!(fits(
            &pv,
            &claim("10Gi", Some(""), &["ReadOnlyMany"], json!(null))
        ));
        assert!(
            !fits(&pv, &claim("11Gi", None, &["ReadWriteOnce"], json!(null))),
            "too small"
        );
        assert!(
            !fits(
                &pv,
                &claim("1Gi", Some("local-path"), &["ReadWriteOnce"], json!(null))
            ),
            "other class"
        );
        assert!(
            !fits(&pv, &claim("1Gi", None, &["ReadWriteMany"], json!(null))),
            "mode"
        );
        assert!(fits(
            &pv,
            &claim("1Gi", None, &[], json!({"matchLabels": {"tier": "fast"}}))
        ));
        assert!(!fits(
            &pv,
            &claim("1Gi", None, &[], json!({"matchLabels": {"tier": "slow"}}))
        ));
    }
}
