//! Data-driven tests of custom resources against their CRD's structural schema:
//! `testdata/custom/<case>.json` holds `{"schema": …, "object": …}`; `<case>.out` the pruned
//! fields, the object after pruning and defaulting, and the validation errors.
//! `UPDATE_EXPECT=1 cargo test -p k3rs-api --test custom_resources` rewrites the `.out` files.

use std::path::{Path, PathBuf};

use k3rs_api::custom::schema;
use serde_json::Value;

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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/custom");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata/custom")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let input: Value = serde_json::from_str(&std::fs::read_to_string(case).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let actual = render(&input);
        let out = case.with_extension("out");
        if update {
            std::fs::write(&out, &actual).expect("write expectation");
            continue;
        }
        let expected = std::fs::read_to_string(&out).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "--- {}\nexpected:\n{expected}\nactual:\n{actual}",
                out.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (UPDATE_EXPECT=1 to accept):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
