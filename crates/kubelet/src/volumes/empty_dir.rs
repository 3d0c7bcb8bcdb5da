//! emptyDir volumes (upstream's `pkg/volume/emptydir`): a 0777 directory in the pod's directory,
//! or with `medium: Memory` a tmpfs mounted on it, sized as upstream sizes it. The secret and
//! projected volumes sit on such a tmpfs too, so their content never reaches the disk.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// emptyDir's permissions: anyone may write (upstream issue 2630 keeps it so).
pub(crate) const EMPTY_DIR_MODE: u32 = 0o777;

/// Could not set up or tear down an emptyDir.
#[derive(Debug, thiserror::Error)]
pub enum EmptyDirError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounting tmpfs on {}", path.display())]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("unmounting {}", path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("unknown storage medium \"{0}\"")]
    UnknownMedium(String),
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> EmptyDirError + 'a {
    move |source| EmptyDirError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn memory_limit(container: &Container) -> Option<i64> {
    let limit = container
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")?;
    k3rs_api::quantity::value(&limit.0).filter(|v| *v > 0)
}

/// The pod's memory limit as its cgroup gets it (upstream's `ResourceConfigForPod`): the pod-level
/// limit, or when every container declares one, the larger of the running containers' sum (with
/// sidecars) and the peak of the init phase. `None` when some container is unlimited.
pub(crate) fn pod_memory_limit(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    if let Some(limit) = spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("memory"))
        .and_then(|q| k3rs_api::quantity::value(&q.0))
        .filter(|v| *v > 0)
    {
        return Some(limit);
    }
    let mut sidecars: i64 = 0;
    let mut init_peak: i64 = 0;
    for init in spec.init_containers.iter().flatten() {
        let limit = memory_limit(init)?;
        if init.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.saturating_add(limit);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars.saturating_add(limit));
        }
    }
    let mut running = sidecars;
    for container in &spec.containers {
        running = running.saturating_add(memory_limit(container)?);
    }
    Some(running.max(init_peak))
}

/// The size of a memory-backed emptyDir (upstream's `calculateEmptyDirMemorySize`): the node's
/// allocatable memory, lowered to the pod's memory limit and then to the volume's `sizeLimit`
/// when they are positive and smaller. `None` leaves tmpfs's own default (half of RAM).
pub(crate) fn memory_size(
    pod: &Pod,
    size_limit: Option<&Quantity>,
    node_allocatable_memory: Option<i64>,
) -> Option<i64> {
    let lower = |size: Option<i64>, candidate: Option<i64>| match (size, candidate) {
        (_, None) => size,
        (_, Some(c)) if c <= 0 => size,
        (None, Some(c)) => Some(c),
        (Some(s), Some(c)) => Some(if c <= s { c } else { s }),
    };
    let size = lower(node_allocatable_memory, pod_memory_limit(pod));
    lower(
        size,
        size_limit.and_then(|q| k3rs_api::quantity::value(&q.0)),
    )
}

/// Unescapes a mountinfo path field (`\040` is a space, etc.).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = &bytes[i + 1..i + 4];
            if octal.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let value = octal
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/self/mountinfo`: where something is mounted and its filesystem type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) mount_point: PathBuf,
    pub(crate) fs_type: String,
}

/// The mounts listed in a mountinfo text, in order (later entries stack on earlier ones).
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split(' ').nth(4)?;
            let fs_type = after.split(' ').next()?;
            Some(MountEntry {
                mount_point: PathBuf::from(unescape_mountinfo(mount_point)),
                fs_type: fs_type.to_owned(),
            })
        })
        .collect()
}

/// The filesystem type of the topmost mount on exactly `path`, `None` when it is no mount point.
pub(crate) fn mounted_fs_type<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a str> {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == path)
        .map(|m| m.fs_type.as_str())
}

/// This process's mount table.
pub(crate) fn read_mounts() -> Result<Vec<MountEntry>, EmptyDirError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(io_error("reading", path))?;
    Ok(parse_mountinfo(&text))
}

/// Creates `dir` (and its parents) and gives it `mode` whatever the umask.
pub(crate) fn make_dir(dir: &Path, mode: u32) -> Result<(), EmptyDirError> {
    fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
    let current = fs::symlink_metadata(dir).map_err(io_error("reading metadata of", dir))?;
    if current.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(io_error("setting mode of", dir))?;
    }
    Ok(())
}

/// Makes `dir` a tmpfs mount point; `false` when one was there already (and is kept).
pub(crate) fn set_up_tmpfs(dir: &Path, size: Option<i64>) -> Result<bool, EmptyDirError> {
    make_dir(dir, EMPTY_DIR_MODE)?;
    let canonical = fs::canonicalize(dir).map_err(io_error("resolving", dir))?;
    if mounted_fs_type(&read_mounts()?, &canonical) == Some("tmpfs") {
        return Ok(false);
    }
    let options = size.map(|bytes| format!("size={bytes}"));
    mount(
        Some("tmpfs"),
        &canonical,
        Some("tmpfs"),
        MsFlags::empty(),
        options.as_deref(),
    )
    .map_err(|source| EmptyDirError::Mount {
        path: canonical.clone(),
        source,
    })?;
    tracing::debug!(dir = %canonical.display(), ?size, "mounted tmpfs");
    Ok(true)
}

/// Unmounts whatever is mounted on `path` (a busy mount is detached instead).
pub(crate) fn unmount(path: &Path) -> Result<(), EmptyDirError> {
    match umount2(path, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::Error::EBUSY) => {
            umount2(path, MntFlags::MNT_DETACH).map_err(|source| EmptyDirError::Unmount {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(EmptyDirError::Unmount {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn container(limit: Option<&str>, restart: Option<&str>) -> Container {
        Container {
            resources: Some(ResourceRequirements {
                limits: limit.map(|l| [("memory".to_owned(), Quantity(l.to_owned()))].into()),
                ..Default::default()
            }),
            restart_policy: restart.map(str::to_owned),
            ..Default::default()
        }
    }

    fn pod(init: Vec<Container>, containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                init_containers: Some(init),
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const MI: i64 = 1024 * 1024;

    #[test]
    fn pod_limit_needs_every_container_limited() {
        let limited = pod(
            vec![],
            vec![container(Some("64Mi"), None), container(Some("32Mi"), None)],
        );
        assert_eq!(pod_memory_limit(&limited), Some(96 * MI));
        let unlimited = pod(
            vec![],
            vec![container(Some("64Mi"), None), container(None, None)],
        );
        assert_eq!(pod_memory_limit(&unlimited), None);
        let big_init = pod(
            vec![container(Some("512Mi"), None)],
            vec![container(Some("64Mi"), None)],
        );
        assert_eq!(pod_memory_limit(&big_init), Some(512 * MI));
        let sidecar = pod(
            vec![container(Some("16Mi"), Some("Always"))],
            vec![container(Some("64Mi"), None)],
        );
        assert_eq!(pod_memory_limit(&sidecar), Some(80 * MI));
    }

    #[test]
    fn memory_size_takes_the_smallest_positive_bound() {
        let limited = pod(vec![], vec![container(Some("64Mi"), None)]);
        let unlimited = pod(vec![], vec![container(None, None)]);
        let q = |s: &str| Quantity(s.to_owned());
        assert_eq!(
            memory_size(&unlimited, None, Some(1024 * MI)),
            Some(1024 * MI)
        );
        assert_eq!(memory_size(&limited, None, Some(1024 * MI)), Some(64 * MI));
        assert_eq!(
            memory_size(&limited, Some(&q("16Mi")), Some(1024 * MI)),
            Some(16 * MI)
        );
        assert_eq!(
            memory_size(&limited, Some(&q("1Gi")), Some(1024 * MI)),
            Some(64 * MI)
        );
        assert_eq!(
            memory_size(&unlimited, Some(&q("0")), Some(1024 * MI)),
            Some(1024 * MI)
        );
        assert_eq!(memory_size(&unlimited, Some(&q("8Mi")), None), Some(8 * MI));
        assert_eq!(memory_size(&unlimited, None, None), None);
    }

    #[test]
    fn mountinfo_lines() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / /var/lib/k3rs/pods/u/volumes/kubernetes.io~empty-dir/with\\040space rw shared:40 - tmpfs tmpfs rw,size=1024k
91 22 0:51 / /mnt/x rw - ext4 /dev/sdb rw
92 91 0:52 / /mnt/x rw - tmpfs tmpfs rw
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 4);
        assert_eq!(
            mounted_fs_type(
                &mounts,
                Path::new("/var/lib/k3rs/pods/u/volumes/kubernetes.io~empty-dir/with space")
            ),
            Some("tmpfs")
        );
        assert_eq!(mounted_fs_type(&mounts, Path::new("/mnt/x")), Some("tmpfs"));
        assert_eq!(mounted_fs_type(&mounts, Path::new("/mnt")), None);
    }

    #[test]
    fn make_dir_sets_mode_despite_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        make_dir(&path, EMPTY_DIR_MODE).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o777
        );
    }
}
