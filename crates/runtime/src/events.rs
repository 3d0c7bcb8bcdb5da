//! Events about what controllers do, as client-go's recorder writes them (`kubectl describe`
//! shows them): core/v1 Events with `source.component`, `count` and first/last timestamps. A
//! repeat of the same event (same object, type, reason and message) within the recorder's
//! memory patches the count of the one already written instead of adding another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;

/// How many distinct events a recorder remembers for counting repeats.
const MEMORY: usize = 4096;
/// How many events a queued recorder holds before it drops new ones (client-go's broadcaster
/// queue is 1000 long, and drops too).
const QUEUE: usize = 1000;

/// An event waiting in a queued recorder.
struct Queued {
    reference: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

/// An event's kind, as `kubectl describe` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something happened as intended.
    Normal,
    /// Something went wrong or needs attention.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    object: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    type_: EventType,
    reason: String,
    message: String,
}

#[derive(Debug)]
struct Seen {
    name: String,
    namespace: String,
    count: i32,
}

/// Records events as one controller (the `From` column).
#[derive(Clone)]
pub struct Recorder {
    /// Set for a queued recorder ([`Recorder::queued`]): its events are written by a task.
    queue: Option<tokio::sync::mpsc::Sender<Queued>>,
    client: Client,
    component: &'static str,
    seen: Arc<Mutex<HashMap<Key, Seen>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder reporting as `component` (`deployment-controller`, `default-scheduler`).
    pub fn new(client: Client, component: &'static str) -> Self {
        Self {
            queue: None,
            client,
            component,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A recorder whose events are written in the background, in order, by a task of its own
    /// (client-go's broadcaster): recording never waits for the API server, so a caller on a
    /// latency-sensitive path (the kubelet starting a pod) is not slowed down by its events.
    /// When the queue is full new events are dropped (logged). The task ends when the last
    /// clone of the recorder is dropped. Must be called within a Tokio runtime.
    pub fn queued(client: Client, component: &'static str) -> Self {
        let writer = Recorder::new(client.clone(), component);
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Queued>(QUEUE);
        tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                writer
                    .publish(event.reference, event.type_, &event.reason, event.message)
                    .await;
            }
        });
        Self {
            queue: Some(sender),
            ..Recorder::new(client, component)
        }
    }

    /// A `Normal` event about `object`.
    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        message: String,
    ) {
        self.publish(object.object_ref(&()), EventType::Normal, reason, message)
            .await;
    }

    /// A `Warning` event about `object`.
    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        reason: &str,
        message: String,
    ) {
        self.publish(object.object_ref(&()), EventType::Warning, reason, message)
            .await;
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Seen>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An event about the object `reference` names. Failing to record is logged, never an error
    /// of the caller: events are for people, the controller's work does not depend on them.
    pub async fn publish(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        if let Some(queue) = &self.queue {
            let queued = Queued {
                reference,
                type_,
                reason: reason.to_owned(),
                message,
            };
            if let Err(err) = queue.try_send(queued) {
                tracing::debug!(component = self.component, reason, "event dropped: {err}");
            }
            return;
        }
        let key = Key {
            object: (
                reference.namespace.clone(),
                reference.kind.clone(),
                reference.name.clone(),
                reference.uid.clone(),
            ),
            type_,
            reason: reason.to_owned(),
            message: message.clone(),
        };
        let now = Timestamp::now();
        let repeat = self
            .seen()
            .get(&key)
            .map(|s| (s.name.clone(), s.namespace.clone(), s.count + 1));
        let result = match repeat {
            Some((name, namespace, count)) => {
                let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
                let patch = json!({"count": count, "lastTimestamp": Time(now)});
                let result = events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                if result.is_ok() {
                    if let Some(seen) = self.seen().get_mut(&key) {
                        seen.count = count;
                    }
                }
                result.map(drop)
            }
            None => {
                self.create(reference, type_, reason, message, now, key)
                    .await
            }
        };
        if let Err(err) = result {
            tracing::debug!(component = self.component, reason, %err, "recording an event failed");
        }
    }

    async fn create(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        message: String,
        now: Timestamp,
        key: Key,
    ) -> Result<(), kube::Error> {
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let object_name = reference.name.clone().unwrap_or_default();
        let name = format!("{object_name}.{:x}", now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: reference,
            type_: Some(type_.as_str().to_owned()),
            reason: Some(reason.to_owned()),
            message: Some(message),
            source: Some(EventSource {
                component: Some(self.component.to_owned()),
                host: None,
            }),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            reporting_component: Some(self.component.to_owned()),
            reporting_instance: Some(self.component.to_owned()),
            ..Event::default()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        events.create(&PostParams::default(), &event).await?;
        let mut seen = self.seen();
        if seen.len() >= MEMORY {
            seen.clear();
        }
        seen.insert(
            key,
            Seen {
                name,
                namespace,
                count: 1,
            },
        );
        Ok(())
    }
}
