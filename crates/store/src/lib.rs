//! The k3rs store: an ordered key-value store with one global revision, in the shape of etcd v3.
//!
//! Every change (create, update, delete) gets the next revision of one global, strictly increasing
//! counter. Objects carry the revision that created them and the one that last changed them.
//! Updates and deletes can be made conditional on the object's mod revision (optimistic
//! concurrency). Lists page through a prefix at one consistent revision. Watches replay the
//! history after a revision and then stream live changes, every event exactly once, in revision
//! order, with the previous value on update and delete.
//!
//! **Invariants**
//! - A write is acknowledged only after it is durable (flushed to disk); a `kill -9` at any moment
//!   loses no acknowledged write and leaves no half-applied one.
//! - Readers never observe a write that is not yet durable: reads are served at the durable
//!   revision.
//! - Revisions never go backwards, not across restarts and not across compaction.
//! - A watch from a compacted revision fails with [`StoreError::Compacted`] instead of skipping
//!   events; a watcher that cannot keep up is dropped with [`StoreError::WatcherTooSlow`] instead
//!   of slowing writers down.
//!
//! The store knows nothing about Kubernetes: keys are strings, values are bytes. The [`Store`]
//! trait is shaped so that an etcd v3 backend can implement it with the same semantics; no
//! engine's type appears in it.
//!
//! **Backends.** Two embedded engines implement [`Store`] with exactly these semantics, sharing
//! one writer thread (group commit, revisions, compaction), one reader and one watch fan-out
//! (`writer.rs`, `reader.rs`, `watch.rs`, generic over a crate-private `Backend` trait in
//! `backend.rs`: short consistent reads, atomic durable commits of a batch):
//! - [`SledStore`] over sled 0.34 (`sled_store.rs`): one sled tree, made durable by sled's flush
//!   plus `durability.rs`'s syncs. Under churn its file and its memory keep growing.
//! - [`RedbStore`] over redb (`redb_store.rs`): one redb table in `<dir>/store.redb`, each commit
//!   group one write transaction with immediate durability, each read one short read
//!   transaction. Freed pages are reused, so its file stays bounded under churn.
//!
//! Both keep the same key spaces (`codec.rs`) and a `FORMAT` file naming their format
//! ([`FORMAT_VERSION`], [`REDB_FORMAT_VERSION`]); neither opens the other's directory.
//! [`recorded_format`] tells which one wrote a directory: the server opens new stores with redb
//! and a directory sled wrote with sled.

#![deny(unsafe_code)]
#![forbid(unsafe_code)]

mod backend;
mod codec;
mod durability;
mod engine;
mod error;
mod format;
mod reader;
mod redb_store;
mod sled_store;
mod watch;
mod writer;

pub use error::{BackendError, StoreError};
pub use format::{recorded_format, FORMAT_FILE};
pub use redb_store::{RedbStats, RedbStore, RedbStoreConfig, REDB_FILE, REDB_FORMAT_VERSION};
pub use sled_store::{
    SledStore, SledStoreConfig, DEFAULT_BACKGROUND_EVERY, DEFAULT_COMPACTION_INTERVAL,
    DEFAULT_COMPACTION_RETENTION, FORMAT_VERSION,
};

use async_trait::async_trait;
use futures::stream::BoxStream;

/// A position in the store's history. Revision 0 is the empty store before its first write.
pub type Revision = i64;

/// One stored object as of some revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: String,
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The revision of the write that created this incarnation of the key.
    pub create_revision: Revision,
    /// The revision of the write that last changed the key.
    pub mod_revision: Revision,
}

/// Options for [`Store::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Return at most this many objects; `None` (or `Some(0)`) returns them all.
    pub limit: Option<usize>,
    /// The opaque token from a previous page's [`ListPage::continue_token`].
    pub continue_token: Option<String>,
    /// List as of this revision instead of the current one (ignored when `continue_token` is
    /// set: the token carries the revision of the first page).
    pub revision: Option<Revision>,
}

/// One page of a [`Store::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Objects in key order.
    pub items: Vec<KeyValue>,
    /// The revision every object in this page (and in every following page) is read at.
    pub revision: Revision,
    /// Present when more objects follow; pass it back in [`ListOptions::continue_token`].
    pub continue_token: Option<String>,
    /// How many objects follow this page at `revision`, when known.
    pub remaining: Option<u64>,
}

/// What a successful delete returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The revision of the delete.
    pub revision: Revision,
    /// The object as it was just before the delete.
    pub prev: KeyValue,
}

/// The kind of change a [`WatchEvent`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key did not exist before this revision.
    Created,
    /// The key existed and got a new value.
    Modified,
    /// The key was removed.
    Deleted,
}

/// One change, as delivered by [`Store::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventKind,
    /// The revision of the change.
    pub revision: Revision,
    /// The key after the change. For [`EventKind::Deleted`] this is the last value, with
    /// `mod_revision` set to the revision of the delete (as etcd and Kubernetes report it).
    pub kv: KeyValue,
    /// The object before the change: `None` for [`EventKind::Created`].
    pub prev: Option<KeyValue>,
}

/// A live watch: events in revision order, or one error after which the stream ends.
pub type WatchStream = BoxStream<'static, Result<WatchEvent, StoreError>>;

/// The store every k3rs component above it talks to.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The newest revision that is durable and visible to readers.
    fn current_revision(&self) -> Revision;

    /// The oldest revision whose history is still kept; watches must start at or after it.
    fn compacted_revision(&self) -> Revision;

    /// Reads one key at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Lists the keys under `prefix` in key order, one page at a time, every page at one
    /// revision. Fails with [`StoreError::Compacted`] when that revision has been compacted.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError>;

    /// Counts the keys under `prefix` at the current revision.
    async fn count(&self, prefix: &str) -> Result<u64, StoreError>;

    /// Creates `key`; fails with [`StoreError::AlreadyExists`] when it is present.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError>;

    /// Replaces the value of `key` if its mod revision is still `expected_mod_revision`;
    /// fails with [`StoreError::NotFound`] or [`StoreError::Conflict`] otherwise.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue, StoreError>;

    /// Deletes `key`, only if its mod revision is `expected_mod_revision` when that is given.
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<Deleted, StoreError>;

    /// Streams every change under `prefix` with a revision greater than `after`: first the
    /// history, then live changes. Fails with [`StoreError::Compacted`] when `after` is older
    /// than [`Store::compacted_revision`].
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// Forgets the history older than `revision` (values that were current at `revision` stay).
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;
}
