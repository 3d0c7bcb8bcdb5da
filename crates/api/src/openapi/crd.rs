//! Served CRD versions as the OpenAPI documents need them, and their definitions.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{json, Map, Value};

use super::schema::{fix_foreign_schema, Format};
use super::{API_VERSION_DESCRIPTION, KIND_DESCRIPTION, OBJECT_META};

/// One served version of a CustomResourceDefinition: what its OpenAPI definitions and paths
/// are made from. The API server builds these from stored CRDs ([`CustomResourceSchema::from_crd`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomResourceSchema {
    /// `spec.group`, e.g. `stable.example.com`.
    pub group: String,
    /// The served version's name, e.g. `v1`.
    pub version: String,
    /// `spec.names.kind`, e.g. `CronTab`.
    pub kind: String,
    /// `spec.names.listKind`, `<kind>List` by default.
    pub list_kind: String,
    /// `spec.names.plural`, the URL segment.
    pub plural: String,
    /// Whether `spec.scope` is `Namespaced`.
    pub namespaced: bool,
    /// The version's `schema.openAPIV3Schema` as JSON; `None` when it has none (then objects
    /// are published as free-form).
    pub schema: Option<Value>,
    /// Whether the version serves the `status` subresource.
    pub status: bool,
    /// Whether the version serves the `scale` subresource.
    pub scale: bool,
}

impl CustomResourceSchema {
    /// The served versions of `crd`, in the CRD's order.
    pub fn from_crd(crd: &CustomResourceDefinition) -> Vec<CustomResourceSchema> {
        let spec = &crd.spec;
        let names = &spec.names;
        spec.versions
            .iter()
            .filter(|v| v.served)
            .map(|v| {
                let subresources = v.subresources.as_ref();
                CustomResourceSchema {
                    group: spec.group.clone(),
                    version: v.name.clone(),
                    kind: names.kind.clone(),
                    list_kind: names
                        .list_kind
                        .clone()
                        .unwrap_or_else(|| format!("{}List", names.kind)),
                    plural: names.plural.clone(),
                    namespaced: spec.scope == "Namespaced",
                    schema: v
                        .schema
                        .as_ref()
                        .and_then(|s| s.open_api_v3_schema.as_ref())
                        .and_then(|s| serde_json::to_value(s).ok()),
                    status: subresources.is_some_and(|s| s.status.is_some()),
                    scale: subresources.is_some_and(|s| s.scale.is_some()),
                }
            })
            .collect()
    }

    /// The definition name upstream gives the kind: the group reversed, then version and kind
    /// (`stable.example.com`, `v1`, `CronTab` → `com.example.stable.v1.CronTab`).
    pub fn definition_name(&self) -> String {
        definition_name(&self.group, &self.version, &self.kind)
    }

    /// The definition name of the list kind.
    pub fn list_definition_name(&self) -> String {
        definition_name(&self.group, &self.version, &self.list_kind)
    }

    /// The kind's definition in `format`: the CRD's schema with `apiVersion`, `kind` and
    /// `metadata` (a reference to ObjectMeta) filled in and the kind's GVK attached.
    pub(crate) fn definition(&self, format: Format) -> Value {
        let mut schema = match &self.schema {
            Some(Value::Object(object)) => Value::Object(object.clone()),
            _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        };
        fix_foreign_schema(format, &mut schema);
        if let Value::Object(object) = &mut schema {
            let properties = object
                .entry("properties")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(properties) = properties {
                properties.insert(
                    "apiVersion".into(),
                    json!({"description": API_VERSION_DESCRIPTION, "type": "string"}),
                );
                properties.insert(
                    "kind".into(),
                    json!({"description": KIND_DESCRIPTION, "type": "string"}),
                );
                properties.insert(
                    "metadata".into(),
                    format.described_reference(
                        OBJECT_META,
                        "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                    ),
                );
            }
            object.insert("type".into(), Value::String("object".into()));
            object.insert(
                super::GVK_EXTENSION.into(),
                json!([{"group": self.group, "kind": self.kind, "version": self.version}]),
            );
        }
        schema
    }
}

fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut reversed: Vec<&str> = group.split('.').collect();
    reversed.reverse();
    format!("{}.{version}.{kind}", reversed.join("."))
}
