//! ClusterIP and NodePort allocation for Services, never handing out one twice.
//!
//! Each allocated address is an `IPAddress` object (networking.k8s.io/v1, named by the address,
//! as upstream's allocator records them) and each NodePort a record under `/k3rs/nodeports/`.
//! Creating the record is the claim: the store's create-if-absent makes it atomic, across
//! concurrent requests and restarts alike. A record is given back when its Service is deleted or
//! an update drops the value; what a crash leaves behind (a claim whose Service was never
//! written, a deleted Service whose records were not yet removed) is put right by [`repair`]
//! at start, upstream's repair loops done once before any request is served.

use crate::internal_error::InternalError;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k3rs_api::cidr::Ipv4Net;
use k3rs_store::{Store, StoreError};
use serde_json::{json, Value};

use super::error::ApiError;
use super::objects::{collection_prefix, meta_str, object_key};
use super::registry::Registry;

/// The `managed-by` label of the IPAddress records this allocator writes; repair touches no
/// other records.
const MANAGED_BY: &str = "ipallocator.k3rs.io";
/// Where NodePort records live.
const PORT_PREFIX: &str = "/k3rs/nodeports/";

/// The NodePort range, as upstream's default.
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// Why a `--service-cidr` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServiceCidrError {
    /// It is not an IPv4 range.
    #[error(transparent)]
    Parse(#[from] k3rs_api::cidr::CidrError),
    /// Its prefix is shorter than 8 or longer than 30 bits.
    #[error("{0} needs a prefix length from 8 to 30")]
    PrefixLength(Ipv4Net),
}

/// An IPv4 service range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServiceCidr {
    range: Ipv4Net,
    /// How many addresses it spans (at most 2^24: the prefix is 8 or longer).
    size: u32,
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.range.fmt(f)
    }
}

impl ServiceCidr {
    /// Parses `a.b.c.d/n` (IPv4; `n` between 8 and 30).
    pub(crate) fn parse(cidr: &str) -> Result<ServiceCidr, ServiceCidrError> {
        let range = k3rs_api::cidr::parse_ipv4(cidr)?;
        if !(8..=30).contains(&range.prefix_len()) {
            return Err(ServiceCidrError::PrefixLength(range));
        }
        let size = u32::try_from(k3rs_api::cidr::size(range))
            .map_err(|_| ServiceCidrError::PrefixLength(range))?;
        Ok(ServiceCidr { range, size })
    }

    /// The address at `offset` in the range (`offset` below `size`).
    fn at(&self, offset: u32) -> Ipv4Addr {
        k3rs_api::cidr::nth_address(self.range, offset).unwrap_or(self.range.broadcast())
    }

    /// The first usable address: the `default/kubernetes` Service's.
    pub(crate) fn first(&self) -> Ipv4Addr {
        self.at(1)
    }

    /// Whether `ip` is a usable address of the range (neither network nor broadcast address).
    fn contains(&self, ip: Ipv4Addr) -> bool {
        self.range.contains(&ip) && ip != self.range.network() && ip != self.range.broadcast()
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
    format!("{PORT_PREFIX}{port}")
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
                "ipaddress.kubernetes.io/managed-by": MANAGED_BY,
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

/// Upstream's refusal of a requested ClusterIP: the field is `spec.clusterIPs` and the value
/// Go's `%#v` of the list (`[]string{"10.43.0.10"}`).
fn ip_not_allocated(service: &Value, spec: &Value, detail: &str) -> ApiError {
    let listed: Vec<String> = match spec.get("clusterIPs").and_then(Value::as_array) {
        Some(ips) if !ips.is_empty() => ips.iter().map(Value::to_string).collect(),
        _ => spec
            .get("clusterIP")
            .map(Value::to_string)
            .into_iter()
            .collect(),
    };
    let name = meta_str(service, "name").unwrap_or("");
    ApiError::invalid(
        "Service",
        "",
        name,
        &[k3rs_api::FieldError {
            kind: k3rs_api::FieldErrorKind::Invalid,
            field: k3rs_api::FieldPath::new("spec").child("clusterIPs"),
            value: Some(format!("[]string{{{}}}", listed.join(", "))),
            detail: detail.to_owned(),
        }],
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
            let parsed: Option<Ipv4Addr> = ip.parse().ok();
            if !parsed.is_some_and(|p| cidr.contains(p)) {
                return Err(ip_not_allocated(service, &spec, &format!("failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}")));
            }
            if !claim_ip(store, registry, ip, &namespace, &name).await? {
                return Err(ip_not_allocated(
                    service,
                    &spec,
                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
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

/// What [`repair`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Repaired {
    /// Records of addresses no Service holds, removed.
    pub(crate) released_ips: usize,
    /// Records of ports no Service holds, removed.
    pub(crate) released_ports: usize,
    /// Records written for values a Service holds without one.
    pub(crate) restored: usize,
}

/// Everything under `prefix`, read at one revision.
async fn list_all(store: &dyn Store, prefix: &str) -> Result<Vec<k3rs_store::KeyValue>, ApiError> {
    let page = store
        .list(prefix, k3rs_store::ListOptions::default())
        .await
        .map_err(ApiError::internal)?;
    Ok(page.items)
}

/// Who holds which ClusterIP and NodePort, read from the stored Services.
#[derive(Debug, Default)]
struct Holders {
    ips: BTreeMap<String, (String, String)>,
    ports: BTreeMap<i64, String>,
}

fn holders(services: &[Value]) -> Holders {
    let mut held = Holders::default();
    for service in services {
        let namespace = meta_str(service, "namespace").unwrap_or("").to_owned();
        let name = meta_str(service, "name").unwrap_or("").to_owned();
        let spec = service.get("spec");
        let listed = spec
            .and_then(|s| s.get("clusterIPs"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        let single = spec
            .and_then(|s| s.get("clusterIP"))
            .and_then(Value::as_str);
        for ip in listed.chain(single) {
            if ip.is_empty() || ip == "None" {
                continue;
            }
            if let Some((ns, other)) = held.ips.get(ip) {
                if (ns, other) != (&namespace, &name) {
                    // Nothing can undo a double allocation; upstream's repair reports it too.
                    tracing::error!(ip, first = %format!("{ns}/{other}"), second = %format!("{namespace}/{name}"), "two Services hold the same ClusterIP");
                }
                continue;
            }
            held.ips
                .insert(ip.to_owned(), (namespace.clone(), name.clone()));
        }
        for port in node_ports(Some(service)).into_iter().filter(|p| *p != 0) {
            let owner = format!("{namespace}/{name}");
            if let Some(other) = held.ports.get(&port).filter(|o| **o != owner) {
                tracing::error!(port, first = %other, second = %owner, "two Services hold the same NodePort");
                continue;
            }
            held.ports.insert(port, owner);
        }
    }
    held
}

/// Deletes a record the repair found orphaned, unless it changed or went meanwhile (the
/// precondition keeps a record a new claim rewrote); whether it was deleted.
async fn delete_unchanged(store: &dyn Store, kv: &k3rs_store::KeyValue) -> Result<bool, ApiError> {
    match store.delete(&kv.key, Some(kv.mod_revision)).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => Ok(false),
        Err(err) => Err(ApiError::internal(err)),
    }
}

/// Makes the allocation records match the stored Services: removes the records nothing holds
/// and writes the missing ones. Runs before the server accepts connections, so no claim is in
/// flight — upstream's periodic repair has to wait for a leak to persist across several runs
/// because its requests are; this one can be exact.
pub(crate) async fn repair(store: &dyn Store, registry: &Registry) -> Result<Repaired, ApiError> {
    let services = registry
        .find("", "v1", "services")
        .ok_or_else(|| ApiError::internal("the services resource is not registered"))?;
    let addresses = registry
        .find("networking.k8s.io", "v1", "ipaddresses")
        .ok_or_else(|| ApiError::internal("the ipaddresses resource is not registered"))?;
    let stored: Vec<Value> = list_all(store, &collection_prefix(&services, None))
        .await?
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect();
    let held = holders(&stored);
    let mut repaired = Repaired::default();

    let mut recorded_ips = std::collections::BTreeSet::new();
    for kv in list_all(store, &collection_prefix(&addresses, None)).await? {
        let Ok(record) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let ip = meta_str(&record, "name").unwrap_or("").to_owned();
        let ours = record
            .pointer("/metadata/labels/ipaddress.kubernetes.io~1managed-by")
            .and_then(Value::as_str)
            == Some(MANAGED_BY);
        if !ours || held.ips.contains_key(&ip) {
            recorded_ips.insert(ip);
            continue;
        }
        if delete_unchanged(store, &kv).await? {
            tracing::info!(ip, "released a ClusterIP no Service holds");
            repaired.released_ips += 1;
        }
    }
    for (ip, (namespace, name)) in &held.ips {
        if !recorded_ips.contains(ip) && claim_ip(store, registry, ip, namespace, name).await? {
            tracing::info!(ip, service = %format!("{namespace}/{name}"), "recorded a ClusterIP its Service held without a record");
            repaired.restored += 1;
        }
    }

    let mut recorded_ports = std::collections::BTreeSet::new();
    for kv in list_all(store, PORT_PREFIX).await? {
        let Some(port) = kv
            .key
            .strip_prefix(PORT_PREFIX)
            .and_then(|p| p.parse::<i64>().ok())
        else {
            continue;
        };
        if held.ports.contains_key(&port) {
            recorded_ports.insert(port);
            continue;
        }
        if delete_unchanged(store, &kv).await? {
            tracing::info!(port, "released a NodePort no Service holds");
            repaired.released_ports += 1;
        }
    }
    for (port, owner) in &held.ports {
        if !recorded_ports.contains(port) && claim_port(store, *port, owner).await? {
            tracing::info!(port, service = %owner, "recorded a NodePort its Service held without a record");
            repaired.restored += 1;
        }
    }
    Ok(repaired)
}

/// Creates the `default/kubernetes` Service on the first address of the range.
pub(crate) async fn bootstrap_kubernetes_service(
    store: &dyn Store,
    registry: &Registry,
    cidr: ServiceCidr,
    api_port: u16,
) -> Result<(), InternalError> {
    let resource = registry
        .find("", "v1", "services")
        .ok_or(InternalError::NotRegistered {
            resource: "services",
        })?;
    let key = object_key(&resource, Some("default"), "kubernetes");
    if store.get(&key).await?.is_some() {
        return Ok(());
    }
    let ip = cidr.first().to_string();
    claim_ip(store, registry, &ip, "default", "kubernetes")
        .await
        .map_err(|source| InternalError::Refused {
            operation: format!("claiming {ip} for default/kubernetes"),
            source,
        })?;
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
        Err(err) => Err(err.into()),
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
        assert_eq!(cidr.to_string(), "10.43.0.0/16");
        assert!(ServiceCidr::parse("fd00::/108").is_err());
        assert_eq!(
            ServiceCidr::parse("10.43.7.9/24").unwrap().first(),
            Ipv4Addr::new(10, 43, 7, 1)
        );
    }

    /// A crash between a claim and its Service write, and between a Service delete and its
    /// release, leaves records nothing holds; a store restored without the records leaves
    /// Services holding values nothing records. One repair fixes both; a second changes nothing.
    #[tokio::test]
    async fn repair_makes_the_records_match_the_services() {
        let dir = tempfile::tempdir().unwrap();
        let store = k3rs_store::SledStore::open(k3rs_store::SledStoreConfig {
            path: dir.path().join("db"),
            ..Default::default()
        })
        .unwrap();
        let store: &dyn Store = store.as_ref();
        let registry = Registry::builtin();
        let services = registry.find("", "v1", "services").unwrap();
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "a", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                "ports": [{"port": 80, "nodePort": 30010}]},
        });
        store
            .create(
                &object_key(&services, Some("default"), "a"),
                serde_json::to_vec(&service).unwrap(),
            )
            .await
            .unwrap();
        assert!(claim_ip(store, &registry, "10.43.0.11", "default", "gone")
            .await
            .unwrap());
        assert!(claim_port(store, 30011, "default/gone").await.unwrap());

        let repaired = repair(store, &registry).await.unwrap();
        assert_eq!(
            repaired,
            Repaired {
                released_ips: 1,
                released_ports: 1,
                restored: 2
            }
        );
        // The leaked values can be claimed again; the held ones cannot.
        assert!(claim_ip(store, &registry, "10.43.0.11", "default", "b")
            .await
            .unwrap());
        assert!(claim_port(store, 30011, "default/b").await.unwrap());
        assert!(!claim_ip(store, &registry, "10.43.0.10", "default", "c")
            .await
            .unwrap());
        assert!(!claim_port(store, 30010, "default/c").await.unwrap());
        release_claimed(
            store,
            &registry,
            &Claimed {
                ips: vec!["10.43.0.11".into()],
                ports: vec![30011],
            },
        )
        .await;
        assert_eq!(repair(store, &registry).await.unwrap(), Repaired::default());
    }
}
