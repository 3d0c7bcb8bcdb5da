//! Helpers shared by the fuzz targets in `fuzz_targets/`: splitting an input into its parts,
//! picking a built-in resource from a byte, and the checks every target makes of the JSON it
//! gets back.
//!
//! The targets feed the API server's input paths — request body decoders, the patch engine,
//! server-side apply, selector parsers — with what libFuzzer makes of the seed inputs in
//! `corpus/<target>/`. A panic or a failed assertion is a finding: libFuzzer writes the input to
//! `artifacts/<target>/` and `cargo xtask fuzz` fails with its path.
//!
//! This crate never runs in the API server; it only calls the libraries the server calls, with
//! the same arguments the server passes.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use k3rs_api::ResourceInfo;
use serde_json::Value;

/// Every built-in resource, built once per process (the table is rebuilt on every call of
/// `builtin_resources`, too slow to do per input).
pub fn resources() -> &'static [ResourceInfo] {
    static RESOURCES: OnceLock<Vec<ResourceInfo>> = OnceLock::new();
    RESOURCES.get_or_init(k3rs_api::builtin_resources)
}

/// The built-in resource that `selector` picks (any byte picks one).
pub fn resource(selector: u8) -> &'static ResourceInfo {
    let all = resources();
    &all[usize::from(selector) % all.len()]
}

/// `data` as its first byte (which targets use to choose a variant: a resource, a schema, flags)
/// and the rest; `None` for an empty input.
pub fn split_first(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}

/// The two JSON documents of `data`, separated by its first newline; `None` unless both parse.
/// Seed inputs keep each document on one line, so they stay readable and editable.
pub fn two_documents(data: &[u8]) -> Option<(Value, Value)> {
    let newline = data.iter().position(|&b| b == b'\n')?;
    let first = serde_json::from_slice(&data[..newline]).ok()?;
    let second = serde_json::from_slice(&data[newline + 1..]).ok()?;
    Some((first, second))
}

/// Asserts that `value` survives being stored: the API server writes objects as JSON text and
/// reads them back with serde_json, whose parser refuses nesting deeper than 128 levels. A value
/// that serializes but does not parse back would be an object the server can write and never
/// read again.
pub fn assert_reads_back(what: &str, value: &Value) {
    let text = serde_json::to_vec(value).expect("a JSON value always serializes");
    match serde_json::from_slice::<Value>(&text) {
        Ok(back) => assert!(
            same_json(&back, value),
            "{what}: JSON text round trip changed the value: {value} became {back}"
        ),
        Err(err) => panic!("{what}: the value serializes but does not parse back: {err}"),
    }
}

/// Equality of JSON values, except that floating-point numbers need only agree to within a few
/// units in the last place: serde_json (without its `float_roundtrip` feature, which k3rs does
/// not enable) parses decimal text with a fast algorithm that may be off by one unit.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_json(x, y)))
        }
        _ => a == b,
    }
}
