//! Field paths and sets of them: what a manager owns, as upstream's `fieldsV1` encodes it.
//!
//! A path is a list of elements: a field name (`f:name`), the key fields of an item of an
//! associative list (`k:{"name":"nginx"}`), the value of an item of a set (`v:"x"`), or a list
//! index (`i:0`). A [`Set`] is a trie of paths: each node lists its member elements (paths that
//! end there) and its children (paths that go on). In `fieldsV1` an element that is both a member
//! and has children carries a `"."` entry.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path. Ordered as upstream orders them: fields, then keys, then values,
/// then indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of an object (or a key of a map).
    Field(String),
    /// An item of an associative list, by its key fields: (name, compact JSON value), sorted by
    /// name.
    Key(Vec<(String, String)>),
    /// An item of a set, by its value as compact JSON.
    Value(String),
    /// An item of a list by position (only lists without keys that are not atomic).
    Index(usize),
}

impl PathElement {
    /// The key element of an associative-list item from its key fields.
    pub fn key(fields: impl IntoIterator<Item = (String, Value)>) -> PathElement {
        let mut fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(name, value)| (name, value.to_string()))
            .collect();
        fields.sort();
        PathElement::Key(fields)
    }

    /// The value element of a set item.
    pub fn value(value: &Value) -> PathElement {
        PathElement::Value(value.to_string())
    }

    /// The `fieldsV1` spelling: `f:name`, `k:{...}`, `v:...`, `i:n`.
    fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{}:{value}", Value::from(name.as_str())))
                    .collect();
                format!("k:{{{}}}", inner.join(","))
            }
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    fn decode(text: &str) -> Result<PathElement, FieldsV1Error> {
        let bad = |problem| FieldsV1Error::Element {
            text: text.to_owned(),
            problem,
        };
        let Some((prefix, rest)) = text.split_once(':') else {
            return Err(FieldsV1Error::NotAnElement {
                text: text.to_owned(),
            });
        };
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_owned())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(fields)) if !fields.is_empty() => Ok(PathElement::key(fields)),
                _ => Err(bad(ElementProblem::KeyNotAnObject)),
            },
            "v" => serde_json::from_str::<Value>(rest)
                .map(|value| PathElement::value(&value))
                .map_err(|source| bad(ElementProblem::Value(source))),
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|source| bad(ElementProblem::Index(source))),
            _ => Err(bad(ElementProblem::UnknownKind {
                prefix: prefix.to_owned(),
            })),
        }
    }
}

/// A `fieldsV1` value (`metadata.managedFields[].fieldsV1`) that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FieldsV1Error {
    /// `fieldsV1`, or an entry of it, is not a JSON object.
    #[error("fieldsV1 must be a JSON object")]
    NotAnObject,
    /// An entry's value is not a JSON object.
    #[error("fieldsV1 entry {key:?} must be a JSON object")]
    EntryNotAnObject {
        /// The entry's key.
        key: String,
    },
    /// A key without the `<kind>:` prefix.
    #[error("{text:?} is not a field path element")]
    NotAnElement {
        /// The key.
        text: String,
    },
    /// A path element that does not decode.
    #[error("{text:?}: {problem}")]
    Element {
        /// The key.
        text: String,
        /// What is wrong with it.
        #[source]
        problem: ElementProblem,
    },
}

/// What is wrong with one path element of a `fieldsV1` key.
#[derive(Debug, thiserror::Error)]
pub enum ElementProblem {
    /// A `k:` element whose key is not a non-empty JSON object.
    #[error("the key of a list item must be a JSON object")]
    KeyNotAnObject,
    /// A `v:` element whose value is not JSON.
    #[error("{0}")]
    Value(#[source] serde_json::Error),
    /// An `i:` element whose index is not a number.
    #[error("{0}")]
    Index(#[source] std::num::ParseIntError),
    /// A prefix other than `f`, `k`, `v` and `i`.
    #[error("unknown field path element kind {prefix:?}")]
    UnknownKind {
        /// The prefix.
        prefix: String,
    },
}

impl fmt::Display for PathElement {
    /// Upstream's path notation: `.name`, `[key=value,...]`, `[=value]`, `[index]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                write!(f, "[{}]", inner.join(","))
            }
            PathElement::Value(value) => write!(f, "[={value}]"),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A field path from the object's root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// This path extended by `element`.
    pub fn child(&self, element: PathElement) -> Path {
        let mut elements = self.0.clone();
        elements.push(element);
        Path(elements)
    }

    /// The path of the field `name` under this one.
    pub fn field(&self, name: &str) -> Path {
        self.child(PathElement::Field(name.to_owned()))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for element in &self.0 {
            write!(f, "{element}")?;
        }
        Ok(())
    }
}

/// A set of field paths, as a trie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    /// The empty set.
    pub fn new() -> Set {
        Set::default()
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Adds `path` (the empty path, the root, is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self
                .children
                .get(first)
                .is_some_and(|child| child.contains(rest)),
        }
    }

    /// Whether `path` or any path below it is a member.
    pub fn contains_at_or_below(&self, path: &[PathElement]) -> bool {
        match path {
            [] => !self.is_empty(),
            [last] => {
                self.members.contains(last)
                    || self.children.get(last).is_some_and(|c| !c.is_empty())
            }
            [first, rest @ ..] => self
                .children
                .get(first)
                .is_some_and(|child| child.contains_at_or_below(rest)),
        }
    }

    /// The paths in either set.
    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (element, child) in &other.children {
            let merged = match out.children.get(element) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(element.clone(), merged);
        }
        out
    }

    /// The paths in this set and not in `other`.
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (element, child) in &self.children {
            let rest = match other.children.get(element) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                children.insert(element.clone(), rest);
            }
        }
        Set { members, children }
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (element, child) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    children.insert(element.clone(), both);
                }
            }
        }
        Set { members, children }
    }

    /// This set without `prefix` and every path below it.
    pub fn without_subtree(&self, prefix: &[PathElement]) -> Set {
        let mut out = self.clone();
        out.remove_subtree(prefix);
        out
    }

    fn remove_subtree(&mut self, prefix: &[PathElement]) {
        match prefix {
            [] => *self = Set::new(),
            [last] => {
                self.members.remove(last);
                self.children.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove_subtree(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// This set without the member `path` (paths below it stay).
    pub fn without_member(&self, path: &[PathElement]) -> Set {
        let mut out = self.clone();
        match path {
            [] => {}
            [last] => {
                out.members.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get(first) {
                    let rest = child.without_member(rest);
                    if rest.is_empty() {
                        out.children.remove(first);
                    } else {
                        out.children.insert(first.clone(), rest);
                    }
                }
            }
        }
        out
    }

    /// Only the paths at or below `prefix`.
    pub fn only_subtree(&self, prefix: &[PathElement]) -> Set {
        let mut out = Set::new();
        match prefix {
            [] => return self.clone(),
            [last] => {
                if self.members.contains(last) {
                    out.members.insert(last.clone());
                }
                if let Some(child) = self.children.get(last) {
                    out.children.insert(last.clone(), child.clone());
                }
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get(first) {
                    let kept = child.only_subtree(rest);
                    if !kept.is_empty() {
                        out.children.insert(first.clone(), kept);
                    }
                }
            }
        }
        out
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        let elements: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for element in elements {
            prefix.push(element.clone());
            if self.members.contains(element) {
                out.push(Path(prefix.clone()));
            }
            if let Some(child) = self.children.get(element) {
                child.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The `fieldsV1` form.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        let nonempty = self
            .children
            .iter()
            .filter(|(_, child)| !child.is_empty())
            .map(|(element, _)| element);
        let elements: BTreeSet<&PathElement> = self.members.iter().chain(nonempty).collect();
        for element in elements {
            let child = self.children.get(element).filter(|child| !child.is_empty());
            let mut entry = match child {
                Some(child) => match child.to_fields_v1() {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
                None => Map::new(),
            };
            if child.is_some() && self.members.contains(element) {
                entry.insert(".".to_owned(), Value::Object(Map::new()));
            }
            out.insert(element.encode(), Value::Object(entry));
        }
        Value::Object(out)
    }

    /// Reads a `fieldsV1` value.
    pub fn from_fields_v1(value: &Value) -> Result<Set, FieldsV1Error> {
        let Value::Object(map) = value else {
            return Err(FieldsV1Error::NotAnObject);
        };
        let mut set = Set::new();
        for (key, inner) in map {
            if key == "." {
                continue;
            }
            let element = PathElement::decode(key)?;
            let Value::Object(inner_map) = inner else {
                return Err(FieldsV1Error::EntryNotAnObject { key: key.clone() });
            };
            let child = Set::from_fields_v1(inner)?;
            if inner_map.is_empty() || inner_map.contains_key(".") {
                set.members.insert(element.clone());
            }
            if !child.is_empty() {
                set.children.insert(element, child);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(elements: &[PathElement]) -> Vec<PathElement> {
        elements.to_vec()
    }

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    #[test]
    fn round_trips_fields_v1_like_upstream() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}},
                }}},
            },
            "f:metadata2": {"f:finalizers": {"v:\"a\"": {}}},
        });
        let set = Set::from_fields_v1(&encoded).unwrap();
        assert!(set.contains(&path(&[field("spec"), field("replicas")])));
        assert!(set.contains(&path(&[field("metadata"), field("labels")])));
        assert!(!set.contains(&path(&[field("spec")])));
        let nginx = PathElement::key([("name".to_owned(), json!("nginx"))]);
        let image = path(&[
            field("spec"),
            field("template"),
            field("spec"),
            field("containers"),
            nginx.clone(),
            field("image"),
        ]);
        assert!(set.contains(&image));
        assert_eq!(set.to_fields_v1(), encoded);
        assert_eq!(
            Path(image).to_string(),
            ".spec.template.spec.containers[name=\"nginx\"].image"
        );
    }

    #[test]
    fn keys_are_sorted_and_values_compact() {
        let port = PathElement::key([
            ("protocol".to_owned(), json!("TCP")),
            ("containerPort".to_owned(), json!(80)),
        ]);
        assert_eq!(port.encode(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
        assert_eq!(port.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
        assert_eq!(PathElement::value(&json!("x")).to_string(), r#"[="x"]"#);
    }

    #[test]
    fn set_algebra() {
        let mut a = Set::new();
        a.insert(&[field("spec"), field("replicas")]);
        a.insert(&[field("spec"), field("paused")]);
        let mut b = Set::new();
        b.insert(&[field("spec"), field("replicas")]);
        b.insert(&[field("metadata"), field("labels"), field("app")]);
        assert_eq!(a.intersection(&b).paths().len(), 1);
        assert_eq!(
            a.difference(&b).paths(),
            vec![Path(vec![field("spec"), field("paused")])]
        );
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(b.contains_at_or_below(&[field("metadata")]));
        assert!(!b.contains_at_or_below(&[field("status")]));
        assert!(a.without_subtree(&[field("spec")]).is_empty());
        let emptied = b
            .without_subtree(&[field("metadata"), field("labels")])
            .without_member(&[field("spec"), field("replicas")]);
        assert_eq!(emptied, Set::new(), "no empty children are left behind");
        assert_eq!(emptied.to_fields_v1(), json!({}));
        assert_eq!(b.only_subtree(&[field("metadata")]).paths().len(), 1);
    }

    #[test]
    fn rejects_malformed_fields_v1() {
        assert!(Set::from_fields_v1(&json!([])).is_err());
        assert!(Set::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:[1]": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"i:x": {}})).is_err());
        let err = Set::from_fields_v1(&json!({"i:x": {}})).unwrap_err();
        assert_eq!(err.to_string(), "\"i:x\": invalid digit found in string");
        let cause = std::error::Error::source(&err).and_then(std::error::Error::source);
        assert!(
            cause.is_some_and(|cause| cause.is::<std::num::ParseIntError>()),
            "the parse error is kept: {cause:?}"
        );
    }
}
