//! The kube-rs client (the `kube` crate, rustls) against the real binary: list with paging,
//! watches resumed from a resourceVersion, `kube::runtime::watcher`, the three patch formats,
//! deletion held by a finalizer, and server-side apply with field managers.

// The helpers are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k3rs_tests::K3rsServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_support::{
    api_error, assert_quiet, client, create_namespace, http_body_text, next_event, revision,
};
use serde_json::{json, Value};

/// A ConfigMap with labels and data.
fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().copied().collect::<BTreeMap<_, _>>(),
        },
        "data": data.iter().copied().collect::<BTreeMap<_, _>>(),
    }))
    .unwrap()
}

fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a watch event says, for comparing with what was written: (type, name, resourceVersion).
fn summary(event: &WatchEvent<ConfigMap>) -> (&'static str, String, i64) {
    let (kind, object) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        other => panic!("unexpected watch event: {other:?}"),
    };
    (
        kind,
        object.metadata.name.clone().unwrap_or_default(),
        revision(object),
    )
}

async fn start(dir: &tempfile::TempDir, namespace: &str) -> (K3rsServer, Client) {
    let server = K3rsServer::start(dir.path()).expect("k3rs server starts");
    let client = client(&server).await;
    create_namespace(&client, namespace).await;
    (server, client)
}

/// Lists page by page at one resourceVersion, and watches that stop and restart from the last
/// resourceVersion they saw get exactly the events they missed, in order, with the
/// resourceVersions the writes returned; a label selector filters the replay too.
#[tokio::test]
async fn kube_client_lists_and_resumes_watches() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "kube-list").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-list");
    let create = async |name: &str, app: &str| {
        let object = config_map(name, &[("app", app)], &[]);
        api.create(&PostParams::default(), &object).await.unwrap()
    };
    let merge = async |name: &str, patch: Value| {
        let patch = Patch::Merge(patch);
        api.patch(name, &PatchParams::default(), &patch)
            .await
            .unwrap()
    };
    for name in ["a", "b", "c"] {
        create(name, "web").await;
    }
    create("other", "db").await;

    // Paging: two pages at the first page's resourceVersion, nothing lost or repeated.
    // (Every ConfigMap of the test has an `app` label; the namespace also holds the
    // controllers' kube-root-ca.crt, which has none.)
    let first = api
        .list(&ListParams::default().labels("app").limit(2))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let rest = api
        .list(
            &ListParams::default()
                .labels("app")
                .limit(2)
                .continue_token(&token),
        )
        .await
        .unwrap();
    let names: Vec<_> = first
        .items
        .iter()
        .chain(&rest.items)
        .filter_map(|cm| cm.metadata.name.clone())
        .collect();
    assert_eq!(names, ["a", "b", "c", "other"]);
    assert_eq!(rest.metadata.continue_.as_deref().unwrap_or(""), "");
    let listed = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    let list_rv = listed.metadata.resource_version.clone().unwrap();

    // Watch from the list, see two writes, stop.
    let params = WatchParams::default().timeout(60);
    let mut events = api.watch(&params, &list_rv).await.unwrap().boxed();
    let d = create("d", "web").await;
    let a = merge("a", json!({"data": {"v": "2"}})).await;
    let seen = [
        summary(&next_event(&mut events).await),
        summary(&next_event(&mut events).await),
    ];
    assert_eq!(
        seen,
        [
            ("ADDED", "d".to_string(), revision(&d)),
            ("MODIFIED", "a".to_string(), revision(&a)),
        ]
    );
    let last_seen = seen[1].2.to_string();
    drop(events);

    // Write while nobody watches.
    let deleted = api
        .delete("b", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("b is gone at once and returned");
    let e = create("e", "db").await;
    let c = merge("c", json!({"metadata": {"labels": {"app": "db"}}})).await;
    let missed = [
        ("DELETED", "b".to_string(), revision(&deleted)),
        ("ADDED", "e".to_string(), revision(&e)),
        ("MODIFIED", "c".to_string(), revision(&c)),
    ];

    // Restart from the last resourceVersion seen: exactly the missed events, then quiet.
    let mut events = api.watch(&params, &last_seen).await.unwrap().boxed();
    for expected in &missed {
        assert_eq!(&summary(&next_event(&mut events).await), expected);
    }
    assert_quiet(&mut events, Duration::from_millis(500)).await;

    // The same restart through a label selector: c leaving the selection is a DELETED that
    // carries c as the watcher last saw it (still app=web), at the patch's resourceVersion.
    let mut web = api
        .watch(&params.clone().labels("app=web"), &last_seen)
        .await
        .unwrap()
        .boxed();
    assert_eq!(summary(&next_event(&mut web).await), missed[0]);
    let left = next_event(&mut web).await;
    assert_eq!(summary(&left), ("DELETED", "c".to_string(), revision(&c)));
    if let WatchEvent::Deleted(cm) = &left {
        assert_eq!(
            cm.metadata.labels.clone().unwrap_or_default(),
            map(&[("app", "web")])
        );
    }
    assert_quiet(&mut web, Duration::from_millis(500)).await;

    // And it goes on live.
    let f = create("f", "web").await;
    assert_eq!(
        summary(&next_event(&mut events).await),
        ("ADDED", "f".to_string(), revision(&f))
    );
    assert_eq!(
        summary(&next_event(&mut web).await),
        ("ADDED", "f".to_string(), revision(&f))
    );
}

/// `kube::runtime::watcher`, the loop every kube-rs controller runs on: the initial list
/// (Init, InitApply for each object, InitDone), then live changes as Apply and Delete.
#[tokio::test]
async fn kube_client_runtime_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "kube-watcher").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-watcher");
    let post = PostParams::default();
    api.create(&post, &config_map("before", &[], &[("v", "1")]))
        .await
        .unwrap();

    // Not the controllers' kube-root-ca.crt: only what this test writes.
    let config = watcher::Config::default().fields("metadata.name!=kube-root-ca.crt");
    let mut stream = watcher(api.clone(), config).boxed();
    async fn next(
        stream: &mut futures::stream::BoxStream<
            'static,
            Result<watcher::Event<ConfigMap>, watcher::Error>,
        >,
    ) -> watcher::Event<ConfigMap> {
        tokio::time::timeout(kube_support::EVENT_TIMEOUT, stream.try_next())
            .await
            .expect("a watcher event in time")
            .expect("the watcher goes on")
            .expect("the watcher does not end")
    }
    assert!(matches!(next(&mut stream).await, watcher::Event::Init));
    match next(&mut stream).await {
        watcher::Event::InitApply(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("before")),
        other => panic!("expected InitApply(before), got {other:?}"),
    }
    assert!(matches!(next(&mut stream).await, watcher::Event::InitDone));

    let created = api
        .create(&post, &config_map("live", &[], &[("v", "1")]))
        .await
        .unwrap();
    match next(&mut stream).await {
        watcher::Event::Apply(cm) => {
            assert_eq!(cm.metadata.name.as_deref(), Some("live"));
            assert_eq!(revision(&cm), revision(&created));
        }
        other => panic!("expected Apply(live), got {other:?}"),
    }
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    match next(&mut stream).await {
        watcher::Event::Delete(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("before")),
        other => panic!("expected Delete(before), got {other:?}"),
    }
}

/// Merge, JSON and strategic merge patches through kube-rs, with upstream's semantics: a merge
/// patch's null removes a key and its list replaces the list; a JSON patch applies in order and
/// a failed `test` changes nothing (422); a strategic merge patch merges containers by name.
#[tokio::test]
async fn kube_client_patches() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "kube-patch").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-patch");
    let params = PatchParams::default();
    api.create(
        &PostParams::default(),
        &config_map("cm", &[("app", "web")], &[("a", "1"), ("b", "2")]),
    )
    .await
    .unwrap();

    let merged = api
        .patch(
            "cm",
            &params,
            &Patch::Merge(
                json!({"data": {"a": null, "c": "3"}, "metadata": {"labels": {"tier": "x"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(data(&merged), map(&[("b", "2"), ("c", "3")]));
    assert_eq!(
        merged.metadata.labels.clone().unwrap_or_default(),
        map(&[("app", "web"), ("tier", "x")])
    );

    let operations: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "20"},
        {"op": "add", "path": "/data/d", "value": "4"},
        {"op": "remove", "path": "/metadata/labels/tier"},
    ]))
    .unwrap();
    let patched = api
        .patch("cm", &params, &Patch::Json::<()>(operations))
        .await
        .unwrap();
    assert_eq!(data(&patched), map(&[("b", "20"), ("c", "3"), ("d", "4")]));
    assert_eq!(
        patched.metadata.labels.clone().unwrap_or_default(),
        map(&[("app", "web")])
    );
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/data/c", "value": "30"},
        {"op": "test", "path": "/data/b", "value": "2"},
    ]))
    .unwrap();
    let status = api_error(api.patch("cm", &params, &Patch::Json::<()>(failing)).await);
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(
        data(&api.get("cm").await.unwrap()),
        data(&patched),
        "a failed JSON patch changes nothing"
    );

    // Strategic merge patch on a Deployment: containers merge by name (a merge patch would
    // replace the list).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-patch");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    // Patches the pod template's containers with `patch` wrapped as `patch` says; returns the
    // containers after, as (name, image), sorted.
    let patch_containers = async |wrap: fn(Value) -> Patch<Value>, containers: Value| {
        let body = json!({"spec": {"template": {"spec": {"containers": containers}}}});
        let patched = deployments
            .patch("web", &params, &wrap(body))
            .await
            .unwrap();
        let mut containers: Vec<(String, String)> = patched
            .spec
            .template
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect();
        containers.sort();
        containers
    };
    let pair = |name: &str, image: &str| (name.to_string(), image.to_string());
    let strategic: fn(Value) -> Patch<Value> = Patch::Strategic;
    for (wrap, containers, expected) in [
        (
            strategic,
            json!([
                {"name": "sidecar", "image": "busybox:1.36"},
                {"name": "web", "image": "nginx:1.27"},
            ]),
            vec![pair("sidecar", "busybox:1.36"), pair("web", "nginx:1.27")],
        ),
        (
            strategic,
            json!([{"name": "sidecar", "$patch": "delete"}]),
            vec![pair("web", "nginx:1.27")],
        ),
        (
            Patch::Merge,
            json!([{"name": "only", "image": "busybox:1.36"}]),
            vec![pair("only", "busybox:1.36")],
        ),
    ] {
        let patch = containers.to_string();
        assert_eq!(
            patch_containers(wrap, containers).await,
            expected,
            "{patch}"
        );
    }
}

/// A delete of an object with a finalizer only marks it (deletionTimestamp, 200 with the
/// object); it stays readable until a patch removes the finalizer, and is then gone. A watch
/// sees MODIFIED (marked) then DELETED.
#[tokio::test]
async fn kube_client_delete_waits_for_finalizers() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "kube-finalizers").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-finalizers");
    let mut held = config_map("held", &[], &[("v", "1")]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let created = api.create(&PostParams::default(), &held).await.unwrap();
    let mut events = api
        .watch(
            &WatchParams::default().timeout(60),
            &revision(&created).to_string(),
        )
        .await
        .unwrap()
        .boxed();

    let marked = api
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the object is kept and returned while its finalizer is there");
    assert!(marked.metadata.deletion_timestamp.is_some(), "{marked:?}");
    let still = api.get("held").await.expect("still readable");
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(
        still.metadata.finalizers.as_deref(),
        Some(&["example.com/hold".to_string()][..])
    );
    match next_event(&mut events).await {
        WatchEvent::Modified(cm) => {
            assert!(cm.metadata.deletion_timestamp.is_some());
            assert_eq!(revision(&cm), revision(&marked));
        }
        other => panic!("expected MODIFIED with a deletionTimestamp, got {other:?}"),
    }
    // Deleting again changes nothing while the finalizer holds.
    api.delete("held", &DeleteParams::default()).await.unwrap();
    assert!(api.get("held").await.is_ok());

    // A patch that changes other fields is still allowed; one that removes the finalizer ends it.
    let patched = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert!(patched.metadata.deletion_timestamp.is_some());
    let status = api_error(api.get("held").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    match next_event(&mut events).await {
        WatchEvent::Deleted(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("held")),
        other => panic!("expected DELETED, got {other:?}"),
    }
    assert_quiet(&mut events, Duration::from_millis(300)).await;
}

/// The managedFields entries of `object` as (manager, operation, fieldsV1).
fn managed(object: &Value) -> Vec<(String, String, Value)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or_default().to_string(),
                        e["operation"].as_str().unwrap_or_default().to_string(),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The fieldsV1 of `manager`'s Apply entry.
fn applied_fields(object: &Value, manager: &str) -> Value {
    managed(object)
        .into_iter()
        .find(|(m, op, _)| m == manager && op == "Apply")
        .map(|(_, _, fields)| fields)
        .unwrap_or_else(|| panic!("no Apply entry for {manager} in {object:#}"))
}

/// Server-side apply (`Patch::Apply` with a field manager), with upstream's semantics: the first
/// apply creates (201) and records an Apply entry for the manager; a re-apply changes the
/// object; another manager applying a conflicting value gets 409 Conflict naming the owner and
/// field; with `force` it wins and takes the field over; and a manager that applies without a
/// field it alone owned removes the field from the object.
#[tokio::test]
async fn kube_client_server_side_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = start(&dir, "kube-apply").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-apply");
    let config = |data: Value| {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "applied", "namespace": "kube-apply"},
            "data": data,
        })
    };

    // Create through apply: 201 Created (kube-rs's `patch` hides the status: send it raw).
    let request = kube::core::Request::new(api.resource_url())
        .patch(
            "applied",
            &PatchParams::apply("alice"),
            &Patch::Apply(config(json!({"a": "1", "b": "2"}))),
        )
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = response.status();
    let body = http_body_text(response).await;
    assert_eq!(status.as_u16(), 201, "create through apply: {body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["data"], json!({"a": "1", "b": "2"}));
    let fields = applied_fields(&created, "alice");
    assert_eq!(
        fields["f:data"],
        json!({"f:a": {}, "f:b": {}}),
        "{created:#}"
    );

    // Re-apply with a changed value.
    let alice = PatchParams::apply("alice");
    let reapplied = api
        .patch(
            "applied",
            &alice,
            &Patch::Apply(config(json!({"a": "1", "b": "3"}))),
        )
        .await
        .unwrap();
    assert_eq!(data(&reapplied), map(&[("a", "1"), ("b", "3")]));
    let reapplied = serde_json::to_value(&reapplied).unwrap();
    assert_eq!(
        managed(&reapplied)
            .iter()
            .filter(|(m, _, _)| m == "alice")
            .count(),
        1,
        "one entry per manager and operation: {reapplied:#}"
    );

    // Another manager setting b to another value conflicts with alice.
    let bob = PatchParams::apply("bob");
    let status = api_error(
        api.patch("applied", &bob, &Patch::Apply(config(json!({"b": "4"}))))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("conflict with \"alice\"") && status.message.contains(".data.b"),
        "the conflict names the owner and the field: {status:?}"
    );
    assert_eq!(
        data(&api.get("applied").await.unwrap()),
        map(&[("a", "1"), ("b", "3")]),
        "a conflict changes nothing"
    );

    // With force bob wins and owns b; alice keeps only a.
    let forced = api
        .patch(
            "applied",
            &bob.clone().force(),
            &Patch::Apply(config(json!({"b": "4"}))),
        )
        .await
        .unwrap();
    assert_eq!(data(&forced), map(&[("a", "1"), ("b", "4")]));
    let forced = serde_json::to_value(&forced).unwrap();
    assert_eq!(applied_fields(&forced, "bob")["f:data"], json!({"f:b": {}}));
    assert_eq!(
        applied_fields(&forced, "alice")["f:data"],
        json!({"f:a": {}})
    );

    // Alice applies without a (which she alone owns): a goes; bob's b stays.
    let pruned = api
        .patch("applied", &alice, &Patch::Apply(config(json!({"c": "5"}))))
        .await
        .unwrap();
    assert_eq!(data(&pruned), map(&[("b", "4"), ("c", "5")]));
    let pruned = serde_json::to_value(&pruned).unwrap();
    assert_eq!(
        applied_fields(&pruned, "alice")["f:data"],
        json!({"f:c": {}})
    );
}
