//! Makes what sled flushed durable against power loss, not only against a process crash.
//!
//! sled 0.34's `flush` writes its log with `sync_file_range`, which neither persists file
//! metadata (the log grows by appending, so its size matters) nor flushes the device's write
//! cache, and it writes large pages to `blobs/` files that it never syncs at all. After every
//! sled flush the sled backend's commit therefore calls [`Durability::sync`]: `fdatasync` of the
//! log file and, when `blobs/` changed, `fsync` of the new blob files and of the directory.
//!
//! sled only: redb's commits with `Durability::Immediate` are durable when they return.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How far filesystem timestamps may lag the clock.
const TIMESTAMP_MARGIN: Duration = Duration::from_secs(1);

/// Handles on the files sled writes, kept open by the writer thread.
#[derive(Debug)]
pub(crate) struct Durability {
    log: File,
    blobs: PathBuf,
    /// Blob files and directory changes from this time on are synced by the next [`sync`].
    /// Filesystem timestamps are coarse and may lag the clock, hence the margin.
    ///
    /// [`sync`]: Durability::sync
    blobs_changed_since: SystemTime,
}

impl Durability {
    /// Opens the handles for the sled database at `path` (after sled has opened it).
    pub(crate) fn open(path: &Path) -> std::io::Result<Durability> {
        Ok(Durability {
            log: File::open(path.join("db"))?,
            blobs: path.join("blobs"),
            blobs_changed_since: SystemTime::UNIX_EPOCH,
        })
    }

    /// Persists everything sled has flushed so far.
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.log.sync_data()?;
        let started = SystemTime::now() - TIMESTAMP_MARGIN;
        let since = self.blobs_changed_since;
        if modified(&self.blobs)?.is_some_and(|changed| changed >= since) {
            for entry in std::fs::read_dir(&self.blobs)? {
                let entry = entry?;
                let metadata = entry.metadata()?;
                if metadata.is_file() && metadata.modified()? >= since {
                    File::open(entry.path())?.sync_all()?;
                }
            }
            File::open(&self.blobs)?.sync_all()?;
        }
        self.blobs_changed_since = started;
        Ok(())
    }
}

fn modified(path: &Path) -> std::io::Result<Option<SystemTime>> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(Some(metadata.modified()?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}
