//! The CRI floor: the same pods as the k3rs side, created directly on the node's containerd
//! (RunPodSandbox, CreateContainer, StartContainer, as the kubelet calls them and with the
//! configurations the kubelet's own functions build), each timed from RunPodSandbox sent to
//! StartContainer returned. Their labels leave out the `io.kubernetes.pod.*` keys so the
//! kubelet's relist does not take them for pods the API lacks and remove them mid-round.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use k3rs_containerd::CriClient;
use k3rs_kubelet::cgroups::{CgroupDriver, QosClass};
use k3rs_kubelet::container_config::{container_config, ImageUser, RunSettings};
use k3rs_kubelet::sandbox_config::{pod_log_dir, sandbox_config, HostDns, NodeSettings};
use k3rs_tests::node::{cgroup_mounts, TestNode};
use k8s_cri::v1 as cri;
use rand::Rng as _;

use super::workload::runtime_objects;
use super::Timing;

/// The namespace the floor's pods claim in their sandbox metadata.
const NAMESPACE: &str = "k3rs-bench-floor";
/// The label that marks the floor's sandboxes and containers.
const LABEL: (&str, &str) = ("k3rs-bench", "floor");

/// The floor on one node's containerd.
pub(super) struct Floor<'a> {
    cri: CriClient,
    settings: NodeSettings,
    cgroups: &'a Cgroups,
}

/// One pod's configurations.
struct Planned {
    sandbox: cri::PodSandboxConfig,
    container: cri::ContainerConfig,
}

impl<'a> Floor<'a> {
    /// The node settings the node's kubelet uses (its cgroup driver, cluster DNS and pod log
    /// directory under the data dir).
    pub(super) fn new(node: &TestNode, cri: CriClient, cgroups: &'a Cgroups) -> Result<Floor<'a>> {
        let host = k3rs_containerd::HostFacts::detect().context("reading the host's cgroups")?;
        let cgroup_driver = match host.cgroup_driver() {
            k3rs_containerd::CgroupDriver::Systemd => CgroupDriver::Systemd,
            k3rs_containerd::CgroupDriver::Cgroupfs => CgroupDriver::Cgroupfs,
        };
        let host_dns = std::fs::read_to_string("/etc/resolv.conf")
            .map(|text| HostDns::parse(&text))
            .unwrap_or_default();
        Ok(Floor {
            cri,
            settings: NodeSettings {
                node_name: node.name.clone(),
                cluster_dns: vec![std::net::IpAddr::from([10, 43, 0, 10])],
                cluster_domain: "cluster.local".to_owned(),
                host_dns,
                pod_logs_dir: node.data_dir.join("agent").join("pod-logs"),
                cgroup_driver,
            },
            cgroups,
        })
    }

    /// The image's id, as the kubelet resolves it before creating a container.
    async fn image_ref(&self) -> Result<String> {
        let status = self
            .cri
            .images()
            .image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: super::IMAGE.to_owned(),
                    ..cri::ImageSpec::default()
                }),
                verbose: false,
            })
            .await
            .map_err(|status| self.cri.call_error("ImageStatus", status))?
            .into_inner();
        match status.image {
            Some(image) => Ok(image.id),
            None => bail!("{} is not on the node", super::IMAGE),
        }
    }

    fn plan(&self, name: &str, image_ref: &str) -> Result<Planned> {
        let mut pod = super::workload::pod(name, NAMESPACE)?;
        let uid = random_uid();
        pod.metadata.uid = Some(uid.clone());
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .cloned()
            .context("the pod has no container")?;
        let mut sandbox = sandbox_config(&pod, 0, &self.settings, QosClass::BestEffort);
        unlabel(&mut sandbox.labels);
        let env = BTreeMap::new();
        let user = ImageUser::default();
        let mut container = container_config(
            &pod,
            &container,
            RunSettings {
                restart_count: 0,
                image_ref,
                image_user: &user,
                env: &env,
                mounts: Vec::new(),
                qos: QosClass::BestEffort,
                node_memory: 0,
            },
        )?;
        unlabel(&mut container.labels);
        // The kubelet makes the pod's log directory before its sandbox.
        let logs = pod_log_dir(&self.settings.pod_logs_dir, &pod);
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        self.cgroups.add(&uid, self.settings.cgroup_driver);
        Ok(Planned { sandbox, container })
    }

    /// Starts `count` pods at once; each one's latency from RunPodSandbox sent to
    /// StartContainer returned.
    pub(super) async fn round(&self, count: usize, timeout: Duration) -> Result<Timing> {
        let image_ref = self.image_ref().await?;
        let planned: Vec<Planned> = (0..count)
            .map(|index| self.plan(&format!("floor-{count}-{index}"), &image_ref))
            .collect::<Result<_>>()?;
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        for Planned { sandbox, container } in planned {
            let cri = self.cri.clone();
            tasks.push(tokio::spawn(async move {
                let begin = Instant::now();
                let sandbox_id = cri
                    .runtime()
                    .run_pod_sandbox(cri::RunPodSandboxRequest {
                        config: Some(sandbox.clone()),
                        runtime_handler: String::new(),
                    })
                    .await
                    .map_err(|status| cri.call_error("RunPodSandbox", status))?
                    .into_inner()
                    .pod_sandbox_id;
                let container_id = cri
                    .runtime()
                    .create_container(cri::CreateContainerRequest {
                        pod_sandbox_id: sandbox_id,
                        config: Some(container),
                        sandbox_config: Some(sandbox),
                    })
                    .await
                    .map_err(|status| cri.call_error("CreateContainer", status))?
                    .into_inner()
                    .container_id;
                cri.runtime()
                    .start_container(cri::StartContainerRequest { container_id })
                    .await
                    .map_err(|status| cri.call_error("StartContainer", status))?;
                anyhow::Ok((begin.elapsed(), Instant::now()))
            }));
        }
        let mut timing = Timing::default();
        let mut last = start;
        let joined = tokio::time::timeout(timeout, futures::future::join_all(tasks))
            .await
            .with_context(|| format!("{count} floor pods not started within {timeout:?}"))?;
        for task in joined {
            let (took, done) = task.context("a floor task panicked")??;
            timing.latency.push(took);
            last = last.max(done);
        }
        timing.total = last - start;
        Ok(timing)
    }

    /// Stops and removes every floor sandbox (their containers go with them) and waits until
    /// the runtime holds nothing; then removes their pod cgroups.
    pub(super) async fn remove_all(&self) -> Result<()> {
        let sandboxes = self
            .cri
            .runtime()
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(cri::PodSandboxFilter {
                    label_selector: HashMap::from([(LABEL.0.to_owned(), LABEL.1.to_owned())]),
                    ..cri::PodSandboxFilter::default()
                }),
            })
            .await
            .map_err(|status| self.cri.call_error("ListPodSandbox", status))?
            .into_inner()
            .items;
        let results: Vec<Result<()>> = futures::stream::iter(sandboxes)
            .map(|sandbox| {
                let cri = self.cri.clone();
                async move {
                    cri.runtime()
                        .stop_pod_sandbox(cri::StopPodSandboxRequest {
                            pod_sandbox_id: sandbox.id.clone(),
                        })
                        .await
                        .map_err(|status| cri.call_error("StopPodSandbox", status))?;
                    cri.runtime()
                        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                            pod_sandbox_id: sandbox.id,
                        })
                        .await
                        .map_err(|status| cri.call_error("RemovePodSandbox", status))?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>>>()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (sandboxes, containers) = runtime_objects(&self.cri).await?;
            if sandboxes == 0 && containers == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("{sandboxes} sandboxes and {containers} containers left after the floor's removal");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.cgroups.remove(false);
        Ok(())
    }
}

/// Drops the labels the kubelet finds its pods' sandboxes and containers by, and marks the
/// floor's own.
fn unlabel(labels: &mut HashMap<String, String>) {
    labels.retain(|key, _| !key.starts_with("io.kubernetes."));
    labels.insert(LABEL.0.to_owned(), LABEL.1.to_owned());
}

/// A random pod uid in the API server's format.
fn random_uid() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The pod cgroups of the floor's pods (runc makes them as their parent; nobody else removes
/// them): removed after each round and, with the QoS tiers when empty, when dropped.
#[derive(Debug, Default)]
pub(super) struct Cgroups {
    /// Relative to each hierarchy's mount point (cgroupfs driver only: systemd removes its
    /// slices itself).
    dirs: Mutex<Vec<PathBuf>>,
}

impl Cgroups {
    fn add(&self, uid: &str, driver: CgroupDriver) {
        if driver == CgroupDriver::Cgroupfs {
            let dir = driver.pod_cgroup(QosClass::BestEffort, uid);
            self.dirs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(PathBuf::from(dir.trim_start_matches('/')));
        }
    }

    /// Removes the pods' cgroups (empty once their containers are gone); with `tiers`, also
    /// `kubepods/besteffort` and `kubepods` when nothing else is in them.
    pub(super) fn remove(&self, tiers: bool) {
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        let mounts = cgroup_mounts();
        dirs.retain(|dir| {
            let mut left = false;
            for mount in &mounts {
                let path = mount.join(dir);
                if path.exists() && std::fs::remove_dir(&path).is_err() {
                    left = true;
                }
            }
            left
        });
        if tiers {
            for mount in &mounts {
                let _ = std::fs::remove_dir(mount.join("kubepods").join("besteffort"));
                let _ = std::fs::remove_dir(mount.join("kubepods").join("burstable"));
                let _ = std::fs::remove_dir(mount.join("kubepods"));
            }
        }
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        self.remove(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_s_labels_are_not_the_kubelet_s() {
        let mut labels = HashMap::from([
            ("io.kubernetes.pod.uid".to_owned(), "u".to_owned()),
            ("io.kubernetes.pod.name".to_owned(), "n".to_owned()),
            ("io.kubernetes.container.name".to_owned(), "c".to_owned()),
            ("k3rs-bench".to_owned(), "pods".to_owned()),
        ]);
        unlabel(&mut labels);
        assert_eq!(
            labels,
            HashMap::from([("k3rs-bench".to_owned(), "floor".to_owned())])
        );
    }

    #[test]
    fn uids_look_like_the_api_server_s() {
        let uid = random_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(
            uid.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert_ne!(uid, random_uid());
    }
}
