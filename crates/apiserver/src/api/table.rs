//! Server-side `Table` output for `kubectl get`: columns and one row per object.

use serde_json::{json, Value};

use k3rs_api::ResourceInfo;

use super::Call;

/// The `meta.k8s.io/v1` Table of `objects` for a request, with the list's metadata when it is a
/// list.
pub(crate) fn table(call: &Call<'_>, objects: &[Value], list_metadata: Option<Value>) -> Value {
    table_of(
        &call.resource,
        call.query.get("includeObject"),
        objects,
        list_metadata,
    )
}

/// The Table of `objects` of `resource`; `include` is the `includeObject` parameter.
pub(crate) fn table_of(
    _resource: &ResourceInfo,
    include: Option<&str>,
    objects: &[Value],
    list_metadata: Option<Value>,
) -> Value {
    let include = include.unwrap_or("Metadata");
    // Custom resources: their CRD's printer columns.
    if let Some(table) = super::crd::table(_resource, include, objects, list_metadata.clone()) {
        return table;
    }
    let columns = json!([
        {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0},
        {"name": "Created At", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "priority": 0},
    ]);
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let meta = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let cells = json!([
                meta.get("name").cloned().unwrap_or(Value::Null),
                meta.get("creationTimestamp")
                    .cloned()
                    .unwrap_or(Value::Null),
            ]);
            let mut row = json!({"cells": cells});
            let embedded = match include {
                "None" => None,
                "Object" => Some(object.clone()),
                _ => Some(json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                })),
            };
            if let (Some(embedded), Some(map)) = (embedded, row.as_object_mut()) {
                map.insert("object".into(), embedded);
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata.unwrap_or_else(|| json!({})),
        "columnDefinitions": columns,
        "rows": rows,
    })
}
