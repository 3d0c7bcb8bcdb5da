//! The single writer thread: validates writes, assigns revisions, commits in groups, compacts.
//!
//! All changes go through this one thread, so revision assignment and compare-on-revision checks
//! need no locks. Requests that arrive while a flush is in progress are applied together and made
//! durable by one flush (group commit); only then are they acknowledged, published to readers
//! (the durable revision moves) and dispatched to watchers. A failed flush poisons the store: the
//! writer stops and every later write fails, because the state of unflushed changes is unknown.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::codec::{self, Version};
use crate::durability::Durability;
use crate::reader::{self, backend};
use crate::sled_store::Shared;
use crate::{Deleted, KeyValue, Revision, StoreError, WatchEvent};

/// How many requests one commit group takes at most.
const MAX_GROUP: usize = 512;
/// How many events one compaction step removes before the writer serves writes again.
const COMPACTION_CHUNK: usize = 1000;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A change (or compaction) asked of the writer.
#[derive(Debug)]
pub(crate) enum Request {
    Create {
        key: String,
        value: Vec<u8>,
        reply: Reply<KeyValue>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
        reply: Reply<KeyValue>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
        reply: Reply<Deleted>,
    },
    Compact {
        revision: Revision,
        reply: Reply<()>,
    },
}

/// A reply held back until the group it belongs to is durable.
enum Held {
    Put(Reply<KeyValue>, Result<KeyValue, StoreError>),
    Delete(Reply<Deleted>, Result<Deleted, StoreError>),
}

impl Held {
    fn send(self, flush_error: Option<&Arc<StoreError>>) {
        // A caller that stopped waiting has nobody to tell; dropping the reply is right.
        match self {
            Held::Put(reply, result) => {
                let _ = reply.send(poisoned(result, flush_error));
            }
            Held::Delete(reply, result) => {
                let _ = reply.send(poisoned(result, flush_error));
            }
        }
    }
}

fn poisoned<T>(
    result: Result<T, StoreError>,
    flush_error: Option<&Arc<StoreError>>,
) -> Result<T, StoreError> {
    match flush_error {
        Some(err) => Err(StoreError::Failed {
            operation: "flush failed",
            source: Arc::clone(err),
        }),
        None => result,
    }
}

/// Compaction in progress: `target` is already durable as the compacted revision; the history at
/// or below it is being removed in chunks.
#[derive(Debug)]
struct CompactionJob {
    target: Revision,
    /// Keys whose newest version at or below `target` is a tombstone, with that revision. They
    /// are removed only after every scan that might have seen their older versions has finished.
    tombstones: Vec<(String, Revision)>,
    replies: Vec<Reply<()>>,
}

/// The writer thread's state.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    durability: Durability,
    /// The revision the next change gets.
    next_revision: Revision,
    compaction: Option<CompactionJob>,
    /// When automatic compaction next runs, and the revision it will compact to then.
    next_auto_compaction: Option<(Instant, Revision)>,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        requests: mpsc::Receiver<Request>,
        durability: Durability,
    ) -> Writer {
        let next_revision = shared.durable_revision() + 1;
        let next_auto_compaction = shared
            .config
            .compaction_interval
            .map(|every| (Instant::now() + every, next_revision - 1));
        let mut writer = Writer {
            shared,
            requests,
            durability,
            next_revision,
            compaction: None,
            next_auto_compaction,
        };
        // A compaction cut short by a crash left history at or below the compacted revision.
        let compacted = writer.shared.compacted_revision();
        if compacted > 0 {
            writer.compaction = Some(CompactionJob {
                target: compacted,
                tombstones: Vec::new(),
                replies: Vec::new(),
            });
        }
        writer
    }

    /// Serves requests until every sender is gone or the store is poisoned.
    pub(crate) fn run(mut self) {
        loop {
            let first = if self.compaction.is_some() {
                match self.requests.try_recv() {
                    Ok(request) => Some(request),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            } else {
                match self.requests.recv_timeout(self.idle_timeout()) {
                    Ok(request) => Some(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            let healthy = match first {
                Some(first) => {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match self.requests.try_recv() {
                            Ok(request) => group.push(request),
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group)
                }
                None => self.compact_step(),
            };
            if !healthy {
                tracing::error!(path = %self.shared.path.display(), "store writer stopped after a failed write");
                break;
            }
            self.maybe_start_auto_compaction();
        }
        if let Err(err) = self.flush() {
            tracing::error!(path = %self.shared.path.display(), %err, "final store flush failed");
        }
        self.shared.lock_watchers().clear();
    }

    /// Makes every applied change durable: sled's flush, then what sled leaves unsynced.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.shared.tree.flush().map_err(backend)?;
        self.durability.sync().map_err(|source| StoreError::Io {
            path: self.shared.path.display().to_string(),
            source,
        })
    }

    fn idle_timeout(&self) -> Duration {
        match self.next_auto_compaction {
            Some((at, _)) => at.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        }
    }

    fn maybe_start_auto_compaction(&mut self) {
        let (Some(every), Some((at, target))) = (
            self.shared.config.compaction_interval,
            self.next_auto_compaction,
        ) else {
            return;
        };
        if Instant::now() < at || self.compaction.is_some() {
            return;
        }
        let current = self.next_revision - 1;
        self.next_auto_compaction = Some((Instant::now() + every, current));
        // Keep at least one interval of history (compact to where we stood an interval ago) and
        // at least the retained number of revisions.
        let retention = self.shared.config.compaction_retention.max(0);
        let target = target.min(current.saturating_sub(retention));
        if target > self.shared.compacted_revision() {
            tracing::debug!(
                revision = target,
                current,
                retention,
                "compacting store history"
            );
            if let Err(err) = self.start_compaction(target, None) {
                tracing::warn!(%err, "automatic compaction did not start");
            }
        }
    }

    /// Applies a group of requests, makes them durable with one flush, then answers them.
    /// Returns false when the store must stop.
    fn commit_group(&mut self, group: Vec<Request>) -> bool {
        let mut held = Vec::with_capacity(group.len());
        let mut events = Vec::new();
        let mut apply_error = None;
        for request in group {
            if apply_error.is_some() {
                // Nothing after a failed apply is attempted; those callers learn the store failed.
                if let Some(cause) = &apply_error {
                    fail(
                        request,
                        "store failed during an earlier write in the same group",
                        cause,
                    );
                }
                continue;
            }
            match request {
                Request::Create { key, value, reply } => {
                    let result = self.create(&key, value);
                    held.push(Held::Put(
                        reply,
                        note(result, &mut events, &mut apply_error),
                    ));
                }
                Request::Update {
                    key,
                    value,
                    expected,
                    reply,
                } => {
                    let result = self.update(&key, value, expected);
                    held.push(Held::Put(
                        reply,
                        note(result, &mut events, &mut apply_error),
                    ));
                }
                Request::Delete {
                    key,
                    expected,
                    reply,
                } => {
                    let result = self.delete(&key, expected);
                    held.push(Held::Delete(
                        reply,
                        note(result, &mut events, &mut apply_error),
                    ));
                }
                Request::Compact { revision, reply } => {
                    if let Err(err) = self.start_compaction(revision, Some(reply)) {
                        if is_fatal(&err) {
                            apply_error = Some(Arc::new(err));
                        }
                    }
                }
            }
        }

        let flush_error = if events.is_empty() && apply_error.is_none() {
            None
        } else {
            self.flush().err().map(Arc::new)
        };
        let failure = flush_error.or(apply_error);
        if failure.is_none() {
            if let Some(last) = events.last() {
                let mut watchers = self.shared.lock_watchers();
                self.shared.publish_durable(last.revision);
                watchers.dispatch(std::mem::take(&mut events));
            }
        }
        for reply in held {
            reply.send(failure.as_ref());
        }
        failure.is_none()
    }

    /// The newest version of `key` including changes not yet durable (only the writer may ask).
    fn latest(&self, key: &str) -> Result<Option<(Revision, Version)>, StoreError> {
        reader::latest_version(&self.shared.tree, &self.shared.path, key, Revision::MAX)
    }

    fn live(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self
            .latest(key)?
            .and_then(|(rev, version)| reader::to_key_value(key, rev, version)))
    }

    /// Writes `version` of `key` and its event at the next revision, atomically.
    fn put_version(&mut self, key: &str, version: &Version) -> Result<Revision, StoreError> {
        let revision = self.next_revision;
        let mut batch = sled::Batch::default();
        batch.insert(codec::version_key(key, revision), version.encode());
        batch.insert(&codec::event_key(revision)[..], key.as_bytes());
        self.shared.tree.apply_batch(batch).map_err(backend)?;
        self.next_revision += 1;
        Ok(revision)
    }

    fn create(&mut self, key: &str, value: Vec<u8>) -> Result<(KeyValue, WatchEvent), StoreError> {
        validate_key(key)?;
        if self.live(key)?.is_some() {
            return Err(StoreError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let version = Version::Live {
            create_revision: self.next_revision,
            value,
        };
        let revision = self.put_version(key, &version)?;
        let event = reader::event_from(key, revision, version, None);
        Ok((event.kv.clone(), event))
    }

    fn update(
        &mut self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<(KeyValue, WatchEvent), StoreError> {
        validate_key(key)?;
        let prev = self.live(key)?.ok_or_else(|| StoreError::NotFound {
            key: key.to_owned(),
        })?;
        if prev.mod_revision != expected {
            return Err(StoreError::Conflict {
                key: key.to_owned(),
                expected,
                actual: prev.mod_revision,
            });
        }
        let version = Version::Live {
            create_revision: prev.create_revision,
            value,
        };
        let revision = self.put_version(key, &version)?;
        let event = reader::event_from(key, revision, version, Some(prev));
        Ok((event.kv.clone(), event))
    }

    fn delete(
        &mut self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Deleted, WatchEvent), StoreError> {
        validate_key(key)?;
        let prev = self.live(key)?.ok_or_else(|| StoreError::NotFound {
            key: key.to_owned(),
        })?;
        if let Some(expected) = expected {
            if prev.mod_revision != expected {
                return Err(StoreError::Conflict {
                    key: key.to_owned(),
                    expected,
                    actual: prev.mod_revision,
                });
            }
        }
        let revision = self.put_version(key, &Version::Tombstone)?;
        let event = reader::event_from(key, revision, Version::Tombstone, Some(prev.clone()));
        Ok((Deleted { revision, prev }, event))
    }

    /// Makes `target` the compacted revision (durably, before any history is removed) and queues
    /// the removal. Answers `reply` when the removal is done.
    fn start_compaction(
        &mut self,
        target: Revision,
        reply: Option<Reply<()>>,
    ) -> Result<(), StoreError> {
        let current = self.next_revision - 1;
        let result = if target > current {
            Err(StoreError::FutureRevision {
                requested: target,
                current,
            })
        } else if target <= self.shared.compacted_revision() {
            Ok(false)
        } else {
            self.shared
                .tree
                .insert(codec::META_COMPACT, &codec::revision_bytes(target)[..])
                .map_err(backend)
                .and_then(|_| self.flush())
                .map(|_| true)
        };
        match result {
            Ok(true) => {
                self.shared.publish_compacted(target);
                let job = self.compaction.get_or_insert_with(|| CompactionJob {
                    target,
                    tombstones: Vec::new(),
                    replies: Vec::new(),
                });
                job.target = job.target.max(target);
                job.replies.extend(reply);
                Ok(())
            }
            Ok(false) => {
                match self.compaction.as_mut() {
                    Some(job) => job.replies.extend(reply),
                    None => {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
                Ok(())
            }
            Err(err) => {
                let err = Arc::new(err);
                if let Some(reply) = reply {
                    let _ = reply.send(Err(clone_error(&err)));
                }
                Err(clone_error(&err))
            }
        }
    }

    /// Removes one chunk of compacted history. Returns false when the store must stop.
    fn compact_step(&mut self) -> bool {
        let Some(job) = self.compaction.as_mut() else {
            return true;
        };
        match compact_chunk(&self.shared, job) {
            Ok(true) => true,
            Ok(false) => {
                // Every old version is gone; scans that began before may still hold one, so wait
                // for them before removing the tombstones that hide those versions.
                self.shared.wait_for_scans();
                let mut batch = sled::Batch::default();
                for (key, revision) in job.tombstones.drain(..) {
                    batch.remove(codec::version_key(&key, revision));
                }
                let result = self
                    .shared
                    .tree
                    .apply_batch(batch)
                    .map_err(backend)
                    .and_then(|()| self.flush())
                    .map_err(Arc::new);
                let healthy = result.is_ok();
                if let Some(job) = self.compaction.take() {
                    for reply in job.replies {
                        let _ = reply.send(result.as_ref().map(|_| ()).map_err(clone_error));
                    }
                }
                healthy
            }
            Err(err) => {
                tracing::error!(%err, "store compaction failed");
                let err = Arc::new(err);
                if let Some(job) = self.compaction.take() {
                    for reply in job.replies {
                        let _ = reply.send(Err(clone_error(&err)));
                    }
                }
                !is_fatal(&err)
            }
        }
    }
}

/// Removes the history of up to [`COMPACTION_CHUNK`] events at or below the job's target.
/// Returns whether more remain.
fn compact_chunk(shared: &Shared, job: &mut CompactionJob) -> Result<bool, StoreError> {
    let low = codec::event_key(0);
    let high = codec::event_key(job.target);
    let mut batch = sled::Batch::default();
    let mut keys = std::collections::BTreeSet::new();
    let mut seen = 0;
    for entry in shared.tree.range(low..=high).take(COMPACTION_CHUNK) {
        let (raw_key, raw_value) = entry.map_err(backend)?;
        batch.remove(raw_key);
        keys.insert(String::from_utf8_lossy(&raw_value).into_owned());
        seen += 1;
    }
    for key in keys {
        // Keep the newest version at or below the target; drop every older one.
        let versions = shared
            .tree
            .range(codec::version_key(&key, 0)..=codec::version_key(&key, job.target));
        let mut newest: Option<(Vec<u8>, Revision, bool)> = None;
        for entry in versions {
            let (raw_key, raw_value) = entry.map_err(backend)?;
            let Some((_, revision)) = codec::parse_version_key(&raw_key) else {
                continue;
            };
            if let Some((older, _, _)) = newest.take() {
                batch.remove(older);
            }
            let tombstone = matches!(Version::decode(&raw_value), Some(Version::Tombstone));
            newest = Some((raw_key.to_vec(), revision, tombstone));
        }
        if let Some((_, revision, true)) = newest {
            job.tombstones.push((key, revision));
        }
    }
    shared.tree.apply_batch(batch).map_err(backend)?;
    Ok(seen == COMPACTION_CHUNK)
}

/// Records the event of a successful change and returns its result; remembers fatal errors.
fn note<T>(
    result: Result<(T, WatchEvent), StoreError>,
    events: &mut Vec<WatchEvent>,
    apply_error: &mut Option<Arc<StoreError>>,
) -> Result<T, StoreError> {
    match result {
        Ok((done, event)) => {
            events.push(event);
            Ok(done)
        }
        Err(err) => {
            if is_fatal(&err) {
                let shared = Arc::new(err);
                *apply_error = Some(Arc::clone(&shared));
                return Err(StoreError::Failed {
                    operation: "write failed",
                    source: shared,
                });
            }
            Err(err)
        }
    }
}

/// Keys the store can hold: non-empty, no NUL (the version-key separator).
pub(crate) fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason: "empty",
        });
    }
    if key.contains('\0') {
        return Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason: "contains a NUL byte",
        });
    }
    Ok(())
}

/// Errors after which the writer cannot trust the state of the database.
fn is_fatal(err: &StoreError) -> bool {
    err.is_backend_failure()
}

fn fail(request: Request, why: &'static str, cause: &Arc<StoreError>) {
    let err = || StoreError::Failed {
        operation: why,
        source: Arc::clone(cause),
    };
    match request {
        Request::Create { reply, .. } | Request::Update { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Request::Delete { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Request::Compact { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
    }
}

/// Errors are not `Clone` (they carry `io::Error`); replies to several waiters each get one
/// with the shared failure as its source (a refused revision is answered as itself).
fn clone_error(err: &Arc<StoreError>) -> StoreError {
    match err.as_ref() {
        StoreError::FutureRevision { requested, current } => StoreError::FutureRevision {
            requested: *requested,
            current: *current,
        },
        _ => StoreError::Failed {
            operation: "compaction failed",
            source: Arc::clone(err),
        },
    }
}
