//! Field selector tests: syntax, escaping, per-kind support and error messages, field sets.

use super::*;
use crate::resources::builtin_resources;
use serde_json::json;

fn resource(group: &str, plural: &str) -> ResourceInfo {
    builtin_resources()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap()
}

#[test]
fn parses_and_prints() {
    for (input, expected) in [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a=b"),
        ("a!=b", "a!=b"),
        ("b=1,a=2", "a=2,b=1"),
        ("a=", "a="),
        ("a=b\\,c", "a=b\\,c"),
        ("a=b\\=c\\\\", "a=b\\=c\\\\"),
        (",a=b,", "a=b"),
        (
            "a=b=c",
            "error: invalid field selector: unescaped character in value: 61",
        ),
        (
            "a=b\\,c,d",
            "error: invalid selector: 'a=b\\,c,d'; can't understand 'd'",
        ),
        ("a", "error: invalid selector: 'a'; can't understand 'a'"),
        (
            "a=b\\x",
            "error: invalid field selector: invalid escape sequence: \\x",
        ),
        (
            "a=b\\",
            "error: invalid field selector: invalid escape sequence: \\",
        ),
    ] {
        let got = match FieldSelector::parse(input) {
            Ok(s) => s.to_string(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "input {input:?}");
    }
    let s = FieldSelector::parse("a=b\\,c").unwrap();
    assert_eq!(s.requirements()[0].value, "b,c");
    assert_eq!(s.requires_exact_match("a"), Some("b,c"));
    assert_eq!(
        FieldSelector::parse("a!=b")
            .unwrap()
            .requires_exact_match("a"),
        None
    );
}

#[test]
fn supported_fields_and_messages() {
    for (group, plural, selector, expected) in [
        ("", "pods", "spec.nodeName=n1,status.phase!=Failed", "spec.nodeName=n1,status.phase!=Failed"),
        ("", "pods", "spec.host=n1", "spec.nodeName=n1"),
        ("", "pods", "status.hostIP=1.2.3.4", "error: field label not supported: status.hostIP"),
        ("", "nodes", "spec.unschedulable=true", "spec.unschedulable=true"),
        ("", "nodes", "metadata.namespace=x", "error: field label not supported: metadata.namespace"),
        ("", "events", "involvedObject.name=web,type=Warning", "involvedObject.name=web,type=Warning"),
        ("events.k8s.io", "events", "regarding.name=web,reportingController=kubelet", "involvedObject.name=web,reportingComponent=kubelet"),
        ("events.k8s.io", "events", "involvedObject.name=web", "error: field label not supported: involvedObject.name"),
        ("", "secrets", "type=Opaque", "type=Opaque"),
        ("", "namespaces", "status.phase=Active", "status.phase=Active"),
        ("", "services", "spec.type=NodePort", "spec.type=NodePort"),
        ("", "replicationcontrollers", "status.replicas=0", "status.replicas=0"),
        ("batch", "jobs", "status.successful=1", "status.successful=1"),
        ("batch", "jobs", "spec.x=1", "error: field label \"spec.x\" not supported for batchv1.Job"),
        ("certificates.k8s.io", "certificatesigningrequests", "spec.signerName=a/b", "spec.signerName=a/b"),
        ("resource.k8s.io", "resourceslices", "spec.driver=x", "spec.driver=x"),
        ("resource.k8s.io", "resourceslices", "spec.pool=x", "error: field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: spec.pool"),
        ("apps", "deployments", "metadata.name=web", "metadata.name=web"),
        ("apps", "replicasets", "status.replicas=1", "error: \"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""),
        ("", "configmaps", "data.x=1", "error: \"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""),
    ] {
        let r = resource(group, plural);
        let got = match FieldSelector::parse_for(&r, selector) {
            Ok(s) => s.to_string(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "{group}/{plural} {selector:?}");
    }
}

#[test]
fn pod_field_set() {
    let pods = resource("", "pods");
    let pod = json!({
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "serviceAccountName": "default"},
        "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}]}
    });
    let fields = fields_of(&pods, &pod);
    let expected: BTreeMap<String, String> = [
        ("metadata.name", "web-1"),
        ("metadata.namespace", "default"),
        ("spec.hostNetwork", "false"),
        ("spec.nodeName", "n1"),
        ("spec.restartPolicy", "Always"),
        ("spec.schedulerName", "default-scheduler"),
        ("spec.serviceAccountName", "default"),
        ("status.nominatedNodeName", ""),
        ("status.phase", "Running"),
        ("status.podIP", "10.42.0.5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(fields, expected);
    let s = FieldSelector::parse_for(&pods, "spec.nodeName=n1,status.phase!=Pending").unwrap();
    assert!(s.matches_object(&pods, &pod));
    let s = FieldSelector::parse_for(&pods, "status.nominatedNodeName=").unwrap();
    assert!(s.matches_object(&pods, &pod));
    let s = FieldSelector::parse_for(&pods, "spec.host=n2").unwrap();
    assert!(!s.matches_object(&pods, &pod));
    // A legacy status with only podIP.
    let fields = fields_of(&pods, &json!({"status": {"podIP": "10.0.0.1"}}));
    assert_eq!(fields["status.podIP"], "10.0.0.1");
}

#[test]
fn other_field_sets() {
    let nodes = resource("", "nodes");
    let f = fields_of(
        &nodes,
        &json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}}),
    );
    assert_eq!(
        f.get("spec.unschedulable").map(String::as_str),
        Some("true")
    );
    assert!(!f.contains_key("metadata.namespace"));

    let events = resource("events.k8s.io", "events");
    let f = fields_of(
        &events,
        &json!({"metadata": {"name": "e", "namespace": "ns"}, "regarding": {"kind": "Pod", "name": "web"},
                "reportingController": "kubelet", "deprecatedSource": {"component": "kubelet"}, "type": "Normal"}),
    );
    assert_eq!(f["involvedObject.kind"], "Pod");
    assert_eq!(f["reportingComponent"], "kubelet");
    assert_eq!(f["source"], "kubelet");
    let s = FieldSelector::parse_for(&events, "regarding.kind=Pod,type=Normal").unwrap();
    assert!(s.matches(&f));

    let core_events = resource("", "events");
    let f = fields_of(
        &core_events,
        &json!({"involvedObject": {"uid": "u1"}, "source": {"component": "c"}}),
    );
    assert_eq!(f["involvedObject.uid"], "u1");
    assert_eq!(f["source"], "c");

    let jobs = resource("batch", "jobs");
    let f = fields_of(&jobs, &json!({"status": {"succeeded": 3}}));
    assert_eq!(f["status.successful"], "3");

    let secrets = resource("", "secrets");
    let s =
        FieldSelector::parse_for(&secrets, "type!=kubernetes.io/service-account-token").unwrap();
    assert!(s.matches_object(&secrets, &json!({"type": "Opaque"})));
}

#[test]
fn custom_resources() {
    let selectable = vec![".spec.color".to_owned(), ".spec.size".to_owned()];
    let s = FieldSelector::parse("spec.color=red,spec.size=3").unwrap();
    let s = s.for_custom_resource(&selectable).unwrap();
    let object =
        json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {"color": "red", "size": 3}});
    assert!(s.matches(&custom_resource_fields(true, &selectable, &object)));
    let err = FieldSelector::parse("spec.shape=x")
        .unwrap()
        .for_custom_resource(&selectable)
        .unwrap_err();
    assert_eq!(err.to_string(), "field label not supported: spec.shape");
    let err = FieldSelector::parse("spec.shape=x")
        .unwrap()
        .for_custom_resource(&[])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"spec.shape\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
}

#[test]
fn escaping_round_trips() {
    for value in ["", "a", "a,b", "a=b", "a\\b", "\\,=\\"] {
        assert_eq!(unescape_value(&escape_value(value)).unwrap(), value);
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_text_never_panics(text in "\\PC{0,40}") {
            if let Ok(s) = FieldSelector::parse(&text) {
                let _ = s.for_resource(&resource("", "pods"));
            }
        }

        #[test]
        fn canonical_form_round_trips(text in "[a-z.=!,\\\\]{0,20}") {
            if let Ok(s) = FieldSelector::parse(&text) {
                let again = FieldSelector::parse(&s.to_string()).unwrap();
                let mut a = again.requirements().to_vec();
                let mut b = s.requirements().to_vec();
                a.sort_by_key(|x| x.to_string());
                b.sort_by_key(|x| x.to_string());
                prop_assert_eq!(a, b);
            }
        }
    }
}
