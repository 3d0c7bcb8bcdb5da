//! Objects in the store: their keys, and the metadata the API server owns.
//!
//! Key layout: `/registry/<group or "core">/<resource>/<namespace>/<name>` for namespaced
//! resources, `/registry/<group or "core">/<resource>/<name>` for cluster-scoped ones. The key has
//! no version: every served version of a resource shares one storage, and so do resources that
//! are one resource in two groups (events.k8s.io events are core events). Objects are stored as the
//! JSON the API returns, without `metadata.resourceVersion`, which is the store revision and is
//! filled in on every read.

use k3rs_api::ResourceInfo;
use k3rs_store::KeyValue;
use serde_json::{Map, Value};

use super::error::ApiError;

/// The prefix of every object of `resource` (in `namespace` when given).
pub(crate) fn collection_prefix(resource: &ResourceInfo, namespace: Option<&str>) -> String {
    let (group, plural) = k3rs_api::conversion::storage_resource(resource.group, resource.plural);
    let group = if group.is_empty() { "core" } else { group };
    match namespace {
        Some(ns) => format!("/registry/{group}/{plural}/{ns}/"),
        None => format!("/registry/{group}/{plural}/"),
    }
}

/// The key of one object.
pub(crate) fn object_key(resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    let mut key = collection_prefix(resource, namespace);
    key.push_str(name);
    key
}

/// Reads a stored object, stamping its `resourceVersion`, converting it to the served version
/// and setting the served `apiVersion`/`kind`.
pub(crate) fn decode(resource: &ResourceInfo, kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|err| {
        ApiError::internal(format!("stored object {} is unreadable: {err}", kv.key))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    k3rs_api::conversion::convert(&mut object, resource.kind, resource.api_version);
    if let Some(map) = object.as_object_mut() {
        map.insert("kind".into(), Value::from(resource.kind));
    }
    Ok(object)
}

/// The bytes stored for `object`, in its kind's storage version (its `resourceVersion` is the
/// store's business), written as the API writes it ([`k3rs_api::wire`]).
pub(crate) fn encode(object: &Value) -> Result<Vec<u8>, ApiError> {
    let mut stored = object.clone();
    let kind = meta_type(object, "kind");
    let served = meta_type(object, "apiVersion");
    let storage = k3rs_api::conversion::storage_api_version(served, kind);
    if storage != served {
        k3rs_api::conversion::convert(&mut stored, kind, storage);
    }
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    }
    // Stored as the API writes it, so that lists can copy it (`list.rs`).
    Ok(k3rs_api::wire::to_vec(&stored))
}

/// A top-level string field (`kind`, `apiVersion`), `""` when missing.
fn meta_type<'a>(object: &'a Value, field: &str) -> &'a str {
    object.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Sets `metadata.resourceVersion`.
pub(crate) fn set_resource_version(object: &mut Value, revision: i64) {
    if let Some(meta) = metadata_mut(object) {
        meta.insert("resourceVersion".into(), Value::from(revision.to_string()));
    }
}

/// `metadata`, created when missing (only fails when `object` is not a JSON object).
pub(crate) fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// A string field of `metadata`.
pub(crate) fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// `metadata.resourceVersion` as a revision, when present. A malformed one is a 400, as upstream.
pub(crate) fn resource_version(object: &Value) -> Result<Option<i64>, ApiError> {
    match meta_str(object, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {raw:?}: must be an integer"
            ))
        }),
    }
}

/// `metadata.finalizers`.
pub(crate) fn finalizers(object: &Value) -> Vec<String> {
    object
        .get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A new UID (a random RFC 4122 version 4 UUID).
pub(crate) fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Five characters appended to `generateName`, from upstream's alphabet (no vowels, no lookalikes).
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Now as an RFC 3339 timestamp with second precision, as Kubernetes writes times.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(unix_now())
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`, as Kubernetes writes times.
pub(crate) fn rfc3339(secs: i64) -> String {
    k3rs_api::table::format_rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_406_400), "2026-11-23T04:00:00Z");
    }

    #[test]
    fn uids_and_suffixes() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
        assert_eq!(name_suffix().len(), 5);
    }
}
