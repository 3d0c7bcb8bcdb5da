//! A kind served in two versions (or two groups) is stored once and converted:
//! `HorizontalPodAutoscaler` written as `autoscaling/v1` reads as `autoscaling/v2` (CPU target
//! as a metric) and back, v2-only fields survive a v1 round trip (kept in upstream's
//! annotations); core and `events.k8s.io` events are one resource, so `kubectl describe` shows
//! events written through either API.

use anyhow::Result;
use k3rs_tests::{kubectls, K3rsServer};
use serde_json::Value;

const V1: &str = r#"apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  targetCPUUtilizationPercentage: 60
"#;

#[test]
fn autoscalers_convert_between_v1_and_v2() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    let kubectl = kubectls().pop().expect("a kubectl");
    let raw = |path: &str| -> Result<Value> {
        Ok(serde_json::from_str(
            &kubectl.ok(&server, &["get", "--raw", path])?,
        )?)
    };
    let (ok, _, err) = kubectl.run_with_input(&server, &["create", "-f", "-"], V1)?;
    assert!(ok, "{err}");

    let v2 = raw("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web")?;
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 60,
        "{v2}"
    );
    assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());

    // A v2-only metric and behavior, written through v2, survive reads and writes through v1.
    let patch = r#"{"spec":{"metrics":[
        {"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":60}}},
        {"type":"Resource","resource":{"name":"memory","target":{"type":"AverageValue","averageValue":"500Mi"}}}],
        "behavior":{"scaleDown":{"stabilizationWindowSeconds":60}}}}"#;
    kubectl.ok(
        &server,
        &[
            "patch",
            "hpa.v2.autoscaling",
            "web",
            "--type=merge",
            "-p",
            patch,
        ],
    )?;
    let v1 = raw("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web")?;
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60, "{v1}");
    let listed = raw("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers")?;
    assert_eq!(
        listed["items"][0]["spec"]["targetCPUUtilizationPercentage"], 60,
        "lists convert too: {listed}"
    );
    // Items of a built-in list carry no TypeMeta (Go leaves the empty one out): the list's is v1.
    assert_eq!(listed["apiVersion"], "autoscaling/v1");
    assert!(listed["items"][0].get("apiVersion").is_none(), "{listed}");
    kubectl.ok(
        &server,
        &[
            "patch",
            "hpa.v1.autoscaling",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"maxReplicas":9}}"#,
        ],
    )?;
    let v2 = raw("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web")?;
    assert_eq!(v2["spec"]["maxReplicas"], 9);
    assert_eq!(
        v2["spec"]["metrics"][1]["resource"]["name"], "memory",
        "{v2}"
    );
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        60
    );
    assert!(
        v2["metadata"].get("annotations").is_none(),
        "the v1 annotations do not leak into v2: {v2}"
    );
    Ok(())
}

#[test]
fn events_of_both_apis_show_in_describe() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = K3rsServer::start(dir.path())?;
    for kubectl in kubectls() {
        let ns = kubectl.named("events");
        kubectl.ok(&server, &["create", "namespace", &ns])?;
        server.wait_for_default_service_account(&ns)?;
        kubectl.ok(&server, &["-n", &ns, "run", "web", "--image=nginx:1.25"])?;
        let uid = kubectl.ok(
            &server,
            &[
                "-n",
                &ns,
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.metadata.uid}",
            ],
        )?;
        let core = format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: web.1}}\n\
             involvedObject: {{apiVersion: v1, kind: Pod, name: web, namespace: {ns}, uid: {uid}}}\n\
             reason: Scheduled\nmessage: assigned to node-1\ntype: Normal\n\
             source: {{component: default-scheduler}}\n\
             firstTimestamp: \"2026-11-23T08:00:00Z\"\nlastTimestamp: \"2026-11-23T08:00:00Z\"\n"
        );
        let new = format!(
            "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {{name: web.2}}\n\
             regarding: {{apiVersion: v1, kind: Pod, name: web, namespace: {ns}, uid: {uid}}}\n\
             reason: Pulling\nnote: pulling nginx\ntype: Normal\naction: Pull\n\
             reportingController: kubelet\nreportingInstance: node-1\n\
             eventTime: \"2026-11-23T08:00:01.000000Z\"\n"
        );
        for manifest in [core, new] {
            let (ok, _, err) =
                kubectl.run_with_input(&server, &["-n", &ns, "create", "-f", "-"], &manifest)?;
            assert!(ok, "kubectl {}: {err}", kubectl.version);
        }
        let described = kubectl.ok(&server, &["-n", &ns, "describe", "pod", "web"])?;
        for expected in [
            "Scheduled",
            "assigned to node-1",
            "Pulling",
            "pulling nginx",
        ] {
            assert!(
                described.contains(expected),
                "kubectl {}: {expected:?} missing from\n{described}",
                kubectl.version
            );
        }
        let note = kubectl.ok(
            &server,
            &[
                "-n",
                &ns,
                "get",
                "events.v1.events.k8s.io",
                "web.1",
                "-o",
                "jsonpath={.note}",
            ],
        )?;
        assert_eq!(
            note, "assigned to node-1",
            "a core event reads through events.k8s.io"
        );
    }
    Ok(())
}
