//! Volume ownership for `fsGroup` (upstream's `SetVolumeOwnership`): every file and directory of
//! a volume gets the pod's fsGroup as its group and group read (and write, unless the volume is
//! read-only) permission; directories also get group search and setgid, so new files inherit the
//! group. Symlinks are re-grouped but never followed or chmod-ed.

use std::fs;
use std::io;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// The mode a file gets under fsGroup: its mode plus group (and owner) read, write unless
/// read-only, and for directories search and setgid.
pub(crate) fn fs_group_mode(mode: u32, is_dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { RO_MASK } else { RW_MASK };
    if is_dir {
        mask |= SETGID | EXEC_MASK;
    }
    mode | mask
}

/// Could not change the ownership of a path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub struct OwnershipError {
    op: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// Applies `gid` to `root` and everything below it, not following symlinks.
pub(crate) fn apply_fs_group(root: &Path, gid: u32, read_only: bool) -> Result<(), OwnershipError> {
    let error = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| OwnershipError { op, path, source }
    };
    let metadata = fs::symlink_metadata(root).map_err(error("reading metadata of", root))?;
    lchown(root, None, Some(gid)).map_err(error("changing group of", root))?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let mode = fs_group_mode(
        metadata.permissions().mode() & 0o7777,
        metadata.is_dir(),
        read_only,
    );
    fs::set_permissions(root, fs::Permissions::from_mode(mode))
        .map_err(error("setting mode of", root))?;
    if metadata.is_dir() {
        for entry in fs::read_dir(root).map_err(error("reading directory", root))? {
            let entry = entry.map_err(error("reading directory", root))?;
            apply_fs_group(&entry.path(), gid, read_only)?;
        }
    }
    Ok(())
}

/// The uid every container of the pod runs as, when they all set the same one (upstream's
/// `FsUserFrom`): a projected token file is then owned by it.
pub(crate) fn fs_user_from(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let pod_user = spec.security_context.as_ref().and_then(|sc| sc.run_as_user);
    let effective = |container: &Container| {
        container
            .security_context
            .as_ref()
            .and_then(|sc| sc.run_as_user)
            .or(pod_user)
    };
    let mut fs_user = None;
    for container in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        let user = effective(container)?;
        match fs_user {
            Some(seen) if seen != user => return None,
            _ => fs_user = Some(user),
        }
    }
    fs_user
}

/// The pod's `securityContext.fsGroup`.
pub(crate) fn fs_group_of(pod: &Pod) -> Option<i64> {
    pod.spec.as_ref()?.security_context.as_ref()?.fs_group
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, SecurityContext};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn modes_follow_upstream_masks() {
        assert_eq!(fs_group_mode(0o644, false, true), 0o644);
        assert_eq!(fs_group_mode(0o600, false, true), 0o640);
        assert_eq!(fs_group_mode(0o600, false, false), 0o660);
        assert_eq!(fs_group_mode(0o755, true, true), 0o2755);
        assert_eq!(fs_group_mode(0o700, true, false), 0o2770);
        assert_eq!(fs_group_mode(0o777, true, false), 0o2777);
    }

    #[test]
    fn apply_walks_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("f"), "x").unwrap();
        fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "y").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        // Our own group: allowed for any user, so the test runs unprivileged too.
        let gid = fs::metadata(&root).unwrap().gid();
        apply_fs_group(&root, gid, false).unwrap();
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o7777,
            0o2775
        );
        assert_eq!(
            fs::metadata(root.join("f")).unwrap().permissions().mode() & 0o7777,
            0o660
        );
        assert_eq!(
            fs::metadata(&outside).unwrap().permissions().mode() & 0o7777,
            0o600
        );
    }

    fn pod(pod_user: Option<i64>, users: &[Option<i64>]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                security_context: Some(PodSecurityContext {
                    run_as_user: pod_user,
                    ..Default::default()
                }),
                containers: users
                    .iter()
                    .map(|u| Container {
                        security_context: Some(SecurityContext {
                            run_as_user: *u,
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fs_user_only_when_all_containers_agree() {
        assert_eq!(
            fs_user_from(&pod(None, &[Some(1000), Some(1000)])),
            Some(1000)
        );
        assert_eq!(
            fs_user_from(&pod(Some(1000), &[None, Some(1000)])),
            Some(1000)
        );
        assert_eq!(fs_user_from(&pod(None, &[Some(1000), Some(1001)])), None);
        assert_eq!(fs_user_from(&pod(None, &[Some(1000), None])), None);
    }
}
