//! Data-driven tests of custom resources against their CRD's structural schema:
//! `testdata/custom/<case>.json` holds `{"schema": …, "object": …}`; `<case>.out` the pruned
//! fields, the object after pruning and defaulting, and the validation errors.
//! `UPDATE_EXPECT=1 cargo test -p k3rs-api --test custom_resources` rewrites the `.out` files.

use k3rs_api::custom::schema;
use serde_json::Value;
use support::check_suite;

mod support;

fn render(case: &Value) -> String {
    let schema_json = &case["schema"];
    let mut object = case["object"].clone();
    let pruned = schema::prune(schema_json, &mut object);
    schema::apply_defaults(schema_json, &mut object);
    let errors = schema::validate(schema_json, &object);
    let mut out = String::new();
    out.push_str("pruned:\n");
    for path in &pruned {
        out.push_str(&format!("  unknown field \"{path}\"\n"));
    }
    out.push_str("object:\n");
    out.push_str(&serde_json::to_string_pretty(&object).expect("json"));
    out.push_str("\nerrors:\n");
    for error in &errors {
        out.push_str(&format!("  {error}\n"));
    }
    out
}

#[test]
fn schema_cases() {
    check_suite("custom", render);
}
