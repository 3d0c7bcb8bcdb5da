//! The kubelet's restart and pull back-off (upstream's `flowcontrol.Backoff` as the kubelet
//! configures it): 10 s after the first failure, doubling to 5 minutes, forgotten once the
//! thing has not failed for twice the maximum.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// The first back-off.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest back-off (`MaxContainerBackOff`).
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug)]
struct Entry {
    backoff: Duration,
    last_update: Timestamp,
}

/// Back-off per key (a container of a pod, or an image of a pod).
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

fn nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

fn elapsed(from: Timestamp, to: Timestamp) -> i128 {
    to.as_nanosecond() - from.as_nanosecond()
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, event: Timestamp, entry: &Entry) -> bool {
        elapsed(entry.last_update, event) > 2 * nanos(self.max)
    }

    /// The current back-off of `key` (zero when it has none).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.backoff)
    }

    /// Whether `key` is still backing off from a failure at `event`: less than its back-off
    /// has passed since.
    pub fn in_backoff_since(&self, key: &str, event: Timestamp, now: Timestamp) -> bool {
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        if self.expired(event, entry) {
            return false;
        }
        elapsed(event, now) < nanos(entry.backoff)
    }

    /// When the back-off from a failure at `event` ends.
    pub fn until(&self, key: &str, event: Timestamp) -> Timestamp {
        let backoff = self.get(key);
        event
            .checked_add(jiff_span(backoff))
            .unwrap_or(Timestamp::MAX)
    }

    /// Records a new attempt after a failure at `event`: the first back-off, or twice the last
    /// (at most the maximum).
    pub fn next(&mut self, key: &str, event: Timestamp, now: Timestamp) {
        let fresh = match self.entries.get(key) {
            Some(entry) if !self.expired(event, entry) => Entry {
                backoff: (entry.backoff * 2).min(self.max),
                last_update: now,
            },
            _ => Entry {
                backoff: self.initial,
                last_update: now,
            },
        };
        self.entries.insert(key.to_owned(), fresh);
    }

    /// Forgets `key`.
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

fn jiff_span(duration: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::try_from(duration)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX)
}

/// Upstream's back-off message: `10s`, `1m20s`, `5m0s` (Go's `Duration.String`).
pub fn go_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + seconds).unwrap()
    }

    #[test]
    fn doubles_up_to_the_maximum_and_forgets() {
        let mut backoff = Backoff::default();
        assert!(!backoff.in_backoff_since("c", at(0), at(0)));
        backoff.next("c", at(0), at(0));
        assert_eq!(backoff.get("c"), INITIAL);
        assert!(backoff.in_backoff_since("c", at(5), at(10)));
        assert!(!backoff.in_backoff_since("c", at(5), at(15)));
        assert_eq!(backoff.until("c", at(5)), at(15));
        backoff.next("c", at(5), at(15));
        assert_eq!(backoff.get("c"), Duration::from_secs(20));
        for _ in 0..10 {
            backoff.next("c", at(20), at(20));
        }
        assert_eq!(backoff.get("c"), MAX);
        // A failure long after the last update starts over.
        backoff.next("c", at(20 + 601), at(20 + 601));
        assert_eq!(backoff.get("c"), INITIAL);
    }

    #[test]
    fn messages_use_gos_duration_format() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
