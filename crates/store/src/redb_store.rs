//! The redb backend: one redb table `&[u8] -> &[u8]` holding `codec.rs`'s key spaces, in the file
//! [`REDB_FILE`] inside the store directory.
//!
//! redb is a copy-on-write B-tree: every commit group of the writer is one write transaction
//! with [`redb::Durability::Immediate`] (durable when `commit` returns, so no extra syncs), every
//! read is one short read transaction, and compaction's chunks are small write transactions.
//! Pages freed by a commit are reused once no read transaction still sees them, so the file stays
//! bounded under churn as long as no read transaction is held long: none is ever kept across an
//! await or across a whole watch.
//!
//! What the file holds is then the history kept: under churn of ~1.3 KiB values the B-tree's
//! pages are ~1.5 times the bytes stored (two such values fit a 4 KiB page), and redb grows the
//! file by doubling it (until it reaches a 4 GiB region) whenever no free page is left, and gives
//! space back only from its end. So the file is about 1.5 to 3 times the largest history held.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{ReadableDatabase as _, TableDefinition};

use crate::backend::{Backend, Batch, Entry, Op, ReadView, Visit};
use crate::engine::{delegate_store, Engine, Settings};
use crate::error::redb_error;
use crate::format::{self, FormatFile, FORMAT_FILE};
use crate::{Revision, StoreError, DEFAULT_COMPACTION_INTERVAL, DEFAULT_COMPACTION_RETENTION};

/// The on-disk format of the redb backend (its `FORMAT` file and `m:format` record).
pub const REDB_FORMAT_VERSION: &str = "k3rs-store-redb-v1";
/// The name of the redb database file inside the store directory.
pub const REDB_FILE: &str = "store.redb";

/// The one table: raw keys to raw values, as `codec.rs` encodes them.
const TABLE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("k3rs");

/// Settings of a [`RedbStore`].
#[derive(Clone, Debug)]
pub struct RedbStoreConfig {
    /// The store directory (created if missing); the database is [`REDB_FILE`] inside it.
    pub path: PathBuf,
    /// redb's page cache (`Builder::set_cache_size`), in bytes. redb's own default (1 GiB) is too
    /// much for a 2 GiB node.
    pub cache_capacity_bytes: u64,
    /// How much history automatic compaction keeps; `None` compacts only on request. History is
    /// compacted four times per interval, each run to the newest revision at least one interval
    /// old (so the history held stays below 1.25 intervals instead of reaching two), and never
    /// within the last [`RedbStoreConfig::compaction_retention`] revisions.
    pub compaction_interval: Option<Duration>,
    /// How many revisions behind the current one automatic compaction always keeps.
    pub compaction_retention: Revision,
    /// Events buffered per watcher before a watcher that does not read is dropped.
    pub watch_buffer: usize,
}

impl Default for RedbStoreConfig {
    fn default() -> Self {
        RedbStoreConfig {
            path: PathBuf::new(),
            cache_capacity_bytes: 16 << 20,
            compaction_interval: Some(DEFAULT_COMPACTION_INTERVAL),
            compaction_retention: DEFAULT_COMPACTION_RETENTION,
            watch_buffer: 1000,
        }
    }
}

impl RedbStoreConfig {
    fn settings(&self) -> Settings {
        Settings {
            compaction_interval: self.compaction_interval,
            compaction_retention: self.compaction_retention,
            watch_buffer: self.watch_buffer,
        }
    }
}

/// The store over redb. Cheap to share behind an `Arc`; dropping the last handle stops the
/// writer thread and closes the database.
#[derive(Debug)]
pub struct RedbStore {
    engine: Engine<RedbBackend>,
}

impl RedbStore {
    /// Opens (or creates) the store at `config.path`.
    ///
    /// Refuses, without changing anything, a directory that holds another format (a sled store
    /// included) or something that is not a k3rs store; refuses a store whose database is
    /// damaged or missing.
    pub fn open(config: RedbStoreConfig) -> Result<Arc<RedbStore>, StoreError> {
        let path = config.path.clone();
        let format = format::open_format(&path, REDB_FORMAT_VERSION, |name| name == REDB_FILE)?;
        let file = path.join(REDB_FILE);
        if format == FormatFile::Present && !file.exists() {
            return Err(StoreError::Corrupt {
                path: path.display().to_string(),
                reason: format!("{FORMAT_FILE} says this is a store but {REDB_FILE} is missing"),
            });
        }
        let backend = RedbBackend::open(&path, &file, &config)?;
        format::check_or_init(&backend, &path, format, REDB_FORMAT_VERSION)?;
        let engine = Engine::start(backend, path, config.settings())?;
        Ok(Arc::new(RedbStore { engine }))
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.engine.path()
    }

    /// How many watchers are registered for live events (for metrics and tests).
    pub fn live_watchers(&self) -> usize {
        self.engine.live_watchers()
    }

    /// The size of the database file, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.engine.backend().size_on_disk()
    }

    /// redb's own account of the database (for metrics, tests and the churn examples): it waits
    /// for the writer's current transaction, then opens a write transaction only to read the
    /// statistics and aborts it.
    pub fn stats(&self) -> Result<RedbStats, StoreError> {
        self.engine.backend().stats()
    }

    /// Stops the writer after it has finished the requests already sent (each of which is
    /// durable when answered), and waits for reads in flight.
    pub fn close(&self) {
        self.engine.close();
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.close();
    }
}

delegate_store!(RedbStore);

/// What [`RedbStore::stats`] reports, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedbStats {
    /// Pages allocated in the file: the live trees' pages plus pages freed by commits that are not
    /// reusable yet (still visible to an older read transaction, or not yet processed).
    pub allocated_bytes: u64,
    /// Bytes of keys and values stored in the table's leaves (the live data).
    pub stored_leaf_bytes: u64,
    /// Pages of the table's B-tree (leaves and branches).
    pub tree_bytes: u64,
    /// Free space: unused parts of pages and free pages in the file.
    pub fragmented_bytes: u64,
}

/// The redb database.
#[derive(Debug)]
pub(crate) struct RedbBackend {
    db: redb::Database,
    file: PathBuf,
}

impl RedbBackend {
    fn open(dir: &Path, file: &Path, config: &RedbStoreConfig) -> Result<RedbBackend, StoreError> {
        let mut builder = redb::Builder::new();
        builder.set_cache_size(usize::try_from(config.cache_capacity_bytes).unwrap_or(usize::MAX));
        let db = match builder.create(file) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse {
                    path: dir.display().to_string(),
                })
            }
            // redb reports a file that is not a redb database as `InvalidData`: that is damage.
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(source)))
                if source.kind() != std::io::ErrorKind::InvalidData =>
            {
                return Err(StoreError::Io {
                    path: file.display().to_string(),
                    source,
                })
            }
            Err(err) => {
                return Err(StoreError::Corrupt {
                    path: dir.display().to_string(),
                    reason: format!("the database does not open: {err}"),
                })
            }
        };
        let backend = RedbBackend {
            db,
            file: file.to_path_buf(),
        };
        // The table exists from the first open on, so that reads never meet a missing table.
        let exists = {
            let txn = backend.db.begin_read().map_err(redb_error)?;
            match txn.open_table(TABLE) {
                Ok(_) => true,
                Err(redb::TableError::TableDoesNotExist(_)) => false,
                Err(err) => return Err(redb_error(err)),
            }
        };
        if !exists {
            backend.commit(Batch::default())?;
        }
        Ok(backend)
    }
}

impl RedbBackend {
    fn stats(&self) -> Result<RedbStats, StoreError> {
        let txn = self.db.begin_write().map_err(redb_error)?;
        let stats = txn.stats().map_err(redb_error)?;
        txn.abort().map_err(redb_error)?;
        let page = stats.page_size() as u64;
        Ok(RedbStats {
            allocated_bytes: stats.allocated_pages() * page,
            stored_leaf_bytes: stats.stored_bytes(),
            tree_bytes: (stats.leaf_pages() + stats.branch_pages()) * page,
            fragmented_bytes: stats.fragmented_bytes(),
        })
    }
}

/// One read transaction's view of the table.
struct RedbView(redb::ReadOnlyTable<&'static [u8], &'static [u8]>);

impl ReadView for RedbView {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .0
            .get(key)
            .map_err(redb_error)?
            .map(|value| value.value().to_vec()))
    }

    fn last_in(&self, low: &[u8], high: &[u8]) -> Result<Option<Entry>, StoreError> {
        match self
            .0
            .range::<&[u8]>(low..=high)
            .map_err(redb_error)?
            .next_back()
        {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(redb_error)?;
                Ok(Some((key.value().to_vec(), value.value().to_vec())))
            }
        }
    }

    fn scan(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        for entry in self.0.range::<&[u8]>((low, high)).map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            if !visit(key.value(), value.value())? {
                break;
            }
        }
        Ok(())
    }
}

impl Backend for RedbBackend {
    /// One read transaction for the duration of `f`, and no longer.
    fn read<T>(
        &self,
        f: impl FnOnce(&dyn ReadView) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(redb_error)?;
        let table = txn.open_table(TABLE).map_err(redb_error)?;
        f(&RedbView(table))
    }

    /// One write transaction, committed with [`redb::Durability::Immediate`].
    fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(redb_error)?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(redb_error)?;
        {
            let mut table = txn.open_table(TABLE).map_err(redb_error)?;
            for op in &batch.ops {
                match op {
                    Op::Put(key, value) => {
                        table
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(redb_error)?;
                    }
                    Op::Remove(key) => {
                        table.remove(key.as_slice()).map_err(redb_error)?;
                    }
                }
            }
        }
        txn.commit().map_err(redb_error)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        std::fs::metadata(&self.file)
            .map(|metadata| metadata.len())
            .map_err(|source| StoreError::Io {
                path: self.file.display().to_string(),
                source,
            })
    }
}
