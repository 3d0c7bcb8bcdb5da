//! A CRD version's structural schema (`openAPIV3Schema`) applied to custom resources: pruning of
//! unknown fields, defaulting, and validation in upstream's (kube-openapi's) words.
//!
//! The schema is walked as JSON, exactly as the CRD stores it; nothing is compiled ahead. Every
//! walk is bounded by the object's depth (which the request size bounds) and never panics.
//! `x-kubernetes-validations` (CEL) is not evaluated.

use serde_json::{Map, Value};

use crate::{FieldError, FieldErrorKind, FieldPath};

/// `metadata` fields of an `ObjectMeta`: what survives pruning of a custom resource's (or an
/// embedded resource's) metadata.
const OBJECT_META_FIELDS: &[&str] = &[
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// Deeper than this, a schema or object is not walked further (a CRD schema cannot be
/// recursive, so only hostile input gets here).
const MAX_DEPTH: usize = 128;

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

fn preserves_unknown(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-preserve-unknown-fields")
        || schema.get("additionalProperties") == Some(&Value::Bool(true))
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes every field of `object` (a whole custom resource) that `schema` does not specify
/// and does not preserve, and returns their paths in upstream's notation (`spec.foo`,
/// `spec.items[0].bar`), sorted. `apiVersion` and `kind` are always kept; `metadata` keeps
/// exactly the `ObjectMeta` fields.
pub fn prune(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    if let Some(map) = object.as_object_mut() {
        prune_object_meta(map, "", &mut pruned);
        prune_map(
            schema,
            map,
            "",
            &["apiVersion", "kind", "metadata"],
            &mut pruned,
            0,
        );
    }
    pruned.sort();
    pruned
}

fn prune_object_meta(map: &mut Map<String, Value>, path: &str, pruned: &mut Vec<String>) {
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        let meta_path = child_path(path, "metadata");
        meta.retain(|key, _| {
            let keep = OBJECT_META_FIELDS.contains(&key.as_str());
            if !keep {
                pruned.push(child_path(&meta_path, key));
            }
            keep
        });
    }
}

fn prune_map(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    always_kept: &[&str],
    pruned: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve = preserves_unknown(schema);
    let mut removed = Vec::new();
    for (key, value) in map.iter_mut() {
        if always_kept.contains(&key.as_str()) {
            continue;
        }
        let field_path = child_path(path, key);
        match properties.and_then(|p| p.get(key)).or(additional) {
            Some(property) => prune_value(property, value, &field_path, pruned, depth + 1),
            None if preserve => {}
            None => removed.push(key.clone()),
        }
    }
    for key in removed {
        map.remove(&key);
        pruned.push(child_path(path, &key));
    }
}

fn prune_value(
    schema: &Value,
    value: &mut Value,
    path: &str,
    pruned: &mut Vec<String>,
    depth: usize,
) {
    match value {
        Value::Object(map) => {
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            if embedded {
                prune_object_meta(map, path, pruned);
            }
            let kept: &[&str] = if embedded {
                &["apiVersion", "kind", "metadata"]
            } else {
                &[]
            };
            prune_map(schema, map, path, kept, pruned, depth);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
                for (index, item) in items.iter_mut().enumerate() {
                    prune_value(
                        item_schema,
                        item,
                        &format!("{path}[{index}]"),
                        pruned,
                        depth + 1,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Fills in the schema's `default`s: a missing property with a default gets it (and then its
/// own nested defaults), and so does a `null` one whose schema is not `nullable`. Array items and
/// map values get the defaults of their schemas.
pub fn apply_defaults(schema: &Value, object: &mut Value) {
    default_value(schema, object, 0);
}

fn default_value(schema: &Value, value: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, property) in properties {
                    let Some(default) = property.get("default") else {
                        continue;
                    };
                    match map.get(key) {
                        None => {
                            map.insert(key.clone(), default.clone());
                        }
                        Some(Value::Null) if !flag(property, "nullable") => {
                            map.insert(key.clone(), default.clone());
                        }
                        Some(_) => {}
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map.iter_mut() {
                if let Some(property) = properties.and_then(|p| p.get(key)).or(additional) {
                    default_value(property, child, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
                for item in items {
                    default_value(item_schema, item, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Checks `object` (a whole custom resource, after pruning and defaulting) against `schema`.
/// `metadata` is left to the generic metadata validation; `apiVersion` and `kind` are the
/// endpoint's.
pub fn validate(schema: &Value, object: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = object.as_object() else {
        return errs;
    };
    let root = Walk { depth: 0 };
    let properties = schema.get("properties").and_then(Value::as_object);
    for required in string_list(schema.get("required")) {
        if !map.contains_key(required) && !matches!(required, "apiVersion" | "kind" | "metadata") {
            errs.push(FieldError::required(FieldPath::new(required), ""));
        }
    }
    for (key, value) in map {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        if let Some(property) = properties.and_then(|p| p.get(key)).or(additional) {
            root.value(property, value, &FieldPath::new(key), &mut errs);
        }
    }
    errs
}

/// The JSON type name of `value` as kube-openapi reports it in type errors.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn string_list(value: Option<&Value>) -> impl Iterator<Item = &str> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// A number as Go's `%v` prints a float64: `1`, `1.5`, `1e+21`.
fn go_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i64)
    } else if n.abs() >= 1e21 {
        let text = format!("{n:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        }
    } else {
        n.to_string()
    }
}

/// Whether `value` is an integer (an integral float counts, as Go decodes `1.0`).
fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn matches_type(expected: &str, value: &Value, int_or_string: bool) -> bool {
    if int_or_string {
        return is_integer(value) || value.is_string();
    }
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

/// `<path> in body <detail>`, kube-openapi's phrasing.
fn in_body(path: &FieldPath, detail: &str) -> String {
    format!("{path} in body {detail}")
}

#[derive(Clone, Copy)]
struct Walk {
    depth: usize,
}

impl Walk {
    fn deeper(self) -> Walk {
        Walk {
            depth: self.depth + 1,
        }
    }

    fn value(self, schema: &Value, value: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
        if self.depth > MAX_DEPTH {
            return;
        }
        let declared = schema.get("type").and_then(Value::as_str).unwrap_or("");
        let int_or_string = flag(schema, "x-kubernetes-int-or-string");
        if value.is_null() && (flag(schema, "nullable") || (declared.is_empty() && !int_or_string))
        {
            return;
        }
        let typed = !declared.is_empty() || int_or_string;
        if typed && !matches_type(declared, value, int_or_string) {
            let expected = if int_or_string {
                "integer,string"
            } else {
                declared
            };
            let actual = type_name(value);
            errs.push(FieldError::invalid(
                path.clone(),
                &Value::from(actual),
                in_body(path, &format!("must be of type {expected}: \"{actual}\"")),
            ));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                let supported: Vec<String> = allowed
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => format!("\"{s}\""),
                        other => format!("\"{other}\""),
                    })
                    .collect();
                errs.push(FieldError::new(
                    FieldErrorKind::NotSupported,
                    path.clone(),
                    Some(value),
                    format!("supported values: {}", supported.join(", ")),
                ));
            }
        }
        match value {
            Value::Number(n) => self.number(schema, value, n.as_f64().unwrap_or(0.0), path, errs),
            Value::String(s) => self.string(schema, value, s, path, errs),
            Value::Array(items) => self.array(schema, items, path, errs),
            Value::Object(map) => self.object(schema, value, map, path, errs),
            _ => {}
        }
        for sub in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.deeper().value(sub, value, path, errs);
        }
        self.alternatives(schema, value, path, errs);
        if let Some(not) = schema.get("not").filter(|n| n.is_object()) {
            let mut inner = Vec::new();
            self.deeper().value(not, value, path, &mut inner);
            if inner.is_empty() {
                errs.push(FieldError::invalid(
                    path.clone(),
                    value,
                    in_body(path, "must not validate the schema (not)"),
                ));
            }
        }
    }

    fn alternatives(
        self,
        schema: &Value,
        value: &Value,
        path: &FieldPath,
        errs: &mut Vec<FieldError>,
    ) {
        let passing = |key: &str| -> Option<usize> {
            let list = schema.get(key).and_then(Value::as_array)?;
            Some(
                list.iter()
                    .filter(|sub| {
                        let mut inner = Vec::new();
                        self.deeper().value(sub, value, path, &mut inner);
                        inner.is_empty()
                    })
                    .count(),
            )
        };
        if passing("anyOf") == Some(0) {
            errs.push(FieldError::invalid(
                path.clone(),
                value,
                in_body(path, "must validate at least one schema (anyOf)"),
            ));
        }
        if passing("oneOf").is_some_and(|n| n != 1) {
            errs.push(FieldError::invalid(
                path.clone(),
                value,
                in_body(path, "must validate one and only one schema (oneOf)"),
            ));
        }
    }

    fn number(
        self,
        schema: &Value,
        value: &Value,
        n: f64,
        path: &FieldPath,
        errs: &mut Vec<FieldError>,
    ) {
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            let exclusive = flag(schema, "exclusiveMaximum");
            if n > max || (exclusive && n == max) {
                let relation = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                errs.push(FieldError::invalid(
                    path.clone(),
                    value,
                    in_body(path, &format!("should be {relation} {}", go_number(max))),
                ));
            }
        }
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            let exclusive = flag(schema, "exclusiveMinimum");
            if n < min || (exclusive && n == min) {
                let relation = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                errs.push(FieldError::invalid(
                    path.clone(),
                    value,
                    in_body(path, &format!("should be {relation} {}", go_number(min))),
                ));
            }
        }
        if let Some(factor) = schema.get("multipleOf").and_then(Value::as_f64) {
            if factor > 0.0 && (n / factor).fract() != 0.0 {
                errs.push(FieldError::invalid(
                    path.clone(),
                    value,
                    in_body(
                        path,
                        &format!("should be a multiple of {}", go_number(factor)),
                    ),
                ));
            }
        }
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        let out_of_range = match format {
            "int32" => !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&n),
            "int64" => value.as_i64().is_none() && is_integer(value),
            _ => false,
        };
        if out_of_range {
            errs.push(FieldError::invalid(
                path.clone(),
                value,
                in_body(path, &format!("must be of type {format}")),
            ));
        }
    }

    fn string(
        self,
        schema: &Value,
        value: &Value,
        text: &str,
        path: &FieldPath,
        errs: &mut Vec<FieldError>,
    ) {
        let length = text.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if length > max {
                let unit = if max == 1 { "byte" } else { "bytes" };
                errs.push(FieldError::new(
                    FieldErrorKind::TooLong,
                    path.clone(),
                    None,
                    format!("may not be more than {max} {unit}"),
                ));
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if length < min {
                errs.push(FieldError::invalid(
                    path.clone(),
                    value,
                    in_body(path, &format!("should be at least {min} chars long")),
                ));
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            // A pattern the regex engine cannot compile was accepted by the CRD's validation
            // (which compiles the same way), so this only skips what never could match.
            if let Ok(regex) = regex::Regex::new(pattern) {
                if !regex.is_match(text) {
                    errs.push(FieldError::invalid(
                        path.clone(),
                        value,
                        in_body(path, &format!("should match '{pattern}'")),
                    ));
                }
            }
        }
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        if !string_format_ok(format, text) {
            errs.push(FieldError::invalid(
                path.clone(),
                value,
                in_body(path, &format!("must be of type {format}: \"{text}\"")),
            ));
        }
    }

    fn array(self, schema: &Value, items: &[Value], path: &FieldPath, errs: &mut Vec<FieldError>) {
        let count = items.len() as u64;
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if count > max {
                errs.push(FieldError::new(
                    FieldErrorKind::TooMany,
                    path.clone(),
                    Some(&Value::from(count)),
                    format!("must have at most {max} items"),
                ));
            }
        }
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if count < min {
                errs.push(FieldError::invalid(
                    path.clone(),
                    &Value::from(count),
                    in_body(path, &format!("should have at least {min} items")),
                ));
            }
        }
        if flag(schema, "uniqueItems") {
            let duplicated = items
                .iter()
                .enumerate()
                .any(|(i, item)| items[..i].contains(item));
            if duplicated {
                errs.push(FieldError::invalid(
                    path.clone(),
                    &Value::from(""),
                    in_body(path, "shouldn't contain duplicates"),
                ));
            }
        }
        if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
            for (index, item) in items.iter().enumerate() {
                self.deeper()
                    .value(item_schema, item, &path.index(index), errs);
            }
        }
    }

    fn object(
        self,
        schema: &Value,
        value: &Value,
        map: &Map<String, Value>,
        path: &FieldPath,
        errs: &mut Vec<FieldError>,
    ) {
        for required in string_list(schema.get("required")) {
            if !map.contains_key(required) {
                errs.push(FieldError::required(path.child(required), ""));
            }
        }
        if flag(schema, "x-kubernetes-embedded-resource")
            && !flag(schema, "x-kubernetes-preserve-unknown-fields")
        {
            for key in ["apiVersion", "kind"] {
                if map
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    errs.push(FieldError::required(path.child(key), "must not be empty"));
                }
            }
        }
        let count = map.len() as u64;
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
            if count > max {
                errs.push(FieldError::new(
                    FieldErrorKind::TooMany,
                    path.clone(),
                    Some(&Value::from(count)),
                    format!("must have at most {max} items"),
                ));
            }
        }
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
            if count < min {
                errs.push(FieldError::invalid(
                    path.clone(),
                    value,
                    in_body(path, &format!("should have at least {min} properties")),
                ));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        for (key, child) in map {
            if let Some(property) = properties.and_then(|p| p.get(key)).or(additional) {
                self.deeper().value(property, child, &path.child(key), errs);
            }
        }
    }
}

/// The string formats checked (upstream checks more; unknown formats pass, as there).
fn string_format_ok(format: &str, text: &str) -> bool {
    match format {
        "date-time" => crate::table::parse_rfc3339(text).is_some(),
        "date" => {
            let b = text.as_bytes();
            b.len() == 10
                && b[4] == b'-'
                && b[7] == b'-'
                && [0..4, 5..7, 8..10]
                    .into_iter()
                    .all(|r| b[r].iter().all(u8::is_ascii_digit))
                && (1..=12).contains(&text[5..7].parse::<u8>().unwrap_or(0))
                && (1..=31).contains(&text[8..10].parse::<u8>().unwrap_or(0))
        }
        "uuid" => {
            let b = text.as_bytes();
            b.len() == 36
                && b.iter().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => *c == b'-',
                    _ => c.is_ascii_hexdigit(),
                })
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_go() {
        assert_eq!(go_number(1.0), "1");
        assert_eq!(go_number(1.5), "1.5");
        assert_eq!(go_number(-3.0), "-3");
        assert_eq!(go_number(1e21), "1e+21");
    }
}
