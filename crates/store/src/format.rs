//! The store directory's format: the `FORMAT` file beside the database, and the same string in
//! the database's `m:format` record. Each backend has its own format string, so a directory of
//! one backend is refused by the other with [`StoreError::IncompatibleFormat`].
//!
//! **Invariant**: the format file is written (atomically, durably) only after the format record
//! is durable in the database, so a directory with a format file and a database without the
//! record is damaged, never half-created.

use std::path::Path;

use crate::backend::{Backend, Batch};
use crate::codec;
use crate::StoreError;

/// The name of the file, inside the store directory, that names the on-disk format.
pub const FORMAT_FILE: &str = "FORMAT";

/// What the format file said when the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormatFile {
    Present,
    Absent,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Checks the format file before the backend touches anything, creating the directory when it
/// is missing. Without a format file the directory must hold only files for which
/// `backend_file` is true (a first start that was cut short), or nothing.
pub(crate) fn open_format(
    path: &Path,
    expected: &str,
    backend_file: impl Fn(&str) -> bool,
) -> Result<FormatFile, StoreError> {
    let io = io_error(path);
    match std::fs::read_to_string(path.join(FORMAT_FILE)) {
        Ok(found) => {
            if found.trim() != expected {
                return Err(StoreError::IncompatibleFormat {
                    path: path.display().to_string(),
                    found: found.trim().to_owned(),
                    expected: expected.to_owned(),
                });
            }
            Ok(FormatFile::Present)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    for entry in entries {
                        let name = entry.map_err(&io)?.file_name();
                        let name = name.to_string_lossy();
                        if !(backend_file(&name) || name == format!("{FORMAT_FILE}.tmp")) {
                            return Err(StoreError::Corrupt {
                                path: path.display().to_string(),
                                reason: format!(
                                    "the directory holds {name} but no {FORMAT_FILE} file: it is not a k3rs store"
                                ),
                            });
                        }
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(path).map_err(&io)?;
                }
                Err(err) => return Err(io(err)),
            }
            Ok(FormatFile::Absent)
        }
        Err(err) => Err(io(err)),
    }
}

/// Checks the format recorded inside the database, or records it (durably) in a new one, then
/// writes the format file if it was missing.
pub(crate) fn check_or_init<B: Backend>(
    backend: &B,
    path: &Path,
    file: FormatFile,
    expected: &str,
) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let (found, empty) = backend.read(|view| {
        let found = view.get(codec::META_FORMAT)?;
        let mut empty = true;
        view.scan(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            &mut |_, _| {
                empty = false;
                Ok(false)
            },
        )?;
        Ok((found, empty))
    })?;
    match found {
        Some(found) if found == expected.as_bytes() => {}
        Some(found) => {
            return Err(StoreError::IncompatibleFormat {
                path: path.display().to_string(),
                found: String::from_utf8_lossy(&found).into_owned(),
                expected: expected.to_owned(),
            })
        }
        None if file == FormatFile::Present => {
            return Err(corrupt(format!(
                "{FORMAT_FILE} says this is a store but the database has no contents"
            )))
        }
        None if !empty => {
            return Err(corrupt(
                "the database has data but no format record".to_owned(),
            ))
        }
        None => {
            let mut batch = Batch::default();
            batch.put(codec::META_FORMAT, expected.as_bytes());
            // Durable before the format file claims it is.
            backend.commit(batch)?;
        }
    }
    if file == FormatFile::Absent {
        write_format_file(path, expected)?;
    }
    Ok(())
}

/// Writes the format file atomically and durably (temporary file, fsync, rename, fsync dir).
fn write_format_file(path: &Path, format: &str) -> Result<(), StoreError> {
    use std::io::Write as _;
    let io = io_error(path);
    let tmp = path.join(format!("{FORMAT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(&io)?;
    file.write_all(format.as_bytes()).map_err(&io)?;
    file.write_all(b"\n").map_err(&io)?;
    file.sync_all().map_err(&io)?;
    std::fs::rename(&tmp, path.join(FORMAT_FILE)).map_err(&io)?;
    std::fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(&io)?;
    Ok(())
}

/// The format named by the `FORMAT` file in the store directory `path`: `None` for a directory
/// that does not exist or has no format file yet (a new store). Lets a caller open an existing
/// store with the backend that wrote it.
pub fn recorded_format(path: &Path) -> Result<Option<String>, StoreError> {
    match std::fs::read_to_string(path.join(FORMAT_FILE)) {
        Ok(found) => Ok(Some(found.trim().to_owned())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error(path)(err)),
    }
}
