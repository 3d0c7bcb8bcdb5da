//! A controller's work queue (client-go's `workqueue` semantics): a key is queued at most once
//! however many times it is added, is never handed to two workers at once, and a key added
//! while a worker holds it comes back once that worker is done. Failed keys come back after an
//! exponential back-off of their own (`backon`'s, per key, reset by [`WorkQueue::forget`]);
//! delayed keys after their delay.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff};
use tokio::sync::Notify;

/// The first retry delay of a failing key.
pub const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest retry delay (client-go's default is 1000 s; a small cluster gets to the fix
/// sooner with five minutes).
pub const MAX_DELAY: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct State<T> {
    queue: VecDeque<T>,
    /// Keys waiting to be processed (in `queue`, or re-added while processing).
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, Failures>,
}

/// A failing key's failures in a row and the back-off its next retry waits.
#[derive(Debug)]
struct Failures {
    count: u32,
    backoff: ExponentialBackoff,
}

/// The back-off of a failing key: [`BASE_DELAY`] doubling up to [`MAX_DELAY`], without jitter
/// (client-go's `ItemExponentialFailureRateLimiter`).
fn key_backoff() -> ExponentialBackoff {
    crate::backoff::exponential(BASE_DELAY, MAX_DELAY).build()
}

/// A de-duplicating queue of keys shared by a controller's event handlers and workers.
#[derive(Debug)]
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    notify: Notify,
}

impl<T: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            }),
            notify: Notify::new(),
        }
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    /// An empty queue.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `key` unless it is queued already.
    pub fn add(&self, key: T) {
        let mut state = self.state();
        if !state.dirty.insert(key.clone()) {
            return;
        }
        if state.processing.contains(&key) {
            // `done` puts it back.
            return;
        }
        state.queue.push_back(key);
        drop(state);
        self.notify.notify_one();
    }

    /// Queues `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(queue) = queue.upgrade() {
                queue.add(key);
            }
        });
    }

    /// Queues `key` again after its back-off, which doubles with each failure in a row.
    pub fn add_rate_limited(self: &Arc<Self>, key: T) {
        let delay = {
            let mut state = self.state();
            let failures = state
                .failures
                .entry(key.clone())
                .or_insert_with(|| Failures {
                    count: 0,
                    backoff: key_backoff(),
                });
            failures.count = failures.count.saturating_add(1);
            // The back-off has no limit on retries, so it always has a next delay.
            failures.backoff.next().unwrap_or(MAX_DELAY)
        };
        self.add_after(key, delay);
    }

    /// How many times in a row `key` has failed.
    pub fn failures(&self, key: &T) -> u32 {
        self.state().failures.get(key).map_or(0, |f| f.count)
    }

    /// Clears `key`'s failure count (it succeeded).
    pub fn forget(&self, key: &T) {
        self.state().failures.remove(key);
    }

    /// The next key to process; waits for one. The caller must call [`WorkQueue::done`] after.
    pub async fn next(&self) -> T {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    let more = !state.queue.is_empty();
                    drop(state);
                    if more {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &T) {
        let mut state = self.state();
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.queue.push_back(key.clone());
            drop(state);
            self.notify.notify_one();
        }
    }

    /// How many keys wait to be processed.
    pub fn len(&self) -> usize {
        self.state().queue.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_never_processed_twice_at_once() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("b");
        queue.add("a");
        assert_eq!(queue.len(), 2);
        let first = queue.next().await;
        assert_eq!(first, "a");
        // Added while processing: not handed out again until done.
        queue.add("a");
        assert_eq!(queue.next().await, "b");
        assert!(queue.is_empty());
        queue.done(&"b");
        assert!(queue.is_empty());
        queue.done(&"a");
        assert_eq!(queue.next().await, "a");
        queue.done(&"a");
        assert!(queue.is_empty());
    }

    /// Whether `actual` is `expected` up to the rounding of `backon`'s `f32` arithmetic.
    fn about(actual: Duration, expected: Duration) -> bool {
        actual.abs_diff(expected) <= expected / 1_000_000 + Duration::from_nanos(1)
    }

    #[test]
    fn the_back_off_doubles_from_the_base_to_the_cap() {
        let delays: Vec<Duration> = key_backoff().take(40).collect();
        assert!(about(delays[0], Duration::from_millis(5)), "{delays:?}");
        assert!(about(delays[1], Duration::from_millis(10)), "{delays:?}");
        assert!(
            about(delays[10], Duration::from_millis(5 * 1024)),
            "{delays:?}"
        );
        assert_eq!(delays[39], MAX_DELAY);
        assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_per_key_and_forget_resets() {
        let queue = WorkQueue::new();
        queue.add_rate_limited("k");
        queue.add_rate_limited("k");
        queue.add_rate_limited("k");
        // Another key's failures do not add to k's back-off.
        queue.add_rate_limited("other");
        assert_eq!(queue.failures(&"k"), 3);
        assert_eq!(queue.failures(&"other"), 1);
        assert!(queue.is_empty());
        // k's third retry waits 20 ms; the first two (5 ms, 10 ms) come first, as one key.
        tokio::time::sleep(Duration::from_millis(12)).await;
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.next().await, "k");
        assert_eq!(queue.next().await, "other");
        queue.done(&"k");
        queue.done(&"other");
        queue.forget(&"k");
        assert_eq!(queue.failures(&"k"), 0);
        // After a reset the next failure waits the base delay again, not 40 ms.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(queue.next().await, "k");
        queue.done(&"k");
        queue.add_rate_limited("k");
        tokio::time::sleep(Duration::from_millis(6)).await;
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_forget_resets() {
        let queue = WorkQueue::new();
        queue.add_rate_limited("k");
        queue.add_rate_limited("k");
        assert_eq!(queue.failures(&"k"), 2);
        assert!(queue.is_empty());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(queue.next().await, "k");
        queue.done(&"k");
        queue.forget(&"k");
        assert_eq!(queue.failures(&"k"), 0);
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_on_add() {
        let queue: Arc<WorkQueue<u32>> = WorkQueue::new();
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.add(7);
        assert_eq!(worker.await.unwrap(), 7);
    }
}
