//! `watch=1`: a stream of JSON lines (`{"type":"ADDED","object":{...}}`), from the store's watch,
//! with initial events, bookmarks, selector transitions and timeouts as upstream. An event is
//! decoded and written once for all its watchers ([`super::shared_events`]).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use k3rs_store::{EventKind, StoreError, WatchEvent};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::list::collect;
use super::objects::collection_prefix;
use super::partial;
use super::selection::Selection;
use super::shared_events::{DecodedEvent, SharedEvents, Source};
use super::table::{self, TableOptions};
use super::{Call, Format};
use crate::response::ResponseBody;

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// The longest a watch runs without a `timeoutSeconds` (upstream: 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

pub(crate) async fn watch(call: &Call<'_>) -> Result<Response<ResponseBody>, ApiError> {
    let selection = Selection::from_query(call)?;
    let rv = call.query.get("resourceVersion");
    let send_initial = call.query.get("sendInitialEvents");
    let bookmarks = call.query.flag("allowWatchBookmarks");
    let timeout = match call.query.integer("timeoutSeconds")? {
        Some(secs) if secs > 0 => Duration::from_secs(secs as u64),
        _ => DEFAULT_TIMEOUT,
    };
    // Upstream: no resourceVersion (or "0") means "the current state, then changes"; a
    // resourceVersion means "changes after it", unless sendInitialEvents asks for the state.
    let initial = match send_initial {
        Some("true") => true,
        Some(_) => false,
        None => rv.is_none_or(|rv| rv == "0"),
    };
    let after: Option<i64> = match rv {
        Some(raw) if raw != "0" => Some(raw.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {raw:?}: must be an integer"
            ))
        })?),
        _ => None,
    };
    let watch_call = WatchCall {
        resource: call.resource.clone(),
        format: call.format,
        table: TableOptions {
            include: call.query.get("includeObject").map(str::to_owned),
            no_headers: false,
        },
        selection,
        bookmarks,
    };
    let mut events: Vec<Value> = Vec::new();
    let start = if initial {
        let (items, revision, _) = collect(call, &watch_call.selection, None, None, None).await?;
        for object in items {
            events.push(watch_call.render("ADDED", object));
        }
        revision
    } else {
        after.unwrap_or_else(|| call.state.store.current_revision())
    };
    if initial && send_initial == Some("true") && bookmarks {
        events.push(watch_call.bookmark(start, true));
    }

    let prefix = collection_prefix(&call.resource, call.namespace());
    let stream = match call.state.store.watch(&prefix, start).await {
        Ok(stream) => Some(stream),
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            events.push(error_event(&format!(
                "too old resource version: {requested} ({compacted})"
            )));
            None
        }
        Err(err) => return Err(ApiError::internal(err)),
    };

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let encoded: Vec<Bytes> = events.iter().map(line).collect();
    // A watch is long-running: at shutdown it ends (as kube-apiserver ends its watches) so that
    // its connection can close; the client lists and watches again elsewhere.
    let mut shutdown = call.state.shutdown.subscribe();
    let shared = std::sync::Arc::clone(&call.state.watch_events);
    tokio::spawn(async move {
        for frame in encoded {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        let Some(mut stream) = stream else { return };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        let mut latest = start;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                // `wait_for`'s guard is not `Send`: dropped inside, only the fact leaves.
                _ = async { shutdown.wait_for(|stopping| *stopping).await.is_ok() } => return,
                _ = ticker.tick(), if watch_call.bookmarks => {
                    if tx.send(line(&watch_call.bookmark(latest, false))).await.is_err() {
                        return;
                    }
                }
                next = stream.next() => match next {
                    None => return,
                    Some(Ok(event)) => {
                        latest = event.revision;
                        if let Some(out) = watch_call.line_of(&event, &shared) {
                            if tx.send(out).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Err(err)) => {
                        let message = match err {
                            StoreError::Compacted { requested, compacted } => format!("too old resource version: {requested} ({compacted})"),
                            other => format!("the watch ended: {other}; list and watch again"),
                        };
                        let _ = tx.send(line(&error_event(&message))).await;
                        return;
                    }
                }
            }
        }
    });

    let body = StreamBody::new(
        tokio_stream_from(rx).map(|bytes| Ok::<_, crate::response::BoxError>(Frame::data(bytes))),
    );
    let mut response = Response::new(BodyExt::boxed(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A receiver as a stream.
fn tokio_stream_from(mut rx: mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// One event as a line: `{"type":…,"object":…}`, in `metav1.WatchEvent`'s field order, its
/// object written as the API writes it.
fn line(event: &Value) -> Bytes {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(b"{\"type\":");
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
    k3rs_api::wire::write_string(&mut bytes, kind);
    bytes.extend_from_slice(b",\"object\":");
    let object = event.get("object").unwrap_or(&Value::Null);
    k3rs_api::wire::write(
        &mut bytes,
        object,
        k3rs_api::wire::GoType::of_object(object),
    );
    bytes.extend_from_slice(b"}\n");
    Bytes::from(bytes)
}

fn error_event(message: &str) -> Value {
    json!({
        "type": "ERROR",
        "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Expired", "code": 410,
        },
    })
}

/// What the streaming task needs once the request is gone.
struct WatchCall {
    resource: std::sync::Arc<k3rs_api::ResourceInfo>,
    format: Format,
    table: TableOptions,
    selection: Selection,
    bookmarks: bool,
}

impl WatchCall {
    /// A BOOKMARK at `revision`; `initial_end` marks the end of `sendInitialEvents`' events.
    /// Its object is of the watched kind, or a `PartialObjectMetadata` for a metadata watch.
    fn bookmark(&self, revision: i64, initial_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = match self.format {
            Format::Metadata(version) | Format::MetadataList(version) => {
                partial::from_metadata(metadata, version)
            }
            Format::Json | Format::Table => json!({
                "kind": self.resource.kind,
                "apiVersion": self.resource.api_version,
                "metadata": metadata,
            }),
        };
        json!({"type": "BOOKMARK", "object": object})
    }

    /// One event line's JSON, the object as JSON, as a one-row Table, or as its
    /// `PartialObjectMetadata` (a list shape is refused before the watch starts).
    fn render(&self, kind: &str, object: Value) -> Value {
        let object = match self.format {
            Format::Json => object,
            Format::Table => table::table_of(
                &self.resource,
                &self.table,
                std::slice::from_ref(&object),
                None,
            ),
            Format::Metadata(version) | Format::MetadataList(version) => {
                partial::of(&object, version)
            }
        };
        json!({"type": kind, "object": object})
    }

    /// The API event for a store event, if the selection sees it: an object that starts or
    /// stops matching is ADDED or DELETED, as upstream's watch cache reports it. A DELETED
    /// event carries the object's previous content (the last the watcher was shown) with the
    /// event's resourceVersion, as upstream's `cacheWatcher.convertToWatchEvent` does.
    fn choose(&self, decoded: &DecodedEvent, event: &WatchEvent) -> Option<(&'static str, Source)> {
        let current = decoded.current.as_ref()?;
        let now = self.selection.matches(current);
        let before = decoded
            .previous
            .as_ref()
            .is_some_and(|p| self.selection.matches(p));
        let previous_or_current = if decoded.previous.is_some() {
            Source::Previous
        } else {
            Source::Current
        };
        Some(match event.kind {
            EventKind::Created if now => ("ADDED", Source::Current),
            EventKind::Modified if now && before => ("MODIFIED", Source::Current),
            EventKind::Modified if now => ("ADDED", Source::Current),
            EventKind::Modified | EventKind::Deleted if before => ("DELETED", previous_or_current),
            // A delete without the previous value (the store always has it) still reports the
            // last value the store holds.
            EventKind::Deleted if now => ("DELETED", Source::Current),
            _ => return None,
        })
    }

    /// The event as a JSON value (what [`Self::line_of`] writes).
    #[cfg(test)]
    fn translate(&self, event: &WatchEvent) -> Option<Value> {
        let decoded = SharedEvents::default().decoded(&self.resource, event);
        let (kind, source) = self.choose(&decoded, event)?;
        Some(self.render(kind, decoded.object(source)?.clone()))
    }

    /// The event's line, shared with every other watcher of the same resource version that
    /// sees it the same way (a Table's line depends on the watch's options: written per watch).
    fn line_of(&self, event: &WatchEvent, shared: &SharedEvents) -> Option<Bytes> {
        let decoded = shared.decoded(&self.resource, event);
        let (kind, source) = self.choose(&decoded, event)?;
        let object = decoded.object(source)?;
        let write = || line(&self.render(kind, object.clone()));
        Some(match self.format {
            Format::Table => write(),
            format => decoded.line(kind, source, format, write),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::partial::MetaVersion;
    use k3rs_store::KeyValue;

    fn config_maps() -> std::sync::Arc<k3rs_api::ResourceInfo> {
        let resource = k3rs_api::builtin_resources()
            .into_iter()
            .find(|r| r.group.is_empty() && r.plural == "configmaps")
            .expect("configmaps are served");
        std::sync::Arc::new(resource)
    }

    fn kv(color: &str, revision: i64) -> KeyValue {
        let object = json!({
            "metadata": {"name": "cm", "namespace": "ns", "labels": {"color": color}},
            "data": {"color": color},
        });
        KeyValue {
            key: "/registry/core/configmaps/ns/cm".into(),
            value: serde_json::to_vec(&object).unwrap(),
            create_revision: 1,
            mod_revision: revision,
        }
    }

    fn event(kind: EventKind, revision: i64, now: &str, before: &str) -> WatchEvent {
        WatchEvent {
            kind,
            revision,
            kv: kv(now, revision),
            prev: Some(kv(before, 5)),
        }
    }

    fn watch_call(labels: &str) -> WatchCall {
        watch_call_in(labels, Format::Json)
    }

    fn watch_call_in(labels: &str, format: Format) -> WatchCall {
        let resource = config_maps();
        WatchCall {
            selection: Selection::for_labels(
                resource.clone(),
                k3rs_api::LabelSelector::parse(labels).unwrap(),
            ),
            resource,
            format,
            table: TableOptions {
                include: None,
                no_headers: false,
            },
            bookmarks: false,
        }
    }

    /// An object that leaves a watch's selection is DELETED with its previous content (what the
    /// watcher last saw) at the event's resourceVersion; one that enters is ADDED with its new
    /// content; a real delete carries the last value.
    #[test]
    fn selection_transitions_carry_the_content_upstream_sends() {
        let red = watch_call("color=red");
        let leaves = event(EventKind::Modified, 7, "blue", "red");
        let out = red.translate(&leaves).unwrap();
        assert_eq!(out["type"], "DELETED");
        assert_eq!(out["object"]["data"]["color"], "red", "{out}");
        assert_eq!(out["object"]["metadata"]["resourceVersion"], "7");

        let blue = watch_call("color=blue");
        let out = blue.translate(&leaves).unwrap();
        assert_eq!(out["type"], "ADDED");
        assert_eq!(out["object"]["data"]["color"], "blue");
        assert_eq!(out["object"]["metadata"]["resourceVersion"], "7");

        let deleted = event(EventKind::Deleted, 9, "red", "red");
        let out = red.translate(&deleted).unwrap();
        assert_eq!(out["type"], "DELETED");
        assert_eq!(out["object"]["metadata"]["resourceVersion"], "9");
        assert!(blue.translate(&deleted).is_none());
    }

    /// A metadata watch sends each object as its PartialObjectMetadata (selection transitions
    /// included), and bookmarks as PartialObjectMetadata too.
    #[test]
    fn metadata_watches_send_partial_object_metadata() {
        let red = watch_call_in("color=red", Format::Metadata(MetaVersion::V1));
        let modified = event(EventKind::Modified, 7, "red", "red");
        let out = red.translate(&modified).unwrap();
        assert_eq!(
            out,
            json!({"type": "MODIFIED", "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "cm", "namespace": "ns", "labels": {"color": "red"},
                             "resourceVersion": "7"}}})
        );
        let leaves = event(EventKind::Modified, 8, "blue", "red");
        let out = red.translate(&leaves).unwrap();
        assert_eq!(out["type"], "DELETED");
        assert_eq!(out["object"]["metadata"]["labels"]["color"], "red");
        assert!(out["object"].get("data").is_none());

        let beta = watch_call_in("", Format::Metadata(MetaVersion::V1beta1));
        assert_eq!(
            beta.bookmark(12, true),
            json!({"type": "BOOKMARK", "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1beta1",
                "metadata": {"resourceVersion": "12",
                             "annotations": {"k8s.io/initial-events-end": "true"}}}})
        );
        assert_eq!(
            watch_call("").bookmark(12, false)["object"]["kind"],
            "ConfigMap"
        );
    }
}
