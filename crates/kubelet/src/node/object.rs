//! The `Node` the kubelet registers and the status it reports, as upstream's kubelet writes them
//! (`pkg/kubelet/kubelet_node_status.go` and `nodestatus/setters.go`): pure functions of the
//! configuration, the node's readiness, the node read back from the API, and the clock.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use super::{NodeConfig, NodeReadiness};
use crate::clock;
use k3rs_api::well_known;

/// The `kubeletVersion` reported: the Kubernetes version k3rs serves (k8s-openapi's `v1_37`)
/// with k3rs's version as build metadata, as the server's `/version` has it.
pub fn kubelet_version() -> String {
    format!("v1.37.0+k3rs.{}", env!("CARGO_PKG_VERSION"))
}

/// The labels the kubelet puts on its Node, then the configured ones.
pub(crate) fn labels(config: &NodeConfig) -> BTreeMap<String, String> {
    let arch = config.node_info.architecture.as_str();
    let mut labels: BTreeMap<String, String> = [
        (well_known::LABEL_HOSTNAME, config.name.as_str()),
        (well_known::LABEL_OS, "linux"),
        (well_known::LABEL_ARCH, arch),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(instance_type) = config.instance_type.as_deref() {
        labels.insert(
            well_known::LABEL_INSTANCE_TYPE.to_owned(),
            instance_type.to_owned(),
        );
    }
    labels.extend(config.labels.clone());
    labels
}

/// The Node to create: labels, taints and the full status (nodes may be created with their
/// status, which is how the kubelet registers).
pub(crate) fn node_to_register(
    config: &NodeConfig,
    boot_id: &str,
    readiness: &NodeReadiness,
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
        status: Some(status(config, boot_id, readiness, None, now)),
    }
}

/// The merge patch that takes over an existing Node: the kubelet's and the configured labels
/// (other labels and the taints stay, as when a kubelet re-registers).
pub(crate) fn takeover_patch(config: &NodeConfig) -> serde_json::Value {
    serde_json::json!({"metadata": {"labels": labels(config)}})
}

fn quantities(map: &BTreeMap<String, String>) -> BTreeMap<String, Quantity> {
    map.iter()
        .map(|(name, quantity)| (name.clone(), Quantity(quantity.clone())))
        .collect()
}

/// The status to write at `now`, given the node's current one: every condition heartbeats at
/// `now` and keeps its `lastTransitionTime` unless its status changes (as the kubelet's
/// condition setters do).
pub(crate) fn status(
    config: &NodeConfig,
    boot_id: &str,
    readiness: &NodeReadiness,
    old: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
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
    let ready = match readiness {
        NodeReadiness::Ready => condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
        NodeReadiness::NotReady(message) => condition("Ready", "False", "KubeletNotReady", message),
    };
    let mut node_info = config.node_info.clone();
    node_info.boot_id = boot_id.to_owned();
    node_info.kubelet_version = kubelet_version();
    NodeStatus {
        allocatable: Some(quantities(&config.allocatable)),
        capacity: Some(quantities(&config.capacity)),
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
            ready,
        ]),
        addresses: Some(config.addresses.clone()),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: config.kubelet_port,
            }),
        }),
        node_info: Some(node_info),
        ..NodeStatus::default()
    }
}

/// 32 hex digits derived from a name, stable across restarts (a made-up `machineID`).
pub fn machine_id(name: &str) -> String {
    format!("{:032x}", name_hash(name, 0))
}

/// A UUID-shaped value derived from a name (a made-up `systemUUID`).
pub fn name_uuid(name: &str) -> String {
    uuid_text(name_hash(name, 1))
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
pub(crate) fn uuid_text(value: u128) -> String {
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

/// A fresh random boot ID (`nodeInfo.bootID` of a node that cannot read its own).
pub fn random_boot_id() -> String {
    uuid_text(rand::random())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSystemInfo};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn config(name: &str) -> NodeConfig {
        let mut config = NodeConfig::new(name);
        config.capacity = [("memory".to_owned(), "8Gi".to_owned())].into();
        config.allocatable = [("memory".to_owned(), "7Gi".to_owned())].into();
        config.addresses = vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: "100.64.0.7".into(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.into(),
            },
        ];
        config.node_info = NodeSystemInfo {
            architecture: "amd64".into(),
            operating_system: "linux".into(),
            ..NodeSystemInfo::default()
        };
        config
    }

    #[test]
    fn registers_like_a_kubelet() {
        let mut config = config("node-1");
        config.labels.insert("zone".into(), "a".into());
        config.instance_type = Some("hollow".into());
        let node = node_to_register(
            &config,
            "boot",
            &NodeReadiness::Ready,
            at("2026-01-01T00:00:00Z"),
        );
        let json = serde_json::to_value(&node).unwrap();
        assert_eq!(
            json["metadata"]["labels"]["kubernetes.io/hostname"],
            "node-1"
        );
        assert_eq!(json["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(json["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        assert_eq!(
            json["metadata"]["labels"]["node.kubernetes.io/instance-type"],
            "hollow"
        );
        assert_eq!(json["metadata"]["labels"]["zone"], "a");
        assert!(json["spec"].get("taints").is_none());
        let status = &json["status"];
        assert_eq!(status["capacity"]["memory"], "8Gi");
        assert_eq!(status["allocatable"]["memory"], "7Gi");
        assert_eq!(
            status["addresses"],
            serde_json::json!([
                {"type": "InternalIP", "address": "100.64.0.7"},
                {"type": "Hostname", "address": "node-1"},
            ])
        );
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(status["nodeInfo"]["kubeletVersion"], kubelet_version());
        assert_eq!(status["nodeInfo"]["bootID"], "boot");
        let ready = &status["conditions"][3];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(ready["lastHeartbeatTime"], "2026-01-01T00:00:00Z");
        assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn a_node_whose_runtime_is_not_ready_says_why() {
        let readiness = NodeReadiness::NotReady("container runtime network not ready".into());
        let status = status(
            &config("n"),
            "boot",
            &readiness,
            None,
            at("2026-01-01T00:00:00Z"),
        );
        let ready = &status.conditions.unwrap()[3];
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("container runtime network not ready")
        );
    }

    #[test]
    fn heartbeats_keep_transition_times_unless_the_status_changed() {
        let config = config("node-1");
        let first = status(
            &config,
            "boot",
            &NodeReadiness::Ready,
            None,
            at("2026-01-01T00:00:00Z"),
        );
        let mut old = first.clone();
        // The node lifecycle controller marked the node unreachable meanwhile.
        let conditions = old.conditions.as_mut().unwrap();
        conditions[3].status = "Unknown".into();
        let later = status(
            &config,
            "boot",
            &NodeReadiness::Ready,
            Some(&old),
            at("2026-01-01T00:01:00Z"),
        );
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
        let patch = takeover_patch(&config("n"));
        assert_eq!(patch["metadata"]["labels"]["kubernetes.io/hostname"], "n");
        assert_eq!(patch.as_object().unwrap().len(), 1);
    }
}
