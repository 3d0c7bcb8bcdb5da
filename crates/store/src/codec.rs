//! Binary encodings of the records kept in the store's one ordered map (a sled tree, or a redb
//! table of `&[u8]` to `&[u8]`: both backends hold the same records).
//!
//! The map holds three key spaces, told apart by their first byte:
//! - `m` + name: metadata (`m:format`, `m:compact`);
//! - `v` + key + `\0` + revision (8 bytes, big-endian): one *version* of a key, written by the
//!   change at that revision — a live value or a tombstone. Keys never contain NUL, so all
//!   versions of a key are contiguous and sorted by revision, and keys sort as strings;
//! - `e` + revision (8 bytes, big-endian): the event log, mapping each revision to the key it
//!   changed.

use crate::Revision;

pub(crate) const META_FORMAT: &[u8] = b"m:format";
pub(crate) const META_COMPACT: &[u8] = b"m:compact";
pub(crate) const VERSION_SPACE: u8 = b'v';
pub(crate) const EVENT_SPACE: u8 = b'e';

/// The raw key of the version of `key` written at `revision`.
pub(crate) fn version_key(key: &str, revision: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 10);
    out.push(VERSION_SPACE);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(&revision_bytes(revision));
    out
}

/// The first raw key of the version space of every key that starts with `prefix`.
pub(crate) fn version_prefix(prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 1);
    out.push(VERSION_SPACE);
    out.extend_from_slice(prefix.as_bytes());
    out
}

/// The first raw key after every version of `key` (and of no other key).
pub(crate) fn versions_after(key: &str) -> Vec<u8> {
    let mut out = version_prefix(key);
    out.push(1);
    out
}

/// The smallest byte string greater than every string that starts with `prefix`,
/// or `None` when there is none (all bytes 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Splits a version-space raw key into the object key and the revision.
pub(crate) fn parse_version_key(raw: &[u8]) -> Option<(&str, Revision)> {
    let body = raw.strip_prefix(&[VERSION_SPACE])?;
    if body.len() < 9 {
        return None;
    }
    let (key, tail) = body.split_at(body.len() - 9);
    if tail[0] != 0 {
        return None;
    }
    let key = std::str::from_utf8(key).ok()?;
    Some((key, parse_revision(&tail[1..])?))
}

/// The raw key of the event at `revision`.
pub(crate) fn event_key(revision: Revision) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = EVENT_SPACE;
    out[1..].copy_from_slice(&revision_bytes(revision));
    out
}

/// The revision of an event-space raw key.
pub(crate) fn parse_event_key(raw: &[u8]) -> Option<Revision> {
    parse_revision(raw.strip_prefix(&[EVENT_SPACE])?)
}

pub(crate) fn revision_bytes(revision: Revision) -> [u8; 8] {
    // Revisions are never negative; the cast keeps big-endian byte order equal to numeric order.
    (revision.max(0) as u64).to_be_bytes()
}

pub(crate) fn parse_revision(raw: &[u8]) -> Option<Revision> {
    let bytes: [u8; 8] = raw.try_into().ok()?;
    Revision::try_from(u64::from_be_bytes(bytes)).ok()
}

/// One version of a key: its value at some revision, or the tombstone of a delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    Live {
        create_revision: Revision,
        value: Vec<u8>,
    },
    Tombstone,
}

const TAG_TOMBSTONE: u8 = 0;
const TAG_LIVE: u8 = 1;

impl Version {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Version::Tombstone => vec![TAG_TOMBSTONE],
            Version::Live {
                create_revision,
                value,
            } => {
                let mut out = Vec::with_capacity(9 + value.len());
                out.push(TAG_LIVE);
                out.extend_from_slice(&revision_bytes(*create_revision));
                out.extend_from_slice(value);
                out
            }
        }
    }

    pub(crate) fn decode(raw: &[u8]) -> Option<Version> {
        match raw.split_first()? {
            (&TAG_TOMBSTONE, []) => Some(Version::Tombstone),
            (&TAG_LIVE, rest) if rest.len() >= 8 => Some(Version::Live {
                create_revision: parse_revision(&rest[..8])?,
                value: rest[8..].to_vec(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_round_trip_and_sort_by_key_then_revision() {
        let a1 = version_key("a", 1);
        let a2 = version_key("a", 300);
        let ab = version_key("a/b", 2);
        let b = version_key("b", 0);
        assert!(a1 < a2 && a2 < ab && ab < b);
        assert_eq!(parse_version_key(&a2), Some(("a", 300)));
        assert_eq!(parse_version_key(&ab), Some(("a/b", 2)));
        assert!(a2 < versions_after("a") && versions_after("a") < ab);
    }

    #[test]
    fn prefix_end_skips_ff_bytes() {
        assert_eq!(prefix_end(b"va"), Some(b"vb".to_vec()));
        assert_eq!(prefix_end(b"v\xff"), Some(b"w".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn versions_round_trip() {
        for v in [
            Version::Tombstone,
            Version::Live {
                create_revision: 7,
                value: b"hello".to_vec(),
            },
            Version::Live {
                create_revision: 0,
                value: vec![],
            },
        ] {
            assert_eq!(Version::decode(&v.encode()), Some(v));
        }
        assert_eq!(Version::decode(&[]), None);
        assert_eq!(Version::decode(&[1, 2]), None);
        assert_eq!(Version::decode(&[0, 1]), None);
    }

    #[test]
    fn event_keys_round_trip() {
        assert_eq!(parse_event_key(&event_key(42)), Some(42));
        assert!(event_key(255) < event_key(256));
    }
}
