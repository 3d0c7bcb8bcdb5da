//! Object metadata checks shared by every kind (upstream's `ValidateObjectMeta` and
//! `ValidateObjectMetaUpdate`).

use serde_json::{json, Value};

use super::names::{self, NameFn};
use super::{forbidden, immutable, invalid, required};
use crate::defaults::json::{items, str_at};
use crate::{FieldError, FieldErrorKind, FieldPath};

/// Upstream's limit on the total size of a object's annotations.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Finalizer names that need no domain prefix.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// Checks `metadata` of a new object. A missing `name` is accepted when `generateName` is set:
/// the API server generates the name, and calls this again (or not) as it sees fit.
pub(crate) fn validate(
    obj: &Value,
    namespaced: bool,
    name_fn: NameFn,
    builtin: bool,
    errs: &mut Vec<FieldError>,
) {
    let path = FieldPath::new("metadata");
    let empty = json!({});
    let meta = match obj.get("metadata") {
        Some(m) if m.is_object() => m,
        None | Some(Value::Null) => &empty,
        Some(other) => {
            errs.push(invalid(path, other, "must be an object"));
            return;
        }
    };
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_fn(generate_name, true) {
            errs.push(invalid(
                path.child("generateName"),
                &json!(generate_name),
                msg,
            ));
        }
    }
    let name = str_at(meta, "name");
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(required(
                path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_fn(name, false) {
            errs.push(invalid(path.child("name"), &json!(name), msg));
        }
    }
    let namespace = str_at(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(required(path.child("namespace"), ""));
        } else {
            for msg in names::dns1123_label(namespace) {
                errs.push(invalid(path.child("namespace"), &json!(namespace), msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(forbidden(
            path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(generation) = meta.get("generation").and_then(Value::as_i64) {
        if generation < 0 {
            errs.push(invalid(
                path.child("generation"),
                &json!(generation),
                "must be greater than or equal to 0",
            ));
        }
    }
    labels(meta.get("labels"), &path.child("labels"), errs);
    annotations(meta.get("annotations"), &path.child("annotations"), errs);
    owner_references(meta, &path.child("ownerReferences"), errs);
    finalizers(meta, &path.child("finalizers"), builtin, errs);
}

/// `ValidateLabels`: every key a qualified name, every value a label value; errors name the
/// map, not the key, as upstream's do.
pub(crate) fn labels(labels: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (key, value) in labels {
        for msg in names::qualified_name(key) {
            errs.push(invalid(path.clone(), &json!(key), msg));
        }
        match value {
            Value::String(value) => {
                for msg in names::label_value(value) {
                    errs.push(invalid(path.clone(), &json!(value), msg));
                }
            }
            other => errs.push(invalid(path.key(key), other, "must be a string")),
        }
    }
}

fn annotations(annotations: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(annotations) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (key, value) in annotations {
        for msg in names::qualified_name(&key.to_lowercase()) {
            errs.push(invalid(path.clone(), &json!(key), msg));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::new(
            FieldErrorKind::TooLong,
            path.clone(),
            None,
            format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        ));
    }
}

fn owner_references(meta: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut controllers = Vec::new();
    for (i, reference) in items(meta, "ownerReferences").iter().enumerate() {
        let path = path.index(i);
        let api_version = str_at(reference, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(invalid(
                path.child("apiVersion"),
                &json!(version),
                "version must not be empty",
            ));
        }
        for (field, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            let value = str_at(reference, field);
            if value.is_empty() {
                errs.push(invalid(
                    path.child(field),
                    &json!(value),
                    format!("{what} must not be empty"),
                ));
            }
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(str_at(reference, "name").to_owned());
        }
    }
    if controllers.len() > 1 {
        errs.push(invalid(
            path.clone(),
            meta.get("ownerReferences").unwrap_or(&Value::Null),
            format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
}

fn finalizers(meta: &Value, path: &FieldPath, builtin: bool, errs: &mut Vec<FieldError>) {
    let list = items(meta, "finalizers");
    let mut has_orphan = false;
    let mut has_foreground = false;
    for (i, finalizer) in list.iter().enumerate() {
        let Some(name) = finalizer.as_str() else {
            errs.push(invalid(path.index(i), finalizer, "must be a string"));
            continue;
        };
        for msg in names::qualified_name(name) {
            errs.push(invalid(path.clone(), &json!(name), msg));
        }
        has_orphan |= name == "orphan";
        has_foreground |= name == "foregroundDeletion";
        if builtin && !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
            errs.push(invalid(
                path.index(i),
                &json!(name),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    if has_orphan && has_foreground {
        errs.push(invalid(
            path.clone(),
            meta.get("finalizers").unwrap_or(&Value::Null),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// `ValidateObjectMetaUpdate`: the new metadata is valid on its own (checked by the caller) and
/// keeps what may not change.
pub(crate) fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("metadata");
    let empty = json!({});
    let old_meta = old
        .get("metadata")
        .filter(|m| m.is_object())
        .unwrap_or(&empty);
    let new_meta = new
        .get("metadata")
        .filter(|m| m.is_object())
        .unwrap_or(&empty);
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        let old_value = old_meta.get(field).unwrap_or(&Value::Null);
        let new_value = new_meta.get(field).unwrap_or(&Value::Null);
        // A client that leaves out uid or creationTimestamp keeps the stored one (the API server
        // fills them in); only a different value is an attempt to change it.
        let unset = new_value.is_null() && matches!(field, "uid" | "creationTimestamp");
        if old_value != new_value && !unset {
            errs.push(immutable(path.child(field), new_value));
        }
    }
    for field in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
        let old_value = old_meta.get(field).unwrap_or(&Value::Null);
        let new_value = new_meta.get(field).unwrap_or(&Value::Null);
        if !old_value.is_null() && old_value != new_value && !new_value.is_null() {
            errs.push(invalid(
                path.child(field),
                new_value,
                "field is immutable; may only be changed via deletion",
            ));
        }
    }
    if old_meta
        .get("deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        let old_finalizers = items(old_meta, "finalizers");
        let added: Vec<&Value> = items(new_meta, "finalizers")
            .iter()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        if !added.is_empty() {
            let added: Vec<String> = added.iter().map(|f| f.to_string()).collect();
            errs.push(forbidden(
                path.child("finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    added.join(", ")
                ),
            ));
        }
    }
}
