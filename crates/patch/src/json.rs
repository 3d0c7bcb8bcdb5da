//! RFC 6902 JSON patch and RFC 7386 JSON merge patch, on top of the json-patch crate.

use serde_json::Value;

use crate::PatchError;

/// The most operations one JSON patch may hold (upstream's `MaxJSONPatchOperations`): a bound on
/// the work one request can ask for.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies an RFC 6902 JSON patch (a list of operations) to `doc` and returns the result.
///
/// The operations apply in order; the first one that fails fails the whole patch, and the error
/// names its index, operation and path.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if let Value::Array(ops) = patch {
        if ops.len() > MAX_JSON_PATCH_OPERATIONS {
            return Err(PatchError::TooManyOperations {
                count: ops.len(),
                max: MAX_JSON_PATCH_OPERATIONS,
            });
        }
    }
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|source| PatchError::JsonPatchFormat { source })?;
    let mut result = doc.clone();
    // `patch_unsafe` leaves the document half-patched on error, which is fine on our own copy,
    // and it skips json-patch's undo log (whose replay asserts with `unreachable!`).
    json_patch::patch_unsafe(&mut result, &operations).map_err(|error| {
        let op = operations
            .get(error.operation)
            .map(operation_name)
            .unwrap_or("unknown");
        PatchError::JsonPatchOperation {
            index: error.operation,
            op,
            path: error.path.to_string(),
            reason: error.kind.to_string(),
        }
    })?;
    Ok(result)
}

fn operation_name(operation: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation as Op;
    match operation {
        Op::Add(_) => "add",
        Op::Remove(_) => "remove",
        Op::Replace(_) => "replace",
        Op::Move(_) => "move",
        Op::Copy(_) => "copy",
        Op::Test(_) => "test",
    }
}

/// Applies an RFC 7386 JSON merge patch to `doc`: objects merge key by key, `null` deletes a
/// key, every other value (lists included) replaces what was there.
///
/// The patch must be an object: a Kubernetes object is always one, and upstream rejects
/// anything else.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject {
            what: "merge patch",
        });
    }
    let mut result = doc.clone();
    json_patch::merge(&mut result, patch);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_applies_in_order() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
        ]);
        let result = apply_json_patch(&doc, &patch).unwrap();
        assert_eq!(
            result,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"replicas": 3}})
        );
    }

    #[test]
    fn json_patch_error_names_operation_and_path() {
        let doc = json!({"spec": {}});
        let patch = json!([
            {"op": "add", "path": "/spec/a", "value": 1},
            {"op": "replace", "path": "/spec/missing/x", "value": 1},
        ]);
        let error = apply_json_patch(&doc, &patch).unwrap_err();
        assert_eq!(
            error.to_string(),
            "json patch operation 1 (replace) failed at path \"/spec/missing/x\": path is invalid"
        );
    }

    #[test]
    fn json_patch_failed_test_is_an_error() {
        let doc = json!({"a": 1});
        let patch = json!([{"op": "test", "path": "/a", "value": 2}]);
        let error = apply_json_patch(&doc, &patch).unwrap_err();
        assert!(error.to_string().contains("(test)"), "{error}");
    }

    #[test]
    fn json_patch_must_be_a_list_of_operations() {
        for patch in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
        ] {
            let error = apply_json_patch(&json!({}), &patch).unwrap_err();
            assert!(
                matches!(error, PatchError::JsonPatchFormat { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn json_patch_operation_count_is_capped() {
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "", "value": {}}))
            .collect();
        let error = apply_json_patch(&json!({}), &Value::Array(ops)).unwrap_err();
        assert!(matches!(error, PatchError::TooManyOperations { .. }));
    }

    #[test]
    fn merge_patch_deletes_with_null_and_replaces_lists() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [1, 2]}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"ports": [3]}});
        let result = apply_merge_patch(&doc, &patch).unwrap();
        assert_eq!(
            result,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"ports": [3]}})
        );
    }

    #[test]
    fn merge_patch_must_be_an_object() {
        let error = apply_merge_patch(&json!({}), &json!([1])).unwrap_err();
        assert_eq!(error.to_string(), "merge patch must be a json object");
    }
}
