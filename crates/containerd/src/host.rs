//! What containerd's config depends on in the host: cgroup layout and driver, and whether this
//! process may lower its `oom_score_adj`.
//!
//! The decisions are pure functions over the texts the kernel gives (`/proc/self/mountinfo`,
//! `/proc/self/cgroup`, `cgroup.controllers`, `/proc/self/uid_map`); [`HostFacts::detect`] reads
//! them.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// How the cgroup hierarchies are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Only cgroup v1 hierarchies.
    V1,
    /// cgroup v1 controllers, plus a cgroup2 hierarchy elsewhere (usually
    /// `/sys/fs/cgroup/unified`, holding no controllers).
    Hybrid,
    /// cgroup2 at `/sys/fs/cgroup` (the unified hierarchy).
    V2,
}

/// Who creates and manages the pods' cgroups: runc itself or systemd (runc v2's
/// `options.SystemdCgroup`). The kubelet's cgroup parents follow it (`/kubepods/burstable/pod<uid>`
/// vs `kubepods-burstable-pod<uid>.slice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// runc writes the cgroup filesystem directly.
    Cgroupfs,
    /// runc asks systemd (over D-Bus) for transient units.
    Systemd,
}

/// Why the host could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file the detection needs could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No cgroup filesystem is mounted.
    #[error("no cgroup filesystem in {path}")]
    NoCgroups {
        /// The mount table read.
        path: PathBuf,
    },
    /// `oom_score_adj` held something other than a number.
    #[error("{path}: {value:?} is not an oom_score_adj")]
    OomScoreAdj {
        /// The file.
        path: PathBuf,
        /// What it held.
        value: String,
    },
    /// Writing `oom_score_adj` failed for a reason other than missing privilege.
    #[error("writing {value} to {path}")]
    WriteOomScoreAdj {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: i32,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The host facts containerd's config is derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// How cgroups are mounted.
    pub cgroup_layout: CgroupLayout,
    /// The cgroup controllers available to this process (v1: its hierarchies; v2: the root's
    /// `cgroup.controllers`).
    pub cgroup_controllers: BTreeSet<String>,
    /// Started by systemd as a service (`INVOCATION_ID` is set).
    pub started_by_systemd: bool,
    /// Running in a user namespace other than the initial one.
    pub in_user_namespace: bool,
    /// This process may set a negative `oom_score_adj` (CAP_SYS_RESOURCE).
    pub can_lower_oom_score_adj: bool,
}

impl HostFacts {
    /// Reads the facts of the host this process runs on. Probing `oom_score_adj` writes this
    /// process's own value and restores it (see [`can_lower_oom_score_adj`]).
    pub fn detect() -> Result<HostFacts, HostError> {
        let mountinfo_path = Path::new("/proc/self/mountinfo");
        let mountinfo = read(mountinfo_path)?;
        let cgroup_layout = cgroup_layout(&mountinfo).ok_or_else(|| HostError::NoCgroups {
            path: mountinfo_path.to_path_buf(),
        })?;
        let cgroup_controllers = match cgroup_layout {
            CgroupLayout::V2 => {
                cgroup2_controllers(&read(Path::new("/sys/fs/cgroup/cgroup.controllers"))?)
            }
            CgroupLayout::V1 | CgroupLayout::Hybrid => {
                cgroup1_controllers(&read(Path::new("/proc/self/cgroup"))?)
            }
        };
        // No uid_map means a kernel without user namespaces: the initial namespace.
        let in_user_namespace = match fs::read_to_string("/proc/self/uid_map") {
            Ok(uid_map) => in_user_namespace(&uid_map),
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(HostError::Read {
                    path: "/proc/self/uid_map".into(),
                    source,
                })
            }
        };
        Ok(HostFacts {
            cgroup_layout,
            cgroup_controllers,
            started_by_systemd: std::env::var_os("INVOCATION_ID").is_some_and(|id| !id.is_empty()),
            in_user_namespace,
            can_lower_oom_score_adj: can_lower_oom_score_adj()?,
        })
    }

    /// The cgroup driver k3s would choose here (`pkg/agent/containerd/config_linux.go`): systemd
    /// when not in a user namespace, the `cpuset` controller is available and systemd started
    /// this process; cgroupfs otherwise. Like k3s, the rule does not look at the layout: a
    /// systemd service on v1 or hybrid cgroups gets the systemd driver too.
    pub fn cgroup_driver(&self) -> CgroupDriver {
        if !self.in_user_namespace
            && self.cgroup_controllers.contains("cpuset")
            && self.started_by_systemd
        {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        }
    }

    /// containerd's `restrict_oom_score_adj`: needed when this process cannot lower its own
    /// `oom_score_adj`, else runc fails every sandbox (CRI asks for -998) with "can't get final
    /// child's PID from pipe: EOF". containerd inherits this process's privileges.
    pub fn restrict_oom_score_adj(&self) -> bool {
        !self.can_lower_oom_score_adj
    }
}

fn read(path: &Path) -> Result<String, HostError> {
    fs::read_to_string(path).map_err(|source| HostError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The cgroup layout a `/proc/self/mountinfo` text describes, or `None` when it mounts no
/// cgroup filesystem: cgroup2 at `/sys/fs/cgroup` is [`CgroupLayout::V2`]; v1 hierarchies are
/// [`CgroupLayout::Hybrid`] when a cgroup2 is mounted too, [`CgroupLayout::V1`] otherwise.
pub fn cgroup_layout(mountinfo: &str) -> Option<CgroupLayout> {
    let mut v1 = false;
    let mut v2_elsewhere = false;
    for line in mountinfo.lines() {
        let Some((mount_point, fs_type)) = mount_point_and_type(line) else {
            continue;
        };
        match fs_type {
            "cgroup2" if mount_point == "/sys/fs/cgroup" => return Some(CgroupLayout::V2),
            "cgroup2" => v2_elsewhere = true,
            "cgroup" => v1 = true,
            _ => {}
        }
    }
    match (v1, v2_elsewhere) {
        (true, true) => Some(CgroupLayout::Hybrid),
        (true, false) => Some(CgroupLayout::V1),
        // A cgroup2 mounted only somewhere else: the unified hierarchy is all there is.
        (false, true) => Some(CgroupLayout::V2),
        (false, false) => None,
    }
}

/// A mountinfo line's mount point (field 5) and filesystem type (the first field after `-`).
fn mount_point_and_type(line: &str) -> Option<(&str, &str)> {
    let (before, after) = line.split_once(" - ")?;
    let mount_point = before.split(' ').nth(4)?;
    let fs_type = after.split(' ').next()?;
    Some((mount_point, fs_type))
}

/// The v1 controllers named in a `/proc/self/cgroup` text (`id:controllers:path` lines; the
/// cgroup2 line `0::path` and named hierarchies like `name=systemd` add none).
pub fn cgroup1_controllers(proc_self_cgroup: &str) -> BTreeSet<String> {
    proc_self_cgroup
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .flat_map(|controllers| controllers.split(','))
        .filter(|controller| !controller.is_empty() && !controller.starts_with("name="))
        .map(str::to_owned)
        .collect()
}

/// The controllers listed in a cgroup2 `cgroup.controllers` text.
pub fn cgroup2_controllers(cgroup_controllers: &str) -> BTreeSet<String> {
    cgroup_controllers
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Whether a `/proc/self/uid_map` text is a user namespace other than the initial one (which
/// maps all ids to themselves: `0 0 4294967295`), as runc's `RunningInUserNS` decides.
pub fn in_user_namespace(uid_map: &str) -> bool {
    let mut lines = uid_map.lines().filter(|line| !line.trim().is_empty());
    let (Some(only), None) = (lines.next(), lines.next()) else {
        return true;
    };
    let fields: Vec<&str> = only.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}

/// The value probed by [`can_lower_oom_score_adj`]: the lowest CRI asks for (the sandbox's).
pub const PROBE_OOM_SCORE_ADJ: i32 = -998;

/// Whether a failed `oom_score_adj` write was refused for want of privilege (EACCES, EPERM),
/// which answers the probe with no; other errors are errors.
pub fn is_permission_error(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied
        || matches!(
            error.raw_os_error(),
            Some(code) if code == nix::libc::EACCES || code == nix::libc::EPERM
        )
}

/// Whether this process may set the negative `oom_score_adj` CRI gives pod sandboxes. It writes
/// [`PROBE_OOM_SCORE_ADJ`] to `/proc/self/oom_score_adj` and writes the value it read before back
/// (raising it back needs no privilege). The value is process-wide: other threads see the probe
/// value for that moment, which only makes them less likely to be chosen by the OOM killer.
pub fn can_lower_oom_score_adj() -> Result<bool, HostError> {
    let path = Path::new("/proc/self/oom_score_adj");
    let text = read(path)?;
    let current: i32 = text.trim().parse().map_err(|_| HostError::OomScoreAdj {
        path: path.to_path_buf(),
        value: text.trim().to_owned(),
    })?;
    match fs::write(path, PROBE_OOM_SCORE_ADJ.to_string()) {
        Ok(()) => {
            fs::write(path, current.to_string()).map_err(|source| HostError::WriteOomScoreAdj {
                path: path.to_path_buf(),
                value: current,
                source,
            })?;
            Ok(true)
        }
        Err(error) if is_permission_error(&error) => Ok(false),
        Err(source) => Err(HostError::WriteOomScoreAdj {
            path: path.to_path_buf(),
            value: PROBE_OOM_SCORE_ADJ,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This development machine: v1 controllers, cgroup2 at /sys/fs/cgroup/unified.
    const HYBRID: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A current systemd distribution (Debian 12, Ubuntu 22.04+).
    const UNIFIED: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
35 25 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    /// An old distribution without cgroup2 (CentOS 7).
    const LEGACY: &str = "\
24 18 0:19 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
25 24 0:20 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn layouts_from_mountinfo() {
        assert_eq!(cgroup_layout(HYBRID), Some(CgroupLayout::Hybrid));
        assert_eq!(cgroup_layout(UNIFIED), Some(CgroupLayout::V2));
        assert_eq!(cgroup_layout(LEGACY), Some(CgroupLayout::V1));
        assert_eq!(
            cgroup_layout("30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"),
            None
        );
        assert_eq!(cgroup_layout(""), None);
        // A container whose only cgroup2 sits elsewhere still has nothing but v2.
        assert_eq!(
            cgroup_layout("41 31 0:38 / /run/cg rw - cgroup2 cgroup2 rw\n"),
            Some(CgroupLayout::V2)
        );
    }

    #[test]
    fn optional_fields_and_odd_lines_do_not_confuse_the_parser() {
        // Several optional fields before the separator, and a line without one.
        let text = "\
35 25 0:30 / /sys/fs/cgroup rw shared:9 master:2 propagate_from:1 - cgroup2 cgroup2 rw
garbage line
";
        assert_eq!(cgroup_layout(text), Some(CgroupLayout::V2));
        // A mount point with an escaped space is compared as the kernel wrote it.
        let spaced = "35 25 0:30 / /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_layout(spaced), Some(CgroupLayout::V2));
        assert_eq!(
            cgroup_layout(&format!(
                "{spaced}32 31 0:29 / /c/cpu rw - cgroup cgroup rw,cpu\n"
            )),
            Some(CgroupLayout::Hybrid)
        );
    }

    #[test]
    fn v1_controllers_from_proc_self_cgroup() {
        let text = "\
9:name=systemd:/
4:memory:/process_api/ec6e
3:cpuset:/
2:cpu,cpuacct:/
0::/
";
        let controllers = cgroup1_controllers(text);
        assert_eq!(
            controllers.iter().map(String::as_str).collect::<Vec<_>>(),
            ["cpu", "cpuacct", "cpuset", "memory"]
        );
        assert!(cgroup1_controllers("0::/user.slice/session-1.scope\n").is_empty());
    }

    #[test]
    fn v2_controllers_from_cgroup_controllers() {
        let controllers = cgroup2_controllers("cpuset cpu io memory hugetlb pids rdma misc\n");
        assert!(controllers.contains("cpuset"));
        assert_eq!(controllers.len(), 8);
        assert!(cgroup2_controllers("\n").is_empty());
    }

    #[test]
    fn user_namespace_from_uid_map() {
        assert!(!in_user_namespace("         0          0 4294967295\n"));
        assert!(in_user_namespace("         0       1000          1\n"));
        assert!(in_user_namespace(
            "0 1000 1\n1 100000 65536\n" // rootless podman
        ));
        assert!(in_user_namespace("0 0 65536\n"));
        assert!(in_user_namespace(""));
    }

    fn facts(controllers: &[&str], systemd: bool, userns: bool) -> HostFacts {
        HostFacts {
            cgroup_layout: CgroupLayout::V2,
            cgroup_controllers: controllers.iter().map(|c| c.to_string()).collect(),
            started_by_systemd: systemd,
            in_user_namespace: userns,
            can_lower_oom_score_adj: true,
        }
    }

    #[test]
    fn cgroup_driver_follows_k3s() {
        let all = ["cpu", "cpuset", "memory", "pids"];
        assert_eq!(
            facts(&all, true, false).cgroup_driver(),
            CgroupDriver::Systemd
        );
        // Not started by systemd (this machine, a shell, a container without systemd).
        assert_eq!(
            facts(&all, false, false).cgroup_driver(),
            CgroupDriver::Cgroupfs
        );
        // Rootless.
        assert_eq!(
            facts(&all, true, true).cgroup_driver(),
            CgroupDriver::Cgroupfs
        );
        // No cpuset controller (Raspberry Pi kernels without cgroup_enable=cpuset).
        assert_eq!(
            facts(&["cpu", "memory"], true, false).cgroup_driver(),
            CgroupDriver::Cgroupfs
        );
        // The layout does not enter: a systemd service on hybrid cgroups gets systemd too.
        let hybrid = HostFacts {
            cgroup_layout: CgroupLayout::Hybrid,
            ..facts(&all, true, false)
        };
        assert_eq!(hybrid.cgroup_driver(), CgroupDriver::Systemd);
    }

    #[test]
    fn oom_probe_refusals() {
        assert!(is_permission_error(&io::Error::from_raw_os_error(
            nix::libc::EACCES
        )));
        assert!(is_permission_error(&io::Error::from_raw_os_error(
            nix::libc::EPERM
        )));
        assert!(!is_permission_error(&io::Error::from_raw_os_error(
            nix::libc::EINVAL
        )));
        let mut no_privilege = facts(&[], false, false);
        no_privilege.can_lower_oom_score_adj = false;
        assert!(no_privilege.restrict_oom_score_adj());
        assert!(!facts(&[], false, false).restrict_oom_score_adj());
    }
}
