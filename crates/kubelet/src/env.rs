//! A container's environment, as upstream's `makeEnvironmentVariables` builds it: service
//! links, `envFrom`, then `env` (literal values with `$(VAR)` expansion, and `valueFrom` field,
//! resource, ConfigMap and Secret references). Pure: the objects referenced are fetched by the
//! caller and handed in as [`EnvSources`].

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Pod, ResourceFieldSelector, Secret, Service,
};

use crate::volumes::downward_api::{self, NodeAllocatable};

/// Why a container's environment cannot be built: shown as `CreateContainerConfigError`
/// with upstream's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// The objects a container's environment may reference, fetched for it.
#[derive(Clone, Debug, Default)]
pub struct EnvSources {
    /// ConfigMaps of the pod's namespace by name; a name that was looked up and is missing maps
    /// to `None`.
    pub config_maps: HashMap<String, Option<ConfigMap>>,
    pub secrets: HashMap<String, Option<Secret>>,
    /// The Services whose links go into the environment: the pod's namespace's (when
    /// `enableServiceLinks` is not false) and the `kubernetes` Service of `default`.
    pub services: Vec<Service>,
    /// The node's allocatable resources: the value of a `resourceFieldRef` to a limit the
    /// container does not set.
    pub node_allocatable: NodeAllocatable,
    /// `status.hostIP(s)` and `status.podIP(s)`.
    pub host_ips: Vec<String>,
    pub pod_ips: Vec<String>,
}

/// The names of the ConfigMaps and Secrets a container's environment refers to.
pub fn referenced_objects(container: &Container) -> (Vec<String>, Vec<String>) {
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    for from in container.env_from.iter().flatten() {
        if let Some(cm) = &from.config_map_ref {
            config_maps.push(cm.name.clone());
        }
        if let Some(secret) = &from.secret_ref {
            secrets.push(secret.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = var.value_from.as_ref() else {
            continue;
        };
        if let Some(cm) = &from.config_map_key_ref {
            config_maps.push(cm.name.clone());
        }
        if let Some(secret) = &from.secret_key_ref {
            secrets.push(secret.name.clone());
        }
    }
    config_maps.sort();
    config_maps.dedup();
    secrets.sort();
    secrets.dedup();
    (config_maps, secrets)
}

/// Expands `$(VAR)` references as upstream's `expansion.Expand`: `$$` is a literal `$`, an
/// unknown or unterminated reference stays as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let (text, advance) = match rest.as_bytes()[0] {
                b'$' => ("$".to_owned(), 1),
                b'(' => match rest[1..].find(')') {
                    Some(end) => {
                        let name = &rest[1..=end];
                        let value = lookup(name).unwrap_or_else(|| format!("$({name})"));
                        (value, end + 2)
                    }
                    None => ("$(".to_owned(), 1),
                },
                _ => {
                    let ch = rest.chars().next().unwrap_or_default();
                    (format!("${ch}"), ch.len_utf8())
                }
            };
            out.push_str(&text);
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
}

/// `MY-SVC` → `MY_SVC`.
fn env_name(service: &str) -> String {
    service.to_uppercase().replace('-', "_")
}

/// The docker-link style variables of one Service (upstream's `envvars.FromServices`).
fn service_vars(service: &Service, out: &mut BTreeMap<String, String>) {
    let Some(spec) = service.spec.as_ref() else {
        return;
    };
    let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return;
    };
    let name = env_name(service.metadata.name.as_deref().unwrap_or_default());
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    let Some(first) = ports.first() else {
        return;
    };
    out.insert(format!("{name}_SERVICE_HOST"), ip.to_owned());
    out.insert(format!("{name}_SERVICE_PORT"), first.port.to_string());
    for port in ports {
        if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            out.insert(
                format!("{name}_SERVICE_PORT_{}", env_name(port_name)),
                port.port.to_string(),
            );
        }
    }
    let protocol = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())
    };
    out.insert(
        format!("{name}_PORT"),
        format!("{}://{ip}:{}", protocol(first).to_lowercase(), first.port),
    );
    for port in ports {
        let proto = protocol(port);
        let prefix = format!("{name}_PORT_{}_{}", port.port, proto.to_uppercase());
        out.insert(
            prefix.clone(),
            format!("{}://{ip}:{}", proto.to_lowercase(), port.port),
        );
        out.insert(format!("{prefix}_PROTO"), proto.to_lowercase());
        out.insert(format!("{prefix}_PORT"), port.port.to_string());
        out.insert(format!("{prefix}_ADDR"), ip.to_owned());
    }
}

/// The value of a `fieldRef` (upstream's `podFieldSelectorRuntimeValue`): the pod's metadata as
/// the downward API writes it, and the node, service account and IPs.
pub fn field_value(pod: &Pod, path: &str, sources: &EnvSources) -> Result<String, EnvError> {
    let spec = pod.spec.as_ref();
    let value = match path {
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => sources.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => sources.host_ips.join(","),
        "status.podIP" => sources.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => sources.pod_ips.join(","),
        metadata => downward_api::field_path_value(pod, metadata)
            .map_err(|err| EnvError(err.to_string()))?,
    };
    Ok(value)
}

/// The container's environment, ordered by name.
pub fn environment(
    pod: &Pod,
    container: &Container,
    sources: &EnvSources,
) -> Result<BTreeMap<String, String>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut service_env = BTreeMap::new();
    for service in &sources.services {
        service_vars(service, &mut service_env);
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(reference) = &from.config_map_ref {
            match sources.config_maps.get(&reference.name).cloned().flatten() {
                Some(cm) => {
                    for (key, value) in cm.data.unwrap_or_default() {
                        env.insert(format!("{prefix}{key}"), value);
                    }
                }
                None if reference.optional == Some(true) => {}
                None => {
                    return Err(EnvError(format!(
                        "configmap \"{}\" not found",
                        reference.name
                    )))
                }
            }
        }
        if let Some(reference) = &from.secret_ref {
            match sources.secrets.get(&reference.name).cloned().flatten() {
                Some(secret) => {
                    for (key, value) in secret.data.unwrap_or_default() {
                        env.insert(
                            format!("{prefix}{key}"),
                            String::from_utf8_lossy(&value.0).into_owned(),
                        );
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(EnvError(format!("secret \"{}\" not found", reference.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = var.value_from.as_ref() {
            if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path, sources)?
            } else if let Some(resource) = &from.resource_field_ref {
                // A reference without a container name is to this container.
                let selector = ResourceFieldSelector {
                    container_name: Some(
                        resource
                            .container_name
                            .clone()
                            .filter(|n| !n.is_empty())
                            .unwrap_or_else(|| container.name.clone()),
                    ),
                    ..resource.clone()
                };
                downward_api::resource_value(pod, &selector, &sources.node_allocatable)
                    .map_err(|err| EnvError(err.to_string()))?
            } else if let Some(key) = &from.config_map_key_ref {
                let optional = key.optional == Some(true);
                match sources.config_maps.get(&key.name).cloned().flatten() {
                    Some(cm) => match cm.data.and_then(|d| d.get(&key.key).cloned()) {
                        Some(value) => value,
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                key.key, key.name
                            )))
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError(format!("configmap \"{}\" not found", key.name))),
                }
            } else if let Some(key) = &from.secret_key_ref {
                let optional = key.optional == Some(true);
                match sources.secrets.get(&key.name).cloned().flatten() {
                    Some(secret) => match secret.data.and_then(|d| d.get(&key.key).cloned()) {
                        Some(value) => String::from_utf8_lossy(&value.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                key.key, key.name
                            )))
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError(format!("secret \"{}\" not found", key.name))),
                }
            } else {
                String::new()
            }
        } else {
            let text = var.value.clone().unwrap_or_default();
            let lookup = |name: &str| env.get(name).or_else(|| service_env.get(name)).cloned();
            expand(&text, &lookup)
        };
        env.insert(var.name.clone(), value);
    }
    for (key, value) in service_env {
        env.entry(key).or_insert(value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_matches_upstream() {
        assert_eq!(expand("x$(A)y", &lookup), "x1y");
        assert_eq!(expand("$(B)", &lookup), "$(B)");
        assert_eq!(expand("$$(A)", &lookup), "$(A)");
        assert_eq!(expand("$(A", &lookup), "$(A");
        assert_eq!(expand("a$", &lookup), "a$");
        assert_eq!(expand("$x", &lookup), "$x");
        assert_eq!(expand("$(EMPTY)-", &lookup), "-");
        assert_eq!(expand("é$(A)é", &lookup), "é1é");
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "labels": {"app": "web", "tier": "a\"b"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "default", "containers": [{
                "name": "app",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                "env": [
                    {"name": "GREETING", "value": "hi $(CFG_who)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                    {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                ],
            }]},
        }))
        .unwrap()
    }

    fn sources() -> EnvSources {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"who": "bob"}}))
                .unwrap();
        let secret: Secret = serde_json::from_value(
            json!({"metadata": {"name": "db"}, "data": {"password": "czNjcjN0"}}),
        )
        .unwrap();
        let kubernetes: Service = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
        }))
        .unwrap();
        EnvSources {
            config_maps: [("cfg".to_owned(), Some(cm))].into(),
            secrets: [("db".to_owned(), Some(secret))].into(),
            services: vec![kubernetes],
            node_allocatable: [
                (
                    "cpu".to_owned(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
                ),
                (
                    "memory".to_owned(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
                ),
            ]
            .into(),
            host_ips: vec!["192.0.2.10".into()],
            pod_ips: vec!["10.42.0.5".into()],
        }
    }

    #[test]
    fn builds_the_environment_as_upstream() {
        let p = pod();
        let container = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            referenced_objects(container),
            (vec!["cfg".to_owned()], vec!["db".to_owned()])
        );
        let env = environment(&p, container, &sources()).unwrap();
        assert_eq!(env["CFG_who"], "bob");
        assert_eq!(env["GREETING"], "hi bob");
        assert_eq!(env["POD"], "web");
        assert_eq!(env["IP"], "10.42.0.5");
        assert_eq!(env["LABEL"], "web");
        assert_eq!(env["MEM"], "64");
        assert_eq!(env["CPU"], "250");
        assert_eq!(env["CPU_LIMIT"], "2");
        assert_eq!(env["PASSWORD"], "s3cr3t");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.43.0.1");
        assert_eq!(env["KUBERNETES_SERVICE_PORT"], "443");
        assert_eq!(env["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert_eq!(env["KUBERNETES_PORT"], "tcp://10.43.0.1:443");
        assert_eq!(env["KUBERNETES_PORT_443_TCP_ADDR"], "10.43.0.1");
    }

    #[test]
    fn missing_references_are_upstreams_errors() {
        let p = pod();
        let container = &p.spec.as_ref().unwrap().containers[0];
        let mut s = sources();
        s.secrets.insert("db".into(), None);
        assert_eq!(
            environment(&p, container, &s).unwrap_err().to_string(),
            "secret \"db\" not found"
        );
        let mut s = sources();
        s.config_maps.insert("cfg".into(), None);
        assert_eq!(
            environment(&p, container, &s).unwrap_err().to_string(),
            "configmap \"cfg\" not found"
        );
        let mut s = sources();
        s.secrets.insert(
            "db".into(),
            Some(serde_json::from_value(json!({"metadata": {"name": "db"}, "data": {}})).unwrap()),
        );
        assert_eq!(
            environment(&p, container, &s).unwrap_err().to_string(),
            "couldn't find key password in Secret shop/db"
        );
    }
}
