//! Helpers shared by the kube-rs black-box tests: a `kube::Client` from the kubeconfig the server
//! wrote, namespaces, a server with hollow nodes, kubectl from async tests, reading watch streams
//! with a deadline, and raw response bodies.

// Test set-up: a failure here should stop the test loudly.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use k3rs_hollow::{HollowCluster, HollowNodeConfig};
use k3rs_tests::{kubectls, K3rsServer};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{PostParams, WatchEvent};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
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

/// A server, a client, the namespace `namespace` and `nodes` hollow nodes named
/// `<namespace>-node-<i>`, heartbeating every second.
pub(crate) async fn hollow_cluster(
    dir: &tempfile::TempDir,
    namespace: &str,
    nodes: usize,
) -> (K3rsServer, Client, HollowCluster) {
    let server = K3rsServer::start(dir.path()).expect("k3rs server starts");
    let client = client(&server).await;
    create_namespace(&client, namespace).await;
    let cluster = HollowCluster::start(
        client.clone(),
        nodes,
        &format!("{namespace}-node"),
        &HollowNodeConfig::default().with_heartbeat(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    (server, client, cluster)
}

/// Runs the newest kubectl without blocking the runtime (hollow nodes live on it); panics with
/// the server log when it fails.
pub(crate) fn kubectl(server: &K3rsServer, args: &[&str]) -> String {
    let newest = kubectls().pop().unwrap();
    tokio::task::block_in_place(|| newest.ok(server, args))
        .unwrap_or_else(|err| panic!("{err:#}\nserver log:\n{}", server.log_text()))
}

/// Runs the newest kubectl with `stdin`: whether it succeeded, stdout and stderr.
pub(crate) fn kubectl_with_input(
    server: &K3rsServer,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    let newest = kubectls().pop().unwrap();
    tokio::task::block_in_place(|| newest.run_with_input(server, args, stdin)).unwrap()
}

/// Creates the namespace `name` and waits for the controllers' `kube-root-ca.crt` in it.
pub(crate) async fn create_namespace(client: &Client, name: &str) {
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|err| panic!("creating namespace {name}: {err}"));
    // The controllers add `kube-root-ca.crt` to every new namespace; wait for it, so a test's
    // lists and watches see it from the start rather than appearing midway.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), name);
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    while config_maps
        .get_opt("kube-root-ca.crt")
        .await
        .ok()
        .flatten()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no kube-root-ca.crt in namespace {name}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// The whole body of a raw response as text.
pub(crate) async fn http_body_text(response: http::Response<kube::client::Body>) -> String {
    use http_body_util::BodyExt;
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the response body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("a UTF-8 body")
}

/// [`kubectl`] with `stdin` as its input; returns its output, failing the test (with the
/// server's log) when kubectl fails.
pub(crate) fn kubectl_stdin(server: &K3rsServer, args: &[&str], stdin: &str) -> String {
    let (ok, out, err) = kubectl_with_input(server, args, stdin);
    assert!(
        ok,
        "kubectl {args:?}: {err}\nserver log:\n{}",
        server.log_text()
    );
    out
}

/// Polls `check` every 250 ms until it holds; fails the test (with the server's log) after
/// 40 s.
pub(crate) async fn wait_for(server: &K3rsServer, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}\nserver log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Ready and not terminating.
pub(crate) fn is_available(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Counts the namespace's ready, non-terminating pods after every pod event and keeps the
/// lowest count seen, until `stop` is set.
pub(crate) fn watch_available(
    client: &Client,
    namespace: &str,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let lowest = Arc::new(AtomicUsize::new(usize::MAX));
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let task = tokio::spawn({
        let lowest = lowest.clone();
        async move {
            let mut ready: BTreeMap<String, bool> = BTreeMap::new();
            let mut initialized = false;
            let mut events = watcher(pods, watcher::Config::default()).boxed();
            while !stop.load(Ordering::SeqCst) {
                let Ok(Some(event)) =
                    tokio::time::timeout(Duration::from_millis(200), events.next()).await
                else {
                    continue;
                };
                match event.unwrap() {
                    watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                        ready.insert(pod.metadata.name.clone().unwrap(), is_available(&pod));
                    }
                    watcher::Event::Delete(pod) => {
                        ready.remove(&pod.metadata.name.clone().unwrap());
                    }
                    watcher::Event::InitDone => initialized = true,
                    watcher::Event::Init => {}
                }
                if initialized {
                    let count = ready.values().filter(|r| **r).count();
                    lowest.fetch_min(count, Ordering::SeqCst);
                }
            }
        }
    });
    (lowest, task)
}

/// Creates the namespace `<prefix>-<release>` (one per kubectl release on one server) with
/// `kubectl`, applies `manifest(namespace)` there, and returns the namespace.
pub(crate) fn apply_in_own_namespace(
    server: &K3rsServer,
    kubectl: &k3rs_tests::Kubectl,
    prefix: &str,
    manifest: impl Fn(&str) -> String,
) -> anyhow::Result<String> {
    let namespace = format!("{prefix}-{}", kubectl.version.replace('.', ""));
    kubectl.ok(server, &["create", "namespace", &namespace])?;
    let (ok, out, err) = kubectl.run_with_input(
        server,
        &["apply", "-n", &namespace, "-f", "-"],
        &manifest(&namespace),
    )?;
    anyhow::ensure!(ok, "kubectl {} apply failed: {out}{err}", kubectl.version);
    Ok(namespace)
}

/// `(revision, change-cause)` rows of `kubectl rollout history` output (`<none>` for a revision
/// without one).
pub(crate) fn history_rows(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let (revision, cause) = line.trim().split_once(char::is_whitespace)?;
            revision
                .parse::<u32>()
                .ok()
                .map(|_| (revision.to_owned(), cause.trim().to_owned()))
        })
        .collect()
}

/// With every kubectl release, in a namespace `<prefix>-<release>`: `manifest(namespace)` is
/// applied with a `kubernetes.io/change-cause` in its metadata, then annotated with a second one
/// and given a new image by `kubectl set image <resource> c=v2`, and `kubectl rollout history
/// <resource>` must show both causes on their revisions (as upstream, where a new
/// ControllerRevision carries its owner's annotations).
pub(crate) fn assert_rollout_history_keeps_change_causes(
    server: &K3rsServer,
    prefix: &str,
    resource: &str,
    manifest: impl Fn(&str) -> String,
) {
    k3rs_tests::with_each_kubectl(server, |server, kubectl| {
        let namespace = apply_in_own_namespace(server, kubectl, prefix, &manifest)?;
        let history = || kubectl.ok(server, &["rollout", "history", resource, "-n", &namespace]);
        let first = vec![("1".to_owned(), "created with image v1".to_owned())];
        let seen = k3rs_tests::eventually(Duration::from_secs(30), || {
            history().ok().filter(|out| history_rows(out) == first)
        });
        anyhow::ensure!(seen.is_some(), "first revision: {:?}", history());
        kubectl.ok(
            server,
            &[
                "annotate",
                resource,
                "-n",
                &namespace,
                "--overwrite",
                "kubernetes.io/change-cause=image v2 rolled out",
            ],
        )?;
        kubectl.ok(
            server,
            &["set", "image", resource, "c=v2", "-n", &namespace],
        )?;
        let both = vec![
            ("1".to_owned(), "created with image v1".to_owned()),
            ("2".to_owned(), "image v2 rolled out".to_owned()),
        ];
        let seen = k3rs_tests::eventually(Duration::from_secs(30), || {
            history().ok().filter(|out| history_rows(out) == both)
        });
        anyhow::ensure!(seen.is_some(), "both revisions: {:?}", history());
        let detail = kubectl.ok(
            server,
            &[
                "rollout",
                "history",
                resource,
                "-n",
                &namespace,
                "--revision=2",
            ],
        )?;
        // The detail is the recorded template.
        anyhow::ensure!(detail.contains("Image:\tv2"), "revision 2 detail: {detail}");
        Ok(())
    });
}
