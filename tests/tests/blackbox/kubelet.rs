//! The kubelet on containerd's CRI with the real runc and CNI plugins: a node of its own (its
//! own network namespace, data dir and containerd), pods from the air-gap image directory.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k3rs_tests::node::{missing_capability, TestNode};

fn start(dir: &tempfile::TempDir) -> Option<TestNode> {
    start_with(dir, &["busybox"])
}

fn start_with(dir: &tempfile::TempDir, images: &[&str]) -> Option<TestNode> {
    if let Some(why) = missing_capability() {
        eprintln!("skipping: {why}");
        return None;
    }
    match TestNode::start(dir.path(), images) {
        Ok(node) => Some(node),
        Err(err) => panic!("starting the node: {err:#}"),
    }
}

/// `name → (podIP, containerID, restartCount, phase)` of the pods of namespace default.
fn pods(node: &TestNode) -> Result<BTreeMap<String, (String, String, String, String)>> {
    let out = node.kubectl(&[
        "get",
        "pods",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount} {.status.phase}{\"\\n\"}{end}",
    ])?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() == 5).then(|| {
                (
                    fields[0].to_owned(),
                    (
                        fields[1].to_owned(),
                        fields[2].to_owned(),
                        fields[3].to_owned(),
                        fields[4].to_owned(),
                    ),
                )
            })
        })
        .collect())
}

/// `reason: message` of the events about the node's Node.
fn node_events(node: &TestNode) -> Result<String> {
    node.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=Node,involvedObject.name={}", node.name),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: k3rs/busybox:1.35.0
        command: ["sh", "-c", "echo hello-$(POD) > /tmp/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /tmp & wait"]
        env:
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx}
spec:
  replicas: 1
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: k3rs/nginx:1.22.1
        ports: [{containerPort: 80}]
"#;

#[test]
fn pods_run_reach_each_other_and_are_adopted_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut node) = start_with(&dir, &["busybox", "nginx"]) else {
        return;
    };
    node.apply(WEB).unwrap();
    let running = node
        .wait_for("two web pods Running", Duration::from_secs(90), || {
            let pods = pods(&node)?;
            let up: BTreeMap<_, _> = pods
                .into_iter()
                .filter(|(name, p)| name.starts_with("web-") && p.3 == "Running")
                .collect();
            Ok((up.len() == 2).then_some(up))
        })
        .unwrap();
    let nginx_ip = node
        .wait_for("the nginx pod Running", Duration::from_secs(90), || {
            Ok(pods(&node)?
                .into_iter()
                .find(|(name, p)| name.starts_with("nginx-") && p.3 == "Running")
                .map(|(_, p)| p.0))
        })
        .unwrap();
    assert!(nginx_ip.starts_with("10.42."), "nginx: {nginx_ip}");
    for (name, (ip, id, restarts, _)) in &running {
        assert!(
            ip.starts_with("10.42."),
            "{name}: IP {ip} from the node's pod CIDR"
        );
        assert!(id.starts_with("containerd://"), "{name}: {id}");
        assert_eq!(restarts, "0", "{name}");
    }

    // Pod to pod: a client pod fetches each server's page by IP; its exit code says whether
    // it got the page with the server's own name (the downward API env var) in it.
    let mut checks = Vec::new();
    for (name, (ip, ..)) in &running {
        checks.push(format!(
            "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc {ip} 8080 | grep -q hello-{name}"
        ));
    }
    checks.push(format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {nginx_ip} 80 | grep -q 'Welcome to nginx'"
    ));
    let client = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "{}"]
"#,
        checks.join(" && ").replace('"', "\\\"")
    );
    node.apply(&client).unwrap();
    let phase = node
        .wait_for("the client pod finished", Duration::from_secs(60), || {
            let phase =
                node.kubectl(&["get", "pod", "client", "-o", "jsonpath={.status.phase}"])?;
            Ok(matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase))
        })
        .unwrap();
    assert_eq!(phase, "Succeeded", "pod-to-pod HTTP\n{}", node.log_text());

    // containerd killed: the node says so (NotReady, events with the cause), k3rs starts it
    // again, the node is Ready again, and the pods ran on untouched.
    let before_containerd = pods(&node).unwrap();
    node.kill_containerd().unwrap();
    let events = node
        .wait_for("the runtime-down events", Duration::from_secs(60), || {
            let events = node_events(&node)?;
            Ok((events.contains("ContainerRuntimeDown: containerd exited")
                && events.contains("NodeNotReady: Node "))
            .then_some(events))
        })
        .unwrap();
    assert!(
        events.contains(&format!("Node {} status is now: NodeNotReady", node.name)),
        "{events}"
    );
    node.wait_ready().unwrap();
    node.wait_for("NodeReady again", Duration::from_secs(30), || {
        Ok(node_events(&node)?
            .contains("NodeReady: Node ")
            .then_some(()))
    })
    .unwrap();
    assert_eq!(pods(&node).unwrap(), before_containerd, "pods untouched");

    // kill -9 and start again: the same containers, IPs and restart counts.
    let before: BTreeMap<_, _> = pods(&node)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name.starts_with("web-"))
        .collect();
    let containers_before = node.runtime_containers().unwrap();
    node.kill9().unwrap();
    node.spawn().unwrap();
    node.wait_ready().unwrap();
    // Give the kubelet a few syncs to act on what it adopted.
    std::thread::sleep(Duration::from_secs(5));
    let after: BTreeMap<_, _> = pods(&node)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name.starts_with("web-"))
        .collect();
    assert_eq!(after, before, "adopted, not restarted\n{}", node.log_text());
    let mut containers_after = node.runtime_containers().unwrap();
    let mut containers_before = containers_before;
    containers_before.sort();
    containers_after.sort();
    assert_eq!(containers_after, containers_before);
}

#[test]
fn images_import_a_crashing_container_backs_off_and_a_deleted_pod_stops_within_its_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let Some(node) = start(&dir) else {
        return;
    };

    // `k3rs images import` by hand: the archive the node imported at start changes nothing; a
    // file that is no archive is refused, naming it.
    let archive = k3rs_tests::node::image_archive("busybox").unwrap();
    let output = k3rs_tests::run_k3rs([
        "images".as_ref(),
        "import".as_ref(),
        "--data-dir".as_ref(),
        node.data_dir.as_os_str(),
        archive.as_os_str(),
    ])
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.starts_with("docker.io/k3rs/busybox:1.35.0 sha256:")
            && stdout.trim_end().ends_with(" unchanged"),
        "{stdout}"
    );
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"not an archive").unwrap();
    let output = k3rs_tests::run_k3rs([
        "images".as_ref(),
        "import".as_ref(),
        "--data-dir".as_ref(),
        node.data_dir.as_os_str(),
        junk.as_os_str(),
    ])
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("junk.tar"), "{stderr}");

    node.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - name: c
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "trap '' TERM; sleep 3600 & wait"]
"#,
    )
    .unwrap();
    // The back-off grows between restarts (10 s, then 20 s), as upstream's.
    let mut back_offs: Vec<String> = Vec::new();
    let waiting = node
        .wait_for("CrashLoopBackOff", Duration::from_secs(120), || {
            let state = node.kubectl(&[
                "get",
                "pod",
                "crash",
                "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].lastState.terminated.exitCode} {.status.containerStatuses[0].state.waiting.message}",
            ])?;
            let fields: Vec<&str> = state.splitn(4, ' ').collect();
            if let Some(delay) = fields
                .get(3)
                .and_then(|m| m.strip_prefix("back-off "))
                .and_then(|m| m.split_whitespace().next())
            {
                if back_offs.last().map(String::as_str) != Some(delay) {
                    back_offs.push(delay.to_owned());
                }
            }
            Ok((fields.first() == Some(&"CrashLoopBackOff")
                && fields.get(1).and_then(|r| r.parse::<u32>().ok()) >= Some(2))
            .then(|| fields.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>()))
        })
        .unwrap();
    assert_eq!(waiting[2], "3", "the last run's exit code");
    let message = &waiting[3];
    assert!(
        message.starts_with("back-off ")
            && message.contains("restarting failed container=c pod=crash_default("),
        "{message}"
    );
    assert!(
        back_offs.starts_with(&["10s".to_owned(), "20s".to_owned()]),
        "back-offs seen: {back_offs:?}"
    );

    // A container that ignores SIGTERM is killed when the grace period ends, and only then is
    // the pod gone.
    node.wait_for("slow Running", Duration::from_secs(60), || {
        let phase = node.kubectl(&["get", "pod", "slow", "-o", "jsonpath={.status.phase}"])?;
        Ok((phase == "Running").then_some(()))
    })
    .unwrap();
    let started = std::time::Instant::now();
    node.kubectl(&["delete", "pod", "slow", "--wait=true", "--timeout=60s"])
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "deleted after {took:?}, before its 3 s grace period"
    );
    assert!(took < Duration::from_secs(30), "deleted after {took:?}");
}

#[test]
fn init_containers_probes_and_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let Some(node) = start(&dir) else {
        return;
    };
    let host_dir = dir.path().join("host");
    std::fs::create_dir_all(&host_dir).unwrap();
    node.apply(&format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: gated}}
spec:
  selector: {{app: gated}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: gated, labels: {{app: gated}}}}
spec:
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: init
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "echo done > /data/init"]
    volumeMounts: [{{name: data, mountPath: /data}}]
  containers:
  - name: web
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "test -f /data/init || exit 9; echo ok > /tmp/index.html; (sleep 6; touch /tmp/ready) & exec httpd -f -p 8080 -h /tmp"]
    volumeMounts:
    - {{name: data, mountPath: /data}}
    - {{name: host, mountPath: /host}}
    readinessProbe:
      exec: {{command: ["test", "-f", "/tmp/ready"]}}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo started > /host/post-start"]}}
      preStop:
        exec: {{command: ["sh", "-c", "echo stopping > /host/pre-stop"]}}
  volumes:
  - {{name: data, emptyDir: {{}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: unhealthy}}
spec:
  containers:
  - name: web
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
    livenessProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
      failureThreshold: 2
"#,
        host = host_dir.display()
    ))
    .unwrap();

    // Running (the init container ran first: the main one exits 9 without its file) but not
    // ready, and its endpoint not ready either, until the readiness probe passes.
    let endpoint_ready = || -> Result<String> {
        node.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=gated",
            "-o",
            "jsonpath={.items[*].endpoints[*].conditions.ready}",
        ])
    };
    node.wait_for("gated Running, not ready", Duration::from_secs(60), || {
        let state = node.kubectl(&[
            "get",
            "pod",
            "gated",
            "-o",
            "jsonpath={.status.phase} {.status.containerStatuses[0].ready}",
        ])?;
        Ok((state == "Running false" && endpoint_ready()? == "false").then_some(()))
    })
    .unwrap();
    let init = node
        .kubectl(&[
            "get",
            "pod",
            "gated",
            "-o",
            "jsonpath={.status.initContainerStatuses[0].state.terminated.reason}",
        ])
        .unwrap();
    assert_eq!(init, "Completed");
    node.wait_for(
        "gated ready, endpoint ready",
        Duration::from_secs(60),
        || {
            let ready = node.kubectl(&[
                "get",
                "pod",
                "gated",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])?;
            Ok((ready == "True" && endpoint_ready()? == "true").then_some(()))
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(host_dir.join("post-start")).unwrap(),
        "started\n"
    );

    // A failing liveness probe restarts the container, with upstream's event.
    node.wait_for("unhealthy restarted", Duration::from_secs(90), || {
        let restarts = node.kubectl(&[
            "get",
            "pod",
            "unhealthy",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ])?;
        Ok((restarts.parse::<u32>().unwrap_or(0) >= 1).then_some(()))
    })
    .unwrap();
    let events = node
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=unhealthy",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ])
        .unwrap();
    assert!(
        events.contains("Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 404"),
        "{events}"
    );
    assert!(
        events.contains("Killing: Container web failed liveness probe, will be restarted"),
        "{events}"
    );

    // The preStop hook runs before the container is stopped.
    node.kubectl(&["delete", "pod", "gated", "--wait=true", "--timeout=60s"])
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(host_dir.join("pre-stop")).unwrap(),
        "stopping\n"
    );
}

/// The value of a pod cgroup's memory limit: v1's `memory.limit_in_bytes` or v2's
/// `memory.max`, wherever this machine keeps it.
fn pod_memory_limit(path_in_hierarchy: &str) -> Option<String> {
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(path_in_hierarchy)
        .join("memory.limit_in_bytes");
    let v2 = std::path::Path::new("/sys/fs/cgroup")
        .join(path_in_hierarchy)
        .join("memory.max");
    std::fs::read_to_string(v1)
        .or_else(|_| std::fs::read_to_string(v2))
        .ok()
        .map(|text| text.trim().to_owned())
}

#[test]
fn limits_oom_config_secrets_and_cleanup_after_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut node) = start(&dir) else {
        return;
    };
    let host_dir = dir.path().join("host");
    std::fs::create_dir_all(&host_dir).unwrap();
    node.apply(&format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Secret
metadata: {{name: app-secret}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  # An init container without a memory limit leaves the pod without a pod-level one, so the
  # container's own limit is the one hit (an OOM at the pod cgroup is reported as Error).
  initContainers:
  - {{name: init, image: k3rs/busybox:1.35.0, command: ["true"]}}
  containers:
  - name: hog
    image: k3rs/busybox:1.35.0
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    resources: {{limits: {{memory: 32Mi, cpu: 200m}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: reader, labels: {{app: reader}}}}
spec:
  containers:
  - name: reader
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "echo $PASSWORD > /host/password; cp /info/name /info/labels /info/memory /host/; while true; do cat /config/greeting > /host/greeting.tmp; mv /host/greeting.tmp /host/greeting; sleep 1; done"]
    resources: {{limits: {{memory: 48Mi, cpu: 250m}}}}
    env:
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: app-secret, key: password}}}}
    volumeMounts:
    - {{name: config, mountPath: /config}}
    - {{name: info, mountPath: /info}}
    - {{name: host, mountPath: /host}}
  volumes:
  - {{name: config, configMap: {{name: app-config}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: memory, resourceFieldRef: {{containerName: reader, resource: limits.memory, divisor: 1Mi}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
"#,
        host = host_dir.display()
    ))
    .unwrap();

    // A memory hog over its limit is OOMKilled, as upstream reports it.
    let terminated = node
        .wait_for("hog terminated", Duration::from_secs(90), || {
            let state = node.kubectl(&[
                "get",
                "pod",
                "hog",
                "-o",
                "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}",
            ])?;
            Ok(state.starts_with("Failed ").then_some(state))
        })
        .unwrap();
    assert_eq!(terminated, "Failed OOMKilled 137", "{}", node.log_text());

    // The Guaranteed pod's own cgroup holds its limits, with its containers inside.
    let uid = node
        .wait_for("reader Running", Duration::from_secs(60), || {
            let state = node.kubectl(&[
                "get",
                "pod",
                "reader",
                "-o",
                "jsonpath={.status.phase} {.metadata.uid}",
            ])?;
            Ok(state.strip_prefix("Running ").map(str::to_owned))
        })
        .unwrap();
    let limit = pod_memory_limit(&format!("kubepods/pod{uid}"));
    assert_eq!(limit.as_deref(), Some("50331648"), "48Mi on pod{uid}");

    // A Secret env var and downward-API files carry the right values; a ConfigMap edit
    // reaches the mounted file.
    let read = |name: &str| std::fs::read_to_string(host_dir.join(name)).unwrap_or_default();
    node.wait_for("the reader's files", Duration::from_secs(30), || {
        Ok((read("greeting") == "hello").then_some(()))
    })
    .unwrap();
    assert_eq!(read("password"), "s3cret\n");
    assert_eq!(read("name"), "reader");
    assert_eq!(read("labels"), "app=\"reader\"");
    assert_eq!(read("memory"), "48");
    node.kubectl(&[
        "patch",
        "configmap",
        "app-config",
        "-p",
        r#"{"data":{"greeting":"changed"}}"#,
    ])
    .unwrap();
    node.wait_for("the edited greeting", Duration::from_secs(90), || {
        Ok((read("greeting") == "changed").then_some(()))
    })
    .unwrap();

    // A pod deleted while the node's kubelet is down is cleaned up once it is back: the
    // server runs without its agent, the pod is force-deleted, then the agent returns.
    let container = node
        .kubectl(&[
            "get",
            "pod",
            "reader",
            "-o",
            "jsonpath={.status.containerStatuses[0].containerID}",
        ])
        .unwrap();
    let container = container.strip_prefix("containerd://").unwrap().to_owned();
    assert!(node.runtime_containers().unwrap().contains(&container));
    node.kill9().unwrap();
    node.write_config("disable-agent: true\n").unwrap();
    node.spawn().unwrap();
    node.wait_api().unwrap();
    node.kubectl(&["delete", "pod", "reader", "--grace-period=0", "--force"])
        .unwrap();
    node.kill9().unwrap();
    node.write_config("").unwrap();
    node.spawn().unwrap();
    node.wait_ready().unwrap();
    node.wait_for(
        "the deleted pod's containers gone",
        Duration::from_secs(60),
        || Ok((!node.runtime_containers()?.contains(&container)).then_some(())),
    )
    .unwrap();
    node.wait_for(
        "the deleted pod's cgroup gone",
        Duration::from_secs(30),
        || {
            Ok(pod_memory_limit(&format!("kubepods/pod{uid}"))
                .is_none()
                .then_some(()))
        },
    )
    .unwrap();
}
