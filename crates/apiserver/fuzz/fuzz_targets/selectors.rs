//! Selectors: `?labelSelector=` and `?fieldSelector=` values through the parsers the API server calls, and `LabelSelector` objects.
//!
//! Input: the query value (bytes that are not UTF-8 are replaced, as a lossy URL decoding
//! would). Every input is parsed both as a label and as a field selector, the field selector is
//! checked against a few kinds' supported fields (with their legacy renames), and an input that
//! is a JSON object is also read as a `LabelSelector` object.
//!
//! Properties:
//! - no parser panics; matching never panics;
//! - a parsed label selector's string form parses back to an equal selector;
//! - a parsed field selector's string form parses back to the same terms (upstream sorts the raw
//!   terms before parsing them, so their order may change once: the string form of the re-parsed
//!   selector is then stable), and converts to the same fields for every kind; so does the
//!   string form of a converted selector (which holds the renamed fields).

#![no_main]

use std::collections::BTreeMap;

use k3rs_api::fields::FieldOperator;
use k3rs_api::{FieldSelector, LabelSelector, ResourceInfo};
use k3rs_apiserver_fuzz::resources;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// (group, plural) of the kinds whose field selectors the target converts: the ones with their
/// own field lists and legacy names, and one with only the default fields.
const KINDS: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "events"),
    ("events.k8s.io", "events"),
    ("", "secrets"),
    ("", "nodes"),
    ("apps", "replicasets"),
    ("", "configmaps"),
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(selector) = LabelSelector::parse(&text) {
        let shown = selector.to_string();
        let back = LabelSelector::parse(&shown).unwrap_or_else(|err| {
            panic!("label selector {text:?} shows as {shown:?}, which does not parse: {err}")
        });
        assert_eq!(back, selector, "label selector {text:?} shows as {shown:?}");
        let labels = labels_of(&selector);
        let _ = selector.matches(&labels);
    }

    if let Ok(selector) = FieldSelector::parse(&text) {
        let back = assert_shows_as_itself(&selector);
        for resource in kinds() {
            match (selector.for_resource(resource), back.for_resource(resource)) {
                (Ok(converted), Ok(converted_back)) => {
                    assert_eq!(
                        sorted_terms(&converted_back),
                        sorted_terms(&converted),
                        "field selector {text:?} converts differently after a round trip"
                    );
                    assert_shows_as_itself(&converted);
                    let _ = converted.matches_object(resource, &Value::Null);
                }
                (Err(_), Err(_)) => {}
                (converted, converted_back) => panic!(
                    "field selector {text:?} for {}: {converted:?}, after a round trip {converted_back:?}",
                    resource.plural
                ),
            }
        }
    }

    if let Ok(object @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
        if let Ok(selector) = LabelSelector::from_label_selector(&object) {
            let _ = selector.matches(&labels_of(&selector));
            let _ = k3rs_api::selector::format_label_selector(&object);
        }
    }
});

/// The kinds of [`KINDS`].
fn kinds() -> impl Iterator<Item = &'static ResourceInfo> {
    KINDS.iter().filter_map(|&(group, plural)| {
        resources()
            .iter()
            .find(|r| r.group == group && r.plural == plural)
    })
}

/// A label set that sets every key the selector names to its first value.
fn labels_of(selector: &LabelSelector) -> BTreeMap<String, String> {
    selector
        .requirements()
        .iter()
        .map(|r| {
            let value = r.values().first().cloned().unwrap_or_default();
            (r.key().to_owned(), value)
        })
        .collect()
}

/// Asserts that `selector`'s string form parses to the same terms, and that the string form of
/// what it parses to parses to exactly that; returns what the string form parses to.
fn assert_shows_as_itself(selector: &FieldSelector) -> FieldSelector {
    let shown = selector.to_string();
    let back = FieldSelector::parse(&shown).unwrap_or_else(|err| {
        panic!("field selector shows as {shown:?}, which does not parse: {err}")
    });
    assert_eq!(
        sorted_terms(&back),
        sorted_terms(selector),
        "field selector shows as {shown:?}"
    );
    let stable = FieldSelector::parse(&back.to_string())
        .unwrap_or_else(|err| panic!("field selector {back} does not parse again: {err}"));
    assert_eq!(stable, back, "field selector {shown:?} is not stable");
    back
}

/// The terms of a field selector in a canonical order.
fn sorted_terms(selector: &FieldSelector) -> Vec<(&str, bool, &str)> {
    let mut terms: Vec<(&str, bool, &str)> = selector
        .requirements()
        .iter()
        .map(|r| {
            let negated = r.operator == FieldOperator::NotEquals;
            (r.field.as_str(), negated, r.value.as_str())
        })
        .collect();
    terms.sort_unstable();
    terms
}
