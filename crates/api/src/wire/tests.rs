//! The writer against text kube-apiserver sends for the same values.

use serde_json::json;

use super::*;

const LIST_META_FOR_TEST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

fn text(value: &Value) -> String {
    String::from_utf8(to_vec(value)).unwrap()
}

#[test]
fn every_line_of_the_table_is_read() {
    let source = include_str!("go_layout.txt");
    let field_lines = source.lines().filter(|l| l.starts_with('\t')).count();
    let type_lines = source
        .lines()
        .filter(|l| !l.starts_with(['\t', '#']) && !l.is_empty())
        .count();
    let layout = table();
    assert_eq!(layout.types.len(), type_lines);
    let read: usize = layout.types.iter().map(|t| t.fields.len()).sum();
    assert_eq!(read, field_lines, "a field line the reader skipped");
    for name in ["io.k8s.api.core.v1.Pod", OBJECT_META, LIST_META_FOR_TEST] {
        assert!(GoType::named(name).is_some(), "{name}");
    }
}

#[test]
fn a_status_is_byte_identical_to_upstreams() {
    // kube-apiserver 1.33's answer to creating a ConfigMap that exists.
    let status = json!({
        "apiVersion": "v1", "code": 409, "kind": "Status", "metadata": {},
        "message": "configmaps \"a\" already exists", "reason": "AlreadyExists",
        "details": {"kind": "configmaps", "name": "a"}, "status": "Failure",
    });
    assert_eq!(
        text(&status),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"a\" already exists","reason":"AlreadyExists","details":{"name":"a","kind":"configmaps"},"code":409}"#
    );
}

#[test]
fn objects_follow_go_field_order_and_zero_values() {
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                 "type": "ClusterIP", "clusterIP": "10.43.0.5"},
        "metadata": {"uid": "u", "name": "web", "namespace": "default",
                     "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"b": "2", "a": "1"}},
    });
    assert_eq!(
        text(&service),
        concat!(
            r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"default","#,
            r#""uid":"u","resourceVersion":"7","creationTimestamp":"2026-01-01T00:00:00Z","#,
            r#""labels":{"a":"1","b":"2"}},"spec":{"ports":[{"protocol":"TCP","port":80,"#,
            r#""targetPort":80}],"clusterIP":"10.43.0.5","type":"ClusterIP"},"#,
            r#""status":{"loadBalancer":{}}}"#
        )
    );
    let replica_set =
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"}});
    assert!(
        text(&replica_set).ends_with(r#""status":{"replicas":0}}"#),
        "{}",
        text(&replica_set)
    );
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"}});
    assert!(
        text(&pdb).ends_with(
            r#""status":{"disruptionsAllowed":0,"currentHealthy":0,"desiredHealthy":0,"expectedPods":0}}"#
        ),
        "{}",
        text(&pdb)
    );
}

#[test]
fn omitempty_zeros_go_pointers_and_structs_stay() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "generation": 0},
        "spec": {"hostNetwork": false, "automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "i", "args": []}]},
        "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    let written = text(&pod);
    assert!(!written.contains("hostNetwork"), "{written}");
    assert!(!written.contains("generation"), "{written}");
    assert!(!written.contains("args"), "{written}");
    assert!(
        written.contains(r#""automountServiceAccountToken":false"#),
        "{written}"
    );
    // `resources` is a struct value; a condition's times are `metav1.Time` values.
    assert!(
        written.contains(r#"{"name":"c","image":"i","resources":{}}"#),
        "{written}"
    );
    assert!(
        written.contains(
            r#"{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":null}"#
        ),
        "{written}"
    );
}

#[test]
fn template_metadata_omits_a_zero_creation_timestamp() {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    });
    let written = text(&deployment);
    assert!(
        written.contains(r#""template":{"metadata":{"labels":{"a":"b"}},"spec""#),
        "{written}"
    );
    assert!(written.ends_with(r#""status":{}}"#), "{written}");
}

#[test]
fn custom_resources_and_unknown_keys_are_sorted() {
    let custom = json!({"kind": "CronTab", "apiVersion": "stable.example.com/v1",
                        "spec": {"z": 1, "a": {"y": 2, "b": 3}}, "metadata": {"name": "c", "generation": 1}});
    assert_eq!(
        text(&custom),
        r#"{"apiVersion":"stable.example.com/v1","kind":"CronTab","metadata":{"generation":1,"name":"c"},"spec":{"a":{"b":3,"y":2},"z":1}}"#
    );
    let config_map = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"},
                            "zeta": 1, "alpha": 2, "data": {"k": "v"}});
    assert_eq!(
        text(&config_map),
        r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c"},"data":{"k":"v"},"alpha":2,"zeta":1}"#
    );
}

#[test]
fn discovery_resources_in_go_order() {
    let list = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                      "resources": [{"verbs": ["get"], "kind": "Pod", "namespaced": true,
                                     "singularName": "pod", "name": "pods",
                                     "storageVersionHash": "xPOwRZ+Yhw8=", "shortNames": ["po"]}]});
    assert_eq!(
        text(&list),
        r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get"],"shortNames":["po"],"storageVersionHash":"xPOwRZ+Yhw8="}]}"#
    );
}

#[test]
fn strings_escape_as_go_does() {
    let mut out = Vec::new();
    write_string(&mut out, "a<b>&\"\\\n\u{1}\u{8}\u{2028}é");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#""a\u003cb\u003e\u0026\"\\\n\u0001\b\u2028é""#
    );
}

#[test]
fn normalize_reads_back_what_write_writes() {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"hostNetwork": false, "containers": [{"name": "c"}]}});
    let ty = GoType::of_object(&pod);
    normalize(&mut pod, ty);
    assert_eq!(pod["spec"]["containers"][0]["resources"], json!({}));
    assert!(pod["spec"].get("hostNetwork").is_none());
    assert_eq!(pod["status"], json!({}));
    let again = to_vec(&pod);
    let mut twice = pod.clone();
    normalize(&mut twice, ty);
    assert_eq!(to_vec(&twice), again);
}

#[test]
fn zero_values_of_every_kind_decode_as_the_kind() {
    // What Go writes for an empty object of each kind (`null` lists, zero counters, empty
    // structs) must read back through the kind's typed decoding, as clients decode it.
    for resource in crate::builtin_resources() {
        let ty = GoType::of_kind(resource.api_version, resource.kind);
        assert!(
            ty.is_some(),
            "{} {} has no layout",
            resource.api_version,
            resource.kind
        );
        let mut object = json!({"apiVersion": resource.api_version, "kind": resource.kind,
                                "metadata": {"name": "x"}});
        normalize(&mut object, ty);
        let decoded = match resource.decode(&object) {
            Ok(decoded) => decoded,
            Err(err) => panic!(
                "{} {}: {err}\n{object}",
                resource.api_version, resource.kind
            ),
        };
        // And adds no field the served API version does not have (strict decoding of an object
        // read back, as `kubectl replace` sends it, would refuse it).
        let unknown = crate::strict::unknown_fields(&object, &decoded);
        assert!(
            unknown.is_empty(),
            "{} {}: {unknown:?}",
            resource.api_version,
            resource.kind
        );
    }
}

#[test]
fn fields_written_as_zero_exist_in_the_served_schemas() {
    // The Go sources may be newer than the Kubernetes version served: a field Go always writes
    // but the served schema lacks would come back as an unknown field. Every such field of every
    // type the served OpenAPI document defines must be one of its properties.
    let document = crate::openapi_v2(&crate::builtin_resources(), &[]);
    let definitions = document["definitions"].as_object().expect("definitions");
    let layout = table();
    let mut missing = Vec::new();
    for (name, index) in &layout.by_name {
        let ty = &layout.types[*index];
        let Some(definition) = definitions.get(*name) else {
            continue;
        };
        let properties = definition.get("properties").and_then(Value::as_object);
        for field in &ty.fields {
            let known = properties.is_some_and(|p| p.contains_key(field.name));
            if zero_written(field).is_some() && !known {
                missing.push(format!("{name}.{}", field.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "written as zero but not served: {missing:?}"
    );
}
