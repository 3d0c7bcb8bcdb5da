//! Watch events decoded once and encoded once per format for every watcher that receives them.
//!
//! Every watch of a resource gets the same store events. Decoding an event's object (and its
//! previous value) and writing its JSON line per watcher cost each watcher its own copies: with
//! 500 watchers, 500 trees and 500 lines per event, held in 500 send queues. Here the first
//! watcher to handle an event decodes it and writes its line; the others take the same `Arc`'d
//! values and the same [`Bytes`] (reference-counted, so every queue holds one copy).
//!
//! Only the last [`RECENT_EVENTS`] events, none older than [`MAX_AGE`], are kept: a watcher that
//! falls further behind decodes its events itself, which is correct, only slower.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use k3rs_store::{Revision, WatchEvent};
use serde_json::Value;

use super::objects::{decode, set_resource_version};
use super::Format;

/// How many recent events are kept for watchers that have not handled them yet.
const RECENT_EVENTS: usize = 128;
/// Events older than this are dropped when the next one comes (watchers keep up within
/// milliseconds; only a slow one is later).
const MAX_AGE: Duration = Duration::from_secs(5);

/// What makes one event's decoded form: the change, and the version it is served in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventId {
    revision: Revision,
    key: String,
    kind: &'static str,
    api_version: &'static str,
}

/// Which of an event's objects a line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The object after the change.
    Current,
    /// The object before it (what a watcher last saw of an object that left its selection).
    Previous,
}

/// What makes one line of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineId {
    kind: &'static str,
    source: Source,
    format: Format,
}

/// One event as the watchers of one resource version see it: its objects decoded (with the
/// event's `resourceVersion`), and the lines written so far.
#[derive(Debug)]
pub(crate) struct DecodedEvent {
    pub(crate) current: Option<Value>,
    pub(crate) previous: Option<Value>,
    lines: Mutex<Vec<(LineId, Bytes)>>,
}

impl DecodedEvent {
    fn new(resource: &k3rs_api::ResourceInfo, event: &WatchEvent) -> DecodedEvent {
        let decode_at = |kv: &k3rs_store::KeyValue| {
            let mut object = decode(resource, kv).ok()?;
            set_resource_version(&mut object, event.revision);
            Some(object)
        };
        DecodedEvent {
            current: decode_at(&event.kv),
            previous: event.prev.as_ref().and_then(decode_at),
            lines: Mutex::new(Vec::new()),
        }
    }

    /// The object `source` names.
    pub(crate) fn object(&self, source: Source) -> Option<&Value> {
        match source {
            Source::Current => self.current.as_ref(),
            Source::Previous => self.previous.as_ref(),
        }
    }

    /// The line of this event as `kind` with `source`'s object in `format`: written by
    /// `write` the first time, shared after.
    pub(crate) fn line(
        &self,
        kind: &'static str,
        source: Source,
        format: Format,
        write: impl FnOnce() -> Bytes,
    ) -> Bytes {
        let id = LineId {
            kind,
            source,
            format,
        };
        if let Some((_, line)) = self
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(have, _)| *have == id)
        {
            return line.clone();
        }
        // Written outside the lock; two watchers racing both write it, and one copy is kept.
        let line = write();
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, kept)) = lines.iter().find(|(have, _)| *have == id) {
            return kept.clone();
        }
        lines.push((id, line.clone()));
        line
    }
}

/// The recent events of every watched resource, shared by all watches of the server.
#[derive(Debug, Default)]
pub(crate) struct SharedEvents {
    recent: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    events: HashMap<EventId, Arc<DecodedEvent>>,
    /// Oldest first, with when each was decoded.
    order: VecDeque<(EventId, Instant)>,
}

impl Recent {
    fn evict(&mut self, now: Instant) {
        while let Some((id, at)) = self.order.front() {
            if self.order.len() <= RECENT_EVENTS && now.duration_since(*at) <= MAX_AGE {
                break;
            }
            self.events.remove(id);
            self.order.pop_front();
        }
    }
}

impl SharedEvents {
    /// `event` decoded for `resource`'s version: by the first watcher that asks, shared after.
    pub(crate) fn decoded(
        &self,
        resource: &k3rs_api::ResourceInfo,
        event: &WatchEvent,
    ) -> Arc<DecodedEvent> {
        let id = EventId {
            revision: event.revision,
            key: event.kv.key.clone(),
            kind: resource.kind,
            api_version: resource.api_version,
        };
        if let Some(found) = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .get(&id)
        {
            return Arc::clone(found);
        }
        // Decoded outside the lock, so watchers of other events are not held up.
        let decoded = Arc::new(DecodedEvent::new(resource, event));
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = recent.events.get(&id) {
            return Arc::clone(found);
        }
        recent.events.insert(id.clone(), Arc::clone(&decoded));
        recent.order.push_back((id, now));
        recent.evict(now);
        decoded
    }

    /// How many events are kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k3rs_store::{EventKind, KeyValue};
    use serde_json::json;

    fn config_maps() -> k3rs_api::ResourceInfo {
        k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.group.is_empty() && r.plural == "configmaps")
            .expect("configmaps are served")
    }

    fn event(revision: Revision, name: &str) -> WatchEvent {
        let object = json!({"metadata": {"name": name, "namespace": "ns"}, "data": {"a": "b"}});
        let kv = KeyValue {
            key: format!("/registry/core/configmaps/ns/{name}"),
            value: serde_json::to_vec(&object).unwrap(),
            create_revision: 1,
            mod_revision: revision,
        };
        WatchEvent {
            kind: EventKind::Modified,
            revision,
            prev: Some(KeyValue {
                mod_revision: 1,
                ..kv.clone()
            }),
            kv,
        }
    }

    /// Every watcher of an event gets the same decoded objects and the same line bytes; the
    /// line is written once per kind, source and format.
    #[test]
    fn watchers_of_one_event_share_its_decoding_and_its_lines() {
        let shared = SharedEvents::default();
        let resource = config_maps();
        let first = shared.decoded(&resource, &event(7, "cm"));
        let second = shared.decoded(&resource, &event(7, "cm"));
        assert!(Arc::ptr_eq(&first, &second));
        let current = first.object(Source::Current).unwrap();
        assert_eq!(current["metadata"]["resourceVersion"], "7");
        assert_eq!(current["kind"], "ConfigMap");
        let previous = first.object(Source::Previous).unwrap();
        assert_eq!(previous["metadata"]["resourceVersion"], "7", "the event's");

        let mut writes = 0;
        let mut write = || {
            writes += 1;
            Bytes::from_static(b"line\n")
        };
        let a = first.line("MODIFIED", Source::Current, Format::Json, &mut write);
        let b = second.line("MODIFIED", Source::Current, Format::Json, &mut write);
        assert_eq!(a.as_ptr(), b.as_ptr(), "one copy of the bytes");
        first.line("DELETED", Source::Previous, Format::Json, &mut write);
        assert_eq!(writes, 2);

        // Another revision, or the same change seen through another resource version, is
        // another event.
        let other = shared.decoded(&resource, &event(8, "cm"));
        assert!(!Arc::ptr_eq(&first, &other));
        let mut v1beta1 = config_maps();
        v1beta1.api_version = "v1beta1";
        assert!(!Arc::ptr_eq(
            &first,
            &shared.decoded(&v1beta1, &event(7, "cm"))
        ));
    }

    /// The kept events are bounded: the oldest go first.
    #[test]
    fn only_recent_events_are_kept() {
        let shared = SharedEvents::default();
        let resource = config_maps();
        let first = shared.decoded(&resource, &event(1, "cm"));
        for revision in 2..=(RECENT_EVENTS as Revision + 10) {
            shared.decoded(&resource, &event(revision, "cm"));
        }
        assert_eq!(shared.len(), RECENT_EVENTS);
        let again = shared.decoded(&resource, &event(1, "cm"));
        assert!(!Arc::ptr_eq(&first, &again), "decoded anew");
    }
}
