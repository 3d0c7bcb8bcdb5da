//! Exponential back-off, built on `backon` (the crate kube-runtime's own back-off uses): the one
//! implementation behind the work queue's retries, the supervisor's restarts, and the retries
//! and watches of the runtime's users (hollow nodes).

use std::time::Duration;

use backon::BackoffBuilder;
pub use backon::ExponentialBuilder;

/// Delays doubling from `first` up to `max`, without end and without jitter.
pub fn exponential(first: Duration, max: Duration) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
}

/// Delays doubling from `first` up to `max`, each then stretched by a random factor in
/// [1, 2), so that many clients failing together do not retry together: a delay lies in
/// [d, 2d) for the un-jittered d.
pub fn jittered(first: Duration, max: Duration) -> ExponentialBuilder {
    exponential(first, max).with_jitter()
}

/// The delays of `builder`, one per retry (without end for the builders above).
pub fn delays(builder: ExponentialBuilder) -> impl Iterator<Item = Duration> + Send {
    builder.build()
}

/// The delay before retry number `failures` (1 for the first retry) of `builder`.
pub fn delay(builder: ExponentialBuilder, failures: u32) -> Duration {
    // The cap is reached long before 64 doublings; the builder has no end, so `nth` is `Some`.
    let index = usize::try_from(failures.saturating_sub(1).min(64)).unwrap_or(64);
    builder.build().nth(index).unwrap_or(Duration::MAX)
}

/// A watcher back-off (`kube::runtime::utils::Backoff`, reset by the watcher on success) from
/// `builder`.
pub fn for_watcher(builder: ExponentialBuilder) -> kube::runtime::watcher::ExponentialBackoff {
    builder.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jittered_delays_stay_within_one_doubling() {
        let first = Duration::from_millis(100);
        let max = Duration::from_millis(2500);
        for failures in 1..40 {
            let plain = delay(exponential(first, max), failures);
            let jittered = delay(jittered(first, max), failures);
            assert!(plain >= first && plain <= max, "{failures}: {plain:?}");
            assert!(
                jittered >= plain && jittered < plain * 2,
                "{failures}: {jittered:?} vs {plain:?}"
            );
        }
        assert_eq!(delay(exponential(first, max), 100), max);
    }

    #[test]
    fn a_watcher_back_off_starts_over_on_reset() {
        use kube::runtime::utils::Backoff;
        let mut backoff = for_watcher(exponential(
            Duration::from_millis(10),
            Duration::from_secs(1),
        ));
        let delays: Vec<Duration> = backoff.by_ref().take(3).collect();
        assert!(delays[0] < delays[1] && delays[1] < delays[2], "{delays:?}");
        backoff.reset();
        assert_eq!(backoff.next(), Some(delays[0]));
    }
}
