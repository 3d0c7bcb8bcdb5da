//! The embedded backend: one sled database, one writer thread, reads at the durable revision.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use tokio::sync::oneshot;

use crate::codec;
use crate::durability::Durability;
use crate::reader::{self, backend};
use crate::watch::{self, WatchRegistry};
use crate::writer::{self, Request, Writer};
use crate::{Deleted, KeyValue, ListOptions, ListPage, Revision, Store, StoreError, WatchStream};

/// The name of the file, inside the store directory, that names the on-disk format.
pub const FORMAT_FILE: &str = "FORMAT";
/// The on-disk format this build reads and writes.
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
    /// How often history is compacted automatically; `None` compacts only on request. Each run
    /// keeps at least one interval of history (kube-apiserver's `--etcd-compaction-interval`)
    /// and at least [`SledStoreConfig::compaction_retention`] revisions.
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

/// State shared by the store handle, its writer thread and its watchers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) tree: sled::Db,
    pub(crate) path: PathBuf,
    pub(crate) config: SledStoreConfig,
    /// The newest durable revision; readers read at it. Moves only under the watchers lock.
    durable: AtomicI64,
    compacted: AtomicI64,
    watchers: Mutex<WatchRegistry>,
    /// Held shared by every multi-entry scan; compaction takes it exclusively to wait them out.
    scans: RwLock<()>,
}

impl Shared {
    pub(crate) fn durable_revision(&self) -> Revision {
        self.durable.load(Ordering::SeqCst)
    }

    pub(crate) fn compacted_revision(&self) -> Revision {
        self.compacted.load(Ordering::SeqCst)
    }

    /// Makes `revision` visible to readers. Call with the watchers lock held.
    pub(crate) fn publish_durable(&self, revision: Revision) {
        self.durable.store(revision, Ordering::SeqCst);
    }

    pub(crate) fn publish_compacted(&self, revision: Revision) {
        self.compacted.store(revision, Ordering::SeqCst);
    }

    pub(crate) fn lock_watchers(&self) -> MutexGuard<'_, WatchRegistry> {
        // A panic while holding the lock leaves the registry consistent (it only pushes and
        // retains), so a poisoned lock is still usable.
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn scan_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.scans.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until every scan that started before this call has finished.
    pub(crate) fn wait_for_scans(&self) {
        drop(self.scans.write().unwrap_or_else(|p| p.into_inner()));
    }

    /// Fails when history after `revision` may have been removed.
    pub(crate) fn check_not_compacted(&self, revision: Revision) -> Result<(), StoreError> {
        let compacted = self.compacted_revision();
        if revision < compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted,
            });
        }
        Ok(())
    }
}

/// The embedded store. Cheap to share behind an `Arc`; dropping the last handle flushes and
/// stops the writer thread.
#[derive(Debug)]
pub struct SledStore {
    shared: Arc<Shared>,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The continue token's contents (base64 of this JSON).
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    /// The revision of the first page.
    rev: Revision,
    /// The last key returned; the next page starts after it.
    start: String,
}

impl SledStore {
    /// Opens (or creates) the store at `config.path`.
    ///
    /// Refuses, without changing anything, a directory that holds another format or something
    /// that is not a k3rs store; refuses a store whose contents are damaged or missing.
    pub fn open(config: SledStoreConfig) -> Result<Arc<SledStore>, StoreError> {
        let path = config.path.clone();
        let format = open_format(&path)?;
        remove_partial_snapshots(&path)?;
        let db = open_db(&config)?;
        let durability = Durability::open(&path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        check_or_init_format(&db, &path, format)?;

        let compacted = match db.get(codec::META_COMPACT).map_err(backend)? {
            Some(raw) => codec::parse_revision(&raw).ok_or_else(|| StoreError::Corrupt {
                path: path.display().to_string(),
                reason: "unreadable compacted revision".to_owned(),
            })?,
            None => 0,
        };
        let current = reader::last_event_revision(&db, &path)?.max(compacted);
        tracing::info!(path = %path.display(), revision = current, compacted, "store opened");

        let shared = Arc::new(Shared {
            tree: db,
            path,
            config,
            durable: AtomicI64::new(current),
            compacted: AtomicI64::new(compacted),
            watchers: Mutex::new(WatchRegistry::default()),
            scans: RwLock::new(()),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(Arc::clone(&shared), rx, durability);
        let handle = std::thread::Builder::new()
            .name("k3rs-store-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| StoreError::Io {
                path: shared.path.display().to_string(),
                source,
            })?;
        Ok(Arc::new(SledStore {
            shared,
            requests: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// How many watchers are registered for live events (for metrics and tests).
    pub fn live_watchers(&self) -> usize {
        self.shared.lock_watchers().len()
    }

    /// The on-disk size of the database, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.shared.tree.size_on_disk().map_err(backend)
    }

    /// Stops the writer after it has finished the requests already sent, and flushes.
    pub fn close(&self) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if handle.join().is_err() {
                tracing::error!(path = %self.shared.path.display(), "store writer panicked");
            }
        }
        // Reads and watch catch-ups in flight hold the database for a moment; wait for them so
        // that the directory can be opened again as soon as this returns.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.shared) > 1 {
            if std::time::Instant::now() > deadline {
                tracing::warn!(path = %self.shared.path.display(), "store still in use after close");
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(writer::Reply<T>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            let sender = requests.as_ref().ok_or(StoreError::Closed)?;
            sender.send(make(reply)).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a blocking read on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|source| StoreError::Task {
                operation: "read",
                source,
            })?
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait]
impl Store for SledStore {
    fn current_revision(&self) -> Revision {
        self.shared.durable_revision()
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted_revision()
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        writer::validate_key(key)?;
        let key = key.to_owned();
        self.read(move |shared| {
            reader::get_at(&shared.tree, &shared.path, &key, shared.durable_revision())
        })
        .await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |shared| list_page(shared, &prefix, &options))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |shared| {
            let _scan = shared.scan_guard();
            let revision = shared.durable_revision();
            let scan = reader::scan_at(&shared.tree, &shared.path, &prefix, None, revision, None)?;
            Ok(scan.items.len() as u64)
        })
        .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let key = key.to_owned();
        self.ask(|reply| Request::Create { key, value, reply })
            .await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue, StoreError> {
        let key = key.to_owned();
        self.ask(|reply| Request::Update {
            key,
            value,
            expected: expected_mod_revision,
            reply,
        })
        .await
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<Deleted, StoreError> {
        let key = key.to_owned();
        self.ask(|reply| Request::Delete {
            key,
            expected: expected_mod_revision,
            reply,
        })
        .await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.shared.check_not_compacted(after)?;
        Ok(watch::start(
            Arc::clone(&self.shared),
            prefix.to_owned(),
            after,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.ask(|reply| Request::Compact { revision, reply }).await
    }
}

/// Reads one page of a list; see [`Store::list`].
fn list_page(shared: &Shared, prefix: &str, options: &ListOptions) -> Result<ListPage, StoreError> {
    let (revision, start_after) = match &options.continue_token {
        Some(token) => {
            let token = decode_continue(token)?;
            if !token.start.starts_with(prefix) {
                return Err(StoreError::InvalidContinue {
                    reason: format!("it continues outside the prefix {prefix}"),
                });
            }
            (token.rev, Some(token.start))
        }
        None => (
            options
                .revision
                .filter(|rev| *rev > 0)
                .unwrap_or_else(|| shared.durable_revision()),
            None,
        ),
    };
    let current = shared.durable_revision();
    if revision > current {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current,
        });
    }
    shared.check_not_compacted(revision)?;
    let limit = options.limit.filter(|limit| *limit > 0);
    let scan = {
        let _scan = shared.scan_guard();
        reader::scan_at(
            &shared.tree,
            &shared.path,
            prefix,
            start_after.as_deref(),
            revision,
            limit,
        )?
    };
    // A compaction that passed `revision` during the scan may have removed what it needed.
    shared.check_not_compacted(revision)?;
    let continue_token = match (scan.more, scan.items.last()) {
        (true, Some(last)) => Some(encode_continue(&ContinueToken {
            rev: revision,
            start: last.key.clone(),
        })?),
        _ => None,
    };
    Ok(ListPage {
        items: scan.items,
        revision,
        continue_token,
        remaining: None,
    })
}

fn encode_continue(token: &ContinueToken) -> Result<String, StoreError> {
    let json = serde_json::to_vec(token).map_err(StoreError::EncodeContinue)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

fn decode_continue(token: &str) -> Result<ContinueToken, StoreError> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| StoreError::InvalidContinue {
            reason: "not base64".to_owned(),
        })?;
    let token: ContinueToken =
        serde_json::from_slice(&raw).map_err(|_| StoreError::InvalidContinue {
            reason: "not a continue token".to_owned(),
        })?;
    if token.rev <= 0 {
        return Err(StoreError::InvalidContinue {
            reason: "bad revision".to_owned(),
        });
    }
    Ok(token)
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

/// What the format file said when the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FormatFile {
    Present,
    Absent,
}

/// Checks the format file before sled touches anything. Files sled itself creates.
fn open_format(path: &Path) -> Result<FormatFile, StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let format_path = path.join(FORMAT_FILE);
    match std::fs::read_to_string(&format_path) {
        Ok(found) => {
            if found.trim() != FORMAT_VERSION {
                return Err(StoreError::IncompatibleFormat {
                    path: path.display().to_string(),
                    found: found.trim().to_owned(),
                    expected: FORMAT_VERSION.to_owned(),
                });
            }
            Ok(FormatFile::Present)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            // Without a format file the directory must be new, or hold only what sled writes
            // (a first start that was cut short).
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    for entry in entries {
                        let name = entry.map_err(io)?.file_name();
                        let name = name.to_string_lossy();
                        let sled_file = name == "conf"
                            || name == "db"
                            || name == "blobs"
                            || name == format!("{FORMAT_FILE}.tmp")
                            || name.starts_with("snap.");
                        if !sled_file {
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
                    std::fs::create_dir_all(path).map_err(io)?;
                }
                Err(err) => return Err(io(err)),
            }
            Ok(FormatFile::Absent)
        }
        Err(err) => Err(io(err)),
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

/// Checks the format recorded inside the database, or records it in a new one.
fn check_or_init_format(db: &sled::Db, path: &Path, file: FormatFile) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    match db.get(codec::META_FORMAT).map_err(backend)? {
        Some(found) if &found[..] == FORMAT_VERSION.as_bytes() => {}
        Some(found) => {
            return Err(StoreError::IncompatibleFormat {
                path: path.display().to_string(),
                found: String::from_utf8_lossy(&found).into_owned(),
                expected: FORMAT_VERSION.to_owned(),
            })
        }
        None if file == FormatFile::Present => {
            return Err(corrupt(format!(
                "{FORMAT_FILE} says this is a store but the database has no contents"
            )))
        }
        None if !db.is_empty() => {
            return Err(corrupt(
                "the database has data but no format record".to_owned(),
            ))
        }
        None => {
            db.insert(codec::META_FORMAT, FORMAT_VERSION.as_bytes())
                .map_err(backend)?;
            db.flush().map_err(backend)?;
            // The format record must be on disk before the format file claims it is.
            Durability::open(path)
                .and_then(|mut durability| durability.sync())
                .map_err(|source| StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
        }
    }
    if file == FormatFile::Absent {
        write_format_file(path)?;
    }
    Ok(())
}

/// Writes the format file atomically and durably (temporary file, fsync, rename, fsync dir).
fn write_format_file(path: &Path) -> Result<(), StoreError> {
    use std::io::Write as _;
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.join(format!("{FORMAT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(FORMAT_VERSION.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path.join(FORMAT_FILE)).map_err(io)?;
    std::fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(io)?;
    Ok(())
}
