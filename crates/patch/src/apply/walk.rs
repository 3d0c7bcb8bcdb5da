//! The four schema-aware walks of structured merge: the fields a value sets, the merge of an
//! applied configuration into a live object, the comparison of two objects, and the removal of
//! fields from an object.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::fieldpath::{Path, PathElement, Set};
use super::typed::{ListKind, Shape, TypeRef};

/// What the walks report: the path where a value does not fit its schema, and why.
pub(crate) type WalkError = (Path, String);

type Result<T> = std::result::Result<T, WalkError>;

/// The items of a list by path element, in order; a duplicate is an error.
fn index_items<'v>(
    path: &Path,
    items: TypeRef<'_>,
    kind: &ListKind,
    list: &'v [Value],
) -> Result<Vec<(PathElement, &'v Value)>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        let element = items
            .item_element(kind, item, index)
            .map_err(|reason| (path.clone(), reason.to_string()))?;
        if !seen.insert(element.clone()) {
            return Err((path.clone(), format!("duplicate entries for key {element}")));
        }
        out.push((element, item));
    }
    Ok(out)
}

/// The shape to walk a value with: a deduced shape follows the value.
fn effective<'a>(ty: TypeRef<'a>, value: Option<&Value>) -> Shape<'a> {
    match ty.shape() {
        Shape::Deduced => match value {
            Some(Value::Object(_)) => Shape::Map { atomic: false },
            Some(Value::Array(_)) => Shape::List {
                kind: ListKind::Atomic,
                items: ty,
            },
            _ => Shape::Scalar,
        },
        shape => shape,
    }
}

/// The fields `value` sets (upstream's `ToFieldSet`): every scalar and atomic value, every list
/// item, every map key the schema does not declare, and every empty or null field.
pub(crate) fn field_set(value: &Value, ty: TypeRef<'_>) -> Result<Set> {
    let mut set = Set::new();
    collect_fields(value, ty, &Path::default(), &mut set)?;
    Ok(set)
}

fn collect_fields(value: &Value, ty: TypeRef<'_>, path: &Path, set: &mut Set) -> Result<()> {
    match effective(ty, Some(value)) {
        Shape::Scalar | Shape::Deduced => set.insert(&path.0),
        Shape::Map { atomic: true } => set.insert(&path.0),
        Shape::Map { atomic: false } => {
            let Value::Object(map) = value else {
                set.insert(&path.0);
                return Ok(());
            };
            for (key, child) in map {
                let (child_ty, declared) = ty.field(key);
                let child_path = path.field(key);
                collect_fields(child, child_ty, &child_path, set)?;
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if empty || !declared {
                    set.insert(&child_path.0);
                }
            }
        }
        Shape::List {
            kind: ListKind::Atomic,
            ..
        } => set.insert(&path.0),
        Shape::List { kind, items } => {
            let Value::Array(list) = value else {
                set.insert(&path.0);
                return Ok(());
            };
            for (element, item) in index_items(path, items, &kind, list)? {
                let item_path = path.child(element);
                if matches!(kind, ListKind::Map(_)) {
                    collect_fields(item, items, &item_path, set)?;
                }
                set.insert(&item_path.0);
            }
        }
    }
    Ok(())
}

/// `config` merged over `live`: config's values win, granular maps merge key by key,
/// associative lists and sets merge item by item (live's order, config's new items placed
/// after the config item they follow), atomic values are replaced whole.
pub(crate) fn merge(live: &Value, config: &Value, ty: TypeRef<'_>) -> Result<Value> {
    merge_at(live, config, ty, &Path::default())
}

fn merge_at(live: &Value, config: &Value, ty: TypeRef<'_>, path: &Path) -> Result<Value> {
    match (effective(ty, Some(config)), live, config) {
        (Shape::Map { atomic: false }, Value::Object(old), Value::Object(new)) => {
            let mut out = old.clone();
            for (key, value) in new {
                let merged = match old.get(key) {
                    Some(previous) => merge_at(previous, value, ty.field(key).0, &path.field(key))?,
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        (Shape::List { kind, items }, Value::Array(old), Value::Array(new))
            if kind != ListKind::Atomic =>
        {
            let old_items = index_items(path, items, &kind, old)?;
            let new_items = index_items(path, items, &kind, new)?;
            let merged = merge_items(&old_items, &new_items, |element, previous, value| {
                match (&kind, previous) {
                    (ListKind::Map(_), Some(previous)) => {
                        merge_at(previous, value, items, &path.child(element.clone()))
                    }
                    _ => Ok(value.clone()),
                }
            })?;
            Ok(Value::Array(merged))
        }
        _ => Ok(config.clone()),
    }
}

/// Interleaves two keyed lists: shared items merged in the config's relative order, live-only
/// items kept where they were, config-only items placed with the config items around them.
fn merge_items(
    old: &[(PathElement, &Value)],
    new: &[(PathElement, &Value)],
    mut merge_one: impl FnMut(&PathElement, Option<&Value>, &Value) -> Result<Value>,
) -> Result<Vec<Value>> {
    let old_by: HashMap<&PathElement, &Value> = old.iter().map(|(e, v)| (e, *v)).collect();
    let new_by: HashMap<&PathElement, &Value> = new.iter().map(|(e, v)| (e, *v)).collect();
    let mut done: HashSet<&PathElement> = HashSet::new();
    let mut out = Vec::with_capacity(old.len().max(new.len()));
    let (mut l, mut r) = (0, 0);
    while l < old.len() || r < new.len() {
        if l < old.len() {
            let (element, value) = &old[l];
            if r < new.len() && new[r].0 == *element {
                out.push(merge_one(element, Some(value), new[r].1)?);
                done.insert(element);
                l += 1;
                r += 1;
                continue;
            }
            if !new_by.contains_key(element) {
                out.push((*value).clone());
                l += 1;
                continue;
            }
            if done.contains(element) {
                l += 1;
                continue;
            }
        }
        if r < new.len() {
            let (element, value) = &new[r];
            out.push(merge_one(element, old_by.get(element).copied(), value)?);
            done.insert(element);
            r += 1;
        }
    }
    Ok(out)
}

/// How two versions of an object differ, path by path (upstream's `Compare`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: Set,
    pub(crate) modified: Set,
    pub(crate) removed: Set,
}

impl Comparison {
    pub(crate) fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// Compares `old` with `new`. Leaves (scalars, atomic values, empty maps) are added, removed or
/// modified; granular maps, lists and their items are added or removed as a whole when only one
/// side has them — except fields whose schema is an object with declared properties (upstream's
/// Go structs), which only ever show through their contents.
pub(crate) fn compare(old: &Value, new: &Value, ty: TypeRef<'_>) -> Result<Comparison> {
    let mut out = Comparison::default();
    compare_at(Some(old), Some(new), ty, &Path::default(), &mut out)?;
    Ok(out)
}

fn is_empty_map(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        _ => false,
    }
}

fn compare_at<'v>(
    old: Option<&'v Value>,
    new: Option<&'v Value>,
    ty: TypeRef<'_>,
    path: &Path,
    out: &mut Comparison,
) -> Result<()> {
    let shape = effective(ty, new.or(old));
    let leaf = |out: &mut Comparison| match (old, new) {
        (None, Some(_)) => out.added.insert(&path.0),
        (Some(_), None) => out.removed.insert(&path.0),
        (Some(a), Some(b)) if a != b => out.modified.insert(&path.0),
        _ => {}
    };
    match shape {
        Shape::Map { atomic: false } if !(is_empty_map(old) && is_empty_map(new)) => {
            // `None`: the side lacks the map; `Some(None)`: the side is not a map.
            let as_map = |side: Option<&'v Value>| match side {
                None => Some(None),
                Some(Value::Object(map)) => Some(Some(map)),
                Some(_) => None,
            };
            let (Some(old_map), Some(new_map)) = (as_map(old), as_map(new)) else {
                leaf(out);
                return Ok(());
            };
            for (key, value) in old_map.into_iter().flatten() {
                let newer = new_map.and_then(|m| m.get(key));
                compare_at(Some(value), newer, ty.field(key).0, &path.field(key), out)?;
            }
            for (key, value) in new_map.into_iter().flatten() {
                if !old_map.is_some_and(|m| m.contains_key(key)) {
                    compare_at(None, Some(value), ty.field(key).0, &path.field(key), out)?;
                }
            }
            if !ty.has_properties() {
                node_presence(old, new, path, out);
            }
        }
        Shape::List { kind, items } if kind != ListKind::Atomic => {
            let (old_list, new_list) = match (old, new) {
                (Some(Value::Array(a)), Some(Value::Array(b))) => (a.as_slice(), b.as_slice()),
                (None, Some(Value::Array(b))) => (&[][..], b.as_slice()),
                (Some(Value::Array(a)), None) => (a.as_slice(), &[][..]),
                _ => {
                    leaf(out);
                    return Ok(());
                }
            };
            let old_items = index_items(path, items, &kind, old_list)?;
            let new_items = index_items(path, items, &kind, new_list)?;
            let new_by: HashMap<&PathElement, &Value> =
                new_items.iter().map(|(e, v)| (e, *v)).collect();
            let old_by: HashMap<&PathElement, &Value> =
                old_items.iter().map(|(e, v)| (e, *v)).collect();
            for (element, value) in &old_items {
                let item_path = path.child(element.clone());
                let newer = new_by.get(element).copied();
                compare_item(&kind, items, Some(value), newer, &item_path, out)?;
            }
            for (element, value) in &new_items {
                if !old_by.contains_key(element) {
                    let item_path = path.child(element.clone());
                    compare_item(&kind, items, None, Some(value), &item_path, out)?;
                }
            }
            node_presence(old, new, path, out);
        }
        _ => leaf(out),
    }
    Ok(())
}

fn compare_item(
    kind: &ListKind,
    items: TypeRef<'_>,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &Path,
    out: &mut Comparison,
) -> Result<()> {
    match kind {
        ListKind::Map(_) => compare_at(old, new, items, path, out)?,
        _ => node_presence(old, new, path, out),
    }
    Ok(())
}

/// Records a granular node (map, list, list item) that only one side has.
fn node_presence(old: Option<&Value>, new: Option<&Value>, path: &Path, out: &mut Comparison) {
    match (old, new) {
        (None, Some(_)) => out.added.insert(&path.0),
        (Some(_), None) => out.removed.insert(&path.0),
        _ => {}
    }
}

/// `value` without the fields in `remove`: map keys deleted, list items dropped.
pub(crate) fn remove(value: &Value, remove: &Set, ty: TypeRef<'_>) -> Result<Value> {
    let mut out = value.clone();
    remove_at(&mut out, remove, ty, &Path::default())?;
    Ok(out)
}

fn remove_at(value: &mut Value, remove: &Set, ty: TypeRef<'_>, path: &Path) -> Result<()> {
    match (effective(ty, Some(value)), value) {
        (Shape::Map { atomic: false }, Value::Object(map)) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = path.field(&key);
                if remove.contains(&child_path.0) {
                    map.remove(&key);
                } else if remove.contains_at_or_below(&child_path.0) {
                    if let Some(child) = map.get_mut(&key) {
                        remove_at(child, remove, ty.field(&key).0, &child_path)?;
                    }
                }
            }
        }
        (Shape::List { kind, items }, Value::Array(list)) if kind != ListKind::Atomic => {
            let elements: Vec<PathElement> = index_items(path, items, &kind, list)?
                .into_iter()
                .map(|(element, _)| element)
                .collect();
            let mut kept = Vec::with_capacity(list.len());
            for (element, mut item) in elements.into_iter().zip(list.drain(..)) {
                let item_path = path.child(element);
                if remove.contains(&item_path.0) {
                    continue;
                }
                if matches!(kind, ListKind::Map(_)) && remove.contains_at_or_below(&item_path.0) {
                    remove_at(&mut item, remove, items, &item_path)?;
                }
                kept.push(item);
            }
            *list = kept;
        }
        _ => {}
    }
    Ok(())
}
