//! The JSON kube-apiserver writes: Go's `encoding/json` over the API's Go types.
//!
//! Clients compare and scripts grep this text, so every JSON body k3rs sends (objects, lists,
//! watch events, `Status`, discovery) and every object it stores is written here, and written
//! as Go writes the same value of the same type:
//! - struct fields in declaration order (`kind`, `apiVersion`, `metadata`, `spec`, `status`;
//!   `metadata`: `name`, `generateName`, `namespace`, …, `uid`, `resourceVersion`, …);
//! - a field tagged `omitempty` left out when it holds its zero value (`""`, `0`, `false`, an
//!   empty list or map), unless it is a pointer (a `*bool` set to `false` stays);
//! - a struct value always written, even when tagged `omitempty` and empty (Go cannot omit one):
//!   a new Service's `"status":{"loadBalancer":{}}`, a new ReplicaSet's `"status":{"replicas":0}`;
//!   fields without `omitempty` written with their zero value when the object lacks them;
//! - map keys, and every key of a type the table does not know (custom resources, embedded raw
//!   objects), in sorted order, as Go writes a `map[string]…` and an `Unstructured`.
//!
//! The layout of every type comes from `go_layout.txt`, generated from upstream's Go sources by
//! `cargo xtask go-layout`. Keys the layout does not know (a field newer than the table) are kept,
//! sorted, after the known ones: nothing a client sent is lost by writing.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

mod layout;

use layout::{Field, Layout, Opaque, Ty};

/// A type of the layout table: a struct the writer knows the fields of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoType(usize);

fn table() -> &'static Layout {
    static TABLE: OnceLock<Layout> = OnceLock::new();
    TABLE.get_or_init(|| Layout::parse(include_str!("go_layout.txt")))
}

impl GoType {
    /// The type of an OpenAPI definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub fn named(definition: &str) -> Option<GoType> {
        table().by_name.get(definition).copied().map(GoType)
    }

    /// The type of a kind as a client sees it: `apps/v1` `Deployment`, `v1` `Status`. The meta
    /// kinds kube-apiserver writes in the core group's `v1` (`Status`, `APIResourceList`,
    /// `APIGroupList`, `APIVersions`, `APIGroup`) are found there too.
    pub fn of_kind(api_version: &str, kind: &str) -> Option<GoType> {
        let layout = table();
        if let Some(found) = layout.by_kind.get(&(api_version, kind)) {
            return Some(GoType(*found));
        }
        if api_version == "v1" {
            return layout
                .by_kind
                .get(&("meta.k8s.io/v1", kind))
                .copied()
                .map(GoType);
        }
        None
    }

    /// The type of a JSON object from its `apiVersion` and `kind`.
    pub fn of_object(object: &Value) -> Option<GoType> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        GoType::of_kind(api_version, kind)
    }

    /// Top-level field names in the order Go writes them.
    pub fn field_names(self) -> impl Iterator<Item = &'static str> {
        table().types[self.0].fields.iter().map(|f| f.name)
    }
}

/// `value` as kube-apiserver writes it: typed by its `apiVersion` and `kind` when it is a
/// built-in kind, keys sorted otherwise (custom resources). No trailing newline.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value, GoType::of_object(value));
    out
}

/// Writes `value` as Go writes a value of `ty` (`None`: an untyped value, keys sorted).
pub fn write(out: &mut Vec<u8>, value: &Value, ty: Option<GoType>) {
    match (ty, value) {
        (Some(GoType(index)), _) => write_value(out, value, &Ty::Struct(index)),
        (None, Value::Object(map)) => write_object(out, map, None),
        (None, _) => write_untyped(out, value),
    }
}

/// Writes a JSON object as Go writes a value of `ty` (`None`: keys sorted).
///
/// An untyped object with a `metadata` object is a custom resource: a map to Go, so its keys
/// come sorted, but its metadata is an `ObjectMeta` upstream sets through typed accessors, so
/// the empty fields `omitempty` drops are dropped there too (keys still sorted).
pub fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>, ty: Option<GoType>) {
    match ty {
        Some(GoType(index)) => write_struct(out, map, index),
        None => write_sorted_map(out, map, |out, key, value| match (key, value) {
            ("metadata", Value::Object(metadata)) => {
                let mut normalized = Vec::new();
                write_struct(&mut normalized, metadata, object_meta());
                match serde_json::from_slice::<Value>(&normalized) {
                    Ok(metadata) => write_untyped(out, &metadata),
                    Err(_) => write_untyped(out, value),
                }
            }
            _ => write_untyped(out, value),
        }),
    }
}

/// The index of `ObjectMeta` in the table (it is always there: the table is generated from
/// the roots that embed it).
fn object_meta() -> usize {
    static INDEX: OnceLock<usize> = OnceLock::new();
    *INDEX.get_or_init(|| table().by_name.get(OBJECT_META).copied().unwrap_or(0))
}

/// The Go type of every object's `metadata`.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// `value` with Go's encoding applied in place: what reading back [`write`]'s text gives (zero
/// values of always-written fields present, `omitempty` zeros gone). The API server stores
/// objects so, so that comparing a stored object with a new one sees only real changes.
pub fn normalize(value: &mut Value, ty: Option<GoType>) {
    let mut text = Vec::new();
    write(&mut text, value, ty);
    if let Ok(normalized) = serde_json::from_slice(&text) {
        *value = normalized;
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value, ty: &Ty) {
    match (ty, value) {
        (Ty::Ptr(inner), _) => write_value(out, value, inner),
        (Ty::Struct(index), Value::Object(map)) => write_struct(out, map, *index),
        // `JSONSchemaPropsOrArray`: a list of schemas.
        (Ty::Struct(_), Value::Array(items)) => write_array(out, items, ty),
        (Ty::Slice(inner), Value::Array(items)) => write_array(out, items, inner),
        // A `RawExtension` holding an object of a known kind (a Table row's object) is that
        // object, written by its own type.
        (Ty::Opaque(Opaque::Raw), Value::Object(map)) => {
            write_object(out, map, GoType::of_object(value))
        }
        (Ty::Map(inner), Value::Object(map)) => {
            write_sorted_map(out, map, |out, _, item| write_value(out, item, inner))
        }
        _ => write_untyped(out, value),
    }
}

fn write_array(out: &mut Vec<u8>, items: &[Value], ty: &Ty) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, item, ty);
    }
    out.push(b']');
}

fn write_struct(out: &mut Vec<u8>, map: &Map<String, Value>, index: usize) {
    let layout = table();
    let fields = &layout.types[index].fields;
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(out, name);
        out.push(b':');
    };
    for field in fields {
        match map.get(field.name).filter(|v| !v.is_null()) {
            Some(value) => {
                if !omitted(field, value) {
                    key(out, field.name);
                    write_value(out, value, &field.ty);
                }
            }
            None => {
                if let Some(zero) = zero_written(field) {
                    key(out, field.name);
                    match zero {
                        Zero::Literal(text) => out.extend_from_slice(text.as_bytes()),
                        Zero::Struct(inner) => write_struct(out, &Map::new(), inner),
                    }
                }
            }
        }
    }
    // Keys the table does not know: kept, sorted, after the known ones.
    let known = layout.field_index(index);
    let mut unknown: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(name, _)| !known.contains_key(name.as_str()))
        .collect();
    unknown.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in unknown {
        key(out, name);
        write_untyped(out, value);
    }
    out.push(b'}');
}

/// Whether Go leaves out a field that holds `value` (not null).
fn omitted(field: &Field, value: &Value) -> bool {
    if !(field.omitempty || field.omitzero) {
        return false;
    }
    match &field.ty {
        // A pointer is written whenever it is set; a struct (and a type with its own
        // marshalling, all structs) is never empty to `omitempty`.
        Ty::Ptr(_) | Ty::Struct(_) | Ty::Opaque(_) => false,
        Ty::String | Ty::Bytes => value.as_str() == Some(""),
        Ty::Int | Ty::Float => value.as_f64() == Some(0.0),
        Ty::Bool => value.as_bool() == Some(false),
        Ty::Slice(_) => value.as_array().is_some_and(Vec::is_empty),
        Ty::Map(_) => value.as_object().is_some_and(Map::is_empty),
    }
}

/// What Go writes for a field the object does not have (or has as `null`).
enum Zero {
    Literal(&'static str),
    Struct(usize),
}

fn zero_written(field: &Field) -> Option<Zero> {
    if field.omitzero {
        return None;
    }
    let literal = match &field.ty {
        Ty::Struct(index) => return Some(Zero::Struct(*index)),
        Ty::Opaque(kind) => kind.zero(),
        _ if field.omitempty => return None,
        Ty::Ptr(_) | Ty::Slice(_) | Ty::Map(_) | Ty::Bytes => "null",
        Ty::String => "\"\"",
        Ty::Int | Ty::Float => "0",
        Ty::Bool => "false",
    };
    Some(Zero::Literal(literal))
}

/// Writes a value no type describes: as Go writes `interface{}` (maps with sorted keys).
fn write_untyped(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => write_untyped_map(out, map),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_untyped(out, item);
            }
            out.push(b']');
        }
        Value::String(text) => write_string(out, text),
        // Scalars: serde_json's text (integers as written, floats shortest round trip).
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_untyped_map(out: &mut Vec<u8>, map: &Map<String, Value>) {
    write_sorted_map(out, map, |out, _, item| write_untyped(out, item));
}

/// A map as Go writes one: keys sorted. (serde_json's map iterates sorted unless its
/// `preserve_order` feature is on, which another crate could turn on; so they are sorted here.)
fn write_sorted_map(
    out: &mut Vec<u8>,
    map: &Map<String, Value>,
    mut write_item: impl FnMut(&mut Vec<u8>, &str, &Value),
) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_item(out, key, item);
    }
    out.push(b'}');
}

/// Writes a JSON string as Go's encoder escapes it: `<`, `>` and `&` as `\u003c`, `\u003e`,
/// `\u0026` (HTML-safe, the encoder's default), U+2028 and U+2029 escaped, the rest as JSON
/// requires.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            // Go 1.22 and later write the short forms of backspace and form feed.
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '<' => Some("\\u003c"),
            '>' => Some("\\u003e"),
            '&' => Some("\\u0026"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.extend_from_slice(&text.as_bytes()[start..i]);
        match escape {
            Some(escaped) => out.extend_from_slice(escaped.as_bytes()),
            None => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&text.as_bytes()[start..]);
    out.push(b'"');
}

/// Index of field names per type, built once per type on first use.
impl Layout {
    fn field_index(&self, index: usize) -> &HashMap<&'static str, usize> {
        self.types[index].index.get_or_init(|| {
            self.types[index]
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name, i))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests;
