//! The shape of a value as structured merge sees it: a scalar, a map (granular or atomic), a
//! list (atomic, a set, or an associative list keyed by some of its items' fields), or a value
//! without a schema whose shape is deduced from the value itself (maps granular, lists atomic).
//!
//! Read from JSON Schemas: the built-in kinds' definitions (generated from k8s-openapi,
//! annotated with upstream's `x-kubernetes-*` markers) or a CRD's structural schema, which
//! carries the same extensions.

use serde_json::{Map, Value};

use super::fieldpath::PathElement;

/// The OpenAPI definition of object metadata, which a custom resource's `metadata` uses.
pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Key fields of built-in associative lists that upstream defaults (`+default=` markers), so an
/// item that omits them still has its full key.
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
];

/// How the items of a list are told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// The list is one value: whoever sets it sets all of it.
    Atomic,
    /// A set of scalars, each item its own field.
    Set,
    /// An associative list: items are objects identified by these key fields.
    Map(Vec<String>),
}

/// What a position in a schema holds.
#[derive(Debug, Clone)]
pub(crate) enum Shape<'a> {
    Scalar,
    Map {
        atomic: bool,
    },
    List {
        kind: ListKind,
        items: TypeRef<'a>,
    },
    /// No schema: deduced from the value.
    Deduced,
}

/// A position in a schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeRef<'a> {
    /// Definitions `$ref`s point into.
    definitions: &'a Map<String, Value>,
    /// The schema of the value, `None` where no schema describes it.
    schema: Option<&'a Value>,
    /// Whether this is the root of a custom resource, whose `metadata` is `ObjectMeta`.
    custom_root: bool,
}

impl<'a> TypeRef<'a> {
    /// The root of a built-in kind's object, from its definition name.
    pub(crate) fn definition(definitions: &'a Map<String, Value>, name: &str) -> TypeRef<'a> {
        TypeRef {
            definitions,
            schema: definitions.get(name),
            custom_root: false,
        }
    }

    /// The root of a custom resource with the structural schema `schema` (`None`: no schema).
    pub(crate) fn custom(
        definitions: &'a Map<String, Value>,
        schema: Option<&'a Value>,
    ) -> TypeRef<'a> {
        TypeRef {
            definitions,
            schema,
            custom_root: true,
        }
    }

    fn at(self, schema: Option<&'a Value>) -> TypeRef<'a> {
        TypeRef {
            definitions: self.definitions,
            schema,
            custom_root: false,
        }
    }

    /// The schemas from this position through its `$ref`s (a lone `$ref` in `allOf` too), the
    /// position's own first: extensions may sit on the referring property or the definition.
    fn chain(self) -> impl Iterator<Item = &'a Value> {
        let definitions = self.definitions;
        // References between definitions are never chained deeply; the bound keeps a malformed
        // cycle from looping.
        std::iter::successors(self.schema, move |schema| {
            crate::schema::reference_of(schema)
                .and_then(crate::schema::definition_name)
                .and_then(|name| definitions.get(&name))
        })
        .take(9)
    }

    /// The schema that describes the value (the end of the `$ref` chain).
    fn resolved(self) -> Option<&'a Value> {
        self.chain().last()
    }

    /// The definition name at the end of the `$ref` chain, if any.
    fn definition_name(self) -> Option<&'a str> {
        let resolved = self.resolved()?;
        self.definitions
            .iter()
            .find(|(_, schema)| std::ptr::eq(*schema, resolved))
            .map(|(name, _)| name.as_str())
    }

    fn extension(self, name: &str) -> Option<&'a Value> {
        self.chain().find_map(|schema| schema.get(name))
    }

    /// What this position holds.
    pub(crate) fn shape(self) -> Shape<'a> {
        let Some(schema) = self.resolved() else {
            return Shape::Deduced;
        };
        if self.custom_root {
            return Shape::Map { atomic: false };
        }
        if self.extension("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            return Shape::Scalar;
        }
        let kind = schema.get("type").and_then(|t| match t {
            Value::String(s) => Some(s.as_str()),
            // schemars spells optional values as `["string", "null"]`.
            Value::Array(types) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null"),
            _ => None,
        });
        match kind {
            Some("array") => Shape::List {
                kind: self.list_kind(),
                items: self.at(schema.get("items").filter(|items| items.is_object())),
            },
            Some("object") => self.map_shape(schema),
            None if schema.get("properties").is_some()
                || schema.get("additionalProperties").is_some() =>
            {
                self.map_shape(schema)
            }
            Some(_) => Shape::Scalar,
            None => Shape::Deduced,
        }
    }

    fn map_shape(self, schema: &Value) -> Shape<'a> {
        let atomic = self
            .extension("x-kubernetes-map-type")
            .and_then(Value::as_str)
            == Some("atomic");
        let free_form = schema.get("properties").is_none()
            && !schema
                .get("additionalProperties")
                .is_some_and(Value::is_object);
        if free_form && !atomic {
            // `type: object` with nothing declared (e.g. preserve-unknown-fields): deduce.
            return Shape::Deduced;
        }
        Shape::Map { atomic }
    }

    fn list_kind(self) -> ListKind {
        match self
            .extension("x-kubernetes-list-type")
            .and_then(Value::as_str)
        {
            Some("set") => return ListKind::Set,
            Some("map") => {
                let keys = self
                    .extension("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                return ListKind::Map(keys);
            }
            Some(_) => return ListKind::Atomic,
            None => {}
        }
        // Upstream's rule for lists without a list type: a merge strategy makes them
        // associative (by the merge key) or a set.
        let merges = self
            .extension("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .is_some_and(|s| s.split(',').any(|s| s == "merge"));
        if !merges {
            return ListKind::Atomic;
        }
        match self
            .extension("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
        {
            Some(key) => ListKind::Map(vec![key.to_owned()]),
            None => ListKind::Set,
        }
    }

    /// The position of the field `name` of a map here, and whether the schema declares it (a
    /// map's free keys are not declared).
    pub(crate) fn field(self, name: &str) -> (TypeRef<'a>, bool) {
        if self.custom_root && name == "metadata" {
            return (self.at(self.definitions.get(OBJECT_META)), true);
        }
        let Some(schema) = self.resolved() else {
            return (self.at(None), false);
        };
        if let Some(property) = schema.get("properties").and_then(|p| p.get(name)) {
            return (self.at(Some(property)), true);
        }
        match schema.get("additionalProperties") {
            Some(values @ Value::Object(_)) => (self.at(Some(values)), false),
            _ => (self.at(None), false),
        }
    }

    /// Whether the schema here is an object with declared properties (a Go struct upstream).
    pub(crate) fn has_properties(self) -> bool {
        !self.custom_root
            && self
                .resolved()
                .is_some_and(|schema| schema.get("properties").is_some())
    }

    /// The default of the key field `name` of this (item) position, if the schema gives one.
    fn key_default(self, name: &str) -> Option<Value> {
        let (field, _) = self.field(name);
        if let Some(default) = field.extension("default") {
            return Some(default.clone());
        }
        let definition = self.definition_name()?;
        KEY_DEFAULTS
            .iter()
            .find(|(d, f, _)| *d == definition && *f == name)
            .map(|(_, _, default)| Value::from(*default))
    }

    /// The path element of an item of a list of `kind` whose items are at this position.
    pub(crate) fn item_element(
        self,
        kind: &ListKind,
        item: &Value,
        index: usize,
    ) -> Result<PathElement, ItemError> {
        match kind {
            ListKind::Atomic => Ok(PathElement::Index(index)),
            ListKind::Set => match item {
                Value::Object(_) | Value::Array(_) => Err(ItemError::SetOfNonScalars),
                scalar => Ok(PathElement::value(scalar)),
            },
            ListKind::Map(keys) => {
                let Value::Object(fields) = item else {
                    return Err(ItemError::MapItemNotAnObject);
                };
                let mut key = Vec::new();
                for name in keys {
                    match fields.get(name).cloned().or_else(|| self.key_default(name)) {
                        Some(value) => key.push((name.clone(), value)),
                        None => continue,
                    }
                }
                if key.is_empty() && !keys.is_empty() {
                    return Err(ItemError::NoKeyFields { keys: keys.clone() });
                }
                Ok(PathElement::key(key))
            }
        }
    }
}

/// A list item that has no path element under its list's type.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ItemError {
    #[error("a set (list-type set) may only hold scalars")]
    SetOfNonScalars,
    #[error("the items of an associative list must be objects")]
    MapItemNotAnObject,
    #[error("an item of an associative list omits all key fields {keys:?}")]
    NoKeyFields { keys: Vec<String> },
}
