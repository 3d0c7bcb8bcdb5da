//! Wall-clock instants as the API stores them: whole seconds, so that a status computed twice
//! for the same moment compares equal to the one read back from the server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

/// The current time, truncated to whole seconds (`metav1.Time` has second precision).
pub fn now() -> Timestamp {
    whole_seconds(Timestamp::now())
}

/// `at` without its fraction of a second.
pub fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// `at` plus `seconds` (saturating at the end of time, which no test reaches).
pub fn plus_seconds(at: Timestamp, seconds: u64) -> Timestamp {
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    Timestamp::from_second(at.as_second().saturating_add(seconds)).unwrap_or(Timestamp::MAX)
}

/// Whole seconds from `from` to `to`, zero when `to` is earlier.
pub fn seconds_between(from: Timestamp, to: Timestamp) -> u64 {
    u64::try_from(to.as_second() - from.as_second()).unwrap_or(0)
}

/// `at` as a `metav1.Time`.
pub fn time(at: Timestamp) -> Time {
    Time(at)
}

/// The current time with microseconds, for a Lease's `renewTime` (`metav1.MicroTime`).
pub fn micro_now() -> MicroTime {
    let now = Timestamp::now();
    let micros = now.as_microsecond();
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(now))
}

/// How long from the real now until `at` (zero when it has passed).
pub fn until(at: Timestamp) -> std::time::Duration {
    let nanos = at.as_nanosecond() - Timestamp::now().as_nanosecond();
    std::time::Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_and_adds_whole_seconds() {
        let at: Timestamp = "2026-01-02T03:04:05.678Z".parse().unwrap();
        let whole = whole_seconds(at);
        assert_eq!(whole.to_string(), "2026-01-02T03:04:05Z");
        assert_eq!(plus_seconds(whole, 60).to_string(), "2026-01-02T03:05:05Z");
        assert_eq!(seconds_between(whole, plus_seconds(whole, 7)), 7);
        assert_eq!(seconds_between(plus_seconds(whole, 7), whole), 0);
    }
}
