//! Supervised background tasks and the readiness checks `/readyz` runs besides its own.
//!
//! A background task (the bootstrap, the RBAC policy cache, the CRD controller) that panics, or
//! returns when it should run until shutdown, is logged with its name and restarted with
//! exponential back-off; until it runs again its readiness check fails, so `/readyz?verbose`
//! shows `[-]<name> failed` as upstream shows a failed check. Nothing ends silently and leaves a
//! frozen cache behind.
//!
//! Components outside this crate (the controllers, wired in `k3rs`'s `server.rs`) register
//! their own checks through [`Readiness::register`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::FutureExt as _;
use tokio::time::Instant;

/// The first delay before a restart; it doubles on each failure in a row up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest delay before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A task that ran this long before it ended starts over from [`INITIAL_BACKOFF`].
const STABLE_AFTER: Duration = Duration::from_secs(60);

type CheckFn = dyn Fn() -> bool + Send + Sync;
/// A registered check: its name and the function answering it.
type NamedCheck = (String, Arc<CheckFn>);

/// The readiness checks registered with the API server, run by `/readyz` after its own checks
/// and before `shutdown`. Cloning shares the one set.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<NamedCheck>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.snapshot().iter().map(|(name, _)| name))
            .finish()
    }
}

impl Readiness {
    /// Adds a check named `name` (as `/readyz?verbose` lists it); `check` answers whether the
    /// component is ready and must not block. A second check of the same name replaces the
    /// first.
    pub fn register(
        &self,
        name: impl Into<String>,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) {
        let name = name.into();
        let mut checks = self
            .checks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        checks.retain(|(existing, _)| *existing != name);
        checks.push((name, Arc::new(check)));
    }

    /// The checks in registration order, copied so that none runs under the lock.
    fn snapshot(&self) -> Vec<NamedCheck> {
        self.checks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every registered check's name and result, in registration order.
    pub(crate) fn run(&self) -> Vec<(String, bool)> {
        self.snapshot()
            .into_iter()
            .map(|(name, check)| {
                let ready = check();
                (name, ready)
            })
            .collect()
    }
}

/// How a supervised task is meant to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// It runs until shutdown: returning is a failure, and it is restarted.
    UntilShutdown,
    /// It finishes its job and returns (it must be safe to start over after a panic).
    UntilDone,
}

/// Runs the task `make` builds under supervision, named `name` in logs and in `/readyz`: a
/// panic (or, for [`Lifetime::UntilShutdown`], a return) is logged and the task is built and
/// started again after a back-off, during which its readiness check fails. Aborting the
/// returned handle stops the task and its supervision.
pub fn supervise<F, Fut>(
    name: &'static str,
    lifetime: Lifetime,
    readiness: &Readiness,
    mut make: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let running = Arc::new(AtomicBool::new(true));
    readiness.register(name, {
        let running = Arc::clone(&running);
        move || running.load(Ordering::SeqCst)
    });
    tokio::spawn(async move {
        let mut backoff = INITIAL_BACKOFF;
        let mut restarts: u64 = 0;
        loop {
            let started = Instant::now();
            running.store(true, Ordering::SeqCst);
            // Building the task is inside the unwind boundary too.
            let run = async {
                test_hook(name, restarts);
                make().await
            };
            let ended = AssertUnwindSafe(run).catch_unwind().await;
            let ran_for = started.elapsed();
            match ended {
                Ok(()) if lifetime == Lifetime::UntilDone => return,
                Ok(()) => tracing::error!(
                    task = name,
                    ?ran_for,
                    restarts,
                    "background task returned; restarting it"
                ),
                Err(payload) => tracing::error!(
                    task = name,
                    ?ran_for,
                    restarts,
                    panic = crate::recovery::panic_message(payload.as_ref()),
                    "background task panicked; restarting it"
                ),
            }
            running.store(false, Ordering::SeqCst);
            if ran_for >= STABLE_AFTER {
                backoff = INITIAL_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            restarts += 1;
        }
    })
}

/// Debug builds only: `K3RS_TEST_PANIC_TASK=<name>` makes the supervised task of that name
/// panic on its first start, so that black-box tests can see it restarted. Release builds have
/// no such hook.
#[cfg(debug_assertions)]
fn test_hook(name: &str, restarts: u64) {
    if restarts == 0 && std::env::var("K3RS_TEST_PANIC_TASK").is_ok_and(|wanted| wanted == name) {
        panic!("K3RS_TEST_PANIC_TASK: a test asked {name} to panic");
    }
}

#[cfg(not(debug_assertions))]
fn test_hook(_name: &str, _restarts: u64) {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn check(readiness: &Readiness, name: &str) -> Option<bool> {
        readiness
            .run()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, ready)| ready)
    }

    #[test]
    fn registered_checks_run_in_order_and_a_name_is_replaced() {
        let readiness = Readiness::default();
        readiness.register("a", || true);
        readiness.register("b", || false);
        readiness.register("a", || false);
        assert_eq!(
            readiness.run(),
            vec![("b".to_string(), false), ("a".to_string(), false)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_with_backoff_and_unready_meanwhile() {
        let readiness = Readiness::default();
        let starts = Arc::new(AtomicU32::new(0));
        let task = supervise("flaky", Lifetime::UntilShutdown, &readiness, {
            let starts = Arc::clone(&starts);
            move || {
                let start = starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    if start < 2 {
                        panic!("start {start} fails");
                    }
                    std::future::pending::<()>().await;
                }
            }
        });
        // The first start panics at once; the check fails during the 100 ms back-off.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(check(&readiness, "flaky"), Some(false));
        // Restarted after 100 ms, panics again, waits 200 ms.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(check(&readiness, "flaky"), Some(false));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2, "the back-off doubled");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(check(&readiness, "flaky"), Some(true), "running again");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_running_task_that_returns_is_restarted() {
        let readiness = Readiness::default();
        let starts = Arc::new(AtomicU32::new(0));
        let task = supervise("returns", Lifetime::UntilShutdown, &readiness, {
            let starts = Arc::clone(&starts);
            move || {
                starts.fetch_add(1, Ordering::SeqCst);
                async {}
            }
        });
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3, "at 0, 100 and 300 ms");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_one_shot_task_that_finishes_stays_finished_and_ready() {
        let readiness = Readiness::default();
        let starts = Arc::new(AtomicU32::new(0));
        let task = supervise("once", Lifetime::UntilDone, &readiness, {
            let starts = Arc::clone(&starts);
            move || {
                starts.fetch_add(1, Ordering::SeqCst);
                async {}
            }
        });
        task.await.expect("the supervisor ends with the task");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(check(&readiness, "once"), Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_one_shot_task_that_panics_is_started_again() {
        let readiness = Readiness::default();
        let starts = Arc::new(AtomicU32::new(0));
        let task = supervise("bootstrap-like", Lifetime::UntilDone, &readiness, {
            let starts = Arc::clone(&starts);
            move || {
                let start = starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(start > 0, "first start fails");
                }
            }
        });
        task.await
            .expect("the supervisor ends once the task is done");
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(check(&readiness, "bootstrap-like"), Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn aborting_the_handle_stops_the_task() {
        let readiness = Readiness::default();
        let dropped = Arc::new(AtomicBool::new(false));
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let task = supervise("forever", Lifetime::UntilShutdown, &readiness, {
            let dropped = Arc::clone(&dropped);
            move || {
                let guard = SetOnDrop(Arc::clone(&dropped));
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        task.abort();
        let _ = task.await;
        assert!(
            dropped.load(Ordering::SeqCst),
            "the task's future was dropped"
        );
    }
}
