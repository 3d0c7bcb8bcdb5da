//! Upstream's strategic merge patch test cases, run against upstream's test type `mergeItem`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::schema::Catalog;
use crate::{apply_strategic_merge_patch_with, PatchSchema};
use k3rs_api::patch_strategy::FieldStrategy;

const CASES: &str = include_str!("../tests/upstream.yaml");

const fn tag(
    definition: &'static str,
    property: &'static str,
    strategy: &'static str,
    merge_key: &'static str,
) -> FieldStrategy {
    FieldStrategy {
        definition,
        property,
        strategy,
        merge_key,
    }
}

/// The struct tags of upstream's `MergeItem` and `RetainKeysMergeItem` test types.
const STRATEGIES: &[FieldStrategy] = &[
    tag("mergeItem", "mergingList", "merge", "name"),
    tag("mergeItem", "mergingIntList", "merge", ""),
    tag("mergeItem", "mergeItemPtr", "merge", "name"),
    tag("mergeItem", "replacingItem", "replace", ""),
    tag("mergeItem", "retainKeysMap", "retainKeys", ""),
    tag(
        "mergeItem",
        "retainKeysMergingList",
        "merge,retainKeys",
        "name",
    ),
    tag("retainKeysMergeItem", "mergingIntList", "merge", ""),
    tag("retainKeysMergeItem", "mergingList", "merge", "name"),
];

/// The schemas of upstream's test types (its `testdata/swagger-merge-item.json`, reduced to
/// what patching reads).
fn definitions() -> Map<String, Value> {
    let item = json!({"$ref": "#/definitions/mergeItem"});
    let items = json!({"type": "array", "items": item});
    let ints = json!({"type": "array", "items": {"type": "integer"}});
    let string = json!({"type": "string"});
    let map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let definitions = json!({
        "mergeItem": {"type": "object", "properties": {
            "name": string, "value": string, "other": string,
            "mergingList": items, "nonMergingList": items,
            "mergingIntList": ints, "nonMergingIntList": ints,
            // A pointer to a struct in Go, but the cases use it as a merging list.
            "mergeItemPtr": items, "simpleMap": map,
            "replacingItem": {}, "jsonItem": {},
            "retainKeysMap": {"$ref": "#/definitions/retainKeysMergeItem"},
            "retainKeysMergingList": items,
        }},
        "retainKeysMergeItem": {"type": "object", "properties": {
            "name": string, "value": string, "other": string, "simpleMap": map,
            "mergingIntList": ints, "mergingList": items, "nonMergingList": items,
        }},
    });
    match definitions {
        Value::Object(definitions) => definitions,
        _ => unreachable!("a json object literal"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    object: Value,
    patch: Value,
    #[serde(default)]
    expected: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

#[test]
fn upstream_cases() {
    let catalog: &'static Catalog = Box::leak(Box::new(Catalog::new(
        Box::leak(Box::new(definitions())),
        STRATEGIES,
    )));
    let schema: PatchSchema = catalog.schema("mergeItem").unwrap();
    let cases: Vec<Case> = serde_yaml_ng::from_str(CASES).unwrap();
    assert!(cases.len() > 200, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let result = apply_strategic_merge_patch_with(&case.object, &case.patch, schema);
        let ok = match (&result, &case.expected, &case.error) {
            (Ok(value), Some(expected), None) => value == expected,
            (Err(_), None, Some(_)) => true,
            _ => false,
        };
        if !ok {
            let got = match &result {
                Ok(value) => serde_yaml_ng::to_string(value).unwrap(),
                Err(error) => format!("error: {error}\n"),
            };
            failures.push(format!("case {:?}: got\n{got}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} upstream cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
