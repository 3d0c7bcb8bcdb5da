//! What a hollow node looks like and how often it reports: the kubelet flags kubemark sets.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

/// One hollow node's configuration. [`HollowNodeConfig::new`] gives the kubelet's defaults;
/// change fields directly.
#[derive(Clone, Debug)]
pub struct HollowNodeConfig {
    /// The Node's name (a DNS subdomain), also its Lease's name and `kubernetes.io/hostname`.
    pub name: String,
    /// Labels on top of the kubelet's own (`kubernetes.io/hostname`, `kubernetes.io/os`,
    /// `kubernetes.io/arch`, `node.kubernetes.io/instance-type=hollow`); these win.
    pub labels: BTreeMap<String, String>,
    /// `status.capacity` (and `allocatable`, the same: a hollow node reserves nothing), as
    /// quantities. Default: cpu `4`, memory `8Gi`, pods `110`, ephemeral-storage `100Gi`.
    pub capacity: BTreeMap<String, String>,
    /// `spec.taints` when the node registers (`--register-with-taints`); an existing Node keeps
    /// its taints, as with the kubelet.
    pub taints: Vec<Taint>,
    /// The Lease's `leaseDurationSeconds`. Default 40, the kubelet's.
    pub lease_duration_seconds: i32,
    /// How often the Lease is renewed. Default 10 s (the kubelet renews at a quarter of the
    /// lease duration); tests shorten it.
    pub heartbeat_interval: Duration,
    /// How often the Node's status (the conditions' `lastHeartbeatTime`) is written. Default
    /// 10 s, the kubelet's `nodeStatusUpdateFrequency`.
    pub status_update_interval: Duration,
    /// How long the fake containers take to stop, at most the grace period the kubelet gives
    /// them (the pod's [`crate::annotations::STOP_AFTER_SECONDS`] wins): a deleted pod stays
    /// terminating — running, with its `deletionTimestamp` — for that long before the kubelet
    /// finishes the delete, as with containers that honour SIGTERM slowly. Default zero:
    /// containers stop at once.
    pub termination_delay: Duration,
}

impl HollowNodeConfig {
    /// The kubelet's defaults for a node called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        HollowNodeConfig {
            name: name.into(),
            labels: BTreeMap::new(),
            capacity: [
                ("cpu", "4"),
                ("memory", "8Gi"),
                ("pods", "110"),
                ("ephemeral-storage", "100Gi"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            taints: Vec::new(),
            lease_duration_seconds: 40,
            heartbeat_interval: Duration::from_secs(10),
            status_update_interval: Duration::from_secs(10),
            termination_delay: Duration::ZERO,
        }
    }

    /// The same configuration with `interval` for both the Lease and the Node status (what tests
    /// usually want: `Duration::from_secs(1)`).
    #[must_use]
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self.status_update_interval = interval;
        self
    }
}

impl Default for HollowNodeConfig {
    /// The defaults of [`HollowNodeConfig::new`] with an empty name (a template for
    /// [`crate::HollowCluster`], which names its nodes).
    fn default() -> Self {
        HollowNodeConfig::new("")
    }
}
