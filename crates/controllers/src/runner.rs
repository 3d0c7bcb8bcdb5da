//! Workers: take keys off a controller's [`WorkQueue`], reconcile them, and requeue on error
//! with back-off, so one broken object never stalls the others.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::Error;
use crate::queue::WorkQueue;

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the key is added again.
    Done,
    /// Look again after the delay (something time-based is pending).
    RequeueAfter(Duration),
}

/// Spawns `workers` tasks that run `reconcile` on the queue's keys once `ready` has completed
/// (the controller's informers are synced).
pub fn spawn_workers<T, R, F, Fut>(
    controller: &'static str,
    queue: Arc<WorkQueue<T>>,
    workers: usize,
    ready: R,
    reconcile: F,
) -> JoinHandle<()>
where
    T: Clone + Eq + Hash + Send + Sync + std::fmt::Display + 'static,
    R: Future<Output = ()> + Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    tokio::spawn(async move {
        ready.await;
        tracing::debug!(controller, workers, "caches synced; starting workers");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let queue = queue.clone();
            let reconcile = reconcile.clone();
            tasks.spawn(async move {
                loop {
                    let key = queue.next().await;
                    let result = reconcile(key.clone()).await;
                    match result {
                        Ok(action) => {
                            queue.forget(&key);
                            if let Action::RequeueAfter(delay) = action {
                                queue.add_after(key.clone(), delay);
                            }
                        }
                        Err(err) => {
                            let failures = queue.failures(&key) + 1;
                            if failures > 3 {
                                tracing::warn!(controller, %key, failures, %err, "reconcile failed; retrying with back-off");
                            } else {
                                tracing::debug!(controller, %key, failures, %err, "reconcile failed; retrying");
                            }
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    })
}
