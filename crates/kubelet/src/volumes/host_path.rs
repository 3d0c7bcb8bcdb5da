//! hostPath volumes (upstream's `pkg/volume/hostpath`): the path is used as it is; its `type`
//! is checked, and `DirectoryOrCreate` / `FileOrCreate` create it first. The kubelet never
//! writes into, chowns or removes a hostPath.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A hostPath that is not what its `type` asks for (upstream's words).
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    #[error("invalid HostPath `{0}`: must not contain '..'")]
    Backsteps(String),
    #[error("hostPath {0} doesn't exist")]
    Missing(String),
    #[error("hostPath type check failed: {path} is not a {expected}, it's a {actual}")]
    Mismatch {
        path: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("hostPath type check failed, {path} is not a {expected}, unable to determine its type: only recognise file, directory, socket, block device and character device")]
    UnknownType {
        path: String,
        expected: &'static str,
    },
    #[error("{0} is an invalid volume type")]
    InvalidType(String),
    #[error("creating hostPath {path}")]
    Create {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The kinds a hostPath can be, named as upstream's `FileType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathKind {
    Directory,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

impl PathKind {
    fn name(self) -> &'static str {
        match self {
            PathKind::Directory => "Directory",
            PathKind::File => "File",
            PathKind::Socket => "Socket",
            PathKind::CharDevice => "CharDevice",
            PathKind::BlockDevice => "BlockDevice",
        }
    }

    fn description(self) -> &'static str {
        match self {
            PathKind::Directory => "directory",
            PathKind::File => "file",
            PathKind::Socket => "socket file",
            PathKind::CharDevice => "character device",
            PathKind::BlockDevice => "block device",
        }
    }
}

/// Rejects a path with a `..` element.
pub(crate) fn validate_no_backsteps(path: &str) -> Result<(), HostPathError> {
    if path.split('/').any(|part| part == "..") {
        return Err(HostPathError::Backsteps(path.to_owned()));
    }
    Ok(())
}

/// The kind of what `path` names, following symlinks; `None` when it does not exist.
fn kind_of(path: &Path) -> Result<Option<Option<PathKind>>, io::Error> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let file_type = metadata.file_type();
    let kind = if file_type.is_dir() {
        Some(PathKind::Directory)
    } else if file_type.is_file() {
        Some(PathKind::File)
    } else if file_type.is_socket() {
        Some(PathKind::Socket)
    } else if file_type.is_char_device() {
        Some(PathKind::CharDevice)
    } else if file_type.is_block_device() {
        Some(PathKind::BlockDevice)
    } else {
        None
    };
    Ok(Some(kind))
}

/// Whether what exists at `path` is `expected`.
fn type_matches(path: &str, expected: PathKind) -> Result<(), HostPathError> {
    match kind_of(Path::new(path)) {
        Ok(None) | Err(_) => Err(HostPathError::Missing(path.to_owned())),
        Ok(Some(None)) => Err(HostPathError::UnknownType {
            path: path.to_owned(),
            expected: expected.description(),
        }),
        Ok(Some(Some(actual))) if actual == expected => Ok(()),
        Ok(Some(Some(actual))) => Err(HostPathError::Mismatch {
            path: path.to_owned(),
            expected: expected.description(),
            actual: actual.name(),
        }),
    }
}

fn exists(path: &str) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Checks (and for the `…OrCreate` types creates) a hostPath of the given `type` ("" and `None`
/// check nothing). A created directory is 0755 and a created file 0644, as upstream makes them.
pub(crate) fn check_type(path: &str, path_type: Option<&str>) -> Result<(), HostPathError> {
    validate_no_backsteps(path)?;
    let create_error = |source| HostPathError::Create {
        path: path.to_owned(),
        source,
    };
    match path_type.unwrap_or_default() {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !exists(path) {
                match fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                {
                    Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(create_error(err))
                    }
                    _ => {}
                }
                // DirBuilder's mode is subject to the umask; upstream's 0755 is not.
                fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                    .map_err(create_error)?;
            }
            type_matches(path, PathKind::Directory)
        }
        "Directory" => type_matches(path, PathKind::Directory),
        "FileOrCreate" => {
            if !exists(path) {
                match fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                {
                    Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(create_error(err))
                    }
                    _ => {}
                }
            }
            type_matches(path, PathKind::File)
        }
        "File" => type_matches(path, PathKind::File),
        "Socket" => type_matches(path, PathKind::Socket),
        "CharDevice" => type_matches(path, PathKind::CharDevice),
        "BlockDevice" => type_matches(path, PathKind::BlockDevice),
        other => Err(HostPathError::InvalidType(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn directory_or_create_makes_0755_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b");
        let path = path.to_str().unwrap();
        check_type(path, Some("DirectoryOrCreate")).unwrap();
        assert!(Path::new(path).is_dir());
        assert_eq!(
            fs::metadata(path).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        // Idempotent, and an existing directory keeps its mode.
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).unwrap();
        check_type(path, Some("DirectoryOrCreate")).unwrap();
        assert_eq!(
            fs::metadata(path).unwrap().permissions().mode() & 0o7777,
            0o700
        );
    }

    #[test]
    fn file_or_create_makes_an_empty_file_but_keeps_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let path_str = path.to_str().unwrap();
        check_type(path_str, Some("FileOrCreate")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        fs::write(&path, "keep").unwrap();
        check_type(path_str, Some("FileOrCreate")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"keep");
    }

    #[test]
    fn type_checks_in_upstream_words() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        let socket = dir.path().join("sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        let d = dir.path().to_str().unwrap();
        let f = file.to_str().unwrap();
        let s = socket.to_str().unwrap();
        let missing = dir.path().join("missing");
        let m = missing.to_str().unwrap();

        let cases: Vec<(&str, &str, Option<String>)> = vec![
            (d, "Directory", None),
            (f, "File", None),
            (s, "Socket", None),
            ("/dev/null", "CharDevice", None),
            (f, "Directory", Some(format!("hostPath type check failed: {f} is not a directory, it's a File"))),
            (d, "File", Some(format!("hostPath type check failed: {d} is not a file, it's a Directory"))),
            (f, "Socket", Some(format!("hostPath type check failed: {f} is not a socket file, it's a File"))),
            ("/dev/null", "BlockDevice", Some("hostPath type check failed: /dev/null is not a block device, it's a CharDevice".to_owned())),
            (s, "CharDevice", Some(format!("hostPath type check failed: {s} is not a character device, it's a Socket"))),
            (m, "Directory", Some(format!("hostPath {m} doesn't exist"))),
            (m, "", None),
            (f, "DirectoryOrCreate", Some(format!("hostPath type check failed: {f} is not a directory, it's a File"))),
            (d, "FileOrCreate", Some(format!("hostPath type check failed: {d} is not a file, it's a Directory"))),
            (d, "Pipe", Some("Pipe is an invalid volume type".to_owned())),
            ("/a/../etc", "", Some("invalid HostPath `/a/../etc`: must not contain '..'".to_owned())),
        ];
        for (path, kind, want) in cases {
            let got = check_type(path, Some(kind)).err().map(|e| e.to_string());
            assert_eq!(got, want, "{path} {kind}");
        }
        assert!(!missing.exists(), "a plain check creates nothing");
    }

    #[test]
    fn symlinks_are_followed_for_the_type() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        fs::create_dir(&target).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        check_type(link.to_str().unwrap(), Some("Directory")).unwrap();
    }
}
