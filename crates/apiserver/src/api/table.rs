//! Server-side `Table` output for `kubectl get`: the printers of `k3rs-api`, plus what only the
//! server knows — list metadata, the embedded objects (`includeObject`), and `noHeaders`.

use std::time::SystemTime;

use k3rs_api::ResourceInfo;
use serde_json::{json, Value};

use super::partial::{self, MetaVersion};
use super::Call;

/// The `meta.k8s.io/v1` Table of `objects` for a request, with the list's metadata when it is a
/// list.
pub(crate) fn table(call: &Call<'_>, objects: &[Value], list_metadata: Option<Value>) -> Value {
    table_of(
        &call.resource,
        &TableOptions {
            include: call.query.get("includeObject").map(str::to_owned),
            no_headers: call.query.flag("noHeaders"),
        },
        objects,
        list_metadata,
    )
}

/// The Table parameters of a request.
#[derive(Clone, Debug, Default)]
pub(crate) struct TableOptions {
    /// `includeObject`: `None`, `Metadata` (the default) or `Object`.
    pub(crate) include: Option<String>,
    /// `noHeaders`: leave out the column definitions (watch events after the first).
    pub(crate) no_headers: bool,
}

/// The Table of `objects` of `resource`.
pub(crate) fn table_of(
    resource: &ResourceInfo,
    options: &TableOptions,
    objects: &[Value],
    list_metadata: Option<Value>,
) -> Value {
    let printed = k3rs_api::table_for(resource, objects, SystemTime::now());
    let mut table = printed.to_json();
    let include = options.include.as_deref().unwrap_or("Metadata");
    if let Some(rows) = table.get_mut("rows").and_then(Value::as_array_mut) {
        for (row, object) in rows.iter_mut().zip(objects) {
            let embedded = match include {
                "None" => continue,
                "Object" => object.clone(),
                _ => partial::of(object, MetaVersion::V1),
            };
            if let Some(row) = row.as_object_mut() {
                row.insert("object".into(), embedded);
            }
        }
    }
    if let Some(map) = table.as_object_mut() {
        map.insert(
            "metadata".into(),
            list_metadata.unwrap_or_else(|| json!({})),
        );
        if options.no_headers {
            map.remove("columnDefinitions");
        }
    }
    table
}
