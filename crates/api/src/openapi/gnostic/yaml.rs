//! JSON values as block YAML for gnostic's `Any.yaml`, readable the same under YAML 1.1 and 1.2.
//!
//! gnostic writes these with go-yaml v3 (block style, four-space indent), and kubectl reads them
//! back with go-yaml v2, a YAML 1.1 parser: there a plain `on`, `y`, `no` is a boolean and
//! `1_000` or `12:30` a number. So a string stays plain only when it cannot be read as anything
//! else under either version (a letter, then letters, digits, `.`, `_`, `/`, `-`, and not one of
//! YAML 1.1's boolean or null words); every other string is double-quoted with escapes that both
//! parsers know. The common case, `x-kubernetes-group-version-kind`, comes out as gnostic
//! writes it: `- group: ""\n  kind: Pod\n  version: v1\n`.

use std::fmt::Write as _;

use serde_json::Value;

/// `value` as a YAML document (ending in a newline).
pub(super) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    node(&mut out, value, 0);
    out
}

/// Writes `value` starting at the cursor; later lines of a collection start at column `column`.
fn node(out: &mut String, value: &Value, column: usize) {
    match value {
        Value::Object(entries) if !entries.is_empty() => {
            for (index, (key, value)) in entries.iter().enumerate() {
                if index > 0 {
                    indent(out, column);
                }
                string(out, key);
                out.push(':');
                match value {
                    Value::Object(m) if !m.is_empty() => nested(out, value, column + 4),
                    Value::Array(a) if !a.is_empty() => nested(out, value, column + 4),
                    _ => {
                        out.push(' ');
                        scalar(out, value);
                        out.push('\n');
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    indent(out, column);
                }
                out.push_str("- ");
                node(out, item, column + 2);
            }
        }
        _ => {
            scalar(out, value);
            out.push('\n');
        }
    }
}

/// A collection under a mapping key: on the next lines, indented.
fn nested(out: &mut String, value: &Value, column: usize) {
    out.push('\n');
    indent(out, column);
    node(out, value, column);
}

fn indent(out: &mut String, column: usize) {
    out.extend(std::iter::repeat_n(' ', column));
}

/// A scalar, or an empty collection in flow style (`{}`, `[]`).
fn scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        // serde_json writes integers as digits and floats in a form both YAML versions read as
        // a float (`2.5`, `1e30`).
        Value::Number(number) => {
            let _ = write!(out, "{number}");
        }
        Value::String(text) => string(out, text),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// YAML 1.1's words for booleans and null, which YAML 1.2 reads as strings (or not all of them).
const AMBIGUOUS_WORDS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
];

fn is_plain_safe(text: &str) -> bool {
    let mut chars = text.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    starts_with_letter
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !AMBIGUOUS_WORDS.contains(&text)
}

fn string(out: &mut String, text: &str) {
    if is_plain_safe(text) {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_printable(c) => out.push(c),
            c if u32::from(c) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08X}", u32::from(c));
            }
        }
    }
    out.push('"');
}

/// What may appear in a double-quoted scalar as itself: YAML's printable set, less the line
/// breaks YAML 1.1 adds (NEL, LS, PS — a quoted break is folded into a space) and the byte order
/// mark, which a reader may drop.
fn is_printable(c: char) -> bool {
    matches!(u32::from(c),
        0x20..=0x7E | 0xA0..=0x2027 | 0x202A..=0xD7FF | 0xE000..=0xFEFE | 0xFF00..=0xFFFD
        | 0x10000..=0x10FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_version_kind_reads_as_gnostic_writes_it() {
        let gvk = json!([{"group": "", "kind": "Pod", "version": "v1"}]);
        assert_eq!(to_yaml(&gvk), "- group: \"\"\n  kind: Pod\n  version: v1\n");
        let nested = json!({"a": {"b": [1, {"c": 2.5, "d": null}], "e": [], "f": {}}, "g": true});
        assert_eq!(
            to_yaml(&nested),
            "a:\n    b:\n        - 1\n        - c: 2.5\n          d: null\n    e: []\n    f: {}\ng: true\n"
        );
        assert_eq!(to_yaml(&json!([[1, 2], "x"])), "- - 1\n  - 2\n- x\n");
        assert_eq!(to_yaml(&json!("atomic")), "atomic\n");
    }

    #[test]
    fn strings_another_reader_could_take_for_something_else_are_quoted() {
        for text in [
            "on",
            "Off",
            "y",
            "N",
            "yes",
            "NO",
            "true",
            "null",
            "",
            "~",
            "1.0",
            "1_000",
            "12:30",
            "0x1F",
            "017",
            "1e3",
            ".inf",
            "-",
            "- a",
            "a: b",
            "a #b",
            "#x",
            "<<",
            "=",
            "@x",
            "*x",
            "!x",
            "%x",
            "`x",
            "'x",
            "\"x",
            "2001-12-14",
            " lead",
            "trail ",
            "a b",
        ] {
            let yaml = to_yaml(&json!(text));
            assert!(yaml.starts_with('"'), "{text:?} came out as {yaml:?}");
        }
        for text in [
            "Pod",
            "apps",
            "v1",
            "io.k8s.api.core.v1.Pod",
            "x-kubernetes-map-type",
            "a_b",
        ] {
            assert_eq!(to_yaml(&json!(text)), format!("{text}\n"));
        }
    }

    #[test]
    fn every_value_reads_back_unchanged() {
        let values = [
            json!({"rule": "self.x == 'a'\n && \"b\"\\", "message": "tab\there\u{1}\u{85}\u{2028}\u{2029}\u{FEFF}\u{10FFFF}"}),
            json!([{"group": "", "kind": "Pod", "version": "v1"}, {"k": ["on", "yes", 3, -4.5, 1e30, false, null]}]),
            json!({"": "", "a b": {"c: d": [[], {}, [[1]]]}, "é": "ü"}),
            json!(18446744073709551615u64),
        ];
        for value in values {
            let yaml = to_yaml(&value);
            let back: Value = serde_yaml_ng::from_str(&yaml)
                .unwrap_or_else(|e| panic!("{yaml:?} does not parse: {e}"));
            assert_eq!(back, value, "{yaml}");
        }
    }
}
