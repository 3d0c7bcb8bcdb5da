//! Table tests: input object → expected cells, for each printer and the pod status edge cases.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::*;
use crate::resources::builtin_resources;

/// 2024-05-01T12:00:00Z
const NOW_SECONDS: u64 = 1_714_564_800;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECONDS)
}

/// An RFC 3339 time `seconds` before "now".
fn ago(seconds: i64) -> String {
    format_rfc3339(NOW_SECONDS as i64 - seconds)
}

fn resource(group: &str, plural: &str) -> crate::ResourceInfo {
    builtin_resources()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap()
}

/// Prints one object of `group/plural` and compares its cells (and the column names).
fn check(group: &str, plural: &str, object: Value, columns: &[&str], cells: Value) {
    let table = table_for(&resource(group, plural), &[object], now());
    let names: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            if c.priority > 0 {
                format!("{}*", c.name)
            } else {
                c.name.clone()
            }
        })
        .collect();
    assert_eq!(names, columns, "{group}/{plural} columns");
    assert_eq!(
        Value::from(table.rows[0].cells.clone()),
        cells,
        "{group}/{plural} cells"
    );
    assert_eq!(table.rows[0].cells.len(), table.columns.len());
}

const POD_COLUMNS: &[&str] = &[
    "Name",
    "Ready",
    "Status",
    "Restarts",
    "Age",
    "IP*",
    "Node*",
    "Nominated Node*",
    "Readiness Gates*",
];

fn pod(status: Value) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(300)},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
        "status": status,
    })
}

fn pod_cells(object: Value) -> (String, String, String) {
    let table = table_for(&resource("", "pods"), &[object], now());
    let cell = |i: usize| table.rows[0].cells[i].as_str().unwrap().to_owned();
    (cell(1), cell(2), cell(3))
}

#[test]
fn human_durations() {
    let s = |secs: i64| human_duration(i128::from(secs) * 1_000_000_000);
    for (secs, want) in [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 3 * 60, "5h3m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (770 * 86400, "2y40d"),
        (8 * 365 * 86400, "8y"),
        (10 * 365 * 86400, "10y"),
    ] {
        assert_eq!(s(secs), want, "{secs}s");
    }
    // Fractions truncate toward zero, as Go's int(d.Seconds()).
    assert_eq!(human_duration(-1_999_999_999), "0s");
    assert_eq!(human_duration(1_999_999_999), "1s");
}

#[test]
fn timestamps() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2024-05-01T12:00:00Z"),
        Some(i128::from(NOW_SECONDS) * 1_000_000_000)
    );
    assert_eq!(
        parse_rfc3339("2024-05-01T14:00:00+02:00"),
        Some(i128::from(NOW_SECONDS) * 1_000_000_000)
    );
    assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00.000001Z"), Some(1_000));
    for bad in [
        "",
        "2024-05-01",
        "2024-05-01T12:00:00",
        "2024-13-01T00:00:00Z",
        "2024-05-01T12:00:00.Z",
        "x024-05-01T12:00:00Z",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
    }
    assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_rfc3339(NOW_SECONDS as i64), "2024-05-01T12:00:00Z");
    assert_eq!(format_rfc3339(-62_135_596_800), "0001-01-01T00:00:00Z");
    assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
}

#[test]
fn pod_running_wide() {
    check(
        "",
        "pods",
        json!({
            "metadata": {"name": "web", "creationTimestamp": ago(300)},
            "spec": {"containers": [{"name": "a"}], "nodeName": "n1",
                     "readinessGates": [{"conditionType": "x/ready"}, {"conditionType": "y"}]},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
                       "conditions": [{"type": "x/ready", "status": "True"}, {"type": "y", "status": "False"}],
                       "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0,
                                              "state": {"running": {"startedAt": ago(200)}}}]}
        }),
        POD_COLUMNS,
        json!([
            "web",
            "1/1",
            "Running",
            "0",
            "5m",
            "10.42.0.5",
            "n1",
            "<none>",
            "1/2"
        ]),
    );
}

#[test]
fn pod_status_edge_cases() {
    let cases: Vec<(&str, Value, (&str, &str, &str))> = vec![
        (
            "pending, no statuses",
            json!({"phase": "Pending"}),
            ("0/2", "Pending", "0"),
        ),
        (
            "container creating",
            json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}},
                {"name": "b", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            ("0/2", "ContainerCreating", "0"),
        ),
        (
            "crash loop with last restart",
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}]}),
            ("1/2", "CrashLoopBackOff", "5 (5m ago)"),
        ),
        (
            "first container's reason wins (statuses read backwards)",
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
                {"name": "b", "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
            ("0/2", "ImagePullBackOff", "0"),
        ),
        (
            "completed",
            json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ("0/2", "Completed", "0"),
        ),
        (
            "completed container while another runs, pod ready",
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "state": {"running": {}}}]}),
            ("1/2", "Running", "0"),
        ),
        (
            "completed container while another runs, pod not ready",
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "state": {"running": {}}}]}),
            ("1/2", "NotReady", "0"),
        ),
        (
            "terminated without reason: signal",
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            ("0/2", "Signal:9", "0"),
        ),
        (
            "terminated without reason: exit code",
            json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 2}}}]}),
            ("0/2", "ExitCode:2", "0"),
        ),
        (
            "evicted: status reason",
            json!({"phase": "Failed", "reason": "Evicted"}),
            ("0/2", "Evicted", "0"),
        ),
        (
            "scheduling gated",
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ("0/2", "SchedulingGated", "0"),
        ),
    ];
    for (what, status, want) in cases {
        let (ready, reason, restarts) = pod_cells(pod(status));
        assert_eq!(
            (ready.as_str(), reason.as_str(), restarts.as_str()),
            want,
            "{what}"
        );
    }
}

#[test]
fn pod_init_containers() {
    let with_init = |init_statuses: Value, extra: Value| {
        let mut p = pod(json!({"phase": "Pending", "initContainerStatuses": init_statuses}));
        p["spec"]["initContainers"] =
            json!([{"name": "i1"}, {"name": "i2"}, {"name": "side", "restartPolicy": "Always"}]);
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                p["status"][k] = v;
            }
        }
        pod_cells(p)
    };
    // Second init container running: Init:1/3.
    let got = with_init(
        json!([{"name": "i1", "state": {"terminated": {"exitCode": 0}}},
               {"name": "i2", "state": {"running": {}}}]),
        json!({}),
    );
    assert_eq!(got, ("0/3".into(), "Init:1/3".into(), "0".into()));
    // Waiting on an image.
    let got = with_init(
        json!([{"name": "i1", "restartCount": 2, "state": {"waiting": {"reason": "ImagePullBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}}}]),
        json!({}),
    );
    assert_eq!(
        got,
        (
            "0/3".into(),
            "Init:ImagePullBackOff".into(),
            "2 (90s ago)".into()
        )
    );
    // PodInitializing is not a reason worth showing.
    let got = with_init(
        json!([{"name": "i1", "state": {"waiting": {"reason": "PodInitializing"}}}]),
        json!({}),
    );
    assert_eq!(got.1, "Init:0/3");
    // A failed init container.
    let got = with_init(
        json!([{"name": "i1", "state": {"terminated": {"exitCode": 3}}}]),
        json!({}),
    );
    assert_eq!(got.1, "Init:ExitCode:3");
    let got = with_init(
        json!([{"name": "i1", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]),
        json!({}),
    );
    assert_eq!(got.1, "Init:Error");
    let got = with_init(
        json!([{"name": "i1", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]),
        json!({}),
    );
    assert_eq!(got.1, "Init:Signal:9");
    // A started sidecar counts as ready and does not block; the app containers run.
    let got = with_init(
        json!([{"name": "i1", "state": {"terminated": {"exitCode": 0}}},
               {"name": "i2", "state": {"terminated": {"exitCode": 0}}},
               {"name": "side", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3600)}}}]),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "state": {"running": {}}},
            {"name": "b", "ready": true, "restartCount": 2, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}}]}),
    );
    assert_eq!(got, ("3/3".into(), "Running".into(), "3 (10m ago)".into()));
}

#[test]
fn pod_terminating_and_conditions() {
    let mut p = pod(json!({"phase": "Running"}));
    p["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(pod_cells(p.clone()).1, "Terminating");
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(pod_cells(p).1, "Unknown");
    let mut p = pod(json!({"phase": "Succeeded"}));
    p["metadata"]["deletionTimestamp"] = json!(ago(1));
    let table = table_for(&resource("", "pods"), &[p], now());
    assert_eq!(table.rows[0].cells[2], json!("Succeeded"));
    assert_eq!(
        serde_json::to_value(&table.rows[0].conditions).unwrap(),
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
    );
}

#[test]
fn workloads() {
    let template = json!({"spec": {"containers": [{"name": "app", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]}});
    check(
        "apps",
        "deployments",
        json!({"metadata": {"name": "web", "creationTimestamp": ago(7200)},
               "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
               "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
        &[
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers*",
            "Images*",
            "Selector*",
        ],
        json!([
            "web",
            "2/3",
            3,
            2,
            "120m",
            "app,side",
            "nginx:1,busybox",
            "app=web"
        ]),
    );
    check(
        "apps",
        "replicasets",
        json!({"metadata": {"name": "web-1", "creationTimestamp": ago(30)},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
               "status": {"replicas": 2, "readyReplicas": 1}}),
        &[
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Age",
            "Containers*",
            "Images*",
            "Selector*",
        ],
        json!([
            "web-1",
            2,
            2,
            1,
            "30s",
            "app,side",
            "nginx:1,busybox",
            "app=web"
        ]),
    );
    check(
        "apps",
        "daemonsets",
        json!({"metadata": {"name": "agent", "creationTimestamp": ago(86400 * 3)},
               "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["agent"]}]},
                        "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "a", "image": "i"}]}}},
               "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                          "updatedNumberScheduled": 2, "numberAvailable": 1}}),
        &[
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers*",
            "Images*",
            "Selector*",
        ],
        json!([
            "agent",
            2,
            2,
            1,
            2,
            1,
            "kubernetes.io/os=linux",
            "3d",
            "a",
            "i",
            "app in (agent)"
        ]),
    );
    check(
        "apps",
        "statefulsets",
        json!({"metadata": {"name": "db", "creationTimestamp": ago(60)},
               "spec": {"template": {"spec": {"containers": [{"name": "pg", "image": "postgres"}]}}},
               "status": {"readyReplicas": 1}}),
        &["Name", "Ready", "Age", "Containers*", "Images*"],
        json!(["db", "1/1", "60s", "pg", "postgres"]),
    );
    check(
        "batch",
        "jobs",
        json!({"metadata": {"name": "pi", "creationTimestamp": ago(400)},
               "spec": {"completions": 1, "selector": {"matchLabels": {"job": "pi"}}, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
               "status": {"succeeded": 1, "startTime": ago(400), "completionTime": ago(358),
                          "conditions": [{"type": "Complete", "status": "True"}]}}),
        &[
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers*",
            "Images*",
            "Selector*",
        ],
        json!(["pi", "Complete", "1/1", "42s", "6m40s", "pi", "perl", "job=pi"]),
    );
    check(
        "batch",
        "jobs",
        json!({"metadata": {"name": "p", "creationTimestamp": ago(10)},
               "spec": {"parallelism": 3, "template": {"spec": {"containers": []}}},
               "status": {"startTime": ago(10)}}),
        &[
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers*",
            "Images*",
            "Selector*",
        ],
        json!(["p", "Running", "0/1 of 3", "10s", "10s", "", "", "<none>"]),
    );
    check(
        "batch",
        "cronjobs",
        json!({"metadata": {"name": "tick", "creationTimestamp": ago(3600)},
               "spec": {"schedule": "*/5 * * * *", "suspend": false,
                        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
               "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": ago(120)}}),
        &[
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers*",
            "Images*",
            "Selector*",
        ],
        json!([
            "tick",
            "*/5 * * * *",
            "<none>",
            "False",
            1,
            "2m",
            "60m",
            "c",
            "busybox",
            "<none>"
        ]),
    );
}

#[test]
fn services() {
    let columns = &[
        "Name",
        "Type",
        "Cluster-IP",
        "External-IP",
        "Port(s)",
        "Age",
        "Selector*",
    ];
    check(
        "",
        "services",
        json!({"metadata": {"name": "web", "creationTimestamp": ago(5)},
               "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                        "selector": {"app": "web"}}}),
        columns,
        json!([
            "web",
            "ClusterIP",
            "10.43.0.10",
            "<none>",
            "80/TCP,53/UDP",
            "5s",
            "app=web"
        ]),
    );
    check(
        "",
        "services",
        json!({"metadata": {"name": "lb"},
               "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.1.1"],
                        "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]},
               "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.20"}, {"ip": "192.168.1.10"}]}}}),
        columns,
        json!([
            "lb",
            "LoadBalancer",
            "10.43.1.1",
            "192.168.1.10,192.168.1.20",
            "443:31443/TCP",
            "<unknown>",
            "<none>"
        ]),
    );
    check(
        "",
        "services",
        json!({"metadata": {"name": "pending"}, "spec": {"type": "LoadBalancer", "clusterIP": "None"}}),
        columns,
        json!([
            "pending",
            "LoadBalancer",
            "None",
            "<pending>",
            "<none>",
            "<unknown>",
            "<none>"
        ]),
    );
    check(
        "",
        "services",
        json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        columns,
        json!([
            "ext",
            "ExternalName",
            "<none>",
            "example.com",
            "<none>",
            "<unknown>",
            "<none>"
        ]),
    );
}

#[test]
fn nodes_namespaces_config() {
    check(
        "",
        "nodes",
        json!({"metadata": {"name": "n1", "creationTimestamp": ago(86400 * 10),
                            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true", "kubernetes.io/role": "edge"}},
               "spec": {"unschedulable": true},
               "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                          "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "n1"}],
                          "nodeInfo": {"kubeletVersion": "v1.37.0+k3rs", "osImage": "Debian GNU/Linux 13", "kernelVersion": "6.12.0", "containerRuntimeVersion": "containerd://2.1.0"}}}),
        &[
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP*",
            "External-IP*",
            "OS-Image*",
            "Kernel-Version*",
            "Container-Runtime*",
        ],
        json!([
            "n1",
            "Ready,SchedulingDisabled",
            "control-plane,edge,master",
            "10d",
            "v1.37.0+k3rs",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 13",
            "6.12.0",
            "containerd://2.1.0"
        ]),
    );
    check(
        "",
        "nodes",
        json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        &[
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP*",
            "External-IP*",
            "OS-Image*",
            "Kernel-Version*",
            "Container-Runtime*",
        ],
        json!([
            "n2",
            "NotReady",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ]),
    );
    check(
        "",
        "namespaces",
        json!({"metadata": {"name": "default", "creationTimestamp": ago(100)}, "status": {"phase": "Active"}}),
        &["Name", "Status", "Age"],
        json!(["default", "Active", "100s"]),
    );
    check(
        "",
        "configmaps",
        json!({"metadata": {"name": "cfg", "creationTimestamp": ago(100)}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
        &["Name", "Data", "Age"],
        json!(["cfg", 3, "100s"]),
    );
    check(
        "",
        "secrets",
        json!({"metadata": {"name": "s", "creationTimestamp": ago(100)}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}, "stringData": {"tls.key": "x", "ca.crt": "y"}}),
        &["Name", "Type", "Data", "Age"],
        json!(["s", "kubernetes.io/tls", 3, "100s"]),
    );
    check(
        "",
        "serviceaccounts",
        json!({"metadata": {"name": "default", "creationTimestamp": ago(100)}}),
        &["Name", "Secrets", "Age"],
        json!(["default", 0, "100s"]),
    );
}

#[test]
fn events() {
    let columns = &[
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Subobject*",
        "Source*",
        "Message",
        "First Seen*",
        "Count*",
        "Name*",
    ];
    check(
        "",
        "events",
        json!({"metadata": {"name": "web.17a", "namespace": "default"},
               "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
               "reason": "Pulled", "type": "Normal", "message": "  Pulled image\n",
               "source": {"component": "kubelet", "host": "n1"},
               "firstTimestamp": ago(600), "lastTimestamp": ago(60), "count": 4}),
        columns,
        json!([
            "60s",
            "Normal",
            "Pulled",
            "pod/web",
            "spec.containers{app}",
            "kubelet, n1",
            "Pulled image",
            "10m",
            4,
            "web.17a"
        ]),
    );
    // The new API: eventTime (59.88s ago prints as 59s) and a series, reportingController as
    // the source.
    check(
        "events.k8s.io",
        "events",
        json!({"metadata": {"name": "e"}, "regarding": {"kind": "Node", "name": "n1"},
               "reason": "Starting", "type": "Normal", "note": "Starting kubelet.",
               "eventTime": "2024-05-01T11:59:00.123456Z", "reportingController": "kubelet", "reportingInstance": "n1",
               "series": {"count": 7, "lastObservedTime": "2024-05-01T11:59:50.000000Z"}}),
        columns,
        json!([
            "10s",
            "Normal",
            "Starting",
            "node/n1",
            "",
            "kubelet, n1",
            "Starting kubelet.",
            "59s",
            7,
            "e"
        ]),
    );
    // A singleton event without a count counts once.
    check(
        "",
        "events",
        json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Namespace"}, "eventTime": ago(30)}),
        columns,
        json!(["30s", "", "", "namespace", "", "", "", "30s", 1, "e"]),
    );
}

#[test]
fn networking_and_storage() {
    check(
        "networking.k8s.io",
        "ingresses",
        json!({"metadata": {"name": "web", "creationTimestamp": ago(1)},
               "spec": {"ingressClassName": "k3rs", "rules": [{"host": "a.example"}, {"host": "b.example"}, {}, {"host": "d.example"}, {"host": "e.example"}],
                        "tls": [{"hosts": ["a.example"]}]},
               "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}, {"hostname": "lb.example"}]}}}),
        &["Name", "Class", "Hosts", "Address", "Ports", "Age"],
        json!([
            "web",
            "k3rs",
            "a.example,b.example,d.example + 2 more...",
            "192.168.1.10,lb.example",
            "80, 443",
            "1s"
        ]),
    );
    check(
        "discovery.k8s.io",
        "endpointslices",
        json!({"metadata": {"name": "web-abc", "creationTimestamp": ago(1)}, "addressType": "IPv4",
               "ports": [{"port": 80}, {"name": "metrics"}, {}],
               "endpoints": [{"addresses": ["10.42.0.1"]}, {"addresses": ["10.42.0.2", "10.42.0.3"]}, {"addresses": ["10.42.0.4"]}]}),
        &["Name", "AddressType", "Ports", "Endpoints", "Age"],
        json!([
            "web-abc",
            "IPv4",
            "80,metrics,*",
            "10.42.0.1,10.42.0.2,10.42.0.3 + 1 more...",
            "1s"
        ]),
    );
    check(
        "discovery.k8s.io",
        "endpointslices",
        json!({"metadata": {"name": "empty"}, "addressType": "IPv6"}),
        &["Name", "AddressType", "Ports", "Endpoints", "Age"],
        json!(["empty", "IPv6", "<unset>", "<unset>", "<unknown>"]),
    );
    check(
        "",
        "endpoints",
        json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.42.0.1"}, {"ip": "fd00::1"}], "ports": [{"port": 80}, {"port": 443}]}]}),
        &["Name", "Endpoints", "Age"],
        json!([
            "web",
            "10.42.0.1:80,[fd00::1]:80,10.42.0.1:443 + 1 more...",
            "<unknown>"
        ]),
    );
    check(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "data", "creationTimestamp": ago(10)},
               "spec": {"volumeName": "pv-1", "storageClassName": "local-path", "volumeMode": "Filesystem"},
               "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadWriteOncePod"]}}),
        &[
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "VolumeMode*",
        ],
        json!([
            "data",
            "Bound",
            "pv-1",
            "1Gi",
            "RWO,RWOP",
            "local-path",
            "<unset>",
            "10s",
            "Filesystem"
        ]),
    );
    check(
        "",
        "persistentvolumes",
        json!({"metadata": {"name": "pv-1", "creationTimestamp": ago(10), "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Delete",
                        "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "local-path"},
               "status": {"phase": "Bound"}}),
        &[
            "Name",
            "Capacity",
            "Access Modes",
            "Reclaim Policy",
            "Status",
            "Claim",
            "StorageClass",
            "VolumeAttributesClass",
            "Reason",
            "Age",
            "VolumeMode*",
        ],
        json!([
            "pv-1",
            "1Gi",
            "RWO",
            "Delete",
            "Bound",
            "default/data",
            "old",
            "<unset>",
            "",
            "10s",
            "<unset>"
        ]),
    );
    check(
        "storage.k8s.io",
        "storageclasses",
        json!({"metadata": {"name": "local-path", "creationTimestamp": ago(10), "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}),
        &[
            "Name",
            "Provisioner",
            "ReclaimPolicy",
            "VolumeBindingMode",
            "AllowVolumeExpansion",
            "Age",
        ],
        json!([
            "local-path (default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            false,
            "10s"
        ]),
    );
}

#[test]
fn rbac_leases_classes_and_defaults() {
    check(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        json!({"metadata": {"name": "admins", "creationTimestamp": ago(10)}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"}, {"kind": "Group", "name": "dev"},
                            {"kind": "ServiceAccount", "namespace": "kube-system", "name": "ctl"}]}),
        &[
            "Name",
            "Role",
            "Age",
            "Users*",
            "Groups*",
            "ServiceAccounts*",
        ],
        json!([
            "admins",
            "ClusterRole/cluster-admin",
            "10s",
            "alice",
            "ops, dev",
            "kube-system/ctl"
        ]),
    );
    check(
        "coordination.k8s.io",
        "leases",
        json!({"metadata": {"name": "n1", "creationTimestamp": ago(10)}, "spec": {"holderIdentity": "n1"}}),
        &["Name", "Holder", "Age"],
        json!(["n1", "n1", "10s"]),
    );
    check(
        "networking.k8s.io",
        "ingressclasses",
        json!({"metadata": {"name": "k3rs", "creationTimestamp": ago(10)}, "spec": {"controller": "k3rs.io/ingress",
               "parameters": {"apiGroup": "k3rs.io", "kind": "Params", "name": "p"}}}),
        &["Name", "Controller", "Parameters", "Age"],
        json!(["k3rs", "k3rs.io/ingress", "Params.k3rs.io/p", "10s"]),
    );
    // Roles, cluster roles and CRDs use upstream's default table.
    for (group, plural) in [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "limitranges"),
    ] {
        check(
            group,
            plural,
            json!({"metadata": {"name": "x", "creationTimestamp": "2024-01-02T03:04:05Z"}}),
            &["Name", "Created At"],
            json!(["x", "2024-01-02T03:04:05Z"]),
        );
    }
    let table = default_table(&[json!({"metadata": {"name": "y"}})]);
    assert_eq!(
        table.rows[0].cells,
        vec![json!("y"), json!("0001-01-01T00:00:00Z")]
    );
    assert_eq!(table.columns[1].kind, "date");
}

#[test]
fn every_builtin_resource_prints_as_many_cells_as_columns() {
    let object = json!({"metadata": {"name": "x", "creationTimestamp": ago(1)}});
    for r in builtin_resources() {
        let table = table_for(&r, std::slice::from_ref(&object), now());
        assert_eq!(table.rows.len(), 1);
        // IPAddress is upstream's one odd printer: two columns, three cells.
        let extra = usize::from(r.kind == "IPAddress");
        assert_eq!(
            table.rows[0].cells.len(),
            table.columns.len() + extra,
            "{}",
            r.plural
        );
        assert_eq!(
            table.columns[0].name,
            if r.kind == "Event" {
                "Last Seen"
            } else {
                "Name"
            }
        );
        // Nothing panics on an empty object either.
        let _ = table_for(&r, &[json!({})], now());
        let _ = table_for(&r, &[json!(null)], now());
    }
}

#[test]
fn serializes_as_the_api_returns_it() {
    let table = table_for(
        &resource("", "namespaces"),
        &[json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}})],
        now(),
    );
    let value = table.to_json();
    assert_eq!(value["kind"], "Table");
    assert_eq!(value["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(value["metadata"], json!({}));
    assert_eq!(
        value["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0})
    );
    assert_eq!(
        value["rows"],
        json!([{"cells": ["default", "Active", "<unknown>"]}])
    );
}

#[test]
fn custom_resource_columns() {
    let columns = PrinterColumn::list_from_json(Some(&json!([
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Readiness"},
        {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio", "priority": 1},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Ports", "type": "string", "jsonPath": ".spec.ports"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Bad Date", "type": "date", "jsonPath": ".spec.when"}
    ])));
    let object = json!({
        "metadata": {"name": "c1", "creationTimestamp": ago(90)},
        "spec": {"replicas": 3, "paused": false, "ports": [80, 443], "when": "yesterday"},
        "status": {"ratio": 0.5, "conditions": [{"type": "Synced", "status": "True"}, {"type": "Ready", "status": "False"}]}
    });
    let table = table_for_custom(&columns, &[object], now()).unwrap();
    assert_eq!(
        Value::from(table.rows[0].cells.clone()),
        json!([
            "c1",
            3,
            "False",
            0.5,
            false,
            "[80,443]",
            null,
            "90s",
            "<invalid>"
        ])
    );
    assert_eq!(table.columns[0].name, "Name");
    assert_eq!(
        table.columns[1].description,
        "Custom resource definition column (in JSONPath format): .spec.replicas"
    );
    assert_eq!(table.columns[2].description, "Readiness");
    assert_eq!(table.columns[3].priority, 1);

    // No printer columns: upstream's Age column.
    let columns = PrinterColumn::list_from_json(None);
    let table = table_for_custom(
        &columns,
        &[json!({"metadata": {"name": "c", "creationTimestamp": ago(5)}})],
        now(),
    )
    .unwrap();
    assert_eq!(
        table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["Name", "Age"]
    );
    assert_eq!(table.rows[0].cells, vec![json!("c"), json!("5s")]);

    let bad = PrinterColumn {
        json_path: ".spec[".into(),
        ..PrinterColumn::from_json(&json!({"name": "x", "type": "string"}))
    };
    assert_eq!(
        table_for_custom(&[bad], &[], now())
            .unwrap_err()
            .to_string(),
        "unrecognized column definition \".spec[\""
    );
}

#[test]
fn json_paths() {
    let doc = json!({
        "a": {"b": [{"n": 1, "k": "x"}, {"n": 2, "k": "y"}, {"n": 3}], "dotted.key": "d"},
        "items": [[1, 2], [3]],
    });
    for (path, want) in [
        (".a.b[0].n", json!([1])),
        ("{.a.b[-1].n}", json!([3])),
        ("$.a.b[*].k", json!(["x", "y"])),
        (".a.b[?(@.n > 1)].n", json!([2, 3])),
        (".a.b[?(@.n>=2)].n", json!([2, 3])),
        // An item without the field is skipped, as kubectl's JSONPath does.
        (".a.b[?(@.k != 'x')].n", json!([2])),
        (".a.b[?(@.k)].n", json!([1, 2])),
        (".a['dotted.key']", json!(["d"])),
        ("..n", json!([1, 2, 3])),
        (".items[0][1]", json!([2])),
        (".a.missing", json!([])),
        (".a.b[7]", json!([])),
    ] {
        let p = JsonPath::parse(path).unwrap();
        let found: Vec<Value> = p.find(&doc).into_iter().cloned().collect();
        assert_eq!(Value::from(found), want, "{path}");
    }
    for bad in [".a[", ".a b", "a[?(x)]", ".a[?(@.b ~ 1)]", ".."] {
        assert!(JsonPath::parse(bad).is_err(), "{bad}");
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn json_path_never_panics(text in "[.a-z\\[\\]?()@=!<>'\"*$0-9 -]{0,30}") {
            if let Ok(p) = JsonPath::parse(&text) {
                let _ = p.find(&json!({"a": [{"b": 1}, {"b": "x"}], "b": {"a": [1, 2]}}));
            }
        }
    }
}
