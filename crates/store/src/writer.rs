//! The single writer thread: validates writes, assigns revisions, commits in groups, compacts.
//!
//! All changes go through this one thread, so revision assignment and compare-on-revision checks
//! need no locks. Requests that arrive while a commit is in progress are gathered into one
//! [`Batch`] (the group's own reads see its earlier changes through an overlay) and made durable
//! by one [`Backend::commit`] (group commit: one sled flush, one redb write transaction); only then
//! are they acknowledged, published to readers (the durable revision moves) and dispatched to
//! watchers. A failed commit or read poisons the store: the writer stops and every later write
//! fails, because the state of the database is unknown.
//!
//! Compaction first records the compacted revision (durably, in the commit of a group), then
//! removes the history below it in chunks, each its own small commit, between groups of writes.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backend::{Backend, Batch};
use crate::codec::{self, Version};
use crate::engine::Shared;
use crate::reader;
use crate::{Deleted, KeyValue, Revision, StoreError, WatchEvent};

/// How many requests one commit group takes at most.
const MAX_GROUP: usize = 512;
/// How many events one compaction step removes before the writer serves writes again.
const COMPACTION_CHUNK: usize = 1000;
/// How many times per compaction interval automatic compaction runs. Each run compacts to the
/// newest revision that is at least one interval old, so the history kept stays between one
/// interval and one interval plus a tick (one run per interval would let it reach two intervals,
/// and the database would have to hold all of it just before each run).
const COMPACTION_TICKS: u32 = 4;

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
pub(crate) struct Writer<B> {
    shared: Arc<Shared<B>>,
    requests: mpsc::Receiver<Request>,
    /// The revision the next change gets.
    next_revision: Revision,
    /// The changes of the group being applied, committed together.
    batch: Batch,
    /// The newest version of each key changed by the group being applied (not yet committed).
    pending: HashMap<String, (Revision, Version)>,
    compaction: Option<CompactionJob>,
    /// When automatic compaction next runs.
    next_auto_compaction: Option<Instant>,
    /// The revision at each automatic compaction tick, oldest first: a run compacts to the
    /// newest of them that is at least one interval old.
    checkpoints: VecDeque<(Instant, Revision)>,
}

impl<B: Backend> Writer<B> {
    pub(crate) fn new(shared: Arc<Shared<B>>, requests: mpsc::Receiver<Request>) -> Writer<B> {
        let next_revision = shared.durable_revision() + 1;
        let now = Instant::now();
        let next_auto_compaction = shared
            .settings
            .compaction_interval
            .map(|every| now + every / COMPACTION_TICKS);
        let checkpoints = VecDeque::from([(now, next_revision - 1)]);
        let mut writer = Writer {
            shared,
            requests,
            next_revision,
            batch: Batch::default(),
            pending: HashMap::new(),
            compaction: None,
            next_auto_compaction,
            checkpoints,
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
            if !healthy || !self.maybe_start_auto_compaction() {
                tracing::error!(path = %self.shared.path.display(), "store writer stopped after a failed write");
                break;
            }
        }
        // Every answered write was committed durably; nothing is left to flush.
        self.shared.lock_watchers().clear();
    }

    fn idle_timeout(&self) -> Duration {
        match self.next_auto_compaction {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        }
    }

    /// Starts automatic compaction when it is due. Returns false when the store must stop.
    fn maybe_start_auto_compaction(&mut self) -> bool {
        let (Some(every), Some(at)) = (
            self.shared.settings.compaction_interval,
            self.next_auto_compaction,
        ) else {
            return true;
        };
        let now = Instant::now();
        if now < at || self.compaction.is_some() {
            return true;
        }
        let current = self.next_revision - 1;
        self.next_auto_compaction = Some(now + every / COMPACTION_TICKS);
        self.checkpoints.push_back((now, current));
        // Keep at least one interval of history (compact to the newest revision we stood at an
        // interval ago or earlier) and at least the retained number of revisions.
        let mut target = None;
        while let Some(&(at, revision)) = self.checkpoints.front() {
            if now.saturating_duration_since(at) < every {
                break;
            }
            target = Some(revision);
            self.checkpoints.pop_front();
        }
        let Some(target) = target else {
            return true;
        };
        let retention = self.shared.settings.compaction_retention.max(0);
        let target = target.min(current.saturating_sub(retention));
        if target > self.shared.compacted_revision() {
            tracing::debug!(
                revision = target,
                current,
                retention,
                "compacting store history"
            );
            let mut batch = Batch::default();
            batch.put(codec::META_COMPACT, &codec::revision_bytes(target)[..]);
            if let Err(err) = self.shared.backend.commit(batch) {
                tracing::warn!(%err, "automatic compaction did not start");
                return !is_fatal(&err);
            }
            self.compaction_recorded(target, Vec::new());
        }
        true
    }

    /// Applies a group of requests, makes them durable with one commit, then answers them.
    /// Returns false when the store must stop.
    fn commit_group(&mut self, group: Vec<Request>) -> bool {
        let mut held = Vec::with_capacity(group.len());
        let mut events = Vec::new();
        let mut apply_error = None;
        // Compactions asked in this group: the newest target, and who waits for it.
        let mut compact_to = self.shared.compacted_revision();
        let mut compact_replies = Vec::new();
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
                    let current = self.next_revision - 1;
                    if revision > current {
                        let _ = reply.send(Err(StoreError::FutureRevision {
                            requested: revision,
                            current,
                        }));
                    } else {
                        compact_to = compact_to.max(revision);
                        compact_replies.push(reply);
                    }
                }
            }
        }

        let compacting = compact_to > self.shared.compacted_revision();
        let mut batch = std::mem::take(&mut self.batch);
        self.pending.clear();
        if compacting {
            // Recorded before any history is removed, in the same commit as the group's writes.
            batch.put(codec::META_COMPACT, &codec::revision_bytes(compact_to)[..]);
        }
        let failure = match apply_error {
            // The group is not committed: every caller in it is told the store failed.
            Some(err) => Some(err),
            None if batch.is_empty() => None,
            None => self.shared.backend.commit(batch).err().map(Arc::new),
        };
        match &failure {
            None => {
                if let Some(last) = events.last() {
                    let mut watchers = self.shared.lock_watchers();
                    self.shared.publish_durable(last.revision);
                    watchers.dispatch(std::mem::take(&mut events));
                }
                if compacting {
                    self.compaction_recorded(compact_to, compact_replies);
                } else {
                    self.wait_for_compaction(compact_replies);
                }
            }
            Some(err) => {
                for reply in compact_replies {
                    let _ = reply.send(Err(StoreError::Failed {
                        operation: "compaction failed",
                        source: Arc::clone(err),
                    }));
                }
            }
        }
        for reply in held {
            reply.send(failure.as_ref());
        }
        failure.is_none()
    }

    /// The compacted revision `target` is durable: publishes it and queues the removal of the
    /// history below it; `replies` are answered when that is done.
    fn compaction_recorded(&mut self, target: Revision, replies: Vec<Reply<()>>) {
        self.shared.publish_compacted(target);
        let job = self.compaction.get_or_insert_with(|| CompactionJob {
            target,
            tombstones: Vec::new(),
            replies: Vec::new(),
        });
        job.target = job.target.max(target);
        job.replies.extend(replies);
    }

    /// Answers compactions to a revision already compacted: when its removal is done.
    fn wait_for_compaction(&mut self, replies: Vec<Reply<()>>) {
        match self.compaction.as_mut() {
            Some(job) => job.replies.extend(replies),
            None => {
                for reply in replies {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    /// The newest version of `key` including the group's changes not yet committed.
    fn latest(&self, key: &str) -> Result<Option<(Revision, Version)>, StoreError> {
        if let Some(pending) = self.pending.get(key) {
            return Ok(Some(pending.clone()));
        }
        self.shared
            .backend
            .read(|view| reader::latest_version(view, &self.shared.path, key, Revision::MAX))
    }

    fn live(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self
            .latest(key)?
            .and_then(|(rev, version)| reader::to_key_value(key, rev, version)))
    }

    /// Adds `version` of `key` and its event at the next revision to the group's batch.
    fn put_version(&mut self, key: &str, version: &Version) -> Result<Revision, StoreError> {
        let revision = self.next_revision;
        self.batch
            .put(codec::version_key(key, revision), version.encode());
        self.batch
            .put(&codec::event_key(revision)[..], key.as_bytes());
        self.pending
            .insert(key.to_owned(), (revision, version.clone()));
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
                let mut batch = Batch::default();
                for (key, revision) in job.tombstones.drain(..) {
                    batch.remove(codec::version_key(&key, revision));
                }
                let result = if batch.is_empty() {
                    Ok(())
                } else {
                    self.shared.backend.commit(batch).map_err(Arc::new)
                };
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

/// Removes the history of up to [`COMPACTION_CHUNK`] events at or below the job's target, in
/// one commit. Returns whether more remain.
fn compact_chunk<B: Backend>(
    shared: &Shared<B>,
    job: &mut CompactionJob,
) -> Result<bool, StoreError> {
    let low = codec::event_key(0);
    let high = codec::event_key(job.target);
    let (batch, tombstones, seen) = shared.backend.read(|view| {
        let mut batch = Batch::default();
        let mut keys = std::collections::BTreeSet::new();
        let mut seen = 0;
        view.scan(
            Bound::Included(&low),
            Bound::Included(&high),
            &mut |raw_key, raw_value| {
                batch.remove(raw_key);
                keys.insert(String::from_utf8_lossy(raw_value).into_owned());
                seen += 1;
                Ok(seen < COMPACTION_CHUNK)
            },
        )?;
        let mut tombstones = Vec::new();
        for key in keys {
            // Keep the newest version at or below the target; drop every older one.
            let mut newest: Option<(Vec<u8>, Revision, bool)> = None;
            let from = codec::version_key(&key, 0);
            let to = codec::version_key(&key, job.target);
            view.scan(
                Bound::Included(&from),
                Bound::Included(&to),
                &mut |raw_key, raw_value| {
                    let Some((_, revision)) = codec::parse_version_key(raw_key) else {
                        return Ok(true);
                    };
                    if let Some((older, _, _)) = newest.take() {
                        batch.remove(older);
                    }
                    let tombstone = matches!(Version::decode(raw_value), Some(Version::Tombstone));
                    newest = Some((raw_key.to_vec(), revision, tombstone));
                    Ok(true)
                },
            )?;
            if let Some((_, revision, true)) = newest {
                tombstones.push((key, revision));
            }
        }
        Ok((batch, tombstones, seen))
    })?;
    job.tombstones.extend(tombstones);
    if !batch.is_empty() {
        shared.backend.commit(batch)?;
    }
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
