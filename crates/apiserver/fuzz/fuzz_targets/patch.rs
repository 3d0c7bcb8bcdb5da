//! The patch formats: JSON patch, JSON merge patch and strategic merge patch on arbitrary (object, patch) pairs.
//!
//! Input: one byte that picks the built-in kind whose schema the strategic merge patch follows,
//! then the object and the patch as JSON, separated by the first newline. Every pair goes
//! through all three formats.
//!
//! Properties:
//! - no format panics; a failed patch is an `Err`;
//! - a patched object survives the store (JSON text and back, within serde_json's depth limit);
//! - the empty patch (`{}`, `[]`) is the identity for every format on an object;
//! - a merge patch is idempotent (RFC 7386): applying it twice gives what applying it once gave.

#![no_main]

use k3rs_apiserver_fuzz::{assert_reads_back, resource, split_first, two_documents};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = split_first(data) else {
        return;
    };
    let Some((object, patch)) = two_documents(rest) else {
        return;
    };
    let schema = (resource(selector).schema_name)();

    if let Ok(patched) = k3rs_patch::apply_json_patch(&object, &patch) {
        assert_reads_back("JSON patch result", &patched);
    }

    if let Ok(patched) = k3rs_patch::apply_merge_patch(&object, &patch) {
        assert_reads_back("merge patch result", &patched);
        let twice = k3rs_patch::apply_merge_patch(&patched, &patch)
            .expect("a merge patch that applied once applies again");
        assert_eq!(twice, patched, "merge patch is not idempotent");
    }

    if let Ok(patched) = k3rs_patch::apply_strategic_merge_patch(&object, &patch, &schema) {
        assert_reads_back("strategic merge patch result", &patched);
    }

    if object.is_object() {
        let empty = json!({});
        let same = |result: Result<Value, k3rs_patch::PatchError>, format: &str| match result {
            Ok(result) => assert_eq!(result, object, "an empty {format} changed the object"),
            Err(err) => panic!("an empty {format} failed: {err}"),
        };
        same(
            k3rs_patch::apply_json_patch(&object, &json!([])),
            "JSON patch",
        );
        same(
            k3rs_patch::apply_merge_patch(&object, &empty),
            "merge patch",
        );
        same(
            k3rs_patch::apply_strategic_merge_patch(&object, &empty, &schema),
            "strategic merge patch",
        );
    }
});
