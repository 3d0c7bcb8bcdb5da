//! The OpenAPI documents kube-apiserver serves, generated from k8s-openapi's `schemars` schemas.
//!
//! - [`openapi_v2`]: the Swagger 2.0 document at `/openapi/v2`.
//! - [`openapi_v3_documents`]: one OpenAPI 3.0 document per group-version, served at
//!   `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`; [`openapi_v3_index`] is the
//!   discovery document at `/openapi/v3` that points at each with a content hash.
//!
//! Definitions are named like upstream (`io.k8s.api.core.v1.Pod`; a CRD's kind
//! `com.example.stable.v1.CronTab`), every kind and list kind carries
//! `x-kubernetes-group-version-kind` (kubectl maps a GVK to its schema through it), and every
//! operation carries `x-kubernetes-action` and `x-kubernetes-group-version-kind` (kubectl
//! `explain` finds a resource's kind from its paths).
//!
//! The documents are JSON values; [`openapi_v2_protobuf`] encodes the v2 one as gnostic's
//! `openapi.v2.Document`, the form kubectl asks for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`): its client-side validation
//! reads it for every kind whose group-version `/openapi/v3` does not list (a `kind: List`, a
//! custom resource whose CRD comes in the same file). Since 1.27 kubectl reads v3 (JSON) for
//! `explain`, client-side `apply` patches and the field-validation check, which is why the v3
//! documents carry everything kubectl needs.
//!
//! Nothing here does I/O: the API server builds the documents when the served set changes (a
//! CRD is added or removed), caches the bytes and answers ETag requests.

mod crd;
mod gnostic;
mod paths;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

pub use crd::CustomResourceSchema;
pub use gnostic::{openapi_v2_protobuf, EncodedDocument};

use crate::resources::{ResourceInfo, Verb, ALL_VERBS};
use schema::{fix_special_types, Format};

/// The Kubernetes version the documents describe (their `info.version`).
pub const KUBERNETES_VERSION: &str = "v1.37.0";

/// The extension naming the kind a definition or an operation is about.
pub const GVK_EXTENSION: &str = "x-kubernetes-group-version-kind";

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// One served resource, built-in or custom, as the documents see it.
#[derive(Clone, Debug)]
pub(crate) struct Served {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    verbs: Vec<Verb>,
    subresources: Vec<String>,
    /// The kind's definition name.
    definition: String,
    /// The list kind's definition name; `None` for create-only resources.
    list_definition: Option<String>,
    list_kind: Option<String>,
    /// A custom resource: no strategic merge patch.
    custom: bool,
}

/// Where a served resource's schema comes from.
#[derive(Clone, Copy, Debug)]
enum Source<'a> {
    Builtin(&'a ResourceInfo),
    Custom(&'a CustomResourceSchema),
}

fn served_builtin(info: &ResourceInfo) -> Served {
    let definition = (info.schema_name)();
    let list_kind = (!info.list_kind.is_empty()).then(|| info.list_kind.to_owned());
    let list_definition = list_kind.as_ref().map(|list_kind| {
        let package = definition
            .strip_suffix(info.kind)
            .unwrap_or(definition.as_str());
        format!("{package}{list_kind}")
    });
    Served {
        group: info.group.into(),
        version: info.version.into(),
        kind: info.kind.into(),
        plural: info.plural.into(),
        namespaced: info.namespaced,
        verbs: info.verbs.to_vec(),
        subresources: info.subresources.iter().map(|s| (*s).to_owned()).collect(),
        definition,
        list_definition,
        list_kind,
        custom: false,
    }
}

fn served_custom(crd: &CustomResourceSchema) -> Served {
    let mut subresources = Vec::new();
    if crd.scale {
        subresources.push("scale".to_owned());
    }
    if crd.status {
        subresources.push("status".to_owned());
    }
    Served {
        group: crd.group.clone(),
        version: crd.version.clone(),
        kind: crd.kind.clone(),
        plural: crd.plural.clone(),
        namespaced: crd.namespaced,
        verbs: ALL_VERBS.to_vec(),
        subresources,
        definition: crd.definition_name(),
        list_definition: Some(crd.list_definition_name()),
        list_kind: Some(crd.list_kind.clone()),
        custom: true,
    }
}

fn all_served<'a>(
    resources: &'a [ResourceInfo],
    extra: &'a [CustomResourceSchema],
) -> Vec<(Served, Source<'a>)> {
    resources
        .iter()
        .map(|r| (served_builtin(r), Source::Builtin(r)))
        .chain(extra.iter().map(|c| (served_custom(c), Source::Custom(c))))
        .collect()
}

/// The group-versions of `served`, in first-seen order.
fn group_versions(served: &[(Served, Source<'_>)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (s, _) in served {
        let gv = (s.group.clone(), s.version.clone());
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// Appends a GVK to a definition's `x-kubernetes-group-version-kind`, once.
fn add_gvk(definitions: &mut Map<String, Value>, name: &str, entry: Value) {
    let Some(Value::Object(definition)) = definitions.get_mut(name) else {
        return;
    };
    let list = definition
        .entry(GVK_EXTENSION)
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        if !list.contains(&entry) {
            list.push(entry);
        }
    }
}

/// The definition of a list kind (k8s-openapi has no schema for `List<T>`).
fn list_definition(format: Format, s: &Served, list_kind: &str) -> Value {
    json!({
        "description": format!("{list_kind} is a list of {}.", s.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", s.plural),
                "type": "array",
                "items": format.reference(&s.definition),
            },
            "kind": {"description": KIND_DESCRIPTION, "type": "string"},
            "metadata": format.described_reference(
                LIST_META,
                "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            ),
        },
        GVK_EXTENSION: [gvk(&s.group, &s.version, list_kind)],
    })
}

/// Writes `extensions` (name, value) into the schema of `property` in the definition
/// `definition` of `definitions`, where both exist.
pub(crate) fn annotate_property(
    definitions: &mut Map<String, Value>,
    definition: &str,
    property: &str,
    extensions: impl IntoIterator<Item = (&'static str, Value)>,
) {
    let schema = definitions
        .get_mut(definition)
        .and_then(|schema| schema.get_mut("properties"))
        .and_then(|properties| properties.get_mut(property))
        .and_then(Value::as_object_mut);
    if let Some(schema) = schema {
        for (name, value) in extensions {
            schema.insert(name.to_owned(), value);
        }
    }
}

/// Every definition reachable from `served`, plus the meta types every document has.
fn definitions(format: Format, served: &[(Served, Source<'_>)]) -> Map<String, Value> {
    use k8s_openapi::api::{authentication, autoscaling, policy};

    let mut generator: SchemaGenerator = format.generator();
    for (_, source) in served {
        if let Source::Builtin(info) = source {
            (info.schema)(&mut generator);
        }
    }
    generator.subschema_for::<meta::ObjectMeta>();
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::WatchEvent<Value>>();
    generator.subschema_for::<meta::Patch>();
    generator.subschema_for::<meta::APIResourceList>();
    if format == Format::V2 {
        generator.subschema_for::<meta::APIGroup>();
        generator.subschema_for::<meta::APIGroupList>();
        generator.subschema_for::<meta::APIVersions>();
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::version::Info>();
    }
    let has_sub = |name: &str| {
        served
            .iter()
            .any(|(s, _)| s.subresources.iter().any(|x| x == name))
    };
    if has_sub("scale") {
        generator.subschema_for::<autoscaling::v1::Scale>();
    }
    if has_sub("eviction") {
        generator.subschema_for::<policy::v1::Eviction>();
    }
    if has_sub("token") {
        generator.subschema_for::<authentication::v1::TokenRequest>();
    }
    if has_sub("binding") {
        generator.subschema_for::<k8s_openapi::api::core::v1::Binding>();
    }
    let mut definitions = generator.take_definitions(true);
    crate::patch_strategy::annotate_openapi_definitions(&mut definitions);
    crate::schema_topology::annotate_openapi_topology(&mut definitions);
    fix_special_types(format, &mut definitions);

    for (s, source) in served {
        match source {
            Source::Builtin(_) => {
                add_gvk(
                    &mut definitions,
                    &s.definition,
                    gvk(&s.group, &s.version, &s.kind),
                );
            }
            Source::Custom(crd) => {
                definitions.insert(s.definition.clone(), crd.definition(format));
            }
        }
        if let (Some(name), Some(list_kind)) = (&s.list_definition, &s.list_kind) {
            definitions.insert(name.clone(), list_definition(format, s, list_kind));
        }
    }
    add_gvk(&mut definitions, STATUS, gvk("", "v1", "Status"));
    add_gvk(&mut definitions, SCALE, gvk("autoscaling", "v1", "Scale"));
    add_gvk(
        &mut definitions,
        "io.k8s.api.policy.v1.Eviction",
        gvk("policy", "v1", "Eviction"),
    );
    add_gvk(
        &mut definitions,
        "io.k8s.api.authentication.v1.TokenRequest",
        gvk("authentication.k8s.io", "v1", "TokenRequest"),
    );
    // DeleteOptions and WatchEvent are registered in every group-version upstream.
    for (group, version) in group_versions(served) {
        add_gvk(
            &mut definitions,
            DELETE_OPTIONS,
            gvk(&group, &version, "DeleteOptions"),
        );
        add_gvk(
            &mut definitions,
            WATCH_EVENT,
            gvk(&group, &version, "WatchEvent"),
        );
    }
    definitions
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": KUBERNETES_VERSION})
}

fn bearer_token() -> Value {
    json!({
        "type": "apiKey",
        "name": "authorization",
        "in": "header",
        "description": "Bearer Token authentication",
    })
}

/// The draft-07 definitions of every built-in kind and every type they use (`$ref`s as
/// `#/definitions/<name>`), annotated with upstream's patch strategies and `x-kubernetes-*` list
/// and map markers: generated once, on first use, and shared by everything that walks a kind's
/// schema (strategic merge patch, server-side apply, Go's decode-error wording).
pub fn builtin_definitions() -> &'static Map<String, Value> {
    static DEFINITIONS: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        let mut generator = schemars::generate::SchemaSettings::draft07().into_generator();
        for resource in crate::builtin_resources() {
            // Registers the kind and, through `$ref`s, every nested type as a definition.
            let _ = (resource.schema)(&mut generator);
        }
        let mut definitions = generator.take_definitions(false);
        crate::patch_strategy::annotate_openapi_definitions(&mut definitions);
        crate::schema_topology::annotate_openapi_topology(&mut definitions);
        definitions
    })
}

/// The `$ref` of a schema: its own, or a lone one wrapped in `allOf` (how the generated
/// documents reference a definition that also carries a description).
pub fn reference_of(schema: &Value) -> Option<&str> {
    schema.get("$ref").and_then(Value::as_str).or_else(|| {
        match schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            Some([only]) => only.get("$ref").and_then(Value::as_str),
            _ => None,
        }
    })
}

/// The Swagger 2.0 document (`/openapi/v2`) for the built-in `resources` and the served CRD
/// versions `extra`.
pub fn openapi_v2(resources: &[ResourceInfo], extra: &[CustomResourceSchema]) -> Value {
    let served = all_served(resources, extra);
    let format = Format::V2;
    let mut paths = Map::new();
    paths::add_root_discovery(format, &mut paths);
    for (group, version) in group_versions(&served) {
        paths::add_discovery(format, &group, &version, &mut paths);
    }
    for (s, _) in &served {
        paths::add_paths(format, s, &mut paths);
    }
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": definitions(format, &served),
        "securityDefinitions": {"BearerToken": bearer_token()},
        "security": [{"BearerToken": []}],
    })
}

/// The key of a group-version in the `/openapi/v3` index: `api/v1` or `apis/<group>/<version>`.
pub fn group_version_path(group: &str, version: &str) -> String {
    paths::prefix(group, version)
        .trim_start_matches('/')
        .to_owned()
}

fn v3_document(served: &[(Served, Source<'_>)], group: &str, version: &str) -> Value {
    let format = Format::V3;
    let mut paths = Map::new();
    paths::add_discovery(format, group, version, &mut paths);
    for (s, _) in served {
        paths::add_paths(format, s, &mut paths);
    }
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {
            "schemas": definitions(format, served),
            "securitySchemes": {"BearerToken": bearer_token()},
        },
        "security": [{"BearerToken": []}],
    })
}

/// The OpenAPI 3.0 document of one group-version (`/openapi/v3/apis/<group>/<version>`, the
/// core group as `""`), or `None` when nothing is served there.
pub fn openapi_v3_group_version(
    resources: &[ResourceInfo],
    group: &str,
    version: &str,
    extra: &[CustomResourceSchema],
) -> Option<Value> {
    let served: Vec<_> = all_served(resources, extra)
        .into_iter()
        .filter(|(s, _)| s.group == group && s.version == version)
        .collect();
    (!served.is_empty()).then(|| v3_document(&served, group, version))
}

/// Every served group-version as `(path, group, version)`, the path as [`group_version_path`]
/// writes it, in first-seen order: what the API server builds its documents from, one at a
/// time ([`openapi_v3_group_version`]), so that no more than one document's tree is alive.
pub fn openapi_v3_group_versions(
    resources: &[ResourceInfo],
    extra: &[CustomResourceSchema],
) -> Vec<(String, String, String)> {
    group_versions(&all_served(resources, extra))
        .into_iter()
        .map(|(group, version)| (group_version_path(&group, &version), group, version))
        .collect()
}

/// Every group-version's OpenAPI 3.0 document, keyed by [`group_version_path`]
/// (`api/v1`, `apis/apps/v1`, …): what the API server caches and serves.
pub fn openapi_v3_documents(
    resources: &[ResourceInfo],
    extra: &[CustomResourceSchema],
) -> BTreeMap<String, Value> {
    let served = all_served(resources, extra);
    group_versions(&served)
        .into_iter()
        .map(|(group, version)| {
            let subset: Vec<_> = served
                .iter()
                .filter(|(s, _)| s.group == group && s.version == version)
                .cloned()
                .collect();
            (
                group_version_path(&group, &version),
                v3_document(&subset, &group, &version),
            )
        })
        .collect()
}

/// The `/openapi/v3` discovery document for already built `documents` (from
/// [`openapi_v3_documents`]): `{"paths": {"api/v1": {"serverRelativeURL":
/// "/openapi/v3/api/v1?hash=<HASH>"}, …}}`.
pub fn openapi_v3_index_of(documents: &BTreeMap<String, Value>) -> Value {
    let paths: Map<String, Value> = documents
        .iter()
        .map(|(path, document)| {
            let url = format!("/openapi/v3/{path}?hash={}", document_hash(document));
            (path.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// The `/openapi/v3` discovery document for `resources` and `extra`.
pub fn openapi_v3_index(resources: &[ResourceInfo], extra: &[CustomResourceSchema]) -> Value {
    openapi_v3_index_of(&openapi_v3_documents(resources, extra))
}

/// The content hash of a document, as upstream computes it: SHA-512 of its JSON encoding
/// (`serde_json::to_vec`, the bytes the API server serves), in uppercase hex. Also a good ETag.
pub fn document_hash(document: &Value) -> String {
    content_hash(&serde_json::to_vec(document).unwrap_or_default())
}

/// SHA-512 of `bytes` in uppercase hex: kube-openapi's ETag of a served document (the same for
/// its JSON and protobuf forms, which `Vary: Accept` tells apart).
pub fn content_hash(bytes: &[u8]) -> String {
    use std::fmt::Write as _;

    let digest = Sha512::digest(bytes);
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(hex, "{byte:02X}");
    }
    hex
}
