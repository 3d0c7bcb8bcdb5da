//! The back-off of the API server's background tasks (bootstrap, RBAC cache, CRD controller)
//! when the store fails: 100 ms doubling to 5 s, without end, as `backon` builds it.

use std::time::Duration;

use backon::ExponentialBuilder;

/// The first wait after a failure.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between attempts.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Retries until the operation succeeds: 100 ms, 200 ms, … up to 5 s between attempts. A task
/// that retries per pass (a watch that ended cleanly starts over) builds a fresh one each pass,
/// so the delay starts low again after a success.
pub(crate) fn store_backoff() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(FIRST_DELAY)
        .with_factor(2.0)
        .with_max_delay(MAX_DELAY)
        .without_max_times()
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder as _;

    use super::*;

    #[test]
    fn doubles_from_100_ms_to_5_s_and_never_gives_up() {
        let delays: Vec<Duration> = store_backoff().build().take(8).collect();
        let millis: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(store_backoff().build().take(1000).count(), 1000);
    }
}
