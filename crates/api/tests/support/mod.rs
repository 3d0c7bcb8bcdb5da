//! The data-driven snapshot runner shared by this crate's test suites.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Runs `render` on every case of `suite` and compares with (or, under `UPDATE_EXPECT=1`,
/// rewrites) the expected output.
pub(crate) fn check_suite(suite: &str, render: impl Fn(&Value) -> String) {
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
