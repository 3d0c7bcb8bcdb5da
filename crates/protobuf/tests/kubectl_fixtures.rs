//! Bodies captured from real kubectl 1.33 (`tests/fixtures/*.pb`) decode to the JSON beside them (`*.json`).
//!
//! Refresh the expected JSON with `UPDATE_EXPECT=1 cargo test -p k3rs-protobuf --test kubectl_fixtures`
//! and review the diff.

use std::fs;
use std::path::Path;

#[test]
fn kubectl_bodies_decode_to_expected_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pb"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "fixtures missing from {}", dir.display());
    let mut failures = Vec::new();
    for pb in names {
        let body = fs::read(&pb).unwrap();
        let decoded =
            k3rs_protobuf::decode(&body, None).unwrap_or_else(|e| panic!("{}: {e}", pb.display()));
        assert_eq!(
            decoded.unknown_fields,
            Vec::<String>::new(),
            "{}",
            pb.display()
        );
        let actual = serde_json::to_string_pretty(&decoded.object).unwrap() + "\n";
        let expected_path = pb.with_extension("json");
        if update {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{}:\n{actual}", expected_path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "mismatches (UPDATE_EXPECT=1 to accept):\n{}",
        failures.join("\n")
    );
}
