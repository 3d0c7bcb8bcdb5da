//! Data-driven snapshot tests of defaulting and validation: `testdata/<suite>/<case>.json` in,
//! `<case>.out` expected; `UPDATE_EXPECT=1 cargo test -p k3rs-api` rewrites the `.out` files.

use k3rs_api::{builtin_resources, ResourceInfo};
use serde_json::Value;
use support::check_suite;

mod support;

fn resource_for(obj: &Value) -> ResourceInfo {
    let api_version = obj["apiVersion"].as_str().expect("case has apiVersion");
    let kind = obj["kind"].as_str().expect("case has kind");
    builtin_resources()
        .into_iter()
        .find(|r| r.api_version == api_version && r.kind == kind)
        .unwrap_or_else(|| panic!("no built-in resource {api_version} {kind}"))
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
