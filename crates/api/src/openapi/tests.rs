//! Tests of the generated documents: well-formed, every reference resolves, kinds findable by GVK.

use super::*;
use crate::resources::builtin_resources;

/// Writes every document (with the CronTab CRD of [`crontab_crd`]) to `$K3RS_OPENAPI_DUMP/`
/// when set, for a look with real clients and validators.
#[test]
fn dump_for_inspection() {
    let resources = builtin_resources();
    let crds = CustomResourceSchema::from_crd(&crontab_crd());
    if let Ok(dir) = std::env::var("K3RS_OPENAPI_DUMP") {
        let v2 = openapi_v2(&resources, &crds);
        std::fs::write(
            format!("{dir}/v2.json"),
            serde_json::to_vec_pretty(&v2).unwrap(),
        )
        .unwrap();
        for (path, doc) in openapi_v3_documents(&resources, &crds) {
            let name = path.replace('/', "_");
            std::fs::write(
                format!("{dir}/v3_{name}.json"),
                serde_json::to_vec_pretty(&doc).unwrap(),
            )
            .unwrap();
        }
        let table: Vec<Value> = resources
            .iter()
            .map(|r| {
                json!({"group": r.group, "version": r.version, "kind": r.kind, "name": r.plural,
                    "singularName": r.singular, "namespaced": r.namespaced, "shortNames": r.short_names,
                    "verbs": r.verbs.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                    "subresources": r.subresources})
            })
            .collect();
        std::fs::write(
            format!("{dir}/resources.json"),
            serde_json::to_vec_pretty(&table).unwrap(),
        )
        .unwrap();
        let index = openapi_v3_index(&resources, &crds);
        std::fs::write(
            format!("{dir}/v3_index.json"),
            serde_json::to_vec_pretty(&index).unwrap(),
        )
        .unwrap();
    }
}

fn walk<'a>(value: &'a Value, path: &mut Vec<String>, visit: &mut dyn FnMut(&[String], &'a Value)) {
    visit(path, value);
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                path.push(key.clone());
                walk(child, path, visit);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(i.to_string());
                walk(child, path, visit);
                path.pop();
            }
        }
        _ => {}
    }
}

fn definitions_of(document: &Value) -> &Map<String, Value> {
    document
        .get("definitions")
        .or_else(|| document.pointer("/components/schemas"))
        .and_then(Value::as_object)
        .expect("document has definitions")
}

/// Every `$ref` in `document` points at one of its own definitions.
fn assert_refs_resolve(document: &Value, prefix: &str) {
    let definitions = definitions_of(document);
    let mut count = 0;
    walk(document, &mut Vec::new(), &mut |path, value| {
        if path.last().map(String::as_str) == Some("$ref") {
            // A `$ref` *property* of JSONSchemaProps is an object, not a reference.
            if let Value::String(reference) = value {
                let name = reference
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("{reference} at {path:?} lacks {prefix}"));
                assert!(
                    definitions.contains_key(name),
                    "{reference} at {path:?} dangles"
                );
                count += 1;
            }
        }
    });
    assert!(count > 0);
}

/// Schema keywords that the format does not accept; `properties` maps are skipped since their
/// keys are field names (JSONSchemaProps has fields called `$schema`, `const`, `nullable`).
fn assert_no_foreign_keywords(document: &Value, forbidden: &[&str]) {
    walk(document, &mut Vec::new(), &mut |path, value| {
        let Value::Object(object) = value else { return };
        if path.last().map(String::as_str) == Some("properties") {
            return;
        }
        for key in forbidden {
            assert!(!object.contains_key(*key), "{key} at {path:?}");
        }
        if let Some(ty) = object.get("type") {
            // `type` inside a parameter list or a GVK is data, not a schema keyword.
            if path.iter().any(|p| p == "x-kubernetes-group-version-kind") {
                return;
            }
            assert!(!ty.is_array(), "type union at {path:?}");
        }
        for key in ["items", "not"] {
            assert!(
                !object.get(key).is_some_and(Value::is_boolean),
                "boolean {key} at {path:?}"
            );
        }
    });
}

fn gvk_of(document: &Value, name: &str) -> Value {
    definitions_of(document)[name][GVK_EXTENSION].clone()
}

#[test]
fn v2_is_well_formed_swagger() {
    let document = openapi_v2(&builtin_resources(), &[]);
    let text = serde_json::to_string(&document).unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["swagger"], "2.0");
    assert_refs_resolve(&document, "#/definitions/");
    assert_no_foreign_keywords(
        &document,
        &["$schema", "$defs", "const", "nullable", "oneOf", "anyOf"],
    );
    let definitions = definitions_of(&document);
    for name in [
        OBJECT_META,
        LIST_META,
        STATUS,
        DELETE_OPTIONS,
        WATCH_EVENT,
        PATCH,
    ] {
        assert!(definitions.contains_key(name), "{name} missing");
    }
    // Upstream operation ids are unique: client generators name functions after them.
    let mut ids = std::collections::HashSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if let Some(id) = operation.get("operationId") {
                assert!(ids.insert(id.clone()), "{id} twice ({method} {path})");
            }
        }
    }
}

#[test]
fn v3_documents_are_well_formed() {
    let resources = builtin_resources();
    let documents = openapi_v3_documents(&resources, &[]);
    for (path, document) in &documents {
        let text = serde_json::to_string(document).unwrap();
        let document: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(document["openapi"], "3.0.0", "{path}");
        assert_refs_resolve(&document, "#/components/schemas/");
        assert_no_foreign_keywords(&document, &["$schema", "$defs", "const"]);
        // OpenAPI 3.0 ignores `$ref` siblings: a described reference must be wrapped.
        walk(&document, &mut Vec::new(), &mut |at, value| {
            if let Some(object) = value.as_object() {
                if object.get("$ref").is_some_and(Value::is_string) {
                    assert_eq!(object.len(), 1, "$ref with siblings at {path} {at:?}");
                }
            }
        });
    }
}

#[test]
fn kinds_carry_their_group_version_kind() {
    let resources = builtin_resources();
    let v2 = openapi_v2(&resources, &[]);
    let cases = [
        ("io.k8s.api.core.v1.Pod", "", "v1", "Pod"),
        ("io.k8s.api.core.v1.PodList", "", "v1", "PodList"),
        ("io.k8s.api.core.v1.Service", "", "v1", "Service"),
        ("io.k8s.api.apps.v1.Deployment", "apps", "v1", "Deployment"),
        (
            "io.k8s.api.apps.v1.DeploymentList",
            "apps",
            "v1",
            "DeploymentList",
        ),
        (
            "io.k8s.api.autoscaling.v1.Scale",
            "autoscaling",
            "v1",
            "Scale",
        ),
        (
            "io.k8s.api.networking.v1.IngressList",
            "networking.k8s.io",
            "v1",
            "IngressList",
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "",
            "v1",
            "Status",
        ),
    ];
    for (name, group, version, kind) in cases {
        assert_eq!(
            gvk_of(&v2, name),
            json!([{"group": group, "kind": kind, "version": version}]),
            "{name}"
        );
    }
    // Every served kind (kubectl looks each one up by GVK).
    for r in &resources {
        let gvk = gvk_of(&v2, &(r.schema_name)());
        assert!(
            gvk.as_array()
                .unwrap()
                .contains(&json!({"group": r.group, "kind": r.kind, "version": r.version})),
            "{} {gvk}",
            r.kind
        );
    }
    let apps = openapi_v3_group_version(&resources, "apps", "v1", &[]).unwrap();
    assert_eq!(
        gvk_of(&apps, "io.k8s.api.apps.v1.Deployment"),
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    let core = openapi_v3_group_version(&resources, "", "v1", &[]).unwrap();
    assert_eq!(
        gvk_of(&core, "io.k8s.api.core.v1.Service"),
        json!([{"group": "", "kind": "Service", "version": "v1"}])
    );
    // A group-version document only holds its own kinds' GVKs.
    assert!(!definitions_of(&core).contains_key("io.k8s.api.apps.v1.Deployment"));
}

#[test]
fn schemas_match_upstream_where_clients_look() {
    let resources = builtin_resources();
    let v2 = openapi_v2(&resources, &[]);
    let core = openapi_v3_group_version(&resources, "", "v1", &[]).unwrap();
    let v2d = definitions_of(&v2);
    let v3d = definitions_of(&core);
    assert_eq!(
        v2d["io.k8s.api.core.v1.Container"]["required"],
        json!(["name"])
    );
    assert_eq!(
        v3d["io.k8s.api.core.v1.Container"]["required"],
        json!(["name"])
    );
    assert_eq!(
        v3d["io.k8s.api.core.v1.Pod"]["required"],
        json!(["metadata"])
    );
    let time = &v3d["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
    assert_eq!(
        (&time["type"], &time["format"]),
        (&json!("string"), &json!("date-time"))
    );

    let int_or_string = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
    assert_eq!(v2d[int_or_string]["type"], "string");
    assert_eq!(v2d[int_or_string]["format"], "int-or-string");
    assert_eq!(v2d[int_or_string]["x-kubernetes-int-or-string"], true);
    assert_eq!(v3d[int_or_string]["format"], "int-or-string");
    assert!(
        v3d[int_or_string].get("type").is_none(),
        "explain shows <IntOrString>"
    );
    assert_eq!(
        v3d[int_or_string]["oneOf"],
        json!([{"type": "integer"}, {"type": "string"}])
    );
    let quantity = "io.k8s.apimachinery.pkg.api.resource.Quantity";
    assert_eq!(v2d[quantity]["type"], "string");
    assert_eq!(
        v3d[quantity]["oneOf"],
        json!([{"type": "string"}, {"type": "number"}])
    );
    assert_eq!(
        v2d["io.k8s.apimachinery.pkg.runtime.RawExtension"]["type"],
        "object"
    );
    let json_any = &v2d["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON"];
    assert!(json_any.get("type").is_none());
    assert_eq!(json_any["x-kubernetes-preserve-unknown-fields"], true);

    // A described reference: a sibling in v2, wrapped in allOf in v3.
    let spec_v2 = &v2d["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
    assert_eq!(spec_v2["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec");
    assert!(spec_v2["description"].is_string());
    let spec_v3 = &v3d["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
    assert_eq!(
        spec_v3["allOf"],
        json!([{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}])
    );

    // Strategic-merge-patch metadata kubectl apply computes its patch from.
    let containers = &v3d["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let volumes = &v2d["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    let finalizers = &v2d[OBJECT_META]["properties"]["finalizers"];
    assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
    assert!(finalizers.get("x-kubernetes-patch-merge-key").is_none());

    // The list and map topology server-side apply clients build apply configurations from.
    let ports = &v3d["io.k8s.api.core.v1.Container"]["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-list-type"], "map");
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["containerPort", "protocol"])
    );
    assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    let label_selector = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector";
    assert_eq!(v3d[label_selector]["x-kubernetes-map-type"], "atomic");
}

/// What `kubectl explain` (1.27+) reads: the resource's list or item path, whose operations
/// carry the GVK; what its field-validation check reads: `fieldValidation` on PATCH operations.
#[test]
fn paths_give_kubectl_the_kind_of_each_resource() {
    let resources = builtin_resources();
    let core = openapi_v3_group_version(&resources, "", "v1", &[]).unwrap();
    let pods = &core["paths"]["/api/v1/namespaces/{namespace}/pods"];
    assert_eq!(
        pods["get"][GVK_EXTENSION],
        json!({"group": "", "kind": "Pod", "version": "v1"})
    );
    assert_eq!(pods["get"]["x-kubernetes-action"], "list");
    assert_eq!(pods["post"]["x-kubernetes-action"], "post");
    assert_eq!(pods["delete"]["x-kubernetes-action"], "deletecollection");
    let pod = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
    for (method, action) in [
        ("get", "get"),
        ("put", "put"),
        ("patch", "patch"),
        ("delete", "delete"),
    ] {
        assert_eq!(pod[method]["x-kubernetes-action"], action);
    }
    assert!(
        core["paths"]["/api/v1/pods"]["get"].is_object(),
        "all-namespaces list"
    );
    assert!(core["paths"]["/api/v1/nodes/{name}/status"]["patch"].is_object());
    assert!(core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"].is_object());
    let apps = openapi_v3_group_version(&resources, "apps", "v1", &[]).unwrap();
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["put"][GVK_EXTENSION],
        json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
    );
    let documents = openapi_v3_documents(&resources, &[]);
    for r in &resources {
        let document = &documents[&group_version_path(r.group, r.version)];
        let base = paths::prefix(r.group, r.version);
        let path = match r.namespaced {
            true => format!("{base}/namespaces/{{namespace}}/{}", r.plural),
            false => format!("{base}/{}", r.plural),
        };
        assert!(document["paths"][&path].is_object(), "{path}");
    }
    for document in documents.values() {
        for (path, item) in document["paths"].as_object().unwrap() {
            let Some(patch) = item.get("patch") else {
                continue;
            };
            if patch["x-kubernetes-action"] == "connect" {
                continue;
            }
            let names: Vec<&Value> = patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| &p["name"])
                .collect();
            assert!(names.contains(&&json!("fieldValidation")), "{path}");
        }
    }
}

#[test]
fn v3_index_lists_every_group_version_with_a_stable_hash() {
    let resources = builtin_resources();
    let first = openapi_v3_index(&resources, &[]);
    let second = openapi_v3_index(&resources, &[]);
    assert_eq!(first, second);
    let documents = openapi_v3_documents(&resources, &[]);
    assert_eq!(openapi_v3_index_of(&documents), first);
    assert_eq!(
        openapi_v3_group_version(&resources, "apps", "v1", &[]).as_ref(),
        documents.get("apis/apps/v1")
    );
    let paths = first["paths"].as_object().unwrap();
    assert_eq!(paths.len(), documents.len());
    for r in &resources {
        assert!(paths.contains_key(&group_version_path(r.group, r.version)));
    }
    for key in documents.keys() {
        let url = paths[key]["serverRelativeURL"].as_str().unwrap();
        let (base, hash) = url.split_once("?hash=").unwrap();
        assert_eq!(base, format!("/openapi/v3/{key}"));
        assert_eq!(hash.len(), 128);
        assert!(hash
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_eq!(document_hash(&documents[key]), hash, "{key}");
    }
    assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
    assert!(openapi_v3_group_version(&resources, "nope.example.com", "v1", &[]).is_none());
}

pub(super) fn crontab_crd(
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
            "versions": [
                {
                    "name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "description": "A cron tab.",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["cronSpec"],
                                "properties": {
                                    "cronSpec": {"type": "string", "description": "When to run."},
                                    "image": {"type": "string", "nullable": true},
                                    "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                                    "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= 0"}]},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                                }
                            }
                        }
                    }}
                },
                {"name": "v0", "served": false, "storage": false}
            ]
        }
    }))
    .unwrap()
}

#[test]
fn custom_resources_appear_in_both_documents() {
    let resources = builtin_resources();
    let crds = CustomResourceSchema::from_crd(&crontab_crd());
    assert_eq!(crds.len(), 1, "only served versions");
    let crd = &crds[0];
    assert_eq!(
        (
            crd.list_kind.as_str(),
            crd.namespaced,
            crd.status,
            crd.scale
        ),
        ("CronTabList", true, true, true)
    );
    let name = "com.example.stable.v1.CronTab";
    assert_eq!(crd.definition_name(), name);

    let v2 = openapi_v2(&resources, &crds);
    assert_refs_resolve(&v2, "#/definitions/");
    assert_no_foreign_keywords(
        &v2,
        &["nullable", "anyOf", "oneOf", "x-kubernetes-validations"],
    );
    let kind = &definitions_of(&v2)[name];
    assert_eq!(
        kind[GVK_EXTENSION],
        json!([{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}])
    );
    assert_eq!(
        kind["properties"]["metadata"]["$ref"],
        format!("#/definitions/{OBJECT_META}")
    );
    assert_eq!(kind["properties"]["spec"]["required"], json!(["cronSpec"]));
    let spec = &kind["properties"]["spec"]["properties"];
    assert!(
        spec["image"].get("type").is_none(),
        "nullable field loses its type in v2"
    );
    assert_eq!(spec["extra"]["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(
        gvk_of(&v2, "com.example.stable.v1.CronTabList"),
        json!([{"group": "stable.example.com", "kind": "CronTabList", "version": "v1"}])
    );
    let item = &v2["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"];
    assert_eq!(
        item["patch"]["operationId"],
        "patchStableExampleComV1NamespacedCronTab"
    );
    assert!(!item["patch"]["consumes"]
        .as_array()
        .unwrap()
        .contains(&json!("application/strategic-merge-patch+json")));
    assert!(v2["paths"]
        ["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale"]["get"]
        .is_object());

    let index = openapi_v3_index(&resources, &crds);
    assert!(index["paths"]["apis/stable.example.com/v1"].is_object());
    let v3 = openapi_v3_group_version(&resources, "stable.example.com", "v1", &crds).unwrap();
    assert_refs_resolve(&v3, "#/components/schemas/");
    let kind = &definitions_of(&v3)[name];
    assert_eq!(
        kind["properties"]["metadata"]["allOf"],
        json!([{"$ref": format!("#/components/schemas/{OBJECT_META}")}])
    );
    let spec = &kind["properties"]["spec"]["properties"];
    assert_eq!(spec["image"]["nullable"], true);
    assert_eq!(spec["port"]["x-kubernetes-int-or-string"], true);
    assert!(definitions_of(&v3).contains_key(SCALE));
    assert_eq!(
        v3["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs"]["get"]
            [GVK_EXTENSION],
        json!({"group": "stable.example.com", "kind": "CronTab", "version": "v1"})
    );
    // Adding a CRD changes only its own group-version's hash.
    let before = openapi_v3_index(&resources, &[]);
    assert_eq!(before["paths"]["api/v1"], index["paths"]["api/v1"]);
}

/// The API server builds its v3 documents one group-version at a time from this list: it names
/// every document, in the index's paths, and each one built alone is the same document.
#[test]
fn group_versions_name_every_document_and_each_builds_alone() {
    let resources = builtin_resources();
    let documents = openapi_v3_documents(&resources, &[]);
    let listed = openapi_v3_group_versions(&resources, &[]);
    let paths: std::collections::BTreeSet<&String> = listed.iter().map(|(path, ..)| path).collect();
    assert_eq!(paths, documents.keys().collect());
    assert_eq!(listed.len(), documents.len(), "each group-version once");
    for (path, group, version) in &listed {
        assert_eq!(group_version_path(group, version), *path);
        assert_eq!(
            openapi_v3_group_version(&resources, group, version, &[]).as_ref(),
            documents.get(path),
            "{path}"
        );
    }
}
