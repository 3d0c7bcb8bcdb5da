//! The layout table (`go_layout.txt`) read into types with their fields, names borrowed from the text.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Every type of the table.
pub(super) struct Layout {
    pub(super) types: Vec<Struct>,
    pub(super) by_name: HashMap<&'static str, usize>,
    /// (apiVersion, kind) → type, for the kinds (structs embedding `TypeMeta`).
    pub(super) by_kind: HashMap<(&'static str, &'static str), usize>,
}

pub(super) struct Struct {
    pub(super) fields: Vec<Field>,
    /// Field name → position, built on first use (see `Layout::field_index`).
    pub(super) index: OnceLock<HashMap<&'static str, usize>>,
}

pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) ty: Ty,
    pub(super) omitempty: bool,
    pub(super) omitzero: bool,
}

/// A field's Go type, as far as its JSON is concerned.
#[derive(Debug)]
pub(super) enum Ty {
    String,
    Int,
    Float,
    Bool,
    /// `[]byte`: a base64 string.
    Bytes,
    /// A type with its own `MarshalJSON` (a struct to `omitempty`).
    Opaque(Opaque),
    Struct(usize),
    Ptr(Box<Ty>),
    Slice(Box<Ty>),
    /// `map[string]T` (every API map has string keys).
    Map(Box<Ty>),
}

/// The types with their own `MarshalJSON`, by how their zero value is written.
#[derive(Clone, Copy, Debug)]
pub(super) enum Opaque {
    /// `metav1.Time`, `metav1.MicroTime`: `null`.
    Time,
    /// `metav1.Duration`: `"0s"`.
    Duration,
    /// `resource.Quantity`: `"0"`.
    Quantity,
    /// `intstr.IntOrString`: `0`.
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1`, `apiextensions.JSON`: `null`.
    Raw,
}

impl Opaque {
    pub(super) fn zero(self) -> &'static str {
        match self {
            Opaque::Time | Opaque::Raw => "null",
            Opaque::Duration => "\"0s\"",
            Opaque::Quantity => "\"0\"",
            Opaque::IntOrString => "0",
        }
    }
}

impl Layout {
    /// Reads the table. It is generated and committed, so a line it cannot read is a bug of the
    /// generator: such a line is skipped (its field is then written untyped, sorted), never a
    /// panic at run time; the unit tests check that every line is read.
    pub(super) fn parse(text: &'static str) -> Layout {
        let mut names: Vec<(&'static str, Option<(&'static str, &'static str)>)> = Vec::new();
        let mut raw_fields: Vec<Vec<&'static str>> = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some(field) = line.strip_prefix('\t') {
                if let Some(fields) = raw_fields.last_mut() {
                    fields.push(field);
                }
                continue;
            }
            let mut words = line.split(' ');
            let name = words.next().unwrap_or_default();
            let gvk = match (words.next(), words.next()) {
                (Some(api_version), Some(kind)) => Some((api_version, kind)),
                _ => None,
            };
            names.push((name, gvk));
            raw_fields.push(Vec::new());
        }
        let by_name: HashMap<&'static str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, i))
            .collect();
        let by_kind = names
            .iter()
            .enumerate()
            .filter_map(|(i, (_, gvk))| gvk.map(|gvk| (gvk, i)))
            .collect();
        let types = names
            .iter()
            .zip(raw_fields)
            .map(|(_, lines)| Struct {
                fields: lines
                    .into_iter()
                    .filter_map(|line| parse_field(line, &by_name))
                    .collect(),
                index: OnceLock::new(),
            })
            .collect();
        Layout {
            types,
            by_name,
            by_kind,
        }
    }
}

/// `<json name> <type> [omitempty] [omitzero]`.
fn parse_field(line: &'static str, by_name: &HashMap<&'static str, usize>) -> Option<Field> {
    let mut words = line.split(' ');
    let name = words.next()?;
    let ty = parse_type(words.next()?, by_name)?;
    let mut field = Field {
        name,
        ty,
        omitempty: false,
        omitzero: false,
    };
    for flag in words {
        match flag {
            "omitempty" => field.omitempty = true,
            "omitzero" => field.omitzero = true,
            _ => return None,
        }
    }
    Some(field)
}

pub(super) fn parse_type(text: &str, by_name: &HashMap<&'static str, usize>) -> Option<Ty> {
    if let Some(inner) = text.strip_prefix('*') {
        return Some(Ty::Ptr(Box::new(parse_type(inner, by_name)?)));
    }
    if let Some(inner) = text.strip_prefix("[]") {
        return Some(Ty::Slice(Box::new(parse_type(inner, by_name)?)));
    }
    if let Some(inner) = text.strip_prefix("map[]") {
        return Some(Ty::Map(Box::new(parse_type(inner, by_name)?)));
    }
    Some(match text {
        "string" => Ty::String,
        "int" => Ty::Int,
        "float" => Ty::Float,
        "bool" => Ty::Bool,
        "bytes" => Ty::Bytes,
        "time" => Ty::Opaque(Opaque::Time),
        "duration" => Ty::Opaque(Opaque::Duration),
        "quantity" => Ty::Opaque(Opaque::Quantity),
        "intstr" => Ty::Opaque(Opaque::IntOrString),
        "raw" => Ty::Opaque(Opaque::Raw),
        name => Ty::Struct(*by_name.get(name)?),
    })
}
