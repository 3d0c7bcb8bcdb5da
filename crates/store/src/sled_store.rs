//! The sled backend: one sled tree holding `codec.rs`'s key spaces, made durable by sled's flush
//! plus `durability.rs`'s syncs of what sled leaves unsynced.
//!
//! sled 0.34 never shrinks its file under churn and only cleans segments on its background thread
//! (see [`SledStoreConfig::background_every`]); [`crate::RedbStore`] is the alternative.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{Backend, Batch, Entry, Op, ReadView, Visit};
use crate::durability::Durability;
use crate::engine::{delegate_store, Engine, Settings};
use crate::format;
use crate::{Revision, StoreError};

/// The on-disk format this backend reads and writes (the sled backend's `FORMAT` string).
pub const FORMAT_VERSION: &str = "k3rs-store-sled-v1";

/// How often automatic compaction runs by default (kube-apiserver's and kine's five minutes).
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(300);
/// How many revisions automatic compaction keeps by default (kine's minimum retention).
pub const DEFAULT_COMPACTION_RETENTION: Revision = 1000;

/// How often sled's background thread flushes and cleans segments by default (sled's own 500 ms).
pub const DEFAULT_BACKGROUND_EVERY: Duration = Duration::from_millis(500);

/// Settings of a [`SledStore`].
#[derive(Clone, Debug)]
pub struct SledStoreConfig {
    /// The store directory (created if missing).
    pub path: PathBuf,
    /// sled's page cache size. sled's own default (1 GiB) is too much for a 2 GiB node.
    pub cache_capacity_bytes: u64,
    /// How much history automatic compaction keeps; `None` compacts only on request. History is
    /// compacted four times per interval, each run to the newest revision at least one interval
    /// old (kube-apiserver's `--etcd-compaction-interval`, in finer steps, so that the history
    /// held stays below 1.25 intervals instead of reaching two), and never within the last
    /// [`SledStoreConfig::compaction_retention`] revisions.
    pub compaction_interval: Option<Duration>,
    /// How many revisions behind the current one automatic compaction always keeps (kine keeps
    /// 1000; etcd's revision mode is the same idea), so a watcher that reconnects after a quiet
    /// spell can resume instead of relisting.
    pub compaction_retention: Revision,
    /// Events buffered per watcher before a watcher that does not read is dropped.
    pub watch_buffer: usize,
    /// How often sled's background thread runs; `None` starts no such thread. Durability does
    /// not depend on it (every acknowledgement is flushed and synced first), but in sled 0.34
    /// this thread is the only one that cleans segments: it rewrites the live pages of a
    /// segment that is at most half full so that the segment can be reused. Without it the
    /// file, and sled's per-segment bookkeeping in memory, grow under churn no matter how much
    /// history compaction removes.
    pub background_every: Option<Duration>,
}

impl Default for SledStoreConfig {
    fn default() -> Self {
        SledStoreConfig {
            path: PathBuf::new(),
            cache_capacity_bytes: 64 << 20,
            compaction_interval: Some(DEFAULT_COMPACTION_INTERVAL),
            compaction_retention: DEFAULT_COMPACTION_RETENTION,
            watch_buffer: 1000,
            background_every: Some(DEFAULT_BACKGROUND_EVERY),
        }
    }
}

impl SledStoreConfig {
    fn settings(&self) -> Settings {
        Settings {
            compaction_interval: self.compaction_interval,
            compaction_retention: self.compaction_retention,
            watch_buffer: self.watch_buffer,
        }
    }
}

/// The store over sled. Cheap to share behind an `Arc`; dropping the last handle stops the
/// writer thread.
#[derive(Debug)]
pub struct SledStore {
    engine: Engine<SledBackend>,
}

impl SledStore {
    /// Opens (or creates) the store at `config.path`.
    ///
    /// Refuses, without changing anything, a directory that holds another format or something
    /// that is not a k3rs store; refuses a store whose contents are damaged or missing.
    pub fn open(config: SledStoreConfig) -> Result<Arc<SledStore>, StoreError> {
        let path = config.path.clone();
        let format = format::open_format(&path, FORMAT_VERSION, is_sled_file)?;
        remove_partial_snapshots(&path)?;
        let db = open_db(&config)?;
        let durability = Durability::open(&path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let backend = SledBackend {
            db,
            path: path.clone(),
            durability: Mutex::new(durability),
        };
        format::check_or_init(&backend, &path, format, FORMAT_VERSION)?;
        let engine = Engine::start(backend, path, config.settings())?;
        Ok(Arc::new(SledStore { engine }))
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.engine.path()
    }

    /// How many watchers are registered for live events (for metrics and tests).
    pub fn live_watchers(&self) -> usize {
        self.engine.live_watchers()
    }

    /// The on-disk size of the database, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.engine.backend().size_on_disk()
    }

    /// Stops the writer after it has finished the requests already sent (each of which is
    /// durable when answered), and waits for reads in flight.
    pub fn close(&self) {
        self.engine.close();
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.close();
    }
}

delegate_store!(SledStore);

/// The sled database and the handles that make its flushes durable.
#[derive(Debug)]
pub(crate) struct SledBackend {
    db: sled::Db,
    path: PathBuf,
    /// Only the writer commits; the lock is never contended.
    durability: Mutex<Durability>,
}

/// Converts a sled error into a store error.
fn backend(err: sled::Error) -> StoreError {
    StoreError::Backend(crate::error::BackendError::new(err))
}

impl ReadView for sled::Db {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sled::Tree::get(self, key)
            .map_err(backend)?
            .map(|value| value.to_vec()))
    }

    fn last_in(&self, low: &[u8], high: &[u8]) -> Result<Option<Entry>, StoreError> {
        match self.range(low..=high).next_back() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(backend)?;
                Ok(Some((key.to_vec(), value.to_vec())))
            }
        }
    }

    fn scan(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        for entry in self.range::<&[u8], _>((low, high)) {
            let (key, value) = entry.map_err(backend)?;
            if !visit(&key, &value)? {
                break;
            }
        }
        Ok(())
    }
}

impl Backend for SledBackend {
    /// sled has no read transactions: scans see a consistent view of each key, and the store's
    /// readers only look at revisions at or below the durable one, which the writer never
    /// changes (compaction waits for scans before removing what they may need).
    fn read<T>(
        &self,
        f: impl FnOnce(&dyn ReadView) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.db)
    }

    /// Applies the batch, flushes sled, then syncs what sled's flush leaves unsynced.
    fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for op in batch.ops {
            match op {
                Op::Put(key, value) => sled_batch.insert(key, value),
                Op::Remove(key) => sled_batch.remove(key),
            }
        }
        self.db.apply_batch(sled_batch).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        self.durability
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sync()
            .map_err(|source| StoreError::Io {
                path: self.path.display().to_string(),
                source,
            })
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(backend)
    }
}

/// The files sled itself creates in the store directory.
fn is_sled_file(name: &str) -> bool {
    name == "conf" || name == "db" || name == "blobs" || name.starts_with("snap.")
}

/// Opens the sled database. sled's background I/O may hold the directory lock for a moment after
/// the previous handle in this process is dropped, so a held lock is retried briefly before it
/// is reported as another process using the store.
fn open_db(config: &SledStoreConfig) -> Result<sled::Db, StoreError> {
    let path = &config.path;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let result = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_capacity_bytes)
            // We flush explicitly before every acknowledgement, so the timer's flush adds nothing
            // to durability, but sled 0.34 cleans segments only on this thread (see
            // `SledStoreConfig::background_every`).
            .flush_every_ms(
                config
                    .background_every
                    .map(|every| u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1)),
            )
            .open();
        match result {
            Ok(db) => return Ok(db),
            // sled reports a held lock only as text (`io::ErrorKind::Other`).
            Err(sled::Error::Io(err)) if err.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() > deadline {
                    return Err(StoreError::InUse {
                        path: path.display().to_string(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => {
                return Err(StoreError::Corrupt {
                    path: path.display().to_string(),
                    reason: format!("the database does not open: {err}"),
                })
            }
        }
    }
}

/// sled writes `snap.<lsn>.generating` and renames it when complete, but its loader takes a
/// leftover `.generating` file for a finished snapshot and then fails every open (sled#1527).
/// Such a file is incomplete by construction, so it goes before sled opens the directory.
fn remove_partial_snapshots(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %entry.path().display(), "removing a snapshot file left half-written by a crash");
            std::fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    Ok(())
}
