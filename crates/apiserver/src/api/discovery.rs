//! Discovery: `/api`, `/apis`, `/apis/<group>`, the per-version resource lists, and aggregated
//! discovery (`apidiscovery.k8s.io/v2`, and `v2beta1` for older clients).

use k3rs_api::ResourceInfo;
use serde_json::{json, Value};

use super::registry::Registry;

/// What a subresource answers with, and which verbs it serves.
struct Subresource {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];

fn subresource(parent: &ResourceInfo, name: &str) -> Subresource {
    let same = |verbs| Subresource {
        group: parent.group,
        version: parent.version,
        kind: parent.kind,
        verbs,
    };
    match name {
        "scale" => Subresource {
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: GET_PATCH_UPDATE,
        },
        "log" => same(&["get"]),
        "exec" => Subresource {
            kind: "PodExecOptions",
            verbs: &["create", "get"],
            ..same(&[])
        },
        "attach" => Subresource {
            kind: "PodAttachOptions",
            verbs: &["create", "get"],
            ..same(&[])
        },
        "portforward" => Subresource {
            kind: "PodPortForwardOptions",
            verbs: &["create", "get"],
            ..same(&[])
        },
        "proxy" => Subresource {
            kind: match parent.kind {
                "Pod" => "PodProxyOptions",
                "Node" => "NodeProxyOptions",
                _ => "ServiceProxyOptions",
            },
            verbs: &["create", "delete", "get", "patch", "update"],
            ..same(&[])
        },
        "binding" => Subresource {
            kind: "Binding",
            verbs: &["create"],
            ..same(&[])
        },
        "eviction" => Subresource {
            group: "policy",
            version: "v1",
            kind: "Eviction",
            verbs: &["create"],
        },
        "token" => Subresource {
            group: "authentication.k8s.io",
            version: "v1",
            kind: "TokenRequest",
            verbs: &["create"],
        },
        "finalize" => same(&["update"]),
        _ => same(GET_PATCH_UPDATE),
    }
}

fn verbs(resource: &ResourceInfo) -> Vec<&'static str> {
    resource.verbs.iter().map(|v| v.as_str()).collect()
}

/// The Go type of `/api`'s document, which has no `apiVersion` to find it by.
pub(crate) const CORE_VERSIONS_TYPE: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions";

/// `/api`.
pub(crate) fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": list,
        "preferredVersion": list.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub(crate) fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|(group, _)| !group.is_empty())
        .map(|(group, versions)| group_json(group, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub(crate) fn group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = registry.groups();
    let (group, versions) = groups.iter().find(|(g, _)| !g.is_empty() && g == name)?;
    let mut doc = group_json(group, versions);
    if let Some(map) = doc.as_object_mut() {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Some(doc)
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = registry.in_group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for resource in &resources {
        let mut entry = json!({
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": verbs(resource),
        });
        if let Some(map) = entry.as_object_mut() {
            if !resource.short_names.is_empty() {
                map.insert("shortNames".into(), json!(resource.short_names));
            }
            if !resource.categories.is_empty() {
                map.insert("categories".into(), json!(resource.categories));
            }
            if let Some(hash) = storage_version_hash(resource) {
                map.insert("storageVersionHash".into(), json!(hash));
            }
        }
        list.push(entry);
        for name in resource.subresources {
            let sub = subresource(resource, name);
            let mut entry = json!({
                "name": format!("{}/{name}", resource.plural),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if (sub.group, sub.version) != (resource.group, resource.version) {
                if let Some(map) = entry.as_object_mut() {
                    map.insert("group".into(), json!(sub.group));
                    map.insert("version".into(), json!(sub.version));
                }
            }
            list.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}

/// Upstream's `storageVersionHash` of a stored resource: base64 of the first 8 bytes of the
/// SHA-256 of `<group>/<version>/<kind>` of its storage version. Clients (the storage version
/// migrator, kubectl's cache) compare it to notice a changed storage version. Resources that are
/// never stored (reviews, bindings) have none.
fn storage_version_hash(resource: &ResourceInfo) -> Option<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    if !(resource.supports(k3rs_api::Verb::Create) && resource.supports(k3rs_api::Verb::Get)) {
        return None;
    }
    let storage = k3rs_api::conversion::storage_api_version(resource.api_version, resource.kind);
    let (group, version) = storage.rsplit_once('/').unwrap_or(("", storage));
    let digest = sha2::Sha256::digest(format!("{group}/{version}/{}", resource.kind));
    Some(base64::engine::general_purpose::STANDARD.encode(&digest[..8]))
}

/// The aggregated discovery document for the core group (`core == true`, `/api`) or every other
/// group (`/apis`), in `apidiscovery.k8s.io/<api_version>`.
pub(crate) fn aggregated(registry: &Registry, core: bool, api_version: &str) -> Value {
    let mut items = Vec::new();
    for (group, versions) in registry.groups() {
        if group.is_empty() != core {
            continue;
        }
        let versions: Vec<Value> = versions
            .iter()
            .map(|version| {
                let resources: Vec<Value> = registry
                    .in_group_version(&group, version)
                    .iter()
                    .map(|r| aggregated_resource(r))
                    .collect();
                json!({"version": version, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({
            "metadata": {"name": group, "creationTimestamp": null},
            "versions": versions,
        }));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{api_version}"),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(resource: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = resource
        .subresources
        .iter()
        .map(|name| {
            let sub = subresource(resource, name);
            json!({
                "subresource": name,
                "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                "verbs": sub.verbs,
            })
        })
        .collect();
    let mut entry = json!({
        "resource": resource.plural,
        "responseKind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
        "scope": if resource.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": resource.singular,
        "verbs": verbs(resource),
    });
    if let Some(map) = entry.as_object_mut() {
        if !resource.short_names.is_empty() {
            map.insert("shortNames".into(), json!(resource.short_names));
        }
        if !resource.categories.is_empty() {
            map.insert("categories".into(), json!(resource.categories));
        }
        if !subresources.is_empty() {
            map.insert("subresources".into(), json!(subresources));
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(api_version: &str, kind: &str) -> ResourceInfo {
        k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.api_version == api_version && r.kind == kind)
            .expect("served")
    }

    #[test]
    fn storage_version_hashes_are_upstreams() {
        // Values kube-apiserver publishes for the same storage versions.
        let hash = |api_version, kind| storage_version_hash(&served(api_version, kind));
        assert_eq!(hash("v1", "Pod").as_deref(), Some("xPOwRZ+Yhw8="));
        assert_eq!(
            hash("apps/v1", "Deployment").as_deref(),
            Some("8aSe+NMegvE=")
        );
        assert_eq!(hash("v1", "Event").as_deref(), Some("r2yiGXH7wu8="));
        // events.k8s.io events and autoscaling/v1 HPAs share their storage version's hash.
        assert_eq!(hash("events.k8s.io/v1", "Event"), hash("v1", "Event"));
        assert_eq!(
            hash("autoscaling/v1", "HorizontalPodAutoscaler"),
            hash("autoscaling/v2", "HorizontalPodAutoscaler")
        );
        assert_eq!(hash("authorization.k8s.io/v1", "SubjectAccessReview"), None);
    }
}
