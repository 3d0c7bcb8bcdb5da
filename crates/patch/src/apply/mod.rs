//! Server-side apply and field ownership: upstream's structured merge
//! (`sigs.k8s.io/structured-merge-diff`) and field manager, over JSON objects.
//!
//! Every write records which manager set which fields in `metadata.managedFields`
//! ([`track_update`]: operation `Update`, owning what the write changed). An apply
//! ([`apply`], `application/apply-patch+yaml`) merges a partial configuration into the live
//! object by the kind's schema (associative lists by their keys, sets by value, atomic values
//! whole), makes the applier own exactly the fields of its configuration, removes fields it
//! applied before and no longer does (unless someone else owns them), and refuses to change a
//! field another manager owns with a different value — a [`ApplyError::Conflicts`] — unless
//! forced, which moves the ownership.
//!
//! **Invariants**
//! - Pure: no clock (the caller passes `now`), no I/O; inputs are not modified except the object
//!   [`track_update`] annotates.
//! - Never owned: `apiVersion`, `kind` and the metadata only the server sets (name, namespace,
//!   uid, resourceVersion, generation, creationTimestamp, managedFields itself), and the part of
//!   the object the endpoint does not write ([`Scope`]).

mod fieldpath;
mod managed;
mod typed;
mod walk;

use std::collections::HashSet;

use serde_json::Value;

pub use fieldpath::{Path, PathElement, Set};
use k3rs_api::well_known;
use managed::{Entry, ManagedFields, Operation};
use typed::TypeRef;

/// Which schema the object follows.
#[derive(Debug, Clone, Copy)]
pub enum ApplySchema<'a> {
    /// A built-in kind, by its OpenAPI definition name (e.g. `io.k8s.api.apps.v1.Deployment`).
    Builtin(&'a str),
    /// A custom resource with its version's structural schema (`None`: no schema).
    Custom(Option<&'a Value>),
}

/// Who writes, and when.
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    /// The field manager: the `fieldManager` parameter, or the user agent's program name.
    pub name: &'a str,
    /// The API version the client wrote in, e.g. `apps/v1`.
    pub api_version: &'a str,
    /// The subresource written (`status`, `scale`), `""` for the resource itself.
    pub subresource: &'a str,
    /// The time to record, RFC 3339.
    pub now: &'a str,
}

/// One write: who writes, the kind's schema, and the part of the object the endpoint writes.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// Who writes, and when.
    pub manager: Manager<'a>,
    /// The kind's schema.
    pub schema: ApplySchema<'a>,
    /// The part of the object the endpoint writes.
    pub scope: Scope,
}

/// The part of the object an endpoint writes (upstream's reset fields): only it is owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole object (kinds without a status subresource).
    Whole,
    /// Everything but `status` (the main endpoint of a kind with a status subresource).
    AllButStatus,
    /// Only `status` (the status subresource).
    OnlyStatus,
}

/// One field an apply would take from another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager, as upstream names it: `"kubectl-client-side-apply" using apps/v1`.
    pub manager: String,
    /// The field, as upstream writes paths: `.spec.replicas`.
    pub field: String,
}

/// Why an apply (or the field tracking of a write) failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Fields another manager owns would change: 409 unless forced.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The request cannot be applied as given: 400.
    #[error("{0}")]
    BadRequest(String),
    /// A value does not fit the kind's schema (e.g. two list items with one key): 422.
    #[error("{path}: {reason}")]
    Invalid {
        /// Where, as upstream writes paths.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<walk::WalkError> for ApplyError {
    fn from((path, reason): walk::WalkError) -> ApplyError {
        ApplyError::Invalid {
            path: if path.0.is_empty() {
                "<root>".to_owned()
            } else {
                path.to_string()
            },
            reason,
        }
    }
}

/// Upstream's message: `Apply failed with 1 conflict: conflict with "m" using v1: .spec.x`, or
/// per manager a `conflicts with "m":` line followed by `- <path>` lines.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for conflict in conflicts.iter().filter(|c| c.manager == manager) {
            lines.push(format!("- {}", conflict.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

fn type_ref(schema: ApplySchema<'_>) -> TypeRef<'_> {
    let definitions = crate::schema::builtin_definitions();
    match schema {
        ApplySchema::Builtin(name) => TypeRef::definition(definitions, name),
        ApplySchema::Custom(schema) => TypeRef::custom(definitions, schema),
    }
}

/// Metadata only the server sets: never owned by anyone.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// `set` without the paths nobody owns and limited to what the endpoint writes.
fn ownable(set: &Set, scope: Scope) -> Set {
    let field = |name: &str| PathElement::Field(name.to_owned());
    let mut out = set
        .without_subtree(&[field("apiVersion")])
        .without_subtree(&[field("kind")])
        .without_member(&[field("metadata")]);
    for name in SERVER_METADATA {
        out = out.without_subtree(&[field("metadata"), field(name)]);
    }
    match scope {
        Scope::Whole => out,
        Scope::AllButStatus => out.without_subtree(&[field("status")]),
        Scope::OnlyStatus => out.only_subtree(&[field("status")]),
    }
}

fn entry(manager: Manager<'_>, operation: Operation) -> Entry {
    Entry {
        manager: manager.name.to_owned(),
        operation,
        api_version: manager.api_version.to_owned(),
        time: Some(manager.now.to_owned()),
        subresource: manager.subresource.to_owned(),
        set: Set::new(),
    }
}

/// Records a write that is not an apply (create, update, patch) in `new`'s managed fields: the
/// writer owns every field it added or changed (operation `Update`), other managers lose the
/// fields it changed, and everyone loses the fields it removed.
///
/// The starting point is `new`'s own managed fields when the client sent a valid, non-empty list
/// to the resource itself (so clients can edit them); otherwise `old`'s (`None` on create).
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    writer: &Writer<'_>,
) -> Result<(), ApplyError> {
    let Writer {
        manager,
        schema,
        scope,
    } = *writer;
    let supplied = match ManagedFields::decode(new) {
        Ok(managed) if !managed.entries.is_empty() && manager.subresource.is_empty() => {
            Some(managed)
        }
        _ => None,
    };
    let mut managed = match supplied {
        Some(managed) => managed,
        // A stored list that cannot be read is dropped rather than failing every write.
        None => old
            .and_then(|old| ManagedFields::decode(old).ok())
            .unwrap_or_default(),
    };
    let ty = type_ref(schema);
    let empty = Value::Object(serde_json::Map::new());
    let comparison = walk::compare(old.unwrap_or(&empty), new, ty)?;
    let changed = ownable(&comparison.modified.union(&comparison.added), scope);
    let removed = ownable(&comparison.removed, scope);
    let me = entry(manager, Operation::Update);
    for other in managed.entries.iter_mut() {
        if !other.same_manager(&me) {
            other.set = other.set.difference(&changed);
        }
        other.set = other.set.difference(&removed);
    }
    if !changed.is_empty() {
        let previous = managed.get(&me).map(|e| e.set.clone()).unwrap_or_default();
        let mut mine = me;
        mine.set = previous.union(&changed);
        managed.put(mine);
    }
    managed.tidy();
    managed.encode(new);
    Ok(())
}

/// The annotation client-side `kubectl apply` keeps its last configuration in.
const LAST_APPLIED: &str = well_known::ANNOTATION_LAST_APPLIED_CONFIGURATION;

/// The manager of `kubectl apply --server-side`: only it takes over from client-side apply.
const KUBECTL: &str = "kubectl";

/// Upstream's limit on the total size of an object's annotations.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Applies the configuration `config` for `manager` to `live` (`None`: the object does not exist
/// yet) and returns the new object with its managed fields — before the API server's defaulting
/// and validation, which the caller runs on it as on any write.
///
/// Like upstream, `kubectl apply --server-side` (manager `kubectl`) switches an object over from
/// client-side apply: conflicts on fields that the `last-applied-configuration` annotation sets
/// to their live values are taken without `force`, and the annotation, when the applied object
/// has one, follows the applied configuration so a later client-side apply still computes the
/// right patch.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    let kubectl = writer.manager.name == KUBECTL;
    let mut applied = match apply_once(live, config, writer, force) {
        Err(ApplyError::Conflicts(conflicts)) if kubectl => {
            let allowed = live
                .and_then(|live| allowed_by_last_applied(live, type_ref(writer.schema)))
                .unwrap_or_default();
            let left: Vec<Conflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.contains(&c.field))
                .collect();
            if !left.is_empty() {
                return Err(ApplyError::Conflicts(left));
            }
            apply_once(live, config, writer, true)?
        }
        other => other?,
    };
    // Upstream asks whether the *result* has the annotation: a configuration that sets it is
    // recorded on create too, and an annotation the apply removed stays removed.
    if kubectl && last_applied(&applied).is_some() {
        let mut recorded = config.clone();
        if let Some(annotations) = recorded
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(LAST_APPLIED);
        }
        if recorded
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty)
        {
            if let Some(meta) = recorded.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("annotations");
            }
        }
        let text = recorded.to_string();
        if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(LAST_APPLIED.to_owned(), Value::from(text));
                let size: usize = annotations
                    .iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                    .sum();
                if size > MAX_ANNOTATIONS_BYTES {
                    annotations.remove(LAST_APPLIED);
                }
            }
        }
    }
    Ok(applied)
}

fn last_applied(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|text| !text.is_empty())
}

/// The fields (as upstream writes paths) that client-side apply last set to the values they
/// still have: server-side apply by kubectl may take them over without conflict.
fn allowed_by_last_applied(live: &Value, ty: TypeRef<'_>) -> Option<HashSet<String>> {
    let previous: Value = serde_json::from_str(last_applied(live)?).ok()?;
    let fields = walk::field_set(&previous, ty).ok()?;
    let changed = walk::compare(&previous, live, ty).ok()?.modified;
    Some(
        fields
            .difference(&changed)
            .paths()
            .iter()
            .map(ToString::to_string)
            .collect(),
    )
}

fn apply_once(
    live: Option<&Value>,
    config: &Value,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    let Writer {
        manager,
        schema,
        scope,
    } = *writer;
    if !config.is_object() {
        return Err(ApplyError::BadRequest(
            "the apply configuration must be an object".to_owned(),
        ));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    let ty = type_ref(schema);
    let empty = Value::Object(serde_json::Map::new());
    let live_value = live.unwrap_or(&empty);
    let mut managed = match live {
        Some(live) => ManagedFields::decode(live).unwrap_or_default(),
        None => ManagedFields::default(),
    };
    if live.is_some() && managed.entries.is_empty() {
        // An object nobody's fields were tracked on: what exists belongs to its creator.
        let mut before = entry(manager, Operation::Update);
        before.manager = "before-first-apply".to_owned();
        before.time = None;
        before.set = ownable(&walk::field_set(live_value, ty)?, scope);
        managed.put(before);
    }
    let me = entry(manager, Operation::Apply);
    let applied = ownable(&walk::field_set(config, ty)?, scope);
    let previous = managed.get(&me).map(|e| e.set.clone()).unwrap_or_default();
    let mut mine = me.clone();
    mine.set = applied.clone();
    if let Some(existing) = managed.get(&me) {
        mine.time = existing.time.clone();
    }
    managed.put(mine);

    let mut merged = walk::merge(live_value, config, ty)?;
    // Fields this manager applied before and not now go, unless someone still owns them (or
    // something below them).
    let dropped = previous.difference(&applied);
    if !dropped.is_empty() {
        let owned = managed
            .entries
            .iter()
            .fold(Set::new(), |all, e| all.union(&e.set));
        let mut gone = Set::new();
        for path in dropped.paths() {
            if !owned.contains_at_or_below(&path.0) {
                gone.insert(&path.0);
            }
        }
        merged = walk::remove(&merged, &gone, ty)?;
    }

    let comparison = walk::compare(live_value, &merged, ty)?;
    let changed = ownable(&comparison.modified.union(&comparison.added), scope);
    let removed = ownable(&comparison.removed, scope);
    let mut conflicts = Vec::new();
    for other in managed.entries.iter_mut() {
        if other.same_manager(&me) {
            continue;
        }
        let taken = other.set.intersection(&changed);
        if taken.is_empty() {
            continue;
        }
        for path in taken.paths() {
            conflicts.push(Conflict {
                manager: other.describe(),
                field: path.to_string(),
            });
        }
        other.set = other.set.difference(&taken);
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for other in managed.entries.iter_mut() {
        other.set = other.set.difference(&removed);
    }
    if !comparison.is_same() || previous != applied || live.is_none() {
        let mut mine = me;
        mine.set = applied;
        managed.put(mine);
    }
    managed.tidy();
    managed.encode(&mut merged);
    Ok(merged)
}

#[cfg(test)]
mod tests;
