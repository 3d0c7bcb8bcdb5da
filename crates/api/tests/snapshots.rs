//! Data-driven snapshot tests of defaulting and validation: `testdata/<suite>/<case>.json` in,
//! `<case>.out` expected; `UPDATE_EXPECT=1 cargo test -p k3rs-api` rewrites the `.out` files.

use std::path::{Path, PathBuf};

use k3rs_api::{builtin_resources, ResourceInfo};
use serde_json::Value;

fn resource_for(obj: &Value) -> ResourceInfo {
    let api_version = obj["apiVersion"].as_str().expect("case has apiVersion");
    let kind = obj["kind"].as_str().expect("case has kind");
    builtin_resources()
        .into_iter()
        .find(|r| r.api_version == api_version && r.kind == kind)
        .unwrap_or_else(|| panic!("no built-in resource {api_version} {kind}"))
}

/// Runs `render` on every case of `suite` and compares with (or, under `UPDATE_EXPECT=1`,
/// rewrites) the expected output.
fn check_suite(suite: &str, render: impl Fn(&Value) -> String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(suite);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let input: Value = serde_json::from_str(&std::fs::read_to_string(case).expect("read case"))
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

#[test]
fn defaults() {
    check_suite("defaults", |input| {
        let mut obj = input.clone();
        k3rs_api::apply_defaults(&resource_for(input), &mut obj);
        // Defaulting twice changes nothing.
        let mut again = obj.clone();
        k3rs_api::apply_defaults(&resource_for(input), &mut again);
        assert_eq!(obj, again, "defaulting is not idempotent");
        serde_json::to_string_pretty(&obj).expect("json") + "\n"
    });
}

/// A validation case is an object (validated as created) or `{"old": …, "new": …}` (validated
/// as an update); both are defaulted first, as the API server does.
#[test]
fn validation() {
    check_suite("validation", |input| {
        let defaulted = |obj: &Value| {
            let mut obj = obj.clone();
            k3rs_api::apply_defaults(&resource_for(&obj), &mut obj);
            obj
        };
        let errors = match (input.get("old"), input.get("new")) {
            (Some(old), Some(new)) => {
                k3rs_api::validate_update(&resource_for(new), &defaulted(old), &defaulted(new))
            }
            _ => k3rs_api::validate_create(&resource_for(input), &defaulted(input)),
        };
        if errors.is_empty() {
            return "valid\n".to_owned();
        }
        errors.iter().map(|e| format!("{e}\n")).collect()
    });
}
