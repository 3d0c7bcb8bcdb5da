//! Upstream's words for a request body with a field of the wrong JSON type.
//!
//! kube-apiserver decodes a body into the kind's Go type with `sigs.k8s.io/json` (Go's
//! `encoding/json`), which reports the first mismatch as `json: cannot unmarshal <JSON value>
//! into Go struct field <struct>.<path> of type <Go type>`: the struct is the innermost one
//! holding the field, the path the JSON names of the struct fields from the root (no list
//! indexes, no map keys), the Go type the field's after pointers are followed (`v1.PodSpec`,
//! `[]v1.Container`, `map[string]string`, `int32`). serde's message (`invalid type: string
//! "x", expected a map`) has none of that, so the mismatch is found again here by walking the
//! body alongside the kind's OpenAPI schema. Strict and non-strict field validation decode
//! types the same way upstream; only unknown and duplicate fields differ.
//!
//! Go names enum-like string fields by their own types (`v1.RestartPolicy`); the schema does
//! not carry those names, so such a field is reported as `string`.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::ResourceInfo;

const REF_PREFIX: &str = "#/definitions/";

/// The definitions of every built-in kind, built on the first decoding error (they are only
/// needed to word one).
fn definitions() -> &'static Map<String, Value> {
    static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        let mut generator = SchemaSettings::draft07().into_generator();
        for resource in crate::builtin_resources() {
            let _ = (resource.schema)(&mut generator);
        }
        generator.take_definitions(false)
    })
}

/// Go's message for the first field of `body` whose JSON type the kind's Go type cannot take,
/// or `None` when every field fits (or the kind is a custom resource, which upstream decodes
/// without a Go type).
pub fn type_error(resource: &ResourceInfo, body: &Value) -> Option<String> {
    if resource.custom.is_some() {
        return None;
    }
    let name = (resource.schema_name)();
    let root = definitions().get(&name)?;
    let mut walk = Walk {
        definitions: definitions(),
        owner: go_name(&name).to_owned(),
        fields: Vec::new(),
    };
    walk.fields_of(root, body)
}

/// `io.k8s.api.core.v1.PodSpec` → `PodSpec`.
fn go_name(definition: &str) -> &str {
    definition.rsplit('.').next().unwrap_or(definition)
}

/// `io.k8s.api.core.v1.PodSpec` → `v1.PodSpec` (Go's package-qualified type name).
fn go_qualified(definition: &str) -> String {
    let mut parts = definition.rsplit('.');
    let name = parts.next().unwrap_or(definition);
    match parts.next() {
        Some(package) => format!("{package}.{name}"),
        None => name.to_owned(),
    }
}

/// How Go's decoder names a JSON value in its messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What a schema position holds, as far as Go's decoder cares.
enum Target<'a> {
    /// A struct (`v1.PodSpec`) with its properties.
    Struct(String, &'a Map<String, Value>),
    /// `map[string]<elem>`.
    Map(&'a Value),
    /// `[]<elem>`.
    Slice(&'a Value),
    /// `[]byte`: a base64 string.
    Bytes,
    String,
    /// `int32` or `int64`.
    Integer(&'static str),
    Float,
    Bool,
    /// `intstr.IntOrString`: a string, or what `int32` takes.
    IntOrString,
    /// `resource.Quantity`: a string or a number.
    Quantity,
    /// `metav1.Time` / `MicroTime`: what `string` takes.
    Time,
    /// Free-form (`RawExtension`, `JSON`, anything the schema leaves open).
    Any,
}

struct Walk<'a> {
    definitions: &'a Map<String, Value>,
    /// The innermost struct, by its Go name.
    owner: String,
    /// JSON names of the struct fields from the root.
    fields: Vec<String>,
}

impl<'a> Walk<'a> {
    /// Follows `$ref`s (also a lone one inside `allOf`) to the definition and its schema.
    fn resolve(&self, mut schema: &'a Value) -> (Option<&'a str>, &'a Value) {
        let mut name = None;
        for _ in 0..8 {
            let reference = schema.get("$ref").and_then(Value::as_str).or_else(|| {
                match schema
                    .get("allOf")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                {
                    Some([only]) => only.get("$ref").and_then(Value::as_str),
                    _ => None,
                }
            });
            let Some(reference) = reference.and_then(|r| r.strip_prefix(REF_PREFIX)) else {
                break;
            };
            let Some((key, definition)) = self.definitions.get_key_value(reference) else {
                break;
            };
            name = Some(key.as_str());
            schema = definition;
        }
        (name, schema)
    }

    fn target(&self, schema: &'a Value) -> Target<'a> {
        let (definition, schema) = self.resolve(schema);
        match definition {
            Some("io.k8s.apimachinery.pkg.util.intstr.IntOrString") => return Target::IntOrString,
            Some("io.k8s.apimachinery.pkg.api.resource.Quantity") => return Target::Quantity,
            Some(
                "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
                | "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
            ) => return Target::Time,
            _ => {}
        }
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            return Target::IntOrString;
        }
        let kind = match schema.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            Some(Value::Array(kinds)) => kinds
                .iter()
                .filter_map(Value::as_str)
                .find(|k| *k != "null")
                .unwrap_or(""),
            _ => "",
        };
        match kind {
            "object" => {
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    let name = definition.map_or_else(|| "struct".to_owned(), go_qualified);
                    return Target::Struct(name, properties);
                }
                match schema.get("additionalProperties") {
                    Some(values @ Value::Object(_)) => Target::Map(values),
                    _ => Target::Any,
                }
            }
            "array" => match schema.get("items") {
                Some(items @ Value::Object(_)) => Target::Slice(items),
                _ => Target::Any,
            },
            "string" if schema.get("format").and_then(Value::as_str) == Some("byte") => {
                Target::Bytes
            }
            "string" => Target::String,
            "integer" => match schema.get("format").and_then(Value::as_str) {
                Some("int32") => Target::Integer("int32"),
                _ => Target::Integer("int64"),
            },
            "number" => Target::Float,
            "boolean" => Target::Bool,
            _ => Target::Any,
        }
    }

    /// Go's type name of what `schema` holds (`[]v1.Container`, `map[string]string`).
    fn go_type(&self, schema: &'a Value) -> String {
        match self.target(schema) {
            Target::Struct(name, _) => name,
            Target::Map(values) => format!("map[string]{}", self.go_type(values)),
            Target::Slice(items) => format!("[]{}", self.go_type(items)),
            Target::Bytes => "[]uint8".to_owned(),
            Target::String => "string".to_owned(),
            Target::Integer(size) => size.to_owned(),
            Target::Float => "float64".to_owned(),
            Target::Bool => "bool".to_owned(),
            Target::IntOrString => "intstr.IntOrString".to_owned(),
            Target::Quantity => "resource.Quantity".to_owned(),
            Target::Time => "v1.Time".to_owned(),
            Target::Any => "interface {}".to_owned(),
        }
    }

    /// `UnmarshalTypeError` with the current context.
    fn mismatch(&self, value: &str, go_type: &str) -> String {
        format!(
            "json: cannot unmarshal {value} into Go struct field {}.{} of type {go_type}",
            self.owner,
            self.fields.join(".")
        )
    }

    /// Checks the properties of a struct-typed object.
    fn fields_of(&mut self, schema: &'a Value, object: &Value) -> Option<String> {
        let Target::Struct(_, properties) = self.target(schema) else {
            return None;
        };
        let Value::Object(map) = object else {
            return None;
        };
        for (key, value) in map {
            // Go matches names case-sensitively here (`CaseSensitive`); unknown keys are left
            // to field validation.
            let Some(property) = properties.get(key) else {
                continue;
            };
            self.fields.push(key.clone());
            let found = self.value(property, value);
            self.fields.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Checks one value against its schema position (the field context is already pushed).
    fn value(&mut self, schema: &'a Value, value: &Value) -> Option<String> {
        // `null` leaves any Go value alone (or nil).
        if value.is_null() {
            return None;
        }
        match self.target(schema) {
            Target::Struct(name, _) => {
                if !value.is_object() {
                    return Some(self.mismatch(json_kind(value), &name));
                }
                let (definition, _) = self.resolve(schema);
                let owner = std::mem::replace(
                    &mut self.owner,
                    definition.map_or_else(String::new, |d| go_name(d).to_owned()),
                );
                let found = self.fields_of(schema, value);
                self.owner = owner;
                found
            }
            Target::Map(values) => match value {
                Value::Object(map) => map.values().find_map(|v| self.value(values, v)),
                other => Some(self.mismatch(json_kind(other), &self.go_type(schema))),
            },
            Target::Slice(items) => match value {
                Value::Array(list) => list.iter().find_map(|v| self.value(items, v)),
                other => Some(self.mismatch(json_kind(other), &self.go_type(schema))),
            },
            Target::Bytes => match value {
                // Invalid base64 is another error (`illegal base64 data …`), left to serde.
                Value::String(_) => None,
                other => Some(self.mismatch(json_kind(other), "[]uint8")),
            },
            Target::String => (!value.is_string()).then(|| self.mismatch(json_kind(value), "string")),
            Target::Integer(size) => match value {
                Value::Number(n) => {
                    let fits = match size {
                        "int32" => n.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
                        _ => n.as_i64().is_some(),
                    };
                    (!fits).then(|| self.mismatch(&format!("number {n}"), size))
                }
                other => Some(self.mismatch(json_kind(other), size)),
            },
            Target::Float => (!value.is_number()).then(|| self.mismatch(json_kind(value), "float64")),
            Target::Bool => (!value.is_boolean()).then(|| self.mismatch(json_kind(value), "bool")),
            // The custom decoders' own errors carry no field context.
            Target::IntOrString => match value {
                Value::String(_) => None,
                Value::Number(n) if n.as_i64().is_some_and(|v| i32::try_from(v).is_ok()) => None,
                Value::Number(n) => Some(format!(
                    "json: cannot unmarshal number {n} into Go value of type int32"
                )),
                other => Some(format!(
                    "json: cannot unmarshal {} into Go value of type int32",
                    json_kind(other)
                )),
            },
            Target::Quantity => match value {
                Value::String(_) | Value::Number(_) => None,
                _ => Some(
                    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                        .to_owned(),
                ),
            },
            Target::Time => (!value.is_string()).then(|| {
                format!(
                    "json: cannot unmarshal {} into Go value of type string",
                    json_kind(value)
                )
            }),
            Target::Any => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn builtin(group: &str, kind: &str) -> ResourceInfo {
        crate::builtin_resources()
            .into_iter()
            .find(|r| r.group == group && r.kind == kind)
            .unwrap()
    }

    #[test]
    fn words_mismatches_as_go_does() {
        let pods = builtin("", "Pod");
        let deployments = builtin("apps", "Deployment");
        let cases = [
            (&pods, json!({"spec": "invalid"}),
                "json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec"),
            (&pods, json!({"spec": {"containers": "x"}}),
                "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type []v1.Container"),
            (&pods, json!({"spec": {"containers": [{"name": 5}]}}),
                "json: cannot unmarshal number into Go struct field Container.spec.containers.name of type string"),
            (&pods, json!({"metadata": {"labels": "a"}}),
                "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
            (&pods, json!({"metadata": {"labels": {"a": 1}}}),
                "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
            (&pods, json!({"spec": {"terminationGracePeriodSeconds": "30"}}),
                "json: cannot unmarshal string into Go struct field PodSpec.spec.terminationGracePeriodSeconds of type int64"),
            (&pods, json!({"spec": {"hostNetwork": "yes"}}),
                "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool"),
            (&pods, json!({"spec": {"containers": [{"ports": [{"containerPort": 1.5}]}]}}),
                "json: cannot unmarshal number 1.5 into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"),
            (&deployments, json!({"spec": {"replicas": [1]}}),
                "json: cannot unmarshal array into Go struct field DeploymentSpec.spec.replicas of type int32"),
            (&deployments, json!({"spec": {"template": {"spec": {"volumes": {}}}}}),
                "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.volumes of type []v1.Volume"),
        ];
        for (resource, body, wanted) in cases {
            assert_eq!(
                type_error(resource, &body).as_deref(),
                Some(wanted),
                "{body}"
            );
        }
        // What fits is no error: nulls, quantities as numbers, int-or-string either way.
        let fine = json!({"metadata": {"name": "p", "labels": null}, "spec": {"containers": [{
            "name": "c", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
            "ports": [{"containerPort": 80}],
            "readinessProbe": {"httpGet": {"port": "http"}},
        }]}});
        assert_eq!(type_error(&pods, &fine), None);
        assert_eq!(
            type_error(
                &pods,
                &json!({"spec": {"containers": [{"readinessProbe": {"httpGet": {"port": true}}}]}})
            )
            .as_deref(),
            Some("json: cannot unmarshal bool into Go value of type int32")
        );
    }
}
