//! Errors the store reports.

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
    Backend(String),
}
