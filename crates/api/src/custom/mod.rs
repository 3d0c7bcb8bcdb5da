//! Custom resources: what a CustomResourceDefinition (apiextensions.k8s.io/v1) makes the API
//! server serve, as pure functions of the CRD's JSON.
//!
//! - [`served_resources`]: one [`ResourceInfo`] per served version of an established CRD, with a
//!   [`CustomResource`] attached (schema, printer columns, selectable fields, scale paths).
//! - [`schema`]: the structural schema applied to objects — pruning, defaulting, validation.
//! - [`status`]: the CRD's status as upstream's controllers keep it (`NamesAccepted`,
//!   `Established`, `acceptedNames`, `storedVersions`).
//!
//! **Why strings are interned.** [`ResourceInfo`] keeps `&'static str` fields so that the
//! built-in table costs nothing and every `match (resource.group, resource.kind)` keeps
//! compiling. A custom resource's names come from a CRD at run time, so they go through
//! [`intern`]: each distinct string (and each distinct list of them) is leaked once and reused
//! ever after. Updating a CRD again and again with the same names allocates nothing new; the
//! memory held is bounded by the distinct names ever served, a few bytes each.

pub mod schema;
pub mod status;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use crate::resources::{ResourceInfo, ALL_VERBS};
use crate::table::PrinterColumn;

/// The finalizer a CRD carries while its custom resources are being deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// What a custom resource's version serves beyond the discovery facts of [`ResourceInfo`].
#[derive(Clone, Debug, PartialEq)]
pub struct CustomResource {
    /// The CRD's name, `<plural>.<group>`.
    pub crd_name: String,
    /// The version's `schema.openAPIV3Schema`; `None` serves objects unpruned and unchecked.
    pub schema: Option<Value>,
    /// The version's `additionalPrinterColumns` (upstream's `Age` column when none).
    pub printer_columns: Vec<PrinterColumn>,
    /// The version's `selectableFields` JSONPaths (`.spec.color`).
    pub selectable_fields: Vec<String>,
    /// The `scale` subresource, when the version declares one.
    pub scale: Option<ScaleSubresource>,
    /// The CRD is being deleted: new objects are refused.
    pub terminating: bool,
}

/// A version's `subresources.scale`: where the Scale view's fields live in the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSubresource {
    /// `specReplicasPath`, e.g. `.spec.replicas`.
    pub spec_replicas_path: String,
    /// `statusReplicasPath`, e.g. `.status.replicas`.
    pub status_replicas_path: String,
    /// `labelSelectorPath`, e.g. `.status.selector` (a string in the object).
    pub label_selector_path: Option<String>,
}

impl CustomResource {
    /// Prunes unknown fields of `object` and returns their paths (nothing without a schema).
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        match &self.schema {
            Some(schema) => schema::prune(schema, object),
            None => Vec::new(),
        }
    }

    /// Applies the schema's defaults to `object`.
    pub fn apply_defaults(&self, object: &mut Value) {
        if let Some(schema) = &self.schema {
            schema::apply_defaults(schema, object);
        }
    }

    /// Checks `object` against the schema.
    pub fn validate(&self, object: &Value) -> Vec<crate::FieldError> {
        match &self.schema {
            Some(schema) => schema::validate(schema, object),
            None => Vec::new(),
        }
    }
}

/// A `'static` copy of `text`, shared with every earlier caller that interned the same text.
pub fn intern(text: &str) -> &'static str {
    static STRINGS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = STRINGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = set.get(text) {
        return existing;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// A `'static` list of interned strings, shared like [`intern`]'s.
pub fn intern_list<S: AsRef<str>>(items: &[S]) -> &'static [&'static str] {
    static LISTS: OnceLock<Mutex<HashSet<&'static [&'static str]>>> = OnceLock::new();
    if items.is_empty() {
        return &[];
    }
    let list: Vec<&'static str> = items.iter().map(|s| intern(s.as_ref())).collect();
    let mut set = LISTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = set.get(list.as_slice()) {
        return existing;
    }
    let leaked: &'static [&'static str] = Box::leak(list.into_boxed_slice());
    set.insert(leaked);
    leaked
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The served versions of `crd` (its stored JSON) as resources, named by the CRD's
/// `status.acceptedNames` (what upstream serves) and ordered by version priority. Empty unless
/// the CRD is `Established`.
pub fn served_resources(crd: &Value) -> Vec<ResourceInfo> {
    if !status::condition_is_true(crd, "Established") {
        return Vec::new();
    }
    let group = text(crd, "/spec/group");
    let names = crd
        .pointer("/status/acceptedNames")
        .filter(|n| n.get("plural").is_some_and(|p| p.is_string()))
        .or_else(|| crd.pointer("/spec/names"));
    let Some(names) = names else {
        return Vec::new();
    };
    let kind = text(names, "/kind");
    let plural = text(names, "/plural");
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Vec::new();
    }
    let list_kind = match text(names, "/listKind") {
        "" => format!("{kind}List"),
        list => list.to_owned(),
    };
    let singular = match text(names, "/singular") {
        "" => kind.to_ascii_lowercase(),
        singular => singular.to_owned(),
    };
    let namespaced = text(crd, "/spec/scope") != "Cluster";
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    let short_names = intern_list(&strings(names.get("shortNames")));
    let categories = intern_list(&strings(names.get("categories")));
    let mut versions: Vec<&Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .collect();
    versions.sort_by(|a, b| compare_versions(text(a, "/name"), text(b, "/name")));
    versions
        .into_iter()
        .filter(|v| !text(v, "/name").is_empty())
        .map(|v| {
            let version = text(v, "/name");
            let subresources = v.get("subresources");
            let status = subresources.and_then(|s| s.get("status")).is_some();
            let scale = subresources
                .and_then(|s| s.get("scale"))
                .map(|scale| ScaleSubresource {
                    spec_replicas_path: text(scale, "/specReplicasPath").to_owned(),
                    status_replicas_path: text(scale, "/statusReplicasPath").to_owned(),
                    label_selector_path: scale
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
            let custom = CustomResource {
                crd_name: text(crd, "/metadata/name").to_owned(),
                schema: v
                    .pointer("/schema/openAPIV3Schema")
                    .filter(|s| s.is_object())
                    .cloned(),
                printer_columns: PrinterColumn::list_from_json(v.get("additionalPrinterColumns")),
                selectable_fields: v
                    .get("selectableFields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect(),
                scale: scale.clone(),
                terminating,
            };
            ResourceInfo {
                group: intern(group),
                version: intern(version),
                api_version: intern(&format!("{group}/{version}")),
                kind: intern(kind),
                list_kind: intern(&list_kind),
                plural: intern(plural),
                singular: singular.clone(),
                namespaced,
                verbs: ALL_VERBS,
                short_names,
                categories,
                subresources: match (scale.is_some(), status) {
                    (true, true) => &["scale", "status"],
                    (true, false) => &["scale"],
                    (false, true) => &["status"],
                    (false, false) => &[],
                },
                // Custom resources have no Rust type: their OpenAPI definitions come from
                // `CustomResourceSchema`, and decoding is the schema's pruning.
                schema: |_| schemars::Schema::default(),
                schema_name: String::new,
                typed: |value| Ok(value.clone()),
                custom: Some(Arc::new(custom)),
            }
        })
        .collect()
}

/// Upstream's version priority (`k8s.io/apimachinery/pkg/version.CompareKubeAwareVersionStrings`):
/// GA before beta before alpha, higher numbers first, then versions that do not look like
/// Kubernetes versions, alphabetically.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits_end].parse().ok()?;
        let tail = &rest[digits_end..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, minor) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        let minor: u64 = minor.parse().ok()?;
        Some((major, stage, minor))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests;
