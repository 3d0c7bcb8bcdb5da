//! The schemars generator for each document format, and the fix-ups that make its output valid OpenAPI.

use schemars::generate::SchemaSettings;
use schemars::transform::{
    transform_subschemas, AddNullable, RemoveRefSiblings, ReplaceBoolSchemas, ReplaceConstValue,
    ReplacePrefixItems, SetSingleExample, Transform,
};
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value};

/// Which document a schema goes into: the two formats differ in where definitions live and in
/// which JSON Schema keywords they accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Swagger 2.0 (`/openapi/v2`): definitions under `#/definitions`, `$ref` may carry a
    /// sibling `description` (upstream relies on it), no `nullable`, `anyOf` or `oneOf`.
    V2,
    /// OpenAPI 3.0 (`/openapi/v3/...`): definitions under `#/components/schemas`, `$ref` alone
    /// (a described reference becomes `allOf: [{$ref}]` plus the description, as upstream does).
    V3,
}

impl Format {
    /// The prefix of a reference to a named definition.
    pub(crate) fn ref_prefix(self) -> &'static str {
        match self {
            Format::V2 => "#/definitions/",
            Format::V3 => "#/components/schemas/",
        }
    }

    /// A reference to the definition `name`.
    pub(crate) fn reference(self, name: &str) -> Value {
        let mut object = Map::new();
        object.insert("$ref".into(), Value::String(self.ref_to(name)));
        Value::Object(object)
    }

    /// The `$ref` string for the definition `name`.
    pub(crate) fn ref_to(self, name: &str) -> String {
        format!("{}{name}", self.ref_prefix())
    }

    /// A reference to `name` with a description of the field that holds it: a sibling in v2,
    /// wrapped in `allOf` in v3 (OpenAPI 3.0 ignores `$ref` siblings).
    pub(crate) fn described_reference(self, name: &str, description: &str) -> Value {
        let mut object = Map::new();
        match self {
            Format::V2 => {
                object.insert("$ref".into(), Value::String(self.ref_to(name)));
            }
            Format::V3 => {
                object.insert("allOf".into(), Value::Array(vec![self.reference(name)]));
            }
        }
        object.insert("description".into(), Value::String(description.into()));
        Value::Object(object)
    }

    /// A generator whose references point at this format's definitions.
    pub(crate) fn generator(self) -> SchemaGenerator {
        let settings = match self {
            Format::V2 => SchemaSettings::draft07().with(|s| {
                s.definitions_path = "/definitions".into();
                s.meta_schema = None;
                s.transforms = vec![
                    Box::new(keep_additional_properties()),
                    Box::new(ReplaceConstValue::default()),
                    Box::new(ReplacePrefixItems::default()),
                    Box::new(SetSingleExample::default()),
                    Box::new(SwaggerFixups),
                ];
            }),
            Format::V3 => SchemaSettings::openapi3().with(|s| {
                s.meta_schema = None;
                s.transforms = vec![
                    Box::new(keep_additional_properties()),
                    Box::new(AddNullable::default()),
                    Box::new(RemoveRefSiblings::default()),
                    Box::new(SetSingleExample::default()),
                    Box::new(ReplaceConstValue::default()),
                    Box::new(ReplacePrefixItems::default()),
                    Box::new(OpenApi3Fixups),
                ];
            }),
        };
        settings.into_generator()
    }
}

/// Replaces boolean subschemas by objects, but keeps `additionalProperties: false` (both
/// OpenAPI versions accept a boolean there).
fn keep_additional_properties() -> ReplaceBoolSchemas {
    let mut transform = ReplaceBoolSchemas::default();
    transform.skip_additional_properties = true;
    transform
}

/// Keywords neither OpenAPI version has: JSON Schema dialect markers.
const DIALECT_KEYWORDS: &[&str] = &["$schema", "$id", "$comment", "$anchor", "$dynamicAnchor"];

/// Makes a JSON Schema fit Swagger 2.0's subset: no dialect markers, no `type` arrays (an
/// optional field is just absent), no `nullable`, `anyOf`, `oneOf` or `not`.
///
/// A schema that allowed `null` loses its `type`, as upstream's CRD publishing does, so that a
/// client validating against the v2 document does not reject an explicit null.
#[derive(Clone, Debug)]
pub(crate) struct SwaggerFixups;

impl Transform for SwaggerFixups {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        for keyword in DIALECT_KEYWORDS {
            object.remove(*keyword);
        }
        let mut nullable = object.remove("nullable") == Some(Value::Bool(true));
        if let Some(Value::Array(types)) = object.get("type") {
            nullable |= types.iter().any(|t| t == "null");
            let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            match rest.len() {
                1 => {
                    object.insert("type".into(), rest[0].clone());
                }
                _ => {
                    object.remove("type");
                }
            }
        }
        if nullable {
            object.remove("type");
        }
        for keyword in ["anyOf", "oneOf", "not", "x-kubernetes-validations"] {
            object.remove(keyword);
        }
    }
}

/// Removes what OpenAPI 3.0 does not accept and schemars' own transforms leave behind.
#[derive(Clone, Debug)]
pub(crate) struct OpenApi3Fixups;

impl Transform for OpenApi3Fixups {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        for keyword in DIALECT_KEYWORDS {
            object.remove(*keyword);
        }
        // OpenAPI 3.0 has one `type` per schema; a union left after `AddNullable` has no
        // single type to offer.
        if matches!(object.get("type"), Some(Value::Array(_))) {
            object.remove("type");
        }
    }
}

/// Applies `transform` to a schema held as a plain JSON value (a CRD's schema).
pub(crate) fn transform_value(transform: &mut dyn Transform, value: &mut Value) {
    if let Ok(schema) = <&mut Schema>::try_from(value) {
        transform.transform(schema);
    }
}

/// Applies the format's fix-ups to a schema that did not come from the generator.
pub(crate) fn fix_foreign_schema(format: Format, value: &mut Value) {
    match format {
        Format::V2 => {
            transform_value(&mut SwaggerFixups, value);
            // A CRD's `allOf` is validation only; Swagger 2.0 readers (kubectl's v2 parser)
            // expect a single schema per field.
            transform_value(&mut RemoveKeyword("allOf"), value);
        }
        Format::V3 => transform_value(&mut OpenApi3Fixups, value),
    }
}

/// Removes one keyword from a schema and every subschema.
#[derive(Clone, Debug)]
struct RemoveKeyword(&'static str);

impl Transform for RemoveKeyword {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        schema.remove(self.0);
    }
}

/// Rewrites the definitions whose k8s-openapi schema is not what upstream publishes, so that
/// clients see the same types as against kube-apiserver:
/// - IntOrString: `type: string, format: int-or-string` in v2; in v3 `oneOf` integer/string
///   with that format (kubectl `explain` shows `<IntOrString>` because there is no `type`).
/// - Quantity: `type: string` in v2; `oneOf` string/number in v3.
/// - apiextensions `JSON`: any JSON value, not an object; no `type`, unknown fields preserved.
///
/// Each keeps its description and k8s-openapi's `x-kubernetes-int-or-string` marker.
pub(crate) fn fix_special_types(format: Format, definitions: &mut Map<String, Value>) {
    let rewrite = |definitions: &mut Map<String, Value>, name: &str, v2: Value, v3: Value| {
        let Some(Value::Object(definition)) = definitions.get_mut(name) else {
            return;
        };
        definition.remove("type");
        let Value::Object(replacement) = (match format {
            Format::V2 => v2,
            Format::V3 => v3,
        }) else {
            return;
        };
        definition.extend(replacement);
    };
    rewrite(
        definitions,
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        serde_json::json!({"type": "string", "format": "int-or-string"}),
        serde_json::json!({"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}),
    );
    rewrite(
        definitions,
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        serde_json::json!({"type": "string"}),
        serde_json::json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
    );
    let any = serde_json::json!({"x-kubernetes-preserve-unknown-fields": true});
    rewrite(
        definitions,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
        any.clone(),
        any,
    );
}
