//! Workers: take keys off a controller's [`WorkQueue`], reconcile them, and requeue on error
//! with back-off, so one broken object never stalls the others. A reconcile that panics is
//! caught and treated as a failure of its key (rust-analyzer's `catch_unwind` per request): the
//! key is retried with back-off and released, and the worker goes on with the next key.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::health::Health;
use crate::queue::WorkQueue;
use crate::supervisor::{panic_message, supervise, Supervised};

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the key is added again.
    Done,
    /// Look again after the delay (something time-based is pending).
    RequeueAfter(Duration),
}

/// How one reconcile ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done(Action),
    Failed(String),
    Panicked(String),
}

/// Runs `reconcile` on `key`, a panic included.
async fn reconcile_one<T, F, Fut, E>(reconcile: &F, key: T) -> Outcome
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
    E: Display,
{
    // The reconcile's state is its key and the shared caches, which stay consistent across a
    // panic (every cache write is one insert or remove), so nothing half-changed is observed.
    match AssertUnwindSafe(async { reconcile(key).await })
        .catch_unwind()
        .await
    {
        Ok(Ok(action)) => Outcome::Done(action),
        Ok(Err(err)) => Outcome::Failed(err.to_string()),
        Err(payload) => Outcome::Panicked(panic_message(payload.as_ref())),
    }
}

/// One worker: forever takes a key, reconciles it, and settles it on the queue.
async fn work<T, F, Fut, E>(controller: &str, queue: &Arc<WorkQueue<T>>, reconcile: &F)
where
    T: Clone + Eq + Hash + Send + Sync + Display + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
    E: Display,
{
    loop {
        let key = queue.next().await;
        match reconcile_one(reconcile, key.clone()).await {
            Outcome::Done(action) => {
                queue.forget(&key);
                if let Action::RequeueAfter(delay) = action {
                    queue.add_after(key.clone(), delay);
                }
            }
            Outcome::Failed(err) => {
                let failures = queue.failures(&key) + 1;
                if failures > 3 {
                    tracing::warn!(controller, %key, failures, %err, "reconcile failed; retrying with back-off");
                } else {
                    tracing::debug!(controller, %key, failures, %err, "reconcile failed; retrying");
                }
                queue.add_rate_limited(key.clone());
            }
            Outcome::Panicked(message) => {
                let failures = queue.failures(&key) + 1;
                tracing::error!(controller, %key, failures, panic = %message, "reconcile panicked; retrying with back-off");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}

/// Starts `workers` supervised tasks (component `controller`, reported to `health`) that run
/// `reconcile` on the queue's keys once `ready` has completed (the controller's informers are
/// synced). Dropping the result stops them.
pub fn spawn_workers<T, R, F, Fut, E>(
    controller: &'static str,
    health: Arc<Health>,
    queue: Arc<WorkQueue<T>>,
    workers: usize,
    ready: R,
    reconcile: F,
) -> Supervised
where
    T: Clone + Eq + Hash + Send + Sync + Display + 'static,
    R: Future<Output = ()> + Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let handle = tokio::spawn(async move {
        ready.await;
        tracing::debug!(controller, workers, "caches synced; starting workers");
        let mut tasks = Vec::new();
        for worker in 0..workers.max(1) {
            let queue = queue.clone();
            let reconcile = reconcile.clone();
            tasks.push(Supervised(supervise(
                format!("{controller} worker {worker}"),
                health.clone(),
                move || {
                    let queue = queue.clone();
                    let reconcile = reconcile.clone();
                    async move { work(controller, &queue, &reconcile).await }
                },
            )));
        }
        // The workers run until this task is aborted, which drops (and so aborts) them.
        std::future::pending::<()>().await;
        drop(tasks);
    });
    Supervised(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refused;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_reconcile_is_retried_and_other_keys_are_served() {
        let health = Arc::new(Health::default());
        let queue: Arc<WorkQueue<String>> = WorkQueue::new();
        let attempts = Arc::new(AtomicU32::new(0));
        let served = Arc::new(Mutex::new(Vec::<String>::new()));
        let _workers = spawn_workers(
            "test-controller",
            health.clone(),
            queue.clone(),
            1,
            async {},
            {
                let attempts = attempts.clone();
                let served = served.clone();
                move |key: String| {
                    let attempts = attempts.clone();
                    let served = served.clone();
                    async move {
                        if key == "bad" && attempts.fetch_add(1, Ordering::SeqCst) < 2 {
                            panic!("reconcile of {key} broke");
                        }
                        served.lock().unwrap().push(key);
                        Ok::<_, Refused>(Action::Done)
                    }
                }
            },
        );
        queue.add("bad".to_owned());
        queue.add("good".to_owned());
        tokio::time::sleep(Duration::from_millis(1)).await;
        // One worker: the panic did not kill it, and the next key was served.
        assert_eq!(*served.lock().unwrap(), vec!["good".to_owned()]);
        assert_eq!(queue.failures(&"bad".to_owned()), 1);
        // The panicking key is released: adding it again queues it, and its retries come
        // with back-off until it succeeds.
        queue.add("other".to_owned());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(
            *served.lock().unwrap(),
            vec!["good".to_owned(), "other".to_owned(), "bad".to_owned()]
        );
        assert_eq!(queue.failures(&"bad".to_owned()), 0);
        // A contained panic is not a component failure.
        assert!(health.check().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_key_is_never_reconciled_by_two_workers_at_once() {
        let queue: Arc<WorkQueue<u32>> = WorkQueue::new();
        let running = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let overlaps = Arc::new(AtomicU32::new(0));
        let done = Arc::new(AtomicU32::new(0));
        let _workers = spawn_workers(
            "test-controller",
            Arc::default(),
            queue.clone(),
            8,
            async {},
            {
                let (running, overlaps, done) = (running.clone(), overlaps.clone(), done.clone());
                move |key: u32| {
                    let (running, overlaps, done) =
                        (running.clone(), overlaps.clone(), done.clone());
                    async move {
                        if !running.lock().unwrap().insert(key) {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        running.lock().unwrap().remove(&key);
                        done.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Refused>(Action::Done)
                    }
                }
            },
        );
        // Three keys added over and over while eight workers take them.
        for round in 0..200 {
            queue.add(round % 3);
            if round % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        while !queue.is_empty() || !running.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
        assert!(done.load(Ordering::SeqCst) >= 3);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_retried_with_back_off_and_success_resets_it() {
        let queue: Arc<WorkQueue<&'static str>> = WorkQueue::new();
        let attempts = Arc::new(AtomicU32::new(0));
        let _workers = spawn_workers(
            "test-controller",
            Arc::default(),
            queue.clone(),
            2,
            async {},
            {
                let attempts = attempts.clone();
                move |_key| {
                    let attempts = attempts.clone();
                    async move {
                        if attempts.fetch_add(1, Ordering::SeqCst) < 3 {
                            Err(Refused)
                        } else {
                            Ok(Action::Done)
                        }
                    }
                }
            },
        );
        queue.add("k");
        // Retries at 5, 10 and 20 ms after each failure: all three done within 40 ms.
        tokio::time::sleep(Duration::from_millis(4)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        assert_eq!(queue.failures(&"k"), 0);
    }
}
