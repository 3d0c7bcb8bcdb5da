//! Helpers shared by the kube-rs black-box tests: a `kube::Client` from the kubeconfig the server
//! wrote, namespaces, and reading watch streams with a deadline.

// Test set-up: a failure here should stop the test loudly.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use k3rs_tests::K3rsServer;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{PostParams, WatchEvent};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};

/// How long a test waits for one watch event before failing.
pub(crate) const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A watch as kube-rs streams it.
pub(crate) type Events<K> = BoxStream<'static, kube::Result<WatchEvent<K>>>;

/// A client for `server` built the way an operator's would be: from the admin kubeconfig the
/// server wrote (client certificate, cluster CA; TLS through rustls).
pub(crate) async fn client(server: &K3rsServer) -> Client {
    let kubeconfig = Kubeconfig::read_from(&server.kubeconfig).expect("the kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client config from the kubeconfig");
    Client::try_from(config).expect("a kube client")
}

/// Creates the namespace `name`.
pub(crate) async fn create_namespace(client: &Client, name: &str) {
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|err| panic!("creating namespace {name}: {err}"));
}

/// The object's resourceVersion as a number (k3rs's are store revisions).
pub(crate) fn revision<K: Resource>(object: &K) -> i64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .expect("a numeric resourceVersion")
}

/// The next event that is not a bookmark; fails the test when none comes in time or the
/// stream ends or breaks.
pub(crate) async fn next_event<K>(events: &mut Events<K>) -> WatchEvent<K> {
    loop {
        let event = tokio::time::timeout(EVENT_TIMEOUT, events.next())
            .await
            .expect("a watch event in time")
            .expect("the watch goes on")
            .expect("a well-formed watch event");
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

/// Asserts that no event other than a bookmark arrives within `quiet`.
pub(crate) async fn assert_quiet<K>(events: &mut Events<K>, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(next) = tokio::time::timeout_at(deadline, events.next()).await {
        match next {
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            Some(Ok(event)) => panic!("unexpected watch event: {event:?}"),
            Some(Err(err)) => panic!("the watch broke: {err}"),
            None => return,
        }
    }
}

/// The `Status` of a failed call, failing the test when the call did not fail that way.
pub(crate) fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
