//! Small helpers over `serde_json::Value` shared by defaulting and validation.

use serde_json::{Map, Value};

/// The child object `key` of `value`, created (as `{}`) when absent or null; `None` when `value`
/// is not an object or the child exists with another type.
pub(crate) fn child_obj<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let map = value.as_object_mut()?;
    let child = map.entry(key.to_owned()).or_insert(Value::Null);
    if child.is_null() {
        *child = Value::Object(Map::new());
    }
    if child.is_object() {
        Some(child)
    } else {
        None
    }
}

/// The existing child object `key` of `value`, if it is an object.
pub(crate) fn existing_obj<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let child = value.as_object_mut()?.get_mut(key)?;
    if child.is_object() {
        Some(child)
    } else {
        None
    }
}

/// Walks `path` of existing object fields.
pub(crate) fn existing_path<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(value, |value, key| existing_obj(value, key))
}

/// Sets `key` to `default` when it is absent or null (a Go `nil` pointer or omitted field).
pub(crate) fn set_default(value: &mut Value, key: &str, default: Value) {
    if let Some(map) = value.as_object_mut() {
        let slot = map.entry(key.to_owned()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = default;
        }
    }
}

/// Sets `key` to `default` when it is absent, null or the empty string (a Go `""` field).
pub(crate) fn set_default_str(value: &mut Value, key: &str, default: &str) {
    if let Some(map) = value.as_object_mut() {
        let slot = map.entry(key.to_owned()).or_insert(Value::Null);
        if slot.is_null() || slot.as_str() == Some("") {
            *slot = Value::String(default.to_owned());
        }
    }
}

/// Sets the integer `key` to `default` when it is absent, null or zero (a Go `int32` field).
pub(crate) fn set_default_nonzero(value: &mut Value, key: &str, default: i64) {
    if let Some(map) = value.as_object_mut() {
        let slot = map.entry(key.to_owned()).or_insert(Value::Null);
        if slot.is_null() || slot.as_i64() == Some(0) {
            *slot = Value::from(default);
        }
    }
}

/// The elements of the array `key` of `value`, mutably; empty when absent or not an array.
pub(crate) fn items_mut<'a>(
    value: &'a mut Value,
    key: &str,
) -> impl Iterator<Item = &'a mut Value> {
    value
        .as_object_mut()
        .and_then(|map| map.get_mut(key))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// The string at `key` of `value`, or `""`.
pub(crate) fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Follows `path` through objects.
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

/// The elements of the array at `key`, or nothing.
pub(crate) fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whether a Go-decoded value would be its zero value: null, `""`, `0`, `false`, `[]` or `{}`.
pub(crate) fn is_zero(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Bool(b)) => !b,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
    }
}
