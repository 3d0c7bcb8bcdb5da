//! Objects encoded by k8s-pb's prost types (an encoder independent of our schema table) decode to
//! the JSON Go would write; malformed bodies give errors, never panics; every built-in kind of
//! the API server has a message.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

/// `k8s\0` + a `runtime.Unknown` holding `object`, as Go's protobuf serializer writes it.
fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

#[test]
fn deployment_with_special_types() {
    let container = core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        resources: Some(core::ResourceRequirements {
            limits: BTreeMap::from([
                ("cpu".into(), quantity("100m")),
                ("memory".into(), quantity("64Mi")),
            ]),
            ..Default::default()
        }),
        // Go non-pointer zero values, as gogo-protobuf writes them: dropped.
        stdin: Some(false),
        termination_message_path: s(""),
        // A Go pointer set to false: kept.
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_136_214_245),
                nanos: Some(999),
            }),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(0),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("25%"),
                    }),
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: s(""),
                    }),
                }),
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta::default()),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    host_network: Some(false),
                    volumes: vec![core::Volume {
                        name: s("data"),
                        volume_source: Some(core::VolumeSource {
                            empty_dir: Some(core::EmptyDirVolumeSource {
                                medium: s(""),
                                size_limit: Some(quantity("1Gi")),
                            }),
                            ..Default::default()
                        }),
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let object =
        k3rs_protobuf::decode_to_json(&body("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(
        object,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": "2006-01-02T15:04:05Z"},
            "spec": {
                "replicas": 3,
                "revisionHistoryLimit": 0,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": {
                    "metadata": {},
                    "spec": {
                        "automountServiceAccountToken": false,
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}
                        }],
                        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}]
                    }
                }
            }
        })
    );
}

#[test]
fn secret_bytes_are_base64() {
    let secret = core::Secret {
        metadata: Some(meta::ObjectMeta {
            name: s("s"),
            ..Default::default()
        }),
        data: BTreeMap::from([
            ("bin".into(), vec![0, 1, 2, 0xff]),
            ("empty".into(), vec![]),
        ]),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let object = k3rs_protobuf::decode_to_json(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(object["data"], json!({"bin": "AAEC/w==", "empty": ""}));
    assert_eq!(object["type"], "Opaque");
}

#[test]
fn lease_micro_time_and_review_extra() {
    use k8s_pb::api::authentication::v1 as authn;
    use k8s_pb::api::coordination::v1 as coordination;
    let lease = coordination::Lease {
        metadata: None,
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_136_214_245),
                nanos: Some(123_456_789),
            }),
            lease_duration_seconds: Some(40),
            ..Default::default()
        }),
    };
    let object =
        k3rs_protobuf::decode_to_json(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(object["spec"]["renewTime"], "2006-01-02T15:04:05.123456Z");
    assert_eq!(object["spec"]["leaseDurationSeconds"], 40);

    let review = authn::TokenReview {
        metadata: None,
        spec: Some(authn::TokenReviewSpec {
            token: s("t"),
            audiences: vec!["a".into()],
        }),
        status: Some(authn::TokenReviewStatus {
            authenticated: Some(true),
            user: Some(authn::UserInfo {
                username: s("alice"),
                groups: vec!["devs".into()],
                extra: BTreeMap::from([(
                    "scopes".into(),
                    authn::ExtraValue {
                        items: vec!["x".into(), "y".into()],
                    },
                )]),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let object =
        k3rs_protobuf::decode_to_json(&body("authentication.k8s.io/v1", "TokenReview", &review))
            .unwrap();
    assert_eq!(
        object["status"],
        json!({"authenticated": true, "user": {"username": "alice", "groups": ["devs"], "extra": {"scopes": ["x", "y"]}}})
    );
}

#[test]
fn raw_extension_holds_json_or_a_nested_object() {
    use k8s_pb::api::apps::v1::ControllerRevision;
    let nested = body(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            data: BTreeMap::from([("k".into(), "v".into())]),
            ..Default::default()
        },
    );
    for (raw, expected) in [
        (br#"{"spec":{"a":1}}"#.to_vec(), json!({"spec": {"a": 1}})),
        (
            nested,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}),
        ),
    ] {
        let revision = ControllerRevision {
            revision: Some(2),
            data: Some(RawExtension { raw: Some(raw) }),
            metadata: None,
        };
        let object =
            k3rs_protobuf::decode_to_json(&body("apps/v1", "ControllerRevision", &revision))
                .unwrap();
        assert_eq!(object["data"], expected);
        assert_eq!(object["revision"], 2);
    }
    let bad = ControllerRevision {
        data: Some(RawExtension {
            raw: Some(b"{not json".to_vec()),
        }),
        ..Default::default()
    };
    let error =
        k3rs_protobuf::decode_to_json(&body("apps/v1", "ControllerRevision", &bad)).unwrap_err();
    assert!(error.to_string().contains("data"), "{error}");
}

#[test]
fn crd_schema_unions_and_dollar_names() {
    use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    let string_prop = ext::JsonSchemaProps {
        r#type: s("string"),
        ..Default::default()
    };
    let props = ext::JsonSchemaProps {
        r#type: s("object"),
        r#ref: s("#/definitions/x"),
        properties: BTreeMap::from([(
            "list".into(),
            ext::JsonSchemaProps {
                r#type: s("array"),
                items: Some(Box::new(ext::JsonSchemaPropsOrArray {
                    schema: Some(Box::new(string_prop.clone())),
                    j_son_schemas: vec![],
                })),
                ..Default::default()
            },
        )]),
        additional_properties: Some(Box::new(ext::JsonSchemaPropsOrBool {
            allows: Some(false),
            schema: None,
        })),
        default: Some(ext::Json {
            raw: Some(br#"{"a":[1,2]}"#.to_vec()),
        }),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    };
    let crd = ext::CustomResourceDefinition {
        metadata: None,
        spec: Some(ext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            versions: vec![ext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(ext::CustomResourceValidation {
                    open_apiv3_schema: Some(props),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let object = k3rs_protobuf::decode_to_json(&body(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &crd,
    ))
    .unwrap();
    assert_eq!(
        object["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        json!({
            "type": "object",
            "$ref": "#/definitions/x",
            "properties": {"list": {"type": "array", "items": {"type": "string"}}},
            "additionalProperties": false,
            "default": {"a": [1, 2]},
            "x-kubernetes-preserve-unknown-fields": true
        })
    );
}

#[test]
fn envelope_errors_and_defaults() {
    use k3rs_protobuf::ProtobufError;
    assert!(matches!(
        k3rs_protobuf::decode_to_json(b"{}"),
        Err(ProtobufError::NotProtobuf)
    ));
    assert!(k3rs_protobuf::decode_to_json(b"k8s\0").is_err());
    let unknown_kind = body("v1", "Frobnicator", &core::ConfigMap::default());
    assert!(matches!(
        k3rs_protobuf::decode_to_json(&unknown_kind),
        Err(ProtobufError::UnknownKind { .. })
    ));
    // An empty typeMeta takes the kind the URL implies.
    let untyped = body("", "", &core::Namespace::default());
    assert!(matches!(
        k3rs_protobuf::decode_to_json(&untyped),
        Err(ProtobufError::MissingTypeMeta("kind"))
    ));
    let decoded = k3rs_protobuf::decode(&untyped, Some(("v1", "Namespace"))).unwrap();
    assert_eq!(
        decoded.object,
        json!({"apiVersion": "v1", "kind": "Namespace"})
    );
    // Fields newer than the schema are skipped and reported.
    let mut object = core::Namespace::default().encode_to_vec();
    object.extend([0xf8, 0x06, 0x01]); // field 111, varint 1
    let mut with_unknown = b"k8s\0".to_vec();
    with_unknown.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("Namespace"),
            }),
            raw: Some(object),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let decoded = k3rs_protobuf::decode(&with_unknown, None).unwrap();
    assert_eq!(decoded.unknown_fields, vec!["Namespace.#111".to_owned()]);
}

#[test]
fn every_prefix_and_corruption_of_a_real_body_is_ok_or_err() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/deployment.pb"
    ))
    .unwrap();
    for end in 0..body.len() {
        let _ = k3rs_protobuf::decode_to_json(&body[..end]);
    }
    // Flip every bit once: decoding must return, whatever it returns.
    for i in 4..body.len() {
        for bit in 0..8 {
            let mut corrupt = body.clone();
            corrupt[i] ^= 1 << bit;
            let _ = k3rs_protobuf::decode_to_json(&corrupt);
        }
    }
}

#[test]
fn deep_nesting_is_refused() {
    // JSONSchemaProps.not (field 28) nested 200 times, built by hand (prost refuses to encode it).
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut wrapped = vec![0xe2, 0x01]; // field 28, length-delimited
        prost::encoding::encode_varint(inner.len() as u64, &mut wrapped);
        wrapped.extend(&inner);
        inner = wrapped;
    }
    let mut raw = vec![0x0a]; // CustomResourceValidation.openAPIV3Schema
    prost::encoding::encode_varint(inner.len() as u64, &mut raw);
    raw.extend(&inner);
    let mut envelope = b"k8s\0".to_vec();
    envelope.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("apiextensions.k8s.io/v1"),
                kind: s("CustomResourceValidation"),
            }),
            raw: Some(raw),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let error = k3rs_protobuf::decode_to_json(&envelope).unwrap_err();
    assert!(error.to_string().contains("deeper"), "{error}");
}

#[test]
fn every_builtin_kind_has_a_message() {
    let missing: Vec<String> = k3rs_api::builtin_resources()
        .iter()
        .filter(|r| !k3rs_protobuf::knows_kind(r.api_version, r.kind))
        .map(|r| format!("{} {}", r.api_version, r.kind))
        .collect();
    // Kinds newer than the schema's source (k8s-pb 0.9.0 = Kubernetes 1.35); regenerate the schema
    // from a newer k8s-pb and empty this list.
    let newer_than_schema = [
        "admissionregistration.k8s.io/v1 MutatingAdmissionPolicy",
        "admissionregistration.k8s.io/v1 MutatingAdmissionPolicyBinding",
    ];
    assert_eq!(missing, newer_than_schema);
}
