//! Watch fan-out: the registry of live watchers and the catch-up that precedes registration.
//!
//! A new watcher first reads the event log from its start revision up to the durable revision,
//! then registers itself — under the registry lock, and only if the durable revision has not moved
//! since it last read. The writer advances the durable revision and dispatches new events under
//! that same lock, so every event reaches a watcher exactly once: from the log if it was durable
//! before registration, live otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::engine::Shared;
use crate::{reader, Revision, StoreError, WatchEvent, WatchStream};

/// How many events one catch-up step reads from the log.
const CATCH_UP_CHUNK: Revision = 1024;

/// Live watchers, fed by the writer after each durable commit.
#[derive(Debug, Default)]
pub(crate) struct WatchRegistry {
    watchers: Vec<Watcher>,
}

#[derive(Debug)]
struct Watcher {
    prefix: String,
    /// Events at or below this revision were asked not to be sent (a watch from the future).
    after: Revision,
    tx: mpsc::Sender<Result<Arc<WatchEvent>, StoreError>>,
    too_slow: Arc<AtomicBool>,
}

impl WatchRegistry {
    /// Delivers `events` (in revision order) to every interested watcher without blocking: a
    /// watcher whose buffer is full is dropped and told so when its stream ends.
    pub(crate) fn dispatch(&mut self, events: Vec<WatchEvent>) {
        if self.watchers.is_empty() {
            return;
        }
        let events: Vec<Arc<WatchEvent>> = events.into_iter().map(Arc::new).collect();
        self.watchers.retain(|watcher| {
            let wanted = events
                .iter()
                .filter(|e| e.revision > watcher.after && e.kv.key.starts_with(&watcher.prefix));
            for event in wanted {
                match watcher.tx.try_send(Ok(Arc::clone(event))) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        watcher.too_slow.store(true, Ordering::SeqCst);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }

    /// How many watchers are registered.
    pub(crate) fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Drops every watcher (their streams end).
    pub(crate) fn clear(&mut self) {
        self.watchers.clear();
    }
}

/// Starts a watch of `prefix` after revision `after`; see the module docs for the protocol.
pub(crate) fn start<B: Backend>(
    shared: Arc<Shared<B>>,
    prefix: String,
    after: Revision,
) -> WatchStream {
    let (tx, rx) = mpsc::channel(shared.settings.watch_buffer.max(1));
    let too_slow = Arc::new(AtomicBool::new(false));
    tokio::spawn(catch_up(
        Arc::downgrade(&shared),
        prefix.clone(),
        after,
        tx,
        Arc::clone(&too_slow),
    ));
    futures::stream::unfold(Some((rx, too_slow, prefix)), |state| async move {
        let (mut rx, too_slow, prefix) = state?;
        match rx.recv().await {
            Some(Ok(event)) => Some((
                Ok(Arc::unwrap_or_clone(event)),
                Some((rx, too_slow, prefix)),
            )),
            Some(Err(err)) => Some((Err(err), None)),
            None if too_slow.load(Ordering::SeqCst) => {
                Some((Err(StoreError::WatcherTooSlow { prefix }), None))
            }
            None => None,
        }
    })
    .boxed()
}

/// Holds the store only weakly between steps, so a closed store is not kept open by a watcher;
/// each step reads through its own short read view (never one view for the whole catch-up: a
/// long-lived redb read transaction pins pages and makes the file grow).
async fn catch_up<B: Backend>(
    shared: Weak<Shared<B>>,
    prefix: String,
    mut next: Revision,
    tx: mpsc::Sender<Result<Arc<WatchEvent>, StoreError>>,
    too_slow: Arc<AtomicBool>,
) {
    loop {
        let Some(store) = shared.upgrade() else {
            let _ = tx.send(Err(StoreError::Closed)).await;
            return;
        };
        let durable = store.durable_revision();
        if next >= durable {
            if tx.is_closed() {
                return;
            }
            let mut registry = store.lock_watchers();
            // Registration is only exact while the durable revision has not moved past `next`.
            if store.durable_revision() > next {
                continue;
            }
            registry.watchers.push(Watcher {
                prefix,
                after: next,
                tx,
                too_slow,
            });
            return;
        }
        let upto = durable.min(next.saturating_add(CATCH_UP_CHUNK));
        let read_prefix = prefix.clone();
        let read = tokio::task::spawn_blocking(move || {
            let events = store
                .backend
                .read(|view| reader::events_between(view, &store.path, &read_prefix, next, upto))?;
            store.check_not_compacted(next)?;
            Ok(events)
        })
        .await
        .unwrap_or_else(|source| {
            Err(StoreError::Task {
                operation: "watch catch-up",
                source,
            })
        });
        // The store is not held while waiting for the receiver.
        match read {
            Ok(events) => {
                for event in events {
                    if tx.send(Ok(Arc::new(event))).await.is_err() {
                        return;
                    }
                }
                next = upto;
            }
            Err(err) => {
                // The receiver may be gone already; there is nobody else to tell.
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
    }
}
