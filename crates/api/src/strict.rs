//! Strict field validation: naming the fields of a request that the kind does not have.

use serde_json::Value;

/// The paths of fields in `input` that are missing from `typed` (the same object after a
/// decode/encode round trip through the kind's type), in upstream's notation
/// (`spec.containers[0].foo`). `null` values are not fields a client set, so they never count.
pub fn unknown_fields(input: &Value, typed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, typed, String::new(), &mut out);
    out
}

fn walk(input: &Value, typed: &Value, path: String, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(given), Value::Object(kept)) => {
            for (key, value) in given {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    Some(kept_value) => walk(value, kept_value, child, out),
                    None if value.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(given), Value::Array(kept)) => {
            for (index, (value, kept_value)) in given.iter().zip(kept).enumerate() {
                walk(value, kept_value, format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin_resources;
    use serde_json::json;

    #[test]
    fn names_fields_the_kind_does_not_have() {
        let pods = builtin_resources()
            .into_iter()
            .find(|r| r.plural == "pods")
            .unwrap();
        let input = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "nonsense": 1},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicyy": "Always"}], "extra": null},
        });
        let typed = (pods.typed)(&input).unwrap();
        assert_eq!(
            unknown_fields(&input, &typed),
            ["metadata.nonsense", "spec.containers[0].imagePullPolicyy"]
        );
        let err = (pods.typed)(&json!({"spec": {"containers": "no"}})).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}
