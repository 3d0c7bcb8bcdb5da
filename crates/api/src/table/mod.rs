//! Server-side Table printing (`meta.k8s.io/v1` Table) with upstream's columns for `kubectl get`.
//!
//! [`table_for`] prints built-in kinds with the columns of upstream's
//! `pkg/printers/internalversion` (the API server always prints the wide cells; kubectl hides
//! columns of priority 1 unless `-o wide`), and every other kind with upstream's default
//! `Name`/`Created At` table. [`table_for_custom`] prints custom resources from a CRD
//! version's `additionalPrinterColumns`. The caller passes "now" for ages and fills in each
//! row's `object` (it owns `includeObject`) and the list metadata.

mod builtin;
mod custom;
mod time;

pub use custom::{table_for_custom, JsonPath, JsonPathError, PrinterColumn};
pub use time::{format_rfc3339, human_duration, parse_rfc3339};

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::resources::ResourceInfo;

/// Upstream's `ObjectMeta` description of `name`, used by every Name column.
pub const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Upstream's `ObjectMeta` description of `creationTimestamp`, used by Age and Created At.
pub const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One column definition (`TableColumnDefinition`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Header text, e.g. `Name`; kubectl upper-cases it.
    pub name: String,
    /// OpenAPI type of the cells: `string`, `integer`, `number`, `boolean`, `date`.
    #[serde(rename = "type")]
    pub kind: String,
    /// OpenAPI format hint, e.g. `name`; empty when none.
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0 for the normal columns, 1 (or more) for those only `-o wide` shows.
    pub priority: i32,
}

impl Column {
    /// A normal column without a format.
    pub fn new(name: &str, kind: &str, description: &str) -> Column {
        Column {
            name: name.to_owned(),
            kind: kind.to_owned(),
            format: String::new(),
            description: description.to_owned(),
            priority: 0,
        }
    }

    /// The same column, shown only by `-o wide`.
    pub fn wide(mut self) -> Column {
        self.priority = 1;
        self
    }

    /// The same column with a format hint.
    pub fn format(mut self, format: &str) -> Column {
        self.format = format.to_owned();
        self
    }
}

/// A row condition (`TableRowCondition`), e.g. `Completed` for finished pods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowCondition {
    /// Condition type, e.g. `Completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason, e.g. `Succeeded`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// One row: a cell per column, in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The cells: strings, integers, numbers, booleans or null.
    pub cells: Vec<Value>,
    /// Row conditions; omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RowCondition>,
}

impl Row {
    fn new(cells: Vec<Value>) -> Row {
        Row {
            cells,
            conditions: Vec::new(),
        }
    }
}

/// A Table: its column definitions and one row per object, in the objects' order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Table {
    /// The columns (`columnDefinitions`).
    #[serde(rename = "columnDefinitions")]
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<Row>,
}

impl Table {
    /// The Table as the API returns it, with empty list metadata and no row objects: the
    /// caller sets `metadata`, each `rows[i].object`, and drops `columnDefinitions` for
    /// `noHeaders`.
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {},
        });
        if let (Value::Object(out), Ok(Value::Object(body))) =
            (&mut value, serde_json::to_value(self))
        {
            out.extend(body);
        }
        value
    }
}

/// The Table for `objects` of `resource` (a custom resource: from its printer columns), ages
/// counted up to `now`.
pub fn table_for(resource: &ResourceInfo, objects: &[Value], now: SystemTime) -> Table {
    if let Some(custom) = &resource.custom {
        // A column whose JSONPath does not parse falls back to the default table, as upstream.
        return table_for_custom(&custom.printer_columns, objects, now)
            .unwrap_or_else(|_| default_table(objects));
    }
    let now = time::nanos_of(now);
    match builtin::printer(resource.group, resource.kind) {
        Some(printer) => Table {
            columns: (printer.columns)(),
            rows: objects.iter().map(|o| (printer.row)(o, now)).collect(),
        },
        None => default_table(objects),
    }
}

/// Upstream's default Table for kinds without a printer: `Name` and `Created At` (RFC 3339).
pub fn default_table(objects: &[Value]) -> Table {
    Table {
        columns: vec![
            Column::new("Name", "string", NAME_DESCRIPTION).format("name"),
            Column::new("Created At", "date", CREATION_TIMESTAMP_DESCRIPTION),
        ],
        rows: objects
            .iter()
            .map(|o| {
                let created = time::timestamp(o.pointer("/metadata/creationTimestamp"))
                    .map(|n| n.div_euclid(1_000_000_000) as i64)
                    .unwrap_or(-62_135_596_800); // Go's zero time, 0001-01-01T00:00:00Z
                Row::new(vec![
                    Value::from(
                        o.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                    ),
                    Value::from(format_rfc3339(created)),
                ])
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
