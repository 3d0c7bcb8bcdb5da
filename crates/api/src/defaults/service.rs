//! Service defaults, and the pure helpers the API server needs to allocate ClusterIPs and
//! NodePorts and to keep them across updates.

use serde_json::{json, Value};

use super::json::{existing_obj, items_mut, set_default, set_default_str, str_at};

/// `SetDefaults_Service`, plus the registry's `ipFamilyPolicy: SingleStack` for Services that get
/// a ClusterIP (`ipFamilies`/`clusterIPs` are set with the allocation).
pub(crate) fn defaults(obj: &mut Value) {
    let Some(spec) = existing_obj(obj, "spec") else {
        return;
    };
    set_default_str(spec, "sessionAffinity", "None");
    match str_at(spec, "sessionAffinity") {
        "None" => {
            if let Some(map) = spec.as_object_mut() {
                map.remove("sessionAffinityConfig");
            }
        }
        "ClientIP" => {
            let timeout = spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds");
            if timeout.is_none_or(Value::is_null) {
                spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
            }
        }
        _ => {}
    }
    set_default_str(spec, "type", "ClusterIP");
    let service_type = str_at(spec, "type").to_owned();
    for port in items_mut(spec, "ports") {
        if !port.is_object() {
            continue;
        }
        set_default_str(port, "protocol", "TCP");
        let target = port.get("targetPort");
        let target_unset = match target {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            _ => false,
        };
        if target_unset {
            if let Some(port_number) = port.get("port").filter(|p| p.is_number()).cloned() {
                port["targetPort"] = port_number;
            }
        }
    }
    let externally_accessible = matches!(service_type.as_str(), "NodePort" | "LoadBalancer")
        || spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty());
    if externally_accessible && service_type != "ExternalName" {
        set_default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        // A headless Service without a selector gets records for every family upstream.
        let selectorless = super::json::is_zero(spec.get("selector"));
        let policy = if str_at(spec, "clusterIP") == "None" && selectorless {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        set_default(spec, "ipFamilyPolicy", json!(policy));
    }
    if service_type == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// Whether the Service with this spec needs a ClusterIP allocated: not ExternalName, not
/// headless (`clusterIP: None`) and none set yet.
pub fn needs_cluster_ip(spec: &Value) -> bool {
    str_at(spec, "type") != "ExternalName" && str_at(spec, "clusterIP").is_empty()
}

/// Whether the Service object `obj` is headless (`spec.clusterIP: None`).
pub fn is_headless(obj: &Value) -> bool {
    obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None")
}

/// The indexes into `spec.ports` of the ports that need a NodePort allocated: every port without
/// one of a NodePort Service, or of a LoadBalancer Service unless
/// `allocateLoadBalancerNodePorts` is false.
pub fn ports_needing_node_port(obj: &Value) -> Vec<usize> {
    let Some(spec) = obj.get("spec") else {
        return Vec::new();
    };
    if !needs_node_ports(spec) {
        return Vec::new();
    }
    super::json::items(spec, "ports")
        .iter()
        .enumerate()
        .filter(|(_, port)| port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0)
        .map(|(index, _)| index)
        .collect()
}

/// Whether a LoadBalancer Service with `externalTrafficPolicy: Local` needs a
/// `healthCheckNodePort` allocated.
pub fn needs_health_check_node_port(obj: &Value) -> bool {
    let Some(spec) = obj.get("spec") else {
        return false;
    };
    str_at(spec, "type") == "LoadBalancer"
        && str_at(spec, "externalTrafficPolicy") == "Local"
        && spec
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
}

/// What upstream's Service registry does on update before validation: a PUT that leaves out
/// the allocated `clusterIP`/`clusterIPs`/`ipFamilies`/`ipFamilyPolicy`, or a port's `nodePort`
/// (matched by port number and protocol), keeps the old allocation — unless the type changes
/// to `ExternalName` (which releases the IPs) or to `ClusterIP` (which releases NodePorts).
pub fn carry_over_allocations(old: &Value, new: &mut Value) {
    let (Some(old_spec), Some(new_spec)) = (old.get("spec"), existing_obj(new, "spec")) else {
        return;
    };
    let new_type = str_at(new_spec, "type").to_owned();
    if new_type != "ExternalName" && str_at(old_spec, "type") != "ExternalName" {
        let empty = |v: Option<&Value>| super::json::is_zero(v);
        if empty(new_spec.get("clusterIP")) && empty(new_spec.get("clusterIPs")) {
            for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if let Some(value) = old_spec.get(key) {
                    if empty(new_spec.get(key)) {
                        new_spec[key] = value.clone();
                    }
                }
            }
        }
    }
    if matches!(new_type.as_str(), "NodePort" | "LoadBalancer") {
        let old_ports = super::json::items(old_spec, "ports");
        for port in items_mut(new_spec, "ports") {
            if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                continue;
            }
            let found = old_ports.iter().find(|old| {
                old.get("port") == port.get("port")
                    && str_at(old, "protocol") == str_at(port, "protocol")
            });
            if let Some(node_port) = found.and_then(|old| old.get("nodePort")).cloned() {
                if port.is_object() && !node_port.is_null() {
                    port["nodePort"] = node_port;
                }
            }
        }
        if new_spec
            .get("healthCheckNodePort")
            .is_none_or(Value::is_null)
        {
            if let Some(port) = old_spec.get("healthCheckNodePort").cloned() {
                new_spec["healthCheckNodePort"] = port;
            }
        }
    }
}

/// Whether a Service of this spec has NodePorts: a NodePort Service, or a LoadBalancer one
/// unless `allocateLoadBalancerNodePorts` is false.
fn needs_node_ports(spec: &Value) -> bool {
    match str_at(spec, "type") {
        "NodePort" => true,
        "LoadBalancer" => {
            spec.get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

fn needs_health_check_port(spec: &Value) -> bool {
    str_at(spec, "type") == "LoadBalancer" && str_at(spec, "externalTrafficPolicy") == "Local"
}

fn externally_accessible(spec: &Value) -> bool {
    matches!(str_at(spec, "type"), "NodePort" | "LoadBalancer")
        || !super::json::items(spec, "externalIPs").is_empty()
}

/// Upstream's `dropTypeDependentFields` (the Service strategy's `PrepareForUpdate`): when an
/// update changes the type to one that no longer needs a ClusterIP, NodePorts or a health check
/// port, the values the old type had are dropped — but only those the client left unchanged
/// (changing one is still a validation error). Dropped allocations are released once the
/// update is stored.
pub fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    let (Some(old_spec), Some(new_spec)) = (old.get("spec"), existing_obj(new, "spec")) else {
        return;
    };
    let Some(map) = new_spec.as_object_mut() else {
        return;
    };
    let same = |map: &serde_json::Map<String, Value>, key: &str| {
        old_spec.get(key).filter(|v| !v.is_null()) == map.get(key).filter(|v| !v.is_null())
    };
    let new_type = map
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if str_at(old_spec, "type") != "ExternalName" && new_type == "ExternalName" {
        if same(map, "clusterIP") && same(map, "clusterIPs") {
            map.remove("clusterIP");
            map.remove("clusterIPs");
        }
        for key in ["ipFamilies", "ipFamilyPolicy"] {
            if same(map, key) {
                map.remove(key);
            }
        }
    }
    let new_view = Value::Object(map.clone());
    if needs_node_ports(old_spec) && !needs_node_ports(&new_view) {
        let node_ports = |ports: &[Value]| -> Vec<Value> {
            ports
                .iter()
                .map(|p| p.get("nodePort").cloned().unwrap_or(Value::Null))
                .collect()
        };
        let unchanged = node_ports(super::json::items(old_spec, "ports"))
            == node_ports(super::json::items(&new_view, "ports"));
        if unchanged {
            for port in items_mut(new_spec, "ports") {
                if let Some(port) = port.as_object_mut() {
                    port.remove("nodePort");
                }
            }
        }
    }
    let Some(map) = new_spec.as_object_mut() else {
        return;
    };
    let new_view = Value::Object(map.clone());
    if needs_health_check_port(old_spec)
        && !needs_health_check_port(&new_view)
        && same(map, "healthCheckNodePort")
    {
        map.remove("healthCheckNodePort");
    }
    if str_at(old_spec, "type") == "LoadBalancer" && new_type != "LoadBalancer" {
        for key in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
            if same(map, key) {
                map.remove(key);
            }
        }
    }
    if externally_accessible(old_spec)
        && !externally_accessible(&new_view)
        && same(map, "externalTrafficPolicy")
    {
        map.remove("externalTrafficPolicy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ports_and_carry_over() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [
            {"port": 80, "protocol": "TCP", "nodePort": 30080},
            {"port": 443, "protocol": "TCP"}]}});
        assert_eq!(ports_needing_node_port(&svc), vec![1]);
        let lb = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80}]}});
        assert!(ports_needing_node_port(&lb).is_empty());
        assert!(ports_needing_node_port(&json!({"spec": {"ports": [{"port": 80}]}})).is_empty());
        let local = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}});
        assert!(needs_health_check_node_port(&local));

        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.7",
            "clusterIPs": ["10.43.0.7"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}});
        carry_over_allocations(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());

        let mut external = json!({"spec": {"type": "ExternalName", "externalName": "x.example"}});
        carry_over_allocations(&old, &mut external);
        assert!(external["spec"].get("clusterIP").is_none());
        assert!(needs_cluster_ip(&json!({"type": "ClusterIP"})));
        assert!(!needs_cluster_ip(&json!({"clusterIP": "None"})));
    }

    #[test]
    fn a_type_change_drops_what_the_new_type_does_not_need() {
        let node_port = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.7",
            "clusterIPs": ["10.43.0.7"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "externalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        // NodePort → ClusterIP, as `kubectl patch -p '{"spec":{"type":"ClusterIP"}}'` sends it.
        let mut cluster_ip = node_port.clone();
        cluster_ip["spec"]["type"] = json!("ClusterIP");
        drop_type_dependent_fields(&node_port, &mut cluster_ip);
        assert!(cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
        assert!(cluster_ip["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(cluster_ip["spec"]["clusterIP"], "10.43.0.7", "still needed");
        // A changed NodePort is the client's doing: kept, for validation to refuse.
        let mut changed = node_port.clone();
        changed["spec"]["type"] = json!("ClusterIP");
        changed["spec"]["ports"][0]["nodePort"] = json!(30081);
        drop_type_dependent_fields(&node_port, &mut changed);
        assert_eq!(changed["spec"]["ports"][0]["nodePort"], 30081);
        // → ExternalName: the ClusterIP goes too.
        let mut external = node_port.clone();
        external["spec"]["type"] = json!("ExternalName");
        external["spec"]["externalName"] = json!("db.example.com");
        drop_type_dependent_fields(&node_port, &mut external);
        for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            assert!(external["spec"].get(key).is_none(), "{key}: {external}");
        }
        assert!(external["spec"]["ports"][0].get("nodePort").is_none());
        // No type change: nothing dropped.
        let mut same = node_port.clone();
        drop_type_dependent_fields(&node_port, &mut same);
        assert_eq!(same, node_port);
    }
}
