//! Metadata-only answers (`PartialObjectMetadata`), as metadata informers use them, against the
//! real binary: kube-rs's `list_metadata`, `get_metadata` and metadata watchers for ConfigMaps,
//! Pods and a custom resource, with paging and selectors; and raw requests for the exact kinds,
//! apiVersions (v1 and v1beta1), Content-Types and 406s.

// The helpers are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, TryStreamExt};
use k3rs_tests::K3rsServer;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::{GroupVersionKind, PartialObjectMeta};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use kube_support::{client, create_namespace, http_body_text, next_event, revision, EVENT_TIMEOUT};
use serde_json::{json, Value};

const ONE_V1: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const ONE_V1BETA1: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1";
const LIST_V1BETA1: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1";
/// client-go's metadata client asks for a list with these fallbacks.
const CLIENT_GO_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1,application/json";

async fn start(dir: &tempfile::TempDir, namespace: &str) -> (K3rsServer, Client) {
    let server = K3rsServer::start(dir.path()).expect("k3rs server starts");
    let client = client(&server).await;
    create_namespace(&client, namespace).await;
    (server, client)
}

fn config_map(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}, "annotations": {"note": name}},
        "data": {"big": "x".repeat(1000)},
    }))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }))
    .unwrap()
}

/// What a raw request got back.
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

/// Sends `method path` with `Accept: accept` (and a JSON body) through the kube client.
async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    accept: &str,
    body: Option<Value>,
) -> Answer {
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::ACCEPT, accept)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(kube::client::Body::from(body))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = http_body_text(response).await;
    let body = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
    Answer {
        status,
        content_type,
        body,
    }
}

/// Asserts a 200 answer of `kind` in `meta.k8s.io/<version>` (sent as plain JSON, like
/// kube-apiserver's).
fn assert_partial(answer: &Answer, kind: &str, version: &str) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(answer.body["kind"], kind);
    assert_eq!(answer.body["apiVersion"], format!("meta.k8s.io/{version}"));
}

/// Asserts a 406 Status whose message says `why`.
fn assert_not_acceptable(answer: &Answer, why: &str) {
    assert_eq!(answer.status, 406, "{}", answer.body);
    assert_eq!(answer.body["kind"], "Status");
    assert_eq!(answer.body["reason"], "NotAcceptable");
    let message = answer.body["message"].as_str().unwrap_or("");
    assert!(message.contains(why), "{message:?} should say {why:?}");
}

fn kind_of<K>(partial: &PartialObjectMeta<K>) -> (String, String) {
    let types = partial.types.clone().expect("apiVersion and kind");
    (types.api_version, types.kind)
}

fn meta_v1(kind: &str) -> (String, String) {
    ("meta.k8s.io/v1".to_owned(), kind.to_owned())
}

/// `list_metadata` and `get_metadata` through kube-rs: PartialObjectMetadata(List) of
/// meta.k8s.io/v1 holding the whole metadata and no data, paged at one resourceVersion, with
/// label and field selectors.
#[tokio::test]
async fn kube_rs_lists_and_gets_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "meta-list").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "meta-list");
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "web"), ("other", "db")] {
        api.create(&PostParams::default(), &config_map(name, app))
            .await
            .unwrap();
    }

    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(
        (list.types.api_version.as_str(), list.types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadataList")
    );
    let names: Vec<_> = list
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["a", "b", "c", "kube-root-ca.crt", "other"]);
    for item in &list {
        assert_eq!(kind_of(item), meta_v1("PartialObjectMetadata"));
        assert!(item.metadata.uid.is_some() && item.metadata.creation_timestamp.is_some());
        assert!(revision(item) > 0);
    }

    // The metadata is the object's, all of it (resourceVersion included).
    let full = api.get("a").await.unwrap();
    let partial = api.get_metadata("a").await.unwrap();
    assert_eq!(kind_of(&partial), meta_v1("PartialObjectMetadata"));
    assert_eq!(partial.metadata, full.metadata);

    // Paging: two pages at the first page's resourceVersion.
    let first = api
        .list_metadata(&ListParams::default().limit(3))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let rv = first.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &config_map("later", "web"))
        .await
        .unwrap();
    let rest = api
        .list_metadata(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    let paged: Vec<_> = first
        .iter()
        .chain(&rest.items)
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(
        paged,
        ["a", "b", "c", "kube-root-ca.crt", "other"],
        "the page after is at the first's revision"
    );
    assert_eq!(rest.metadata.resource_version.as_deref(), Some(rv.as_str()));
    assert_eq!(rest.metadata.continue_.as_deref().unwrap_or(""), "");

    // Selectors: labels (the streamed path) and fields (objects decoded whole).
    let web = api
        .list_metadata(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let names: Vec<_> = web.iter().filter_map(|p| p.metadata.name.clone()).collect();
    assert_eq!(names, ["a", "b", "c", "later"]);
    let named = api
        .list_metadata(&ListParams::default().fields("metadata.name=other"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    assert_eq!(kind_of(&named.items[0]), meta_v1("PartialObjectMetadata"));
    assert_eq!(
        named.items[0].metadata.labels.as_ref().unwrap()["app"],
        "db"
    );

    // A write asking for metadata only (kube-rs's `patch_metadata`) answers with it.
    let annotate = Patch::Merge(json!({"metadata": {"annotations": {"patched": "yes"}}}));
    let patched = api
        .patch_metadata("a", &PatchParams::default(), &annotate)
        .await
        .unwrap();
    assert_eq!(kind_of(&patched), meta_v1("PartialObjectMetadata"));
    assert_eq!(
        patched.metadata.annotations.as_ref().unwrap()["patched"],
        "yes"
    );
    assert!(revision(&patched) > revision(&full));
}

/// Raw requests: the exact kind, apiVersion and Content-Type for v1 and v1beta1, client-go's
/// Accept with fallbacks, the 406s of the wrong shape (and nothing written by a refused write),
/// and an unknown `as` refused with a Status that names what is served.
#[tokio::test]
async fn raw_metadata_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "meta-raw").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "meta-raw");
    api.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    let collection = "/api/v1/namespaces/meta-raw/configmaps";
    let object = "/api/v1/namespaces/meta-raw/configmaps/a";

    let one = raw(&client, "GET", object, ONE_V1BETA1, None).await;
    assert_partial(&one, "PartialObjectMetadata", "v1beta1");
    assert_eq!(one.body["metadata"]["name"], "a");
    assert_eq!(one.body["metadata"]["annotations"]["note"], "a");
    assert!(one.body.get("data").is_none(), "{}", one.body);
    let one = raw(&client, "GET", object, ONE_V1, None).await;
    assert_partial(&one, "PartialObjectMetadata", "v1");

    // (Selected by label: the namespace also holds the controllers' kube-root-ca.crt.)
    let web = format!("{collection}?labelSelector=app%3Dweb");
    let list = raw(&client, "GET", &web, CLIENT_GO_LIST, None).await;
    assert_partial(&list, "PartialObjectMetadataList", "v1");
    assert!(list.body["metadata"]["resourceVersion"].is_string());
    assert_eq!(
        list.body["items"],
        json!([{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": one.body["metadata"]}])
    );
    let beta = raw(&client, "GET", collection, LIST_V1BETA1, None).await;
    assert_partial(&beta, "PartialObjectMetadataList", "v1beta1");
    assert_eq!(beta.body["items"][0]["apiVersion"], "meta.k8s.io/v1beta1");
    let empty = raw(
        &client,
        "GET",
        &format!("{collection}?labelSelector=app%3Dnone"),
        CLIENT_GO_LIST,
        None,
    )
    .await;
    assert_eq!(empty.body["items"], json!([]));

    // Writes answer with the written object's metadata.
    let created = raw(
        &client,
        "POST",
        collection,
        ONE_V1,
        Some(json!({"metadata": {"name": "b"}, "data": {"k": "v"}})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["kind"], "PartialObjectMetadata");
    assert_eq!(created.body["metadata"]["name"], "b");
    assert!(created.body.get("data").is_none());

    // The wrong shape is upstream's 406, and a refused write writes nothing.
    let as_one = raw(&client, "GET", collection, ONE_V1, None).await;
    assert_not_acceptable(
        &as_one,
        "you requested PartialObjectMetadata, but the requested object is a list (ConfigMapList)",
    );
    let as_list = raw(&client, "GET", object, LIST_V1BETA1, None).await;
    assert_not_acceptable(
        &as_list,
        "you requested PartialObjectMetadataList, but the requested object is not a list (ConfigMap)",
    );
    let refused = raw(
        &client,
        "POST",
        collection,
        LIST_V1BETA1,
        Some(json!({"metadata": {"name": "never"}})),
    )
    .await;
    assert_not_acceptable(&refused, "is not a list (ConfigMap)");
    assert!(api.get_opt("never").await.unwrap().is_none());
    let watch_as_list = raw(
        &client,
        "GET",
        &format!("{collection}?watch=1"),
        CLIENT_GO_LIST,
        None,
    )
    .await;
    assert_not_acceptable(&watch_as_list, "is not a list (ConfigMap)");

    // Unknown conversions are skipped: to the JSON fallback, or a 406 naming what is served.
    let fallback = raw(
        &client,
        "GET",
        object,
        "application/json;as=Frobnicated;g=meta.k8s.io;v=v1,application/json",
        None,
    )
    .await;
    assert_eq!(fallback.status, 200);
    assert_eq!(fallback.body["kind"], "ConfigMap");
    assert_eq!(fallback.content_type, "application/json");
    let unknown = raw(
        &client,
        "GET",
        object,
        "application/json;as=Frobnicated;g=meta.k8s.io;v=v1",
        None,
    )
    .await;
    assert_not_acceptable(&unknown, "as=PartialObjectMetadata;v=v1;g=meta.k8s.io");
    let wrong_version = raw(
        &client,
        "GET",
        object,
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2",
        None,
    )
    .await;
    assert_eq!(wrong_version.status, 406);

    // Table negotiation is unchanged.
    let table = raw(
        &client,
        "GET",
        collection,
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        None,
    )
    .await;
    assert_eq!(table.body["kind"], "Table");
}

/// The watcher's next event, failing the test when none comes in time.
async fn next_watcher_event<K>(
    stream: &mut (impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin),
) -> watcher::Event<K> {
    tokio::time::timeout(EVENT_TIMEOUT, stream.try_next())
        .await
        .expect("a watcher event in time")
        .expect("the watcher goes on")
        .expect("the watcher does not end")
}

/// The next watcher event after its initial list.
async fn next_change<K>(
    stream: &mut (impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin),
) -> watcher::Event<K> {
    loop {
        let event = next_watcher_event(stream).await;
        if !matches!(
            event,
            watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::InitDone
        ) {
            return event;
        }
    }
}

/// Waits for the watcher's initial list to end, so later writes are seen as live changes.
async fn initial_list_done<K>(
    stream: &mut (impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin),
) {
    while !matches!(next_watcher_event(stream).await, watcher::Event::InitDone) {}
}

/// Asserts a metadata watcher event: `expected` (`Apply` or `Delete`) of `name`, as a
/// PartialObjectMetadata.
fn assert_change<K: std::fmt::Debug>(
    event: watcher::Event<PartialObjectMeta<K>>,
    expected: &str,
    name: &str,
) -> PartialObjectMeta<K> {
    let object = match (expected, event) {
        ("Apply", watcher::Event::Apply(object)) | ("Delete", watcher::Event::Delete(object)) => {
            object
        }
        (_, other) => panic!("expected {expected} of {name}, got {other:?}"),
    };
    assert_eq!(object.metadata.name.as_deref(), Some(name));
    assert_eq!(kind_of(&object), meta_v1("PartialObjectMetadata"));
    object
}

/// Metadata watchers — `kube::runtime::metadata_watcher` for ConfigMaps, and `watcher` over an
/// `Api<PartialObjectMeta<Pod>>` (what kube-rs now recommends) for Pods — see adds, changes and
/// deletes as PartialObjectMetadata with the writes' resourceVersions; bookmarks are
/// PartialObjectMetadata too.
#[tokio::test]
async fn metadata_watchers_see_adds_changes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "meta-watch").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "meta-watch");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "meta-watch");
    config_maps
        .create(&PostParams::default(), &config_map("before", "web"))
        .await
        .unwrap();

    #[allow(deprecated)]
    let mut cm_events =
        kube::runtime::metadata_watcher(config_maps.clone(), watcher::Config::default()).boxed();
    let pod_metadata: Api<PartialObjectMeta<Pod>> = Api::namespaced(client.clone(), "meta-watch");
    let mut pod_events = watcher(pod_metadata, watcher::Config::default()).boxed();
    initial_list_done(&mut cm_events).await;
    initial_list_done(&mut pod_events).await;

    let created = config_maps
        .create(&PostParams::default(), &config_map("live", "web"))
        .await
        .unwrap();
    let seen = assert_change(next_change(&mut cm_events).await, "Apply", "live");
    assert_eq!(revision(&seen), revision(&created));
    let labels = Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}}));
    let relabelled = config_maps
        .patch("live", &PatchParams::default(), &labels)
        .await
        .unwrap();
    let seen = assert_change(next_change(&mut cm_events).await, "Apply", "live");
    assert_eq!(seen.metadata.labels.as_ref().unwrap()["app"], "db");
    assert_eq!(revision(&seen), revision(&relabelled));
    config_maps
        .delete("before", &DeleteParams::default())
        .await
        .unwrap();
    assert_change(next_change(&mut cm_events).await, "Delete", "before");

    let created = pods
        .create(&PostParams::default(), &pod("web"))
        .await
        .unwrap();
    let seen = assert_change(next_change(&mut pod_events).await, "Apply", "web");
    assert_eq!(revision(&seen), revision(&created));
    assert_eq!(seen.metadata.uid, created.metadata.uid);
    let annotate = Patch::Merge(json!({"metadata": {"annotations": {"seen": "yes"}}}));
    pods.patch("web", &PatchParams::default(), &annotate)
        .await
        .unwrap();
    // (The scheduler may report the unschedulable pod's status first: skip such updates.)
    loop {
        let seen = assert_change(next_change(&mut pod_events).await, "Apply", "web");
        let annotations = seen.metadata.annotations.unwrap_or_default();
        if annotations.get("seen").map(String::as_str) == Some("yes") {
            break;
        }
    }
    // An unbound pod has no kubelet to wait for: it goes at once.
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    loop {
        match next_change(&mut pod_events).await {
            // A late status report of the scheduler's.
            watcher::Event::Apply(_) => continue,
            other => {
                assert_change(other, "Delete", "web");
                break;
            }
        }
    }

    // Bookmarks of a metadata watch: the end of the initial events, as PartialObjectMetadata.
    let mut events = config_maps
        .watch_metadata(&WatchParams::default().initial_events().timeout(30), "0")
        .await
        .unwrap()
        .boxed();
    let bookmark = loop {
        let event = tokio::time::timeout(EVENT_TIMEOUT, events.next())
            .await
            .expect("a watch event in time")
            .expect("the watch goes on")
            .expect("a well-formed watch event");
        match event {
            WatchEvent::Added(object) => {
                assert_eq!(kind_of(&object), meta_v1("PartialObjectMetadata"));
            }
            WatchEvent::Bookmark(bookmark) => break bookmark,
            other => panic!("unexpected watch event: {other:?}"),
        }
    };
    assert_eq!(
        (
            bookmark.types.api_version.as_str(),
            bookmark.types.kind.as_str()
        ),
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    );
    assert_eq!(
        bookmark
            .metadata
            .annotations
            .get("k8s.io/initial-events-end")
            .map(String::as_str),
        Some("true")
    );
}

/// A custom resource's metadata, listed, got and watched through kube-rs's dynamic API.
#[tokio::test]
async fn custom_resource_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "meta-crd").await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                }}},
            }],
        },
    }))
    .unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "meta-crd", &resource);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "labels": {"size": "big"}},
        "spec": {"size": 3},
    }))
    .unwrap();
    // The CRD is served once the controller has established it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let created = loop {
        match widgets.create(&PostParams::default(), &widget).await {
            Ok(created) => break created,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("the CRD is never served: {err}"),
        }
    };

    let list = widgets
        .list_metadata(&ListParams::default().labels("size=big"))
        .await
        .unwrap();
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert_eq!(list.items.len(), 1);
    assert_eq!(kind_of(&list.items[0]), meta_v1("PartialObjectMetadata"));
    assert_eq!(list.items[0].metadata, created.metadata);
    let one = widgets.get_metadata("w1").await.unwrap();
    assert_eq!(one.metadata, created.metadata);
    let raw_one = raw(
        &client,
        "GET",
        "/apis/example.com/v1/namespaces/meta-crd/widgets/w1",
        ONE_V1BETA1,
        None,
    )
    .await;
    assert_eq!(raw_one.body["apiVersion"], "meta.k8s.io/v1beta1");
    assert!(raw_one.body.get("spec").is_none());

    let mut events = widgets
        .watch_metadata(
            &WatchParams::default().timeout(30),
            &list.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .unwrap();
    let event = next_event(&mut events).await;
    match event {
        WatchEvent::Deleted(object) => {
            assert_eq!(object.metadata.name.as_deref(), Some("w1"));
            assert_eq!(kind_of(&object), meta_v1("PartialObjectMetadata"));
            assert!(object.meta().resource_version.is_some());
        }
        other => panic!("expected Deleted(w1), got {other:?}"),
    }
}
