//! Checks of the configuration, storage, networking, RBAC and CRD kinds.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::{forbidden, immutable, invalid, names, not_supported, one_of, required, string};
use crate::defaults::json::items;
use crate::well_known;
use crate::{FieldError, FieldErrorKind, FieldPath};

/// Upstream's cap on ConfigMap and Secret data (`core.MaxSecretSize`).
const MAX_DATA_SIZE: usize = 1024 * 1024;

fn too_long_total(errs: &mut Vec<FieldError>) {
    errs.push(FieldError::new(
        FieldErrorKind::TooLong,
        FieldPath::default(),
        None,
        format!("may not be more than {MAX_DATA_SIZE} bytes"),
    ));
}

pub(crate) fn config_map(obj: &Value, errs: &mut Vec<FieldError>) {
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    let mut total = 0;
    for (key, value) in data.into_iter().flatten() {
        let path = FieldPath::new("data").key(key);
        for msg in names::config_map_key(key) {
            errs.push(invalid(path.clone(), &json!(key), msg));
        }
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.push(invalid(
                path,
                &json!(key),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in binary.into_iter().flatten() {
        let path = FieldPath::new("binaryData").key(key);
        for msg in names::config_map_key(key) {
            errs.push(invalid(path.clone(), &json!(key), msg));
        }
        if data.is_some_and(|d| d.contains_key(key)) {
            errs.push(invalid(
                path,
                &json!(key),
                "duplicate of key present in data",
            ));
        }
        total += value.as_str().map_or(0, |v| v.len() * 3 / 4);
    }
    if total > MAX_DATA_SIZE {
        too_long_total(errs);
    }
}

/// Whether `text` is standard base64 (the JSON form of `[]byte`).
fn is_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|&&c| c == b'=').count();
    padding <= 2
        && bytes[..bytes.len() - padding]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

pub(crate) fn secret(obj: &Value, errs: &mut Vec<FieldError>) {
    let data = obj.get("data").and_then(Value::as_object);
    let string_data = obj.get("stringData").and_then(Value::as_object);
    let mut total = 0;
    let mut keys = HashSet::new();
    for (key, value) in data.into_iter().flatten() {
        let path = FieldPath::new("data").key(key);
        for msg in names::config_map_key(key) {
            errs.push(invalid(path.clone(), &json!(key), msg));
        }
        match value.as_str() {
            Some(text) if is_base64(text) => total += text.len() * 3 / 4,
            _ => errs.push(invalid(path, value, "must be base64-encoded bytes")),
        }
        keys.insert(key.as_str());
    }
    for (key, value) in string_data.into_iter().flatten() {
        let path = FieldPath::new("stringData").key(key);
        for msg in names::config_map_key(key) {
            errs.push(invalid(path.clone(), &json!(key), msg));
        }
        total += value.as_str().map_or(0, str::len);
        keys.insert(key.as_str());
    }
    if total > MAX_DATA_SIZE {
        too_long_total(errs);
    }
    let data_path = FieldPath::new("data");
    let need = |key: &str, keys: &HashSet<&str>, errs: &mut Vec<FieldError>| {
        if !keys.contains(key) {
            errs.push(required(data_path.key(key), ""));
        }
    };
    match string(obj, "type") {
        well_known::SECRET_TYPE_SERVICE_ACCOUNT_TOKEN => {
            let name = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(required(
                    FieldPath::new("metadata")
                        .child("annotations")
                        .key(well_known::ANNOTATION_SERVICE_ACCOUNT_NAME),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => need(".dockercfg", &keys, errs),
        "kubernetes.io/dockerconfigjson" => need(".dockerconfigjson", &keys, errs),
        "kubernetes.io/basic-auth" if !keys.contains("username") && !keys.contains("password") => {
            need("username", &keys, errs);
            need("password", &keys, errs);
        }
        "kubernetes.io/ssh-auth" => need("ssh-privatekey", &keys, errs),
        "kubernetes.io/tls" => {
            need("tls.crt", &keys, errs);
            need("tls.key", &keys, errs);
        }
        _ => {}
    }
}

/// ConfigMap/Secret updates: `immutable: true` freezes data, and a Secret's type never changes.
pub(crate) fn immutable_data(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if old.get("kind").and_then(Value::as_str) == Some("Secret") || old.get("type").is_some() {
        let (old_type, new_type) = (string(old, "type"), string(new, "type"));
        if old_type != new_type {
            errs.push(immutable(FieldPath::new("type"), &json!(new_type)));
        }
    }
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    const MESSAGE: &str = "field is immutable when `immutable` is set";
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(forbidden(FieldPath::new("immutable"), MESSAGE));
    }
    for key in ["data", "binaryData", "stringData"] {
        if old.get(key) != new.get(key) && !(key == "stringData" && new.get(key).is_none()) {
            errs.push(forbidden(FieldPath::new(key), MESSAGE));
        }
    }
}

pub(crate) fn namespace(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, finalizer) in obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = finalizer.as_str().unwrap_or("");
        let path = FieldPath::new("spec").child("finalizers").index(i);
        for msg in names::qualified_name(name) {
            errs.push(invalid(path.clone(), &json!(name), msg));
        }
    }
}

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

pub(crate) fn persistent_volume_claim(obj: &Value, errs: &mut Vec<FieldError>) {
    claim_spec(obj.get("spec"), &FieldPath::new("spec"), errs);
}

/// `ValidatePersistentVolumeClaimSpec`, for claims and claim templates.
pub(crate) fn claim_spec(spec: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let spec = spec.filter(|s| s.is_object()).unwrap_or(&empty);
    let modes = items(spec, "accessModes");
    let from_source = ["dataSource", "dataSourceRef"]
        .iter()
        .any(|k| spec.get(*k).is_some_and(|s| !s.is_null()));
    if modes.is_empty() {
        errs.push(required(
            path.child("accessModes"),
            "at least 1 access mode is required",
        ));
    }
    for mode in modes {
        if !mode.as_str().is_some_and(|m| ACCESS_MODES.contains(&m)) {
            errs.push(not_supported(path.child("accessModes"), mode, ACCESS_MODES));
        }
    }
    let storage = spec.pointer("/resources/requests/storage");
    match storage {
        None | Some(Value::Null) if !from_source => {
            errs.push(required(path.child("resources").key("storage"), ""));
        }
        None | Some(Value::Null) => {}
        Some(q) => match crate::quantity::parse(q) {
            None => errs.push(invalid(
                path.child("resources").key("storage"),
                q,
                crate::quantity::QUANTITY_FORMAT,
            )),
            Some(n) if n <= 0.0 => errs.push(invalid(
                path.child("resources").key("storage"),
                &json!(crate::quantity::display(q)),
                "must be greater than zero",
            )),
            Some(_) => {}
        },
    }
    one_of(spec, "volumeMode", path, &["Block", "Filesystem"], errs);
}

/// A claim's spec is immutable except for `resources.requests` and `volumeAttributesClassName`.
pub(crate) fn persistent_volume_claim_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let strip = |obj: &Value| -> Value {
        let mut spec = obj.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(map) = spec.as_object_mut() {
            map.remove("volumeAttributesClassName");
            if let Some(resources) = map.get_mut("resources").and_then(Value::as_object_mut) {
                resources.remove("requests");
            }
            // The binder fills in volumeName once (upstream: "volumeName changes are allowed
            // once", from empty); leaving it unset is not a change either.
            let old_name = old
                .pointer("/spec/volumeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if old_name.is_empty() {
                map.remove("volumeName");
            } else if map.get("volumeName").is_none() {
                map.insert("volumeName".to_owned(), Value::from(old_name));
            }
        }
        spec
    };
    if strip(old) != strip(new) {
        errs.push(forbidden(
            FieldPath::new("spec"),
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
}

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

pub(crate) fn ingress(obj: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let empty = json!({});
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    let rules = items(spec, "rules");
    if default_backend.is_none() && rules.is_empty() {
        errs.push(invalid(
            path.clone(),
            &json!("rules"),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        ingress_backend(backend, &path.child("defaultBackend"), errs);
    }
    let class = string(spec, "ingressClassName");
    if !class.is_empty() {
        for msg in names::dns1123_subdomain(class) {
            errs.push(invalid(path.child("ingressClassName"), &json!(class), msg));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = path.child("rules").index(i);
        let host = string(rule, "host");
        if !host.is_empty() {
            host_name(host, &rule_path.child("host"), errs);
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let http_path = rule_path.child("http");
        let paths = items(http, "paths");
        if paths.is_empty() {
            errs.push(required(http_path.child("paths"), ""));
        }
        for (j, entry) in paths.iter().enumerate() {
            let entry_path = http_path.child("paths").index(j);
            let text = string(entry, "path");
            match entry.get("pathType") {
                None | Some(Value::Null) => errs.push(required(
                    entry_path.child("pathType"),
                    "pathType must be specified",
                )),
                Some(Value::String(t)) if t == "Exact" || t == "Prefix" => {
                    if !text.starts_with('/') {
                        errs.push(invalid(
                            entry_path.child("path"),
                            &json!(text),
                            "must be an absolute path",
                        ));
                    }
                    for sequence in ["//", "/./", "/../", "%2f", "%2F"] {
                        if text.contains(sequence) {
                            errs.push(invalid(
                                entry_path.child("path"),
                                &json!(text),
                                format!("must not contain '{sequence}'"),
                            ));
                        }
                    }
                    for suffix in ["/..", "/."] {
                        if text.ends_with(suffix) {
                            errs.push(invalid(
                                entry_path.child("path"),
                                &json!(text),
                                format!("cannot end with '{suffix}'"),
                            ));
                        }
                    }
                }
                Some(Value::String(t)) if t == "ImplementationSpecific" => {
                    if !text.is_empty() && !text.starts_with('/') {
                        errs.push(invalid(
                            entry_path.child("path"),
                            &json!(text),
                            "must be an absolute path",
                        ));
                    }
                }
                Some(other) => errs.push(not_supported(
                    entry_path.child("pathType"),
                    other,
                    PATH_TYPES,
                )),
            }
            match entry.get("backend").filter(|b| !b.is_null()) {
                Some(backend) => ingress_backend(backend, &entry_path.child("backend"), errs),
                None => errs.push(required(entry_path.child("backend"), "")),
            }
        }
    }
    for (i, tls) in items(spec, "tls").iter().enumerate() {
        for (j, host) in items(tls, "hosts").iter().enumerate() {
            host_name(
                host.as_str().unwrap_or(""),
                &path.child("tls").index(i).child("hosts").index(j),
                errs,
            );
        }
    }
}

fn host_name(host: &str, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if names::is_ip(host) {
        errs.push(invalid(
            path.clone(),
            &json!(host),
            "must be a DNS name, not an IP address",
        ));
        return;
    }
    if let Some(rest) = host.strip_prefix("*.") {
        if !names::dns1123_subdomain(rest).is_empty() {
            errs.push(invalid(
                path.clone(),
                &json!(host),
                names::regex_error(
                    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character",
                    "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                    &["*.example.com"],
                ),
            ));
        }
        return;
    }
    for msg in names::dns1123_subdomain(host) {
        errs.push(invalid(path.clone(), &json!(host), msg));
    }
}

fn ingress_backend(backend: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|s| !s.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => {
            errs.push(invalid(
                path.clone(),
                &json!(""),
                "cannot set both resource and service backends",
            ));
            return;
        }
        (None, None) => {
            errs.push(invalid(
                path.clone(),
                &json!(""),
                "resource or service backend is required",
            ));
            return;
        }
        _ => {}
    }
    let Some(service) = service else {
        return;
    };
    let service_path = path.child("service");
    let name = string(service, "name");
    if name.is_empty() {
        errs.push(required(service_path.child("name"), ""));
    } else {
        for msg in names::dns1035_label(name) {
            errs.push(invalid(service_path.child("name"), &json!(name), msg));
        }
    }
    let port = service.get("port").filter(|p| !p.is_null());
    let port_path = service_path.child("port");
    let port_name = port.map(|p| string(p, "name")).unwrap_or("");
    let number = port.and_then(|p| p.get("number")).filter(|n| !n.is_null());
    let has_number = number.is_some_and(|n| n.as_i64() != Some(0));
    match (port_name.is_empty(), has_number) {
        (false, true) => errs.push(invalid(
            port_path,
            &json!(""),
            "cannot set both port name & port number",
        )),
        (true, false) => errs.push(required(port_path, "port name or number is required")),
        (false, false) => {
            for msg in names::port_name(port_name) {
                errs.push(invalid(port_path.child("name"), &json!(port_name), msg));
            }
        }
        (true, true) => {
            if let Some(number) = number {
                super::pod::port_number(number, &port_path.child("number"), errs);
            }
        }
    }
}

/// Role (`namespaced`) and ClusterRole rules.
pub(crate) fn role(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in items(obj, "rules").iter().enumerate() {
        let path = FieldPath::new("rules").index(i);
        if items(rule, "verbs").is_empty() {
            errs.push(required(
                path.child("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = items(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let value = rule.get("nonResourceURLs").unwrap_or(&Value::Null);
            if namespaced {
                errs.push(invalid(
                    path.child("nonResourceURLs"),
                    value,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if ["apiGroups", "resources", "resourceNames"]
                .iter()
                .any(|k| !items(rule, k).is_empty())
            {
                errs.push(invalid(
                    path.child("nonResourceURLs"),
                    value,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if items(rule, "apiGroups").is_empty() {
            errs.push(required(
                path.child("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if items(rule, "resources").is_empty() {
            errs.push(required(
                path.child("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// RoleBinding (`namespaced`) and ClusterRoleBinding.
pub(crate) fn role_binding(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("roleRef");
    let empty = json!({});
    let role_ref = obj
        .get("roleRef")
        .filter(|r| r.is_object())
        .unwrap_or(&empty);
    let group = role_ref.get("apiGroup").cloned().unwrap_or(json!(""));
    if group.as_str() != Some(RBAC_GROUP) {
        errs.push(not_supported(path.child("apiGroup"), &group, &[RBAC_GROUP]));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = role_ref.get("kind").cloned().unwrap_or(json!(""));
    if !kind.as_str().is_some_and(|k| kinds.contains(&k)) {
        errs.push(not_supported(path.child("kind"), &kind, kinds));
    }
    let name = string(role_ref, "name");
    if name.is_empty() {
        errs.push(required(path.child("name"), ""));
    } else {
        for msg in names::name_is_path_segment(name, false) {
            errs.push(invalid(path.child("name"), &json!(name), msg));
        }
    }
    for (i, subject) in items(obj, "subjects").iter().enumerate() {
        let path = FieldPath::new("subjects").index(i);
        let name = string(subject, "name");
        if name.is_empty() {
            errs.push(required(path.child("name"), ""));
        }
        let group = subject.get("apiGroup").cloned().unwrap_or(json!(""));
        match string(subject, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for msg in names::dns1123_subdomain(name) {
                        errs.push(invalid(path.child("name"), &json!(name), msg));
                    }
                }
                if group.as_str().is_some_and(|g| !g.is_empty()) {
                    errs.push(not_supported(path.child("apiGroup"), &group, &[""]));
                }
                if !namespaced && string(subject, "namespace").is_empty() {
                    errs.push(required(path.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group.as_str() != Some(RBAC_GROUP) {
                    errs.push(not_supported(path.child("apiGroup"), &group, &[RBAC_GROUP]));
                }
            }
            other => errs.push(not_supported(
                path.child("kind"),
                &json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

pub(crate) fn role_binding_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if old.get("roleRef") != new.get("roleRef") {
        errs.push(invalid(
            FieldPath::new("roleRef"),
            new.get("roleRef").unwrap_or(&Value::Null),
            "cannot change roleRef",
        ));
    }
}

pub(crate) fn crd(obj: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let empty = json!({});
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    let group = string(spec, "group");
    let names_value = spec
        .get("names")
        .filter(|n| n.is_object())
        .unwrap_or(&empty);
    let plural = string(names_value, "plural");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !name.is_empty() && name != format!("{plural}.{group}") {
        errs.push(invalid(
            FieldPath::new("metadata").child("name"),
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(required(path.child("group"), ""));
    } else {
        for msg in names::dns1123_subdomain(group) {
            errs.push(invalid(path.child("group"), &json!(group), msg));
        }
        if !group.contains('.') {
            errs.push(invalid(
                path.child("group"),
                &json!(group),
                "should be a domain with at least one dot",
            ));
        }
    }
    match string(spec, "scope") {
        "" => errs.push(required(path.child("scope"), "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(not_supported(
            path.child("scope"),
            &json!(other),
            &["Cluster", "Namespaced"],
        )),
    }
    let names_path = path.child("names");
    for key in ["plural", "singular"] {
        let value = string(names_value, key);
        if value.is_empty() {
            if key == "plural" {
                errs.push(required(names_path.child(key), ""));
            }
            continue;
        }
        for msg in names::dns1035_label(value) {
            errs.push(invalid(names_path.child(key), &json!(value), msg));
        }
    }
    for key in ["kind", "listKind"] {
        let value = string(names_value, key);
        if value.is_empty() {
            errs.push(required(names_path.child(key), ""));
        } else if !names::dns1035_label(&value.to_lowercase()).is_empty() {
            errs.push(invalid(
                names_path.child(key),
                &json!(value),
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ));
        }
    }
    let versions = items(spec, "versions");
    let versions_value = spec.get("versions").unwrap_or(&Value::Null);
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        errs.push(invalid(
            path.child("versions"),
            versions_value,
            "must have exactly one version marked as storage version",
        ));
    }
    if !versions.is_empty()
        && !versions
            .iter()
            .any(|v| v.get("served").and_then(Value::as_bool) == Some(true))
    {
        errs.push(invalid(
            path.child("versions"),
            versions_value,
            "must have at least one version marked as served",
        ));
    }
    let mut seen = HashSet::new();
    for (i, version) in versions.iter().enumerate() {
        let version_path = path.child("versions").index(i);
        let version_name = string(version, "name");
        if version_name.is_empty() {
            errs.push(required(version_path.child("name"), ""));
        } else {
            for msg in names::dns1035_label(version_name) {
                errs.push(invalid(
                    version_path.child("name"),
                    &json!(version_name),
                    msg,
                ));
            }
            if !seen.insert(version_name) {
                errs.push(invalid(
                    path.child("versions"),
                    versions_value,
                    "must contain unique version names",
                ));
            }
        }
        let schema_path = version_path.child("schema").child("openAPIV3Schema");
        match version
            .get("schema")
            .and_then(|s| s.get("openAPIV3Schema"))
            .filter(|s| s.is_object())
        {
            None => errs.push(required(schema_path, "schemas are required")),
            Some(schema) => structural_root(schema, &schema_path, errs),
        }
    }
}

/// The basic structural-schema rules: an object at the root, and a type on every specified
/// property and array item (unless it preserves unknown fields or is int-or-string).
fn structural_root(schema: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    match schema.get("type").and_then(Value::as_str) {
        None | Some("") => errs.push(required(
            path.child("type"),
            "must not be empty at the root",
        )),
        Some("object") => {}
        Some(other) => errs.push(invalid(
            path.child("type"),
            &json!(other),
            "must be object at the root",
        )),
    }
    structural_children(schema, path, errs, 0);
}

fn structural_children(schema: &Value, path: &FieldPath, errs: &mut Vec<FieldError>, depth: usize) {
    // Schemas nest as deep as the user writes them; a bound keeps hostile input cheap.
    if depth > 64 {
        return;
    }
    let untyped_ok = |s: &Value| {
        s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true)
            || s.get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true)
    };
    let has_type = |s: &Value| {
        s.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
    };
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let property_path = path.child("properties").key(name);
            if property.is_object() && !has_type(property) && !untyped_ok(property) {
                errs.push(required(
                    property_path.child("type"),
                    "must not be empty for specified object fields",
                ));
            }
            structural_children(property, &property_path, errs, depth + 1);
        }
    }
    if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
        let item_path = path.child("items");
        if !has_type(item) && !untyped_ok(item) {
            errs.push(required(
                item_path.child("type"),
                "must not be empty for specified array items",
            ));
        }
        structural_children(item, &item_path, errs, depth + 1);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        structural_children(
            additional,
            &path.child("additionalProperties"),
            errs,
            depth + 1,
        );
    }
}

pub(crate) fn crd_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    for key in ["group", "scope"] {
        let (old_value, new_value) = (
            old.pointer(&format!("/spec/{key}")),
            new.pointer(&format!("/spec/{key}")),
        );
        if old_value != new_value {
            errs.push(immutable(
                path.child(key),
                new_value.unwrap_or(&Value::Null),
            ));
        }
    }
}
