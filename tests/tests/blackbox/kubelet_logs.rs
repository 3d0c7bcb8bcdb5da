//! Container logs end to end: `kubectl logs` (1.33 and 1.37) through the API server's
//! `pods/log` to the kubelet's `:10250` server on a real node (containerd, runc), and that
//! server's authentication and authorization.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use k3rs_tests::kubectls;
use k3rs_tests::node::{missing_capability, TestNode};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  containers:
  - name: counter
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo line-$i; done; exec sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  containers:
  - name: a
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "echo from-a; exec sleep 3600"]
  - name: b
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "echo from-b >&2; exec sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  volumes:
  - name: state
    emptyDir: {}
  containers:
  - name: crash
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; echo run-$n; exit 1"]
    volumeMounts:
    - {name: state, mountPath: /state}
"#;

/// Writes about 6 KB/s, so that a 4 KiB log limit rotates its log every 10 s.
const CHATTY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  containers:
  - name: chatty
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo chatty-$i-padding-padding-padding-padding; if [ $((i % 100)) = 0 ]; then sleep 1; fi; done"]
"#;

/// Two ways to leave a termination message.
const TERMINATED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: wrote-message}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "echo -n written-message > /dev/termination-log; echo ignored"]
---
apiVersion: v1
kind: Pod
metadata: {name: logs-message}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: k3rs/busybox:1.35.0
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo last-words; exit 3"]
"#;

/// Prints a line, waits, prints another and exits: the follower must see the first long
/// before the second, and end by itself.
const FOLLOWED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: followed}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: k3rs/busybox:1.35.0
    command: ["sh", "-c", "echo begin; sleep 12; echo after; sleep 1; echo end"]
"#;

fn kubectl(bin: &Path, node: &TestNode, args: &[&str]) -> Result<(bool, String, String)> {
    let output = Command::new(bin)
        .arg("--kubeconfig")
        .arg(&node.kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running kubectl {args:?}"))?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

fn ok(bin: &Path, node: &TestNode, args: &[&str]) -> Result<String> {
    let (success, stdout, stderr) = kubectl(bin, node, args)?;
    anyhow::ensure!(success, "kubectl {args:?} failed: {stderr}");
    Ok(stdout)
}

fn fails(bin: &Path, node: &TestNode, args: &[&str]) -> Result<String> {
    let (success, stdout, stderr) = kubectl(bin, node, args)?;
    anyhow::ensure!(!success, "kubectl {args:?} succeeded: {stdout}");
    Ok(stderr)
}

fn field(node: &TestNode, pod: &str, path: &str) -> String {
    node.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{path}}}")])
        .unwrap_or_default()
}

/// `curl` to the kubelet: the status code and body.
fn kubelet_get(node: &TestNode, path: &str, credentials: &[&str]) -> Result<(u16, String)> {
    let tls = node.data_dir.join("server").join("tls");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(tls.join("server-ca.crt"))
        .args(credentials)
        .arg(format!("https://{}:10250{path}", node.node_ip))
        .output()
        .context("running curl")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').context("no status from curl")?;
    Ok((code.trim().parse()?, body.to_owned()))
}

fn admin_cert(node: &TestNode) -> (PathBuf, PathBuf) {
    let tls = node.data_dir.join("server").join("tls");
    (tls.join("client-admin.crt"), tls.join("client-admin.key"))
}

#[test]
fn kubectl_logs_through_the_kubelet_server() {
    if let Some(why) = missing_capability() {
        eprintln!("skipping: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with_args(
        dir.path(),
        &["busybox"],
        &[
            "--kubelet-arg",
            "container-log-max-size=4Ki",
            "--kubelet-arg",
            "container-log-max-files=3",
        ],
    )
    .expect("starting the node");
    node.apply(PODS).unwrap();
    node.apply(CHATTY).unwrap();
    node.apply(TERMINATED).unwrap();
    node.wait_for("counter and two Running", Duration::from_secs(120), || {
        Ok((field(&node, "counter", ".status.phase") == "Running"
            && field(&node, "two", ".status.phase") == "Running")
            .then_some(()))
    })
    .unwrap();
    node.wait_for("crash restarted", Duration::from_secs(120), || {
        let restarts: u32 = field(&node, "crash", ".status.containerStatuses[0].restartCount")
            .parse()
            .unwrap_or(0);
        Ok((restarts >= 1).then_some(()))
    })
    .unwrap();

    for kubectl in kubectls() {
        let bin = kubectl.bin.as_path();
        let version = kubectl.version;
        let all = ok(bin, &node, &["logs", "counter"]).unwrap();
        assert_eq!(
            all, "line-1\nline-2\nline-3\nline-4\nline-5\n",
            "kubectl {version}"
        );
        assert_eq!(
            ok(bin, &node, &["logs", "counter", "--tail=2"]).unwrap(),
            "line-4\nline-5\n",
            "kubectl {version}"
        );
        assert_eq!(
            ok(bin, &node, &["logs", "counter", "--since=1h"]).unwrap(),
            all
        );
        assert_eq!(
            ok(bin, &node, &["logs", "counter", "--limit-bytes=9"]).unwrap(),
            "line-1\nli"
        );
        let stamped = ok(bin, &node, &["logs", "counter", "--timestamps"]).unwrap();
        for (line, expected) in stamped.lines().zip(all.lines()) {
            let (stamp, text) = line.split_once(' ').unwrap();
            assert_eq!(text, expected);
            assert!(
                stamp.len() >= 20 && stamp.as_bytes()[4] == b'-' && stamp.contains('T'),
                "kubectl {version}: {line:?} has no RFC 3339 timestamp"
            );
        }
        assert_eq!(
            ok(bin, &node, &["logs", "two", "-c", "b"]).unwrap(),
            "from-b\n"
        );
        let both = ok(bin, &node, &["logs", "two", "--all-containers"]).unwrap();
        assert!(
            both.contains("from-a\n") && both.contains("from-b\n"),
            "kubectl {version}: {both:?}"
        );
        let previous = ok(bin, &node, &["logs", "crash", "--previous"]).unwrap();
        assert!(
            previous.starts_with("run-") && previous.lines().count() == 1,
            "kubectl {version}: {previous:?}"
        );
        let err = fails(bin, &node, &["logs", "counter", "--previous"]).unwrap();
        assert!(
            err.contains(r#"previous terminated container "counter" in pod "counter" not found"#),
            "kubectl {version}: {err}"
        );
        let err = fails(bin, &node, &["logs", "two", "-c", "nope"]).unwrap();
        assert!(
            err.contains("container nope is not valid for pod two"),
            "kubectl {version}: {err}"
        );
        let err = fails(
            bin,
            &node,
            &["get", "--raw", "/api/v1/namespaces/default/pods/two/log"],
        )
        .unwrap();
        assert!(
            err.contains("a container name must be specified for pod two, choose one of: [a b]"),
            "kubectl {version}: {err}"
        );
        let err = fails(bin, &node, &["logs", "missing"]).unwrap();
        assert!(
            err.contains(r#"pods "missing" not found"#),
            "kubectl {version}: {err}"
        );
    }

    // `logs -f` streams what the container writes while it runs, and ends when it exits: one
    // pod per kubectl release, followed at the same time.
    let releases = kubectls();
    for kubectl in &releases {
        node.apply(&FOLLOWED.replace(
            "name: followed}",
            &format!("name: {}}}", kubectl.named("followed")),
        ))
        .unwrap();
    }
    node.wait_for("followed pods Running", Duration::from_secs(60), || {
        Ok(releases
            .iter()
            .all(|k| field(&node, &k.named("followed"), ".status.phase") == "Running")
            .then_some(()))
    })
    .unwrap();
    let followers: Vec<_> = releases
        .iter()
        .map(|kubectl| {
            let mut child = Command::new(&kubectl.bin)
                .arg("--kubeconfig")
                .arg(&node.kubeconfig)
                .args(["logs", "-f", &kubectl.named("followed")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let version = kubectl.version;
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut seen = Vec::new();
                for line in BufReader::new(stdout).lines() {
                    seen.push((line.unwrap(), started.elapsed()));
                }
                // The stream ended: kubectl is exiting.
                let deadline = Instant::now() + Duration::from_secs(30);
                let status = loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        break Some(status);
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                };
                (version, seen, status)
            })
        })
        .collect();
    for follower in followers {
        let (version, seen, status) = follower.join().unwrap();
        let names: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(names, ["begin", "after", "end"], "kubectl {version}");
        assert!(
            seen[1].1 > seen[0].1 + Duration::from_secs(2),
            "kubectl {version}: \"begin\" came with \"after\" ({seen:?}): not streamed"
        );
        let status = status.unwrap_or_else(|| panic!("kubectl {version} logs -f did not end"));
        assert!(status.success(), "kubectl {version} logs -f: {status}");
    }

    // Rotation: the chatty container's log is rotated, older rotations gzipped and removed,
    // and a follower goes on across rotations.
    node.wait_for("chatty Running", Duration::from_secs(60), || {
        Ok((field(&node, "chatty", ".status.phase") == "Running").then_some(()))
    })
    .unwrap();
    let uid = field(&node, "chatty", ".metadata.uid");
    let log_dir = node
        .data_dir
        .join("agent")
        .join("pod-logs")
        .join(format!("default_chatty_{uid}"))
        .join("chatty");
    let mut follower = Command::new(kubectls()[1].bin.as_path())
        .arg("--kubeconfig")
        .arg(&node.kubeconfig)
        .args(["logs", "-f", "chatty"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut numbers = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.split('-').nth(1).and_then(|n| n.parse::<u64>().ok()) {
                numbers.push(n);
            }
        }
        numbers
    });
    let rotated_now = || -> Result<Vec<String>> {
        let rotated: Vec<String> = std::fs::read_dir(&log_dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("0.log."))
            .collect();
        // The current file and at most two rotated ones (max files 3).
        anyhow::ensure!(rotated.len() <= 2, "too many rotated files: {rotated:?}");
        Ok(rotated)
    };
    let stamps = |names: &[String]| -> std::collections::BTreeSet<String> {
        names
            .iter()
            .filter(|name| !name.ends_with(".tmp"))
            .map(|name| name.trim_end_matches(".gz").to_owned())
            .collect()
    };
    let before = stamps(&rotated_now().unwrap());
    let mut seen = std::collections::BTreeSet::new();
    let mut compressed = false;
    node.wait_for(
        "two rotations while followed",
        Duration::from_secs(90),
        || {
            let rotated = rotated_now()?;
            compressed |= rotated.iter().any(|name| name.ends_with(".gz"));
            seen.extend(stamps(&rotated).difference(&before).cloned());
            Ok((seen.len() >= 2 && compressed).then_some(()))
        },
    )
    .unwrap();
    // Just after a rotation the new file may still be empty.
    let newest: u64 = node
        .wait_for("the log's last line", Duration::from_secs(20), || {
            let tail = ok(
                kubectls()[0].bin.as_path(),
                &node,
                &["logs", "chatty", "--tail=1"],
            )?;
            let files: Vec<String> = std::fs::read_dir(&log_dir)?
                .filter_map(|e| e.ok())
                .map(|e| {
                    format!(
                        "{} {}",
                        e.file_name().to_string_lossy(),
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    )
                })
                .collect();
            let newest = tail.split('-').nth(1).and_then(|n| n.parse().ok());
            anyhow::ensure!(newest.is_some(), "tail {tail:?}, files {files:?}");
            Ok(newest)
        })
        .unwrap();
    // The follower keeps up: give it the moment it takes to read what came last.
    std::thread::sleep(Duration::from_secs(3));
    follower.kill().unwrap();
    follower.wait().unwrap();
    let numbers = reader.join().unwrap();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "the follower's lines are out of order or repeated"
    );
    assert!(
        numbers.last().copied().unwrap_or(0) >= newest,
        "the follower stopped at {:?} before the log's {newest}, across rotations {seen:?}",
        numbers.last()
    );

    // Termination messages: the file the container wrote, else its log's end on failure.
    for (pod, message) in [
        ("wrote-message", "written-message"),
        ("logs-message", "last-words\n"),
    ] {
        let found = node
            .wait_for(
                &format!("{pod} terminated"),
                Duration::from_secs(60),
                || {
                    let phase = field(&node, pod, ".status.phase");
                    Ok(matches!(phase.as_str(), "Succeeded" | "Failed").then(|| {
                        field(
                            &node,
                            pod,
                            ".status.containerStatuses[0].state.terminated.message",
                        )
                    }))
                },
            )
            .unwrap();
        assert_eq!(
            found,
            message,
            "{pod}: {}",
            node.kubectl(&["get", "pod", pod, "-o", "yaml"])
                .unwrap_or_default()
        );
    }

    // The kubelet's own server: nobody, a service account without rights, the admin.
    let (code, body) = kubelet_get(&node, "/pods", &[]).unwrap();
    assert_eq!((code, body.trim()), (401, "Unauthorized"));
    node.kubectl(&["create", "serviceaccount", "nobody"])
        .unwrap();
    let token = node
        .wait_for("a token for nobody", Duration::from_secs(30), || {
            Ok(node.kubectl(&["create", "token", "nobody"]).ok())
        })
        .unwrap();
    let bearer = format!("Authorization: Bearer {}", token.trim());
    let (code, body) = kubelet_get(&node, "/pods", &["-H", &bearer]).unwrap();
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body.trim(),
        format!(
            "Forbidden (user=system:serviceaccount:default:nobody, verb=get, resource=nodes, subresource=proxy)"
        )
    );
    let (code, _) = kubelet_get(
        &node,
        "/containerLogs/default/counter/counter",
        &["-H", &bearer],
    )
    .unwrap();
    assert_eq!(code, 403);
    let (cert, key) = admin_cert(&node);
    let admin = [
        "--cert".to_owned(),
        cert.display().to_string(),
        "--key".to_owned(),
        key.display().to_string(),
    ];
    let admin: Vec<&str> = admin.iter().map(String::as_str).collect();
    let (code, body) = kubelet_get(&node, "/pods", &admin).unwrap();
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PodList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"counter") && names.contains(&"two"),
        "{names:?}"
    );
    let (code, body) = kubelet_get(
        &node,
        "/containerLogs/default/counter/counter?tailLines=1",
        &admin,
    )
    .unwrap();
    assert_eq!((code, body.as_str()), (200, "line-5\n"));
    let (code, body) = kubelet_get(&node, "/containerLogs/default/nope/x", &admin).unwrap();
    assert_eq!((code, body.trim()), (404, r#"pod "nope" does not exist"#));
    // nodes/log: the node's /var/log, listed as Go's file server lists a directory.
    let (code, body) = kubelet_get(&node, "/logs/", &admin).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<pre>\n"), "{body}");
    let (code, body) = kubelet_get(&node, "/logs/", &["-H", &bearer]).unwrap();
    assert_eq!(
        (code, body.trim()),
        (
            403,
            "Forbidden (user=system:serviceaccount:default:nobody, verb=get, resource=nodes, subresource=log)"
        )
    );
    let (code, _) = kubelet_get(&node, "/logs/..%2f..%2fetc/passwd", &admin).unwrap();
    assert_eq!(code, 400);
    let (code, body) = kubelet_get(&node, "/healthz", &admin).unwrap();
    assert_eq!((code, body.trim()), (200, "ok"));

    // Resource statistics from CRI: the Summary of the node and its running pods, and the
    // Prometheus text metrics-server scrapes.
    let (code, body) = kubelet_get(&node, "/stats/summary", &admin).unwrap();
    assert_eq!(code, 200, "{body}");
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["node"]["nodeName"], node.name.as_str());
    assert!(
        summary["node"]["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0),
        "{body}"
    );
    assert!(
        summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{body}"
    );
    assert!(
        summary["node"]["fs"]["capacityBytes"].as_u64() > Some(0),
        "{body}"
    );
    let two = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "two")
        .unwrap_or_else(|| panic!("no pod two in {body}"));
    assert_eq!(two["podRef"]["namespace"], "default");
    let containers: Vec<&str> = two["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(containers, ["a", "b"], "{body}");
    assert!(
        two["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{body}"
    );
    let (code, body) = kubelet_get(&node, "/metrics/resource", &admin).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\nnode_cpu_usage_seconds_total "), "{body}");
    assert!(
        body.contains("container_memory_working_set_bytes{container=\"a\",namespace=\"default\",pod=\"two\"} "),
        "{body}"
    );
    assert!(
        body.contains("pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"two\"} "),
        "{body}"
    );
    let (code, body) = kubelet_get(&node, "/stats/summary", &["-H", &bearer]).unwrap();
    assert_eq!(
        (code, body.trim()),
        (
            403,
            "Forbidden (user=system:serviceaccount:default:nobody, verb=get, resource=nodes, subresource=stats)"
        )
    );
}
