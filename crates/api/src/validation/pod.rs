//! Pod and pod template checks (upstream's `ValidatePodSpec`, `ValidatePodUpdate`).

use std::collections::{BTreeSet, HashSet};

use serde_json::{json, Value};

use super::names;
use super::{
    duplicate, forbidden, invalid, non_negative, not_found, not_supported, one_of, required, string,
};
use crate::defaults::json::{at, items};
use crate::quantity;
use crate::{FieldError, FieldPath};

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Upstream's list of the pod spec fields an update may change (the start of its message).
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub(crate) fn validate_pod(obj: &Value, errs: &mut Vec<FieldError>) {
    match obj.get("spec") {
        Some(spec) if spec.is_object() => pod_spec(spec, &FieldPath::new("spec"), true, errs),
        _ => errs.push(required(FieldPath::new("spec").child("containers"), "")),
    }
}

/// `ValidatePodTemplateSpec`: the template's labels and annotations, and its spec.
pub(crate) fn validate_template(
    template: Option<&Value>,
    path: &FieldPath,
    is_pod: bool,
    errs: &mut Vec<FieldError>,
) {
    let Some(template) = template.filter(|t| t.is_object()) else {
        errs.push(required(path.clone(), ""));
        return;
    };
    if let Some(metadata) = template.get("metadata") {
        super::meta::labels(
            metadata.get("labels"),
            &path.child("metadata").child("labels"),
            errs,
        );
    }
    match template.get("spec") {
        Some(spec) if spec.is_object() => pod_spec(spec, &path.child("spec"), is_pod, errs),
        _ => errs.push(required(path.child("spec").child("containers"), "")),
    }
}

fn pod_spec(spec: &Value, path: &FieldPath, is_pod: bool, errs: &mut Vec<FieldError>) {
    let volumes = volumes(spec, &path.child("volumes"), errs);
    let containers = items(spec, "containers");
    if containers.is_empty() {
        errs.push(required(path.child("containers"), ""));
    }
    let mut names_seen = HashSet::new();
    for key in ["initContainers", "containers"] {
        for (i, c) in items(spec, key).iter().enumerate() {
            container(
                c,
                &path.child(key).index(i),
                key == "initContainers",
                is_pod,
                &volumes,
                &mut names_seen,
                errs,
            );
        }
    }
    one_of(spec, "restartPolicy", path, RESTART_POLICIES, errs);
    one_of(spec, "dnsPolicy", path, DNS_POLICIES, errs);
    if let Some(deadline) = spec.get("activeDeadlineSeconds").filter(|v| !v.is_null()) {
        if !deadline
            .as_i64()
            .is_some_and(|d| (1..=i64::from(i32::MAX)).contains(&d))
        {
            errs.push(invalid(
                path.child("activeDeadlineSeconds"),
                deadline,
                names::inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let value = string(spec, key);
        if !value.is_empty() {
            for msg in names::dns1123_label(value) {
                errs.push(invalid(path.child(key), &json!(value), msg));
            }
        }
    }
    let account = string(spec, "serviceAccountName");
    if !account.is_empty() {
        for msg in names::dns1123_subdomain(account) {
            errs.push(invalid(
                path.child("serviceAccountName"),
                &json!(account),
                msg,
            ));
        }
    }
    if let Some(selector) = spec.get("nodeSelector") {
        super::meta::labels(Some(selector), &path.child("nodeSelector"), errs);
    }
    non_negative(spec, "terminationGracePeriodSeconds", path, errs);
}

/// Checks `spec.volumes`; returns the set of volume names.
fn volumes(spec: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (i, volume) in items(spec, "volumes").iter().enumerate() {
        let path = path.index(i);
        let name = string(volume, "name");
        if name.is_empty() {
            errs.push(required(path.child("name"), ""));
        } else {
            for msg in names::dns1123_label(name) {
                errs.push(invalid(path.child("name"), &json!(name), msg));
            }
            if !seen.insert(name.to_owned()) {
                errs.push(duplicate(path.child("name"), &json!(name)));
            }
        }
        let sources: Vec<&str> = crate::defaults::volume_sources()
            .iter()
            .copied()
            .filter(|key| volume.get(*key).is_some_and(|s| !s.is_null()))
            .collect();
        match sources.as_slice() {
            [] => errs.push(required(path.clone(), "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for key in rest {
                    errs.push(forbidden(
                        path.child(key),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
        if let Some(claim) = volume
            .get("persistentVolumeClaim")
            .filter(|c| c.is_object())
        {
            if string(claim, "claimName").is_empty() {
                errs.push(required(
                    path.child("persistentVolumeClaim").child("claimName"),
                    "",
                ));
            }
        }
        if let Some(host_path) = volume.get("hostPath").filter(|c| c.is_object()) {
            if string(host_path, "path").is_empty() {
                errs.push(required(path.child("hostPath").child("path"), ""));
            }
        }
        for key in ["configMap", "secret"] {
            if let Some(source) = volume.get(key).filter(|c| c.is_object()) {
                if let Some(mode) = source.get("defaultMode").and_then(Value::as_i64) {
                    if !(0..=0o777).contains(&mode) {
                        errs.push(invalid(
                            path.child(key).child("defaultMode"),
                            &json!(mode),
                            "must be a number between 0 and 0777 (octal), both inclusive",
                        ));
                    }
                }
            }
        }
    }
    seen
}

fn container(
    c: &Value,
    path: &FieldPath,
    init: bool,
    is_pod: bool,
    volumes: &BTreeSet<String>,
    names_seen: &mut HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let name = string(c, "name");
    if name.is_empty() {
        errs.push(required(path.child("name"), ""));
    } else {
        for msg in names::dns1123_label(name) {
            errs.push(invalid(path.child("name"), &json!(name), msg));
        }
        if !names_seen.insert(name.to_owned()) {
            errs.push(duplicate(path.child("name"), &json!(name)));
        }
    }
    let image = string(c, "image");
    if image.is_empty() {
        errs.push(required(path.child("image"), ""));
    } else if is_pod && image.trim() != image {
        errs.push(invalid(
            path.child("image"),
            &json!(image),
            "must not have leading or trailing whitespace",
        ));
    }
    one_of(c, "imagePullPolicy", path, PULL_POLICIES, errs);
    one_of(
        c,
        "terminationMessagePolicy",
        path,
        &["File", "FallbackToLogsOnError"],
        errs,
    );
    ports(c, &path.child("ports"), errs);
    env(c, &path.child("env"), errs);
    volume_mounts(c, &path.child("volumeMounts"), volumes, errs);
    if let Some(resources) = c.get("resources") {
        container_resources(resources, &path.child("resources"), errs);
    }
    let sidecar = init && string(c, "restartPolicy") == "Always";
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = c.get(key).filter(|p| !p.is_null()) else {
            continue;
        };
        if init && !sidecar {
            errs.push(forbidden(
                path.child(key),
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        probe(p, &path.child(key), key != "readinessProbe", errs);
    }
    if init {
        one_of(c, "restartPolicy", path, &["Always"], errs);
    } else if c.get("restartPolicy").is_some_and(|p| !p.is_null()) {
        // Per-container restart policies are only for init containers (sidecars) by default.
        errs.push(forbidden(
            path.child("restartPolicy"),
            "may not be set for non-init containers",
        ));
    }
}

fn ports(c: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut port_names = HashSet::new();
    for (i, port) in items(c, "ports").iter().enumerate() {
        let path = path.index(i);
        let name = string(port, "name");
        if !name.is_empty() {
            for msg in names::port_name(name) {
                errs.push(invalid(path.child("name"), &json!(name), msg));
            }
            if !port_names.insert(name.to_owned()) {
                errs.push(duplicate(path.child("name"), &json!(name)));
            }
        }
        match port.get("containerPort") {
            None | Some(Value::Null) => errs.push(required(path.child("containerPort"), "")),
            Some(v) if v.as_i64() == Some(0) => {
                errs.push(required(path.child("containerPort"), ""))
            }
            Some(v) => port_number(v, &path.child("containerPort"), errs),
        }
        if let Some(v) = port
            .get("hostPort")
            .filter(|v| v.as_i64() != Some(0) && !v.is_null())
        {
            port_number(v, &path.child("hostPort"), errs);
        }
        one_of(port, "protocol", &path, PROTOCOLS, errs);
    }
}

/// A port number: 1–65535.
pub(crate) fn port_number(v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    match v.as_i64() {
        Some(n) => {
            for msg in names::port_num(n) {
                errs.push(invalid(path.clone(), v, msg));
            }
        }
        None => errs.push(invalid(
            path.clone(),
            v,
            names::inclusive_range_error(1, 65535),
        )),
    }
}

/// `ValidatePortNumOrName`: an int-or-string port.
pub(crate) fn port_num_or_name(v: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    match v {
        None | Some(Value::Null) => errs.push(required(path.clone(), "")),
        Some(Value::String(s)) if s.is_empty() => errs.push(required(path.clone(), "")),
        Some(Value::String(s)) => {
            for msg in names::port_name(s) {
                errs.push(invalid(path.clone(), &json!(s), msg));
            }
        }
        Some(other) => port_number(other, path, errs),
    }
}

fn env(c: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, var) in items(c, "env").iter().enumerate() {
        let path = path.index(i);
        let name = string(var, "name");
        if name.is_empty() {
            errs.push(required(path.child("name"), ""));
        } else {
            for msg in names::env_var_name(name) {
                errs.push(invalid(path.child("name"), &json!(name), msg));
            }
        }
        let Some(from) = var.get("valueFrom").filter(|f| !f.is_null()) else {
            continue;
        };
        let sources = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
            "fileKeyRef",
        ]
        .iter()
        .filter(|key| from.get(**key).is_some_and(|s| !s.is_null()))
        .count();
        let from_path = path.child("valueFrom");
        if sources == 0 {
            errs.push(invalid(
                from_path.clone(),
                &json!(""),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if sources > 1 {
            errs.push(invalid(
                from_path.clone(),
                &json!(""),
                "may not have more than one field specified at a time",
            ));
        }
        if !string(var, "value").is_empty() {
            errs.push(invalid(
                from_path.clone(),
                &json!(""),
                "may not be specified when `value` is not empty",
            ));
        }
        for key in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(reference) = from.get(key).filter(|r| r.is_object()) {
                if string(reference, "key").is_empty() {
                    errs.push(required(from_path.child(key).child("key"), ""));
                }
            }
        }
        if let Some(field_ref) = from.get("fieldRef").filter(|r| r.is_object()) {
            if string(field_ref, "fieldPath").is_empty() {
                errs.push(required(from_path.child("fieldRef").child("fieldPath"), ""));
            }
        }
    }
}

fn volume_mounts(
    c: &Value,
    path: &FieldPath,
    volumes: &BTreeSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let mut mount_paths = HashSet::new();
    for (i, mount) in items(c, "volumeMounts").iter().enumerate() {
        let path = path.index(i);
        let name = string(mount, "name");
        if name.is_empty() {
            errs.push(required(path.child("name"), ""));
        } else if !volumes.contains(name) {
            errs.push(not_found(path.child("name"), &json!(name)));
        }
        let mount_path = string(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(required(path.child("mountPath"), ""));
        } else if !mount_paths.insert(mount_path.to_owned()) {
            errs.push(invalid(
                path.child("mountPath"),
                &json!(mount_path),
                "must be unique",
            ));
        }
        let sub_path = string(mount, "subPath");
        if !sub_path.is_empty() {
            if sub_path.starts_with('/') {
                errs.push(invalid(
                    path.child("subPath"),
                    &json!(sub_path),
                    "must be a relative path",
                ));
            }
            if sub_path.split('/').any(|part| part == "..") {
                errs.push(invalid(
                    path.child("subPath"),
                    &json!(sub_path),
                    "must not contain '..'",
                ));
            }
        }
    }
}

/// Resource names a container may ask for without a domain prefix.
fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// `ValidateResourceRequirements` for a container.
pub(crate) fn container_resources(resources: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut parsed_limits = Vec::new();
    for key in ["limits", "requests"] {
        let Some(list) = resources.get(key).and_then(Value::as_object) else {
            continue;
        };
        let list_path = path.child(key);
        for (name, value) in list {
            let item_path = list_path.key(name);
            if name.contains('/') {
                for msg in names::qualified_name(name) {
                    errs.push(invalid(item_path.clone(), &json!(name), msg));
                }
            } else if !is_standard_container_resource(name) {
                errs.push(invalid(
                    item_path.clone(),
                    &json!(name),
                    "must be a standard resource for containers",
                ));
            }
            match quantity::parse(value) {
                None => errs.push(invalid(item_path, value, quantity::QUANTITY_FORMAT)),
                Some(q) if q < 0.0 => errs.push(invalid(
                    item_path,
                    &json!(quantity::display(value)),
                    "must be greater than or equal to 0",
                )),
                Some(q) if key == "limits" => parsed_limits.push((name.clone(), q, value)),
                Some(q) => {
                    if let Some((_, limit, limit_value)) =
                        parsed_limits.iter().find(|(n, _, _)| n == name)
                    {
                        if q > *limit {
                            errs.push(invalid(
                                list_path.clone(),
                                &json!(quantity::display(value)),
                                format!(
                                    "must be less than or equal to {name} limit of {}",
                                    quantity::display(limit_value)
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
}

const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];

fn probe(p: &Value, path: &FieldPath, success_must_be_one: bool, errs: &mut Vec<FieldError>) {
    let handlers: Vec<&str> = PROBE_HANDLERS
        .iter()
        .copied()
        .filter(|key| p.get(*key).is_some_and(|h| !h.is_null()))
        .collect();
    match handlers.as_slice() {
        [] => errs.push(required(path.clone(), "must specify a handler type")),
        [_] => {}
        [_, rest @ ..] => {
            for key in rest {
                errs.push(forbidden(
                    path.child(key),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        non_negative(p, key, path, errs);
    }
    if success_must_be_one {
        if let Some(v) = p
            .get("successThreshold")
            .filter(|v| v.as_i64().is_some_and(|n| n != 1))
        {
            errs.push(invalid(path.child("successThreshold"), v, "must be 1"));
        }
    }
    if let Some(get) = p.get("httpGet").filter(|g| g.is_object()) {
        port_num_or_name(get.get("port"), &path.child("httpGet").child("port"), errs);
        one_of(
            get,
            "scheme",
            &path.child("httpGet"),
            &["HTTP", "HTTPS"],
            errs,
        );
    }
    if let Some(tcp) = p.get("tcpSocket").filter(|g| g.is_object()) {
        port_num_or_name(
            tcp.get("port"),
            &path.child("tcpSocket").child("port"),
            errs,
        );
    }
}

/// `ValidatePodUpdate`: only images, a shorter `activeDeadlineSeconds`, added tolerations, a
/// negative grace period set to 1, and removed scheduling gates may change.
pub(crate) fn validate_pod_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let empty = json!({});
    let old_spec = old.get("spec").unwrap_or(&empty);
    let new_spec = new.get("spec").unwrap_or(&empty);
    let old_deadline = old_spec
        .get("activeDeadlineSeconds")
        .filter(|v| !v.is_null());
    match new_spec
        .get("activeDeadlineSeconds")
        .filter(|v| !v.is_null())
    {
        Some(new_deadline) => {
            if let (Some(old_n), Some(new_n)) =
                (old_deadline.and_then(Value::as_i64), new_deadline.as_i64())
            {
                if old_n < new_n {
                    errs.push(invalid(
                        path.child("activeDeadlineSeconds"),
                        new_deadline,
                        "must be less than or equal to previous value",
                    ));
                    return;
                }
            }
        }
        None => {
            if old_deadline.is_some() {
                errs.push(invalid(
                    path.child("activeDeadlineSeconds"),
                    &Value::Null,
                    "must not update from a positive integer to nil value",
                ));
                return;
            }
        }
    }
    let mut munged = new_spec.clone();
    if let Some(map) = munged.as_object_mut() {
        for key in ["containers", "initContainers"] {
            if let Some(list) = map.get_mut(key).and_then(Value::as_array_mut) {
                for (i, c) in list.iter_mut().enumerate() {
                    let old_image = at(old_spec, &[key])
                        .and_then(|l| l.get(i))
                        .and_then(|c| c.get("image"))
                        .cloned();
                    if let (Some(old_image), Some(c)) = (old_image, c.as_object_mut()) {
                        c.insert("image".to_owned(), old_image);
                    }
                }
            }
        }
        let copy_old = |map: &mut serde_json::Map<String, Value>, key: &str| match old_spec.get(key)
        {
            Some(v) => {
                map.insert(key.to_owned(), v.clone());
            }
            None => {
                map.remove(key);
            }
        };
        copy_old(map, "activeDeadlineSeconds");
        let old_tolerations = items(old_spec, "tolerations");
        let new_tolerations = items(new_spec, "tolerations");
        if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
            copy_old(map, "tolerations");
        }
        let old_grace = old_spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        let new_grace = new_spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
            copy_old(map, "terminationGracePeriodSeconds");
        }
        let old_gates = items(old_spec, "schedulingGates");
        let new_gates = items(new_spec, "schedulingGates");
        if new_gates.iter().all(|g| old_gates.contains(g)) {
            copy_old(map, "schedulingGates");
        }
    }
    if &munged != old_spec {
        let mut diff = Vec::new();
        diff_paths(old_spec, &munged, "spec", &mut diff);
        let mut detail =
            format!("pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}");
        for line in diff.iter().take(20) {
            detail.push('\n');
            detail.push_str(line);
        }
        errs.push(forbidden(path, detail));
    }
}

/// The differing leaves of two JSON values, as `  path: old -> new` lines.
fn diff_paths(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                if x != y {
                    diff_paths(x, y, &format!("{path}.{key}"), out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    diff_paths(x, y, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => out.push(format!("  {path}: {old} -> {new}")),
    }
}

/// `NotSupported` for a restart policy other than `allowed` in a template.
pub(crate) fn template_restart_policy(
    template: Option<&Value>,
    path: &FieldPath,
    allowed: &[&str],
    errs: &mut Vec<FieldError>,
) {
    let policy = template
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("restartPolicy"))
        .cloned()
        .unwrap_or(json!("Always"));
    if !allowed.contains(&policy.as_str().unwrap_or("")) {
        errs.push(not_supported(
            path.child("spec").child("restartPolicy"),
            &policy,
            allowed,
        ));
    }
}
