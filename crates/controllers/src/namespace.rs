//! The namespace controller: a namespace being deleted has everything in it deleted through the
//! API, then its `kubernetes` finalizer removed through `/finalize`, after which the API server
//! deletes it. Its status conditions say what is holding it, as upstream's do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use crate::error::{gone_ok, Error};
use crate::Context;
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// The finalizer that holds a namespace until this controller has emptied it.
pub const FINALIZER: &str = "kubernetes";
/// How soon a namespace whose content is still going away is looked at again.
const RECHECK: Duration = Duration::from_secs(2);

/// Registers the controller's handlers and starts its workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let informer = ctx.informers.get::<Namespace>();
    let client = ctx.client.clone();
    let namespaces = informer.clone();
    Controller::new(&ctx.runtime, "namespace-controller")
        .watches(&informer, |change| {
            let namespace = change.object();
            namespace
                .metadata
                .deletion_timestamp
                .is_some()
                .then(|| namespace.name_any())
        })
        .workers(2)
        .run(move |name: String| {
            let client = client.clone();
            let informer = namespaces.clone();
            async move {
                match informer.cache().get_named("", &name) {
                    Some(namespace) if namespace.metadata.deletion_timestamp.is_some() => {
                        reconcile(&client, &namespace).await
                    }
                    _ => Ok(Action::Done),
                }
            }
        })
}

async fn reconcile(client: &Client, cached: &Arc<Namespace>) -> Result<Action, Error> {
    let name = cached.name_any();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // The cache may lag behind a finalize already done: act on the live object.
    let Some(namespace) = namespaces.get_opt(&name).await? else {
        return Ok(Action::Done);
    };
    if namespace.metadata.deletion_timestamp.is_none() || !holds_finalizer(&namespace) {
        return Ok(Action::Done);
    }
    let content = delete_content(client, &name).await;
    let conditions = conditions(&content);
    if namespace_conditions(&namespace) != conditions {
        let patch = json!({"status": {"conditions": conditions}});
        namespaces
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    if let Some(err) = content.errors.into_iter().next() {
        return Err(err);
    }
    if !content.remaining.is_empty() {
        return Ok(Action::RequeueAfter(RECHECK));
    }
    finalize(&namespaces, &name).await?;
    tracing::info!(namespace = %name, "namespace emptied and finalized");
    Ok(Action::Done)
}

fn holds_finalizer(namespace: &Namespace) -> bool {
    namespace
        .spec
        .as_ref()
        .and_then(|spec| spec.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Removes [`FINALIZER`] through the `finalize` subresource, retrying on a stale read.
async fn finalize(namespaces: &Api<Namespace>, name: &str) -> Result<(), Error> {
    loop {
        let Some(mut namespace) = namespaces.get_opt(name).await? else {
            return Ok(());
        };
        if let Some(finalizers) = namespace.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
            finalizers.retain(|f| f != FINALIZER);
        }
        let params = crate::post_params();
        match namespaces
            .replace_subresource::<Namespace>("finalize", name, &params, &namespace)
            .await
            .map_err(Error::from)
        {
            Err(err) if err.is_conflict() => continue,
            Err(err) if err.is_not_found() => return Ok(()),
            other => return other.map(drop),
        }
    }
}

/// What deleting a namespace's content found.
#[derive(Debug, Default)]
struct Content {
    discovery_failed: Option<String>,
    /// `resource.group` → objects left.
    remaining: BTreeMap<String, usize>,
    /// finalizer → objects holding it.
    finalizers: BTreeMap<String, usize>,
    errors: Vec<Error>,
}

/// Deletes every namespaced object in `namespace` (collections where the resource allows, one by
/// one where not) and counts what is left.
async fn delete_content(client: &Client, namespace: &str) -> Content {
    let mut content = Content::default();
    let resources = match deletable_resources(client).await {
        Ok(resources) => resources,
        Err(err) => {
            content.discovery_failed = Some(err.to_string());
            content.errors.push(err);
            return content;
        }
    };
    for (resource, caps) in resources {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        if let Err(err) = delete_all(&api, &caps).await {
            if !err.is_not_found() {
                content.errors.push(err);
            }
        }
        match api.list(&ListParams::default()).await {
            Ok(left) if !left.items.is_empty() => {
                let label = format!("{}.{}", resource.plural, resource.group);
                content.remaining.insert(label, left.items.len());
                for object in &left.items {
                    for finalizer in object.finalizers() {
                        *content.finalizers.entry(finalizer.clone()).or_default() += 1;
                    }
                }
            }
            Ok(_) => {}
            Err(err) => {
                let err = Error::from(err);
                if !err.is_not_found() {
                    content.errors.push(err);
                }
            }
        }
    }
    content
}

async fn delete_all(api: &Api<DynamicObject>, caps: &ApiCapabilities) -> Result<(), Error> {
    let params = DeleteParams::background();
    if caps.supports_operation("deletecollection") {
        api.delete_collection(&params, &ListParams::default())
            .await?;
        return Ok(());
    }
    for object in api.list(&ListParams::default()).await?.items {
        if object.metadata.deletion_timestamp.is_some() {
            continue;
        }
        gone_ok(api.delete(&object.name_any(), &params).await)?;
    }
    Ok(())
}

/// Every namespaced resource that can be listed and deleted, in each group's preferred version
/// (one version is enough: every version of a resource is the same objects).
async fn deletable_resources(
    client: &Client,
) -> Result<Vec<(ApiResource, ApiCapabilities)>, Error> {
    let discovery = Discovery::new(client.clone()).run_aggregated().await?;
    let mut resources = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            let deletable = caps.supports_operation("list")
                && (caps.supports_operation("delete")
                    || caps.supports_operation("deletecollection"));
            if caps.scope == Scope::Namespaced && deletable {
                resources.push((resource, caps));
            }
        }
    }
    Ok(resources)
}

/// Upstream's five deletion conditions for what `content` found.
fn conditions(content: &Content) -> Vec<Value> {
    let condition = |type_: &str, failing: bool, reason: &str, message: String| {
        json!({
            "type": type_,
            "status": if failing { "True" } else { "False" },
            "reason": reason,
            "message": message,
        })
    };
    let discovery = match &content.discovery_failed {
        Some(err) => condition(
            "NamespaceDeletionDiscoveryFailure",
            true,
            "DiscoveryFailed",
            format!("Discovery failed for some groups: {err}"),
        ),
        None => condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
    };
    let failures: Vec<String> = content.errors.iter().map(ToString::to_string).collect();
    let deletion = if failures.is_empty() || content.discovery_failed.is_some() {
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        condition(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                failures.len(),
                failures.join(", ")
            ),
        )
    };
    let remaining = if content.remaining.is_empty() {
        condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        )
    } else {
        let what: Vec<String> = content
            .remaining
            .iter()
            .map(|(resource, n)| format!("{resource} has {n} resource instances"))
            .collect();
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", what.join(", ")),
        )
    };
    let finalizers = if content.finalizers.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let what: Vec<String> = content
            .finalizers
            .iter()
            .map(|(finalizer, n)| format!("{finalizer} in {n} resource instances"))
            .collect();
        condition(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                what.join(", ")
            ),
        )
    };
    vec![
        discovery,
        json!({
            "type": "NamespaceDeletionGroupVersionParsingFailure",
            "status": "False",
            "reason": "ParsedGroupVersions",
            "message": "All legacy kube types successfully parsed",
        }),
        deletion,
        remaining,
        finalizers,
    ]
}

/// The namespace's conditions in the shape [`conditions`] builds (without transition times),
/// to tell whether a status write would change anything.
fn namespace_conditions(namespace: &Namespace) -> Vec<Value> {
    namespace
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|conditions| {
            conditions
                .iter()
                .map(|c| {
                    json!({
                        "type": c.type_,
                        "status": c.status,
                        "reason": c.reason,
                        "message": c.message,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_name_what_is_left_like_upstream() {
        let mut content = Content::default();
        let clean = conditions(&content);
        assert_eq!(clean.len(), 5);
        assert!(clean.iter().all(|c| c["status"] == "False"), "{clean:?}");
        content.remaining.insert("pods.".into(), 2);
        content.finalizers.insert("example.com/keep".into(), 1);
        let held = conditions(&content);
        assert_eq!(held[3]["status"], "True");
        assert_eq!(
            held[3]["message"],
            "Some resources are remaining: pods. has 2 resource instances"
        );
        assert_eq!(
            held[4]["message"],
            "Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances"
        );
    }
}
