//! Supervision of the runtime's long-running tasks: a task that ends or panics is logged with its
//! component name, marked down in [`Health`], and started again after an exponential back-off
//! (reset once a run has lasted a while), so a broken informer or worker set never leaves a
//! silently frozen cache behind.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use futures::FutureExt as _;
use tokio::task::JoinHandle;

use crate::health::Health;

/// The first restart delay.
const FIRST_RESTART: Duration = Duration::from_millis(100);
/// The longest restart delay.
const MAX_RESTART: Duration = Duration::from_secs(30);
/// A run that lasted this long starts the back-off over.
const STABLE: Duration = Duration::from_secs(60);

/// The text of a panic's payload (`panic!` with a literal or a formatted message).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

fn restart_backoff() -> impl Iterator<Item = Duration> {
    crate::backoff::exponential(FIRST_RESTART, MAX_RESTART).build()
}

/// Runs `task()` as `component` until the returned handle is aborted (which aborts the run too): each time the task ends
/// (it should not) or panics, it is logged, reported down, and started again after a back-off.
pub fn supervise<F, Fut>(component: String, health: Arc<Health>, task: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        // Counted in `health` until this task's future is dropped (it ended or was aborted),
        // so that a stopping component can wait for all of its tasks to be gone.
        let _alive = health.task_alive();
        let mut backoff = restart_backoff();
        loop {
            health.running(&component);
            let started = tokio::time::Instant::now();
            // Run in place rather than spawned: aborting this task drops the run with it, so a
            // supervised task that has been aborted and awaited has stopped all of its work.
            let run = std::panic::AssertUnwindSafe(task()).catch_unwind().await;
            let reason = match run {
                Ok(()) => "ended".to_owned(),
                Err(payload) => format!("panicked: {}", panic_message(payload.as_ref())),
            };
            if started.elapsed() >= STABLE {
                backoff = restart_backoff();
            }
            let delay = backoff.next().unwrap_or(MAX_RESTART);
            let failures = health.down(&component, reason.clone());
            tracing::error!(%component, %reason, failures, ?delay, "component stopped; restarting");
            tokio::time::sleep(delay).await;
        }
    })
}

/// Aborts the supervised task and the run it supervises when dropped.
#[derive(Debug)]
pub struct Supervised(pub JoinHandle<()>);

impl Supervised {
    /// Aborts the task and waits until it is gone (with its run, when it is a
    /// [`supervise`]d task; tasks it holds are aborted, see [`Health::wait_stopped`]).
    pub async fn stop(mut self) {
        self.0.abort();
        // Cancelled (or, had it ended by itself first, its panic already logged).
        let _ = (&mut self.0).await;
    }

    /// One handle for `tasks`: dropping it stops them all.
    pub fn all(tasks: Vec<Supervised>) -> Supervised {
        Supervised(tokio::spawn(async move {
            let _tasks = tasks;
            std::future::pending::<()>().await
        }))
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Sets its flag when dropped.
    struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A task that notifies `started`, then holds a [`DropFlag`] on `dropped` until dropped.
    fn holder(
        dropped: &Arc<std::sync::atomic::AtomicBool>,
        started: &Arc<tokio::sync::Notify>,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static {
        let dropped = dropped.clone();
        let started = started.clone();
        move || {
            let flag = DropFlag(dropped.clone());
            let started = started.clone();
            Box::pin(async move {
                let _flag = flag;
                started.notify_one();
                std::future::pending::<()>().await
            })
        }
    }

    #[tokio::test]
    async fn a_stopped_task_has_dropped_its_run_and_nested_tasks_are_awaited() {
        use std::sync::atomic::AtomicBool;
        let health = Arc::new(Health::default());
        let dropped = Arc::new(AtomicBool::new(false));
        let started = Arc::new(tokio::sync::Notify::new());
        let task = Supervised(supervise(
            "holder".into(),
            health.clone(),
            holder(&dropped, &started),
        ));
        started.notified().await;
        task.stop().await;
        // The run went with the supervising task, not a moment later.
        assert!(dropped.load(Ordering::SeqCst));

        // Supervised tasks held inside another task are only aborted with it; the health's
        // count of live tasks tells when they are gone.
        let nested_dropped = Arc::new(AtomicBool::new(false));
        let outer = Supervised::all(vec![Supervised(supervise(
            "nested".into(),
            health.clone(),
            holder(&nested_dropped, &started),
        ))]);
        started.notified().await;
        outer.stop().await;
        tokio::time::timeout(Duration::from_secs(5), health.wait_stopped())
            .await
            .unwrap();
        assert!(nested_dropped.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_or_ends_is_restarted_and_reported() {
        let health = Arc::new(Health::default());
        let runs = Arc::new(AtomicU32::new(0));
        let handle = supervise("test task".into(), health.clone(), {
            let runs = runs.clone();
            move || {
                let run = runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    match run {
                        0 => panic!("first run breaks"),
                        1 => {}
                        _ => std::future::pending().await,
                    }
                }
            }
        });
        // The first run panics at once: down, with the panic's message.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let err = health.check().unwrap_err();
        assert_eq!(err.down[0].0, "test task");
        assert_eq!(err.down[0].1, "panicked: first run breaks");
        // Restarted after the back-off; the second run ends, the third keeps running.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(health.check().is_ok());
        handle.abort();
    }
}
