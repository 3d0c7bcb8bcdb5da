//! `metadata.managedFields`: who owns which fields, read from and written to an object.

use serde_json::{json, Map, Value};

use super::fieldpath::{FieldsV1Error, Set};

/// Upstream keeps at most this many `Update` entries; older ones merge into one.
const MAX_UPDATE_MANAGERS: usize = 10;

/// The entry older `Update` managers are folded into.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// `Apply` (server-side apply) or `Update` (every other write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One manager's fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) operation: Operation,
    pub(crate) api_version: String,
    pub(crate) time: Option<String>,
    pub(crate) subresource: String,
    pub(crate) set: Set,
}

impl Entry {
    /// Whether `self` and `other` are the same manager: same name, operation and subresource,
    /// and for `Update` the same API version (an applier keeps its entry across versions).
    pub(crate) fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// How upstream names a manager in a conflict: `"name"`, `"name" with subresource "s"`,
    /// and for updaters `... using apps/v1`.
    pub(crate) fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// `metadata.managedFields` that cannot be read (the list is then dropped, as upstream drops
/// a stored list it cannot decode).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManagedFieldsError {
    #[error("metadata.managedFields must be a list")]
    NotAList,
    #[error("managed fields entry {index}: operation must be `Apply` or `Update`")]
    Operation { index: usize },
    #[error("managed fields entry {index}: apiVersion must not be empty")]
    NoApiVersion { index: usize },
    #[error("missing fieldsType in managed fields entry {index}")]
    NoFieldsType { index: usize },
    #[error("invalid fieldsType {found:?} in managed fields entry {index}")]
    FieldsType { index: usize, found: String },
    #[error("managed fields entry {index}: {source}")]
    Fields {
        index: usize,
        #[source]
        source: FieldsV1Error,
    },
}

/// Every manager of an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ManagedFields {
    pub(crate) entries: Vec<Entry>,
}

impl ManagedFields {
    /// Reads `metadata.managedFields`; absent, null or empty is an empty list.
    pub(crate) fn decode(object: &Value) -> Result<ManagedFields, ManagedFieldsError> {
        let Some(list) = object.pointer("/metadata/managedFields") else {
            return Ok(ManagedFields::default());
        };
        let list = match list {
            Value::Null => return Ok(ManagedFields::default()),
            Value::Array(list) => list,
            _ => return Err(ManagedFieldsError::NotAList),
        };
        let mut out = ManagedFields::default();
        for (index, raw) in list.iter().enumerate() {
            let text = |name: &str| raw.get(name).and_then(Value::as_str).unwrap_or("");
            let operation = match text("operation") {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return Err(ManagedFieldsError::Operation { index }),
            };
            if text("apiVersion").is_empty() {
                return Err(ManagedFieldsError::NoApiVersion { index });
            }
            match text("fieldsType") {
                "FieldsV1" => {}
                "" => return Err(ManagedFieldsError::NoFieldsType { index }),
                other => {
                    return Err(ManagedFieldsError::FieldsType {
                        index,
                        found: other.to_owned(),
                    })
                }
            }
            let set = match raw.get("fieldsV1") {
                None | Some(Value::Null) => Set::new(),
                Some(fields) => Set::from_fields_v1(fields)
                    .map_err(|source| ManagedFieldsError::Fields { index, source })?,
            };
            let entry = Entry {
                manager: text("manager").to_owned(),
                operation,
                api_version: text("apiVersion").to_owned(),
                time: raw.get("time").and_then(Value::as_str).map(str::to_owned),
                subresource: text("subresource").to_owned(),
                set,
            };
            match out.entries.iter_mut().find(|e| e.same_manager(&entry)) {
                Some(existing) => existing.set = existing.set.union(&entry.set),
                None => out.entries.push(entry),
            }
        }
        Ok(out)
    }

    /// The entry of `who`, if it has one.
    pub(crate) fn get(&self, who: &Entry) -> Option<&Entry> {
        self.entries.iter().find(|e| e.same_manager(who))
    }

    /// Replaces (or adds) the entry of the same manager as `entry`.
    pub(crate) fn put(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|e| e.same_manager(&entry)) {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }

    /// Drops entries that own nothing, and folds the oldest `Update` entries into
    /// `ancient-changes` when there are more than upstream keeps.
    pub(crate) fn tidy(&mut self) {
        self.entries.retain(|e| !e.set.is_empty());
        let mut updates: Vec<usize> = (0..self.entries.len())
            .filter(|&i| {
                self.entries[i].operation == Operation::Update
                    && self.entries[i].manager != ANCIENT_CHANGES
            })
            .collect();
        let has_ancient = self.entries.iter().any(|e| e.manager == ANCIENT_CHANGES);
        // The ancient-changes entry takes one of the places.
        let keep = MAX_UPDATE_MANAGERS - 1;
        if updates.len() + usize::from(has_ancient) <= MAX_UPDATE_MANAGERS {
            return;
        }
        updates.sort_by(|&a, &b| self.entries[a].time.cmp(&self.entries[b].time));
        let fold: Vec<usize> = updates[..updates.len() - keep].to_vec();
        let mut ancient = self
            .entries
            .iter()
            .find(|e| e.manager == ANCIENT_CHANGES)
            .cloned()
            .unwrap_or_else(|| Entry {
                manager: ANCIENT_CHANGES.to_owned(),
                operation: Operation::Update,
                api_version: self.entries[fold[0]].api_version.clone(),
                time: None,
                subresource: String::new(),
                set: Set::new(),
            });
        for &i in &fold {
            ancient.set = ancient.set.union(&self.entries[i].set);
            ancient.time = ancient.time.clone().max(self.entries[i].time.clone());
        }
        let mut index = 0;
        self.entries.retain(|e| {
            let folded = fold.contains(&index) || e.manager == ANCIENT_CHANGES;
            index += 1;
            !folded
        });
        self.entries.push(ancient);
    }

    /// Writes the entries to `metadata.managedFields` in upstream's order (appliers first, then
    /// by time, manager, API version and subresource); no entries removes the field.
    pub(crate) fn encode(&self, object: &mut Value) {
        let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        if self.entries.is_empty() {
            metadata.remove("managedFields");
            return;
        }
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by(|a, b| {
            (
                a.operation,
                &a.time,
                &a.manager,
                &a.api_version,
                &a.subresource,
            )
                .cmp(&(
                    b.operation,
                    &b.time,
                    &b.manager,
                    &b.api_version,
                    &b.subresource,
                ))
        });
        let list: Vec<Value> = entries
            .into_iter()
            .map(|entry| {
                let mut out = Map::new();
                out.insert("manager".into(), json!(entry.manager));
                out.insert("operation".into(), json!(entry.operation.as_str()));
                out.insert("apiVersion".into(), json!(entry.api_version));
                if let Some(time) = &entry.time {
                    out.insert("time".into(), json!(time));
                }
                out.insert("fieldsType".into(), json!("FieldsV1"));
                out.insert("fieldsV1".into(), entry.set.to_fields_v1());
                if !entry.subresource.is_empty() {
                    out.insert("subresource".into(), json!(entry.subresource));
                }
                Value::Object(out)
            })
            .collect();
        metadata.insert("managedFields".into(), Value::Array(list));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: Operation, time: &str) -> Entry {
        let mut set = Set::new();
        set.insert(&[super::super::fieldpath::PathElement::Field(
            manager.to_owned(),
        )]);
        Entry {
            manager: manager.to_owned(),
            operation,
            api_version: "v1".to_owned(),
            time: Some(time.to_owned()),
            subresource: String::new(),
            set,
        }
    }

    #[test]
    fn round_trips_and_sorts_like_upstream() {
        let mut managed = ManagedFields::default();
        managed.put(entry("b", Operation::Update, "2026-01-01T00:00:02Z"));
        managed.put(entry("a", Operation::Update, "2026-01-01T00:00:03Z"));
        managed.put(entry("kubectl", Operation::Apply, "2026-01-01T00:00:09Z"));
        let mut object = json!({"metadata": {}});
        managed.encode(&mut object);
        let names: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["kubectl", "b", "a"]);
        let decoded = ManagedFields::decode(&object).unwrap();
        assert_eq!(decoded.entries.len(), 3);
        assert!(decoded.get(&entry("b", Operation::Update, "")).is_some());
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            json!({"metadata": {"managedFields": {}}}),
            json!({"metadata": {"managedFields": [{}]}}),
            json!({"metadata": {"managedFields": [{"operation": "Apply", "apiVersion": "v1"}]}}),
            json!({"metadata": {"managedFields": [{"operation": "Apply", "apiVersion": "v1",
                "fieldsType": "FieldsV2"}]}}),
            json!({"metadata": {"managedFields": [{"operation": "Update", "apiVersion": "v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"x": {}}}]}}),
        ] {
            assert!(ManagedFields::decode(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn folds_old_updaters_into_ancient_changes() {
        let mut managed = ManagedFields::default();
        for i in 0..12 {
            managed.put(entry(
                &format!("m{i:02}"),
                Operation::Update,
                &format!("2026-01-01T00:00:{i:02}Z"),
            ));
        }
        managed.tidy();
        assert_eq!(managed.entries.len(), MAX_UPDATE_MANAGERS);
        let ancient = managed
            .entries
            .iter()
            .find(|e| e.manager == ANCIENT_CHANGES)
            .unwrap();
        assert_eq!(ancient.set.paths().len(), 3);
        assert!(managed.entries.iter().all(|e| e.manager != "m00"));
        assert!(managed.entries.iter().any(|e| e.manager == "m11"));
    }
}
