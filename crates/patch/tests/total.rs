//! Totality: random JSON objects and patches never make any patch function panic.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys that steer random values into the interesting parts of real schemas and directives.
const KEYS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "containers",
    "initContainers",
    "name",
    "image",
    "env",
    "value",
    "ports",
    "containerPort",
    "volumes",
    "finalizers",
    "labels",
    "strategy",
    "type",
    "conditions",
    "selector",
    "matchLabels",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$setElementOrder/env",
    "$deleteFromPrimitiveList/finalizers",
    "$deleteFromPrimitiveList/args",
    "$setElementOrder",
    "$deleteFromPrimitiveList",
    "op",
    "path",
    "from",
];

const KINDS: &[&str] = &[
    "io.k8s.api.core.v1.Pod",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.Node",
    "io.k8s.api.policy.v1.PodDisruptionBudget",
    "com.example.v1.Unknown",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        (-2.0f64..2.0).prop_map(Value::from),
        prop::sample::select(vec![
            "replace",
            "delete",
            "merge",
            "a",
            "b",
            "name",
            "/spec",
            "/spec/containers/0",
            "/spec/containers/-",
            "",
            "add",
            "remove",
            "move",
            "copy",
            "test",
        ])
        .prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(object),
        ]
    })
}

/// Maps of scalars without lists or directives.
fn plain_object() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(&KEYS[..20]);
    let leaf = prop_oneof![Just(Value::Null), (0i64..3).prop_map(Value::from)];
    let value = leaf.prop_recursive(4, 32, 4, move |inner| {
        prop::collection::vec((keys.clone(), inner), 0..4).prop_map(object)
    });
    prop::collection::vec((prop::sample::select(&KEYS[..20]), value), 0..5).prop_map(object)
}

fn object(entries: Vec<(&'static str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect::<Map<_, _>>(),
    )
}

/// A list element of a merging list: mostly with its merge key, sometimes with a directive.
fn element(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.9, prop::sample::select(vec!["a", "b", "c"])),
        prop::option::weighted(
            0.2,
            prop::sample::select(vec!["delete", "replace", "merge", "x"]),
        ),
        prop::option::of(inner),
        prop::option::weighted(0.1, prop::collection::vec(prop::sample::select(KEYS), 0..3)),
        prop::option::of(prop::sample::select(vec!["1", "2"])),
    )
        .prop_map(|(name, directive, env, retain, value)| {
            let mut map = Map::new();
            if let Some(name) = name {
                map.insert("name".to_owned(), Value::from(name));
            }
            if let Some(directive) = directive {
                map.insert("$patch".to_owned(), Value::from(directive));
            }
            if let Some(env) = env {
                map.insert("env".to_owned(), env);
            }
            if let Some(retain) = retain {
                map.insert("$retainKeys".to_owned(), Value::from(retain));
            }
            if let Some(value) = value {
                map.insert("value".to_owned(), Value::from(value));
            }
            Value::Object(map)
        })
}

/// A pod spec whose lists are mostly merging lists of well-formed elements.
fn pod_spec() -> impl Strategy<Value = Value> {
    let env = prop::collection::vec(element(Just(Value::Null).boxed()), 0..4)
        .prop_map(Value::Array)
        .boxed();
    let containers = prop::collection::vec(element(env), 0..4).prop_map(Value::Array);
    let order =
        prop::collection::vec(element(Just(Value::Null).boxed()), 0..4).prop_map(Value::Array);
    let finalizers = prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c"]).prop_map(Value::from),
        0..4,
    )
    .prop_map(Value::Array);
    (
        prop::sample::subsequence(
            vec![
                "containers",
                "$setElementOrder/containers",
                "finalizers",
                "$setElementOrder/finalizers",
                "$deleteFromPrimitiveList/finalizers",
            ],
            0..=5,
        ),
        containers,
        order,
        finalizers,
    )
        .prop_map(|(keys, containers, order, finalizers)| {
            let mut map = Map::new();
            for key in keys {
                let value = match key {
                    "containers" => containers.clone(),
                    "$setElementOrder/containers" => order.clone(),
                    _ => finalizers.clone(),
                };
                map.insert(key.to_owned(), value);
            }
            Value::Object(map)
        })
}

/// Drops list elements without a name or with a name seen before, at every depth.
fn unique_names(value: Value) -> Value {
    match value {
        Value::Array(list) => {
            let mut seen = std::collections::HashSet::new();
            Value::Array(
                list.into_iter()
                    .filter(|element| match element {
                        Value::Object(map) => map
                            .get("name")
                            .is_some_and(|name| seen.insert(name.to_string())),
                        _ => true,
                    })
                    .map(unique_names)
                    .collect(),
            )
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (key, unique_names(value)))
                .collect(),
        ),
        scalar => scalar,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_input_panics(
        doc in json(),
        patch in json(),
        kind in prop::sample::select(KINDS),
    ) {
        let _ = k3rs_patch::apply_strategic_merge_patch(&doc, &patch, kind);
        let _ = k3rs_patch::apply_merge_patch(&doc, &patch);
        let _ = k3rs_patch::apply_json_patch(&doc, &patch);
        // The interesting strategic cases need both sides to be objects with real fields.
        let wrapped_doc = serde_json::json!({"spec": {"template": {"spec": doc.clone()}}});
        let wrapped_patch = serde_json::json!({"spec": {"template": {"spec": patch.clone()}}});
        let _ = k3rs_patch::apply_strategic_merge_patch(
            &wrapped_doc,
            &wrapped_patch,
            "io.k8s.api.apps.v1.Deployment",
        );
    }

    #[test]
    fn strategic_patch_without_directives_or_lists_is_a_merge_patch(
        doc in plain_object(),
        patch in plain_object(),
    ) {
        // On maps of scalars (no lists, no directives) the two formats agree.
        let strategic =
            k3rs_patch::apply_strategic_merge_patch(&doc, &patch, "io.k8s.api.core.v1.ConfigMap");
        let merge = k3rs_patch::apply_merge_patch(&doc, &patch);
        prop_assert_eq!(strategic.ok(), merge.ok());
    }

    #[test]
    fn no_pod_shaped_input_panics(doc in pod_spec(), patch in pod_spec()) {
        let _ = k3rs_patch::apply_strategic_merge_patch(
            &serde_json::json!({"spec": doc}),
            &serde_json::json!({"spec": patch}),
            "io.k8s.api.core.v1.Pod",
        );
    }

    #[test]
    fn strategic_patch_is_idempotent(doc in pod_spec(), patch in pod_spec()) {
        // A second application may fail where the first did not (a list the object lacked is
        // taken without checking merge keys, like upstream), but must not change anything.
        // Duplicate merge keys are excluded: upstream merges them all into the first match.
        let doc = serde_json::json!({"spec": unique_names(doc)});
        let patch = serde_json::json!({"spec": unique_names(patch)});
        if let Ok(once) = k3rs_patch::apply_strategic_merge_patch(&doc, &patch, "io.k8s.api.core.v1.Pod") {
            let twice = k3rs_patch::apply_strategic_merge_patch(&once, &patch, "io.k8s.api.core.v1.Pod");
            if let Ok(twice) = twice {
                prop_assert_eq!(twice, once);
            }
        }
    }
}
