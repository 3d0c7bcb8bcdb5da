//! Service checks (upstream's `ValidateService`, `ValidateServiceUpdate`).

use std::collections::HashSet;

use serde_json::{json, Value};

use super::pod::{port_num_or_name, port_number};
use super::{duplicate, forbidden, invalid, names, one_of, required, string};
use crate::defaults::json::items;
use crate::{FieldError, FieldPath};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// The NodePort range k3rs allocates from (upstream's default).
pub(crate) const NODE_PORT_RANGE: (i64, i64) = (30000, 32767);

pub(crate) fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec");
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        errs.push(required(path.child("ports"), ""));
        return;
    };
    let service_type = match string(spec, "type") {
        "" => "ClusterIP",
        other => other,
    };
    one_of(spec, "type", &path, TYPES, errs);
    let cluster_ip = string(spec, "clusterIP");
    let headless = cluster_ip == "None";
    if service_type == "ExternalName" {
        let external_name = string(spec, "externalName");
        if external_name.is_empty() {
            errs.push(required(path.child("externalName"), ""));
        } else {
            let trimmed = external_name.strip_suffix('.').unwrap_or(external_name);
            for msg in names::dns1123_subdomain(trimmed) {
                errs.push(invalid(path.child("externalName"), &json!(trimmed), msg));
            }
        }
    } else {
        if items(spec, "ports").is_empty() && !headless {
            errs.push(required(path.child("ports"), ""));
        }
        if !cluster_ip.is_empty() && !headless && !names::is_ip(cluster_ip) {
            errs.push(invalid(
                path.child("clusterIPs").index(0),
                &json!(cluster_ip),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    if headless && service_type == "LoadBalancer" {
        errs.push(invalid(
            path.child("clusterIPs").index(0),
            &json!(cluster_ip),
            "may not be set to 'None' for LoadBalancer services",
        ));
    }
    ports(spec, service_type, &path, errs);
    one_of(spec, "sessionAffinity", &path, &["ClientIP", "None"], errs);
    if string(spec, "sessionAffinity") == "ClientIP" {
        if let Some(timeout) = spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds") {
            if !timeout.as_i64().is_some_and(|t| (1..=86400).contains(&t)) {
                errs.push(invalid(
                    path.child("sessionAffinityConfig")
                        .child("clientIP")
                        .child("timeoutSeconds"),
                    timeout,
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
    }
    super::meta::labels(spec.get("selector"), &path.child("selector"), errs);
    one_of(
        spec,
        "externalTrafficPolicy",
        &path,
        &["Cluster", "Local"],
        errs,
    );
    one_of(
        spec,
        "internalTrafficPolicy",
        &path,
        &["Cluster", "Local"],
        errs,
    );
    let externally_accessible = matches!(service_type, "NodePort" | "LoadBalancer")
        || !items(spec, "externalIPs").is_empty();
    if !externally_accessible && !string(spec, "externalTrafficPolicy").is_empty() {
        errs.push(invalid(
            path.child("externalTrafficPolicy"),
            spec.get("externalTrafficPolicy").unwrap_or(&Value::Null),
            "may only be set for externally-accessible services",
        ));
    }
    for (i, ip) in items(spec, "externalIPs").iter().enumerate() {
        let text = ip.as_str().unwrap_or("");
        if !names::is_ip(text) {
            errs.push(invalid(
                path.child("externalIPs").index(i),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    one_of(
        spec,
        "ipFamilyPolicy",
        &path,
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
        errs,
    );
}

fn ports(spec: &Value, service_type: &str, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let list = items(spec, "ports");
    let mut port_names = HashSet::new();
    let mut node_ports = HashSet::new();
    let mut port_protocols = HashSet::new();
    for (i, port) in list.iter().enumerate() {
        let port_path = path.child("ports").index(i);
        let name = string(port, "name");
        if name.is_empty() {
            if list.len() > 1 {
                errs.push(required(port_path.child("name"), ""));
            }
        } else {
            for msg in names::dns1123_label(name) {
                errs.push(invalid(port_path.child("name"), &json!(name), msg));
            }
            if !port_names.insert(name.to_owned()) {
                errs.push(duplicate(port_path.child("name"), &json!(name)));
            }
        }
        match port.get("port") {
            None | Some(Value::Null) => errs.push(invalid(
                port_path.child("port"),
                &json!(0),
                names::inclusive_range_error(1, 65535),
            )),
            Some(v) => port_number(v, &port_path.child("port"), errs),
        }
        one_of(port, "protocol", &port_path, &["SCTP", "TCP", "UDP"], errs);
        let protocol = match string(port, "protocol") {
            "" => "TCP",
            other => other,
        };
        if let Some(number) = port.get("port").and_then(Value::as_i64) {
            if !port_protocols.insert((number, protocol.to_owned())) {
                errs.push(duplicate(
                    port_path.clone(),
                    &json!({"port": number, "protocol": protocol}),
                ));
            }
        }
        match port.get("targetPort") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_i64() == Some(0) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            target => port_num_or_name(target, &port_path.child("targetPort"), errs),
        }
        let node_port = port.get("nodePort").filter(|n| !n.is_null());
        if let Some(node_port) = node_port.filter(|n| n.as_i64() != Some(0)) {
            if !matches!(service_type, "NodePort" | "LoadBalancer") {
                errs.push(forbidden(
                    port_path.child("nodePort"),
                    format!("may not be used when `type` is '{service_type}'"),
                ));
                continue;
            }
            match node_port.as_i64() {
                Some(n) if (NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1).contains(&n) => {
                    if !node_ports.insert((n, protocol.to_owned())) {
                        errs.push(duplicate(port_path.child("nodePort"), node_port));
                    }
                }
                _ => errs.push(invalid(
                    port_path.child("nodePort"),
                    node_port,
                    format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        NODE_PORT_RANGE.0, NODE_PORT_RANGE.1
                    ),
                )),
            }
        }
    }
}

fn primary_ip(spec: &Value) -> &str {
    items(spec, "clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| string(spec, "clusterIP"))
}

/// The allocated ClusterIP may not change, except when the type changes to or from
/// `ExternalName`.
pub(crate) fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let old_spec = old.get("spec").unwrap_or(&empty);
    let new_spec = new.get("spec").unwrap_or(&empty);
    if string(old_spec, "type") == "ExternalName" || string(new_spec, "type") == "ExternalName" {
        return;
    }
    let (old_ip, new_ip) = (primary_ip(old_spec), primary_ip(new_spec));
    if !old_ip.is_empty() && old_ip != new_ip {
        let value = new_spec
            .get("clusterIPs")
            .cloned()
            .unwrap_or_else(|| json!([new_ip]));
        errs.push(invalid(
            FieldPath::new("spec").child("clusterIPs").index(0),
            &value,
            "may not change once set",
        ));
    }
}
