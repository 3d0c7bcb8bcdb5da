//! Strategic merge patch: upstream's `strategicpatch.StrategicMergeMapPatch` (with its
//! `MergeParallelList` and `IgnoreUnmatchedNulls` options on, as the API server runs it),
//! reimplemented over `serde_json::Value`.
//!
//! Rules, in upstream's order for each map of the patch:
//! 1. `$patch: replace` makes the map the patch's map; `$patch: delete` empties it.
//! 2. `$retainKeys: [..]` drops every field of the object that it does not list.
//! 3. `$setElementOrder/<field>: [..]` merges `<field>` and then orders the result: listed
//!    elements in the listed order, the object's other elements kept where they were.
//! 4. Every other key: `null` deletes the field; a value the object lacks (or of another JSON
//!    type) is taken as is (minus nulls and directives); maps merge recursively unless the field's
//!    strategy is `replace`; lists merge if the field's strategy is `merge` (objects by merge
//!    key, honouring `$patch: delete|replace` elements; scalars as a set), else are replaced;
//!    `$deleteFromPrimitiveList/<field>: [..]` removes those scalars from `<field>`.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::schema::PatchSchema;
use crate::{PatchError, StrategicError};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies a strategic merge patch to `doc`, an object of the kind whose OpenAPI definition is
/// `kind_schema` (e.g. `io.k8s.api.apps.v1.Deployment`, see `ResourceInfo::schema_name`).
///
/// Fails with [`PatchError::UnknownSchema`] for a definition no built-in kind uses (custom
/// resources: upstream answers those with 415 Unsupported Media Type).
pub fn apply_strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    kind_schema: &str,
) -> Result<Value, PatchError> {
    let schema =
        PatchSchema::for_definition(kind_schema).ok_or_else(|| PatchError::UnknownSchema {
            schema: kind_schema.to_owned(),
        })?;
    apply_strategic_merge_patch_with(doc, patch, schema)
}

/// Applies a strategic merge patch to `doc` with the type knowledge of `schema`.
pub fn apply_strategic_merge_patch_with(
    doc: &Value,
    patch: &Value,
    schema: PatchSchema,
) -> Result<Value, PatchError> {
    let Value::Object(original) = doc else {
        return Err(PatchError::NotAnObject { what: "object" });
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject {
            what: "strategic merge patch",
        });
    };
    merge_map(original.clone(), patch.clone(), schema, "").map(Value::Object)
}

type Result<T, E = PatchError> = std::result::Result<T, E>;

fn fail<T>(path: &str, kind: StrategicError) -> Result<T> {
    Err(PatchError::strategic(path, kind))
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn element_path(path: &str, merge_key: &str, key: &Value) -> String {
    match key {
        Value::String(key) => format!("{path}[{merge_key}={key}]"),
        key => format!("{path}[{merge_key}={key}]"),
    }
}

/// Merges the patch map `patch` into the object map `original`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: PatchSchema,
    path: &str,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(fresh_map(patch))
            }
            Some("delete") => Ok(Map::new()),
            _ => fail(
                path,
                StrategicError::UnknownMapDirective(display_directive(directive)),
            ),
        };
    }

    apply_retain_keys(&mut original, &mut patch, path)?;
    apply_element_orders(&mut original, &mut patch, schema, path)?;

    for (key, patch_value) in patch {
        let (field, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(_) => (
                directive_field(&key, DELETE_FROM_PRIMITIVE_LIST, path)?,
                true,
            ),
            None => (key, false),
        };
        if patch_value.is_null() {
            original.remove(&field);
            continue;
        }
        let Some(current) = original.remove(&field) else {
            if !delete_list {
                insert_fresh(&mut original, field, patch_value);
            }
            continue;
        };
        if json_type(&current) != json_type(&patch_value) {
            if delete_list {
                original.insert(field, current);
            } else {
                insert_fresh(&mut original, field, patch_value);
            }
            continue;
        }
        let (field_schema, strategy) = schema.field(&field);
        let merged = match (current, patch_value) {
            (Value::Object(current), Value::Object(patch_value)) => {
                if strategy.is_some_and(|s| s.replaces()) {
                    Value::Object(fresh_map(patch_value))
                } else {
                    let field_path = child_path(path, &field);
                    Value::Object(merge_map(current, patch_value, field_schema, &field_path)?)
                }
            }
            (Value::Array(current), Value::Array(patch_value)) => {
                if delete_list || strategy.is_some_and(|s| s.merges()) {
                    let merge_key = strategy.map_or("", |s| s.merge_key);
                    let field_path = child_path(path, &field);
                    Value::Array(
                        merge_list(
                            current,
                            patch_value,
                            field_schema.items(),
                            merge_key,
                            delete_list,
                            &field_path,
                        )?
                        .merged,
                    )
                } else {
                    Value::Array(fresh_list(patch_value))
                }
            }
            (_, scalar) => scalar,
        };
        original.insert(field, merged);
    }
    Ok(original)
}

fn display_directive(directive: &Value) -> String {
    match directive {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The field a `$setElementOrder/<field>` or `$deleteFromPrimitiveList/<field>` key names.
fn directive_field(key: &str, prefix: &'static str, path: &str) -> Result<String> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_owned()),
        _ => fail(path, StrategicError::DirectiveKey(key.to_owned(), prefix)),
    }
}

/// `$retainKeys`: keep only the listed fields of the object; every field the patch sets must be
/// listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &str,
) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return fail(
            path,
            StrategicError::RetainKeys("it must be a list of field names".to_owned()),
        );
    };
    let retained: HashSet<&str> = retain.iter().filter_map(Value::as_str).collect();
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !retained.contains(key.as_str()) {
            return fail(
                path,
                StrategicError::RetainKeys(format!(
                    "the patch sets field \"{key}\" that $retainKeys does not list"
                )),
            );
        }
    }
    original.retain(|key, _| retained.contains(key.as_str()));
    Ok(())
}

/// `$setElementOrder/<field>`: merges `<field>` (taking it out of the patch) and orders it.
fn apply_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: PatchSchema,
    path: &str,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|key| key.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let field = directive_field(&key, SET_ELEMENT_ORDER, path)?;
        let field_path = child_path(path, &field);
        let Value::Array(order) = order else {
            return fail(
                &field_path,
                StrategicError::SetElementOrder(format!("{key} must be a list")),
            );
        };
        let original_list = match original.get(&field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(_) => {
                return fail(
                    &field_path,
                    StrategicError::WrongType(format!("{key} orders a field that is not a list")),
                )
            }
        };
        let patch_list = match patch.remove(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(_) => {
                return fail(
                    &field_path,
                    StrategicError::WrongType(format!(
                        "{key} orders a field whose patch is not a list"
                    )),
                )
            }
        };
        let (field_schema, strategy) = schema.field(&field);
        let merge_key = strategy.map_or("", |s| s.merge_key);
        validate_element_order(
            patch_list.as_deref().unwrap_or_default(),
            &order,
            merge_key,
            &field_path,
        )?;
        let kind = element_kind(
            &[
                original_list.as_deref().unwrap_or_default(),
                patch_list.as_deref().unwrap_or_default(),
            ],
            &field_path,
        )?;
        let mut server_order = original_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(current), None) => current,
            (None, Some(patch_list)) => fresh_list(patch_list),
            (Some(current), Some(patch_list)) => {
                if strategy.is_some_and(|s| s.merges()) {
                    let list = merge_list(
                        current,
                        patch_list,
                        field_schema.items(),
                        merge_key,
                        false,
                        &field_path,
                    )?;
                    if let Some(view) = list.server_view {
                        server_order = view;
                    }
                    list.merged
                } else {
                    fresh_list(patch_list)
                }
            }
            (None, None) => continue,
        };
        let ordered = order_merged(merged, &order, &server_order, merge_key, kind, &field_path)?;
        original.insert(field, Value::Array(ordered));
    }
    Ok(())
}

/// Checks that the patch list's elements appear in the `$setElementOrder` list, in its order
/// (upstream's `validatePatchWithSetOrderList`).
fn validate_element_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
    path: &str,
) -> Result<()> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut listed: Vec<&Value> = Vec::with_capacity(patch_list.len());
    for element in patch_list {
        if !merge_key.is_empty() {
            let Value::Object(element) = element else {
                return fail(
                    path,
                    StrategicError::WrongType(
                        "elements of a merging list of objects must be objects".to_owned(),
                    ),
                );
            };
            if element.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        listed.push(element);
    }
    let (mut p, mut o) = (0, 0);
    while let (Some(element), Some(ordered)) = (listed.get(p), order.get(o)) {
        if element.get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        let same = if merge_key.is_empty() {
            same_value(element, ordered)
        } else {
            let key = element
                .get(merge_key)
                .ok_or_else(|| missing_key(path, merge_key))?;
            let ordered_key = match ordered {
                Value::Object(ordered) => ordered.get(merge_key),
                _ => {
                    return fail(
                        path,
                        StrategicError::SetElementOrder(
                            "its elements must be objects with the merge key".to_owned(),
                        ),
                    )
                }
            }
            .ok_or_else(|| missing_key(path, merge_key))?;
            same_value(key, ordered_key)
        };
        if same {
            p += 1;
        }
        o += 1;
    }
    if p < listed.len() {
        return fail(
            path,
            StrategicError::SetElementOrder(
                "the order in the patch list doesn't match the $setElementOrder list".to_owned(),
            ),
        );
    }
    Ok(())
}

fn missing_key(path: &str, merge_key: &str) -> PatchError {
    PatchError::strategic(path, StrategicError::MissingMergeKey(merge_key.to_owned()))
}

/// The JSON type of every element of a merging list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ElementKind {
    /// Objects, merged by merge key.
    Object,
    /// Scalars (or nulls), merged as a set.
    Scalar(u8),
}

fn json_type(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// The common element type of `lists`; `None` if they are all empty.
fn element_kind(lists: &[&[Value]], path: &str) -> Result<Option<ElementKind>> {
    let mut kind = None;
    for element in lists.iter().flat_map(|list| list.iter()) {
        let this = match element {
            Value::Array(_) => return fail(path, StrategicError::ListOfLists),
            Value::Object(_) => ElementKind::Object,
            scalar => ElementKind::Scalar(json_type(scalar)),
        };
        match kind {
            None => kind = Some(this),
            Some(kind) if kind != this => return fail(path, StrategicError::MixedElementTypes),
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// A merged list, and the object's list as upstream's ordering then sees it.
struct MergedList {
    merged: Vec<Value>,
    /// The object's list as upstream's `$setElementOrder` handling reads it *after* the merge:
    /// Go deletes list elements in place (`append(s[:i], s[i+1:]...)`) and appends new ones into
    /// the freed slots of the same backing array, so the "original" list it orders by is that
    /// backing array. Upstream's tests pin the resulting order; only merge keys are kept here.
    server_view: Option<Vec<Value>>,
}

/// Merges a list whose field has the `merge` strategy (or a `$deleteFromPrimitiveList`).
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: PatchSchema,
    merge_key: &str,
    delete_list: bool,
    path: &str,
) -> Result<MergedList> {
    if original.is_empty() && patch.is_empty() {
        return Ok(MergedList {
            merged: original,
            server_view: None,
        });
    }
    let kind = element_kind(&[&original, &patch], path)?;
    if kind != Some(ElementKind::Object) {
        let merged = if delete_list {
            let doomed: HashSet<String> = patch.iter().map(canonical).collect();
            original
                .iter()
                .filter(|value| !doomed.contains(&canonical(value)))
                .cloned()
                .collect()
        } else {
            let mut seen = HashSet::new();
            original
                .iter()
                .chain(patch.iter())
                .filter(|value| seen.insert(canonical(value)))
                .cloned()
                .collect()
        };
        let merged = order_merged(merged, &patch, &original, "", kind, path)?;
        return Ok(MergedList {
            merged,
            server_view: None,
        });
    }
    if merge_key.is_empty() {
        return fail(path, StrategicError::NoMergeKey);
    }

    // Go's backing array of the object's list, as indices into `original` (see `server_view`).
    let original_keys: Vec<Option<Value>> = original
        .iter()
        .map(|element| element.get(merge_key).cloned())
        .collect();
    let capacity = original.len();
    let mut backing: Vec<usize> = (0..capacity).collect();
    let mut live = capacity;

    // Elements with `$patch` first: deletions by merge key, and `replace` for the whole list.
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for element in patch {
        let Some(directive) = element.get(DIRECTIVE) else {
            plain.push(element);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let key = element
                    .get(merge_key)
                    .ok_or_else(|| missing_key(path, merge_key))?;
                let key = Some(canonical(key));
                while let Some(slot) = (0..live).find(|&slot| {
                    backing
                        .get(slot)
                        .and_then(|&index| original_keys.get(index))
                        .and_then(|key| key.as_ref().map(canonical))
                        == key
                }) {
                    backing.copy_within(slot + 1..live, slot);
                    live -= 1;
                }
            }
            Some("replace") => replace = true,
            Some("merge") => return fail(path, StrategicError::MergeDirectiveInList),
            _ => {
                return fail(
                    path,
                    StrategicError::UnknownListDirective(display_directive(directive)),
                )
            }
        }
    }
    let mut slots: Vec<Option<Value>> = original.into_iter().map(Some).collect();
    let kept: Vec<Value> = backing
        .iter()
        .take(live)
        .filter_map(|&index| slots.get_mut(index).and_then(Option::take))
        .collect();
    let (original, patch) = if replace {
        (fresh_list(plain), Vec::new())
    } else {
        (kept, plain)
    };

    // Then each plain element merges into the object's element with the same key, or is added.
    let mut merged = original.clone();
    let mut position: HashMap<String, usize> = HashMap::new();
    for (index, current) in merged.iter().enumerate().rev() {
        if let Some(key) = current.get(merge_key) {
            position.insert(canonical(key), index);
        }
    }
    let mut appended_keys = Vec::new();
    for element in &patch {
        let key = element
            .get(merge_key)
            .ok_or_else(|| missing_key(path, merge_key))?;
        let canonical_key = canonical(key);
        match position.get(&canonical_key) {
            Some(&index) => {
                let (Some(Value::Object(current)), Value::Object(patch_element)) =
                    (merged.get_mut(index), element)
                else {
                    continue;
                };
                let current = std::mem::take(current);
                let element_path = element_path(path, merge_key, key);
                let result = merge_map(current, patch_element.clone(), items, &element_path)?;
                if let Some(slot) = merged.get_mut(index) {
                    *slot = Value::Object(result);
                }
            }
            None => {
                if let Some(element) = fresh_value(element.clone()) {
                    position.insert(canonical_key, merged.len());
                    merged.push(element);
                    appended_keys.push(Some(key.clone()));
                }
            }
        }
    }

    // The backing array: live slots, then appended elements written into the freed slots
    // (unless `replace` gave the list a new array), then stale slots left by the deletions.
    let key_only = |key: Option<&Value>| -> Value {
        let mut map = Map::new();
        if let Some(key) = key {
            map.insert(merge_key.to_owned(), key.clone());
        }
        Value::Object(map)
    };
    let appended: &[Option<Value>] = if replace { &[] } else { &appended_keys };
    let server_view = (0..capacity)
        .map(|slot| {
            let key = match slot.checked_sub(live).and_then(|i| appended.get(i)) {
                Some(appended) => appended.as_ref(),
                None => backing
                    .get(slot)
                    .and_then(|&index| original_keys.get(index))
                    .and_then(Option::as_ref),
            };
            key_only(key)
        })
        .collect();

    let merged = order_merged(merged, &patch, &original, merge_key, kind, path)?;
    Ok(MergedList {
        merged,
        server_view: Some(server_view),
    })
}

/// Orders a merged list: the elements that `order` lists in its order, the others in their
/// order in `server_order` (the object's list), interleaved where both orders agree (upstream's
/// `normalizeElementOrder` and `mergeSortedSlice`).
fn order_merged(
    merged: Vec<Value>,
    order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Option<ElementKind>,
    path: &str,
) -> Result<Vec<Value>> {
    let by_key = kind == Some(ElementKind::Object) && !merge_key.is_empty();
    let key_of = |value: &Value| -> Result<Option<String>> {
        if !by_key {
            return Ok(Some(canonical(value)));
        }
        match value {
            Value::Object(map) => Ok(map.get(merge_key).map(canonical)),
            _ => fail(
                path,
                StrategicError::WrongType("list elements must be objects".to_owned()),
            ),
        }
    };
    let require_key = |value: &Value| -> Result<String> {
        key_of(value)?.ok_or_else(|| missing_key(path, merge_key))
    };

    // Partition into the elements the order lists and the object's own.
    let mut listed_keys = HashSet::new();
    for element in order {
        listed_keys.insert(if by_key {
            require_key(element)?
        } else {
            canonical(element)
        });
    }
    let mut listed = Vec::new();
    let mut server_only = Vec::new();
    for element in merged {
        let key = if by_key {
            require_key(&element)?
        } else {
            canonical(&element)
        };
        if listed_keys.contains(&key) {
            listed.push(element);
        } else {
            server_only.push(element);
        }
    }

    // Sort each part by its order list; elements an order does not know go last, stably.
    let rank = |list: &[Value]| -> Result<HashMap<Option<String>, usize>> {
        let mut rank = HashMap::new();
        for (index, element) in list.iter().enumerate() {
            rank.entry(key_of(element)?).or_insert(index);
        }
        Ok(rank)
    };
    let order_rank = rank(order)?;
    let server_rank = rank(server_order)?;
    let sort = |part: &mut Vec<Value>, rank: &HashMap<Option<String>, usize>| -> Result<()> {
        let mut keyed = Vec::with_capacity(part.len());
        for element in part.drain(..) {
            let position = rank.get(&key_of(&element)?).copied().unwrap_or(usize::MAX);
            keyed.push((position, element));
        }
        keyed.sort_by_key(|(position, _)| *position);
        part.extend(keyed.into_iter().map(|(_, element)| element));
        Ok(())
    };
    sort(&mut listed, &order_rank)?;
    sort(&mut server_only, &server_rank)?;

    // Interleave: an object-only element goes before a listed one only when both are in the
    // object's list and it came first there.
    let mut result = Vec::with_capacity(listed.len() + server_only.len());
    let mut listed = listed.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), listed.peek()) {
            (Some(server), Some(patched)) => {
                let server = server_rank.get(&key_of(server)?);
                let patched = server_rank.get(&key_of(patched)?);
                matches!((server, patched), (Some(s), Some(p)) if s < p)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_server {
            server_only.next()
        } else {
            listed.next()
        };
        result.extend(next);
    }
    Ok(result)
}

/// A string that is equal for equal JSON values, numbers compared as numbers (as upstream, whose
/// decoded numbers are all float64).
fn canonical(value: &Value) -> String {
    match value {
        Value::Number(number) => match number.as_f64() {
            // `+ 0.0` folds -0 into 0.
            Some(float) => format!("n{}", float + 0.0),
            None => format!("n{number}"),
        },
        Value::String(string) => format!("s{string}"),
        other => format!("j{other}"),
    }
}

fn same_value(left: &Value, right: &Value) -> bool {
    canonical(left) == canonical(right)
}

/// Inserts a patch value the object lacks, without nulls and directives.
fn insert_fresh(original: &mut Map<String, Value>, field: String, value: Value) {
    if let Some(value) = fresh_value(value) {
        original.insert(field, value);
    }
}

/// A patch value as it is stored when nothing merges into it: null map values dropped, maps with
/// a `$patch` directive dropped, and other directive keys removed (upstream's
/// `discardNullValuesFromPatch` + `removeDirectives`, and what decoding into its Go types does
/// with the rest). `None` when the value itself is a directive.
fn fresh_value(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(fresh_map(map)))
        }
        Value::Array(list) => Some(Value::Array(fresh_list(list))),
        scalar => Some(scalar),
    }
}

fn fresh_map(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(key, value)| !value.is_null() && !is_directive_key(key))
        .filter_map(|(key, value)| Some((key, fresh_value(value)?)))
        .collect()
}

fn fresh_list(list: Vec<Value>) -> Vec<Value> {
    list.into_iter().filter_map(fresh_value).collect()
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with("$setElementOrder/")
        || key.starts_with("$deleteFromPrimitiveList/")
}
