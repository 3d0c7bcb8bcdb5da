//! The key-value operations the store needs from an embedded database engine.
//!
//! The writer, the readers and the watchers (`writer.rs`, `reader.rs`, `watch.rs`) are written
//! once, over [`Backend`]; `sled_store.rs` and `redb_store.rs` implement it. A backend holds one
//! ordered map of raw byte keys to raw byte values, with the key spaces of `codec.rs`.
//!
//! **Contract**
//! - [`Backend::read`] runs its closure against one consistent view of the map, for a short time:
//!   callers never hold a view across an await or between two steps of a longer job.
//! - [`Backend::commit`] applies a whole [`Batch`] atomically and returns only once it is durable:
//!   after a `kill -9` (or power loss) the map holds either all of it or, if `commit` failed or
//!   never returned, possibly none of it, never a part.
//! - Only the writer thread commits, so commits never race each other.

use std::fmt::Debug;
use std::ops::Bound;

use crate::StoreError;

/// One raw entry: key and value.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// A visitor of the entries of a scan: returns whether the scan should go on.
pub(crate) type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// A consistent, read-only view of the map (a sled tree, a redb read transaction).
pub(crate) trait ReadView {
    /// The value of one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The last entry whose key is in `low..=high`.
    fn last_in(&self, low: &[u8], high: &[u8]) -> Result<Option<Entry>, StoreError>;

    /// Visits the entries whose keys are in `(low, high)`, in key order, until `visit` returns
    /// `Ok(false)` or an error (which is returned).
    fn scan(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError>;
}

/// A change of several entries, applied atomically by [`Backend::commit`].
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) ops: Vec<Op>,
}

/// One change in a [`Batch`].
#[derive(Debug)]
pub(crate) enum Op {
    Put(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

impl Batch {
    pub(crate) fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put(key.into(), value.into()));
    }

    pub(crate) fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Remove(key.into()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An embedded database engine holding the store's one map; see the module docs.
pub(crate) trait Backend: Send + Sync + Debug + 'static {
    /// Runs `f` against one consistent view of the committed map.
    fn read<T>(
        &self,
        f: impl FnOnce(&dyn ReadView) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Applies `batch` atomically and makes it durable before returning.
    fn commit(&self, batch: Batch) -> Result<(), StoreError>;

    /// The database's size on disk, in bytes.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
}
