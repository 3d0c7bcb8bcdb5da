//! Tests of serving CRDs: resources from a CRD, status, version order, interning.

use serde_json::{json, Value};

use super::status::{desired_status, TakenNames};
use super::*;

fn crontab_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"], "categories": ["all"]},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v1", "served": true, "storage": true,
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                     "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                 "subresources": {"status": {}, "scale": {
                     "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                 "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}],
                 "selectableFields": [{"jsonPath": ".spec.color"}]},
                {"name": "v2", "served": false, "storage": false},
            ],
        },
    })
}

fn established(mut crd: Value) -> Value {
    let status = desired_status(&crd, &mut TakenNames::default(), "2025-01-01T00:00:00Z");
    crd["status"] = status;
    crd
}

#[test]
fn a_new_crd_is_accepted_and_established() {
    let crd = crontab_crd();
    let status = desired_status(&crd, &mut TakenNames::default(), "2025-01-01T00:00:00Z");
    assert_eq!(
        status,
        json!({
            "acceptedNames": {"plural": "crontabs", "singular": "crontab", "shortNames": ["ct"],
                "categories": ["all"], "kind": "CronTab", "listKind": "CronTabList"},
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            ],
            "storedVersions": ["v1"],
        })
    );
    // Judged again later, nothing moves (so the controller writes nothing).
    let crd = established(crontab_crd());
    let again = desired_status(&crd, &mut TakenNames::default(), "2026-01-01T00:00:00Z");
    assert_eq!(again, crd["status"]);
}

#[test]
fn a_newer_crd_cannot_take_an_older_ones_names() {
    let mut taken = TakenNames::default();
    let older = crontab_crd();
    desired_status(&older, &mut taken, "t");
    let mut newer = crontab_crd();
    newer["metadata"]["name"] = json!("crontabz.stable.example.com");
    newer["spec"]["names"]["plural"] = json!("crontabz");
    let status = desired_status(&newer, &mut taken, "t");
    let conditions = status["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["status"], "False");
    assert_eq!(conditions[0]["reason"], "SingularConflict");
    assert_eq!(conditions[0]["message"], "\"crontab\" is already in use");
    assert_eq!(conditions[1]["status"], "False");
    let mut newer = newer.clone();
    newer["status"] = status;
    assert!(served_resources(&newer).is_empty());
}

#[test]
fn served_versions_in_priority_order_with_their_facts() {
    assert!(
        served_resources(&crontab_crd()).is_empty(),
        "not established yet"
    );
    let served = served_resources(&established(crontab_crd()));
    let versions: Vec<&str> = served.iter().map(|r| r.version).collect();
    assert_eq!(versions, ["v1", "v1beta1"]);
    let v1 = &served[0];
    assert_eq!(
        (v1.group, v1.api_version, v1.kind, v1.list_kind, v1.plural),
        (
            "stable.example.com",
            "stable.example.com/v1",
            "CronTab",
            "CronTabList",
            "crontabs"
        )
    );
    assert_eq!(v1.singular, "crontab");
    assert!(v1.namespaced);
    assert_eq!(v1.short_names, ["ct"]);
    assert_eq!(v1.categories, ["all"]);
    assert_eq!(v1.subresources, ["scale", "status"]);
    let custom = v1.custom.as_ref().unwrap();
    assert_eq!(custom.printer_columns[0].name, "Replicas");
    assert_eq!(custom.selectable_fields, [".spec.color"]);
    assert_eq!(
        custom.scale.as_ref().unwrap().spec_replicas_path,
        ".spec.replicas"
    );
    assert!(served[1].subresources.is_empty());
    // The custom resource's hooks: decode prunes, typed is the identity, fields and tables come
    // from the CRD.
    let object = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "a", "namespace": "default"},
        "spec": {"replicas": 2, "color": "red", "junk": 1}});
    assert_eq!(v1.decode(&object).unwrap()["spec"], json!({"replicas": 2}));
    assert_eq!((v1.typed)(&object).unwrap(), object);
    let fields = crate::fields_of(v1, &object);
    assert_eq!(fields["spec.color"], "red");
    let table = crate::table_for(v1, &[object], std::time::SystemTime::now());
    assert_eq!(table.columns[1].name, "Replicas");
    assert_eq!(table.rows[0].cells, [json!("a"), json!(2)]);
}

#[test]
fn kube_aware_version_order() {
    let mut versions = vec![
        "foo10",
        "v1",
        "v11alpha2",
        "v12alpha1",
        "v10beta3",
        "foo1",
        "v2",
        "v3beta1",
        "v10",
        "v11beta2",
    ];
    versions.sort_by(|a, b| compare_versions(a, b));
    assert_eq!(
        versions,
        [
            "v10",
            "v2",
            "v1",
            "v11beta2",
            "v10beta3",
            "v3beta1",
            "v12alpha1",
            "v11alpha2",
            "foo1",
            "foo10"
        ]
    );
}

#[test]
fn interning_reuses_strings_and_lists() {
    let a = intern(&String::from("crontabs.example"));
    let b = intern(&String::from("crontabs.example"));
    assert!(std::ptr::eq(a, b));
    let l1 = intern_list(&["ct".to_owned(), "cts".to_owned()]);
    let l2 = intern_list(&["ct", "cts"]);
    assert!(std::ptr::eq(l1, l2));
    assert!(intern_list::<&str>(&[]).is_empty());
}
