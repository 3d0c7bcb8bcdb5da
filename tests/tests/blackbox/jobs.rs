//! Jobs and CronJobs end to end with real kubectl, the controllers and hollow nodes: a Job runs
//! its completions `parallelism` at a time, completes, and goes after its TTL; a Job whose pods
//! fail stops after `backoffLimit` retries, through a server restart; an Indexed Job runs each
//! index once; a CronJob starts a Job at the minute boundary, records it and trims its history;
//! overlapping runs are skipped (Forbid) or replaced (Replace); bad schedules and time zones are
//! refused by the API.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::kube_support;

use std::time::Duration;

use k3rs_hollow::annotations::{EXIT_AFTER_SECONDS, EXIT_CODE};
use k3rs_tests::K3rsServer;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use kube_support::{hollow_cluster, kubectl, kubectl_with_input};

fn apply(server: &K3rsServer, manifest: &str) {
    let (ok, _, err) = kubectl_with_input(server, &["apply", "-f", "-"], manifest);
    assert!(
        ok,
        "kubectl apply: {err}\nserver log:\n{}",
        server.log_text()
    );
}

/// A pod template (indented for a Job spec) whose containers exit with `code` a second after
/// they start (the scheduler puts it on the namespace's hollow node).
fn template(code: u8) -> String {
    format!(
        r#"
    metadata:
      annotations: {{"{EXIT_AFTER_SECONDS}": "1", "{EXIT_CODE}": "{code}"}}
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: busybox}}]"#
    )
}

/// `kubectl wait --for=condition=<condition> job/<job>`.
fn wait_for(server: &K3rsServer, condition: &str, job: &str, namespace: &str, seconds: u32) {
    kubectl(
        server,
        &[
            "wait",
            &format!("--for=condition={condition}"),
            &format!("job/{job}"),
            "-n",
            namespace,
            &format!("--timeout={seconds}s"),
        ],
    );
}

/// Creates the Job `name` whose spec has `fields` (YAML lines) and pods from [`template`].
fn create_job(server: &K3rsServer, namespace: &str, name: &str, fields: &str, code: u8) {
    let fields: String = fields.lines().map(|l| format!("\n  {l}")).collect();
    apply(
        server,
        &format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
             spec:{fields}\n  template:{}\n",
            template(code)
        ),
    );
}

async fn job_pods(client: &Client, namespace: &str, job: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_its_completions_parallelism_at_a_time_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, _nodes) = hollow_cluster(&dir, "batch", 1).await;
    create_job(&server, "batch", "pi", "completions: 3\nparallelism: 2", 0);
    // Never more than two running at once, from the start until all three succeeded. (Pods
    // end a second after they start, so a look taken late may see a finished pod and its
    // successor: only unfinished pods count.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pods = job_pods(&client, "batch", "pi").await;
        let phase = |pod: &Pod| pod.status.as_ref().and_then(|s| s.phase.clone());
        let running = pods
            .iter()
            .filter(|p| !matches!(phase(p).as_deref(), Some("Succeeded" | "Failed")))
            .count();
        assert!(running <= 2, "{running} pods at once");
        let succeeded = pods
            .iter()
            .filter(|p| phase(p).as_deref() == Some("Succeeded"))
            .count();
        if succeeded == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not done: {pods:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(&server, "complete", "pi", "batch", 60);
    let job = Api::<Job>::namespaced(client.clone(), "batch")
        .get("pi")
        .await
        .unwrap();
    let status = job.status.unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.failed, None);
    assert_eq!(status.active, None);
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let pods = job_pods(&client, "batch", "pi").await;
    assert_eq!(pods.len(), 3, "one pod per completion");
    for pod in &pods {
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(
            labels["batch.kubernetes.io/controller-uid"],
            job.metadata.uid.clone().unwrap()
        );
    }
    let describe = kubectl(&server, &["describe", "job", "pi", "-n", "batch"]);
    assert!(describe.contains("Created pod: pi-"), "{describe}");
    assert!(describe.contains("Completed"), "{describe}");
    assert!(describe.contains("3 Succeeded / 0 Failed"), "{describe}");

    // A TTL after finishing deletes the Job, and its pods with it.
    kubectl(
        &server,
        &[
            "patch",
            "job",
            "pi",
            "-n",
            "batch",
            "--type=merge",
            "-p",
            r#"{"spec":{"ttlSecondsAfterFinished":1}}"#,
        ],
    );
    let jobs: Api<Job> = Api::namespaced(client.clone(), "batch");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while jobs.get_opt("pi").await.unwrap().is_some()
        || !job_pods(&client, "batch", "pi").await.is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the finished Job outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_stops_after_its_backoff_limit_through_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, client, _nodes) = hollow_cluster(&dir, "fail", 1).await;
    create_job(&server, "fail", "flaky", "backoffLimit: 1", 1);
    // Restart the server once the first pod failed: the back-off and the count come from the
    // pods, so the controller goes on where it was.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pods = job_pods(&client, "fail", "flaky").await;
        if pods
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failed pod");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::block_in_place(|| server.restart_on_same_port()).unwrap();
    wait_for(&server, "failed", "flaky", "fail", 90);
    let job = Api::<Job>::namespaced(client.clone(), "fail")
        .get("flaky")
        .await
        .unwrap();
    let status = job.status.unwrap();
    assert_eq!(status.failed, Some(2));
    let conditions = status.conditions.unwrap();
    let failed = conditions.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert!(conditions.iter().any(|c| c.type_ == "FailureTarget"));
    // Exactly backoffLimit + 1 tries, the second after the back-off.
    let pods = job_pods(&client, "fail", "flaky").await;
    assert_eq!(pods.len(), 2, "{pods:#?}");
    let describe = kubectl(&server, &["describe", "job", "flaky", "-n", "fail"]);
    assert!(describe.contains("BackoffLimitExceeded"), "{describe}");
    assert!(
        describe.contains("Job has reached the specified backoff limit"),
        "{describe}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_job_runs_each_index_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, _nodes) = hollow_cluster(&dir, "indexed", 1).await;
    create_job(
        &server,
        "indexed",
        "shard",
        "completions: 3\nparallelism: 3\ncompletionMode: Indexed",
        0,
    );
    wait_for(&server, "complete", "shard", "indexed", 60);
    let status = Api::<Job>::namespaced(client.clone(), "indexed")
        .get("shard")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(status.succeeded, Some(3));
    let pods = job_pods(&client, "indexed", "shard").await;
    let mut indexes: Vec<(String, String)> = pods
        .iter()
        .map(|p| {
            (
                p.metadata.annotations.as_ref().unwrap()
                    ["batch.kubernetes.io/job-completion-index"]
                    .clone(),
                p.spec.as_ref().unwrap().hostname.clone().unwrap(),
            )
        })
        .collect();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            ("0".to_owned(), "shard-0".to_owned()),
            ("1".to_owned(), "shard-1".to_owned()),
            ("2".to_owned(), "shard-2".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_starts_a_job_at_the_minute_and_keeps_its_history_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, _nodes) = hollow_cluster(&dir, "cron", 1).await;

    // The API refuses what the controller could not run.
    let bad = |schedule: &str, zone: &str| {
        format!(
            r#"
apiVersion: batch/v1
kind: CronJob
metadata: {{name: bad, namespace: cron}}
spec:
  schedule: "{schedule}"
  {zone}
  jobTemplate:
    spec:
      template:{}
"#,
            template(0).replace("\n    ", "\n        ")
        )
    };
    let (ok, _, err) = kubectl_with_input(&server, &["apply", "-f", "-"], &bad("61 * * * *", ""));
    assert!(!ok);
    assert!(
        err.contains("spec.schedule: Invalid value: \"61 * * * *\""),
        "{err}"
    );
    let (ok, _, err) = kubectl_with_input(
        &server,
        &["apply", "-f", "-"],
        &bad("* * * * *", "timeZone: Mars/Olympus"),
    );
    assert!(!ok);
    assert!(err.contains("spec.timeZone: Invalid value"), "{err}");

    // Every minute; finished Jobs are not kept, so the first one goes once it completed.
    apply(
        &server,
        &format!(
            r#"
apiVersion: batch/v1
kind: CronJob
metadata: {{name: tick, namespace: cron}}
spec:
  schedule: "* * * * *"
  timeZone: Europe/Paris
  successfulJobsHistoryLimit: 0
  jobTemplate:
    metadata:
      labels: {{app: tick}}
    spec:
      template:{}
"#,
            template(0).replace("\n    ", "\n        ")
        ),
    );
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "cron");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        let status = cronjobs
            .get("tick")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        if status.last_successful_time.is_some() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no successful run: {status:?}\nserver log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let scheduled = status.last_schedule_time.unwrap().0;
    assert_eq!(scheduled.as_second() % 60, 0, "on the minute: {scheduled}");
    let job_name = format!("tick-{}", scheduled.as_second() / 60);

    // The history limit of 0 removes the finished Job.
    let jobs: Api<Job> = Api::namespaced(client.clone(), "cron");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while jobs.get_opt(&job_name).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "{job_name} kept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let describe = kubectl(&server, &["describe", "cronjob", "tick", "-n", "cron"]);
    for expected in [
        format!("Created job {job_name}"),
        format!("Saw completed job: {job_name}, condition: Complete"),
        format!("Deleted job {job_name}"),
    ] {
        assert!(describe.contains(&expected), "{expected}:\n{describe}");
    }
}

/// The names of the Jobs in `namespace` labelled `app=<app>`, sorted.
async fn job_names(client: &Client, namespace: &str, app: &str) -> Vec<String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let mut names: Vec<String> = jobs
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|job| job.metadata.deletion_timestamp.is_none())
        .filter_map(|job| job.metadata.name)
        .collect();
    names.sort();
    names
}

/// Waits up to `seconds` for `check` to hold of the Jobs labelled `app=<app>`; returns them.
async fn wait_for_jobs(
    server: &K3rsServer,
    client: &Client,
    app: &str,
    seconds: u64,
    check: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let names = job_names(client, "overlap", app).await;
        if check(&names) {
            return names;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{app}: jobs {names:?}\nserver log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs whose Job never finishes meet the next schedule time: Forbid skips it (and says so),
/// Replace deletes the running Job and starts the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_policies_forbid_and_replace_overlapping_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client, _nodes) = hollow_cluster(&dir, "overlap", 1).await;
    let cronjob = |name: &str, policy: &str| {
        format!(
            r#"
apiVersion: batch/v1
kind: CronJob
metadata: {{name: {name}, namespace: overlap}}
spec:
  schedule: "* * * * *"
  concurrencyPolicy: {policy}
  jobTemplate:
    metadata:
      labels: {{app: {name}}}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: c, image: busybox}}]
"#
        )
    };
    apply(
        &server,
        &[cronjob("forbid", "Forbid"), cronjob("replace", "Replace")].join("---"),
    );
    let first = wait_for_jobs(&server, &client, "replace", 75, |jobs| jobs.len() == 1).await;
    let forbidden = wait_for_jobs(&server, &client, "forbid", 10, |jobs| jobs.len() == 1).await;
    // The next minute: Replace swaps its Job for a new one.
    let second = wait_for_jobs(&server, &client, "replace", 75, |jobs| {
        jobs.len() == 1 && jobs != first.as_slice()
    })
    .await;
    assert!(second[0] > first[0], "{second:?} after {first:?}");
    // Forbid kept its first Job and started none.
    kube_support::wait_for(&server, "Forbid's event", || {
        kubectl(&server, &["describe", "cronjob", "forbid", "-n", "overlap"])
            .contains("Not starting job because prior execution is running")
    })
    .await;
    assert_eq!(job_names(&client, "overlap", "forbid").await, forbidden);
    let replaced = kubectl(
        &server,
        &["describe", "cronjob", "replace", "-n", "overlap"],
    );
    assert!(
        replaced.contains(&format!("Deleted job {}", first[0])),
        "{replaced}"
    );
}
