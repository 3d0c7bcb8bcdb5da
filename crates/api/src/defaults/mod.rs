//! Defaulting of built-in kinds: the upstream defaults users see in `kubectl get -o yaml`.
//!
//! [`apply_defaults`] dispatches on group and kind and fills in what upstream's
//! `SetDefaults_*` functions (and declarative `+default` markers) fill in, for the kind itself
//! and for every pod template embedded in it. It never fails and never removes user data: a
//! field of the wrong JSON type is left alone for validation to report. Values that need
//! cluster state or a clock — uid, timestamps, ClusterIPs, NodePorts — are the API server's; the
//! pure helpers for them are in [`service`] and [`job_selector`].

pub(crate) mod json;
mod pod;
mod workloads;

pub mod service;

use serde_json::{json, Value};

use crate::well_known;
use crate::ResourceInfo;
use json::{existing_obj, items_mut, set_default, set_default_str, str_at};

pub use pod::image_tag_is_latest;
pub(crate) use pod::volume_sources;
pub use workloads::job_selector;

/// Fills in upstream's defaults for `obj`, an object of `resource`'s kind. Kinds without
/// defaults are left untouched; custom resources get their schema's defaults.
pub fn apply_defaults(resource: &ResourceInfo, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    if let Some(custom) = &resource.custom {
        custom.apply_defaults(obj);
        return;
    }
    match (resource.group, resource.kind) {
        ("", "Pod") => pod::pod(obj),
        ("", "PodTemplate") => pod::template_at(obj, &["template"]),
        ("", "ReplicationController") => workloads::replication_controller(obj),
        ("", "Service") => service::defaults(obj),
        ("", "Namespace") => namespace(obj),
        ("", "Secret") => set_default_str(obj, "type", "Opaque"),
        ("", "PersistentVolume") => persistent_volume(obj),
        ("", "PersistentVolumeClaim") => persistent_volume_claim(obj),
        ("", "Node") => node(obj),
        ("", "Endpoints") => {
            for subset in items_mut(obj, "subsets") {
                for port in items_mut(subset, "ports") {
                    set_default_str(port, "protocol", "TCP");
                }
            }
        }
        ("", "LimitRange") => limit_range(obj),
        ("apps", "Deployment") => workloads::deployment(obj),
        ("apps", "ReplicaSet") => workloads::replica_set(obj),
        ("apps", "StatefulSet") => workloads::stateful_set(obj),
        ("apps", "DaemonSet") => workloads::daemon_set(obj),
        ("batch", "Job") => workloads::job(obj),
        ("batch", "CronJob") => workloads::cron_job(obj),
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in items_mut(obj, "ports") {
                set_default(port, "name", json!(""));
                set_default_str(port, "protocol", "TCP");
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaler(resource.version, obj),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(obj),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => role_binding(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => custom_resource_definition(obj),
        _ => {}
    }
}

/// `SetDefaults_HorizontalPodAutoscaler`: one replica at least; in v2 a CPU utilization target
/// of 80% when no metric is given, and a given `behavior` completed with upstream's scaling
/// rules (up: 4 pods or 100% per 15 s, no stabilization; down: 100% per 15 s after 300 s).
fn autoscaler(version: &str, obj: &mut Value) {
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if version != "v2" {
        return;
    }
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    let Some(behavior) = existing_obj(spec, "behavior") else {
        return;
    };
    let rules = [
        (
            "scaleUp",
            0,
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
        (
            "scaleDown",
            300,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        ),
    ];
    for (direction, window, policies) in rules {
        set_default(behavior, direction, json!({}));
        if let Some(rule) = existing_obj(behavior, direction) {
            set_default(rule, "stabilizationWindowSeconds", json!(window));
            set_default_str(rule, "selectPolicy", "Max");
            set_default(rule, "policies", policies);
        }
    }
}

/// `SetDefaults_Namespace`/`_NamespaceStatus` and the registry's `PrepareForCreate`: the
/// `kubernetes.io/metadata.name` label, the `kubernetes` finalizer and phase `Active`.
fn namespace(obj: &mut Value) {
    let name = obj
        .get("metadata")
        .map(|m| str_at(m, "name").to_owned())
        .unwrap_or_default();
    if !name.is_empty() {
        if let Some(labels) =
            json::child_obj(obj, "metadata").and_then(|m| json::child_obj(m, "labels"))
        {
            labels[well_known::LABEL_METADATA_NAME] = json!(name);
        }
    }
    if let Some(spec) = json::child_obj(obj, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = json::child_obj(obj, "status") {
        set_default_str(status, "phase", "Active");
    }
}

fn persistent_volume(obj: &mut Value) {
    if let Some(spec) = existing_obj(obj, "spec") {
        set_default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = json::child_obj(obj, "status") {
        set_default_str(status, "phase", "Pending");
    }
}

/// A PVC, standalone or as a StatefulSet's `volumeClaimTemplates` entry.
pub(crate) fn persistent_volume_claim(obj: &mut Value) {
    if let Some(spec) = existing_obj(obj, "spec") {
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = json::child_obj(obj, "status") {
        set_default_str(status, "phase", "Pending");
    }
}

/// `SetDefaults_NodeStatus`: allocatable defaults to capacity.
fn node(obj: &mut Value) {
    if let Some(status) = existing_obj(obj, "status") {
        if let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned() {
            set_default(status, "allocatable", capacity);
        }
    }
}

/// `SetDefaults_LimitRangeItem`: for `Container` limits, default ← max, defaultRequest ←
/// default, then defaultRequest ← min.
fn limit_range(obj: &mut Value) {
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    for item in items_mut(spec, "limits") {
        if str_at(item, "type") != "Container" {
            continue;
        }
        for (to, from) in [
            ("default", "max"),
            ("defaultRequest", "default"),
            ("defaultRequest", "min"),
        ] {
            let source = item.get(from).and_then(Value::as_object).cloned();
            let Some(target) = json::child_obj(item, to).and_then(Value::as_object_mut) else {
                continue;
            };
            for (name, quantity) in source.into_iter().flatten() {
                target.entry(name).or_insert(quantity);
            }
        }
    }
}

/// `policyTypes` defaults to `Ingress`, plus `Egress` when egress rules exist; ports to TCP.
fn network_policy(obj: &mut Value) {
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    let has_egress = spec
        .get("egress")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if json::is_zero(spec.get("policyTypes")) {
        let mut types = vec![json!("Ingress")];
        if has_egress {
            types.push(json!("Egress"));
        }
        spec["policyTypes"] = Value::Array(types);
    }
    for key in ["ingress", "egress"] {
        for rule in items_mut(spec, key) {
            for port in items_mut(rule, "ports") {
                set_default_str(port, "protocol", "TCP");
            }
        }
    }
}

/// `roleRef.apiGroup`, and each User/Group subject's `apiGroup` (a ServiceAccount's stays `""`).
fn role_binding(obj: &mut Value) {
    if let Some(role_ref) = existing_obj(obj, "roleRef") {
        set_default_str(role_ref, "apiGroup", "rbac.authorization.k8s.io");
    }
    for subject in items_mut(obj, "subjects") {
        if matches!(str_at(subject, "kind"), "User" | "Group") {
            set_default_str(subject, "apiGroup", "rbac.authorization.k8s.io");
        }
    }
}

/// `SetDefaults_CustomResourceDefinitionSpec`: `names.singular` (lowercased kind),
/// `names.listKind` (`<kind>List`) and `conversion.strategy: None`.
fn custom_resource_definition(obj: &mut Value) {
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    if let Some(names) = existing_obj(spec, "names") {
        let kind = str_at(names, "kind").to_owned();
        if !kind.is_empty() {
            set_default_str(names, "singular", &kind.to_lowercase());
            set_default_str(names, "listKind", &format!("{kind}List"));
        }
    }
    if let Some(conversion) = json::child_obj(spec, "conversion") {
        set_default_str(conversion, "strategy", "None");
    }
}
