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
//!
//! A strategic merge patch's result is not decoded from JSON but converted from the patched map
//! by apimachinery's unstructured converter, which words the same mismatch its own way (`cannot
//! restore struct from: string`, `unrecognized type: int32`) and visits struct fields in Go's
//! declaration order: [`unstructured_error`]. Upstream quotes the patch itself in that error as
//! Go's `%+v` prints the decoded map: [`go_value_text`].

use serde_json::{Map, Value};

use crate::ResourceInfo;

const REF_PREFIX: &str = "#/definitions/";

/// The definitions of every built-in kind (the ones patching already holds).
fn definitions() -> &'static Map<String, Value> {
    crate::openapi::builtin_definitions()
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

/// Go's message for a whole JSON value its target cannot take, outside any struct: `json: cannot
/// unmarshal string into Go value of type map[string]interface {}`.
pub fn value_type_error(value: &Value, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go value of type {go_type}",
        json_kind(value)
    )
}

/// Go's `encoding/json` words for text that is not JSON, where serde's error says enough to
/// tell: input that ends early (`unexpected end of JSON input`), a first character that starts
/// no value, and text after a complete value. `None` for other syntax errors.
pub fn syntax_error(text: &[u8], error: &serde_json::Error) -> Option<String> {
    if error.is_eof() {
        return Some("unexpected end of JSON input".to_owned());
    }
    if !error.is_syntax() {
        return None;
    }
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let start = text.iter().position(|b| !is_space(b))?;
    let first = text[start];
    let starts_value = matches!(
        first,
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    );
    if !starts_value {
        return Some(format!(
            "invalid character {} looking for beginning of value",
            quote_char(text, start)
        ));
    }
    // serde reports text after a complete value as "trailing characters" at its position.
    if error.to_string().starts_with("trailing characters") {
        let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<Value>();
        if let Some(Ok(_)) = stream.next() {
            let end = stream.byte_offset();
            let next = end + text[end..].iter().position(|b| !is_space(b))?;
            return Some(format!(
                "invalid character {} after top-level value",
                quote_char(text, next)
            ));
        }
    }
    None
}

/// A byte as Go's JSON scanner quotes it (`quoteChar`): `'x'`, `'\''`, `'"'`, `'\x01'`; a
/// byte above ASCII as the Latin-1 character Go's `string(byte)` makes of it.
fn quote_char(text: &[u8], at: usize) -> String {
    let byte = text.get(at).copied().unwrap_or(0);
    match byte {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        b'\n' => "'\\n'".to_owned(),
        b'\t' => "'\\t'".to_owned(),
        b'\r' => "'\\r'".to_owned(),
        0x07 => "'\\a'".to_owned(),
        0x08 => "'\\b'".to_owned(),
        0x0c => "'\\f'".to_owned(),
        0x0b => "'\\v'".to_owned(),
        b if b < 0x20 || b == 0x7f => format!("'\\x{b:02x}'"),
        b => format!("'{}'", char::from(b)),
    }
}

/// The unstructured converter's message (`runtime.DefaultUnstructuredConverter`) for the first
/// field of `object` whose JSON type the kind's Go type cannot take, visiting struct fields in
/// Go's declaration order as the converter does; `None` when every field fits or the kind is a
/// custom resource (kept unstructured upstream).
pub fn unstructured_error(resource: &ResourceInfo, object: &Value) -> Option<String> {
    if resource.custom.is_some() {
        return None;
    }
    let name = (resource.schema_name)();
    let root = definitions().get(&name)?;
    let walk = Walk {
        definitions: definitions(),
        owner: go_name(&name).to_owned(),
        fields: Vec::new(),
    };
    match walk.target(root) {
        Target::Struct(_, properties) => walk.restore_struct(Some(&name), properties, object),
        _ => None,
    }
}

/// A decoded JSON value as Go's `fmt` prints it with `%v`/`%+v` (`map[spec:map[replicas:x]]`):
/// maps with sorted keys as `map[k:v ...]`, lists as `[a b]`, strings bare, `null` as `<nil>`,
/// integers as written and other numbers as Go's shortest `%g`.
pub fn go_value_text(value: &Value) -> String {
    let mut out = String::new();
    write_go_value(&mut out, value);
    out
}

fn write_go_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => out.push_str(s),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            // Integers that fit `int64` stay integers (`UnmarshalCaseSensitivePreserveInts`).
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(f)) => out.push_str(&go_float_text(f)),
            (None, None) => out.push_str(&n.to_string()),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go's fmt prints map keys sorted.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push_str("map[");
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_go_value(out, item);
            }
            out.push(']');
        }
    }
}

/// A `float64` as Go's `%v` prints it: the shortest digits that read back, in `%e` form
/// (`1e+06`, `1.5e-05`) when the decimal exponent is below -4 or at least 6 (strconv's
/// `'g'` rule for the shortest precision), plain otherwise (`1.5`, `100000`).
fn go_float_text(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".to_owned()
        } else if f > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    // Rust's `{:e}` gives the same shortest digits: `1.5e-5`, `1e6`.
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        // Rust's `{}` is the plain shortest form, but writes `1` for `1.0` as Go does.
        format!("{f}")
    }
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

/// The Go reflect kind of a decoded JSON value as `reflect.Kind.String()` names it (integers
/// decode as `int64`, other numbers as `float64`).
fn reflect_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "invalid",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.as_i64().is_some() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
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
            let reference = crate::openapi::reference_of(schema);
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

    /// The unstructured converter's check of one value against its schema position
    /// (`fromUnstructured`): what a Go reflect kind of the decoded value cannot become.
    fn restore(&self, schema: &'a Value, value: &Value) -> Option<String> {
        // `null` sets the zero value.
        if value.is_null() {
            return None;
        }
        match self.target(schema) {
            Target::Struct(_, properties) => {
                let (definition, _) = self.resolve(schema);
                self.restore_struct(definition, properties, value)
            }
            Target::Map(values) => match value {
                Value::Object(map) => map.values().find_map(|v| self.restore(values, v)),
                other => Some(format!("cannot restore map from {}", reflect_kind(other))),
            },
            Target::Slice(items) => match value {
                Value::Array(list) => list.iter().find_map(|v| self.restore(items, v)),
                other => Some(format!("cannot restore slice from {}", reflect_kind(other))),
            },
            // `[]byte` takes a (base64) string; a list goes element by element into `uint8`.
            Target::Bytes => match value {
                Value::String(_) | Value::Array(_) => None,
                other => Some(format!("cannot restore slice from {}", reflect_kind(other))),
            },
            // Simple kinds: assignable, or converted within the same group (integers also to
            // floats, integral floats to integers); Go's `int64` → `string` conversion exists
            // but is refused by name, everything else falls through to "unrecognized type".
            Target::String => match value {
                Value::String(_) => None,
                Value::Number(n) if n.as_i64().is_some() => {
                    Some("cannot convert int64 to string".to_owned())
                }
                _ => Some("unrecognized type: string".to_owned()),
            },
            Target::Integer(size) => match value {
                Value::Number(n) if n.as_i64().is_some() => None,
                Value::Number(n) => match n.as_f64() {
                    Some(f) if f == f.trunc() => None,
                    _ => Some(format!("cannot convert float64 to {size}")),
                },
                _ => Some(format!("unrecognized type: {size}")),
            },
            Target::Float => (!value.is_number()).then(|| "unrecognized type: float64".to_owned()),
            Target::Bool => (!value.is_boolean()).then(|| "unrecognized type: bool".to_owned()),
            // Types with their own `UnmarshalJSON` get the value re-encoded as JSON: their
            // errors are the same as when decoding a body, without field context.
            Target::IntOrString | Target::Quantity | Target::Time => {
                let mut walk = Walk {
                    definitions: self.definitions,
                    owner: String::new(),
                    fields: Vec::new(),
                };
                walk.value(schema, value)
            }
            Target::Any => None,
        }
    }

    /// A struct from a map: its fields in Go's declaration order (the wire layout's), the
    /// first failure wins.
    fn restore_struct(
        &self,
        definition: Option<&str>,
        properties: &'a Map<String, Value>,
        value: &Value,
    ) -> Option<String> {
        let Value::Object(map) = value else {
            return Some(format!(
                "cannot restore struct from: {}",
                reflect_kind(value)
            ));
        };
        let declared: Vec<&str> = match definition.and_then(crate::wire::GoType::named) {
            Some(ty) => ty.field_names().collect(),
            None => properties.keys().map(String::as_str).collect(),
        };
        declared.into_iter().find_map(|field| {
            let (property, item) = (properties.get(field)?, map.get(field)?);
            self.restore(property, item)
        })
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

    #[test]
    fn words_unstructured_mismatches_as_the_converter_does() {
        let pods = builtin("", "Pod");
        let deployments = builtin("apps", "Deployment");
        let cases = [
            (
                &deployments,
                json!({"spec": {"template": "invalid"}}),
                "cannot restore struct from: string",
            ),
            (
                &deployments,
                json!({"spec": {"replicas": "x"}}),
                "unrecognized type: int32",
            ),
            (
                &deployments,
                json!({"spec": {"replicas": 1.5}}),
                "cannot convert float64 to int32",
            ),
            (
                &deployments,
                json!({"spec": {"selector": {"matchLabels": []}}}),
                "cannot restore map from slice",
            ),
            (
                &pods,
                json!({"spec": {"containers": {"name": "c"}}}),
                "cannot restore slice from map",
            ),
            (
                &pods,
                json!({"spec": {"containers": [{"name": 5}]}}),
                "cannot convert int64 to string",
            ),
            (
                &pods,
                json!({"spec": {"containers": [{"name": true}]}}),
                "unrecognized type: string",
            ),
            (
                &pods,
                json!({"spec": {"hostNetwork": "yes"}}),
                "unrecognized type: bool",
            ),
            (
                &pods,
                json!({"metadata": {"labels": "a"}}),
                "cannot restore map from string",
            ),
            (
                &pods,
                json!({"metadata": 7}),
                "cannot restore struct from: int64",
            ),
            (
                &pods,
                json!({"spec": {"containers": [{"readinessProbe": {"httpGet": {"port": true}}}]}}),
                "json: cannot unmarshal bool into Go value of type int32",
            ),
        ];
        for (resource, object, wanted) in cases {
            assert_eq!(
                unstructured_error(resource, &object).as_deref(),
                Some(wanted),
                "{object}"
            );
        }
        // Go's declaration order decides between two mismatches: `template` comes before
        // `minReadySeconds` in `DeploymentSpec`, although it sorts after it.
        assert_eq!(
            unstructured_error(
                &deployments,
                &json!({"spec": {"minReadySeconds": "1", "template": "t"}})
            )
            .as_deref(),
            Some("cannot restore struct from: string")
        );
        // What converts is no error: integral floats into integers, nulls anywhere.
        let fine = json!({"spec": {"replicas": 2.0, "selector": null, "paused": false}});
        assert_eq!(unstructured_error(&deployments, &fine), None);
    }

    #[test]
    fn prints_values_as_go_fmt_does() {
        let cases = [
            (
                json!({"spec": {"template": "invalid"}}),
                "map[spec:map[template:invalid]]",
            ),
            (
                json!({"b": [1, "x", null, true], "a": {}}),
                "map[a:map[] b:[1 x <nil> true]]",
            ),
            (
                json!({"f": 1.5, "g": 1e6, "h": 0.00001, "i": 123456.0, "j": 2.0}),
                "map[f:1.5 g:1e+06 h:1e-05 i:123456 j:2]",
            ),
            (json!("a b"), "a b"),
        ];
        for (value, wanted) in cases {
            assert_eq!(go_value_text(&value), wanted, "{value}");
        }
    }
}
