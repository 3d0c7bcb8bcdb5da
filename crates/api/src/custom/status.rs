//! A CRD's status as upstream's naming and establishing controllers keep it: `acceptedNames`,
//! the `NamesAccepted` and `Established` conditions, and `storedVersions`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// Names already served in each group, by the CRD that holds them. CRDs are judged oldest
/// first, so an older CRD keeps its names and a newer one that wants them is refused.
#[derive(Debug, Default)]
pub struct TakenNames {
    /// group → name (plural, singular, short name, kind or list kind) → CRD name.
    groups: HashMap<String, HashMap<String, String>>,
}

impl TakenNames {
    fn holder(&self, group: &str, name: &str) -> Option<&str> {
        self.groups.get(group)?.get(name).map(String::as_str)
    }

    fn take(&mut self, group: &str, names: &[String], crd: &str) {
        let taken = self.groups.entry(group.to_owned()).or_default();
        for name in names {
            taken.entry(name.clone()).or_insert_with(|| crd.to_owned());
        }
    }
}

/// Whether `crd` has the condition `kind` with status `True`.
pub fn condition_is_true(crd: &Value, kind: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some(kind)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// The names the CRD asks for, with upstream's defaults (`singular` is the lower-case kind,
/// `listKind` is `<kind>List`).
pub fn requested_names(crd: &Value) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let text = |key: &str| names.get(key).and_then(Value::as_str).unwrap_or("");
    let kind = text("kind");
    let mut out = Map::new();
    out.insert("plural".into(), json!(text("plural")));
    out.insert(
        "singular".into(),
        json!(match text("singular") {
            "" => kind.to_ascii_lowercase(),
            s => s.to_owned(),
        }),
    );
    for key in ["shortNames", "categories"] {
        if let Some(list) = names
            .get(key)
            .filter(|l| l.as_array().is_some_and(|a| !a.is_empty()))
        {
            out.insert(key.into(), list.clone());
        }
    }
    out.insert("kind".into(), json!(kind));
    out.insert(
        "listKind".into(),
        json!(match text("listKind") {
            "" => format!("{kind}List"),
            s => s.to_owned(),
        }),
    );
    Value::Object(out)
}

fn all_names(names: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["plural", "singular", "kind", "listKind"] {
        if let Some(name) = names
            .get(key)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            out.push(name.to_owned());
        }
    }
    for short in names
        .get("shortNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        out.push(short.to_owned());
    }
    out
}

/// The first name of `names` another CRD of `group` holds, as upstream's reason and message.
fn conflict(names: &Value, group: &str, crd: &str, taken: &TakenNames) -> Option<(String, String)> {
    let clash = |name: &str| {
        taken
            .holder(group, name)
            .is_some_and(|holder| holder != crd)
    };
    let text = |key: &str| names.get(key).and_then(Value::as_str).unwrap_or("");
    for (key, reason) in [
        ("plural", "PluralConflict"),
        ("singular", "SingularConflict"),
    ] {
        if clash(text(key)) {
            return Some((
                reason.into(),
                format!("\"{}\" is already in use", text(key)),
            ));
        }
    }
    for short in names
        .get("shortNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if clash(short) {
            return Some((
                "ShortNamesConflict".into(),
                format!("\"{short}\" is already in use"),
            ));
        }
    }
    for (key, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        if clash(text(key)) {
            return Some((
                reason.into(),
                format!("\"{}\" is already in use", text(key)),
            ));
        }
    }
    None
}

fn condition(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
    })
}

/// Sets condition `new` in `conditions`, keeping the old `lastTransitionTime` when the status
/// did not change.
pub fn set_condition(conditions: &mut Vec<Value>, mut new: Value, now: &str) {
    let kind = new.get("type").cloned();
    let old = conditions
        .iter()
        .position(|c| c.get("type") == kind.as_ref());
    let time = match old {
        Some(i) if conditions[i].get("status") == new.get("status") => conditions[i]
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| json!(now)),
        _ => json!(now),
    };
    if let Some(map) = new.as_object_mut() {
        map.insert("lastTransitionTime".into(), time);
    }
    match old {
        Some(i) => conditions[i] = new,
        None => conditions.push(new),
    }
}

/// The status `crd` should have, judged against the names earlier CRDs hold (which this adds
/// its accepted names to). `now` stamps conditions that change.
pub fn desired_status(crd: &Value, taken: &mut TakenNames, now: &str) -> Value {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let old_status = crd.get("status").cloned().unwrap_or_else(|| json!({}));
    let requested = requested_names(crd);
    let mut conditions: Vec<Value> = old_status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let was_established = condition_is_true(crd, "Established");
    let old_accepted = old_status
        .get("acceptedNames")
        .filter(|n| n.get("plural").is_some_and(|p| p.is_string()))
        .cloned();
    let accepted = match conflict(&requested, group, name, taken) {
        None => {
            set_condition(
                &mut conditions,
                condition("NamesAccepted", true, "NoConflicts", "no conflicts found"),
                now,
            );
            set_condition(
                &mut conditions,
                condition(
                    "Established",
                    true,
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                ),
                now,
            );
            Some(requested)
        }
        Some((reason, message)) => {
            set_condition(
                &mut conditions,
                condition("NamesAccepted", false, &reason, &message),
                now,
            );
            if !was_established {
                set_condition(
                    &mut conditions,
                    condition(
                        "Established",
                        false,
                        "NotAccepted",
                        "not all names are accepted",
                    ),
                    now,
                );
            }
            old_accepted
        }
    };
    if let Some(accepted) = &accepted {
        taken.take(group, &all_names(accepted), name);
    }
    let mut stored: Vec<Value> = old_status
        .get("storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for version in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if version.get("storage").and_then(Value::as_bool) == Some(true) {
            if let Some(v) = version.get("name").filter(|v| !stored.contains(v)) {
                stored.push(v.clone());
            }
        }
    }
    let mut status = Map::new();
    status.insert(
        "acceptedNames".into(),
        accepted.unwrap_or_else(|| json!({"plural": "", "kind": ""})),
    );
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("storedVersions".into(), Value::Array(stored));
    Value::Object(status)
}
