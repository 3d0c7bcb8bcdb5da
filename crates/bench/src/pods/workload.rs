//! The k3rs side: bare pods created at once through the node's API, each timed from its create
//! being sent to the pod seen (by a watch) Running with its container running; then deleted and
//! waited for until the runtime holds nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use k3rs_containerd::CriClient;
use k3rs_tests::node::TestNode;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Api, Client, Config};
use tokio::sync::watch;

use super::Timing;

/// The namespace of the benchmark's pods.
const NAMESPACE: &str = "default";
/// The label on the benchmark's pods.
const LABEL: (&str, &str) = ("k3rs-bench", "pods");

/// A kube client for the node's kubeconfig.
pub(super) async fn client(kubeconfig: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("a client config from the node's kubeconfig")?;
    Client::try_from(config).context("a kube client")
}

/// A bare pod of the benchmark: busybox sleeping, the image already on the node, a short grace
/// period; `name` in `namespace`.
pub(super) fn pod(name: &str, namespace: &str) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL.0: LABEL.1}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "sleep",
                "image": super::IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": super::COMMAND,
            }],
        },
    }))?)
}

/// Whether the pod is Running with every container running.
fn is_running(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    status.phase.as_deref() == Some("Running")
        && !containers.is_empty()
        && containers
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

/// The node's API, for the benchmark's pods.
pub(super) struct Cluster {
    pods: Api<Pod>,
}

impl Cluster {
    /// Connects and waits for the namespace's `default` ServiceAccount (pods need it).
    pub(super) async fn connect(node: &TestNode) -> Result<Cluster> {
        let client = client(&node.kubeconfig).await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
        let deadline = Instant::now() + Duration::from_secs(60);
        while accounts.get_opt("default").await.ok().flatten().is_none() {
            if Instant::now() > deadline {
                bail!("no default ServiceAccount in namespace {NAMESPACE} after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Cluster {
            pods: Api::namespaced(client, NAMESPACE),
        })
    }

    /// Creates `count` pods at once; each pod's latency from its create sent to it seen
    /// running.
    pub(super) async fn start_pods(&self, count: usize, timeout: Duration) -> Result<Timing> {
        let seen = RunningWatch::start(self.pods.clone()).await?;
        let start = Instant::now();
        let mut creates = Vec::with_capacity(count);
        for index in 0..count {
            let api = self.pods.clone();
            let manifest = pod(&format!("pod-{count}-{index}"), NAMESPACE)?;
            creates.push(tokio::spawn(async move {
                let sent = Instant::now();
                api.create(&PostParams::default(), &manifest)
                    .await
                    .with_context(|| format!("creating pod {index}"))?;
                anyhow::Ok((format!("pod-{count}-{index}"), sent))
            }));
        }
        let mut sent = HashMap::with_capacity(count);
        for create in creates {
            let (name, at) = create.await.context("a create task panicked")??;
            sent.insert(name, at);
        }
        let running = seen.wait(&sent, start + timeout).await?;
        let mut timing = Timing::default();
        let mut last = start;
        for (name, at) in &sent {
            let done = running
                .get(name)
                .with_context(|| format!("pod {name} was not seen running"))?;
            timing.latency.push(done.saturating_duration_since(*at));
            last = last.max(*done);
        }
        timing.total = last - start;
        Ok(timing)
    }

    /// Deletes the benchmark's pods and waits until the API has none and the runtime holds no
    /// sandbox or container.
    pub(super) async fn delete_pods(&self, cri: &CriClient, timeout: Duration) -> Result<()> {
        let selector = ListParams::default().labels(&format!("{}={}", LABEL.0, LABEL.1));
        let params = DeleteParams {
            grace_period_seconds: Some(1),
            ..DeleteParams::default()
        };
        let names: Vec<String> = self
            .pods
            .list(&selector)
            .await
            .context("listing the pods")?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        futures::stream::iter(names)
            .map(|name| {
                let api = self.pods.clone();
                let params = params.clone();
                async move { api.delete(&name, &params).await.map(|_| ()) }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .context("deleting the pods")?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.pods.list(&selector).await?.items.len();
            let (sandboxes, containers) = runtime_objects(cri).await?;
            if left == 0 && sandboxes == 0 && containers == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "after {timeout:?}: {left} pods in the API, {sandboxes} sandboxes and \
                     {containers} containers in the runtime"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// How many sandboxes and containers the runtime holds.
pub(super) async fn runtime_objects(cri: &CriClient) -> Result<(usize, usize)> {
    let sandboxes = cri
        .runtime()
        .list_pod_sandbox(k8s_cri::v1::ListPodSandboxRequest::default())
        .await
        .map_err(|status| cri.call_error("ListPodSandbox", status))?
        .into_inner()
        .items
        .len();
    let containers = cri
        .runtime()
        .list_containers(k8s_cri::v1::ListContainersRequest::default())
        .await
        .map_err(|status| cri.call_error("ListContainers", status))?
        .into_inner()
        .containers
        .len();
    Ok((sandboxes, containers))
}

/// A watch of the benchmark's pods recording when each was first seen running.
struct RunningWatch {
    running: Arc<Mutex<HashMap<String, Instant>>>,
    count: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningWatch {
    fn drop(&mut self) {
        // Also when the round is abandoned (an error, Ctrl-C).
        self.task.abort();
    }
}

impl RunningWatch {
    /// Starts the watch and waits until its initial list is done.
    async fn start(api: Api<Pod>) -> Result<RunningWatch> {
        let running = Arc::new(Mutex::new(HashMap::new()));
        let (count_tx, count) = watch::channel(0);
        let (listed_tx, listed) = tokio::sync::oneshot::channel();
        let task = {
            let running = Arc::clone(&running);
            tokio::spawn(async move {
                let config = watcher::Config::default().labels(&format!("{}={}", LABEL.0, LABEL.1));
                let mut events = watcher(api, config).boxed();
                let mut listed_tx = Some(listed_tx);
                while let Some(event) = events.next().await {
                    let pod = match event {
                        Ok(Event::Apply(pod) | Event::InitApply(pod)) => pod,
                        Ok(Event::InitDone) => {
                            if let Some(tx) = listed_tx.take() {
                                let _ = tx.send(());
                            }
                            continue;
                        }
                        Ok(_) => continue,
                        Err(err) => {
                            eprintln!("pods: pod watch: {err} (retrying)");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let now = Instant::now();
                    if !is_running(&pod) {
                        continue;
                    }
                    let Some(name) = pod.metadata.name else {
                        continue;
                    };
                    let count = {
                        let mut seen = running.lock().unwrap_or_else(PoisonError::into_inner);
                        seen.entry(name).or_insert(now);
                        seen.len()
                    };
                    // Not under the lock: the waiter's check takes it while holding the
                    // channel's.
                    let _ = count_tx.send(count);
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(30), listed)
            .await
            .context("the pod watch did not list within 30 s")?
            .context("the pod watch ended")?;
        Ok(RunningWatch {
            running,
            count,
            task,
        })
    }

    /// Waits until every pod of `sent` has been seen running; when each was.
    async fn wait(
        self,
        sent: &HashMap<String, Instant>,
        deadline: Instant,
    ) -> Result<HashMap<String, Instant>> {
        let mut count = self.count.clone();
        let all = {
            let running = Arc::clone(&self.running);
            move |_: &usize| {
                let seen = running.lock().unwrap_or_else(PoisonError::into_inner);
                sent.keys().all(|name| seen.contains_key(name))
            }
        };
        let reached = tokio::time::timeout_at(deadline.into(), count.wait_for(all))
            .await
            .map(|changed| changed.map(|_| ()));
        self.task.abort();
        let seen = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match reached {
            Ok(Ok(())) => Ok(seen),
            Ok(Err(_)) => bail!("the pod watch ended"),
            Err(_) => bail!(
                "only {} of {} pods running before the deadline",
                sent.keys().filter(|n| seen.contains_key(*n)).count(),
                sent.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(status: serde_json::Value) -> Pod {
        let mut pod = pod("p", "default").unwrap();
        pod.status = Some(serde_json::from_value(status).unwrap());
        pod
    }

    #[test]
    fn running_means_the_phase_and_every_container() {
        assert!(!is_running(&pod("p", "default").unwrap()));
        assert!(is_running(&with_status(serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{"name": "sleep", "image": "i", "imageID": "", "ready": true,
                "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}],
        }))));
        assert!(!is_running(&with_status(serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{"name": "sleep", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}],
        }))));
        assert!(!is_running(&with_status(
            serde_json::json!({"phase": "Pending"})
        )));
        assert!(!is_running(&with_status(
            serde_json::json!({"phase": "Running"})
        )));
    }

    #[test]
    fn the_pod_is_the_issue_s() {
        let pod = pod("p", "ns").unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.termination_grace_period_seconds, Some(1));
        let container = &spec.containers[0];
        assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            container.command.as_deref(),
            Some(&["sleep".to_owned(), "3600".to_owned()][..])
        );
    }
}
