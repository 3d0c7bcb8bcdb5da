//! Errors the store reports.

use std::sync::Arc;

use crate::Revision;

/// Everything a [`crate::Store`] operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` of a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// `update` or `delete` of a key that does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A compare-on-revision precondition failed.
    #[error("key {key} was modified at revision {actual}, expected revision {expected}")]
    Conflict {
        /// The key.
        key: String,
        /// The mod revision the caller expected.
        expected: Revision,
        /// The mod revision the key has.
        actual: Revision,
    },
    /// The requested revision is older than the compacted history.
    #[error("revision {requested} has been compacted (oldest kept is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still kept.
        compacted: Revision,
    },
    /// The requested revision is newer than the store's current one.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// A watcher fell too far behind and was dropped; it must list and watch again.
    #[error("watcher on {prefix} fell behind and was dropped")]
    WatcherTooSlow {
        /// The prefix being watched.
        prefix: String,
    },
    /// A continue token that this store did not issue or cannot read.
    #[error("invalid continue token: {reason}")]
    InvalidContinue {
        /// Why it was rejected.
        reason: String,
    },
    /// A key the store cannot hold (empty, or containing a NUL byte).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The data directory holds a store of another format version.
    #[error("store at {path} has format {found:?}, this k3rs reads format {expected:?}; refusing to open it")]
    IncompatibleFormat {
        /// The store directory.
        path: String,
        /// What the format file says.
        found: String,
        /// What this build understands.
        expected: String,
    },
    /// The data on disk is damaged or inconsistent.
    #[error("store at {path} is corrupt: {reason}")]
    Corrupt {
        /// The store directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Another process (or another handle in this one) has the store open.
    #[error("store at {path} is in use by another process")]
    InUse {
        /// The store directory.
        path: String,
    },
    /// The store has shut down (or its writer thread died).
    #[error("store is closed")]
    Closed,
    /// An I/O error from the backend.
    #[error("store I/O error at {path}: {source}")]
    Io {
        /// The store directory or file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error from the embedded database engine.
    #[error("store backend error: {0}")]
    Backend(#[source] BackendError),
    /// A blocking task of the store (a read, a watch's catch-up) panicked or was cancelled.
    #[error("store {operation} task failed")]
    Task {
        /// What the task was doing.
        operation: &'static str,
        /// Why it ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A continue token could not be written.
    #[error("encoding a continue token")]
    EncodeContinue(#[source] serde_json::Error),
    /// A failure that several callers share (every write of a group whose flush failed, every
    /// caller waiting for one compaction): each gets this, with the one failure as its source.
    #[error("{operation}: {source}")]
    Failed {
        /// What failed, from the caller's point of view.
        operation: &'static str,
        /// The failure.
        #[source]
        source: Arc<StoreError>,
    },
}

impl StoreError {
    /// Whether this is, or was caused by, a failure of the database itself (I/O, the engine,
    /// damaged data) rather than a refused request.
    pub fn is_backend_failure(&self) -> bool {
        match self {
            StoreError::Backend(_) | StoreError::Io { .. } | StoreError::Corrupt { .. } => true,
            StoreError::Failed { source, .. } => source.is_backend_failure(),
            _ => false,
        }
    }
}

/// An error of the embedded database engine (a `sled::Error`, a `redb::Error`), kept whole as a source without naming the engine's
/// type in the store's API. Cloning shares it.
#[derive(Clone, Debug, thiserror::Error)]
#[error(transparent)]
pub struct BackendError(Arc<dyn std::error::Error + Send + Sync + 'static>);

/// Converts any redb error (`DatabaseError`, `TransactionError`, `TableError`, `StorageError`,
/// `CommitError`, `SetDurabilityError`…) into a store error, keeping it whole as the source.
pub(crate) fn redb_error(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(BackendError::new(err.into()))
}

impl BackendError {
    pub(crate) fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(err))
    }

    /// The engine's error itself, for a caller that needs to tell its kind.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_backend_error_keeps_its_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
        let err = StoreError::Backend(BackendError::new(cause));
        assert_eq!(err.to_string(), "store backend error: disk full");
        let source = err.source().expect("a source");
        let io = source
            .downcast_ref::<BackendError>()
            .and_then(|backend| backend.get_ref().downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::StorageFull)
        );
        assert!(err.is_backend_failure());
    }

    #[test]
    fn a_redb_error_is_kept_as_the_source() {
        let err = redb_error(redb::StorageError::Corrupted("bad page".to_owned()));
        assert!(err.is_backend_failure());
        let source = err.source().expect("a source");
        let redb = source
            .downcast_ref::<BackendError>()
            .and_then(|backend| backend.get_ref().downcast_ref::<redb::Error>());
        assert!(matches!(redb, Some(redb::Error::Corrupted(_))), "{err}");
    }

    #[test]
    fn a_shared_failure_names_the_operation_and_keeps_the_failure() {
        let shared = Arc::new(StoreError::Io {
            path: "/data".into(),
            source: std::io::Error::other("EIO"),
        });
        let err = StoreError::Failed {
            operation: "flush failed",
            source: Arc::clone(&shared),
        };
        assert_eq!(
            err.to_string(),
            "flush failed: store I/O error at /data: EIO"
        );
        assert!(err.is_backend_failure(), "fatal because its source is");
        let refused = StoreError::Failed {
            operation: "compaction failed",
            source: Arc::new(StoreError::Closed),
        };
        assert!(!refused.is_backend_failure());
    }
}
