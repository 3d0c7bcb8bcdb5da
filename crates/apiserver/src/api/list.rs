//! Collection verbs: list (with paging and resourceVersion semantics) and deletecollection.

use std::collections::BTreeMap;

use http::{Response, StatusCode};
use k3rs_api::wire::GoType;
use k3rs_api::ResourceInfo;
use k3rs_store::{KeyValue, ListOptions, StoreError};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::objects::{collection_prefix, decode, meta_str};
use super::partial::{self, MetaVersion};
use super::selection::Selection;
use super::{crud, table, Call, Format};
use crate::response::{json as json_response, json_chunks, ResponseBody};

/// The revision a list reads at, from `resourceVersion` and `resourceVersionMatch`.
fn list_revision(call: &Call<'_>) -> Result<Option<i64>, ApiError> {
    let rv = call.query.get("resourceVersion");
    let rv_match = call.query.get("resourceVersionMatch");
    if call.query.get("continue").is_some() {
        if rv.is_some_and(|rv| rv != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        return Ok(None);
    }
    let parse = |raw: &str| {
        raw.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {raw:?}: must be an integer"
            ))
        })
    };
    match (rv, rv_match) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        (Some("0"), Some("Exact")) => Err(ApiError::bad_request(
            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
        )),
        (Some(raw), Some("Exact")) => Ok(Some(parse(raw)?)),
        (Some(raw), None | Some("NotOlderThan")) => {
            let wanted = parse(raw)?;
            let current = call.state.store.current_revision();
            if wanted > current {
                return Err(ApiError::too_large_resource_version(wanted, current));
            }
            Ok(None)
        }
        (Some(_), Some(other)) => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

/// Reads matching objects at one revision: up to `limit` of them, starting at `continue_token`.
/// Returns the objects, the revision, and the continue token of the next page.
pub(crate) async fn collect(
    call: &Call<'_>,
    selection: &Selection,
    limit: Option<usize>,
    continue_token: Option<String>,
    revision: Option<i64>,
) -> Result<(Vec<Value>, i64, Option<String>), ApiError> {
    let mut items = Vec::new();
    let (revision, token) = scan(call, limit, continue_token, revision, |kv| {
        let object = decode(&call.resource, kv)?;
        let selected = selection.matches(&object);
        if selected {
            items.push(object);
        }
        Ok(selected)
    })
    .await?;
    Ok((items, revision, token))
}

/// Reads the collection at one revision, page by page from the store, handing each stored
/// object to `take` (which says whether it took it) until `limit` were taken. Returns the
/// revision and the continue token of the next page.
async fn scan(
    call: &Call<'_>,
    limit: Option<usize>,
    continue_token: Option<String>,
    revision: Option<i64>,
    mut take: impl FnMut(&KeyValue) -> Result<bool, ApiError>,
) -> Result<(i64, Option<String>), ApiError> {
    let prefix = collection_prefix(&call.resource, call.namespace());
    let mut taken = 0;
    let mut token = continue_token;
    let mut at = revision;
    loop {
        let wanted = limit.map(|limit| limit - taken);
        let page = call
            .state
            .store
            .list(
                &prefix,
                ListOptions {
                    limit: wanted,
                    continue_token: token.clone(),
                    revision: if token.is_some() { None } else { at },
                },
            )
            .await
            .map_err(|err| list_error(call, err))?;
        at = Some(page.revision);
        for kv in &page.items {
            if take(kv)? {
                taken += 1;
            }
        }
        token = page.continue_token;
        let full = limit.is_some_and(|limit| taken >= limit);
        if token.is_none() || full {
            return Ok((page.revision, token));
        }
    }
}

/// What each item of a JSON list body is.
#[derive(Clone, Copy, Debug)]
enum Item {
    /// The whole object.
    Object,
    /// The object's `PartialObjectMetadata`.
    Metadata(MetaVersion),
}

/// Writes one stored object as an item of a JSON list body (after a comma unless it is the
/// first), if `selection` takes it.
///
/// Objects are copied field by field as stored (the store holds them as the API writes them,
/// see [`k3rs_api::wire`]): only `metadata` is parsed, to stamp the `resourceVersion` and match
/// labels (a metadata-only item is then just that `metadata`). So a list of many objects never
/// exists as a tree of values, which would take several times the memory of its JSON (and keep
/// it: the allocator rarely hands it back). Objects that need more — a field selector, a
/// version conversion, or stored JSON these shortcuts cannot read — are decoded whole.
fn write_item(
    resource: &ResourceInfo,
    selection: &Selection,
    item: Item,
    kv: &KeyValue,
    out: &mut Vec<u8>,
) -> Result<bool, ApiError> {
    let separator = |out: &mut Vec<u8>| {
        if out.last() != Some(&b'[') {
            out.push(b',');
        }
    };
    let fields: Option<BTreeMap<&str, &RawValue>> = serde_json::from_slice(&kv.value).ok();
    let stored_version = fields
        .as_ref()
        .and_then(|f| f.get("apiVersion"))
        .and_then(|raw| serde_json::from_str::<&str>(raw.get()).ok());
    let converts = k3rs_api::conversion::converts(resource.kind)
        && stored_version.is_some_and(|v| v != resource.api_version);
    if let (Some(fields), false) = (fields, converts) {
        let mut metadata: Map<String, Value> = match fields.get("metadata") {
            Some(raw) => serde_json::from_str(raw.get()).map_err(ApiError::internal)?,
            None => Map::new(),
        };
        if let Some(selected) = selection.matches_metadata(&metadata) {
            if !selected {
                return Ok(false);
            }
            metadata.insert(
                "resourceVersion".into(),
                Value::from(kv.mod_revision.to_string()),
            );
            separator(out);
            if let Item::Metadata(version) = item {
                write_json(out, &partial::from_metadata(metadata.into(), version));
                return Ok(true);
            }
            let ty = GoType::of_kind(resource.api_version, resource.kind);
            let meta_type = ty.and(GoType::named(k3rs_api::wire::OBJECT_META));
            // Go's field order for a built-in kind, whose items have no `kind` and `apiVersion`
            // (Go leaves the empty `TypeMeta` of a list's items out); sorted keys for a custom
            // resource, which has them.
            let mut order: Vec<&str> = match ty {
                Some(ty) => ty.field_names().collect(),
                None => Vec::new(),
            };
            let mut rest: Vec<&str> = ["apiVersion", "kind", "metadata"]
                .into_iter()
                .chain(fields.keys().copied())
                .filter(|key| !order.contains(key))
                .collect();
            rest.sort_unstable();
            rest.dedup();
            order.extend(rest);
            if ty.is_some() {
                order.retain(|key| !matches!(*key, "kind" | "apiVersion"));
            }
            out.push(b'{');
            let mut first = true;
            for key in order {
                let start = out.len();
                if !first {
                    out.push(b',');
                }
                k3rs_api::wire::write_string(out, key);
                out.push(b':');
                match key {
                    "apiVersion" => k3rs_api::wire::write_string(out, resource.api_version),
                    "kind" => k3rs_api::wire::write_string(out, resource.kind),
                    "metadata" => k3rs_api::wire::write_object(out, &metadata, meta_type),
                    other => match fields.get(other) {
                        Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
                        None => {
                            out.truncate(start);
                            continue;
                        }
                    },
                }
                first = false;
            }
            out.push(b'}');
            return Ok(true);
        }
    }
    let mut object = decode(resource, kv)?;
    if !selection.matches(&object) {
        return Ok(false);
    }
    separator(out);
    match item {
        Item::Object => {
            let ty = GoType::of_object(&object);
            if let (Some(_), Some(map)) = (ty, object.as_object_mut()) {
                map.remove("kind");
                map.remove("apiVersion");
            }
            k3rs_api::wire::write(out, &object, ty);
        }
        Item::Metadata(version) => write_json(out, &partial::of(&object, version)),
    }
    Ok(true)
}

/// The Go type of every list's `metadata`.
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// Writes a value as the API does (typed by its `apiVersion` and `kind`).
fn write_json(out: &mut Vec<u8>, value: &Value) {
    k3rs_api::wire::write(out, value, GoType::of_object(value));
}

fn list_error(call: &Call<'_>, err: StoreError) -> ApiError {
    match err {
        StoreError::Compacted {
            requested,
            compacted,
        } => {
            if call.query.get("continue").is_some() {
                ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            } else {
                ApiError::expired(format!(
                    "too old resource version: {requested} ({compacted})"
                ))
            }
        }
        StoreError::InvalidContinue { reason } => {
            ApiError::bad_request(format!("continue key is not valid: {reason}"))
        }
        StoreError::FutureRevision { requested, current } => {
            ApiError::too_large_resource_version(requested, current)
        }
        other => ApiError::internal(other),
    }
}

pub(crate) async fn list(call: &Call<'_>) -> Result<Response<ResponseBody>, ApiError> {
    let selection = Selection::from_query(call)?;
    let limit = call
        .query
        .integer("limit")?
        .filter(|limit| *limit > 0)
        .map(|limit| limit as usize);
    let revision = list_revision(call)?;
    let continue_token = call.query.get("continue").map(str::to_owned);
    let metadata = |revision: i64, token: Option<String>| {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if let (Some(token), Some(map)) = (token, metadata.as_object_mut()) {
            map.insert("continue".into(), Value::from(token));
        }
        metadata
    };
    if call.format == Format::Table {
        let (items, revision, token) =
            collect(call, &selection, limit, continue_token, revision).await?;
        let table = table::table(call, &items, Some(metadata(revision, token)));
        return Ok(json_response(StatusCode::OK, &table));
    }
    // `Format::Metadata` (one object's) never gets here: a list in it is refused before.
    let (list_kind, api_version, item) = match call.format {
        Format::MetadataList(version) => (
            partial::LIST_KIND,
            version.api_version(),
            Item::Metadata(version),
        ),
        _ => (
            call.resource.list_kind,
            call.resource.api_version,
            Item::Object,
        ),
    };
    let mut items = Vec::new();
    items.push(b'[');
    let (revision, token) = scan(call, limit, continue_token, revision, |kv| {
        write_item(&call.resource, &selection, item, kv, &mut items)
    })
    .await?;
    items.push(b']');
    let custom = call.resource.is_custom() && matches!(item, Item::Object);
    let mut metadata = metadata(revision, token);
    // An `UnstructuredList` always carries `continue`, empty on the last page.
    if let (true, Some(map)) = (custom, metadata.as_object_mut()) {
        map.entry("continue").or_insert_with(|| Value::from(""));
    }
    let mut head = Vec::new();
    let write_str = k3rs_api::wire::write_string;
    let mut tail = Vec::new();
    if custom {
        // A custom resource list is an `UnstructuredList`: a map, so its keys come sorted.
        head.extend_from_slice(b"{\"apiVersion\":");
        write_str(&mut head, api_version);
        head.extend_from_slice(b",\"items\":");
        tail.extend_from_slice(b",\"kind\":");
        write_str(&mut tail, list_kind);
        tail.extend_from_slice(b",\"metadata\":");
        k3rs_api::wire::write(&mut tail, &metadata, None);
    } else {
        head.extend_from_slice(b"{\"kind\":");
        write_str(&mut head, list_kind);
        head.extend_from_slice(b",\"apiVersion\":");
        write_str(&mut head, api_version);
        head.extend_from_slice(b",\"metadata\":");
        k3rs_api::wire::write(&mut head, &metadata, GoType::named(LIST_META));
        head.extend_from_slice(b",\"items\":");
    }
    tail.extend_from_slice(b"}\n");
    Ok(json_chunks(
        StatusCode::OK,
        vec![head.into(), items.into(), tail.into()],
        call.format.content_type(),
    ))
}

pub(crate) async fn delete_collection(
    call: &Call<'_>,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let selection = Selection::from_query(call)?;
    let (items, _, _) = collect(call, &selection, None, None, None).await?;
    let names: Vec<(Option<String>, String)> = items
        .iter()
        .filter_map(|object| {
            let name = meta_str(object, "name")?.to_owned();
            Some((meta_str(object, "namespace").map(str::to_owned), name))
        })
        .collect();
    crud::delete_many(call, &names, body).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(group: &str, version: &str, plural: &str) -> std::sync::Arc<ResourceInfo> {
        let resource = k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .expect("the resource is served");
        std::sync::Arc::new(resource)
    }

    fn config_maps() -> std::sync::Arc<ResourceInfo> {
        served("", "v1", "configmaps")
    }

    fn stored(name: &str, color: &str, revision: i64) -> KeyValue {
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns", "labels": {"color": color}},
            "data": {"color": color},
        });
        KeyValue {
            key: format!("/registry/core/configmaps/ns/{name}"),
            value: serde_json::to_vec(&object).unwrap(),
            create_revision: 1,
            mod_revision: revision,
        }
    }

    fn everything(resource: &std::sync::Arc<ResourceInfo>) -> Selection {
        Selection::for_labels(
            resource.clone(),
            k3rs_api::LabelSelector::parse("").unwrap(),
        )
    }

    /// The items `write_item` writes for `stored`, as a JSON array.
    fn items(
        resource: &ResourceInfo,
        selection: &Selection,
        item: Item,
        stored: &[KeyValue],
    ) -> Value {
        let mut out = b"[".to_vec();
        for kv in stored {
            write_item(resource, selection, item, kv, &mut out).unwrap();
        }
        out.push(b']');
        serde_json::from_slice(&out).unwrap()
    }

    /// Metadata-only items hold the stored metadata with the resourceVersion stamped, and
    /// nothing of the object's body; a label selector still picks them.
    #[test]
    fn metadata_items_are_the_metadata_only() {
        let resource = config_maps();
        let red = Selection::for_labels(
            resource.clone(),
            k3rs_api::LabelSelector::parse("color=red").unwrap(),
        );
        let written = items(
            &resource,
            &red,
            Item::Metadata(MetaVersion::V1),
            &[
                stored("a", "red", 4),
                stored("b", "blue", 5),
                stored("c", "red", 6),
            ],
        );
        assert_eq!(
            written,
            json!([
                {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                 "metadata": {"name": "a", "namespace": "ns", "labels": {"color": "red"},
                              "resourceVersion": "4"}},
                {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                 "metadata": {"name": "c", "namespace": "ns", "labels": {"color": "red"},
                              "resourceVersion": "6"}},
            ])
        );
        let objects = items(&resource, &red, Item::Object, &[stored("a", "red", 4)]);
        assert_eq!(objects[0]["data"], json!({"color": "red"}));
        assert_eq!(objects[0]["metadata"]["resourceVersion"], "4");
    }

    /// An object that needs a version conversion is decoded whole, and still answered as
    /// metadata only (with what the conversion put in its metadata).
    #[test]
    fn metadata_items_of_converted_objects() {
        let hpa_v1 = served("autoscaling", "v1", "horizontalpodautoscalers");
        let stored_v2 = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3},
        });
        let kv = KeyValue {
            key: "/registry/autoscaling/horizontalpodautoscalers/ns/web".into(),
            value: serde_json::to_vec(&stored_v2).unwrap(),
            create_revision: 1,
            mod_revision: 9,
        };
        let written = items(
            &hpa_v1,
            &everything(&hpa_v1),
            Item::Metadata(MetaVersion::V1beta1),
            std::slice::from_ref(&kv),
        );
        let whole = decode(&hpa_v1, &kv).unwrap();
        assert_eq!(
            written,
            json!([{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1beta1",
                    "metadata": whole["metadata"]}])
        );
        assert_eq!(whole["metadata"]["resourceVersion"], "9");
    }
}
