//! Resource arithmetic: what a pod requests (upstream's `resource.PodRequests`: containers
//! summed, sidecars added, init containers as a maximum, pod-level requests and overhead) and
//! what a node can give (`status.allocatable`), in exact integers — millicores for CPU, bytes
//! for memory and ephemeral storage, counts for extended resources.

use std::collections::BTreeMap;

use k3rs_api::quantity;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// `cpu`.
pub const CPU: &str = "cpu";
/// `memory`.
pub const MEMORY: &str = "memory";
/// `ephemeral-storage`.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// `pods`: how many pods a node takes.
pub const PODS: &str = "pods";

/// The CPU a container without a CPU request counts as when scoring (upstream's
/// `DefaultMilliCPURequest`), so that best-effort pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory a container without a memory request counts as when scoring (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources, as the scheduler adds them up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Every other resource (extended resources, hugepages) by name, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// The amounts of a resource list (`requests`, `allocatable`, `overhead`); `pods` is left
    /// out (see [`allowed_pods`]) and a malformed quantity counts as zero (the API server
    /// refuses them, so none is stored).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut resources = Resources::default();
        for (name, amount) in list {
            resources.set(name, amount);
        }
        resources
    }

    fn set(&mut self, name: &str, amount: &Quantity) {
        match name {
            CPU => self.milli_cpu = quantity::milli_value(&amount.0).unwrap_or(0),
            MEMORY => self.memory = quantity::value(&amount.0).unwrap_or(0),
            EPHEMERAL_STORAGE => self.ephemeral_storage = quantity::value(&amount.0).unwrap_or(0),
            PODS => {}
            other => {
                self.scalar
                    .insert(other.to_owned(), quantity::value(&amount.0).unwrap_or(0));
            }
        }
    }

    /// Whether nothing is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }

    /// Adds `other` (saturating).
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_insert(0);
            *entry = entry.saturating_add(*value);
        }
    }

    /// Takes `other` away (the reverse of [`Resources::add`]); resources that reach zero are
    /// dropped from `scalar`.
    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            if let Some(entry) = self.scalar.get_mut(name) {
                *entry = entry.saturating_sub(*value);
                if *entry == 0 {
                    self.scalar.remove(name);
                }
            }
        }
    }

    /// Raises each amount to `other`'s where that is larger.
    pub fn set_max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_insert(0);
            *entry = (*entry).max(*value);
        }
    }
}

/// How missing container requests count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// As zero: what the pod really requests (the fit filter).
    Zero,
    /// As 100m CPU and 200 MiB memory: what scoring counts (upstream's "non-zero" requests).
    Defaulted,
}

fn container_requests(container: &Container, missing: Missing) -> Resources {
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    let mut resources = requests.map(Resources::from_list).unwrap_or_default();
    if missing == Missing::Defaulted {
        if requests.is_none_or(|r| !r.contains_key(CPU)) {
            resources.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if requests.is_none_or(|r| !r.contains_key(MEMORY)) {
            resources.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    resources
}

/// What `pod` requests (upstream's `PodRequests`): the sum of its containers and sidecars
/// (init containers with `restartPolicy: Always`, which keep running), or more if an init
/// container needs more while it runs (beside the sidecars started before it); pod-level
/// `spec.resources.requests` replace the containers' CPU and memory; `spec.overhead` is added.
pub fn pod_requests(pod: &Pod, missing: Missing) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = Resources::default();
    for container in &spec.containers {
        total.add(&container_requests(container, missing));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let requests = container_requests(container, missing);
        let running = if container.restart_policy.as_deref() == Some("Always") {
            total.add(&requests);
            sidecars.add(&requests);
            sidecars.clone()
        } else {
            let mut running = requests;
            running.add(&sidecars);
            running
        };
        init_peak.set_max(&running);
    }
    total.set_max(&init_peak);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        // Only CPU and memory are pod-level resources.
        if let Some(cpu) = pod_level.get(CPU) {
            total.milli_cpu = quantity::milli_value(&cpu.0).unwrap_or(0);
        }
        if let Some(memory) = pod_level.get(MEMORY) {
            total.memory = quantity::value(&memory.0).unwrap_or(0);
        }
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        total.add(&Resources::from_list(overhead));
    }
    total
}

/// What `node` offers pods (`status.allocatable`, without `pods`).
pub fn allocatable(node: &Node) -> Resources {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default()
}

/// How many pods `node` takes (`status.allocatable.pods`; none when unset, as upstream).
pub fn allowed_pods(node: &Node) -> i64 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(PODS))
        .and_then(|q| quantity::value(&q.0))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn container(requests: serde_json::Value) -> serde_json::Value {
        json!({"name": "c", "image": "x", "resources": {"requests": requests}})
    }

    #[test]
    fn quantities_in_every_notation() {
        let list: BTreeMap<String, Quantity> = serde_json::from_value(json!({
            "cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1e3",
            "example.com/gpu": "2", "pods": "110", "hugepages-2Mi": "4Mi"
        }))
        .unwrap();
        let resources = Resources::from_list(&list);
        assert_eq!(resources.milli_cpu, 500);
        assert_eq!(resources.memory, 1 << 30);
        assert_eq!(resources.ephemeral_storage, 1000);
        assert_eq!(
            resources.scalar,
            BTreeMap::from([
                ("example.com/gpu".to_owned(), 2),
                ("hugepages-2Mi".to_owned(), 4 << 20)
            ])
        );
    }

    #[test]
    fn containers_add_up_and_init_containers_are_a_peak() {
        // Upstream's example: init 2 CPU/1G and 2 CPU/3G, containers 2 CPU/1G and 1 CPU/1G.
        let pod = pod(json!({
            "initContainers": [container(json!({"cpu": "2", "memory": "1G"})),
                               container(json!({"cpu": "2", "memory": "3G"}))],
            "containers": [container(json!({"cpu": "2", "memory": "1G"})),
                           container(json!({"cpu": "1", "memory": "1G"}))],
        }));
        let requests = pod_requests(&pod, Missing::Zero);
        assert_eq!(requests.milli_cpu, 3000);
        assert_eq!(requests.memory, 3_000_000_000);
    }

    #[test]
    fn sidecars_keep_running_beside_later_init_containers() {
        let mut sidecar = container(json!({"cpu": "1"}));
        sidecar["restartPolicy"] = json!("Always");
        let pod = pod(json!({
            "initContainers": [sidecar, container(json!({"cpu": "3"}))],
            "containers": [container(json!({"cpu": "1"}))],
        }));
        // Containers 1 + sidecar 1 = 2; the second init container runs 3 beside the sidecar: 4.
        assert_eq!(pod_requests(&pod, Missing::Zero).milli_cpu, 4000);
    }

    #[test]
    fn overhead_and_pod_level_requests() {
        let pod = pod(json!({
            "containers": [container(json!({"cpu": "1", "memory": "1Mi", "example.com/gpu": "1"}))],
            "resources": {"requests": {"cpu": "250m"}},
            "overhead": {"cpu": "10m", "memory": "1Ki"},
        }));
        let requests = pod_requests(&pod, Missing::Zero);
        assert_eq!(requests.milli_cpu, 260);
        assert_eq!(requests.memory, (1 << 20) + 1024);
        assert_eq!(requests.scalar["example.com/gpu"], 1);
    }

    #[test]
    fn missing_requests_count_as_defaults_when_scoring() {
        let pod = pod(json!({"containers": [
            {"name": "a", "image": "x"},
            container(json!({"cpu": "0"})),
        ]}));
        assert!(pod_requests(&pod, Missing::Zero).is_zero());
        let scored = pod_requests(&pod, Missing::Defaulted);
        // An explicit zero stays zero.
        assert_eq!(scored.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(scored.memory, 2 * DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn arithmetic() {
        let mut a = Resources {
            milli_cpu: 100,
            scalar: BTreeMap::from([("x".to_owned(), 2)]),
            ..Resources::default()
        };
        let b = a.clone();
        a.add(&b);
        assert_eq!(a.milli_cpu, 200);
        a.subtract(&b);
        a.subtract(&b);
        assert!(a.is_zero());
        assert!(a.scalar.is_empty());
    }
}
