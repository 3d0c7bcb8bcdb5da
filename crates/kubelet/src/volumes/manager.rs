//! [`VolumeManager`]: what a pod worker needs from the volume code — set a pod's volumes up,
//! write its hosts file, turn a container's volumeMounts into CRI mounts, tear it all down. The
//! real [`Volumes`] does it on the node's disk; hollow nodes put in one that writes nothing and
//! only records (kubemark's fake mounters), so the pod workers above it are the same.

use std::path::PathBuf;

use async_trait::async_trait;
use k8s_cri::v1::Mount;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::{
    container_mounts, ContainerMountError, ContainerMountOptions, PodVolumes, VolumeError, Volumes,
};

/// The volume side of a kubelet.
#[async_trait]
pub trait VolumeManager: Send + Sync + std::fmt::Debug + 'static {
    /// Prepares every volume of the pod; safe to call again.
    async fn set_up(&self, pod: &Pod) -> Result<PodVolumes, VolumeError>;
    /// Writes the pod's hosts file and returns its path on the node.
    fn write_etc_hosts(
        &self,
        pod: &Pod,
        pod_ips: &[String],
        cluster_domain: &str,
    ) -> Result<PathBuf, VolumeError>;
    /// The CRI mounts of one run of `container`.
    fn container_mounts(
        &self,
        container: &Container,
        volumes: &PodVolumes,
        options: &ContainerMountOptions<'_>,
    ) -> Result<Vec<Mount>, ContainerMountError>;
    /// Removes everything of the pod with `pod_uid`.
    async fn tear_down(&self, pod_uid: &str) -> Result<(), VolumeError>;
}

#[async_trait]
impl VolumeManager for Volumes {
    async fn set_up(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        Volumes::set_up(self, pod).await
    }

    fn write_etc_hosts(
        &self,
        pod: &Pod,
        pod_ips: &[String],
        cluster_domain: &str,
    ) -> Result<PathBuf, VolumeError> {
        Volumes::write_etc_hosts(self, pod, pod_ips, cluster_domain)
    }

    fn container_mounts(
        &self,
        container: &Container,
        volumes: &PodVolumes,
        options: &ContainerMountOptions<'_>,
    ) -> Result<Vec<Mount>, ContainerMountError> {
        container_mounts(container, volumes, options)
    }

    async fn tear_down(&self, pod_uid: &str) -> Result<(), VolumeError> {
        Volumes::tear_down(self, pod_uid).await
    }
}
