//! ControllerRevisions (what `kubectl rollout history/undo` read for StatefulSets and
//! DaemonSets): one per pod template of an owner, named `<owner>-<template hash>`, its data the
//! template as upstream stores it (`{"spec": {"template": {…, "$patch": "replace"}}}`), and
//! the newest revision number on the template in use — a rollback to an old template bumps
//! that revision instead of adding one. A new revision carries the owner's annotations as they
//! are when it is made (upstream's `snapshot`/`newRevision`): `kubectl rollout history` prints its
//! `kubernetes.io/change-cause`. Like upstream, an existing revision keeps the annotations it was
//! made with — a rollback renumbers it, nothing else.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::Patch;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::deployment::util::{same_template, template_hash};
use crate::error::Error;
use crate::ownership::{controller_of, controller_ref};
use crate::{patch_params, post_params};
use k3rs_api::well_known;
use k3rs_runtime::informer::Informer;

/// The label holding a revision's template hash (and, on pods, their revision).
pub const REVISION_LABEL: &str = well_known::LABEL_CONTROLLER_REVISION_HASH;

/// An owner's revisions after [`sync`].
#[derive(Debug)]
pub(crate) struct Revisions {
    /// Every revision the owner controls (as the cache had them before the sync).
    pub(crate) owned: Vec<Arc<ControllerRevision>>,
    /// The name of the revision of the current template.
    pub(crate) update: String,
    /// Its template hash.
    pub(crate) hash: String,
}

/// The template a revision records.
pub(crate) fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.0.pointer("/spec/template")?.clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// Makes sure `owner`'s current `template` has a revision, the newest one: created when new
/// (named after its hash with `collision_count`), renumbered when an old template is back.
pub(crate) async fn sync<K>(
    client: &Client,
    cache: &Informer<ControllerRevision>,
    owner: &K,
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
) -> Result<Revisions, Error>
where
    K: Resource<DynamicType = ()>,
{
    let uid = owner.uid().unwrap_or_default();
    let namespace = owner.namespace().unwrap_or_default();
    let owned: Vec<Arc<ControllerRevision>> = cache
        .cache()
        .in_namespace(&namespace)
        .into_iter()
        .filter(|r| controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let max = owned.iter().filter_map(|r| r.revision).max().unwrap_or(0);
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let hash = template_hash(template, collision_count);
    let matching = owned
        .iter()
        .filter(|r| template_of(r).is_some_and(|t| same_template(&t, template)))
        .max_by_key(|r| r.revision);
    let (update, hash) = match matching {
        Some(existing) => {
            if existing.revision.unwrap_or(0) < max {
                // A rollback: the old revision becomes the newest.
                let patch = json!({"revision": max + 1});
                api.patch(&existing.name_any(), &patch_params(), &Patch::Merge(&patch))
                    .await?;
            }
            let hash = existing
                .labels()
                .get(REVISION_LABEL)
                .cloned()
                .unwrap_or(hash);
            (existing.name_any(), hash)
        }
        None => {
            let revision = new_revision(owner, template, &hash, max + 1);
            let name = revision.name_any();
            match api
                .create(&post_params(), &revision)
                .await
                .map_err(Error::from)
            {
                Ok(_) => {}
                Err(err) if err.is_conflict() => {}
                Err(err) => return Err(err),
            }
            (name, hash)
        }
    };
    Ok(Revisions {
        owned,
        update,
        hash,
    })
}

/// The revision `number` of `owner`'s `template`, whose hash is `hash`: named `<owner>-<hash>`,
/// labelled with the template's labels and the hash, annotated with the owner's annotations.
fn new_revision<K>(
    owner: &K,
    template: &PodTemplateSpec,
    hash: &str,
    number: i64,
) -> ControllerRevision
where
    K: Resource<DynamicType = ()>,
{
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), hash.into());
    let mut data = serde_json::to_value(template).unwrap_or_default();
    data["$patch"] = json!("replace");
    let annotations = owner.meta().annotations.clone().filter(|a| !a.is_empty());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", owner.name_any())),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![controller_ref(owner)]),
            ..ObjectMeta::default()
        },
        data: RawExtension(json!({"spec": {"template": data}})),
        revision: Some(number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSet;

    #[test]
    fn a_new_revision_carries_the_owners_annotations_and_template() {
        let set: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ns", "uid": "u1", "annotations": {
                "kubernetes.io/change-cause": "kubectl set image ds/agent c=v2"}},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "v2"}]}}},
        }))
        .unwrap();
        let revision = new_revision(&set, &set.spec.template, "abc", 3);
        assert_eq!(revision.name_any(), "agent-abc");
        assert_eq!(revision.revision, Some(3));
        assert_eq!(
            revision.annotations().get("kubernetes.io/change-cause"),
            Some(&"kubectl set image ds/agent c=v2".to_string())
        );
        assert_eq!(revision.labels().get(REVISION_LABEL), Some(&"abc".into()));
        assert_eq!(revision.labels().get("app"), Some(&"a".into()));
        assert_eq!(template_of(&revision), Some(set.spec.template.clone()));
        assert_eq!(controller_of(&revision.metadata).unwrap().uid, "u1");

        let bare: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "uid": "u1"},
            "spec": {"selector": {}, "template": {}},
        }))
        .unwrap();
        let revision = new_revision(&bare, &PodTemplateSpec::default(), "abc", 1);
        assert!(revision.metadata.annotations.is_none());
    }
}
