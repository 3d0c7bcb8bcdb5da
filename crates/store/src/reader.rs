//! Reads at a revision: point lookups, prefix scans and event-log ranges over the version space.
//!
//! Every function takes one [`ReadView`] of the backend, so each read is consistent in itself on
//! either backend (for redb the view is one short read transaction).
//!
//! Every function here reads "as of" an explicit revision and ignores versions written after it,
//! which is what makes reads consistent while the writer keeps going: the writer only ever adds
//! versions with revisions above the durable revision readers use.

use std::ops::Bound;
use std::path::Path;

use crate::backend::ReadView;
use crate::codec::{self, Version};
use crate::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The newest version of `key` written at or before `revision`, with its revision.
pub(crate) fn latest_version(
    view: &dyn ReadView,
    path: &Path,
    key: &str,
    revision: Revision,
) -> Result<Option<(Revision, Version)>, StoreError> {
    let low = codec::version_key(key, 0);
    let high = codec::version_key(key, revision);
    match view.last_in(&low, &high)? {
        None => Ok(None),
        Some((raw_key, raw_value)) => {
            let (_, rev) = codec::parse_version_key(&raw_key)
                .ok_or_else(|| corrupt(path, format!("unreadable version key {raw_key:?}")))?;
            let version = Version::decode(&raw_value)
                .ok_or_else(|| corrupt(path, format!("unreadable version of {key} at {rev}")))?;
            Ok(Some((rev, version)))
        }
    }
}

/// Turns a version into the object it describes (`None` for a tombstone).
pub(crate) fn to_key_value(
    key: &str,
    mod_revision: Revision,
    version: Version,
) -> Option<KeyValue> {
    match version {
        Version::Tombstone => None,
        Version::Live {
            create_revision,
            value,
        } => Some(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision,
        }),
    }
}

/// The object `key` as of `revision`.
pub(crate) fn get_at(
    view: &dyn ReadView,
    path: &Path,
    key: &str,
    revision: Revision,
) -> Result<Option<KeyValue>, StoreError> {
    Ok(latest_version(view, path, key, revision)?
        .and_then(|(rev, version)| to_key_value(key, rev, version)))
}

/// What [`scan_at`] found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Live objects in key order, at most `limit` of them.
    pub(crate) items: Vec<KeyValue>,
    /// Whether at least one more live object follows.
    pub(crate) more: bool,
}

/// A version's revision and its still-encoded record.
type RawVersion = (Revision, Vec<u8>);

/// How many versions of one key a scan reads in order before it seeks to the one it wants: a
/// key churned since the last compaction has thousands, and reading them all made a list cost
/// (and its read view stay open for) time in proportion to the history, not to the objects.
const SEEK_AFTER_VERSIONS: usize = 4;

/// Scans the live objects under `prefix` as of `revision`, starting after the key `start_after`
/// when given, returning at most `limit` (all when `None`).
pub(crate) fn scan_at(
    view: &dyn ReadView,
    path: &Path,
    prefix: &str,
    start_after: Option<&str>,
    revision: Revision,
    limit: Option<usize>,
) -> Result<Scan, StoreError> {
    let mut low = match start_after {
        Some(key) => codec::versions_after(key),
        None => codec::version_prefix(prefix),
    };
    let high = codec::prefix_end(&codec::version_prefix(prefix));
    let high = match &high {
        Some(high) => Bound::Excluded(high.as_slice()),
        None => Bound::Unbounded,
    };

    let mut items = Vec::new();
    let mut more = false;
    // Each pass reads versions in key order until the page is full, the range ends, or a key has
    // more than `SEEK_AFTER_VERSIONS` versions: that key's wanted version is then looked up
    // directly, and the next pass starts after its versions.
    loop {
        // The key being grouped, its newest version at or before `revision` seen so far, and how
        // many of its versions were read.
        let mut current: Option<(String, Option<RawVersion>, usize)> = None;
        let mut full = false;
        let mut seek = None;
        view.scan(Bound::Included(&low), high, &mut |raw_key, raw_value| {
            let (key, rev) = codec::parse_version_key(raw_key)
                .ok_or_else(|| corrupt(path, format!("unreadable version key {raw_key:?}")))?;
            let same_key = current.as_ref().is_some_and(|(k, _, _)| k == key);
            if !same_key {
                if let Some((done_key, best, _)) = current.take() {
                    if !emit(path, limit, done_key, best, &mut items, &mut more)? {
                        full = true;
                        return Ok(false);
                    }
                }
                current = Some((key.to_owned(), None, 0));
            }
            if let Some((key, best, seen)) = current.as_mut() {
                *seen += 1;
                if *seen > SEEK_AFTER_VERSIONS {
                    seek = Some(std::mem::take(key));
                    return Ok(false);
                }
                if rev <= revision {
                    *best = Some((rev, raw_value.to_vec()));
                }
            }
            Ok(true)
        })?;
        if full {
            break;
        }
        let Some(key) = seek else {
            if let Some((done_key, best, _)) = current.take() {
                emit(path, limit, done_key, best, &mut items, &mut more)?;
            }
            break;
        };
        let best = match view.last_in(
            &codec::version_key(&key, 0),
            &codec::version_key(&key, revision),
        )? {
            None => None,
            Some((raw_key, raw_value)) => {
                let (_, rev) = codec::parse_version_key(&raw_key)
                    .ok_or_else(|| corrupt(path, format!("unreadable version key {raw_key:?}")))?;
                Some((rev, raw_value))
            }
        };
        low = codec::versions_after(&key);
        if !emit(path, limit, key, best, &mut items, &mut more)? {
            break;
        }
    }
    Ok(Scan { items, more })
}

/// Adds the object of a finished key group to `items`; returns false (and sets `more`) when the
/// page is already full.
fn emit(
    path: &Path,
    limit: Option<usize>,
    key: String,
    best: Option<RawVersion>,
    items: &mut Vec<KeyValue>,
    more: &mut bool,
) -> Result<bool, StoreError> {
    let Some((rev, raw)) = best else {
        return Ok(true);
    };
    let version = Version::decode(&raw)
        .ok_or_else(|| corrupt(path, format!("unreadable version of {key} at {rev}")))?;
    if let Some(kv) = to_key_value(&key, rev, version) {
        if limit.is_some_and(|limit| limit > 0 && items.len() >= limit) {
            *more = true;
            return Ok(false);
        }
        items.push(kv);
    }
    Ok(true)
}

/// The events under `prefix` with revisions in `(after, upto]`, in revision order.
pub(crate) fn events_between(
    view: &dyn ReadView,
    path: &Path,
    prefix: &str,
    after: Revision,
    upto: Revision,
) -> Result<Vec<WatchEvent>, StoreError> {
    let mut events = Vec::new();
    if upto <= after {
        return Ok(events);
    }
    let low = codec::event_key(after + 1);
    let high = codec::event_key(upto);
    // The event log first, then the versions: a view cannot be read while it is being scanned
    // on every backend, and the events of one chunk are few.
    let mut changed = Vec::new();
    view.scan(
        Bound::Included(&low),
        Bound::Included(&high),
        &mut |raw_key, raw_value| {
            let revision = codec::parse_event_key(raw_key)
                .ok_or_else(|| corrupt(path, format!("unreadable event key {raw_key:?}")))?;
            let key = std::str::from_utf8(raw_value)
                .map_err(|_| corrupt(path, format!("event {revision} names a non-UTF-8 key")))?;
            if key.starts_with(prefix) {
                changed.push((revision, key.to_owned()));
            }
            Ok(true)
        },
    )?;
    for (revision, key) in changed {
        let version = latest_version(view, path, &key, revision)?
            .filter(|(rev, _)| *rev == revision)
            .map(|(_, version)| version)
            .ok_or_else(|| corrupt(path, format!("event {revision} of {key} has no version")))?;
        let prev = latest_version(view, path, &key, revision - 1)?
            .and_then(|(rev, version)| to_key_value(&key, rev, version));
        events.push(event_from(&key, revision, version, prev));
    }
    Ok(events)
}

/// Builds the watch event for the change of `key` at `revision` to `version`.
pub(crate) fn event_from(
    key: &str,
    revision: Revision,
    version: Version,
    prev: Option<KeyValue>,
) -> WatchEvent {
    match to_key_value(key, revision, version) {
        Some(kv) => WatchEvent {
            kind: if prev.is_some() {
                EventKind::Modified
            } else {
                EventKind::Created
            },
            revision,
            kv,
            prev,
        },
        None => {
            // A delete reports the last value, stamped with the delete's revision.
            let last = prev.clone().unwrap_or_else(|| KeyValue {
                key: key.to_owned(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: revision,
            });
            WatchEvent {
                kind: EventKind::Deleted,
                revision,
                kv: KeyValue {
                    mod_revision: revision,
                    ..last
                },
                prev,
            }
        }
    }
}

/// The newest revision in the event log, or 0 when it is empty.
pub(crate) fn last_event_revision(
    view: &dyn ReadView,
    path: &Path,
) -> Result<Revision, StoreError> {
    let low = codec::event_key(0);
    let high = codec::event_key(Revision::MAX);
    match view.last_in(&low, &high)? {
        None => Ok(0),
        Some((raw_key, _)) => codec::parse_event_key(&raw_key)
            .ok_or_else(|| corrupt(path, format!("unreadable event key {raw_key:?}"))),
    }
}
