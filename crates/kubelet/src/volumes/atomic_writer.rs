//! The atomic writer: projects a set of files into a volume so that a reader sees the old set or
//! the new one, never a mix (upstream's `pkg/volume/util/atomic_writer.go`).
//!
//! Layout of a target directory:
//!
//! ```text
//! <target>/..2026_12_07_17_30_16.123456789/   the files of the current version
//! <target>/..data -> ..2026_12_07_17_30_16.123456789
//! <target>/key    -> ..data/key               one symlink per top-level name
//! <target>/dir    -> ..data/dir
//! ```
//!
//! A new version goes into a new timestamped directory; `..data_tmp` is pointed at it and renamed
//! over `..data` (rename is atomic), then names that went away and the old directory are removed.
//! When every file already holds the same bytes nothing on disk is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// The symlink to the current timestamped directory.
pub(crate) const DATA_DIR: &str = "..data";
/// The symlink made beside `..data` and renamed over it.
const NEW_DATA_DIR: &str = "..data_tmp";
const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;

/// One file of a payload: its bytes, its mode and, when set, its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits (`0o644`).
    pub mode: u32,
    /// The file's owner uid (a projected token for pods that all run as one user).
    pub fs_user: Option<u32>,
}

/// Files by their path relative to the volume.
pub type Payload = BTreeMap<String, FileProjection>;

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Every file already held its content: nothing was touched.
    Unchanged,
    /// A new version was swapped in.
    Updated,
}

/// Why a payload could not be written. The path messages are upstream's words.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    #[error("invalid path: must not be empty: \"\"")]
    EmptyPath,
    #[error("invalid path: must be relative path: {0}")]
    AbsolutePath(String),
    #[error("invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters")]
    PathTooLong,
    #[error("invalid path: must not contain '..': {0}")]
    Backstep(String),
    #[error(
        "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
    )]
    NameTooLong,
    #[error("invalid path: must not start with '..': {0}")]
    Reserved(String),
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("setting permissions of {}", path.display())]
    Permissions {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> AtomicWriteError + 'a {
    move |source| AtomicWriteError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Checks one payload path as upstream does: relative, no `..` element, not starting with `..`
/// (those names are the writer's own), names and path within Linux's limits.
pub fn validate_path(path: &str) -> Result<(), AtomicWriteError> {
    if path.is_empty() {
        return Err(AtomicWriteError::EmptyPath);
    }
    if path.starts_with('/') {
        return Err(AtomicWriteError::AbsolutePath(path.to_owned()));
    }
    if path.len() > MAX_PATH_LENGTH {
        return Err(AtomicWriteError::PathTooLong);
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(AtomicWriteError::Backstep(path.to_owned()));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(AtomicWriteError::NameTooLong);
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(AtomicWriteError::Reserved(path.to_owned()));
    }
    Ok(())
}

/// Lexical clean of a validated relative path (`a//b/./c` → `a/b/c`), as Go's `filepath.Clean`.
fn clean_path(path: &str) -> String {
    let cleaned: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if cleaned.is_empty() {
        ".".to_owned()
    } else {
        cleaned.join("/")
    }
}

/// Validates every path and returns the payload under cleaned paths.
fn validate_payload(
    payload: &Payload,
) -> Result<BTreeMap<String, &FileProjection>, AtomicWriteError> {
    let mut clean = BTreeMap::new();
    for (path, file) in payload {
        validate_path(path)?;
        clean.insert(clean_path(path), file);
    }
    Ok(clean)
}

/// The paths present in the old version that the new payload no longer has, neither as a file
/// nor as a parent directory of one.
pub(crate) fn paths_to_remove(
    old_paths: &BTreeSet<String>,
    payload: &BTreeMap<String, &FileProjection>,
) -> BTreeSet<String> {
    let mut new_paths = BTreeSet::new();
    for file in payload.keys() {
        let mut prefix = file.as_str();
        loop {
            new_paths.insert(prefix.to_owned());
            match prefix.rfind('/') {
                Some(slash) => prefix = &prefix[..slash],
                None => break,
            }
        }
    }
    old_paths.difference(&new_paths).cloned().collect()
}

/// Every path below `dir`, relative to it (files and directories, symlinks not followed).
fn walk_relative(dir: &Path) -> Result<BTreeSet<String>, AtomicWriteError> {
    fn walk(
        root: &Path,
        relative: &str,
        into: &mut BTreeSet<String>,
    ) -> Result<(), AtomicWriteError> {
        let dir = if relative.is_empty() {
            root.to_path_buf()
        } else {
            root.join(relative)
        };
        let entries = fs::read_dir(&dir).map_err(io_error("reading directory", &dir))?;
        for entry in entries {
            let entry = entry.map_err(io_error("reading directory", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            let file_type = entry
                .file_type()
                .map_err(io_error("reading file type of", &entry.path()))?;
            into.insert(path.clone());
            if file_type.is_dir() {
                walk(root, &path, into)?;
            }
        }
        Ok(())
    }
    let mut paths = BTreeSet::new();
    match walk(dir, "", &mut paths) {
        Err(AtomicWriteError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(BTreeSet::new())
        }
        other => other.map(|()| paths),
    }
}

/// Whether any file of the payload differs from what the old version holds.
fn payload_differs(
    payload: &BTreeMap<String, &FileProjection>,
    old_dir: &Path,
) -> Result<bool, AtomicWriteError> {
    for (path, file) in payload {
        let on_disk = old_dir.join(path);
        match fs::symlink_metadata(&on_disk) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(true),
            _ => {}
        }
        let content = fs::read(&on_disk).map_err(io_error("reading", &on_disk))?;
        if content != file.data {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes `..<UTC timestamp>.<random digits>` in `target`, mode 0755 whatever the umask.
fn new_timestamp_dir(target: &Path) -> Result<PathBuf, AtomicWriteError> {
    let stamp = k8s_openapi::jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.")
        .to_string();
    loop {
        let dir = target.join(format!("{stamp}{}", rand::random::<u32>()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .map_err(io_error("setting mode of", &dir))?;
                return Ok(dir);
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(io_error("creating", &dir)(err)),
        }
    }
}

fn write_payload_to_dir(
    payload: &BTreeMap<String, &FileProjection>,
    dir: &Path,
) -> Result<(), AtomicWriteError> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        }
        fs::write(&full, &file.data).map_err(io_error("writing", &full))?;
        // The mode given, whatever the umask made of it at creation.
        fs::set_permissions(&full, fs::Permissions::from_mode(file.mode))
            .map_err(io_error("setting mode of", &full))?;
        if let Some(uid) = file.fs_user {
            std::os::unix::fs::lchown(&full, Some(uid), None)
                .map_err(io_error("changing owner of", &full))?;
        }
    }
    Ok(())
}

/// One symlink `<name> -> ..data/<name>` per top-level name of the payload, where missing.
fn create_user_visible_files(
    target: &Path,
    payload: &BTreeMap<String, &FileProjection>,
) -> Result<(), AtomicWriteError> {
    let top_level: BTreeSet<&str> = payload
        .keys()
        .map(|path| path.split('/').next().unwrap_or(path))
        .collect();
    for name in top_level {
        let visible = target.join(name);
        match fs::read_link(&visible) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                symlink(Path::new(DATA_DIR).join(name), &visible)
                    .map_err(io_error("creating symlink", &visible))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `payload` into `target` (which must exist). `before_swap` runs after the new version is
/// written and before it becomes visible (the fsGroup ownership pass). Not safe to call
/// concurrently for one target: the caller serializes writes to a volume.
pub fn write<F>(
    target: &Path,
    payload: &Payload,
    before_swap: F,
) -> Result<Written, AtomicWriteError>
where
    F: FnOnce() -> Result<(), AtomicWriteError>,
{
    let payload = validate_payload(payload)?;
    let data_dir = target.join(DATA_DIR);
    let mut old_dir_name = match fs::read_link(&data_dir) {
        Ok(name) => Some(name),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(io_error("reading symlink", &data_dir)(err)),
    };
    let mut to_remove = BTreeSet::new();
    let mut should_write = true;
    if let Some(old) = &old_dir_name {
        let old_dir = target.join(old);
        to_remove = paths_to_remove(&walk_relative(&old_dir)?, &payload);
        if !payload_differs(&payload, &old_dir)? && to_remove.is_empty() {
            should_write = false;
            old_dir_name = None;
        }
    }
    if should_write {
        let new_dir = new_timestamp_dir(target)?;
        let swapped = write_payload_to_dir(&payload, &new_dir)
            .and_then(|()| before_swap())
            .and_then(|()| swap_data_dir(target, &new_dir));
        if let Err(err) = swapped {
            if let Err(cleanup) = fs::remove_dir_all(&new_dir) {
                tracing::warn!(dir = %new_dir.display(), error = %cleanup, "removing an unused data directory");
            }
            return Err(err);
        }
    }
    create_user_visible_files(target, &payload)?;
    for path in &to_remove {
        // Only the top-level symlinks live outside the timestamped directory.
        if path.contains('/') {
            continue;
        }
        let visible = target.join(path);
        match fs::remove_file(&visible) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(io_error("removing", &visible)(err))
            }
            _ => {}
        }
    }
    if let Some(old) = old_dir_name {
        let old_dir = target.join(old);
        fs::remove_dir_all(&old_dir).map_err(io_error("removing", &old_dir))?;
    }
    Ok(if should_write {
        Written::Updated
    } else {
        Written::Unchanged
    })
}

/// Points `..data` at `new_dir`: a `..data_tmp` symlink renamed over it.
fn swap_data_dir(target: &Path, new_dir: &Path) -> Result<(), AtomicWriteError> {
    let new_link = target.join(NEW_DATA_DIR);
    // A leftover from a crash between symlink and rename would make every later write fail.
    match fs::remove_file(&new_link) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(io_error("removing", &new_link)(err))
        }
        _ => {}
    }
    let name = new_dir.file_name().unwrap_or(new_dir.as_os_str());
    symlink(name, &new_link).map_err(io_error("creating symlink", &new_link))?;
    let data_dir = target.join(DATA_DIR);
    if let Err(err) = fs::rename(&new_link, &data_dir) {
        let _ = fs::remove_file(&new_link);
        return Err(io_error("renaming symlink to", &data_dir)(err));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
            fs_user: None,
        }
    }

    fn payload(files: &[(&str, &str)]) -> Payload {
        files
            .iter()
            .map(|(path, data)| ((*path).to_owned(), file(data, 0o644)))
            .collect()
    }

    fn no_perms() -> Result<(), AtomicWriteError> {
        Ok(())
    }

    fn data_target(dir: &Path) -> PathBuf {
        fs::read_link(dir.join(DATA_DIR)).unwrap()
    }

    fn timestamped_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA_DIR)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn first_write_makes_data_dir_and_visible_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(
            dir.path(),
            &payload(&[("a", "one"), ("sub/b", "two")]),
            no_perms,
        )
        .unwrap();
        assert_eq!(written, Written::Updated);
        let ts = data_target(dir.path());
        let ts_name = ts.to_string_lossy().into_owned();
        assert!(ts_name.starts_with("..20"), "{ts_name}");
        assert_eq!(
            fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            fs::read_link(dir.path().join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "one");
        assert_eq!(fs::read_to_string(dir.path().join("sub/b")).unwrap(), "two");
        let ts_mode = fs::metadata(dir.path().join(&ts))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(ts_mode, 0o755);
        assert!(!dir.path().join(NEW_DATA_DIR).exists());
        assert_eq!(timestamped_dirs(dir.path()), vec![ts_name]);
    }

    #[test]
    fn unchanged_second_write_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = payload(&[("a", "one"), ("sub/b", "two")]);
        write(dir.path(), &files, no_perms).unwrap();
        let data = fs::symlink_metadata(dir.path().join(DATA_DIR)).unwrap();
        let a = fs::metadata(dir.path().join("a")).unwrap();
        let ts_before = data_target(dir.path());

        let mut perms_called = false;
        let written = write(dir.path(), &files, || {
            perms_called = true;
            Ok(())
        })
        .unwrap();
        assert_eq!(written, Written::Unchanged);
        assert!(
            !perms_called,
            "nothing new was written, so no permission pass"
        );
        let data_after = fs::symlink_metadata(dir.path().join(DATA_DIR)).unwrap();
        let a_after = fs::metadata(dir.path().join("a")).unwrap();
        assert_eq!(data.ino(), data_after.ino());
        assert_eq!(data.mtime_nsec(), data_after.mtime_nsec());
        assert_eq!(a.ino(), a_after.ino());
        assert_eq!(a.mtime_nsec(), a_after.mtime_nsec());
        assert_eq!(data_target(dir.path()), ts_before);
    }

    #[test]
    fn changed_content_swaps_and_removes_old_dir() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &payload(&[("a", "one")]), no_perms).unwrap();
        let old = data_target(dir.path());
        let mut perms_called = false;
        let written = write(dir.path(), &payload(&[("a", "uno")]), || {
            perms_called = true;
            Ok(())
        })
        .unwrap();
        assert_eq!(written, Written::Updated);
        assert!(perms_called);
        let new = data_target(dir.path());
        assert_ne!(old, new);
        assert!(
            !dir.path().join(&old).exists(),
            "old timestamped dir removed"
        );
        assert_eq!(
            timestamped_dirs(dir.path()),
            vec![new.to_string_lossy().into_owned()]
        );
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "uno");
    }

    #[test]
    fn removed_keys_disappear() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &payload(&[("a", "1"), ("b", "2"), ("d/c", "3"), ("e/f", "4")]),
            no_perms,
        )
        .unwrap();
        write(dir.path(), &payload(&[("a", "1"), ("e/f", "4")]), no_perms).unwrap();
        assert!(fs::symlink_metadata(dir.path().join("b")).is_err());
        assert!(fs::symlink_metadata(dir.path().join("d")).is_err());
        assert_eq!(fs::read_to_string(dir.path().join("e/f")).unwrap(), "4");
        let mut visible: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".."))
            .collect();
        visible.sort();
        assert_eq!(visible, vec!["a", "e"]);
    }

    #[test]
    fn removing_the_only_key_empties_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &payload(&[("a", "1")]), no_perms).unwrap();
        assert_eq!(
            write(dir.path(), &Payload::new(), no_perms).unwrap(),
            Written::Updated
        );
        assert!(fs::symlink_metadata(dir.path().join("a")).is_err());
        assert!(dir.path().join(DATA_DIR).exists());
    }

    #[test]
    fn item_modes_are_exact_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Payload::new();
        files.insert("secret".into(), file("s", 0o400));
        files.insert("script".into(), file("#!/bin/sh", 0o755));
        files.insert("wide".into(), file("w", 0o666));
        write(dir.path(), &files, no_perms).unwrap();
        for (name, mode) in [("secret", 0o400), ("script", 0o755), ("wide", 0o666)] {
            let got = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777;
            assert_eq!(got, mode, "{name}");
        }
    }

    #[test]
    fn failed_permission_pass_leaves_old_version() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &payload(&[("a", "one")]), no_perms).unwrap();
        let old = data_target(dir.path());
        let err = write(dir.path(), &payload(&[("a", "two")]), || {
            Err(AtomicWriteError::Io {
                op: "testing",
                path: PathBuf::from("/x"),
                source: io::Error::other("boom"),
            })
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "testing /x");
        assert_eq!(data_target(dir.path()), old);
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "one");
        assert_eq!(
            timestamped_dirs(dir.path()),
            vec![old.to_string_lossy().into_owned()]
        );
    }

    #[test]
    fn path_validation_in_upstream_words() {
        let long_name = "x".repeat(256);
        let cases = [
            ("", Some("invalid path: must not be empty: \"\"")),
            (
                "/etc/passwd",
                Some("invalid path: must be relative path: /etc/passwd"),
            ),
            (
                "a/../b",
                Some("invalid path: must not contain '..': a/../b"),
            ),
            ("..", Some("invalid path: must not contain '..': ..")),
            (
                "..data",
                Some("invalid path: must not start with '..': ..data"),
            ),
            (
                "..a/b",
                Some("invalid path: must not start with '..': ..a/b"),
            ),
            (
                long_name.as_str(),
                Some("invalid path: filenames must be less than or equal to 255 characters"),
            ),
            ("a/..b", None),
            ("a..", None),
            ("dir/file", None),
        ];
        for (path, want) in cases {
            let got = validate_path(path).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{path:?}");
        }
        let err = write(
            tempfile::tempdir().unwrap().path(),
            &payload(&[("../x", "1")]),
            no_perms,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid path: must not contain '..': ../x");
    }

    #[test]
    fn paths_to_remove_keeps_parents_of_new_files() {
        let old: BTreeSet<String> = ["a", "d", "d/c", "d/e", "x"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let f = file("", 0o644);
        let new: BTreeMap<String, &FileProjection> = [("d/e".to_owned(), &f), ("a".to_owned(), &f)]
            .into_iter()
            .collect();
        let remove: Vec<String> = paths_to_remove(&old, &new).into_iter().collect();
        assert_eq!(remove, vec!["d/c", "x"]);
    }

    #[test]
    fn a_leftover_tmp_link_does_not_block_writes() {
        let dir = tempfile::tempdir().unwrap();
        symlink("..nowhere", dir.path().join(NEW_DATA_DIR)).unwrap();
        write(dir.path(), &payload(&[("a", "1")]), no_perms).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "1");
    }
}
