"""The Python `kubernetes` client against k3rs: watch with bookmarks, and a CRD round trip.

Run by tests/tests/python_client.rs as `python3 client_roundtrip.py <kubeconfig> <namespace>`;
prints `ok` on success and fails with an assertion otherwise.
"""

import sys
import threading
import time

from kubernetes import client, config, watch


def main(kubeconfig: str, namespace: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))

    # Watch with bookmarks from a list's resourceVersion: every change arrives, in order.
    listed = core.list_namespaced_config_map(namespace)
    start = listed.metadata.resource_version
    names = [f"cm-{i}" for i in range(5)]

    def writer() -> None:
        time.sleep(0.5)
        for name in names:
            core.create_namespaced_config_map(
                namespace,
                client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"n": name}),
            )
        core.delete_namespaced_config_map(names[0], namespace)

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=20,
    ):
        if event["type"] == "BOOKMARK":
            continue
        # The controllers add kube-root-ca.crt to every new namespace: not this test's.
        if event["object"].metadata.name not in names:
            continue
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == len(names) + 1:
            w.stop()
    thread.join()
    expected = [("ADDED", n) for n in names] + [("DELETED", names[0])]
    assert seen == expected, f"watch saw {seen}, expected {expected}"

    # sendInitialEvents: the current state as ADDED events, then a bookmark marking its end.
    initial = []
    end_marked = False
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        resource_version="",
        allow_watch_bookmarks=True,
        timeout_seconds=20,
    ):
        if event["type"] == "BOOKMARK":
            annotations = event["raw_object"]["metadata"].get("annotations") or {}
            end_marked = annotations.get("k8s.io/initial-events-end") == "true"
            w.stop()
            continue
        if event["object"].metadata.name not in names:
            continue
        initial.append((event["type"], event["object"].metadata.name))
    assert end_marked, "no initial-events-end bookmark"
    assert initial == [("ADDED", n) for n in names[1:]], f"initial events {initial}"

    # A CRD round trip: create it, wait until served, then CRUD custom objects.
    ext = client.ApiextensionsV1Api()
    group, plural = "tests.k3rs.io", "widgets"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"size": {"type": "integer", "minimum": 1}},
                    }},
                }},
            }],
        },
    }
    created_crd = ext.create_custom_resource_definition(crd)
    # Like upstream, a new CRD already carries its storage version (the naming controller fills
    # in the rest a moment later), so clients that read `status` right away find one.
    assert created_crd.status.stored_versions == ["v1"], created_crd.status
    deadline = time.time() + 30
    while True:
        got = ext.read_custom_resource_definition(f"{plural}.{group}")
        conditions = {c.type: c.status for c in (got.status.conditions or [])}
        if conditions.get("Established") == "True":
            break
        assert time.time() < deadline, f"CRD not established: {conditions}"
        time.sleep(0.2)
    custom = client.CustomObjectsApi()
    body = {"apiVersion": f"{group}/v1", "kind": "Widget",
            "metadata": {"name": "w1"}, "spec": {"size": 3, "color": "pruned"}}
    deadline = time.time() + 30
    while True:
        try:
            created = custom.create_namespaced_custom_object(group, "v1", namespace, plural, body)
            break
        except client.exceptions.ApiException as err:
            # Served a moment after Established is visible.
            assert err.status == 404 and time.time() < deadline, err
            time.sleep(0.2)
    assert created["spec"] == {"size": 3}, f"unknown fields are pruned: {created['spec']}"
    assert created["metadata"]["generation"] == 1
    patched = custom.patch_namespaced_custom_object(
        group, "v1", namespace, plural, "w1", {"spec": {"size": 5}})
    assert patched["spec"]["size"] == 5 and patched["metadata"]["generation"] == 2
    listed = custom.list_namespaced_custom_object(group, "v1", namespace, plural)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    try:
        custom.create_namespaced_custom_object(group, "v1", namespace, plural, {
            "apiVersion": f"{group}/v1", "kind": "Widget",
            "metadata": {"name": "bad"}, "spec": {"size": 0}})
        raise AssertionError("size 0 was accepted")
    except client.exceptions.ApiException as err:
        assert err.status == 422, err
        assert "spec.size" in err.body, err.body
    custom.delete_namespaced_custom_object(group, "v1", namespace, plural, "w1")
    try:
        custom.get_namespaced_custom_object(group, "v1", namespace, plural, "w1")
        raise AssertionError("w1 still exists")
    except client.exceptions.ApiException as err:
        assert err.status == 404, err
    ext.delete_custom_resource_definition(f"{plural}.{group}")
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
