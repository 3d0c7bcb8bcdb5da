//! The `Node` a hollow node registers and the status it reports, as the kubelet writes them
//! (`pkg/kubelet/kubelet_node_status.go` and `nodestatus/setters.go`): pure functions of the
//! configuration, the node read back from the API, and the clock.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::clock;
use crate::HollowNodeConfig;
use k3rs_api::well_known;

/// The `kubeletVersion` reported: the Kubernetes version k3rs serves (k8s-openapi's `v1_37`)
/// with k3rs's version as build metadata, as the server's `/version` has it.
pub(crate) fn kubelet_version() -> String {
    format!("v1.37.0+k3rs.{}", env!("CARGO_PKG_VERSION"))
}

/// The kubelet's port, published in `status.daemonEndpoints` (nothing listens on it).
const KUBELET_PORT: i32 = 10250;

/// What identifies one running hollow node beyond its configuration.
#[derive(Clone, Debug)]
pub(crate) struct NodeIdentity {
    /// The node's InternalIP.
    pub(crate) internal_ip: Ipv4Addr,
    /// `nodeInfo.bootID`: new for every start, as after a reboot.
    pub(crate) boot_id: String,
}

impl NodeIdentity {
    /// A fresh identity (new boot ID) with `internal_ip`.
    pub(crate) fn new(internal_ip: Ipv4Addr) -> Self {
        NodeIdentity {
            internal_ip,
            boot_id: uuid_text(rand::random()),
        }
    }
}

/// The labels the kubelet puts on its Node, then the configured ones.
pub(crate) fn labels(config: &HollowNodeConfig) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = [
        (well_known::LABEL_HOSTNAME, config.name.as_str()),
        (well_known::LABEL_OS, "linux"),
        (well_known::LABEL_ARCH, "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
        (well_known::LABEL_INSTANCE_TYPE, "hollow"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    labels.extend(config.labels.clone());
    labels
}

/// The Node to create: labels, taints and the full status (nodes may be created with their
/// status, which is how the kubelet registers).
pub(crate) fn node_to_register(
    config: &HollowNodeConfig,
    identity: &NodeIdentity,
    now: Timestamp,
) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(labels(config)),
            // What the kubelet records about how it manages volumes (the attach/detach
            // controller reads it).
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!config.taints.is_empty()).then(|| config.taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(status(config, identity, None, now)),
    }
}

/// The merge patch that takes over an existing Node: the kubelet's and the configured labels
/// (other labels and the taints stay, as when a kubelet re-registers).
pub(crate) fn takeover_patch(config: &HollowNodeConfig) -> serde_json::Value {
    serde_json::json!({"metadata": {"labels": labels(config)}})
}

/// The status to write at `now`, given the node's current one: every condition heartbeats at
/// `now` and keeps its `lastTransitionTime` unless its status changes (as the kubelet's
/// condition setters do).
pub(crate) fn status(
    config: &HollowNodeConfig,
    identity: &NodeIdentity,
    old: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let capacity: BTreeMap<String, Quantity> = config
        .capacity
        .iter()
        .map(|(name, quantity)| (name.clone(), Quantity(quantity.clone())))
        .collect();
    let old_conditions = old.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        let transition = old_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| clock::time(now));
        NodeCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_heartbeat_time: Some(clock::time(now)),
            last_transition_time: Some(transition),
        }
    };
    NodeStatus {
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: identity.internal_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: identity.boot_id.clone(),
            container_runtime_version: format!("hollow://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: "hollow".into(),
            kube_proxy_version: String::new(),
            kubelet_version: kubelet_version(),
            machine_id: machine_id(&config.name),
            operating_system: "linux".into(),
            os_image: "k3rs hollow node".into(),
            system_uuid: uuid_text(name_hash(&config.name, 1)),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// `nodeInfo.machineID`: 32 hex digits derived from the name, stable across restarts.
fn machine_id(name: &str) -> String {
    format!("{:032x}", name_hash(name, 0))
}

/// A 128-bit value from the name (SipHash with fixed keys: the same in every process).
fn name_hash(name: &str, salt: u8) -> u128 {
    let half = |extra: u8| {
        let mut hasher = DefaultHasher::new();
        (salt, extra, name).hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// `value` in the 8-4-4-4-12 form of a UUID.
fn uuid_text(value: u128) -> String {
    let field = |shift: u32, bits: u32| (value >> shift) & ((1u128 << bits) - 1);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        field(96, 32),
        field(80, 16),
        field(64, 16),
        field(48, 16),
        field(0, 48)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn identity() -> NodeIdentity {
        NodeIdentity {
            internal_ip: Ipv4Addr::new(100, 64, 0, 7),
            boot_id: "boot".into(),
        }
    }

    #[test]
    fn registers_like_a_kubelet() {
        let mut config = HollowNodeConfig::new("hollow-1");
        config.labels.insert("zone".into(), "a".into());
        let node = node_to_register(&config, &identity(), at("2026-01-01T00:00:00Z"));
        let json = serde_json::to_value(&node).unwrap();
        assert_eq!(
            json["metadata"]["labels"]["kubernetes.io/hostname"],
            "hollow-1"
        );
        assert_eq!(json["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(json["metadata"]["labels"]["zone"], "a");
        assert!(json["spec"].get("taints").is_none());
        let status = &json["status"];
        assert_eq!(status["capacity"]["memory"], "8Gi");
        assert_eq!(status["allocatable"], status["capacity"]);
        assert_eq!(
            status["addresses"],
            serde_json::json!([
                {"type": "InternalIP", "address": "100.64.0.7"},
                {"type": "Hostname", "address": "hollow-1"},
            ])
        );
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(status["nodeInfo"]["kubeletVersion"], kubelet_version());
        let ready = &status["conditions"][3];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(ready["lastHeartbeatTime"], "2026-01-01T00:00:00Z");
        assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn heartbeats_keep_transition_times_unless_the_status_changed() {
        let config = HollowNodeConfig::new("hollow-1");
        let first = status(&config, &identity(), None, at("2026-01-01T00:00:00Z"));
        let mut old = first.clone();
        // The node lifecycle controller marked the node unreachable meanwhile.
        let conditions = old.conditions.as_mut().unwrap();
        conditions[3].status = "Unknown".into();
        let later = status(&config, &identity(), Some(&old), at("2026-01-01T00:01:00Z"));
        let conditions = later.conditions.unwrap();
        for condition in &conditions {
            assert_eq!(
                condition
                    .last_heartbeat_time
                    .as_ref()
                    .unwrap()
                    .0
                    .to_string(),
                "2026-01-01T00:01:00Z"
            );
        }
        assert_eq!(
            conditions[0]
                .last_transition_time
                .as_ref()
                .unwrap()
                .0
                .to_string(),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            conditions[3]
                .last_transition_time
                .as_ref()
                .unwrap()
                .0
                .to_string(),
            "2026-01-01T00:01:00Z"
        );
    }

    #[test]
    fn machine_ids_are_stable_per_name() {
        assert_eq!(machine_id("a"), machine_id("a"));
        assert_ne!(machine_id("a"), machine_id("b"));
        assert_eq!(machine_id("a").len(), 32);
        assert_eq!(
            uuid_text(0x0123456789abcdef0123456789abcdef),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
    }

    #[test]
    fn takeover_sets_only_labels() {
        let patch = takeover_patch(&HollowNodeConfig::new("n"));
        assert_eq!(patch["metadata"]["labels"]["kubernetes.io/hostname"], "n");
        assert_eq!(patch.as_object().unwrap().len(), 1);
    }
}
