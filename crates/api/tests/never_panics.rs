//! Property test: no JSON input makes defaulting or validation panic, for any built-in kind.

use k3rs_api::{builtin_resources, UpdateEndpoint};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Keys that steer the code into its interesting branches, mixed with arbitrary ones.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "generateName",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "spec",
    "status",
    "template",
    "containers",
    "initContainers",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "env",
    "valueFrom",
    "fieldRef",
    "volumes",
    "volumeMounts",
    "configMap",
    "secret",
    "hostPath",
    "resources",
    "limits",
    "requests",
    "livenessProbe",
    "httpGet",
    "port",
    "targetPort",
    "nodePort",
    "type",
    "selector",
    "matchLabels",
    "matchExpressions",
    "operator",
    "values",
    "replicas",
    "strategy",
    "rollingUpdate",
    "maxUnavailable",
    "maxSurge",
    "updateStrategy",
    "schedule",
    "jobTemplate",
    "completions",
    "parallelism",
    "backoffLimitPerIndex",
    "podFailurePolicy",
    "rules",
    "onPodConditions",
    "clusterIP",
    "clusterIPs",
    "sessionAffinity",
    "data",
    "binaryData",
    "immutable",
    "http",
    "paths",
    "pathType",
    "backend",
    "service",
    "verbs",
    "roleRef",
    "subjects",
    "apiGroup",
    "versions",
    "storage",
    "served",
    "schema",
    "openAPIV3Schema",
    "properties",
    "items",
    "names",
    "group",
    "hostNetwork",
    "volumeClaimTemplates",
    "capacity",
    "egress",
    "ingress",
    "subsets",
    "spec.limits",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-2.0e9f64..2.0e9).prop_map(|n| json!(n)),
        "[a-zA-Z0-9./:%*@ -]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "",
            "Always",
            "None",
            "ClusterIP",
            "NodePort",
            "RollingUpdate",
            "Indexed",
            "ExternalName",
            "LoadBalancer",
            "In",
            "Exists",
            "1Gi",
            "25%",
            "*/5 * * * *",
            "Prefix",
            "Exact",
            "ServiceAccount",
            "User",
            "object",
            "kubernetes.io/tls"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
            1 => "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn defaulting_and_validation_never_panic(old in arb_json(), new in arb_json(), pick in any::<usize>()) {
        let resources = builtin_resources();
        let resource = &resources[pick % resources.len()];
        let mut defaulted = new.clone();
        k3rs_api::apply_defaults(resource, &mut defaulted);
        let _ = k3rs_api::validate_create(resource, &new);
        let _ = k3rs_api::validate_create(resource, &defaulted);
        let _ = k3rs_api::validate_update(resource, &old, &defaulted);
        let _ = k3rs_api::generation_changes(resource, &old, &new);
        for endpoint in [UpdateEndpoint::Main, UpdateEndpoint::Status] {
            let mut updated = new.clone();
            k3rs_api::prepare_update(resource, endpoint, &old, &mut updated);
        }
        let mut carried = new.clone();
        k3rs_api::defaults::service::carry_over_allocations(&old, &mut carried);
        let _ = k3rs_api::defaults::service::ports_needing_node_port(&new);
        let _ = k3rs_api::defaults::service::needs_health_check_node_port(&new);
    }

    /// The same, with each built-in kind's own `apiVersion`/`kind` and a random `spec`.
    #[test]
    fn typed_objects_never_panic(spec in arb_json(), extra in arb_json(), pick in any::<usize>()) {
        let resources = builtin_resources();
        let resource = &resources[pick % resources.len()];
        let mut obj = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": "x", "namespace": "default"},
            "spec": spec,
        });
        if let (Some(map), Value::Object(extra)) = (obj.as_object_mut(), extra) {
            for (k, v) in extra {
                map.entry(k).or_insert(v);
            }
        }
        let mut defaulted = obj.clone();
        k3rs_api::apply_defaults(resource, &mut defaulted);
        let mut again = defaulted.clone();
        k3rs_api::apply_defaults(resource, &mut again);
        prop_assert_eq!(&defaulted, &again, "defaulting is not idempotent");
        let _ = k3rs_api::validate_create(resource, &defaulted);
        let _ = k3rs_api::validate_update(resource, &obj, &defaulted);
    }
}
