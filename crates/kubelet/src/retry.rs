//! How the node agent waits after a failed API call: the runtime's exponential back-off with
//! jitter (`k3rs_runtime::backoff`), and a time limit on every call so that a hung server cannot
//! stall a heartbeat.

use std::future::Future;
use std::time::Duration;

use crate::KubeletError;

/// The first delay after a failure.
const FIRST_DELAY: Duration = Duration::from_millis(200);
/// The longest delay: short, so that a node carries on soon after a server restart.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// The longest an API call may take before it counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The back-off of retries and of the node's watches: doubling from [`FIRST_DELAY`] up to [`MAX_DELAY`], each delay scaled by a
/// random factor in [0.5, 1) so that many nodes failing together do not retry together (the
/// runtime's jitter stretches by [1, 2), so it starts from half of each).
pub fn backoff() -> k3rs_runtime::backoff::ExponentialBuilder {
    k3rs_runtime::backoff::jittered(FIRST_DELAY / 2, MAX_DELAY / 2)
}

/// The delay before retry number `failures` (1 for the first retry).
pub fn delay_after(failures: u32) -> Duration {
    k3rs_runtime::backoff::delay(backoff(), failures)
}

/// Runs one API call with [`CALL_TIMEOUT`]; `what` names it for the timeout error.
pub async fn timed<T>(
    what: impl FnOnce() -> String,
    call: impl Future<Output = Result<T, KubeletError>>,
) -> Result<T, KubeletError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(KubeletError::Timeout {
            what: what(),
            seconds: CALL_TIMEOUT.as_secs(),
        }),
    }
}

/// Whether trying again can help: no answer at all (connection refused during a server
/// restart, a timeout), a conflict, too many requests, or a server error.
pub fn is_transient(err: &KubeletError) -> bool {
    match err {
        KubeletError::Config { .. } => false,
        KubeletError::Timeout { .. } => true,
        _ => match err.status_code() {
            None => true,
            Some(code) => code == 409 || code == 429 || code >= 500,
        },
    }
}

/// Retrying one step for a while: after each transient failure, wait and try again, until the
/// time is up.
#[derive(Debug)]
pub struct Patience {
    deadline: tokio::time::Instant,
    failures: u32,
}

impl Patience {
    /// Patience for `how_long` from now.
    pub fn new(how_long: Duration) -> Self {
        Patience {
            deadline: tokio::time::Instant::now() + how_long,
            failures: 0,
        }
    }

    /// After `err`: waits and returns true when the step should be tried again; false (at once)
    /// when the error is final or the time is up.
    pub async fn wait_after(&mut self, err: &KubeletError) -> bool {
        if !is_transient(err) || tokio::time::Instant::now() >= self.deadline {
            return false;
        }
        self.failures = self.failures.saturating_add(1);
        tracing::debug!(failures = self.failures, "{err}; retrying");
        tokio::time::sleep(delay_after(self.failures)).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        for failures in 1..40 {
            let delay = delay_after(failures);
            let full = FIRST_DELAY
                .saturating_mul(2u32.saturating_pow((failures - 1).min(16)))
                .min(MAX_DELAY);
            assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
        }
        assert!(delay_after(100) <= MAX_DELAY);
    }

    #[test]
    fn the_watches_back_off_starts_over_on_reset() {
        use kube::runtime::utils::Backoff;
        let mut backoff = k3rs_runtime::backoff::for_watcher(backoff());
        for _ in 0..10 {
            backoff.next();
        }
        assert!(backoff.next().unwrap() >= MAX_DELAY / 2);
        backoff.reset();
        assert!(backoff.next().unwrap() <= FIRST_DELAY);
    }
}
