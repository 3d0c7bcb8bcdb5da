//! Pod volumes on the node, as upstream's kubelet volume plugins lay them out and fill them:
//! `<pods dir>/<pod uid>/volumes/<plugin>/<volume name>` for emptyDir, configMap, secret,
//! downwardAPI and projected volumes; hostPath and the `hostPath`/`local` volumes of claims are
//! used where they are. [`Volumes::set_up`] makes them before the pod's containers start,
//! [`Volumes::refresh`] keeps content volumes current on every sync, [`Volumes::tear_down`]
//! removes them when the pod is gone, and [`container_mounts`] turns a container's
//! volumeMounts into CRI mounts.
//!
//! **Invariants**
//! - Idempotent: setting up a pod's volumes again changes nothing that is already right, and
//!   content is rewritten (by the [atomic writer](atomic_writer)) only when it changed.
//! - The kubelet never writes into, chowns or removes a hostPath or a claim's volume; tear-down
//!   unmounts first and never follows a symlink or crosses a mount.
//! - Secret and projected volumes live on tmpfs, so their content never reaches the disk.

use crate::error::error_chain;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, ProjectedVolumeSource, Secret,
    ServiceAccount, Volume,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;

pub mod atomic_writer;
mod claim;
mod cleanup;
pub(crate) mod downward_api;
mod empty_dir;
mod host_path;
mod hosts;
mod manager;
mod mounts;
mod ownership;
mod payload;
mod sub_path;
mod token;

pub use atomic_writer::{AtomicWriteError, FileProjection, Payload, Written};
pub use claim::ClaimProblem;
pub use cleanup::CleanupError;
pub use downward_api::{DownwardApiError, NodeAllocatable};
pub use empty_dir::EmptyDirError;
pub use host_path::HostPathError;
pub use hosts::{pod_hostname_and_domain, HostnameError};
pub use manager::VolumeManager;
pub use mounts::{container_mounts, ContainerMountError, ContainerMountOptions};
pub use ownership::OwnershipError;
pub use payload::PayloadError;

/// Plugin directory names, as upstream escapes `kubernetes.io/<plugin>`.
pub const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";
pub const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
pub const SECRET_PLUGIN: &str = "kubernetes.io~secret";
pub const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";
pub const DOWNWARD_API_PLUGIN: &str = "kubernetes.io~downward-api";

/// The kinds of volume the kubelet sets up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeKind {
    EmptyDir,
    HostPath,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
    /// A persistentVolumeClaim or generic ephemeral volume, bound to a hostPath or local volume.
    Claim,
}

/// A volume ready to be mounted into containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountedVolume {
    pub kind: VolumeKind,
    /// Where the volume is on the node.
    pub host_path: PathBuf,
    /// Mounted read-only whatever the volumeMount says (content volumes, read-only claims).
    pub read_only: bool,
}

/// The volumes of one pod, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodVolumes {
    pod_dir: PathBuf,
    volumes: BTreeMap<String, MountedVolume>,
}

impl PodVolumes {
    /// The volumes of a pod whose directory is `pod_dir` (for a [`VolumeManager`] of its own).
    pub fn new(pod_dir: PathBuf, volumes: BTreeMap<String, MountedVolume>) -> Self {
        PodVolumes { pod_dir, volumes }
    }

    /// The volume called `name`.
    pub fn get(&self, name: &str) -> Option<&MountedVolume> {
        self.volumes.get(name)
    }

    /// The pod's directory, `<pods dir>/<uid>`.
    pub fn pod_dir(&self) -> &Path {
        &self.pod_dir
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &MountedVolume)> {
        self.volumes
            .iter()
            .map(|(name, volume)| (name.as_str(), volume))
    }
}

/// Why one volume could not be set up. The messages are upstream's where it has words for them.
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("getting {kind} \"{name}\"")]
    Get {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("requesting a token of service account {namespace}/{service_account}")]
    Token {
        namespace: String,
        service_account: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the token request of service account {namespace}/{service_account} returned no token"
    )]
    NoToken {
        namespace: String,
        service_account: String,
    },
    #[error("error processing PVC {namespace}/{claim}")]
    Claim {
        namespace: String,
        claim: String,
        #[source]
        problem: Box<ClaimProblem>,
    },
    #[error("k3rs does not support {0} volumes")]
    UnsupportedVolume(String),
    #[error("k3rs does not support {0} projections")]
    UnsupportedProjection(&'static str),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    DownwardApi(#[from] DownwardApiError),
    #[error(transparent)]
    HostPath(#[from] HostPathError),
    #[error(transparent)]
    EmptyDir(#[from] EmptyDirError),
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    /// Several sources of a projected volume failed: upstream's aggregate, `[first, second]`.
    #[error("[{}]", .0.iter().map(|e| error_chain(e)).collect::<Vec<_>>().join(", "))]
    Aggregate(Vec<SetUpError>),
}

/// What the volume code failed to do.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The pod cannot start until this is fixed; [`VolumeError::event_message`] gives the
    /// `FailedMount` event text.
    #[error("MountVolume.SetUp failed for volume \"{volume}\"")]
    SetUp {
        volume: String,
        #[source]
        source: Box<SetUpError>,
    },
    #[error("tearing down the volumes of pod {pod_uid}")]
    TearDown {
        pod_uid: String,
        #[source]
        source: CleanupError,
    },
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Hostname(#[from] HostnameError),
    #[error("{0:?} is not a pod uid")]
    InvalidPodUid(String),
}

impl VolumeError {
    /// The message of the event upstream's kubelet records for this error:
    /// `MountVolume.SetUp failed for volume "config" : configmap "app" not found`.
    pub fn event_message(&self) -> String {
        match self {
            VolumeError::SetUp { volume, source } => {
                format!(
                    "MountVolume.SetUp failed for volume \"{volume}\" : {}",
                    error_chain(source)
                )
            }
            other => error_chain(other),
        }
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The volume code of one kubelet.
pub struct Volumes {
    client: kube::Client,
    pods_dir: PathBuf,
    node_allocatable: NodeAllocatable,
    tokens: token::TokenCache,
}

impl fmt::Debug for Volumes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Volumes")
            .field("pods_dir", &self.pods_dir)
            .field("node_allocatable", &self.node_allocatable)
            .finish_non_exhaustive()
    }
}

/// How a volume's directory is backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Medium {
    Disk,
    Memory,
}

impl Volumes {
    /// Volumes under `pods_dir` (`<kubelet root>/pods`), reading objects and requesting tokens
    /// with `client`. `node_allocatable` sizes memory-backed volumes and stands in for a
    /// container's missing limits in the downward API.
    pub fn new(
        client: kube::Client,
        pods_dir: PathBuf,
        node_allocatable: NodeAllocatable,
    ) -> Volumes {
        Volumes {
            client,
            pods_dir,
            node_allocatable,
            tokens: token::TokenCache::default(),
        }
    }

    /// `<pods dir>/<uid>`.
    pub fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.pods_dir.join(pod_uid)
    }

    fn volume_dir(&self, pod_uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(pod_uid)
            .join("volumes")
            .join(plugin)
            .join(name)
    }

    fn checked_uid(pod: &Pod) -> Result<&str, VolumeError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        check_uid(uid)?;
        Ok(uid)
    }

    /// Prepares every volume of the pod; safe to call again. Stops at the first volume that
    /// fails, naming it.
    pub async fn set_up(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = Self::checked_uid(pod)?;
        let mut volumes = BTreeMap::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let mounted = self
                .set_up_volume(pod, uid, volume)
                .await
                .map_err(|source| VolumeError::SetUp {
                    volume: volume.name.clone(),
                    source: Box::new(source),
                })?;
            volumes.insert(volume.name.clone(), mounted);
        }
        Ok(PodVolumes {
            pod_dir: self.pod_dir(uid),
            volumes,
        })
    }

    /// Rewrites the content of the pod's configMap, secret, downwardAPI and projected volumes
    /// when their sources changed, and rotates service-account tokens near expiry. Volumes not
    /// set up yet are skipped; when nothing changed, the API reads are all it costs. As
    /// upstream, a subPath mount of such a volume keeps the content it started with.
    pub async fn refresh(&self, pod: &Pod) -> Result<(), VolumeError> {
        let uid = Self::checked_uid(pod)?;
        let mut first_error = None;
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let Some((plugin, _)) = content_plugin(volume) else {
                continue;
            };
            let dir = self.volume_dir(uid, plugin, &volume.name);
            if fs::symlink_metadata(dir.join(atomic_writer::DATA_DIR)).is_err() {
                continue;
            }
            if let Err(source) = self.write_content(pod, volume, &dir).await {
                let err = VolumeError::SetUp {
                    volume: volume.name.clone(),
                    source: Box::new(source),
                };
                tracing::warn!(pod = ?pod.metadata.name, error = %err.event_message(), "refreshing a volume");
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes the pod's directory: its volumes (unmounting tmpfs first), hosts file and
    /// termination-message files. Never follows a symlink or crosses into another mount.
    pub async fn tear_down(&self, pod_uid: &str) -> Result<(), VolumeError> {
        check_uid(pod_uid)?;
        let dir = self.pod_dir(pod_uid);
        let removed = tokio::task::spawn_blocking(move || cleanup::remove_pod_dir(&dir)).await;
        let result = match removed {
            Ok(result) => result,
            Err(join) => Err(CleanupError::Io {
                op: "removing",
                path: self.pod_dir(pod_uid),
                source: io::Error::other(join.to_string()),
            }),
        };
        result.map_err(|source| VolumeError::TearDown {
            pod_uid: pod_uid.to_owned(),
            source,
        })?;
        self.tokens.forget_pod(pod_uid);
        Ok(())
    }

    /// Uids of the pods that have a directory on disk (to clean up orphans after a restart).
    pub fn pods_on_disk(&self) -> Result<Vec<String>, VolumeError> {
        let entries = match fs::read_dir(&self.pods_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io_error("reading directory", &self.pods_dir)(err)),
        };
        let mut uids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("reading directory", &self.pods_dir))?;
            if entry
                .file_type()
                .map_err(io_error("reading file type of", &entry.path()))?
                .is_dir()
            {
                uids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        uids.sort();
        Ok(uids)
    }

    /// Writes the pod's hosts file, `<pod dir>/etc-hosts`, as upstream's kubelet does before
    /// starting each container, and returns its path for [`ContainerMountOptions::etc_hosts`].
    /// The file is rewritten in place (running containers see the same inode) and only when its
    /// content changes.
    pub fn write_etc_hosts(
        &self,
        pod: &Pod,
        pod_ips: &[String],
        cluster_domain: &str,
    ) -> Result<PathBuf, VolumeError> {
        let uid = Self::checked_uid(pod)?;
        let spec = pod.spec.as_ref();
        let aliases = spec
            .and_then(|s| s.host_aliases.as_deref())
            .unwrap_or_default();
        let content = if spec.and_then(|s| s.host_network) == Some(true) {
            let node_hosts = Path::new("/etc/hosts");
            let node = fs::read(node_hosts).map_err(io_error("reading", node_hosts))?;
            hosts::host_network_hosts_content(&node, aliases)
        } else {
            let (hostname, domain) = pod_hostname_and_domain(pod, cluster_domain)?;
            hosts::managed_hosts_content(pod_ips, &hostname, &domain, aliases).into_bytes()
        };
        let pod_dir = self.pod_dir(uid);
        fs::create_dir_all(&pod_dir).map_err(io_error("creating", &pod_dir))?;
        let path = pod_dir.join("etc-hosts");
        if fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            fs::write(&path, &content).map_err(io_error("writing", &path))?;
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .map_err(io_error("setting mode of", &path))?;
        Ok(path)
    }

    async fn set_up_volume(
        &self,
        pod: &Pod,
        uid: &str,
        volume: &Volume,
    ) -> Result<MountedVolume, SetUpError> {
        if let Some(empty_dir) = &volume.empty_dir {
            let dir = self.volume_dir(uid, EMPTY_DIR_PLUGIN, &volume.name);
            let medium = match empty_dir.medium.as_deref().unwrap_or_default() {
                "" => Medium::Disk,
                "Memory" => Medium::Memory,
                hugepages if hugepages.starts_with("HugePages") => {
                    return Err(SetUpError::UnsupportedVolume(format!(
                        "emptyDir medium {hugepages}"
                    )));
                }
                other => return Err(EmptyDirError::UnknownMedium(other.to_owned()).into()),
            };
            let ready = self
                .pod_dir(uid)
                .join("plugins")
                .join(EMPTY_DIR_PLUGIN)
                .join(&volume.name)
                .join("ready");
            self.set_up_dir(
                pod,
                &dir,
                medium,
                empty_dir.size_limit.as_ref(),
                Some(&ready),
            )?;
            return Ok(MountedVolume {
                kind: VolumeKind::EmptyDir,
                host_path: dir,
                read_only: false,
            });
        }
        if let Some(host_path) = &volume.host_path {
            host_path::check_type(&host_path.path, host_path.type_.as_deref())?;
            return Ok(MountedVolume {
                kind: VolumeKind::HostPath,
                host_path: PathBuf::from(&host_path.path),
                read_only: false,
            });
        }
        if let Some((plugin, kind)) = content_plugin(volume) {
            let dir = self.volume_dir(uid, plugin, &volume.name);
            // As upstream: secrets and projected volumes (tokens) on tmpfs, the others on disk.
            let medium = match kind {
                VolumeKind::Secret | VolumeKind::Projected => Medium::Memory,
                _ => Medium::Disk,
            };
            self.set_up_dir(pod, &dir, medium, None, None)?;
            self.write_content(pod, volume, &dir).await?;
            return Ok(MountedVolume {
                kind,
                host_path: dir,
                read_only: true,
            });
        }
        if let Some(claim) = &volume.persistent_volume_claim {
            return self
                .set_up_claim(pod, &claim.claim_name, claim.read_only == Some(true), false)
                .await;
        }
        if volume.ephemeral.is_some() {
            let claim_name = claim::ephemeral_claim_name(pod, &volume.name);
            return self.set_up_claim(pod, &claim_name, false, true).await;
        }
        Err(SetUpError::UnsupportedVolume(
            volume_kind_name(volume).to_owned(),
        ))
    }

    /// Makes a volume directory (a tmpfs for `Medium::Memory`) and gives it the pod's fsGroup
    /// once. `ready` marks a disk-backed directory as done, as upstream's emptyDir does.
    fn set_up_dir(
        &self,
        pod: &Pod,
        dir: &Path,
        medium: Medium,
        size_limit: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        ready: Option<&Path>,
    ) -> Result<(), SetUpError> {
        match medium {
            Medium::Disk => {
                // An emptyDir is done once marked ready; a content volume's directory once it
                // exists (the writer's ownership pass covers the rest).
                if ready.is_none_or(Path::exists) && dir.is_dir() {
                    return Ok(());
                }
                empty_dir::make_dir(dir, empty_dir::EMPTY_DIR_MODE)?;
            }
            Medium::Memory => {
                let node_memory = self
                    .node_allocatable
                    .get("memory")
                    .and_then(|q| k3rs_api::quantity::value(&q.0));
                let size = empty_dir::memory_size(pod, size_limit, node_memory);
                if !empty_dir::set_up_tmpfs(dir, size)? {
                    return Ok(());
                }
            }
        }
        if let Some(gid) = ownership::fs_group_of(pod).and_then(|g| u32::try_from(g).ok()) {
            ownership::apply_fs_group(dir, gid, false)?;
        }
        if let Some(ready) = ready {
            if let Some(parent) = ready.parent() {
                fs::create_dir_all(parent).map_err(|source| AtomicWriteError::Io {
                    op: "creating",
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            fs::write(ready, b"").map_err(|source| AtomicWriteError::Io {
                op: "writing",
                path: ready.to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }

    /// Builds a content volume's files and writes them if they changed; the fsGroup pass runs
    /// on the new version before it becomes visible.
    async fn write_content(
        &self,
        pod: &Pod,
        volume: &Volume,
        dir: &Path,
    ) -> Result<Written, SetUpError> {
        let payload = self.content_payload(pod, volume).await?;
        let fs_group = ownership::fs_group_of(pod).and_then(|g| u32::try_from(g).ok());
        let written = atomic_writer::write(dir, &payload, || match fs_group {
            Some(gid) => ownership::apply_fs_group(dir, gid, true).map_err(|err| {
                AtomicWriteError::Permissions {
                    path: dir.to_path_buf(),
                    source: Box::new(err),
                }
            }),
            None => Ok(()),
        })?;
        if written == Written::Updated {
            tracing::debug!(pod = ?pod.metadata.name, volume = %volume.name, "wrote volume content");
        }
        Ok(written)
    }

    async fn content_payload(&self, pod: &Pod, volume: &Volume) -> Result<Payload, SetUpError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(source) = &volume.config_map {
            let optional = source.optional == Some(true);
            let config_map = self.config_map(namespace, &source.name, optional).await?;
            let mode = source.default_mode.unwrap_or(payload::DEFAULT_MODE);
            return Ok(payload::config_map_payload(
                source.items.as_deref(),
                &config_map,
                mode,
                optional,
            )?);
        }
        if let Some(source) = &volume.secret {
            let optional = source.optional == Some(true);
            let name = source.secret_name.clone().unwrap_or_default();
            let secret = self.secret(namespace, &name, optional).await?;
            let mode = source.default_mode.unwrap_or(payload::DEFAULT_MODE);
            return Ok(payload::secret_payload(
                source.items.as_deref(),
                &secret,
                mode,
                optional,
            )?);
        }
        if let Some(source) = &volume.downward_api {
            let mode = source.default_mode.unwrap_or(payload::DEFAULT_MODE);
            let items = source.items.as_deref().unwrap_or_default();
            return Ok(downward_api::collect(
                items,
                pod,
                mode,
                &self.node_allocatable,
            )?);
        }
        if let Some(source) = &volume.projected {
            return self.projected_payload(pod, source).await;
        }
        Ok(Payload::new())
    }

    /// All sources of a projected volume in one payload; failures are collected, as upstream.
    async fn projected_payload(
        &self,
        pod: &Pod,
        source: &ProjectedVolumeSource,
    ) -> Result<Payload, SetUpError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let default_mode = source.default_mode.unwrap_or(payload::DEFAULT_MODE);
        let fs_user = ownership::fs_user_from(pod);
        let fs_group = ownership::fs_group_of(pod);
        let mut payload = Payload::new();
        let mut errors = Vec::new();
        for projection in source.sources.iter().flatten() {
            let part: Result<Payload, SetUpError> = if let Some(secret) = &projection.secret {
                let optional = secret.optional == Some(true);
                match self.secret(namespace, &secret.name, optional).await {
                    Ok(object) => payload::secret_payload(
                        secret.items.as_deref(),
                        &object,
                        default_mode,
                        optional,
                    )
                    .map_err(Into::into),
                    Err(err) => Err(err),
                }
            } else if let Some(config_map) = &projection.config_map {
                let optional = config_map.optional == Some(true);
                match self.config_map(namespace, &config_map.name, optional).await {
                    Ok(object) => payload::config_map_payload(
                        config_map.items.as_deref(),
                        &object,
                        default_mode,
                        optional,
                    )
                    .map_err(Into::into),
                    Err(err) => Err(err),
                }
            } else if let Some(downward) = &projection.downward_api {
                let items = downward.items.as_deref().unwrap_or_default();
                downward_api::collect(items, pod, default_mode, &self.node_allocatable)
                    .map_err(Into::into)
            } else if let Some(token) = &projection.service_account_token {
                self.service_account_token(pod, token).await.map(|data| {
                    let file = token::token_file(data, default_mode, fs_user, fs_group);
                    Payload::from([(token.path.clone(), file)])
                })
            } else if projection.cluster_trust_bundle.is_some() {
                Err(SetUpError::UnsupportedProjection("clusterTrustBundle"))
            } else if projection.pod_certificate.is_some() {
                Err(SetUpError::UnsupportedProjection("podCertificate"))
            } else {
                Ok(Payload::new())
            };
            match part {
                Ok(part) => payload.extend(part),
                Err(err) => errors.push(err),
            }
        }
        match errors.len() {
            0 => Ok(payload),
            1 => Err(errors.remove(0)),
            _ => Err(SetUpError::Aggregate(errors)),
        }
    }

    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
        optional: bool,
    ) -> Result<ConfigMap, SetUpError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(object)) => Ok(object),
            Ok(None) if optional => Ok(ConfigMap::default()),
            Ok(None) => Err(SetUpError::ConfigMapNotFound(name.to_owned())),
            Err(source) => Err(SetUpError::Get {
                kind: "configmap",
                name: name.to_owned(),
                source,
            }),
        }
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
        optional: bool,
    ) -> Result<Secret, SetUpError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(object)) => Ok(object),
            Ok(None) if optional => Ok(Secret::default()),
            Ok(None) => Err(SetUpError::SecretNotFound(name.to_owned())),
            Err(source) => Err(SetUpError::Get {
                kind: "secret",
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// The pod's token for a projection: the cached one while fresh, else a new one (the old
    /// one keeps serving, until it expires, if the request fails).
    async fn service_account_token(
        &self,
        pod: &Pod,
        projection: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
    ) -> Result<String, SetUpError> {
        let key = token::key_for(pod, projection);
        let now = Timestamp::now();
        if let Some(token) = self.tokens.fresh(&key, now) {
            return Ok(token);
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &key.namespace);
        let request = token::token_request(pod, projection);
        let response = match api
            .create_token_request(&key.service_account, &PostParams::default(), &request)
            .await
        {
            Ok(response) => response,
            Err(source) => {
                if let Some(token) = self.tokens.unexpired(&key, now) {
                    tracing::warn!(error = %error_chain(&source), service_account = %key.service_account, "token refresh failed; keeping the current token");
                    return Ok(token);
                }
                return Err(SetUpError::Token {
                    namespace: key.namespace.clone(),
                    service_account: key.service_account.clone(),
                    source,
                });
            }
        };
        let no_token = || SetUpError::NoToken {
            namespace: key.namespace.clone(),
            service_account: key.service_account.clone(),
        };
        let status = response.status.ok_or_else(no_token)?;
        let token = status
            .token
            .filter(|t| !t.is_empty())
            .ok_or_else(no_token)?;
        let expiration_seconds = response
            .spec
            .and_then(|s| s.expiration_seconds)
            .unwrap_or(key.expiration_seconds);
        match status.expiration_timestamp {
            Some(expiration) => self.tokens.insert(
                key.clone(),
                token::CachedToken {
                    token: token.clone(),
                    expiration: expiration.0,
                    expiration_seconds,
                },
            ),
            None => {
                tracing::warn!(service_account = %key.service_account, "token request returned no expiration; not caching it")
            }
        }
        Ok(token)
    }

    async fn set_up_claim(
        &self,
        pod: &Pod,
        claim_name: &str,
        read_only: bool,
        ephemeral: bool,
    ) -> Result<MountedVolume, SetUpError> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let problem = |problem: ClaimProblem| SetUpError::Claim {
            namespace: namespace.clone(),
            claim: claim_name.to_owned(),
            problem: Box::new(problem),
        };
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        let claim = match claims.get_opt(claim_name).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return Err(problem(ClaimProblem::ClaimNotFound(claim_name.to_owned()))),
            Err(source) => {
                return Err(SetUpError::Get {
                    kind: "persistentvolumeclaim",
                    name: claim_name.to_owned(),
                    source,
                })
            }
        };
        if ephemeral {
            claim::check_ephemeral_owner(pod, &claim).map_err(problem)?;
        }
        let volume_name = claim::bound_volume_name(&claim).map_err(problem)?;
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let volume = match volumes.get_opt(&volume_name).await {
            Ok(Some(volume)) => volume,
            Ok(None) => return Err(problem(ClaimProblem::VolumeNotFound(volume_name))),
            Err(source) => {
                return Err(SetUpError::Get {
                    kind: "persistentvolume",
                    name: volume_name,
                    source,
                })
            }
        };
        let claim_uid = claim.metadata.uid.as_deref().unwrap_or_default();
        let path = claim::volume_path(&volume, claim_uid).map_err(problem)?;
        if let Some(kind) = &path.host_path_type {
            host_path::check_type(&path.path, Some(kind))?;
        } else {
            host_path::check_type(&path.path, Some("Directory"))?;
        }
        Ok(MountedVolume {
            kind: VolumeKind::Claim,
            host_path: PathBuf::from(path.path),
            read_only,
        })
    }
}

/// A pod uid is one path element: anything else could make the kubelet touch other paths.
fn check_uid(uid: &str) -> Result<(), VolumeError> {
    if uid.is_empty() || uid == "." || uid == ".." || uid.contains('/') || uid.contains('\0') {
        return Err(VolumeError::InvalidPodUid(uid.to_owned()));
    }
    Ok(())
}

/// The plugin directory and kind of a volume filled by the atomic writer.
fn content_plugin(volume: &Volume) -> Option<(&'static str, VolumeKind)> {
    if volume.config_map.is_some() {
        Some((CONFIG_MAP_PLUGIN, VolumeKind::ConfigMap))
    } else if volume.secret.is_some() {
        Some((SECRET_PLUGIN, VolumeKind::Secret))
    } else if volume.downward_api.is_some() {
        Some((DOWNWARD_API_PLUGIN, VolumeKind::DownwardApi))
    } else if volume.projected.is_some() {
        Some((PROJECTED_PLUGIN, VolumeKind::Projected))
    } else {
        None
    }
}

/// The API name of a volume's source, for "not supported" errors.
fn volume_kind_name(volume: &Volume) -> &'static str {
    let sources: [(&'static str, bool); 20] = [
        (
            "awsElasticBlockStore",
            volume.aws_elastic_block_store.is_some(),
        ),
        ("azureDisk", volume.azure_disk.is_some()),
        ("azureFile", volume.azure_file.is_some()),
        ("cephfs", volume.cephfs.is_some()),
        ("cinder", volume.cinder.is_some()),
        ("csi", volume.csi.is_some()),
        ("fc", volume.fc.is_some()),
        ("flexVolume", volume.flex_volume.is_some()),
        ("flocker", volume.flocker.is_some()),
        ("gcePersistentDisk", volume.gce_persistent_disk.is_some()),
        ("gitRepo", volume.git_repo.is_some()),
        ("glusterfs", volume.glusterfs.is_some()),
        ("image", volume.image.is_some()),
        ("iscsi", volume.iscsi.is_some()),
        ("nfs", volume.nfs.is_some()),
        (
            "photonPersistentDisk",
            volume.photon_persistent_disk.is_some(),
        ),
        ("portworxVolume", volume.portworx_volume.is_some()),
        ("quobyte", volume.quobyte.is_some()),
        ("rbd", volume.rbd.is_some()),
        ("vsphereVolume", volume.vsphere_volume.is_some()),
    ];
    sources
        .iter()
        .find(|(_, set)| *set)
        .map_or("sourceless", |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_message_as_upstream() {
        let err = VolumeError::SetUp {
            volume: "config".into(),
            source: Box::new(SetUpError::ConfigMapNotFound("app".into())),
        };
        assert_eq!(
            err.event_message(),
            "MountVolume.SetUp failed for volume \"config\" : configmap \"app\" not found"
        );
        let err = VolumeError::SetUp {
            volume: "data".into(),
            source: Box::new(SetUpError::Claim {
                namespace: "prod".into(),
                claim: "data".into(),
                problem: Box::new(ClaimProblem::NotBound),
            }),
        };
        assert_eq!(
            err.event_message(),
            "MountVolume.SetUp failed for volume \"data\" : error processing PVC prod/data: PVC is not bound"
        );
        let err = SetUpError::Aggregate(vec![
            SetUpError::SecretNotFound("a".into()),
            SetUpError::Payload(PayloadError::ConfigMapKey("k".into())),
        ]);
        assert_eq!(
            err.to_string(),
            "[secret \"a\" not found, configmap references non-existent config key: k]"
        );
        let err = VolumeError::SetUp {
            volume: "h".into(),
            source: Box::new(HostPathError::Missing("/x".into()).into()),
        };
        assert_eq!(
            err.event_message(),
            "MountVolume.SetUp failed for volume \"h\" : hostPath /x doesn't exist"
        );
    }

    #[test]
    fn pod_uids_are_single_path_elements() {
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(check_uid(bad).is_err(), "{bad:?}");
        }
        check_uid("0d3c1f5e-8a8e-4b5e-9a53-3e1f1b8d2f77").unwrap();
    }

    #[test]
    fn unsupported_sources_are_named() {
        let volume = Volume {
            name: "v".into(),
            nfs: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(volume_kind_name(&volume), "nfs");
        assert_eq!(
            SetUpError::UnsupportedVolume(volume_kind_name(&volume).into()).to_string(),
            "k3rs does not support nfs volumes"
        );
        assert_eq!(content_plugin(&volume), None);
    }
}
