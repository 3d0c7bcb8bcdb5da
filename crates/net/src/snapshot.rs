//! Snapshot checks for the unit tests: expected text in `testdata/`, `UPDATE_EXPECT=1` rewrites it.

use std::path::Path;

/// Compares `actual` with `testdata/<name>`; with `UPDATE_EXPECT` set, writes it there instead.
pub(crate) fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_EXPECT=1 to accept)",
        path.display()
    );
}
