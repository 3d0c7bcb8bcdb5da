//! ClusterIP and NodePort allocation for Services, never handing out one twice.
//!
//! Each allocated address is an `IPAddress` object (networking.k8s.io/v1, named by the address,
//! as upstream's allocator records them) and each NodePort a record under `/k3rs/nodeports/`.
//! Creating the record is the claim: the store's create-if-absent makes it atomic, across
//! concurrent requests and restarts alike.

use std::net::Ipv4Addr;

use k3rs_store::{Store, StoreError};
use serde_json::{json, Value};

use super::error::ApiError;
use super::objects::{meta_str, object_key};
use super::registry::Registry;

/// The NodePort range, as upstream's default.
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// An IPv4 service range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServiceCidr {
    base: u32,
    size: u32,
}

impl ServiceCidr {
    /// Parses `a.b.c.d/n` (IPv4; `n` between 8 and 30).
    pub(crate) fn parse(cidr: &str) -> Result<ServiceCidr, String> {
        let (ip, bits) = cidr
            .split_once('/')
            .ok_or_else(|| format!("service CIDR {cidr:?} has no prefix length"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("service CIDR {cidr:?} is not an IPv4 range"))?;
        let bits: u32 = bits
            .parse()
            .ok()
            .filter(|b| (8..=30).contains(b))
            .ok_or_else(|| format!("service CIDR {cidr:?} needs a prefix length from 8 to 30"))?;
        let size = 1u32 << (32 - bits);
        Ok(ServiceCidr {
            base: u32::from(ip) & !(size - 1),
            size,
        })
    }

    /// The address at `offset` in the range.
    fn at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + offset)
    }

    /// The first usable address: the `default/kubernetes` Service's.
    pub(crate) fn first(&self) -> Ipv4Addr {
        self.at(1)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.base && ip < self.base + self.size - 1
    }
}

/// What one allocation claimed, to give back if the write that needed it fails.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    ips: Vec<String>,
    ports: Vec<i64>,
}

fn ip_key(registry: &Registry, ip: &str) -> Result<String, ApiError> {
    let resource = registry
        .find("networking.k8s.io", "v1", "ipaddresses")
        .ok_or_else(|| ApiError::internal("the ipaddresses resource is not registered"))?;
    Ok(object_key(&resource, None, ip))
}

fn port_key(port: i64) -> String {
    format!("/k3rs/nodeports/{port}")
}

/// Claims `ip` for the Service `namespace/name`; `false` when it is taken.
async fn claim_ip(
    store: &dyn Store,
    registry: &Registry,
    ip: &str,
    namespace: &str,
    name: &str,
) -> Result<bool, ApiError> {
    let record = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": {
            "name": ip,
            "uid": super::objects::new_uid(),
            "creationTimestamp": super::objects::now_rfc3339(),
            "labels": {
                "ipaddress.kubernetes.io/ip-family": "IPv4",
                "ipaddress.kubernetes.io/managed-by": "ipallocator.k3rs.io",
            },
        },
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": namespace, "name": name}},
    });
    let bytes = k3rs_api::wire::to_vec(&record);
    match store.create(&ip_key(registry, ip)?, bytes).await {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(err) => Err(ApiError::internal(err)),
    }
}

async fn claim_port(store: &dyn Store, port: i64, owner: &str) -> Result<bool, ApiError> {
    match store
        .create(&port_key(port), owner.as_bytes().to_vec())
        .await
    {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(err) => Err(ApiError::internal(err)),
    }
}

fn invalid(service: &Value, field: k3rs_api::FieldPath, value: Value, detail: String) -> ApiError {
    let name = meta_str(service, "name").unwrap_or("");
    ApiError::invalid(
        "Service",
        "",
        name,
        &[k3rs_api::FieldError::invalid(field, &value, detail)],
    )
}

/// Gives `service` the ClusterIP and NodePorts it needs and does not have, claiming the ones it
/// asks for explicitly. Returns what was claimed.
pub(crate) async fn allocate(
    store: &dyn Store,
    registry: &Registry,
    cidr: ServiceCidr,
    service: &mut Value,
    old: Option<&Value>,
) -> Result<Claimed, ApiError> {
    let mut claimed = Claimed::default();
    match allocate_into(store, registry, cidr, service, old, &mut claimed).await {
        Ok(()) => Ok(claimed),
        Err(err) => {
            release_claimed(store, registry, &claimed).await;
            Err(err)
        }
    }
}

async fn allocate_into(
    store: &dyn Store,
    registry: &Registry,
    cidr: ServiceCidr,
    service: &mut Value,
    old: Option<&Value>,
    claimed: &mut Claimed,
) -> Result<(), ApiError> {
    use k3rs_api::defaults::service::{needs_cluster_ip, ports_needing_node_port};
    let namespace = meta_str(service, "namespace")
        .unwrap_or("default")
        .to_owned();
    let name = meta_str(service, "name").unwrap_or("").to_owned();
    let Some(spec) = service.get("spec").cloned() else {
        return Ok(());
    };
    let old_ip = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str);
    if needs_cluster_ip(&spec) {
        let start = rand::random_range(2..cidr.size - 1);
        let mut found = None;
        for step in 0..cidr.size - 3 {
            let offset = 2 + (start - 2 + step) % (cidr.size - 3);
            let ip = cidr.at(offset).to_string();
            if claim_ip(store, registry, &ip, &namespace, &name).await? {
                found = Some(ip);
                break;
            }
        }
        let ip = found.ok_or_else(|| {
            invalid(
                service,
                k3rs_api::FieldPath::new("spec").child("clusterIPs"),
                Value::Null,
                "failed to allocate IP: range is full".into(),
            )
        })?;
        claimed.ips.push(ip.clone());
        set_cluster_ip(service, &ip);
    } else if let Some(ip) = spec.get("clusterIP").and_then(Value::as_str) {
        if ip != "None" && !ip.is_empty() && Some(ip) != old_ip {
            let field = k3rs_api::FieldPath::new("spec")
                .child("clusterIPs")
                .index(0);
            let parsed: Option<Ipv4Addr> = ip.parse().ok();
            if !parsed.is_some_and(|p| cidr.contains(p)) {
                return Err(invalid(service, field, json!(ip), format!("failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is the service CIDR")));
            }
            if !claim_ip(store, registry, ip, &namespace, &name).await? {
                return Err(invalid(
                    service,
                    field,
                    json!(ip),
                    format!("failed to allocate IP {ip}: provided IP is already allocated"),
                ));
            }
            claimed.ips.push(ip.to_owned());
            set_cluster_ip(service, ip);
        }
    }
    // Explicit NodePorts that are new to this Service are claimed; missing ones are allocated.
    let old_ports: Vec<i64> = node_ports(old);
    let owner = format!("{namespace}/{name}");
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (index, port) in ports.iter().enumerate() {
        let Some(wanted) = port
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|p| *p != 0)
        else {
            continue;
        };
        if old_ports.contains(&wanted) {
            continue;
        }
        let field = k3rs_api::FieldPath::new("spec")
            .child("ports")
            .index(index)
            .child("nodePort");
        if !NODE_PORTS.contains(&wanted) {
            return Err(invalid(
                service,
                field,
                json!(wanted),
                "provided port is not in the valid range. The range of valid ports is 30000-32767"
                    .into(),
            ));
        }
        if !claim_port(store, wanted, &owner).await? {
            return Err(invalid(
                service,
                field,
                json!(wanted),
                "provided port is already allocated".into(),
            ));
        }
        claimed.ports.push(wanted);
    }
    for index in ports_needing_node_port(service) {
        let span = NODE_PORTS.end() - NODE_PORTS.start() + 1;
        let start = rand::random_range(0..span);
        let mut found = None;
        for step in 0..span {
            let port = NODE_PORTS.start() + (start + step) % span;
            if claim_port(store, port, &owner).await? {
                found = Some(port);
                break;
            }
        }
        let port = found.ok_or_else(|| {
            invalid(
                service,
                k3rs_api::FieldPath::new("spec")
                    .child("ports")
                    .index(index)
                    .child("nodePort"),
                Value::Null,
                "failed to allocate a node port: range is full".into(),
            )
        })?;
        claimed.ports.push(port);
        if let Some(entry) = service.pointer_mut(&format!("/spec/ports/{index}")) {
            entry["nodePort"] = json!(port);
        }
    }
    Ok(())
}

fn set_cluster_ip(service: &mut Value, ip: &str) {
    if let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
        spec.entry("ipFamilyPolicy")
            .or_insert_with(|| json!("SingleStack"));
    }
}

fn node_ports(service: Option<&Value>) -> Vec<i64> {
    service
        .and_then(|s| s.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .collect()
}

async fn release_claimed(store: &dyn Store, registry: &Registry, claimed: &Claimed) {
    for ip in &claimed.ips {
        if let Ok(key) = ip_key(registry, ip) {
            forget(store, &key).await;
        }
    }
    for port in &claimed.ports {
        forget(store, &port_key(*port)).await;
    }
}

async fn forget(store: &dyn Store, key: &str) {
    match store.delete(key, None).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => {}
        Err(err) => tracing::warn!(key, error = %err, "releasing a service allocation failed"),
    }
}

/// Gives back what a failed write had claimed.
pub(crate) async fn release(store: &dyn Store, registry: &Registry, claimed: &Claimed) {
    release_claimed(store, registry, claimed).await;
}

/// Gives back the ClusterIP and NodePorts of a deleted Service (or those an update dropped:
/// pass the new object as `kept`).
pub(crate) async fn release_service(
    store: &dyn Store,
    registry: &Registry,
    service: &Value,
    kept: Option<&Value>,
) {
    let kept_ip = kept
        .and_then(|k| k.pointer("/spec/clusterIP"))
        .and_then(Value::as_str);
    let kept_ports = node_ports(kept);
    let mut claimed = Claimed::default();
    if let Some(ip) = service.pointer("/spec/clusterIP").and_then(Value::as_str) {
        if ip != "None" && !ip.is_empty() && Some(ip) != kept_ip {
            claimed.ips.push(ip.to_owned());
        }
    }
    claimed.ports = node_ports(Some(service))
        .into_iter()
        .filter(|p| !kept_ports.contains(p))
        .collect();
    release_claimed(store, registry, &claimed).await;
}

/// Creates the `default/kubernetes` Service on the first address of the range.
pub(crate) async fn bootstrap_kubernetes_service(
    store: &dyn Store,
    registry: &Registry,
    cidr: ServiceCidr,
    api_port: u16,
) -> Result<(), StoreError> {
    let resource = registry
        .find("", "v1", "services")
        .ok_or_else(|| StoreError::Backend("the services resource is not registered".into()))?;
    let key = object_key(&resource, Some("default"), "kubernetes");
    if store.get(&key).await?.is_some() {
        return Ok(());
    }
    let ip = cidr.first().to_string();
    claim_ip(store, registry, &ip, "default", "kubernetes")
        .await
        .map_err(|err| StoreError::Backend(err.message))?;
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "uid": super::objects::new_uid(),
            "creationTimestamp": super::objects::now_rfc3339(),
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
        },
        "status": {"loadBalancer": {}},
    });
    let bytes = k3rs_api::wire::to_vec(&service);
    match store.create(&key, bytes).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ranges() {
        let cidr = ServiceCidr::parse("10.43.0.0/16").unwrap();
        assert_eq!(cidr.first(), Ipv4Addr::new(10, 43, 0, 1));
        assert!(cidr.contains(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 43, 255, 255)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 44, 0, 1)));
        assert!(ServiceCidr::parse("10.43.0.0").is_err());
        assert!(ServiceCidr::parse("fd00::/108").is_err());
        assert_eq!(
            ServiceCidr::parse("10.43.7.9/24").unwrap().first(),
            Ipv4Addr::new(10, 43, 7, 1)
        );
    }
}
