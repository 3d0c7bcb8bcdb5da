//! The EndpointSlice and Endpoints controllers: for every Service with a selector, the pods it
//! selects as endpoints — one EndpointSlice per set of resolved ports (at most 100 endpoints
//! each), with upstream's `ready`/`serving`/`terminating` conditions, named target ports
//! resolved per pod, `publishNotReadyAddresses`, headless and hostname handling — and the legacy
//! Endpoints object (ready and not-ready addresses, no terminating pods). Services without a
//! selector are left to whoever writes their endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use k3rs_runtime::supervisor::Supervised;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, ObjectReference, Pod,
    Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::DeleteParams;
use kube::{Api, Client, ResourceExt};

use crate::error::{gone_ok, Error};
use crate::ownership::{controller_of, controller_ref};
use crate::post_params as params;
use crate::{pods, Context};
use k3rs_api::well_known;
use k3rs_runtime::cache::ObjectKey;
use k3rs_runtime::informer::{Change, Informer};
use k3rs_runtime::runner::Action;
use k3rs_runtime::Controller;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = well_known::LABEL_SERVICE_NAME;
/// The label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = well_known::LABEL_ENDPOINTSLICE_MANAGED_BY;
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label marking a headless Service's endpoints.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The most endpoints in one slice (upstream's `--max-endpoints-per-slice` default).
const MAX_PER_SLICE: usize = 100;

#[derive(Clone)]
struct Shared {
    client: Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    slices: Arc<Informer<EndpointSlice>>,
    endpoints: Arc<Informer<Endpoints>>,
}

/// Registers the handlers and starts the workers.
pub(crate) fn start(ctx: &Context) -> Supervised {
    let controller = Controller::new(&ctx.runtime, "endpointslice-controller");
    let shared = Shared {
        client: ctx.client.clone(),
        services: ctx.informers.get::<Service>(),
        pods: ctx.informers.get::<Pod>(),
        slices: ctx.informers.get::<EndpointSlice>(),
        endpoints: ctx.informers.get::<Endpoints>(),
    };
    let services = shared.services.clone();
    controller
        .reconciles(&shared.services)
        .watches(&shared.pods, move |change| {
            let pod = change.object();
            let namespace = pod.namespace().unwrap_or_default();
            let mut label_sets = vec![pod.metadata.labels.clone().unwrap_or_default()];
            if let Change::Applied { old: Some(old), .. } = change {
                label_sets.push(old.metadata.labels.clone().unwrap_or_default());
            }
            services
                .cache()
                .in_namespace(&namespace)
                .iter()
                .filter(|service| label_sets.iter().any(|labels| selects(service, labels)))
                .map(|service| ObjectKey::of(service.as_ref()))
                .collect::<Vec<_>>()
        })
        // A managed slice or Endpoints changed by someone else is put back.
        .watches(&shared.slices, |change| {
            let slice = change.object();
            managed_service(&slice.metadata)
                .map(|service| ObjectKey::new(slice.namespace().unwrap_or_default(), service))
        })
        .reconciles(&shared.endpoints)
        .workers(4)
        .run(move |key| {
            let shared = shared.clone();
            async move { sync(&shared, &key).await }
        })
}

fn managed_service(meta: &ObjectMeta) -> Option<String> {
    let labels = meta.labels.as_ref()?;
    (labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY))
        .then(|| labels.get(SERVICE_NAME_LABEL).cloned())
        .flatten()
}

/// The Service's selector, when it has a non-empty one (no selector: not ours to manage).
fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service
        .spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

fn selects(service: &Service, labels: &BTreeMap<String, String>) -> bool {
    selector(service).is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn is_external_name(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
}

fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// A pod's endpoint for a Service, or `None` when it is not one (no IP yet, finished, or —
/// without `publishNotReadyAddresses` — terminating for the legacy Endpoints).
fn endpoint_of(service: &Service, pod: &Pod) -> Option<Endpoint> {
    let ip = pod
        .status
        .as_ref()?
        .pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())?;
    if pods::is_finished(pod) {
        return None;
    }
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let serving = pods::is_ready(pod);
    let spec = pod.spec.as_ref();
    let hostname = spec
        .filter(|s| s.subdomain.as_deref() == service.metadata.name.as_deref())
        .and_then(|s| s.hostname.clone());
    Some(Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(publish || serving),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        ..Endpoint::default()
    })
}

/// The Service's ports resolved against one pod: a named target port is looked up among the
/// pod's container ports (by name and protocol); a port the pod does not have is left out.
fn ports_for(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    let mut ports = Vec::new();
    for port in service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
    {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        let number = match &port.target_port {
            None => Some(port.port),
            Some(IntOrString::Int(n)) => Some(*n),
            Some(IntOrString::String(name)) => containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port),
        };
        if let Some(number) = number {
            ports.push(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(protocol),
                app_protocol: port.app_protocol.clone(),
            });
        }
    }
    ports
}

/// Endpoints sharing one port mapping: the ports, and (pod name, endpoint) pairs.
type SliceGroup = (Vec<EndpointPort>, Vec<(String, Endpoint)>);
/// Legacy addresses sharing one port mapping: the ports, ready and not-ready addresses.
type SubsetGroup = (Vec<CorePort>, Vec<EndpointAddress>, Vec<EndpointAddress>);

/// The slices a Service should have: endpoints grouped by their resolved ports, sorted, in
/// chunks of at most [`MAX_PER_SLICE`].
fn desired_slices(
    service: &Service,
    selected: &[Arc<Pod>],
) -> Vec<(Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut groups: BTreeMap<String, SliceGroup> = BTreeMap::new();
    for pod in selected {
        let Some(endpoint) = endpoint_of(service, pod) else {
            continue;
        };
        let ports = ports_for(service, pod);
        let key = serde_json::to_string(&ports).unwrap_or_default();
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push((pod.name_any(), endpoint));
    }
    let mut slices = Vec::new();
    for (_, (ports, mut endpoints)) in groups {
        endpoints.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in endpoints.chunks(MAX_PER_SLICE) {
            slices.push((
                ports.clone(),
                chunk.iter().map(|(_, e)| e.clone()).collect(),
            ));
        }
    }
    slices
}

/// The legacy Endpoints subsets: addresses grouped by resolved ports, ready ones apart from
/// not-ready ones; terminating pods are left out unless `publishNotReadyAddresses`.
fn desired_subsets(service: &Service, selected: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let mut groups: BTreeMap<String, SubsetGroup> = BTreeMap::new();
    let mut sorted: Vec<&Arc<Pod>> = selected.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    for pod in sorted {
        let Some(endpoint) = endpoint_of(service, pod) else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() && !publish {
            continue;
        }
        let ports: Vec<CorePort> = ports_for(service, pod)
            .into_iter()
            .map(|p| CorePort {
                name: p.name.filter(|n| !n.is_empty()),
                port: p.port.unwrap_or(0),
                protocol: p.protocol,
                app_protocol: p.app_protocol,
            })
            .collect();
        if ports.is_empty()
            && service
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .is_some_and(|p| !p.is_empty())
        {
            continue;
        }
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let address = EndpointAddress {
            ip: endpoint.addresses[0].clone(),
            hostname: endpoint.hostname.clone(),
            node_name: endpoint.node_name.clone(),
            target_ref: endpoint.target_ref.clone(),
        };
        let group = groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(true);
        if ready {
            group.1.push(address);
        } else {
            group.2.push(address);
        }
    }
    groups
        .into_values()
        .map(|(ports, ready, not_ready)| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        })
        .collect()
}

async fn sync(shared: &Shared, key: &ObjectKey) -> Result<Action, Error> {
    let slices_api: Api<EndpointSlice> = Api::namespaced(shared.client.clone(), &key.namespace);
    let existing: Vec<Arc<EndpointSlice>> = shared
        .slices
        .cache()
        .in_namespace(&key.namespace)
        .into_iter()
        .filter(|s| managed_service(&s.metadata).as_deref() == Some(key.name.as_str()))
        .collect();
    let cached = shared.services.cache().get(key);
    if cached.is_none() && shared.endpoints.cache().get(key).is_some() {
        // The Service is gone: so are its Endpoints (whoever wrote them).
        let endpoints: Api<Endpoints> = Api::namespaced(shared.client.clone(), &key.namespace);
        gone_ok(endpoints.delete(&key.name, &DeleteParams::default()).await)?;
    }
    let service = cached.filter(|s| selector(s).is_some() && !is_external_name(s));
    let Some(service) = service else {
        // No Service, or one without a selector: the garbage collector removes slices of a
        // deleted Service; a selector that was removed leaves ours to delete here.
        for slice in existing {
            gone_ok(
                slices_api
                    .delete(&slice.name_any(), &DeleteParams::default())
                    .await,
            )?;
        }
        return Ok(Action::Done);
    };
    let selected: Vec<Arc<Pod>> = shared
        .pods
        .cache()
        .in_namespace(&key.namespace)
        .into_iter()
        .filter(|p| selects(&service, &p.metadata.labels.clone().unwrap_or_default()))
        .collect();
    sync_slices(&service, &selected, existing, &slices_api).await?;
    sync_endpoints(shared, &service, &selected).await?;
    Ok(Action::Done)
}

fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), service.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

async fn sync_slices(
    service: &Service,
    selected: &[Arc<Pod>],
    mut existing: Vec<Arc<EndpointSlice>>,
    api: &Api<EndpointSlice>,
) -> Result<(), Error> {
    let mut desired = desired_slices(service, selected);
    if desired.is_empty() {
        // Upstream keeps one empty slice per Service so clients see "no endpoints", not
        // "not synced".
        desired.push((Vec::new(), Vec::new()));
    }
    existing.sort_by_key(|s| s.name_any());
    let labels = slice_labels(service);
    let count = desired.len();
    for (index, (ports, endpoints)) in desired.into_iter().enumerate() {
        let wanted = EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Some(endpoints),
            ports: Some(ports),
            metadata: ObjectMeta {
                labels: Some(labels.clone()),
                owner_references: Some(vec![controller_ref(service)]),
                ..ObjectMeta::default()
            },
        };
        match existing.get(index) {
            Some(current) => {
                let same = current.endpoints.clone().unwrap_or_default()
                    == wanted.endpoints.clone().unwrap_or_default()
                    && current.ports.clone().unwrap_or_default()
                        == wanted.ports.clone().unwrap_or_default()
                    && current.metadata.labels.as_ref() == Some(&labels)
                    && controller_of(&current.metadata).map(|r| &r.uid)
                        == service.metadata.uid.as_ref();
                if !same {
                    let mut updated = wanted;
                    updated.metadata.name = current.metadata.name.clone();
                    updated.metadata.resource_version = current.metadata.resource_version.clone();
                    gone_ok(api.replace(&current.name_any(), &params(), &updated).await)?;
                }
            }
            None => {
                let mut created = wanted;
                created.metadata.generate_name = Some(format!("{}-", service.name_any()));
                api.create(&params(), &created).await?;
            }
        }
    }
    for extra in existing.iter().skip(count) {
        gone_ok(
            api.delete(&extra.name_any(), &DeleteParams::default())
                .await,
        )?;
    }
    Ok(())
}

async fn sync_endpoints(
    shared: &Shared,
    service: &Service,
    selected: &[Arc<Pod>],
) -> Result<(), Error> {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let api: Api<Endpoints> = Api::namespaced(shared.client.clone(), &namespace);
    let subsets = desired_subsets(service, selected);
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    let wanted = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    match shared.endpoints.cache().get_named(&namespace, &name) {
        Some(current) => {
            if current.subsets == wanted.subsets
                && current.metadata.labels == wanted.metadata.labels
            {
                return Ok(());
            }
            let mut updated = wanted;
            updated.metadata.resource_version = current.metadata.resource_version.clone();
            updated.metadata.annotations = current.metadata.annotations.clone();
            gone_ok(api.replace(&name, &params(), &updated).await)?;
        }
        None => match api.create(&params(), &wanted).await.map_err(Error::from) {
            Err(err) if err.is_conflict() => {}
            other => drop(other?),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(publish: bool) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "s1"},
            "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": publish, "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9090, "targetPort": 9100},
            ]},
        }))
        .unwrap()
    }

    fn pod(
        name: &str,
        ip: Option<&str>,
        ready: bool,
        terminating: bool,
        http: Option<i32>,
    ) -> Arc<Pod> {
        let ports = http.map_or(json!([]), |p| json!([{"name": "http", "containerPort": p}]));
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"},
                    "deletionTimestamp": if terminating { json!("2026-01-01T00:00:00Z") } else { json!(null) }},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIP": ip, "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn slices_group_by_resolved_ports_with_upstreams_conditions() {
        let pods = vec![
            pod("b", Some("10.42.0.2"), true, false, Some(8080)),
            pod("a", Some("10.42.0.1"), false, false, Some(8080)),
            pod("c", Some("10.42.0.3"), true, true, Some(8080)),
            pod("d", Some("10.42.0.4"), true, false, Some(8081)),
            pod("pending", None, false, false, Some(8080)),
        ];
        let slices = desired_slices(&service(false), &pods);
        assert_eq!(slices.len(), 2, "two port mappings");
        let (ports, endpoints) = &slices[0];
        assert_eq!(ports[0].port, Some(8080));
        assert_eq!(ports[1].port, Some(9100));
        let summary: Vec<_> = endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap();
                (e.addresses[0].clone(), c.ready, c.serving, c.terminating)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("10.42.0.1".into(), Some(false), Some(false), Some(false)),
                ("10.42.0.2".into(), Some(true), Some(true), Some(false)),
                ("10.42.0.3".into(), Some(false), Some(true), Some(true)),
            ]
        );
        // Legacy Endpoints: terminating pods left out, not-ready ones apart.
        let subsets = desired_subsets(&service(false), &pods);
        let first = &subsets[0];
        assert_eq!(first.addresses.as_ref().unwrap().len(), 1);
        assert_eq!(
            first.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.42.0.1"
        );
        // publishNotReadyAddresses: everything is ready.
        let slices = desired_slices(&service(true), &pods);
        assert!(slices[0]
            .1
            .iter()
            .all(|e| e.conditions.as_ref().unwrap().ready == Some(true)));
    }

    #[test]
    fn a_missing_named_port_is_left_out() {
        let ports = ports_for(
            &service(false),
            &pod("x", Some("10.0.0.1"), true, false, None),
        );
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].name.as_deref(), Some("metrics"));
    }
}
