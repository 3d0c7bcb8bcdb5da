//! Pod resources as cgroups: the QoS class of a pod, the cgroup parent of its sandbox under the
//! `kubepods` hierarchy (named for the cgroupfs or systemd driver, as upstream's cgroup manager
//! names them), and a container's CPU and memory settings and OOM score (upstream's
//! `kuberuntime_container_linux.go`, `qos/policy.go`).

use k8s_openapi::api::core::v1::{Container, Pod};

/// Which cgroup manager the runtime uses: raw cgroupfs paths, or systemd slices (only when
/// k3rs runs under systemd on cgroup v2, as k3s decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

/// A pod's quality-of-service class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// Upstream's `GetPodQOS`: BestEffort without requests or limits, Guaranteed when every
    /// container limits CPU and memory with requests equal to limits, Burstable otherwise. The
    /// API server records it as `status.qosClass`; the kubelet computes it the same way.
    pub fn of(pod: &Pod) -> QosClass {
        let Some(spec) = pod.spec.as_ref() else {
            return QosClass::BestEffort;
        };
        let containers: Vec<&Container> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .collect();
        let mut any = false;
        let mut guaranteed = !containers.is_empty();
        for container in containers {
            let resources = container.resources.clone().unwrap_or_default();
            let requests = resources.requests.unwrap_or_default();
            let limits = resources.limits.unwrap_or_default();
            if !requests.is_empty() || !limits.is_empty() {
                any = true;
            }
            for name in ["cpu", "memory"] {
                let limit = limits.get(name).map(|q| q.0.as_str());
                let request = requests.get(name).map(|q| q.0.as_str()).or(limit);
                let equal = match (limit, request) {
                    (Some(l), Some(r)) => {
                        k3rs_api::quantity::milli_value(l) == k3rs_api::quantity::milli_value(r)
                    }
                    _ => false,
                };
                if !equal {
                    guaranteed = false;
                }
            }
        }
        match (any, guaranteed) {
            (false, _) => QosClass::BestEffort,
            (true, true) => QosClass::Guaranteed,
            (true, false) => QosClass::Burstable,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl CgroupDriver {
    /// The cgroup parent of a pod's sandbox: `/kubepods/burstable/pod<uid>` (cgroupfs) or
    /// `kubepods-burstable-pod<uid>.slice` (systemd, with the uid's dashes as underscores);
    /// Guaranteed pods sit directly under `kubepods`.
    pub fn pod_cgroup(self, qos: QosClass, uid: &str) -> String {
        let tier = match qos {
            QosClass::Guaranteed => None,
            QosClass::Burstable => Some("burstable"),
            QosClass::BestEffort => Some("besteffort"),
        };
        match self {
            CgroupDriver::Cgroupfs => match tier {
                Some(tier) => format!("/kubepods/{tier}/pod{uid}"),
                None => format!("/kubepods/pod{uid}"),
            },
            CgroupDriver::Systemd => {
                let uid = uid.replace('-', "_");
                match tier {
                    Some(tier) => format!("kubepods-{tier}-pod{uid}.slice"),
                    None => format!("kubepods-pod{uid}.slice"),
                }
            }
        }
    }
}

/// The CFS period the kubelet sets (100 ms).
pub const CPU_PERIOD: i64 = 100_000;
const MIN_SHARES: i64 = 2;
const MIN_QUOTA: i64 = 1_000;

/// CPU shares from a request in millicores (upstream's `MilliCPUToShares`).
pub fn cpu_shares(milli: i64) -> i64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    (milli * 1024 / 1000).max(MIN_SHARES)
}

/// The CFS quota for a limit in millicores (upstream's `MilliCPUToQuota`); 0 for no limit.
pub fn cpu_quota(milli: i64) -> i64 {
    if milli <= 0 {
        return 0;
    }
    (milli * CPU_PERIOD / 1000).max(MIN_QUOTA)
}

/// The OOM score adjustment of a container (upstream's `GetContainerOOMScoreAdjust`).
pub fn oom_score_adj(qos: QosClass, memory_request: i64, memory_capacity: i64) -> i64 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            if memory_capacity <= 0 {
                return 999;
            }
            let adjust = 1000 - (1000 * memory_request) / memory_capacity;
            if adjust < 1000 - 997 {
                1000 - 997
            } else if adjust == 1000 {
                999
            } else {
                adjust
            }
        }
    }
}

/// A container's request or limit of `resource` in the unit the cgroups take (millicores for
/// cpu, bytes for memory).
pub fn quantity(container: &Container, limits: bool, resource: &str) -> Option<i64> {
    let resources = container.resources.as_ref()?;
    let map = if limits {
        resources.limits.as_ref()?
    } else {
        resources.requests.as_ref()?
    };
    let text = &map.get(resource)?.0;
    if resource == "cpu" {
        k3rs_api::quantity::milli_value(text)
    } else {
        k3rs_api::quantity::value(text)
    }
}

/// What a pod's own cgroup (`pod<uid>`) is given (upstream's `ResourceConfigForPod`): CPU
/// shares from the pod's requests always; a CFS quota (over [`CPU_PERIOD`]) and a memory limit
/// only when every container declares that limit (Guaranteed pods always do); BestEffort pods
/// get the minimum shares and nothing else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodResources {
    pub cpu_shares: i64,
    /// The CFS quota in µs per period; `None` for no limit.
    pub cpu_quota: Option<i64>,
    /// The memory limit in bytes; `None` for no limit.
    pub memory_limit: Option<i64>,
}

/// The effective request or limit of a pod for `resource` (upstream's `PodRequests`/`PodLimits`):
/// the sum over the app containers and the restartable (sidecar) init containers, or the
/// largest need of a one-shot init container (with the sidecars started before it) when that
/// is more, plus the pod's overhead. A request missing where a limit is set counts as the
/// limit, as the API's defaulting makes it.
fn pod_total(pod: &Pod, limits: bool, resource: &str) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let need = |container: &Container| {
        let own = quantity(container, limits, resource);
        let own = if limits {
            own
        } else {
            own.or_else(|| quantity(container, true, resource))
        };
        own.unwrap_or(0)
    };
    let mut sum: i64 = spec.containers.iter().map(need).sum();
    let mut sidecars = 0;
    let mut init_peak = 0;
    for init in spec.init_containers.iter().flatten() {
        if init.restart_policy.as_deref() == Some("Always") {
            sidecars += need(init);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars + need(init));
        }
    }
    sum += sidecars;
    let mut total = sum.max(init_peak);
    if let Some(overhead) = spec.overhead.as_ref().and_then(|o| o.get(resource)) {
        let value = if resource == "cpu" {
            k3rs_api::quantity::milli_value(&overhead.0)
        } else {
            k3rs_api::quantity::value(&overhead.0)
        };
        total += value.unwrap_or(0);
    }
    total
}

/// Whether every container (init containers included) declares a non-zero limit of `resource`.
fn limits_declared(pod: &Pod, resource: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .all(|c| quantity(c, true, resource).is_some_and(|v| v > 0))
}

impl PodResources {
    /// Upstream's `ResourceConfigForPod` (CPU limits enforced, no pod-level `resources`).
    pub fn of(pod: &Pod) -> PodResources {
        let qos = QosClass::of(pod);
        let shares = cpu_shares(pod_total(pod, false, "cpu"));
        let quota = Some(cpu_quota(pod_total(pod, true, "cpu"))).filter(|q| *q > 0);
        let memory = Some(pod_total(pod, true, "memory")).filter(|m| *m > 0);
        match qos {
            QosClass::Guaranteed => PodResources {
                cpu_shares: shares,
                cpu_quota: quota,
                memory_limit: memory,
            },
            QosClass::Burstable => PodResources {
                cpu_shares: shares,
                cpu_quota: quota.filter(|_| limits_declared(pod, "cpu")),
                memory_limit: memory.filter(|_| limits_declared(pod, "memory")),
            },
            QosClass::BestEffort => PodResources {
                cpu_shares: MIN_SHARES,
                cpu_quota: None,
                memory_limit: None,
            },
        }
    }

    /// The CPU requests in millicores that the pod adds to its QoS tier's shares (Burstable
    /// tier: the sum over its pods).
    pub fn cpu_request_milli(pod: &Pod) -> i64 {
        pod_total(pod, false, "cpu")
    }
}

/// CPU shares (cgroup v1, 2–262144) as a cgroup v2 `cpu.weight` (1–10000), as runc converts.
pub fn shares_to_weight(shares: i64) -> i64 {
    if shares <= 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}),
        )
        .unwrap()
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            QosClass::of(&pod(json!([{"name": "a"}]))),
            QosClass::BestEffort
        );
        assert_eq!(
            QosClass::of(&pod(
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}])
            )),
            QosClass::Guaranteed
        );
        assert_eq!(
            QosClass::of(&pod(
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}}])
            )),
            QosClass::Guaranteed
        );
        assert_eq!(
            QosClass::of(&pod(
                json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}])
            )),
            QosClass::Burstable
        );
    }

    #[test]
    fn cgroup_parents_follow_the_driver() {
        assert_eq!(
            CgroupDriver::Cgroupfs.pod_cgroup(QosClass::Burstable, "a-b"),
            "/kubepods/burstable/poda-b"
        );
        assert_eq!(
            CgroupDriver::Cgroupfs.pod_cgroup(QosClass::Guaranteed, "a-b"),
            "/kubepods/poda-b"
        );
        assert_eq!(
            CgroupDriver::Systemd.pod_cgroup(QosClass::BestEffort, "a-b"),
            "kubepods-besteffort-poda_b.slice"
        );
    }

    #[test]
    fn cpu_and_oom_settings() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(250), 256);
        assert_eq!(cpu_quota(0), 0);
        assert_eq!(cpu_quota(5), 1000);
        assert_eq!(cpu_quota(1500), 150_000);
        assert_eq!(oom_score_adj(QosClass::Guaranteed, 0, 1), -997);
        assert_eq!(oom_score_adj(QosClass::BestEffort, 0, 1), 1000);
        assert_eq!(oom_score_adj(QosClass::Burstable, 0, 100), 999);
        assert_eq!(oom_score_adj(QosClass::Burstable, 50, 100), 500);
        assert_eq!(oom_score_adj(QosClass::Burstable, 100, 100), 3);
    }

    #[test]
    fn pod_resources_follow_upstream() {
        let guaranteed = pod(json!([
            {"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "250m", "memory": "32Mi"}}}
        ]));
        assert_eq!(
            PodResources::of(&guaranteed),
            PodResources {
                cpu_shares: 768,
                cpu_quota: Some(75_000),
                memory_limit: Some(96 << 20)
            }
        );
        // Burstable: a limit only when every container declares it.
        let partial = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}}},
            {"name": "b", "resources": {"requests": {"memory": "10Mi"}}}
        ]));
        assert_eq!(
            PodResources::of(&partial),
            PodResources {
                cpu_shares: 102,
                cpu_quota: None,
                memory_limit: None
            }
        );
        let limited: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [
                    {"name": "init", "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "1Gi"}}}
                ],
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}}}
                ]
            }
        }))
        .unwrap();
        // The init container's larger need wins over the app containers' sum.
        assert_eq!(
            PodResources::of(&limited),
            PodResources {
                cpu_shares: 2048,
                cpu_quota: None,
                memory_limit: Some(1 << 30)
            }
        );
        assert_eq!(
            PodResources::of(&pod(json!([{"name": "a"}]))),
            PodResources {
                cpu_shares: 2,
                cpu_quota: None,
                memory_limit: None
            }
        );
    }

    #[test]
    fn sidecars_add_to_the_pod_total() {
        let with_sidecar: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                    {"name": "once", "resources": {"requests": {"cpu": "300m"}}}
                ],
                "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]
            }
        }))
        .unwrap();
        // max(100 + 200, 200 + 300)
        assert_eq!(PodResources::cpu_request_milli(&with_sidecar), 500);
    }

    #[test]
    fn shares_become_weights() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
