//! The StatefulSet controller: pods with stable names `<set>-<ordinal>` and hostnames, their
//! PersistentVolumeClaims from `volumeClaimTemplates` (created first, kept after), created in
//! order and each waiting for the one before to be Running and Ready (`OrderedReady`) or all at
//! once (`Parallel`), removed from the highest ordinal down, and updated from the highest
//! ordinal down to `partition`, one at a time. Templates are recorded as ControllerRevisions
//! (`kubectl rollout history/undo statefulset`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k3rs_api::LabelSelector;
use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use crate::error::{gone_ok, Error};
use crate::ownership::{controller_of, controller_ref};
use crate::pods;
use crate::post_params as post;
use crate::revisions::template_of;
use crate::Context;
use k3rs_api::well_known;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::events::Recorder;
use k3rs_runtime::informer::Informer;
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// The label holding the revision a pod was made from (for StatefulSets, its name).
pub use crate::revisions::REVISION_LABEL;
const POD_NAME_LABEL: &str = well_known::LABEL_STATEFULSET_POD_NAME;
const POD_INDEX_LABEL: &str = well_known::LABEL_POD_INDEX;

#[derive(Clone)]
struct Shared {
    client: Client,
    sets: Arc<Informer<StatefulSet>>,
    pods: Arc<Informer<Pod>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    revisions: Arc<Informer<ControllerRevision>>,
    events: Recorder,
}

/// Registers the handlers and starts the workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let controller = Controller::new(&ctx.runtime, "statefulset-controller");
    let shared = Shared {
        client: ctx.client.clone(),
        sets: ctx.informers.get::<StatefulSet>(),
        pods: ctx.informers.get::<Pod>(),
        claims: ctx.informers.get::<PersistentVolumeClaim>(),
        revisions: ctx.informers.get::<ControllerRevision>(),
        events: Recorder::new(ctx.client.clone(), "statefulset-controller"),
    };
    controller
        .reconciles(&shared.sets)
        .owns::<StatefulSet, Pod>(&shared.pods)
        .reads(&shared.claims)
        .reads(&shared.revisions)
        .workers(2)
        .run(move |key| {
            let shared = shared.clone();
            async move { sync(&shared, &key).await }
        })
}

fn ordinal_start(set: &StatefulSet) -> i32 {
    set.spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
}

fn ordinal_of(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    let suffix = name.strip_prefix(&format!("{}-", set.name_any()))?;
    suffix.parse().ok()
}

fn is_healthy(pod: &Pod, min_ready: i32) -> bool {
    pods::phase(pod) == "Running" && pods::is_available(pod, min_ready, Timestamp::now())
}

/// The set's revisions: (current, update), creating the update revision when the template
/// has none, and dropping old ones beyond `revisionHistoryLimit`.
async fn revisions(shared: &Shared, set: &StatefulSet) -> Result<(String, String), Error> {
    let synced = crate::revisions::sync(
        &shared.client,
        &shared.revisions,
        set,
        &set.spec.template,
        set.status.as_ref().and_then(|s| s.collision_count),
    )
    .await?;
    let update = synced.update;
    let owned = synced.owned;
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .filter(|name| owned.iter().any(|r| r.name_any() == *name))
        .unwrap_or_else(|| update.clone());
    // Keep revisionHistoryLimit old revisions (never the current or update one).
    let api: Api<ControllerRevision> =
        Api::namespaced(shared.client.clone(), &set.namespace().unwrap_or_default());
    let limit = usize::try_from(set.spec.revision_history_limit.unwrap_or(10)).unwrap_or(10);
    let mut old: Vec<&Arc<ControllerRevision>> = owned
        .iter()
        .filter(|r| r.name_any() != current && r.name_any() != update)
        .collect();
    old.sort_by_key(|r| r.revision);
    let excess = old.len().saturating_sub(limit);
    for revision in old.into_iter().take(excess) {
        gone_ok(
            api.delete(&revision.name_any(), &DeleteParams::default())
                .await,
        )?;
    }
    Ok((current, update))
}

/// The pod of `ordinal` made from `revision`'s template.
fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let name = format!("{}-{ordinal}", set.name_any());
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), revision.into());
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    for claim in set.spec.volume_claim_templates.iter().flatten() {
        let volume = claim.name_any();
        let claim_name = format!("{volume}-{name}");
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != volume);
        volumes.push(Volume {
            name: volume,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name,
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Creates the pod's missing claims from the set's templates.
async fn ensure_claims(shared: &Shared, set: &StatefulSet, pod_name: &str) -> Result<(), Error> {
    let namespace = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(shared.client.clone(), &namespace);
    for template in set.spec.volume_claim_templates.iter().flatten() {
        let name = format!("{}-{pod_name}", template.name_any());
        if shared.claims.cache().get_named(&namespace, &name).is_some() {
            continue;
        }
        let mut labels = template.metadata.labels.clone().unwrap_or_default();
        if let Some(selector) = set.spec.selector.match_labels.as_ref() {
            labels.extend(selector.clone());
        }
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                annotations: template.metadata.annotations.clone(),
                ..ObjectMeta::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        match api.create(&post(), &claim).await.map_err(Error::from) {
            Ok(_) => {
                shared
                    .events
                    .normal(
                        set,
                        "SuccessfulCreate",
                        format!(
                            "create Claim {name} Pod {pod_name} in StatefulSet {} success",
                            set.name_any()
                        ),
                    )
                    .await;
            }
            Err(err) if err.is_conflict() => {}
            Err(err) => {
                shared
                    .events
                    .warning(set, "FailedCreate", format!("create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: {err}", set.name_any()))
                    .await;
                return Err(err);
            }
        }
    }
    Ok(())
}

async fn delete_pod(shared: &Shared, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
    let api: Api<Pod> =
        Api::namespaced(shared.client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if gone_ok(api.delete(&pod.name_any(), &params).await)?.is_some() {
        shared
            .events
            .normal(
                set,
                "SuccessfulDelete",
                format!(
                    "delete Pod {} in StatefulSet {} successful",
                    pod.name_any(),
                    set.name_any()
                ),
            )
            .await;
    }
    Ok(())
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let Some(set) = shared.sets.cache().get(key) else {
        return Ok(Action::Done);
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::Done);
    }
    let (current, update) = revisions(shared, &set).await?;
    let namespace = key.namespace.clone();
    let templates: BTreeMap<String, PodTemplateSpec> = shared
        .revisions
        .cache()
        .in_namespace(&namespace)
        .iter()
        .filter_map(|r| Some((r.name_any(), template_of(r)?)))
        .collect();
    let update_template = templates
        .get(&update)
        .cloned()
        .unwrap_or_else(|| set.spec.template.clone());
    let current_template = templates
        .get(&current)
        .cloned()
        .unwrap_or_else(|| update_template.clone());

    let uid = set.uid().unwrap_or_default();
    let selector = LabelSelector::from_typed(Some(&set.spec.selector)).ok();
    let owned: Vec<Arc<Pod>> = shared
        .pods
        .cache()
        .in_namespace(&namespace)
        .into_iter()
        .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
        .filter(|p| {
            selector
                .as_ref()
                .is_some_and(|s| s.matches(&p.metadata.labels.clone().unwrap_or_default()))
        })
        .collect();
    let replicas = set.spec.replicas.unwrap_or(1);
    let start = ordinal_start(&set);
    let parallel = set.spec.pod_management_policy.as_deref() == Some("Parallel");
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let strategy = set.spec.update_strategy.as_ref();
    let rolling = strategy
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let by_ordinal: BTreeMap<i32, Arc<Pod>> = owned
        .iter()
        .filter_map(|p| Some((ordinal_of(&set, p)?, p.clone())))
        .collect();
    let pods_api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);

    // Create or replace the pods of the wanted ordinals, lowest first.
    let mut waiting = false;
    for ordinal in start..start + replicas {
        match by_ordinal.get(&ordinal) {
            None => {
                let (template, revision) = if rolling && ordinal < start + partition {
                    (&current_template, &current)
                } else {
                    (&update_template, &update)
                };
                let pod = new_pod(&set, template, revision, ordinal);
                ensure_claims(shared, &set, &pod.name_any()).await?;
                match pods_api.create(&post(), &pod).await.map_err(Error::from) {
                    Ok(_) => {
                        shared
                            .events
                            .normal(
                                set.as_ref(),
                                "SuccessfulCreate",
                                format!(
                                    "create Pod {} in StatefulSet {} successful",
                                    pod.name_any(),
                                    set.name_any()
                                ),
                            )
                            .await;
                    }
                    Err(err) if err.is_conflict() => {}
                    Err(err) => return Err(err),
                }
                if !parallel {
                    waiting = true;
                    break;
                }
            }
            Some(pod)
                if pods::phase(pod) == "Failed" && pod.metadata.deletion_timestamp.is_none() =>
            {
                delete_pod(shared, &set, pod).await?;
                if !parallel {
                    waiting = true;
                    break;
                }
            }
            Some(pod) => {
                if !parallel
                    && (pod.metadata.deletion_timestamp.is_some() || !is_healthy(pod, min_ready))
                {
                    waiting = true;
                    break;
                }
            }
        }
    }

    // Remove pods beyond the wanted ordinals, highest first.
    if !waiting {
        let condemned: Vec<&Arc<Pod>> = by_ordinal
            .iter()
            .rev()
            .filter(|(ordinal, _)| **ordinal < start || **ordinal >= start + replicas)
            .map(|(_, pod)| pod)
            .collect();
        for pod in condemned {
            if pod.metadata.deletion_timestamp.is_some() {
                if !parallel {
                    waiting = true;
                    break;
                }
                continue;
            }
            delete_pod(shared, &set, pod).await?;
            if !parallel {
                waiting = true;
                break;
            }
        }
    }

    // Rolling update: replace the highest pod not at the update revision, down to the
    // partition, one at a time and only while all are healthy.
    if !waiting && rolling {
        let all_healthy = by_ordinal
            .values()
            .all(|p| p.metadata.deletion_timestamp.is_none() && is_healthy(p, min_ready));
        if all_healthy {
            for ordinal in (start + partition..start + replicas).rev() {
                if let Some(pod) = by_ordinal.get(&ordinal) {
                    if pod.labels().get(REVISION_LABEL) != Some(&update) {
                        delete_pod(shared, &set, pod).await?;
                        break;
                    }
                }
            }
        }
    }

    // Status.
    let wanted: Vec<&Arc<Pod>> = owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(wanted.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let ready = count(&pods::is_ready);
    let available = count(&|p| pods::is_available(p, min_ready, Timestamp::now()));
    let current_replicas = count(&|p| p.labels().get(REVISION_LABEL) == Some(&current));
    let updated_replicas = count(&|p| p.labels().get(REVISION_LABEL) == Some(&update));
    let total = i32::try_from(wanted.len()).unwrap_or(i32::MAX);
    let done = updated_replicas == replicas && ready == replicas && total == replicas;
    let status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: total,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        current_replicas: Some(if done {
            updated_replicas
        } else {
            current_replicas
        }),
        updated_replicas: Some(updated_replicas),
        current_revision: Some(if done {
            update.clone()
        } else {
            current.clone()
        }),
        update_revision: Some(update.clone()),
        collision_count: set.status.as_ref().and_then(|s| s.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    let api: Api<StatefulSet> = Api::namespaced(shared.client.clone(), &namespace);
    k3rs_runtime::status::write(
        &api,
        &key.name,
        set.status.as_ref(),
        &status,
        &crate::patch_params(),
    )
    .await?;
    // Readiness that only becomes availability later needs another look.
    Ok(if min_ready > 0 && available < ready {
        Action::RequeueAfter(Duration::from_secs(1))
    } else {
        Action::Done
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_get_stable_names_hostnames_and_claims() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "ns", "uid": "u1"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
        }))
        .unwrap();
        let pod = new_pod(&set, &set.spec.template, "db-abc", 2);
        assert_eq!(pod.name_any(), "db-2");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("db-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        let claim = spec.volumes.as_ref().unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap();
        assert_eq!(claim.claim_name, "data-db-2");
        assert_eq!(
            pod.labels().get(POD_INDEX_LABEL).map(String::as_str),
            Some("2")
        );
        assert_eq!(
            pod.labels().get(REVISION_LABEL).map(String::as_str),
            Some("db-abc")
        );
        assert_eq!(ordinal_of(&set, &pod), Some(2));
    }
}
