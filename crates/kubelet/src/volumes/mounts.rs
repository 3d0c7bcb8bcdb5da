//! The CRI mounts of one container (upstream's `makeMounts` in `kubelet_pods.go` and the
//! termination-message mount of `kuberuntime`): its volumeMounts with subPath, propagation and
//! read-only modes, the pod's `/etc/hosts`, and the termination-message file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_cri::v1::{Mount, MountPropagation};
use k8s_openapi::api::core::v1::{Container, VolumeMount};

use super::{sub_path, PodVolumes};

const ETC_HOSTS: &str = "/etc/hosts";

/// What `container_mounts` needs besides the pod and its volumes.
#[derive(Clone, Copy, Debug)]
pub struct ContainerMountOptions<'a> {
    /// The container's resolved environment, for `subPathExpr`.
    pub env: &'a BTreeMap<String, String>,
    /// The pod's hosts file ([`super::Volumes::write_etc_hosts`]); `None` while the pod has no IP,
    /// when upstream mounts none either.
    pub etc_hosts: Option<&'a Path>,
    /// Whether the runtime can make mounts recursively read-only (containerd 1.6 cannot).
    pub supports_recursive_read_only: bool,
}

/// A volumeMount that cannot be made (upstream's words).
#[derive(Debug, thiserror::Error)]
pub enum ContainerMountError {
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    MissingVolume { volume: String, container: String },
    #[error("missing value for {0}")]
    MissingEnv(String),
    #[error("error SubPath `{0}` must not be an absolute path")]
    AbsoluteSubPath(String),
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    #[error("failed to create subPath directory for volumeMount \"{mount}\" of container \"{container}\"")]
    CreateSubPath {
        mount: String,
        container: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to prepare subPath for volumeMount \"{mount}\" of container \"{container}\"")]
    PrepareSubPath {
        mount: String,
        container: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid MountPropagation mode: \"{0}\"")]
    Propagation(String),
    #[error("volume \"{0}\" requested recursive read-only mode, but it is not read-only")]
    RecursiveNotReadOnly(String),
    #[error("volume \"{volume}\" requested recursive read-only mode, but it is not compatible with propagation \"{propagation}\"")]
    RecursivePropagation { volume: String, propagation: String },
    #[error(
        "volume \"{0}\" requested recursive read-only mode, but it is not supported by the runtime"
    )]
    RecursiveUnsupported(String),
    #[error("unknown recursive read-only mode \"{0}\"")]
    RecursiveMode(String),
}

/// Expands `$(VAR)` references as upstream's `expansion.Expand` does (`$$` is a literal `$`, an
/// unclosed `$(` stays as written), collecting the names that have no value or an empty one
/// (they expand to nothing).
pub(crate) fn expand(
    input: &str,
    env: &BTreeMap<String, String>,
    missing: &mut BTreeSet<String>,
) -> String {
    let missing = std::cell::RefCell::new(missing);
    crate::env::expand(input, &|name: &str| {
        Some(match env.get(name).filter(|v| !v.is_empty()) {
            Some(value) => value.clone(),
            None => {
                missing.borrow_mut().insert(name.to_owned());
                String::new()
            }
        })
    })
}

/// The subPath of a mount: `subPath`, or `subPathExpr` expanded from the environment.
pub(crate) fn sub_path_of(
    mount: &VolumeMount,
    env: &BTreeMap<String, String>,
) -> Result<String, ContainerMountError> {
    match mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        Some(expr) => {
            let mut missing = BTreeSet::new();
            let expanded = expand(expr, env, &mut missing);
            if missing.is_empty() {
                Ok(expanded)
            } else {
                Err(ContainerMountError::MissingEnv(
                    missing.into_iter().collect::<Vec<_>>().join(", "),
                ))
            }
        }
        None => Ok(mount.sub_path.clone().unwrap_or_default()),
    }
}

/// Rejects absolute subPaths and `..` elements.
pub(crate) fn validate_sub_path(sub_path: &str) -> Result<(), ContainerMountError> {
    if sub_path.starts_with('/') {
        return Err(ContainerMountError::AbsoluteSubPath(sub_path.to_owned()));
    }
    if sub_path.split('/').any(|part| part == "..") {
        return Err(ContainerMountError::SubPathBacksteps(sub_path.to_owned()));
    }
    Ok(())
}

/// The CRI propagation of a mount's `mountPropagation`.
pub(crate) fn propagation(mode: Option<&str>) -> Result<MountPropagation, ContainerMountError> {
    match mode {
        None | Some("None") => Ok(MountPropagation::PropagationPrivate),
        Some("HostToContainer") => Ok(MountPropagation::PropagationHostToContainer),
        Some("Bidirectional") => Ok(MountPropagation::PropagationBidirectional),
        Some(other) => Err(ContainerMountError::Propagation(other.to_owned())),
    }
}

/// Whether a mount is made recursively read-only (upstream's `resolveRecursiveReadOnly`).
pub(crate) fn recursive_read_only(
    mount: &VolumeMount,
    runtime_supports: bool,
) -> Result<bool, ContainerMountError> {
    let mode = match mount.recursive_read_only.as_deref() {
        None | Some("Disabled") => return Ok(false),
        Some(mode) => mode,
    };
    if mount.read_only != Some(true) {
        return Err(ContainerMountError::RecursiveNotReadOnly(
            mount.name.clone(),
        ));
    }
    if let Some(propagation) = mount.mount_propagation.as_deref().filter(|p| *p != "None") {
        return Err(ContainerMountError::RecursivePropagation {
            volume: mount.name.clone(),
            propagation: propagation.to_owned(),
        });
    }
    match mode {
        "IfPossible" => Ok(runtime_supports),
        "Enabled" if runtime_supports => Ok(true),
        "Enabled" => Err(ContainerMountError::RecursiveUnsupported(
            mount.name.clone(),
        )),
        other => Err(ContainerMountError::RecursiveMode(other.to_owned())),
    }
}

/// Prepares a subPath mount (upstream's `SafeMakeDir` + `PrepareSafeSubpath`): creates the
/// subPath as a directory with the volume's mode when missing, resolves it, checks it stays in
/// the volume, and bind-mounts it (through a descriptor opened without following symlinks) onto
/// `target`, a path below the pod directory that containers cannot change. The runtime is given
/// `target`, so a symlink swapped into the volume later cannot redirect the mount.
fn prepare_sub_path(
    volume: &Path,
    sub_path: &str,
    target: &Path,
    mount: &str,
    container: &str,
) -> Result<PathBuf, ContainerMountError> {
    validate_sub_path(sub_path)?;
    let path = volume.join(sub_path);
    if fs::metadata(&path).is_err() {
        let mode = fs::metadata(volume)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o750);
        sub_path::make_dirs(volume, sub_path, mode).map_err(|source| {
            // Not passed on to the user: it could tell about the host's filesystem.
            tracing::error!(error = %source, mount, container, "creating the subPath directory");
            ContainerMountError::CreateSubPath {
                mount: mount.to_owned(),
                container: container.to_owned(),
                source,
            }
        })?;
    }
    let prepare_error = |source: io::Error| {
        tracing::error!(error = %source, mount, container, "preparing the subPath");
        ContainerMountError::PrepareSubPath {
            mount: mount.to_owned(),
            container: container.to_owned(),
            source,
        }
    };
    let resolved = sub_path::resolve(volume, sub_path).map_err(prepare_error)?;
    sub_path::bind(volume, &resolved, target).map_err(prepare_error)?;
    Ok(target.to_path_buf())
}

/// A fresh empty termination-message file for one run of `container`:
/// `<pod dir>/containers/<name>/<8 hex digits>`, mode 0666.
fn termination_message_file(pod_dir: &Path, container: &str) -> io::Result<PathBuf> {
    let dir = pod_dir.join("containers").join(container);
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{:08x}", rand::random::<u32>()));
    fs::write(&path, b"")?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666))?;
    Ok(path)
}

/// The CRI mounts of `container`: each volumeMount (with subPath or subPathExpr resolved inside
/// the volume, read-only when asked or when the volume is always read-only, its propagation and
/// recursive read-only mode), then `/etc/hosts` unless the container mounts its own there, then
/// a new termination-message file at `terminationMessagePath`. The termination message is read
/// back from the mount whose `container_path` is that path.
pub fn container_mounts(
    container: &Container,
    volumes: &PodVolumes,
    options: &ContainerMountOptions<'_>,
) -> Result<Vec<Mount>, ContainerMountError> {
    let mut mounts = Vec::new();
    let mut mount_etc_hosts = options.etc_hosts.is_some();
    for (index, volume_mount) in container.volume_mounts.iter().flatten().enumerate() {
        mount_etc_hosts &= volume_mount.mount_path != ETC_HOSTS;
        let volume =
            volumes
                .get(&volume_mount.name)
                .ok_or_else(|| ContainerMountError::MissingVolume {
                    volume: volume_mount.name.clone(),
                    container: container.name.clone(),
                })?;
        let sub_path = sub_path_of(volume_mount, options.env)?;
        let host_path = if sub_path.is_empty() {
            volume.host_path.clone()
        } else {
            // Upstream's layout: `<pod dir>/volume-subpaths/<volume>/<container>/<mount index>`.
            let target = volumes
                .pod_dir()
                .join("volume-subpaths")
                .join(&volume_mount.name)
                .join(&container.name)
                .join(index.to_string());
            prepare_sub_path(
                &volume.host_path,
                &sub_path,
                &target,
                &volume_mount.name,
                &container.name,
            )?
        };
        let container_path = if volume_mount.mount_path.starts_with('/') {
            volume_mount.mount_path.clone()
        } else {
            format!("/{}", volume_mount.mount_path)
        };
        let propagation = propagation(volume_mount.mount_propagation.as_deref())?;
        let recursive = recursive_read_only(volume_mount, options.supports_recursive_read_only)?;
        mounts.push(Mount {
            container_path,
            host_path: host_path.to_string_lossy().into_owned(),
            readonly: volume_mount.read_only == Some(true) || volume.read_only,
            propagation: propagation as i32,
            recursive_read_only: recursive,
            ..Default::default()
        });
    }
    if let Some(hosts) = options.etc_hosts.filter(|_| mount_etc_hosts) {
        mounts.push(Mount {
            container_path: ETC_HOSTS.to_owned(),
            host_path: hosts.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    if let Some(path) = container
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        match termination_message_file(volumes.pod_dir(), &container.name) {
            Ok(file) => mounts.push(Mount {
                container_path: path.to_owned(),
                host_path: file.to_string_lossy().into_owned(),
                ..Default::default()
            }),
            // As upstream: the container still starts, without a termination message.
            Err(err) => {
                tracing::error!(error = %err, container = %container.name, "creating the termination-log file")
            }
        }
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::{MountedVolume, VolumeKind};

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expansion_as_upstream() {
        let env = env(&[("POD", "web-0"), ("NS", "prod"), ("EMPTY", "")]);
        let cases = [
            ("logs/$(POD)", "logs/web-0", ""),
            ("$(NS)/$(POD)", "prod/web-0", ""),
            ("$$(POD)", "$(POD)", ""),
            ("a$b", "a$b", ""),
            ("$(POD", "$(POD", ""),
            ("end$", "end$", ""),
            ("$(NOPE)/$(EMPTY)/x", "//x", "EMPTY, NOPE"),
        ];
        for (input, want, want_missing) in cases {
            let mut missing = BTreeSet::new();
            assert_eq!(expand(input, &env, &mut missing), want, "{input}");
            assert_eq!(
                missing.into_iter().collect::<Vec<_>>().join(", "),
                want_missing,
                "{input}"
            );
        }
        let mount = VolumeMount {
            sub_path_expr: Some("$(A)/$(B)".into()),
            ..Default::default()
        };
        assert_eq!(
            sub_path_of(&mount, &env).unwrap_err().to_string(),
            "missing value for A, B"
        );
    }

    #[test]
    fn sub_path_validation_in_upstream_words() {
        assert_eq!(
            validate_sub_path("/etc").unwrap_err().to_string(),
            "error SubPath `/etc` must not be an absolute path"
        );
        assert_eq!(
            validate_sub_path("a/../../b").unwrap_err().to_string(),
            "unable to provision SubPath `a/../../b`: must not contain '..'"
        );
        validate_sub_path("a/..b/c").unwrap();
    }

    #[test]
    fn propagation_and_recursive_read_only() {
        assert_eq!(
            propagation(None).unwrap(),
            MountPropagation::PropagationPrivate
        );
        assert_eq!(
            propagation(Some("HostToContainer")).unwrap(),
            MountPropagation::PropagationHostToContainer
        );
        assert_eq!(
            propagation(Some("Bidirectional")).unwrap(),
            MountPropagation::PropagationBidirectional
        );
        assert_eq!(
            propagation(Some("Sideways")).unwrap_err().to_string(),
            "invalid MountPropagation mode: \"Sideways\""
        );
        let mount = |ro: bool, rro: &str, prop: Option<&str>| VolumeMount {
            name: "v".into(),
            read_only: Some(ro),
            recursive_read_only: Some(rro.into()),
            mount_propagation: prop.map(str::to_owned),
            ..Default::default()
        };
        assert!(!recursive_read_only(&mount(true, "Disabled", None), true).unwrap());
        assert!(recursive_read_only(&mount(true, "IfPossible", None), true).unwrap());
        assert!(!recursive_read_only(&mount(true, "IfPossible", None), false).unwrap());
        assert!(recursive_read_only(&mount(true, "Enabled", Some("None")), true).unwrap());
        assert_eq!(
            recursive_read_only(&mount(true, "Enabled", None), false).unwrap_err().to_string(),
            "volume \"v\" requested recursive read-only mode, but it is not supported by the runtime"
        );
        assert_eq!(
            recursive_read_only(&mount(false, "Enabled", None), true)
                .unwrap_err()
                .to_string(),
            "volume \"v\" requested recursive read-only mode, but it is not read-only"
        );
        assert!(
            recursive_read_only(&mount(true, "Enabled", Some("HostToContainer")), true).is_err()
        );
    }

    fn pod_volumes(pod_dir: &Path, volumes: &[(&str, &Path, bool)]) -> PodVolumes {
        PodVolumes {
            pod_dir: pod_dir.to_path_buf(),
            volumes: volumes
                .iter()
                .map(|(name, path, ro)| {
                    (
                        (*name).to_owned(),
                        MountedVolume {
                            kind: VolumeKind::EmptyDir,
                            host_path: path.to_path_buf(),
                            read_only: *ro,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn mounts_of_a_container() {
        let dir = tempfile::tempdir().unwrap();
        let pod_dir = dir.path().join("pod");
        let data = pod_dir.join("volumes/kubernetes.io~empty-dir/data");
        let config = pod_dir.join("volumes/kubernetes.io~configmap/config");
        fs::create_dir_all(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
        fs::create_dir_all(&config).unwrap();
        let volumes = pod_volumes(
            &pod_dir,
            &[("data", &data, false), ("config", &config, true)],
        );
        let hosts = pod_dir.join("etc-hosts");
        let env = env(&[("POD_NAME", "web-0")]);
        let container = Container {
            name: "app".into(),
            termination_message_path: Some("/dev/termination-log".into()),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    mount_propagation: Some("HostToContainer".into()),
                    ..Default::default()
                },
                VolumeMount {
                    name: "config".into(),
                    mount_path: "etc/app".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let options = ContainerMountOptions {
            env: &env,
            etc_hosts: Some(&hosts),
            supports_recursive_read_only: false,
        };
        let mounts = container_mounts(&container, &volumes, &options).unwrap();
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[0].host_path, data.to_string_lossy());
        assert_eq!(
            mounts[0].propagation,
            MountPropagation::PropagationHostToContainer as i32
        );
        assert!(!mounts[0].readonly);
        assert_eq!(mounts[1].container_path, "/etc/app");
        assert!(mounts[1].readonly, "configMap volumes are always read-only");
        assert_eq!(mounts[2].container_path, "/etc/hosts");
        assert_eq!(mounts[2].host_path, hosts.to_string_lossy());
        assert_eq!(mounts[3].container_path, "/dev/termination-log");
        let log = Path::new(&mounts[3].host_path);
        assert_eq!(log.parent().unwrap(), pod_dir.join("containers/app"));
        assert_eq!(log.file_name().unwrap().len(), 8);
        assert_eq!(
            fs::metadata(log).unwrap().permissions().mode() & 0o777,
            0o666
        );

        // A second run gets a new termination file; a container mounting /etc/hosts itself gets ours not.
        let own_hosts = Container {
            name: "app".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/etc/hosts".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mounts = container_mounts(&own_hosts, &volumes, &options).unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].container_path, "/etc/hosts");
    }

    #[test]
    fn sub_path_cannot_escape_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let pod_dir = dir.path().join("pod");
        let data = pod_dir.join("volumes/kubernetes.io~empty-dir/data");
        fs::create_dir_all(&data).unwrap();
        // What a container could plant in a shared emptyDir.
        std::os::unix::fs::symlink("/etc", data.join("escape")).unwrap();
        let volumes = pod_volumes(&pod_dir, &[("data", &data, false)]);
        let env = BTreeMap::new();
        let options = ContainerMountOptions {
            env: &env,
            etc_hosts: None,
            supports_recursive_read_only: false,
        };
        let mount = |sub: &str| Container {
            name: "c".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/m".into(),
                sub_path: Some(sub.into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let err = container_mounts(&mount("escape"), &volumes, &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to prepare subPath for volumeMount \"data\" of container \"c\""
        );
        let err = container_mounts(&mount("escape/new"), &volumes, &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to create subPath directory for volumeMount \"data\" of container \"c\""
        );
        assert!(!Path::new("/etc/new").exists());
        let err = container_mounts(&mount("x"), &pod_volumes(&pod_dir, &[]), &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot find volume \"data\" to mount into container \"c\""
        );
    }
}
