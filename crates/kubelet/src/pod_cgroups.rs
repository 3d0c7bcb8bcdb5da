//! The pod and QoS cgroups of the cgroupfs driver, as upstream's node container manager, QoS
//! container manager and pod container manager make them: `kubepods` limited to the node's
//! allocatable resources, its `burstable` tier (CPU shares = the sum of its pods' requests) and
//! `besteffort` tier (minimum shares), and one `pod<uid>` per pod with the pod's own limits
//! ([`PodResources`]). The pod's cgroup exists before its sandbox, so runc creates the
//! containers' cgroups inside it and the pod as a whole is held to its limits; it is removed
//! once the pod is gone (runc removes the containers' cgroups, not their parent).
//!
//! Works on cgroup v1 (each controller's hierarchy), v2 (controllers enabled down the tree
//! through `cgroup.subtree_control`, shares written as `cpu.weight`) and hybrid (v1
//! controllers; the controller-less cgroup2 hierarchy only gets the directories, as runc
//! does). With the systemd driver the slices are systemd's: [`PodCgroups::none`] is used and
//! only the containers' own limits apply (runc sets them on each container's scope).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::cgroups::{
    cpu_shares, shares_to_weight, CgroupDriver, PodResources, QosClass, CPU_PERIOD,
};

/// v1 controllers the kubelet knows by name (anything else in a v1 mount's options is an option).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "devices",
    "freezer",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// The v2 controllers enabled for the kubelet's subtree.
const V2_CONTROLLERS: &[&str] = &["cpuset", "cpu", "io", "memory", "hugetlb", "pids"];

/// What went wrong making a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("creating cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
}

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted.
    pub path: PathBuf,
    /// cgroup2 (`true`) or a v1 hierarchy.
    pub unified: bool,
    /// Its controllers: a v1 mount's, or those a cgroup2 root offers (`cgroup.controllers`;
    /// none in a hybrid layout, where v1 holds them all).
    pub controllers: Vec<String>,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The cgroup hierarchies in a `/proc/self/mountinfo` text, each mount point once; cgroup2's
/// controllers are read through `controllers_of` (its `cgroup.controllers`).
pub fn hierarchies(mountinfo: &str, controllers_of: impl Fn(&Path) -> String) -> Vec<Hierarchy> {
    let mut found: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let fs_type = fields.next().unwrap_or_default();
        let super_options = fields.nth(1).unwrap_or_default();
        let Some(path) = before.split_whitespace().nth(4).map(PathBuf::from) else {
            continue;
        };
        if found.iter().any(|h| h.path == path) {
            continue;
        }
        let hierarchy = match fs_type {
            "cgroup" => Hierarchy {
                controllers: super_options
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o))
                    .map(str::to_owned)
                    .collect(),
                path,
                unified: false,
            },
            "cgroup2" => Hierarchy {
                controllers: controllers_of(&path)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                path,
                unified: true,
            },
            _ => continue,
        };
        found.push(hierarchy);
    }
    found
}

/// The node-level limits of `kubepods`: the node's allocatable resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLimits {
    pub cpu_milli: i64,
    pub memory: i64,
}

/// What a tier or pod cgroup is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Limits {
    cpu_shares: i64,
    cpu_quota: Option<i64>,
    memory: Option<i64>,
}

/// What was applied for a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Applied {
    qos: QosClass,
    resources: PodResources,
    cpu_request: i64,
}

/// The kubelet's cgroups: created and limited on the cgroupfs driver, left to systemd (or to
/// nobody, for a fake runtime) otherwise.
#[derive(Debug)]
pub struct PodCgroups {
    hierarchies: Vec<Hierarchy>,
    /// The pods whose cgroup is set, by uid (for the Burstable tier's shares and to skip
    /// rewriting unchanged limits).
    pods: Mutex<HashMap<String, Applied>>,
    burstable_shares: Mutex<Option<i64>>,
}

impl PodCgroups {
    /// No pod-level cgroups: the systemd driver's slices (made by systemd when runc starts a
    /// container's scope in them), or a runtime that runs nothing.
    pub fn none() -> PodCgroups {
        PodCgroups {
            hierarchies: Vec::new(),
            pods: Mutex::default(),
            burstable_shares: Mutex::default(),
        }
    }

    /// The cgroups of `driver`: for cgroupfs, finds the mounted hierarchies and makes
    /// `kubepods` (limited to `node`) and its QoS tiers.
    pub fn new(driver: CgroupDriver, node: NodeLimits) -> Result<PodCgroups, CgroupError> {
        if driver == CgroupDriver::Systemd {
            tracing::info!("systemd cgroup driver: pod slices are systemd's; containers carry their own limits");
            return Ok(PodCgroups::none());
        }
        let mountinfo_path = Path::new("/proc/self/mountinfo");
        let mountinfo =
            std::fs::read_to_string(mountinfo_path).map_err(|source| CgroupError::Read {
                path: mountinfo_path.into(),
                source,
            })?;
        let hierarchies = hierarchies(&mountinfo, |path| {
            std::fs::read_to_string(path.join("cgroup.controllers")).unwrap_or_default()
        });
        let cgroups = PodCgroups {
            hierarchies,
            pods: Mutex::default(),
            burstable_shares: Mutex::default(),
        };
        cgroups.ensure(
            "kubepods",
            Limits {
                cpu_shares: cpu_shares(node.cpu_milli),
                cpu_quota: None,
                memory: Some(node.memory).filter(|m| *m > 0),
            },
        )?;
        let tier = Limits {
            cpu_shares: cpu_shares(0),
            cpu_quota: None,
            memory: None,
        };
        cgroups.ensure("kubepods/besteffort", tier)?;
        cgroups.ensure("kubepods/burstable", tier)?;
        Ok(cgroups)
    }

    /// Makes the pod's cgroup with its limits (upstream's `EnsureExists`), unless it was
    /// already made with the same ones.
    pub fn ensure_pod(&self, pod: &Pod) -> Result<(), CgroupError> {
        if self.hierarchies.is_empty() {
            return Ok(());
        }
        let uid = pod.uid().unwrap_or_default();
        if uid.is_empty() || uid.contains('/') {
            return Ok(());
        }
        let applied = Applied {
            qos: QosClass::of(pod),
            resources: PodResources::of(pod),
            cpu_request: PodResources::cpu_request_milli(pod),
        };
        if self.lock_pods().get(&uid) == Some(&applied) {
            return Ok(());
        }
        let relative = CgroupDriver::Cgroupfs.pod_cgroup(applied.qos, &uid);
        self.ensure(
            relative.trim_start_matches('/'),
            Limits {
                cpu_shares: applied.resources.cpu_shares,
                cpu_quota: applied.resources.cpu_quota,
                memory: applied.resources.memory_limit,
            },
        )?;
        self.lock_pods().insert(uid, applied);
        self.update_burstable();
        Ok(())
    }

    /// Removes the cgroups of a pod that is gone (`pod<uid>` under each QoS tier, in every
    /// hierarchy). Only an empty cgroup can be removed; one still in use stays.
    pub fn remove_pod(&self, uid: &str) {
        if self.hierarchies.is_empty() || uid.is_empty() || uid.contains('/') {
            return;
        }
        for hierarchy in &self.hierarchies {
            for qos in [
                QosClass::Guaranteed,
                QosClass::Burstable,
                QosClass::BestEffort,
            ] {
                let relative = CgroupDriver::Cgroupfs.pod_cgroup(qos, uid);
                let dir = hierarchy.path.join(relative.trim_start_matches('/'));
                match std::fs::remove_dir(&dir) {
                    Ok(()) => tracing::debug!(cgroup = %dir.display(), "removed pod cgroup"),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => {
                        tracing::warn!(cgroup = %dir.display(), "removing pod cgroup: {err}")
                    }
                }
            }
        }
        if self.lock_pods().remove(uid).is_some() {
            self.update_burstable();
        }
    }

    fn lock_pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, Applied>> {
        self.pods
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The Burstable tier's CPU shares: the sum of its pods' requests (upstream's QoS manager).
    fn update_burstable(&self) {
        let milli: i64 = self
            .lock_pods()
            .values()
            .filter(|a| a.qos == QosClass::Burstable)
            .map(|a| a.cpu_request)
            .sum();
        let shares = cpu_shares(milli);
        let mut last = self
            .burstable_shares
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *last == Some(shares) {
            return;
        }
        let limits = Limits {
            cpu_shares: shares,
            cpu_quota: None,
            memory: None,
        };
        match self.ensure("kubepods/burstable", limits) {
            Ok(()) => *last = Some(shares),
            Err(err) => tracing::warn!("setting the burstable tier's CPU shares: {err}"),
        }
    }

    /// Makes `relative` in every hierarchy and writes its limits where their controller is.
    fn ensure(&self, relative: &str, limits: Limits) -> Result<(), CgroupError> {
        for hierarchy in &self.hierarchies {
            let dir = hierarchy.path.join(relative);
            if hierarchy.unified && !hierarchy.controllers.is_empty() {
                enable_v2_controllers(hierarchy, relative)?;
            }
            create(&dir)?;
            if hierarchy.unified {
                if hierarchy.controllers.is_empty() {
                    continue;
                }
                if hierarchy.has("cpu") {
                    write(&dir, "cpu.weight", shares_to_weight(limits.cpu_shares))?;
                    let quota = limits
                        .cpu_quota
                        .map_or_else(|| "max".to_owned(), |q| q.to_string());
                    write(&dir, "cpu.max", format!("{quota} {CPU_PERIOD}"))?;
                }
                if hierarchy.has("memory") {
                    let max = limits
                        .memory
                        .map_or_else(|| "max".to_owned(), |m| m.to_string());
                    write(&dir, "memory.max", max)?;
                }
                continue;
            }
            if hierarchy.has("cpuset") {
                inherit_cpuset(&dir)?;
            }
            if hierarchy.has("cpu") {
                write(&dir, "cpu.shares", limits.cpu_shares)?;
                write(&dir, "cpu.cfs_period_us", CPU_PERIOD)?;
                write(&dir, "cpu.cfs_quota_us", limits.cpu_quota.unwrap_or(-1))?;
            }
            if hierarchy.has("memory") {
                write(&dir, "memory.limit_in_bytes", limits.memory.unwrap_or(-1))?;
            }
        }
        Ok(())
    }
}

/// Enables the kubelet's controllers in `cgroup.subtree_control` from the root of a cgroup2
/// hierarchy down to `relative`'s parent, as runc does for the containers' cgroups.
fn enable_v2_controllers(hierarchy: &Hierarchy, relative: &str) -> Result<(), CgroupError> {
    let wanted: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| hierarchy.has(c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut dir = hierarchy.path.clone();
    let parents: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parents.iter().enumerate() {
        let control = dir.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&control).unwrap_or_default();
        for controller in &wanted {
            if enabled.split_whitespace().any(|c| c == &controller[1..]) {
                continue;
            }
            write_file(&control, controller)?;
        }
        if i + 1 < parents.len() {
            dir = dir.join(part);
            create(&dir)?;
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup has no CPUs or memory nodes: it gets its parent's.
fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if !own.trim().is_empty() {
            continue;
        }
        let path = parent.join(file);
        let theirs =
            std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })?;
        write(dir, file, theirs.trim())?;
    }
    Ok(())
}

fn create(dir: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

fn write(dir: &Path, file: &str, value: impl ToString) -> Result<(), CgroupError> {
    write_file(&dir.join(file), &value.to_string())
}

fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_hierarchies_and_their_controllers() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let found = hierarchies(mountinfo, |_| String::new());
        let summary: Vec<(String, bool, Vec<String>)> = found
            .iter()
            .map(|h| {
                (
                    h.path.display().to_string(),
                    h.unified,
                    h.controllers.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("/sys/fs/cgroup/cpu".into(), false, vec!["cpu".into()]),
                (
                    "/sys/fs/cgroup/cpu,cpuacct".into(),
                    false,
                    vec!["cpu".into(), "cpuacct".into()]
                ),
                ("/sys/fs/cgroup/memory".into(), false, vec!["memory".into()]),
                ("/sys/fs/cgroup/systemd".into(), false, vec![]),
                ("/sys/fs/cgroup/unified".into(), true, vec![]),
            ]
        );
    }

    #[test]
    fn reads_the_unified_controllers() {
        let mountinfo = "27 26 0:24 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        let found = hierarchies(mountinfo, |path| {
            assert_eq!(path, Path::new("/sys/fs/cgroup"));
            "cpuset cpu io memory pids\n".into()
        });
        assert_eq!(found.len(), 1);
        assert!(found[0].unified && found[0].has("memory") && found[0].has("cpu"));
    }

    /// A fake cgroup2 tree in a temp dir: controllers are enabled down to the parent before
    /// the pod's cgroup is made, and the limits land in v2's files.
    #[test]
    fn writes_v2_limits_into_a_tree() {
        let root = tempfile::tempdir().unwrap();
        let hierarchy = Hierarchy {
            path: root.path().to_path_buf(),
            unified: true,
            controllers: vec!["cpu".into(), "memory".into()],
        };
        let cgroups = PodCgroups {
            hierarchies: vec![hierarchy],
            pods: Mutex::default(),
            burstable_shares: Mutex::default(),
        };
        cgroups
            .ensure(
                "kubepods/pod1",
                Limits {
                    cpu_shares: 1024,
                    cpu_quota: Some(50_000),
                    memory: Some(64 << 20),
                },
            )
            .unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        // A plain directory keeps only the last write: the last controller enabled.
        assert_eq!(read("cgroup.subtree_control"), "+memory");
        assert_eq!(read("kubepods/cgroup.subtree_control"), "+memory");
        assert_eq!(read("kubepods/pod1/cpu.weight"), "39");
        assert_eq!(read("kubepods/pod1/cpu.max"), "50000 100000");
        assert_eq!(read("kubepods/pod1/memory.max"), "67108864");
    }

    #[test]
    fn no_hierarchies_means_nothing_to_do() {
        let cgroups = PodCgroups::none();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"}, "spec": {"containers": [{"name": "a"}]}
        }))
        .unwrap();
        cgroups.ensure_pod(&pod).unwrap();
        cgroups.remove_pod("u");
    }
}
