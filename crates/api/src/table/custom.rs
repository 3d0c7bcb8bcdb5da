//! Custom resource tables from a CRD version's `additionalPrinterColumns`, with the JSONPath
//! subset they use (`.spec.replicas`, `.status.conditions[?(@.type=="Ready")].status`).

use std::time::SystemTime;

use serde_json::Value;

use super::time::{self, since, Nanos};
use super::{Column, Row, Table, CREATION_TIMESTAMP_DESCRIPTION, NAME_DESCRIPTION};

/// Why a printer column's JSONPath was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unrecognized column definition {}", crate::selector::go_quote(.path))]
pub struct JsonPathError {
    /// The JSONPath as written in the CRD.
    pub path: String,
}

/// One `additionalPrinterColumns` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    /// Header text.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    /// Format hint; empty when none.
    pub format: String,
    /// Description; upstream writes one from the JSONPath when empty.
    pub description: String,
    /// 0 normal, 1+ wide only.
    pub priority: i32,
    /// The JSONPath, e.g. `.spec.replicas`.
    pub json_path: String,
}

impl PrinterColumn {
    /// Reads one `additionalPrinterColumns` entry of a CRD (JSON).
    pub fn from_json(column: &Value) -> PrinterColumn {
        let text = |k: &str| {
            column
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        PrinterColumn {
            name: text("name"),
            kind: text("type"),
            format: text("format"),
            description: text("description"),
            priority: column
                .get("priority")
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(0),
            json_path: text("jsonPath"),
        }
    }

    /// The columns of a CRD version (its `additionalPrinterColumns` JSON array); with none,
    /// upstream's single `Age` column.
    pub fn list_from_json(columns: Option<&Value>) -> Vec<PrinterColumn> {
        let list: Vec<PrinterColumn> = columns
            .and_then(Value::as_array)
            .map(|a| a.iter().map(PrinterColumn::from_json).collect())
            .unwrap_or_default();
        if !list.is_empty() {
            return list;
        }
        vec![PrinterColumn {
            name: "Age".to_owned(),
            kind: "date".to_owned(),
            format: String::new(),
            description: CREATION_TIMESTAMP_DESCRIPTION.to_owned(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".to_owned(),
        }]
    }
}

/// The Table of custom resources: `Name`, then one column per printer column. A column whose
/// JSONPath does not parse is an error, as upstream (which then falls back to the default
/// table: the caller may use [`super::default_table`]).
pub fn table_for_custom(
    columns: &[PrinterColumn],
    objects: &[Value],
    now: SystemTime,
) -> Result<Table, JsonPathError> {
    let now = time::nanos_of(now);
    let paths = columns
        .iter()
        .map(|c| JsonPath::parse(&c.json_path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut definitions = vec![Column::new("Name", "string", NAME_DESCRIPTION).format("name")];
    definitions.extend(columns.iter().map(|c| Column {
        name: c.name.clone(),
        kind: c.kind.clone(),
        format: c.format.clone(),
        description: if c.description.is_empty() {
            format!(
                "Custom resource definition column (in JSONPath format): {}",
                c.json_path
            )
        } else {
            c.description.clone()
        },
        priority: c.priority,
    }));
    let rows = objects
        .iter()
        .map(|object| {
            let mut cells = vec![Value::from(
                object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )];
            for (column, path) in columns.iter().zip(&paths) {
                cells.push(match path.first(object) {
                    None => Value::Null,
                    Some(value) => cell(&column.kind, value, now),
                });
            }
            Row::new(cells)
        })
        .collect();
    Ok(Table {
        columns: definitions,
        rows,
    })
}

/// A cell as upstream's CRD table convertor makes it from the value a JSONPath found.
fn cell(kind: &str, value: &Value, now: Nanos) -> Value {
    match (kind, value) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(s)) => Value::from(s.as_str()),
        // A string column prints any other value as kubectl's JSONPath printer does: maps and
        // lists as compact JSON, scalars as text.
        ("string", other) => Value::from(other.to_string()),
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => n.as_f64().map_or(Value::Null, |f| Value::from(f as i64)),
        },
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => Value::from(*b),
        ("date", Value::String(s)) => match time::parse_rfc3339(s) {
            Some(at) => Value::from(since(Some(at), now)),
            None => Value::from("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// One step of a JSONPath.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// `.name` or `['name']`
    Field(String),
    /// `[n]`, negative from the end
    Index(i64),
    /// `[*]` or `.*`
    Wildcard,
    /// `..name`: the field at any depth
    Recursive(String),
    /// `[?(@.a.b == "x")]`, `[?(@.a)]`
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    path: Vec<Step>,
    comparison: Option<(Comparison, Value)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A parsed JSONPath of the subset printer columns use: fields, indexes, wildcards, recursive
/// descent and filters comparing a relative path with a literal.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `.spec.x`, `{.spec.x}`, `$.spec.x`, `.items[0]`, `.a['b.c']`,
    /// `.status.conditions[?(@.type=="Ready")].status`.
    pub fn parse(text: &str) -> Result<JsonPath, JsonPathError> {
        let error = || JsonPathError {
            path: text.to_owned(),
        };
        let mut body = text.trim();
        if let Some(inner) = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')) {
            body = inner.trim();
        }
        body = body.strip_prefix('$').unwrap_or(body);
        let (steps, rest) = parse_steps(body).ok_or_else(error)?;
        if !rest.trim().is_empty() {
            return Err(error());
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path finds, in document order.
    pub fn find<'a>(&self, value: &'a Value) -> Vec<&'a Value> {
        evaluate(&self.steps, value)
    }

    /// The first value the path finds (what a printer column shows).
    pub fn first<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.find(value).into_iter().next()
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '/')
}

/// Parses steps until something that is not a step; returns the steps and the rest.
fn parse_steps(mut text: &str) -> Option<(Vec<Step>, &str)> {
    let mut steps = Vec::new();
    loop {
        if let Some(rest) = text.strip_prefix("..") {
            let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Recursive(rest[..end].to_owned()));
            text = &rest[end..];
        } else if let Some(rest) = text.strip_prefix('.') {
            if let Some(rest) = rest.strip_prefix('*') {
                steps.push(Step::Wildcard);
                text = rest;
                continue;
            }
            let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
            if end == 0 {
                // A lone `.` is the current object.
                text = rest;
                if text.is_empty() || text.starts_with('[') {
                    continue;
                }
                return None;
            }
            steps.push(Step::Field(rest[..end].to_owned()));
            text = &rest[end..];
        } else if let Some(rest) = text.strip_prefix('[') {
            let close = find_closing_bracket(rest)?;
            let inside = rest[..close].trim();
            text = &rest[close + 1..];
            steps.push(parse_bracket(inside)?);
        } else {
            return Some((steps, text));
        }
    }
}

/// The index of the `]` closing a bracket, skipping quoted strings and nested brackets.
fn find_closing_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' => depth += 1,
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_bracket(inside: &str) -> Option<Step> {
    if inside == "*" {
        return Some(Step::Wildcard);
    }
    if let Some(quoted) = parse_quoted(inside) {
        return Some(Step::Field(quoted));
    }
    if let Ok(index) = inside.parse::<i64>() {
        return Some(Step::Index(index));
    }
    let filter = inside.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let relative = filter.strip_prefix('@')?;
    let (path, rest) = parse_steps(relative)?;
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(Step::Filter(Filter {
            path,
            comparison: None,
        }));
    }
    let (comparison, literal) = [
        ("==", Comparison::Equal),
        ("!=", Comparison::NotEqual),
        ("<=", Comparison::LessOrEqual),
        (">=", Comparison::GreaterOrEqual),
        ("<", Comparison::Less),
        (">", Comparison::Greater),
    ]
    .iter()
    .find_map(|(op, cmp)| rest.strip_prefix(op).map(|lit| (*cmp, lit.trim())))?;
    let literal = if let Some(s) = parse_quoted(literal) {
        Value::from(s)
    } else {
        match literal {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" | "nil" => Value::Null,
            number => Value::from(number.parse::<f64>().ok()?),
        }
    };
    Some(Step::Filter(Filter {
        path,
        comparison: Some((comparison, literal)),
    }))
}

fn parse_quoted(text: &str) -> Option<String> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = text.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else if c == quote {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn evaluate<'a>(steps: &[Step], value: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![value];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            apply(step, v, &mut next);
        }
        current = next;
    }
    current
}

fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => {
            if let Some(v) = value.get(name) {
                out.push(v);
            }
        }
        Step::Index(index) => {
            if let Value::Array(items) = value {
                let len = items.len() as i64;
                let at = if *index < 0 { len + index } else { *index };
                if let Some(v) = usize::try_from(at).ok().and_then(|i| items.get(i)) {
                    out.push(v);
                }
            }
        }
        Step::Wildcard => match value {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Step::Recursive(name) => recursive(name, value, out),
        Step::Filter(filter) => {
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                Value::Object(map) => map.values().collect(),
                _ => Vec::new(),
            };
            for item in items {
                let found = evaluate(&filter.path, item);
                let keep = match &filter.comparison {
                    None => !found.is_empty(),
                    Some((cmp, literal)) => found.iter().any(|f| compare(f, *cmp, literal)),
                };
                if keep {
                    out.push(item);
                }
            }
        }
    }
}

fn recursive<'a>(name: &str, value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.get(name) {
                out.push(v);
            }
            for v in map.values() {
                recursive(name, v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                recursive(name, v, out);
            }
        }
        _ => {}
    }
}

fn compare(found: &Value, cmp: Comparison, literal: &Value) -> bool {
    let ordering = match (found, literal) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) => {
            return match cmp {
                Comparison::Equal => a == b,
                Comparison::NotEqual => a != b,
                _ => false,
            }
        }
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match cmp {
        Comparison::Equal => ordering.is_eq(),
        Comparison::NotEqual => !ordering.is_eq(),
        Comparison::Less => ordering.is_lt(),
        Comparison::LessOrEqual => ordering.is_le(),
        Comparison::Greater => ordering.is_gt(),
        Comparison::GreaterOrEqual => ordering.is_ge(),
    }
}
