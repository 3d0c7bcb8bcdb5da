//! Validation of built-in kinds, in upstream's words.
//!
//! [`validate_create`] and [`validate_update`] return every [`FieldError`] found (empty means
//! valid); the API server turns them into a 422 `Status` whose causes kubectl prints as
//! `spec.containers[0].image: Required value`. Both expect the object *after* defaulting, as
//! upstream validates, but never rely on a default being present: an absent field counts as its
//! default. Neither panics on any JSON.
//!
//! Around them: [`generation_changes`] and [`tracks_generation`] (when `metadata.generation`
//! moves) and [`prepare_update`] (what the main endpoint and the `/status` subresource may each
//! change).

mod meta;
mod names;
mod pod;
mod resources;
mod service;
mod workloads;

use serde_json::Value;

use crate::defaults::json::str_at;
use crate::{FieldError, FieldErrorKind, FieldPath, ResourceInfo};

/// Checks a new object of `resource`'s kind: metadata for every kind, and the per-kind rules for
/// the kinds users write most.
pub fn validate_create(resource: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !obj.is_object() {
        errs.push(invalid(FieldPath::default(), obj, "must be an object"));
        return errs;
    }
    meta::validate(
        obj,
        resource.namespaced,
        name_validator(resource),
        is_builtin(resource),
        &mut errs,
    );
    kind_rules(resource, obj, &mut errs);
    errs
}

/// Checks an update of `old` to `new`: `new` on its own as on create, minus the create-only
/// rules, plus what may not change.
pub fn validate_update(resource: &ResourceInfo, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !new.is_object() {
        errs.push(invalid(FieldPath::default(), new, "must be an object"));
        return errs;
    }
    let mut create_errs = Vec::new();
    meta::validate(
        new,
        resource.namespaced,
        name_validator(resource),
        is_builtin(resource),
        &mut create_errs,
    );
    // A name that was accepted once (perhaps under older rules) is not re-judged; it is immutable.
    create_errs.retain(|e| e.field.as_str() != "metadata.name");
    errs.extend(create_errs);
    meta::validate_update(old, new, &mut errs);
    kind_rules(resource, new, &mut errs);
    update_rules(resource, old, new, &mut errs);
    errs
}

fn kind_rules(resource: &ResourceInfo, obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(custom) = &resource.custom {
        errs.extend(custom.validate(obj));
        return;
    }
    match (resource.group, resource.kind) {
        ("", "Pod") => pod::validate_pod(obj, errs),
        ("", "PodTemplate") => pod::validate_template(
            obj.get("template"),
            &FieldPath::new("template"),
            false,
            errs,
        ),
        ("", "ReplicationController") => workloads::replication_controller(obj, errs),
        ("", "Service") => service::validate(obj, errs),
        ("", "ConfigMap") => resources::config_map(obj, errs),
        ("", "Secret") => resources::secret(obj, errs),
        ("", "Namespace") => resources::namespace(obj, errs),
        ("", "PersistentVolumeClaim") => resources::persistent_volume_claim(obj, errs),
        ("apps", "Deployment") => workloads::deployment(obj, errs),
        ("apps", "ReplicaSet") => workloads::replica_set(obj, errs),
        ("apps", "StatefulSet") => workloads::stateful_set(obj, errs),
        ("apps", "DaemonSet") => workloads::daemon_set(obj, errs),
        ("batch", "Job") => workloads::job(obj, errs),
        ("batch", "CronJob") => workloads::cron_job(obj, errs),
        ("networking.k8s.io", "Ingress") => resources::ingress(obj, errs),
        ("rbac.authorization.k8s.io", "Role") => resources::role(obj, true, errs),
        ("rbac.authorization.k8s.io", "ClusterRole") => resources::role(obj, false, errs),
        ("rbac.authorization.k8s.io", "RoleBinding") => resources::role_binding(obj, true, errs),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            resources::role_binding(obj, false, errs)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => resources::crd(obj, errs),
        _ => {}
    }
}

fn update_rules(resource: &ResourceInfo, old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    match (resource.group, resource.kind) {
        ("", "Pod") => pod::validate_pod_update(old, new, errs),
        ("", "Service") => service::validate_update(old, new, errs),
        ("", "Secret" | "ConfigMap") => resources::immutable_data(old, new, errs),
        ("", "PersistentVolumeClaim") => resources::persistent_volume_claim_update(old, new, errs),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            workloads::selector_immutable(old, new, errs)
        }
        ("apps", "StatefulSet") => workloads::stateful_set_update(old, new, errs),
        ("batch", "Job") => workloads::job_update(old, new, errs),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            resources::role_binding_update(old, new, errs)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            resources::crd_update(old, new, errs)
        }
        _ => {}
    }
}

/// The groups of the built-in kinds: anything else is a custom resource.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
];

fn is_builtin(resource: &ResourceInfo) -> bool {
    BUILTIN_GROUPS.contains(&resource.group)
}

/// Upstream's per-kind name rule.
fn name_validator(resource: &ResourceInfo) -> names::NameFn {
    match (resource.group, resource.kind) {
        ("", "Namespace") => names::name_is_dns_label,
        ("", "Service") => names::name_is_dns1035_label,
        ("rbac.authorization.k8s.io", _)
        | ("authorization.k8s.io" | "authentication.k8s.io", _)
        | ("flowcontrol.apiserver.k8s.io", _)
        | ("", "ServiceAccount" | "Event")
        | ("events.k8s.io", _)
        | ("apiregistration.k8s.io", _) => names::name_is_path_segment,
        _ => names::name_is_dns_subdomain,
    }
}

/// Whether objects of this kind carry a `metadata.generation` (set to 1 on create): kinds with
/// a `spec`, and custom resources. ConfigMaps, Secrets, RBAC objects, Events and the like have
/// none upstream.
pub fn tracks_generation(resource: &ResourceInfo) -> bool {
    if !is_builtin(resource) {
        return true;
    }
    !matches!(
        (resource.group, resource.kind),
        (
            "",
            "ConfigMap"
                | "Secret"
                | "ServiceAccount"
                | "Event"
                | "Endpoints"
                | "Binding"
                | "ComponentStatus"
        ) | ("rbac.authorization.k8s.io", _)
            | ("events.k8s.io", _)
            | ("discovery.k8s.io", _)
            | ("coordination.k8s.io", _)
            | ("authentication.k8s.io" | "authorization.k8s.io", _)
            | ("apps", "ControllerRevision")
            | ("storage.k8s.io", "StorageClass" | "CSIStorageCapacity")
            | ("scheduling.k8s.io", _)
            | ("node.k8s.io", _)
    )
}

/// Whether an update from `old` to `new` bumps `metadata.generation`: a change of `spec` for
/// built-in kinds that track generation (for Pods: of `spec`, as upstream's
/// PodObservedGenerationTracking does); a change of anything but `metadata` and `status` for
/// custom resources; and, as upstream, setting `metadata.deletionTimestamp` does not count.
pub fn generation_changes(resource: &ResourceInfo, old: &Value, new: &Value) -> bool {
    if !tracks_generation(resource) {
        return false;
    }
    if is_builtin(resource) {
        return old.get("spec") != new.get("spec");
    }
    let strip = |obj: &Value| -> Value {
        let mut obj = obj.clone();
        if let Some(map) = obj.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        obj
    };
    strip(old) != strip(new)
}

/// Which endpoint an update arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateEndpoint {
    /// The resource itself (`PUT /…/deployments/web`).
    Main,
    /// The `status` subresource (`PUT /…/deployments/web/status`).
    Status,
    /// A namespace's `finalize` subresource (`PUT /api/v1/namespaces/x/finalize`): only
    /// `spec.finalizers` changes.
    Finalize,
}

/// Upstream's `PrepareForUpdate` split between the resource and its `/status` subresource, for
/// kinds that serve one (others are left alone):
/// - on [`UpdateEndpoint::Main`], `status` is taken from `old` (a client cannot change status
///   through the main endpoint; it is not an error, the change is just dropped);
/// - on [`UpdateEndpoint::Status`], everything but `status` is taken from `old` — spec, labels,
///   annotations, owner references and finalizers included — except the request's
///   `metadata.resourceVersion` (for the optimistic-concurrency check) and `managedFields`.
///
/// Namespaces additionally keep `spec.finalizers` on the main endpoint; on
/// [`UpdateEndpoint::Finalize`] only they change.
pub fn prepare_update(
    resource: &ResourceInfo,
    endpoint: UpdateEndpoint,
    old: &Value,
    new: &mut Value,
) {
    if !resource.has_subresource("status") || !new.is_object() {
        return;
    }
    match endpoint {
        UpdateEndpoint::Main => {
            if let Some(map) = new.as_object_mut() {
                match old.get("status") {
                    Some(status) => {
                        map.insert("status".to_owned(), status.clone());
                    }
                    None => {
                        map.remove("status");
                    }
                }
            }
            if resource.group.is_empty() && resource.kind == "Namespace" {
                let finalizers = old.pointer("/spec/finalizers").cloned();
                if let Some(spec) = crate::defaults::json::child_obj(new, "spec") {
                    match finalizers {
                        Some(f) => spec["finalizers"] = f,
                        None => {
                            if let Some(map) = spec.as_object_mut() {
                                map.remove("finalizers");
                            }
                        }
                    }
                }
            }
        }
        UpdateEndpoint::Status => *new = only_changing(old, new, &["status"]),
        UpdateEndpoint::Finalize => {
            if resource.group.is_empty() && resource.kind == "Namespace" {
                *new = only_changing(old, new, &["spec", "finalizers"]);
            }
        }
    }
}

/// `old` with the field at `path` taken from `new` (removed when `new` has none), and `new`'s
/// `metadata.resourceVersion` (for the optimistic-concurrency check) and `managedFields`.
fn only_changing(old: &Value, new: &Value, path: &[&str]) -> Value {
    let mut merged = old.clone();
    let wanted = path.iter().try_fold(new, |v, key| v.get(*key)).cloned();
    if let Some((last, parents)) = path.split_last() {
        let mut parent = Some(&mut merged);
        for key in parents {
            parent = match (parent, &wanted) {
                (Some(p), Some(_)) => crate::defaults::json::child_obj(p, key),
                (Some(p), None) => p.get_mut(*key),
                (None, _) => None,
            };
        }
        if let Some(map) = parent.and_then(Value::as_object_mut) {
            match wanted {
                Some(value) => {
                    map.insert((*last).to_owned(), value);
                }
                None => {
                    map.remove(*last);
                }
            }
        }
    }
    if let Some(meta) =
        crate::defaults::json::child_obj(&mut merged, "metadata").and_then(Value::as_object_mut)
    {
        for key in ["resourceVersion", "managedFields"] {
            if let Some(value) = new.pointer(&format!("/metadata/{key}")) {
                meta.insert(key.to_owned(), value.clone());
            }
        }
    }
    merged
}

pub(crate) fn invalid(field: FieldPath, value: &Value, detail: impl Into<String>) -> FieldError {
    FieldError::invalid(field, value, detail)
}

pub(crate) fn required(field: FieldPath, detail: impl Into<String>) -> FieldError {
    FieldError::required(field, detail)
}

pub(crate) fn forbidden(field: FieldPath, detail: impl Into<String>) -> FieldError {
    FieldError::new(FieldErrorKind::Forbidden, field, None, detail)
}

pub(crate) fn duplicate(field: FieldPath, value: &Value) -> FieldError {
    FieldError::new(FieldErrorKind::Duplicate, field, Some(value), "")
}

pub(crate) fn not_found(field: FieldPath, value: &Value) -> FieldError {
    FieldError::new(FieldErrorKind::NotFound, field, Some(value), "")
}

/// `field is immutable`.
pub(crate) fn immutable(field: FieldPath, value: &Value) -> FieldError {
    FieldError::invalid(field, value, "field is immutable")
}

/// `Unsupported value: "X": supported values: "A", "B"`.
pub(crate) fn not_supported(field: FieldPath, value: &Value, supported: &[&str]) -> FieldError {
    let quoted: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    FieldError::new(
        FieldErrorKind::NotSupported,
        field,
        Some(value),
        format!("supported values: {}", quoted.join(", ")),
    )
}

/// Checks that a string-valued field, when present and non-empty, is one of `supported`.
pub(crate) fn one_of(
    obj: &Value,
    key: &str,
    path: &FieldPath,
    supported: &[&str],
    errs: &mut Vec<FieldError>,
) {
    match obj.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() || supported.contains(&s.as_str()) => {}
        Some(other) => errs.push(not_supported(path.child(key), other, supported)),
    }
}

/// A non-negative integer field: `must be greater than or equal to 0`.
pub(crate) fn non_negative(obj: &Value, key: &str, path: &FieldPath, errs: &mut Vec<FieldError>) {
    match obj.get(key) {
        None | Some(Value::Null) => {}
        Some(v) if v.as_i64().is_some_and(|n| n >= 0) => {}
        Some(v) if v.is_i64() || v.is_u64() => errs.push(invalid(
            path.child(key),
            v,
            "must be greater than or equal to 0",
        )),
        Some(v) => errs.push(invalid(path.child(key), v, "must be an integer")),
    }
}

/// A string field's value, or `""`.
pub(crate) fn string<'a>(obj: &'a Value, key: &str) -> &'a str {
    str_at(obj, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin_resources;
    use serde_json::json;

    fn resource(kind: &str) -> ResourceInfo {
        builtin_resources()
            .into_iter()
            .find(|r| r.kind == kind)
            .unwrap()
    }

    #[test]
    fn a_claims_volume_name_is_set_once() {
        let claim = |volume: Option<&str>| {
            json!({"metadata": {"name": "c", "namespace": "ns"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}}}})
        };
        let mut errs = Vec::new();
        resources::persistent_volume_claim_update(&claim(None), &claim(Some("pv")), &mut errs);
        assert!(errs.is_empty(), "binding is allowed: {errs:?}");
        resources::persistent_volume_claim_update(
            &claim(Some("pv")),
            &claim(Some("other")),
            &mut errs,
        );
        assert_eq!(errs.len(), 1, "rebinding is not");
    }

    #[test]
    fn generation() {
        let deploy = resource("Deployment");
        let old = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 1}});
        let relabelled = json!({"metadata": {"labels": {"a": "c"}}, "spec": {"replicas": 1}});
        let scaled = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 2}});
        assert!(!generation_changes(&deploy, &old, &relabelled));
        assert!(generation_changes(&deploy, &old, &scaled));
        assert!(tracks_generation(&deploy));
        let cm = resource("ConfigMap");
        assert!(!tracks_generation(&cm));
        assert!(!generation_changes(
            &cm,
            &json!({"data": {"a": "1"}}),
            &json!({"data": {"a": "2"}})
        ));
    }

    #[test]
    fn status_split() {
        let deploy = resource("Deployment");
        let old = json!({"metadata": {"labels": {"a": "1"}, "resourceVersion": "5"},
            "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut main = json!({"metadata": {"labels": {"a": "2"}, "resourceVersion": "5"},
            "spec": {"replicas": 3}, "status": {"replicas": 9}});
        prepare_update(&deploy, UpdateEndpoint::Main, &old, &mut main);
        assert_eq!(main["spec"]["replicas"], 3);
        assert_eq!(main["status"]["replicas"], 1);
        assert_eq!(main["metadata"]["labels"]["a"], "2");

        let mut status = json!({"metadata": {"labels": {"a": "2"}, "resourceVersion": "6"},
            "spec": {"replicas": 3}, "status": {"replicas": 9}});
        prepare_update(&deploy, UpdateEndpoint::Status, &old, &mut status);
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 9);
        assert_eq!(status["metadata"]["labels"]["a"], "1");
        assert_eq!(status["metadata"]["resourceVersion"], "6");

        // Kinds without a status subresource are left alone.
        let cm = resource("ConfigMap");
        let mut new = json!({"data": {"a": "2"}, "status": {"x": 1}});
        prepare_update(&cm, UpdateEndpoint::Main, &json!({}), &mut new);
        assert_eq!(new["status"]["x"], 1);

        // A namespace's finalizers only change through /finalize.
        let ns = resource("Namespace");
        let old = json!({"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let mut new = json!({"spec": {"finalizers": []}, "status": {"phase": "Terminating"}});
        prepare_update(&ns, UpdateEndpoint::Main, &old, &mut new);
        assert_eq!(new, old);
        let mut new = json!({"metadata": {"labels": {"x": "y"}, "resourceVersion": "7"},
            "spec": {"finalizers": []}, "status": {"phase": "Terminating"}});
        prepare_update(&ns, UpdateEndpoint::Finalize, &old, &mut new);
        assert_eq!(
            new,
            json!({"metadata": {"resourceVersion": "7"}, "spec": {"finalizers": []},
                "status": {"phase": "Active"}})
        );
        let mut new = json!({"metadata": {}});
        prepare_update(&ns, UpdateEndpoint::Finalize, &old, &mut new);
        assert_eq!(
            new,
            json!({"metadata": {}, "spec": {}, "status": {"phase": "Active"}})
        );
    }
}
