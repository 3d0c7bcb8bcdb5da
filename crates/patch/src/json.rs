//! RFC 6902 JSON patch and RFC 7386 JSON merge patch, on top of the json-patch crate.

use serde_json::Value;

use crate::PatchError;

/// The most operations one JSON patch may hold (upstream's `maxJSONPatchOperations`): a bound on
/// the work one request can ask for.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes (of JSON text) the `copy` operations of one JSON patch may copy in total.
/// Without it, `copy /spec/args -> /spec/args/-` doubles a list per operation and a few dozen
/// operations exhaust memory. The bound is the API's request body cap: no legitimate patch
/// copies more than a request could have carried.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The deepest nesting (of objects and lists) a JSON patch may produce: serde_json's parse
/// limit, so a patched object can always be read back from the store. Also what keeps the
/// recursive code after the patch (clone, compare, serialize, drop) clear of the stack limit.
pub const MAX_JSON_DEPTH: usize = 128;

/// Applies an RFC 6902 JSON patch (a list of operations) to `doc` and returns the result.
///
/// The operations apply in order; the first one that fails fails the whole patch, and the error
/// names its index, operation and path. Bounded work: at most [`MAX_JSON_PATCH_OPERATIONS`]
/// operations, [`MAX_JSON_PATCH_COPY_BYTES`] copied, and a result at most [`MAX_JSON_DEPTH`]
/// deep.
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
    let mut copied = 0;
    // An upper bound of the result's depth, kept cheaply per operation; measured exactly (and
    // reset) only when it passes the limit.
    let mut depth_bound = depth(&result);
    for (index, operation) in operations.iter().enumerate() {
        use json_patch::PatchOperation as Op;
        let placed_depth = match operation {
            Op::Add(op) => op.path.count() + depth(&op.value),
            Op::Replace(op) => op.path.count() + depth(&op.value),
            Op::Move(op) => op.path.count() + depth_bound.saturating_sub(op.from.count()),
            Op::Copy(op) => {
                let budget = MAX_JSON_PATCH_COPY_BYTES - copied;
                copied += result
                    .pointer(op.from.as_str())
                    .map_or(0, |value| json_size(value, budget));
                if copied > MAX_JSON_PATCH_COPY_BYTES {
                    return Err(PatchError::CopyTooLarge {
                        index,
                        path: op.path.to_string(),
                        max: MAX_JSON_PATCH_COPY_BYTES,
                    });
                }
                op.path.count() + depth_bound.saturating_sub(op.from.count())
            }
            Op::Remove(_) | Op::Test(_) => 0,
        };
        // `patch_unsafe` leaves the document half-patched on error, which is fine on our own
        // copy, and it skips json-patch's undo log (whose replay asserts with `unreachable!`).
        json_patch::patch_unsafe(&mut result, std::slice::from_ref(operation)).map_err(
            |error| PatchError::JsonPatchOperation {
                index,
                op: operation_name(operation),
                path: error.path.to_string(),
                reason: error.kind.to_string(),
            },
        )?;
        depth_bound = depth_bound.max(placed_depth);
        if depth_bound > MAX_JSON_DEPTH {
            depth_bound = depth(&result);
            if depth_bound > MAX_JSON_DEPTH {
                dismantle(result);
                return Err(PatchError::TooDeep {
                    index,
                    path: operation.path().to_string(),
                    max: MAX_JSON_DEPTH,
                });
            }
        }
    }
    Ok(result)
}

/// How deeply `value` nests objects and lists (a scalar is 0), without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(list) => Box::new(list.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// Roughly how many bytes `value` takes as JSON text, counting no further than past `budget`.
fn json_size(value: &Value, budget: usize) -> usize {
    let mut size = 0;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        size += match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(string) => string.len() + 2,
            Value::Array(list) => {
                stack.extend(list.iter());
                2 + list.len()
            }
            Value::Object(map) => {
                for (key, value) in map {
                    size += key.len() + 4;
                    stack.push(value);
                }
                2
            }
        };
        if size > budget {
            break;
        }
    }
    size
}

/// Drops a value without recursion: dropping a too-deep value recursively could overflow the
/// stack.
fn dismantle(value: Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(list) => stack.extend(list),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, value)| value)),
            _ => {}
        }
    }
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
    fn json_patch_copy_cannot_blow_up() {
        let doc = json!({"spec": {"args": ["0123456789abcdef0123456789abcdef"]}});
        let ops: Vec<Value> = (0..40)
            .map(|_| json!({"op": "copy", "from": "/spec/args", "path": "/spec/args/-"}))
            .collect();
        let error = apply_json_patch(&doc, &Value::Array(ops)).unwrap_err();
        assert!(
            matches!(error, PatchError::CopyTooLarge { index, .. } if index > 10),
            "{error}"
        );
    }

    #[test]
    fn json_patch_cannot_nest_deeper_than_the_store_can_read() {
        // Each copy of the object into itself nests it one level deeper.
        let doc = json!({"a": {}});
        let ops: Vec<Value> = (0..200)
            .map(|_| json!({"op": "copy", "from": "/a", "path": "/a/a"}))
            .collect();
        let error = apply_json_patch(&doc, &Value::Array(ops)).unwrap_err();
        assert!(matches!(error, PatchError::TooDeep { .. }), "{error}");
        // A chain moved under itself, one level per operation.
        let mut ops = vec![json!({"op": "add", "path": "/b", "value": {}})];
        for _ in 0..200 {
            ops.push(json!({"op": "move", "from": "/a", "path": "/b/a"}));
            ops.push(json!({"op": "move", "from": "/b", "path": "/a"}));
            ops.push(json!({"op": "add", "path": "/b", "value": {}}));
        }
        let error = apply_json_patch(&doc, &Value::Array(ops)).unwrap_err();
        assert!(matches!(error, PatchError::TooDeep { .. }), "{error}");
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
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
