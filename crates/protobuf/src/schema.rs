//! The message table: `k8s.schema` (generated) and `go_pointers.txt` (explicit zeros), parsed once.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Field numbers, JSON names and types of every Kubernetes message; see its header.
const SCHEMA_TEXT: &str = include_str!("k8s.schema");
/// Scalar fields that are Go pointers; see its header.
const POINTERS_TEXT: &str = include_str!("go_pointers.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cardinality {
    One,
    List,
    Map,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    String,
    Bytes,
    Int32,
    Int64,
    Bool,
    Double,
    /// Index into [`Schema::messages`].
    Message(usize),
}

#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) tag: u32,
    /// The JSON key; `None` for a Go embedded struct whose fields go into the parent object.
    pub(crate) json: Option<String>,
    pub(crate) cardinality: Cardinality,
    pub(crate) ty: FieldType,
    /// A Go pointer: a zero value on the wire was set on purpose and is kept.
    pub(crate) explicit_zero: bool,
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    None,
    IntOrString,
    Quantity,
    Time,
    MicroTime,
    Duration,
    /// `RawExtension`, apiextensions `JSON`, `FieldsV1`: field 1 holds JSON (or a nested `k8s\0` object).
    EmbeddedJson,
    /// `ExtraValue`, `Verbs`: field 1 is the list itself.
    StringList,
    JsonSchemaPropsOrArray,
    JsonSchemaPropsOrBool,
    JsonSchemaPropsOrStringArray,
}

#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) name: String,
    /// Sorted by tag.
    pub(crate) fields: Vec<Field>,
    pub(crate) special: Special,
}

impl Message {
    pub(crate) fn field(&self, tag: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .and_then(|i| self.fields.get(i))
    }
}

#[derive(Debug)]
pub(crate) struct Schema {
    pub(crate) messages: Vec<Message>,
    /// Lowercase full name → index. Lowercase because prost renamed some types the generator could
    /// not match to k8s-openapi (`PodIp`), and Kubernetes has no two types differing only in case.
    by_name: HashMap<String, usize>,
}

impl Schema {
    /// The shared, parsed schema. The embedded text is checked by this crate's tests, so a
    /// malformed line can only come from a bad regeneration; it is skipped rather than panicking.
    pub(crate) fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::parse(SCHEMA_TEXT, POINTERS_TEXT).0)
    }

    pub(crate) fn lookup(&self, full_name: &str) -> Option<usize> {
        self.by_name.get(&full_name.to_ascii_lowercase()).copied()
    }

    /// Parses the schema and pointer texts; also returns the lines it could not use.
    pub(crate) fn parse(schema: &str, pointers: &str) -> (Schema, Vec<String>) {
        let mut problems = Vec::new();
        // Pass 1: message names, so that field types can refer forward.
        let mut by_name = HashMap::new();
        let mut names = Vec::new();
        for line in schema.lines() {
            if let Some(name) = line.strip_prefix("message ") {
                by_name.insert(name.to_ascii_lowercase(), names.len());
                names.push(name.to_owned());
            }
        }
        let explicit: std::collections::HashSet<(String, &str)> = pointers
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split_once(' '))
            .map(|(m, f)| (m.to_ascii_lowercase(), f.trim()))
            .collect();
        let mut messages: Vec<Message> = names
            .iter()
            .map(|name| Message {
                name: name.clone(),
                fields: Vec::new(),
                special: special_of(name),
            })
            .collect();
        let mut current: Option<usize> = None;
        for line in schema.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix("message ") {
                current = by_name.get(&name.to_ascii_lowercase()).copied();
                continue;
            }
            let Some(message) = current.and_then(|i| messages.get_mut(i)) else {
                problems.push(format!("field outside a message: {line}"));
                continue;
            };
            match parse_field(line, &by_name) {
                Some(mut field) => {
                    let key = (
                        message.name.to_ascii_lowercase(),
                        field.json.as_deref().unwrap_or("*"),
                    );
                    field.explicit_zero = explicit.contains(&key);
                    message.fields.push(field);
                }
                None => problems.push(format!("bad field line in {}: {line}", message.name)),
            }
        }
        for message in &mut messages {
            message.fields.sort_by_key(|f| f.tag);
        }
        (Schema { messages, by_name }, problems)
    }
}

fn parse_field(line: &str, by_name: &HashMap<String, usize>) -> Option<Field> {
    let mut parts = line.split_whitespace();
    let tag = parts.next()?.parse().ok()?;
    let json = match parts.next()? {
        "*" => None,
        name => Some(name.to_owned()),
    };
    let cardinality = match parts.next()? {
        "one" => Cardinality::One,
        "list" => Cardinality::List,
        "map" => Cardinality::Map,
        _ => return None,
    };
    let ty = match parts.next()? {
        "string" => FieldType::String,
        "bytes" => FieldType::Bytes,
        "int32" => FieldType::Int32,
        "int64" => FieldType::Int64,
        "bool" => FieldType::Bool,
        "double" => FieldType::Double,
        "message" => FieldType::Message(*by_name.get(&parts.next()?.to_ascii_lowercase())?),
        _ => return None,
    };
    Some(Field {
        tag,
        json,
        cardinality,
        ty,
        explicit_zero: false,
    })
}

fn special_of(full_name: &str) -> Special {
    let lower = full_name.to_ascii_lowercase();
    let (package, name) = lower.rsplit_once('.').unwrap_or(("", lower.as_str()));
    match (package, name) {
        ("k8s.io.apimachinery.pkg.util.intstr", "intorstring") => Special::IntOrString,
        ("k8s.io.apimachinery.pkg.api.resource", "quantity" | "quantityvalue") => Special::Quantity,
        ("k8s.io.apimachinery.pkg.apis.meta.v1", "time") => Special::Time,
        ("k8s.io.apimachinery.pkg.apis.meta.v1", "microtime") => Special::MicroTime,
        ("k8s.io.apimachinery.pkg.apis.meta.v1", "duration") => Special::Duration,
        ("k8s.io.apimachinery.pkg.apis.meta.v1", "fieldsv1") => Special::EmbeddedJson,
        ("k8s.io.apimachinery.pkg.apis.meta.v1", "verbs") => Special::StringList,
        ("k8s.io.apimachinery.pkg.runtime", "rawextension") => Special::EmbeddedJson,
        (p, "json") if p.starts_with("k8s.io.apiextensions_apiserver.") => Special::EmbeddedJson,
        (p, "jsonschemapropsorarray") if p.starts_with("k8s.io.apiextensions_apiserver.") => {
            Special::JsonSchemaPropsOrArray
        }
        (p, "jsonschemapropsorbool") if p.starts_with("k8s.io.apiextensions_apiserver.") => {
            Special::JsonSchemaPropsOrBool
        }
        (p, "jsonschemapropsorstringarray") if p.starts_with("k8s.io.apiextensions_apiserver.") => {
            Special::JsonSchemaPropsOrStringArray
        }
        (_, "extravalue") => Special::StringList,
        _ => Special::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schema_parses_without_problems() {
        let (schema, problems) = Schema::parse(SCHEMA_TEXT, POINTERS_TEXT);
        assert_eq!(problems, Vec::<String>::new());
        assert!(schema.messages.len() > 1000);
        let deployment_spec = schema
            .lookup("k8s.io.api.apps.v1.DeploymentSpec")
            .map(|i| &schema.messages[i]);
        let replicas = deployment_spec.and_then(|m| m.field(1));
        assert_eq!(replicas.and_then(|f| f.json.as_deref()), Some("replicas"));
        assert!(replicas.is_some_and(|f| f.explicit_zero));
        let min_ready = deployment_spec.and_then(|m| {
            m.fields
                .iter()
                .find(|f| f.json.as_deref() == Some("minReadySeconds"))
        });
        assert!(min_ready.is_some_and(|f| !f.explicit_zero));
        // The pointer list is read from newer Go types (1.37) than the schema (1.35): entries for
        // fields the schema does not have yet are expected, but most must match.
        let marked = schema
            .messages
            .iter()
            .flat_map(|m| &m.fields)
            .filter(|f| f.explicit_zero)
            .count();
        assert!(
            marked > 400,
            "only {marked} pointer fields matched the schema"
        );
    }

    #[test]
    fn special_types_are_recognised() {
        let schema = Schema::get();
        for (name, special) in [
            (
                "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
                Special::IntOrString,
            ),
            (
                "k8s.io.apimachinery.pkg.api.resource.Quantity",
                Special::Quantity,
            ),
            ("k8s.io.apimachinery.pkg.apis.meta.v1.Time", Special::Time),
            (
                "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
                Special::MicroTime,
            ),
            (
                "k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
                Special::Duration,
            ),
            (
                "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1",
                Special::EmbeddedJson,
            ),
            (
                "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs",
                Special::StringList,
            ),
            (
                "k8s.io.apimachinery.pkg.runtime.RawExtension",
                Special::EmbeddedJson,
            ),
            (
                "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON",
                Special::EmbeddedJson,
            ),
            (
                "k8s.io.api.authentication.v1.ExtraValue",
                Special::StringList,
            ),
            (
                "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
                Special::JsonSchemaPropsOrBool,
            ),
        ] {
            let message = schema.lookup(name).map(|i| &schema.messages[i]);
            assert_eq!(message.map(|m| m.special), Some(special), "{name}");
        }
    }
}
