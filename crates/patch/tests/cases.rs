//! Runs the data-driven patch cases in `cases.yaml`; `UPDATE_EXPECT=1` rewrites their outcomes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases.yaml");

/// The comment the file starts with; kept when the file is rewritten.
const HEADER: &str = "\
# Patch cases: object + patch -> expected object (or an error containing the given text).
# `type` is strategic (default), merge or json; `kind` is the OpenAPI definition of a strategic
# merge patch's kind. Behaviour follows upstream's k8s.io/apimachinery strategicpatch (its
# documented tests and what kubectl sends). Refresh expectations with UPDATE_EXPECT=1 (this
# rewrites the file in a canonical layout, without these comments: review the diff).
";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PatchType {
    #[default]
    Strategic,
    Merge,
    Json,
}

impl PatchType {
    fn is_strategic(&self) -> bool {
        *self == PatchType::Strategic
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(
        rename = "type",
        default,
        skip_serializing_if = "PatchType::is_strategic"
    )]
    patch_type: PatchType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    object: Value,
    patch: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn run(case: &Case) -> Result<Value, String> {
    let result = match case.patch_type {
        PatchType::Strategic => k3rs_patch::apply_strategic_merge_patch(
            &case.object,
            &case.patch,
            case.kind.as_deref().unwrap_or_default(),
        ),
        PatchType::Merge => k3rs_patch::apply_merge_patch(&case.object, &case.patch),
        PatchType::Json => k3rs_patch::apply_json_patch(&case.object, &case.patch),
    };
    result.map_err(|error| error.to_string())
}

#[test]
fn patch_cases() {
    let text = std::fs::read_to_string(CASES).unwrap();
    let mut cases: Vec<Case> = serde_yaml_ng::from_str(&text).unwrap();
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for case in &mut cases {
        assert!(
            case.expected.is_some() != case.error.is_some() || update,
            "case {:?}: give exactly one of expected and error",
            case.name
        );
        let actual = run(case);
        let matches = match (&actual, &case.expected, &case.error) {
            (Ok(value), Some(expected), None) => value == expected,
            (Err(message), None, Some(expected)) => message == expected,
            _ => false,
        };
        if matches {
            continue;
        }
        if update {
            (case.expected, case.error) = match actual {
                Ok(value) => (Some(value), None),
                Err(message) => (None, Some(message)),
            };
        } else {
            let actual = match actual {
                Ok(value) => serde_yaml_ng::to_string(&value).unwrap(),
                Err(message) => format!("error: {message}\n"),
            };
            failures.push(format!("case {:?}: got\n{actual}", case.name));
        }
    }
    if update {
        let text = format!("{HEADER}{}", serde_yaml_ng::to_string(&cases).unwrap());
        std::fs::write(CASES, text).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
