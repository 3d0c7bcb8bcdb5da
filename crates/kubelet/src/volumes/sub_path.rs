//! subPath mounts kept inside their volume (upstream's `pkg/volume/util/subpath`): a container
//! may fill a shared volume with symlinks, so a subPath is resolved, checked against the volume,
//! opened component by component without following symlinks, and bind-mounted from that
//! descriptor onto a path the containers cannot reach.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use nix::fcntl::{open, openat, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, Mode, SFlag};

use super::empty_dir;

/// Creates the missing directories of `sub_path` below `volume` with `mode`, refusing to go
/// through a symlink that leads out of the volume.
pub(crate) fn make_dirs(volume: &Path, sub_path: &str, mode: u32) -> io::Result<()> {
    let base = fs::canonicalize(volume)?;
    let mut current = base.clone();
    for part in sub_path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let next = current.join(part);
        match fs::symlink_metadata(&next) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let resolved = fs::canonicalize(&next)?;
                if !resolved.starts_with(&base) {
                    return Err(io::Error::other(format!(
                        "{} leads out of the volume",
                        next.display()
                    )));
                }
                current = resolved;
            }
            Ok(metadata) if metadata.is_dir() => current = next,
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    next.display()
                )))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&next)?;
                fs::set_permissions(&next, fs::Permissions::from_mode(mode))?;
                current = next;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The subPath with every symlink resolved; an error when it ends outside the volume.
pub(crate) fn resolve(volume: &Path, sub_path: &str) -> io::Result<std::path::PathBuf> {
    let base = fs::canonicalize(volume)?;
    let resolved = fs::canonicalize(volume.join(sub_path))?;
    if !resolved.starts_with(&base) {
        return Err(io::Error::other(format!(
            "subpath {} not within volume path {}",
            resolved.display(),
            base.display()
        )));
    }
    Ok(resolved)
}

/// Opens `resolved` (inside `volume`) one component at a time, never following a symlink: one
/// swapped in since [`resolve`] makes this fail instead of leading elsewhere.
fn open_beneath(volume: &Path, resolved: &Path) -> io::Result<OwnedFd> {
    let base = fs::canonicalize(volume)?;
    let relative = resolved.strip_prefix(&base).map_err(|_| {
        io::Error::other(format!(
            "{} is not within {}",
            resolved.display(),
            base.display()
        ))
    })?;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = open(&base, flags | OFlag::O_DIRECTORY, Mode::empty())?;
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(io::Error::other(format!(
                "unexpected component in {}",
                resolved.display()
            )));
        };
        let next = openat(&fd, name, flags, Mode::empty())?;
        let kind = SFlag::from_bits_truncate(fstat(&next)?.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            return Err(io::Error::other(format!(
                "{} changed into a symlink",
                resolved.display()
            )));
        }
        fd = next;
    }
    Ok(fd)
}

/// Bind-mounts the subPath `resolved` of `volume` onto `target` (created as an empty file or
/// directory to match). A previous bind on `target` (an earlier run of the container) is
/// replaced.
pub(crate) fn bind(volume: &Path, resolved: &Path, target: &Path) -> io::Result<()> {
    let fd = open_beneath(volume, resolved)?;
    let is_dir = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::symlink_metadata(target) {
        Ok(_) => {
            let canonical = fs::canonicalize(target)?;
            loop {
                let mounts = empty_dir::read_mounts().map_err(io::Error::other)?;
                if empty_dir::mounted_fs_type(&mounts, &canonical).is_none() {
                    break;
                }
                empty_dir::unmount(&canonical).map_err(io::Error::other)?;
            }
            let existing_is_dir = fs::symlink_metadata(target)?.is_dir();
            if existing_is_dir != is_dir {
                if existing_is_dir {
                    fs::remove_dir(target)?;
                } else {
                    fs::remove_file(target)?;
                }
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if fs::symlink_metadata(target).is_err() {
        if is_dir {
            fs::create_dir(target)?;
        } else {
            fs::write(target, b"")?;
        }
    }
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_keeps_inside_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        fs::create_dir_all(volume.join("inside/deeper")).unwrap();
        std::os::unix::fs::symlink("/etc", volume.join("escape")).unwrap();
        std::os::unix::fs::symlink("inside", volume.join("ok")).unwrap();
        let canonical = fs::canonicalize(&volume).unwrap();
        assert_eq!(
            resolve(&volume, "ok/deeper").unwrap(),
            canonical.join("inside/deeper")
        );
        let err = resolve(&volume, "escape").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("subpath /etc not within volume path"),
            "{err}"
        );
    }

    #[test]
    fn make_dirs_refuses_to_leave_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&volume).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, volume.join("escape")).unwrap();
        assert!(make_dirs(&volume, "escape/new", 0o755).is_err());
        assert!(!outside.join("new").exists());
        make_dirs(&volume, "a/b", 0o750).unwrap();
        assert_eq!(
            fs::metadata(volume.join("a/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o750
        );
    }

    #[test]
    fn open_beneath_fails_on_a_swapped_in_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        fs::create_dir_all(volume.join("a/b")).unwrap();
        let resolved = resolve(&volume, "a/b").unwrap();
        open_beneath(&volume, &resolved).unwrap();
        // The race upstream's safe open closes: `a` becomes a symlink after resolution.
        fs::rename(volume.join("a"), volume.join("a-moved")).unwrap();
        std::os::unix::fs::symlink(dir.path(), volume.join("a")).unwrap();
        let err = open_beneath(&volume, &resolved).unwrap_err();
        assert!(err.to_string().contains("changed into a symlink"), "{err}");
    }
}
