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

/// The mount points of every cgroup hierarchy (v1 controllers and cgroup2) in a
/// `/proc/self/mountinfo` text.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<std::path::PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fs_type = after.split_whitespace().next()?;
            if fs_type != "cgroup" && fs_type != "cgroup2" {
                return None;
            }
            before
                .split_whitespace()
                .nth(4)
                .map(std::path::PathBuf::from)
        })
        .collect()
}

/// Removes the cgroups of a pod that is gone (`pod<uid>` under each QoS tier, in every
/// hierarchy), as upstream's pod container manager does: runc removes each container's cgroup
/// but not the pod's, which it created as their parent. Only empty cgroups can be removed; one
/// still in use stays. Nothing to do for the systemd driver, whose slices systemd removes.
pub fn remove_pod_cgroups(driver: CgroupDriver, uid: &str) {
    if driver != CgroupDriver::Cgroupfs || uid.is_empty() || uid.contains('/') {
        return;
    }
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for mount in cgroup_mounts(&mountinfo) {
        for qos in [
            QosClass::Guaranteed,
            QosClass::Burstable,
            QosClass::BestEffort,
        ] {
            let relative = driver.pod_cgroup(qos, uid);
            let dir = mount.join(relative.trim_start_matches('/'));
            match std::fs::remove_dir(&dir) {
                Ok(()) => tracing::debug!(cgroup = %dir.display(), "removed pod cgroup"),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => tracing::warn!(cgroup = %dir.display(), "removing pod cgroup: {err}"),
            }
        }
    }
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
    fn finds_every_cgroup_hierarchy() {
        let mountinfo = "\
25 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup ro shared:8 - tmpfs tmpfs ro
27 26 0:24 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw
28 26 0:25 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup_mounts(mountinfo),
            [
                std::path::PathBuf::from("/sys/fs/cgroup/unified"),
                std::path::PathBuf::from("/sys/fs/cgroup/memory")
            ]
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
}
