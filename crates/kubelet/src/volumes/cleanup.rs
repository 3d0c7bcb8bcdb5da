//! Removing a pod's directory: unmount what is mounted inside it (tmpfs volumes, mounts that
//! propagated back from containers), then delete the tree without following symlinks and
//! without crossing into another filesystem — so a hostPath or a claim's volume that somehow
//! ended up below the pod directory is never emptied.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::empty_dir::{self, EmptyDirError, MountEntry};

/// Could not remove a pod directory.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Mount(#[from] EmptyDirError),
    #[error("refusing to remove {}: another filesystem is mounted there", .0.display())]
    MountPoint(PathBuf),
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CleanupError + 'a {
    move |source| CleanupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The mounts at or below `dir`, deepest and most recent first: the order to unmount them in.
pub(crate) fn mounts_below(mounts: &[MountEntry], dir: &Path) -> Vec<PathBuf> {
    let mut below: Vec<(usize, usize, PathBuf)> = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| m.mount_point.starts_with(dir))
        .map(|(i, m)| (m.mount_point.components().count(), i, m.mount_point.clone()))
        .collect();
    below.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    below.into_iter().map(|(_, _, path)| path).collect()
}

/// Unmounts everything below `dir` and removes it. A missing `dir` is already removed.
pub(crate) fn remove_pod_dir(dir: &Path) -> Result<(), CleanupError> {
    let canonical = match fs::canonicalize(dir) {
        Ok(path) => path,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error("resolving", dir)(err)),
    };
    for mount_point in mounts_below(&empty_dir::read_mounts()?, &canonical) {
        tracing::debug!(path = %mount_point.display(), "unmounting");
        empty_dir::unmount(&mount_point)?;
    }
    let root_dev = fs::symlink_metadata(&canonical)
        .map_err(io_error("reading metadata of", &canonical))?
        .dev();
    remove_tree(&canonical, root_dev)
}

/// Removes `path` and everything below it on device `dev`; symlinks are removed, not followed.
fn remove_tree(path: &Path, dev: u64) -> Result<(), CleanupError> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error("reading metadata of", path)(err)),
    };
    if !metadata.is_dir() {
        return match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(io_error("removing", path)(err))
            }
            _ => Ok(()),
        };
    }
    if metadata.dev() != dev {
        return Err(CleanupError::MountPoint(path.to_path_buf()));
    }
    for entry in fs::read_dir(path).map_err(io_error("reading directory", path))? {
        let entry = entry.map_err(io_error("reading directory", path))?;
        remove_tree(&entry.path(), dev)?;
    }
    match fs::remove_dir(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_error("removing", path)(err)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> MountEntry {
        MountEntry {
            mount_point: PathBuf::from(path),
            fs_type: "tmpfs".into(),
        }
    }

    #[test]
    fn unmount_order_is_deepest_then_latest() {
        let mounts = [
            entry("/"),
            entry("/pods/u/volumes/a"),
            entry("/pods/u/volumes/a/inner"),
            entry("/pods/u2/volumes/b"),
            entry("/pods/u/volumes/a"),
            entry("/pods/uu/x"),
        ];
        let order = mounts_below(&mounts, Path::new("/pods/u"));
        assert_eq!(
            order,
            vec![
                PathBuf::from("/pods/u/volumes/a/inner"),
                PathBuf::from("/pods/u/volumes/a"),
                PathBuf::from("/pods/u/volumes/a"),
            ]
        );
    }

    #[test]
    fn removal_never_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("host-data");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), "keep").unwrap();
        let pod = dir.path().join("pod");
        fs::create_dir_all(pod.join("volumes/v")).unwrap();
        fs::write(pod.join("volumes/v/file"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, pod.join("volumes/v/link")).unwrap();
        remove_pod_dir(&pod).unwrap();
        assert!(!pod.exists());
        assert_eq!(
            fs::read_to_string(outside.join("precious")).unwrap(),
            "keep"
        );
        remove_pod_dir(&pod).unwrap();
    }
}
