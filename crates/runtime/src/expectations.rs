//! Expectations (upstream's `ControllerExpectations`): how many creates and deletes a
//! controller has issued for an owner and not yet seen in its cache. While some are
//! outstanding the owner is not synced again, so a lagging cache never makes a controller
//! create or delete twice. They expire, so a lost watch event cannot block an owner forever.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long expectations hold before the owner is synced anyway.
pub const TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Expected {
    adds: i64,
    deletes: HashSet<String>,
    since: Instant,
}

/// Outstanding creates and deletes per owner key.
#[derive(Debug)]
pub struct Expectations<T> {
    by_owner: Mutex<HashMap<T, Expected>>,
}

impl<T: Eq + Hash + Clone> Default for Expectations<T> {
    fn default() -> Self {
        Self {
            by_owner: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Eq + Hash + Clone> Expectations<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<T, Expected>> {
        self.by_owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `owner` may be synced: nothing outstanding, or the expectations expired.
    pub fn satisfied(&self, owner: &T) -> bool {
        match self.map().get(owner) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes.is_empty()) || e.since.elapsed() > TTL,
        }
    }

    /// `owner` is about to create `adds` objects and delete the objects named `deletes`.
    pub fn expect(&self, owner: &T, adds: usize, deletes: impl IntoIterator<Item = String>) {
        self.map().insert(
            owner.clone(),
            Expected {
                adds: i64::try_from(adds).unwrap_or(i64::MAX),
                deletes: deletes.into_iter().collect(),
                since: Instant::now(),
            },
        );
    }

    /// A create of `owner`'s was seen (or failed, so it will never be seen).
    pub fn creation_observed(&self, owner: &T) {
        if let Some(e) = self.map().get_mut(owner) {
            e.adds -= 1;
        }
    }

    /// The deletion of `owner`'s object `name` was seen (or failed).
    pub fn deletion_observed(&self, owner: &T, name: &str) {
        if let Some(e) = self.map().get_mut(owner) {
            e.deletes.remove(name);
        }
    }

    /// Forgets `owner` (it was deleted).
    pub fn forget(&self, owner: &T) {
        self.map().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outstanding_work_blocks_until_observed() {
        let e: Expectations<&str> = Expectations::default();
        assert!(e.satisfied(&"rs"));
        e.expect(&"rs", 2, ["p1".to_owned()]);
        assert!(!e.satisfied(&"rs"));
        e.creation_observed(&"rs");
        e.creation_observed(&"rs");
        assert!(!e.satisfied(&"rs"));
        e.deletion_observed(&"rs", "p1");
        assert!(e.satisfied(&"rs"));
        // Observing more than expected (another writer's pods) is harmless.
        e.creation_observed(&"rs");
        assert!(e.satisfied(&"rs"));
        e.expect(&"rs", 1, []);
        e.forget(&"rs");
        assert!(e.satisfied(&"rs"));
    }
}
