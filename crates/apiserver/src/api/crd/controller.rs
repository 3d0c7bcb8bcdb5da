//! The CRD controller: keeps every CRD's status (names accepted, established, stored versions),
//! the registry's custom resources, and the deletion of a CRD's objects in step with the CRDs
//! in the store.
//!
//! Level-triggered: each pass lists every CRD at one revision and converges from there, so a
//! restart, a missed event or a lost write race only costs another pass. Passes run at start,
//! after every change under the CRD prefix (watched from the listed revision), and every
//! [`RESYNC`] while a deletion waits on objects with finalizers. It writes the store directly:
//! it is part of the API server, as upstream's apiextensions controllers are part of theirs.
//!
//! States of one CRD, as this controller moves it:
//! - new: no conditions → `NamesAccepted` and `Established` True (or `NamesAccepted` False with
//!   the conflicting name) and served;
//! - deleting (`deletionTimestamp` with [`CLEANUP_FINALIZER`]): `Terminating` True, new
//!   objects refused, every object deleted (objects with finalizers first get their own
//!   `deletionTimestamp` and are waited for);
//! - cleaned: the finalizer is removed and, when no other finalizer holds it, the CRD deleted;
//!   it is no longer served.

use crate::internal_error::InternalError;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable as _;
use futures::{FutureExt, StreamExt};
use k3rs_api::custom::status::{desired_status, set_condition, TakenNames};
use k3rs_api::custom::{served_resources, CLEANUP_FINALIZER};
use k3rs_api::{CustomResourceSchema, ResourceInfo};
use k3rs_store::{KeyValue, ListOptions, Revision, Store, StoreError};
use serde_json::{json, Value};

use crate::api::objects::{collection_prefix, encode, finalizers, meta_str, now_rfc3339};
use crate::routes::AppState;

/// How often a pass repeats while a CRD's deletion waits on objects with finalizers.
const RESYNC: Duration = Duration::from_secs(2);

/// Runs the controller until the task is aborted.
pub(crate) async fn run(state: Arc<AppState>) {
    let Some(crds) = state
        .registry
        .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        tracing::error!("the customresourcedefinitions resource is not registered");
        return;
    };
    loop {
        // A watch that ends cleanly starts a new pass, with the back-off from the start.
        let _ = (|| watch_and_converge(&state, &crds))
            .retry(crate::retry::store_backoff())
            .notify(|err, _| tracing::warn!(error = %err, "CRD controller: store failed; retrying"))
            .await;
    }
}

/// Converges, then waits for a change (or the resync tick) and converges again, until the
/// watch ends.
async fn watch_and_converge(state: &AppState, crds: &ResourceInfo) -> Result<(), InternalError> {
    let prefix = collection_prefix(crds, None);
    loop {
        let pass = converge(state, &prefix).await?;
        let mut events = state.store.watch(&prefix, pass.revision).await?;
        let next = if pass.waiting {
            match tokio::time::timeout(RESYNC, events.next()).await {
                Ok(next) => next,
                Err(_elapsed) => continue,
            }
        } else {
            events.next().await
        };
        match next {
            None => return Ok(()),
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(_)) => {
                // Take whatever else already arrived: one pass answers them all.
                while let Some(Some(event)) = events.next().now_or_never() {
                    event?;
                }
            }
        }
    }
}

/// What one pass found.
struct Pass {
    /// The revision the CRDs were listed at.
    revision: Revision,
    /// A deletion waits on objects: pass again after [`RESYNC`] even without events.
    waiting: bool,
}

/// Every key under `prefix` at one revision.
async fn list_all(
    store: &dyn Store,
    prefix: &str,
) -> Result<(Vec<KeyValue>, Revision), StoreError> {
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list(
                prefix,
                ListOptions {
                    limit: Some(500),
                    continue_token: token,
                    revision: None,
                },
            )
            .await?;
        items.extend(page.items);
        token = page.continue_token;
        if token.is_none() {
            return Ok((items, page.revision));
        }
    }
}

async fn converge(state: &AppState, prefix: &str) -> Result<Pass, InternalError> {
    let store = state.store.as_ref();
    let (items, revision) = list_all(store, prefix).await?;
    let mut crds: Vec<(KeyValue, Value)> = items
        .into_iter()
        .filter_map(|kv| match serde_json::from_slice(&kv.value) {
            Ok(crd) => Some((kv, crd)),
            Err(err) => {
                tracing::warn!(key = %kv.key, error = %err, "CRD controller: unreadable CRD skipped");
                None
            }
        })
        .collect();
    // Oldest first: an older CRD keeps the names a newer one also asks for.
    crds.sort_by_key(|(kv, _)| kv.create_revision);
    let now = now_rfc3339();
    let mut taken = TakenNames::default();
    let mut served: Vec<ResourceInfo> = Vec::new();
    let mut schemas: Vec<CustomResourceSchema> = Vec::new();
    let mut waiting = false;
    for (kv, mut crd) in crds {
        let name = meta_str(&crd, "name").unwrap_or("").to_owned();
        let deleting = meta_str(&crd, "deletionTimestamp").is_some();
        let mut status = desired_status(&crd, &mut taken, &now);
        if deleting {
            let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
            set_condition(
                &mut conditions,
                json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                       "message": "CustomResource deletion is in progress"}),
                &now,
            );
            status["conditions"] = Value::Array(conditions);
        }
        let mut mod_revision = kv.mod_revision;
        if crd.get("status") != Some(&status) {
            crd["status"] = status;
            match store.update(&kv.key, to_bytes(&crd)?, mod_revision).await {
                Ok(written) => mod_revision = written.mod_revision,
                // Changed meanwhile: the watch brings it back for another pass; until then it
                // is served as judged now.
                Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => waiting = true,
                Err(err) => return Err(err.into()),
            }
        }
        let resources = served_resources(&crd);
        if !resources.is_empty() {
            if let Ok(typed) = serde_json::from_value(crd.clone()) {
                schemas.extend(CustomResourceSchema::from_crd(&typed));
            }
            served.extend(resources);
        }
        if deleting && finalizers(&crd).iter().any(|f| f == CLEANUP_FINALIZER) {
            waiting |= clean_up(store, &name, &kv.key, mod_revision, &mut crd).await?;
        }
    }
    // Built-in groups keep their resources; CRDs in them are not served.
    schemas.retain(|s| !state.registry.is_builtin_group(&s.group));
    if state.registry.set_custom(served, schemas) {
        tracing::info!("serving custom resources: {}", served_names(state));
    }
    state
        .crds_synced
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(Pass { revision, waiting })
}

fn served_names(state: &AppState) -> String {
    let set = state.registry.custom();
    let names: Vec<String> = set
        .resources
        .iter()
        .map(|r| format!("{}.{}/{}", r.plural, r.group, r.version))
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn to_bytes(object: &Value) -> Result<Vec<u8>, InternalError> {
    encode(object).map_err(|source| InternalError::Refused {
        operation: format!(
            "encoding {}",
            object["metadata"]["name"]
                .as_str()
                .unwrap_or("a CRD's object")
        ),
        source,
    })
}

/// Deletes the objects of a CRD being deleted; once none is left, drops the cleanup finalizer
/// (deleting the CRD when no other finalizer holds it). Returns whether objects remain.
async fn clean_up(
    store: &dyn Store,
    name: &str,
    key: &str,
    mod_revision: Revision,
    crd: &mut Value,
) -> Result<bool, InternalError> {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    if group.is_empty() || plural.is_empty() {
        return Ok(false);
    }
    let (objects, _) = list_all(store, &format!("/registry/{group}/{plural}/")).await?;
    let mut remaining = 0;
    for kv in objects {
        let Ok(mut object) = serde_json::from_slice::<Value>(&kv.value) else {
            // Unreadable: nothing could ever serve it; it goes with its CRD.
            let _ = store.delete(&kv.key, Some(kv.mod_revision)).await;
            continue;
        };
        remaining += 1;
        if finalizers(&object).is_empty() {
            match store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => remaining -= 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        } else if meta_str(&object, "deletionTimestamp").is_none() {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            match store
                .update(&kv.key, to_bytes(&object)?, kv.mod_revision)
                .await
            {
                Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    if remaining > 0 {
        tracing::info!(
            crd = name,
            remaining,
            "waiting for custom resources to be deleted"
        );
        return Ok(true);
    }
    let left: Vec<String> = finalizers(crd)
        .into_iter()
        .filter(|f| f != CLEANUP_FINALIZER)
        .collect();
    let result = if left.is_empty() {
        store.delete(key, Some(mod_revision)).await.map(|_| ())
    } else {
        if let Some(meta) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("finalizers".into(), json!(left));
        }
        if let Some(conditions) = crd
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
        {
            set_condition(
                conditions,
                json!({"type": "Terminating", "status": "False", "reason": "InstanceDeletionCompleted",
                       "message": "removed all instances"}),
                &now_rfc3339(),
            );
        }
        store
            .update(key, to_bytes(crd)?, mod_revision)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => {
            tracing::info!(crd = name, "custom resources deleted; finalizer removed");
            Ok(false)
        }
        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(true),
        Err(err) => Err(err.into()),
    }
}
