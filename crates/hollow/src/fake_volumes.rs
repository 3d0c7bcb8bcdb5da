//! [`FakeVolumes`]: the kubelet's [`VolumeManager`] for hollow nodes, kubemark's fake mounters.
//! Nothing is written, fetched or mounted: each volume of a pod gets a made-up path under
//! `/hollow/<node>/pods/<uid>` (never created), and what was set up is recorded so tests can
//! see it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use k3rs_kubelet::volumes::{
    ContainerMountError, ContainerMountOptions, MountedVolume, PodVolumes, VolumeError, VolumeKind,
    VolumeManager,
};
use k8s_cri::v1::Mount;
use k8s_openapi::api::core::v1::{Container, Pod, Volume};

/// Where containers see the pod's hosts file.
const ETC_HOSTS: &str = "/etc/hosts";

/// The volumes of one hollow node.
#[derive(Debug)]
pub(crate) struct FakeVolumes {
    /// `/hollow/<node>/pods`.
    pods_dir: PathBuf,
    /// The volume names set up for each pod uid.
    set_up: Mutex<HashMap<String, Vec<String>>>,
}

/// The kind of a volume, as the real volume code would treat it; `None` for a kind it has no
/// plugin for.
fn kind_of(volume: &Volume) -> Option<(VolumeKind, &'static str, bool)> {
    let found = if volume.empty_dir.is_some() {
        (VolumeKind::EmptyDir, "kubernetes.io~empty-dir", false)
    } else if volume.host_path.is_some() {
        (VolumeKind::HostPath, "kubernetes.io~host-path", false)
    } else if volume.config_map.is_some() {
        (VolumeKind::ConfigMap, "kubernetes.io~configmap", true)
    } else if volume.secret.is_some() {
        (VolumeKind::Secret, "kubernetes.io~secret", true)
    } else if volume.downward_api.is_some() {
        (VolumeKind::DownwardApi, "kubernetes.io~downward-api", true)
    } else if volume.projected.is_some() {
        (VolumeKind::Projected, "kubernetes.io~projected", true)
    } else if volume.persistent_volume_claim.is_some() || volume.ephemeral.is_some() {
        (VolumeKind::Claim, "kubernetes.io~local-volume", false)
    } else {
        return None;
    };
    Some(found)
}

impl FakeVolumes {
    pub(crate) fn new(node: &str) -> Self {
        FakeVolumes {
            pods_dir: PathBuf::from("/hollow").join(node).join("pods"),
            set_up: Mutex::new(HashMap::new()),
        }
    }

    /// The volume names set up for the pod with `uid`, while it has them.
    #[cfg(test)]
    fn volumes_of(&self, uid: &str) -> Option<Vec<String>> {
        self.set_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .cloned()
    }
}

#[async_trait]
impl VolumeManager for FakeVolumes {
    async fn set_up(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_dir = self.pods_dir.join(&uid);
        let mut volumes = BTreeMap::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let Some((kind, plugin, read_only)) = kind_of(volume) else {
                tracing::debug!(volume = %volume.name, "hollow node: a volume kind with no plugin; skipped");
                continue;
            };
            let host_path = pod_dir.join("volumes").join(plugin).join(&volume.name);
            volumes.insert(
                volume.name.clone(),
                MountedVolume {
                    kind,
                    host_path,
                    read_only,
                },
            );
        }
        self.set_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid, volumes.keys().cloned().collect());
        Ok(PodVolumes::new(pod_dir, volumes))
    }

    fn write_etc_hosts(
        &self,
        pod: &Pod,
        _pod_ips: &[String],
        _cluster_domain: &str,
    ) -> Result<PathBuf, VolumeError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        Ok(self.pods_dir.join(uid).join("etc-hosts"))
    }

    fn container_mounts(
        &self,
        container: &Container,
        volumes: &PodVolumes,
        options: &ContainerMountOptions<'_>,
    ) -> Result<Vec<Mount>, ContainerMountError> {
        let mut mounts = Vec::new();
        for volume_mount in container.volume_mounts.iter().flatten() {
            let volume = volumes.get(&volume_mount.name).ok_or_else(|| {
                ContainerMountError::MissingVolume {
                    volume: volume_mount.name.clone(),
                    container: container.name.clone(),
                }
            })?;
            let host_path = match volume_mount.sub_path.as_deref() {
                Some(sub_path) if !sub_path.is_empty() => volume.host_path.join(sub_path),
                _ => volume.host_path.clone(),
            };
            mounts.push(Mount {
                container_path: volume_mount.mount_path.clone(),
                host_path: host_path.to_string_lossy().into_owned(),
                readonly: volume_mount.read_only == Some(true) || volume.read_only,
                ..Mount::default()
            });
        }
        let own_hosts = mounts.iter().any(|m| m.container_path == ETC_HOSTS);
        if let Some(hosts) = options.etc_hosts.filter(|_| !own_hosts) {
            mounts.push(Mount {
                container_path: ETC_HOSTS.to_owned(),
                host_path: hosts.to_string_lossy().into_owned(),
                ..Mount::default()
            });
        }
        Ok(mounts)
    }

    async fn tear_down(&self, pod_uid: &str) -> Result<(), VolumeError> {
        self.set_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pod_uid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn volumes_are_recorded_and_mounted_without_touching_the_disk() {
        let volumes = FakeVolumes::new("n1");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u1"},
            "spec": {
                "containers": [{
                    "name": "app",
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data", "subPath": "x"},
                        {"name": "config", "mountPath": "/config"},
                    ],
                }],
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "config", "configMap": {"name": "missing"}},
                ],
            },
        }))
        .unwrap();
        let set_up = volumes.set_up(&pod).await.unwrap();
        assert_eq!(
            volumes.volumes_of("u1"),
            Some(vec!["config".to_owned(), "data".to_owned()])
        );
        assert!(!set_up.pod_dir().exists());
        let hosts = volumes.write_etc_hosts(&pod, &[], "cluster.local").unwrap();
        assert!(!hosts.exists());
        let env = BTreeMap::new();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let mounts = volumes
            .container_mounts(
                container,
                &set_up,
                &ContainerMountOptions {
                    env: &env,
                    etc_hosts: Some(&hosts),
                    supports_recursive_read_only: false,
                },
            )
            .unwrap();
        let paths: Vec<(&str, &str, bool)> = mounts
            .iter()
            .map(|m| (m.container_path.as_str(), m.host_path.as_str(), m.readonly))
            .collect();
        assert_eq!(
            paths,
            [
                (
                    "/data",
                    "/hollow/n1/pods/u1/volumes/kubernetes.io~empty-dir/data/x",
                    false
                ),
                (
                    "/config",
                    "/hollow/n1/pods/u1/volumes/kubernetes.io~configmap/config",
                    true
                ),
                ("/etc/hosts", "/hollow/n1/pods/u1/etc-hosts", false),
            ]
        );
        volumes.tear_down("u1").await.unwrap();
        assert_eq!(volumes.volumes_of("u1"), None);
    }
}
