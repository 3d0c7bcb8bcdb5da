//! The store itself, over any [`Backend`]: the shared state, the writer thread's handle, reads on
//! the blocking pool, lists with continue tokens and watches. [`crate::SledStore`] and
//! [`crate::RedbStore`] each open their engine and hand it one of these.
//!
//! **Invariants** (those of the crate docs, kept here for both backends)
//! - Readers read at the durable revision, which moves only after the writer's commit of the
//!   group that reached it has returned (and so is durable), and only under the watchers lock.
//! - The revision on open is the newest of the event log and the compacted revision, so
//!   revisions never go back across restarts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::codec;
use crate::reader;
use crate::watch::{self, WatchRegistry};
use crate::writer::{self, Request, Writer};
use crate::{Deleted, KeyValue, ListOptions, ListPage, Revision, Store, StoreError, WatchStream};

/// The settings both backends share.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// See `SledStoreConfig::compaction_interval`.
    pub(crate) compaction_interval: Option<Duration>,
    /// See `SledStoreConfig::compaction_retention`.
    pub(crate) compaction_retention: Revision,
    /// See `SledStoreConfig::watch_buffer`.
    pub(crate) watch_buffer: usize,
}

/// State shared by the store handle, its writer thread and its watchers.
#[derive(Debug)]
pub(crate) struct Shared<B> {
    pub(crate) backend: B,
    pub(crate) path: PathBuf,
    pub(crate) settings: Settings,
    /// The newest durable revision; readers read at it. Moves only under the watchers lock.
    durable: AtomicI64,
    compacted: AtomicI64,
    watchers: Mutex<WatchRegistry>,
    /// Held shared by every multi-entry scan; compaction takes it exclusively to wait them out.
    scans: RwLock<()>,
}

impl<B: Backend> Shared<B> {
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

/// A running store over backend `B`: the shared state and the writer thread.
#[derive(Debug)]
pub(crate) struct Engine<B> {
    shared: Arc<Shared<B>>,
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

impl<B: Backend> Engine<B> {
    /// Starts the store over an opened backend whose format has been checked.
    pub(crate) fn start(
        backend: B,
        path: PathBuf,
        settings: Settings,
    ) -> Result<Engine<B>, StoreError> {
        let (compacted, last) = backend.read(|view| {
            let compacted = match view.get(codec::META_COMPACT)? {
                Some(raw) => codec::parse_revision(&raw).ok_or_else(|| {
                    reader::corrupt(&path, "unreadable compacted revision".to_owned())
                })?,
                None => 0,
            };
            Ok((compacted, reader::last_event_revision(view, &path)?))
        })?;
        let current = last.max(compacted);
        tracing::info!(path = %path.display(), revision = current, compacted, "store opened");

        let shared = Arc::new(Shared {
            backend,
            path,
            settings,
            durable: AtomicI64::new(current),
            compacted: AtomicI64::new(compacted),
            watchers: Mutex::new(WatchRegistry::default()),
            scans: RwLock::new(()),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(Arc::clone(&shared), rx);
        let handle = std::thread::Builder::new()
            .name("k3rs-store-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| StoreError::Io {
                path: shared.path.display().to_string(),
                source,
            })?;
        Ok(Engine {
            shared,
            requests: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.shared.path
    }

    pub(crate) fn backend(&self) -> &B {
        &self.shared.backend
    }

    pub(crate) fn live_watchers(&self) -> usize {
        self.shared.lock_watchers().len()
    }

    /// Stops the writer after it has finished the requests already sent, then waits for reads
    /// in flight, so that the directory can be opened again as soon as this returns.
    pub(crate) fn close(&self) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if handle.join().is_err() {
                tracing::error!(path = %self.shared.path.display(), "store writer panicked");
            }
        }
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
        f: impl FnOnce(&Shared<B>) -> Result<T, StoreError> + Send + 'static,
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

impl<B> Drop for Engine<B> {
    fn drop(&mut self) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if handle.join().is_err() {
                tracing::error!("store writer panicked");
            }
        }
    }
}

#[async_trait]
impl<B: Backend> Store for Engine<B> {
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
            let revision = shared.durable_revision();
            shared
                .backend
                .read(|view| reader::get_at(view, &shared.path, &key, revision))
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
            let scan = shared
                .backend
                .read(|view| reader::scan_at(view, &shared.path, &prefix, None, revision, None))?;
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

/// Implements [`Store`] for a public store type by handing every call to its `engine` field.
macro_rules! delegate_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn current_revision(&self) -> $crate::Revision {
                self.engine.current_revision()
            }

            fn compacted_revision(&self) -> $crate::Revision {
                self.engine.compacted_revision()
            }

            async fn get(&self, key: &str) -> Result<Option<$crate::KeyValue>, $crate::StoreError> {
                self.engine.get(key).await
            }

            async fn list(
                &self,
                prefix: &str,
                options: $crate::ListOptions,
            ) -> Result<$crate::ListPage, $crate::StoreError> {
                self.engine.list(prefix, options).await
            }

            async fn count(&self, prefix: &str) -> Result<u64, $crate::StoreError> {
                self.engine.count(prefix).await
            }

            async fn create(
                &self,
                key: &str,
                value: Vec<u8>,
            ) -> Result<$crate::KeyValue, $crate::StoreError> {
                self.engine.create(key, value).await
            }

            async fn update(
                &self,
                key: &str,
                value: Vec<u8>,
                expected_mod_revision: $crate::Revision,
            ) -> Result<$crate::KeyValue, $crate::StoreError> {
                self.engine.update(key, value, expected_mod_revision).await
            }

            async fn delete(
                &self,
                key: &str,
                expected_mod_revision: Option<$crate::Revision>,
            ) -> Result<$crate::Deleted, $crate::StoreError> {
                self.engine.delete(key, expected_mod_revision).await
            }

            async fn watch(
                &self,
                prefix: &str,
                after: $crate::Revision,
            ) -> Result<$crate::WatchStream, $crate::StoreError> {
                self.engine.watch(prefix, after).await
            }

            async fn compact(&self, revision: $crate::Revision) -> Result<(), $crate::StoreError> {
                self.engine.compact(revision).await
            }
        }
    };
}
pub(crate) use delegate_store;

/// Reads one page of a list; see [`Store::list`].
fn list_page<B: Backend>(
    shared: &Shared<B>,
    prefix: &str,
    options: &ListOptions,
) -> Result<ListPage, StoreError> {
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
        shared.backend.read(|view| {
            reader::scan_at(
                view,
                &shared.path,
                prefix,
                start_after.as_deref(),
                revision,
                limit,
            )
        })?
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
