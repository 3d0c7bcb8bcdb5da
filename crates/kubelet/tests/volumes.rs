//! Volume set-up and tear-down on the real kernel: tmpfs emptyDirs (needs root), fsGroup,
//! hostPath safety on tear-down, and the error of a volume whose source the API cannot give.

// Test helpers fail the test on any error.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k3rs_kubelet::volumes::{container_mounts, ContainerMountOptions, VolumeKind, Volumes};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EmptyDirVolumeSource, HostPathVolumeSource, Pod,
    PodSecurityContext, PodSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A client for an address where nothing listens: these tests must not need an API server,
/// and a volume that does fails fast with connection refused.
fn offline_client() -> kube::Client {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Detaches any mount left below a directory when a test fails half-way.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let Ok(root) = fs::canonicalize(&self.0) else {
            return;
        };
        for line in text.lines().rev() {
            let Some(point) = line.split(' ').nth(4) else {
                continue;
            };
            if Path::new(point).starts_with(&root) {
                let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

fn mount_line(path: &Path) -> Option<String> {
    let canonical = fs::canonicalize(path).ok()?;
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines()
        .rev()
        .find(|line| line.split(' ').nth(4) == canonical.to_str())
        .map(str::to_owned)
}

fn pod(uid: &str, volumes: Vec<Volume>, fs_group: Option<i64>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(volumes),
            security_context: Some(PodSecurityContext {
                fs_group,
                ..Default::default()
            }),
            containers: vec![Container {
                name: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>, size: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(str::to_owned),
            size_limit: size.map(|s| Quantity(s.into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn memory_empty_dir_is_a_sized_tmpfs_unmounted_on_tear_down() {
    if !is_root() {
        eprintln!("skipping: mounting tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let allocatable = BTreeMap::from([("memory".to_owned(), Quantity("1Gi".into()))]);
    let volumes = Volumes::new(offline_client(), dir.path().join("pods"), allocatable);
    let pod = pod(
        "uid-tmpfs",
        vec![empty_dir("cache", Some("Memory"), Some("16Mi"))],
        None,
    );

    let set_up = volumes.set_up(&pod).await.unwrap();
    let cache = set_up.get("cache").unwrap();
    assert_eq!(cache.kind, VolumeKind::EmptyDir);
    assert_eq!(
        cache.host_path,
        dir.path()
            .join("pods/uid-tmpfs/volumes/kubernetes.io~empty-dir/cache")
    );
    let line = mount_line(&cache.host_path).expect("the volume is a mount point");
    assert!(line.contains(" - tmpfs "), "{line}");
    assert!(
        line.contains("size=16384k"),
        "sizeLimit caps the tmpfs: {line}"
    );

    // Idempotent: no second mount stacked on the first.
    fs::write(cache.host_path.join("kept"), "x").unwrap();
    volumes.set_up(&pod).await.unwrap();
    let canonical = fs::canonicalize(&cache.host_path).unwrap();
    let stacked = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == canonical.to_str())
        .count();
    assert_eq!(stacked, 1);
    assert_eq!(
        fs::read_to_string(cache.host_path.join("kept")).unwrap(),
        "x"
    );
    assert_eq!(
        volumes.pods_on_disk().unwrap(),
        vec!["uid-tmpfs".to_owned()]
    );

    volumes.tear_down("uid-tmpfs").await.unwrap();
    assert!(mount_line(&canonical).is_none(), "unmounted");
    assert!(!dir.path().join("pods/uid-tmpfs").exists());
    assert!(volumes.pods_on_disk().unwrap().is_empty());
}

#[tokio::test]
async fn memory_empty_dir_defaults_to_the_node_allocatable() {
    if !is_root() {
        eprintln!("skipping: mounting tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let allocatable = BTreeMap::from([("memory".to_owned(), Quantity("32Mi".into()))]);
    let volumes = Volumes::new(offline_client(), dir.path().join("pods"), allocatable);
    let pod = pod(
        "uid-alloc",
        vec![empty_dir("shm", Some("Memory"), None)],
        None,
    );
    let set_up = volumes.set_up(&pod).await.unwrap();
    let line = mount_line(&set_up.get("shm").unwrap().host_path).unwrap();
    assert!(line.contains("size=32768k"), "{line}");
    volumes.tear_down("uid-alloc").await.unwrap();
}

#[tokio::test]
async fn disk_empty_dir_with_fs_group_and_tear_down_spares_host_paths() {
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let host = dir.path().join("host-data");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("precious"), "keep").unwrap();
    // Root may give any group; others only their own.
    let gid = if is_root() {
        4242
    } else {
        fs::metadata(dir.path()).unwrap().gid()
    };
    let volumes = Volumes::new(offline_client(), dir.path().join("pods"), BTreeMap::new());
    let host_volume = Volume {
        name: "host".into(),
        host_path: Some(HostPathVolumeSource {
            path: host.to_string_lossy().into_owned(),
            type_: Some("Directory".into()),
        }),
        ..Default::default()
    };
    let created = dir.path().join("created/by/kubelet");
    let created_volume = Volume {
        name: "created".into(),
        host_path: Some(HostPathVolumeSource {
            path: created.to_string_lossy().into_owned(),
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Default::default()
    };
    let pod = pod(
        "uid-disk",
        vec![
            empty_dir("scratch", None, None),
            host_volume,
            created_volume,
        ],
        Some(i64::from(gid)),
    );
    let set_up = volumes.set_up(&pod).await.unwrap();
    let scratch = &set_up.get("scratch").unwrap().host_path;
    let meta = fs::metadata(scratch).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o2777,
        "0777 plus setgid for the fsGroup"
    );
    assert_eq!(meta.gid(), gid);
    assert_eq!(set_up.get("host").unwrap().host_path, host);
    assert!(created.is_dir());
    assert_eq!(
        fs::metadata(&created).unwrap().permissions().mode() & 0o7777,
        0o755
    );

    // A container plants a symlink to the host path in the shared emptyDir.
    std::os::unix::fs::symlink(&host, scratch.join("link")).unwrap();
    let env = BTreeMap::new();
    let container = Container {
        name: "app".into(),
        volume_mounts: Some(vec![VolumeMount {
            name: "scratch".into(),
            mount_path: "/scratch".into(),
            sub_path: Some("link".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let options = ContainerMountOptions {
        env: &env,
        etc_hosts: None,
        supports_recursive_read_only: false,
    };
    let err = container_mounts(&container, &set_up, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to prepare subPath for volumeMount \"scratch\" of container \"app\""
    );

    volumes.tear_down("uid-disk").await.unwrap();
    assert!(!dir.path().join("pods/uid-disk").exists());
    assert_eq!(fs::read_to_string(host.join("precious")).unwrap(), "keep");
    assert!(created.is_dir(), "a hostPath is never removed");
}

#[tokio::test]
async fn a_missing_source_names_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let volumes = Volumes::new(offline_client(), dir.path().join("pods"), BTreeMap::new());
    let missing_host = dir.path().join("nope");
    let pod_with_host = pod(
        "uid-host",
        vec![Volume {
            name: "data".into(),
            host_path: Some(HostPathVolumeSource {
                path: missing_host.to_string_lossy().into_owned(),
                type_: Some("File".into()),
            }),
            ..Default::default()
        }],
        None,
    );
    let err = volumes.set_up(&pod_with_host).await.unwrap_err();
    assert_eq!(
        err.event_message(),
        format!(
            "MountVolume.SetUp failed for volume \"data\" : hostPath {} doesn't exist",
            missing_host.display()
        )
    );

    // With no API server the read fails; the error says which volume and object.
    let pod_with_config = pod(
        "uid-config",
        vec![Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "app".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        None,
    );
    let err = volumes.set_up(&pod_with_config).await.unwrap_err();
    let message = err.event_message();
    assert!(
        message.starts_with(
            "MountVolume.SetUp failed for volume \"config\" : getting configmap \"app\""
        ),
        "{message}"
    );
    volumes.tear_down("uid-config").await.unwrap();
    volumes.tear_down("uid-host").await.unwrap();
}

#[tokio::test]
async fn hosts_file_is_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let volumes = Volumes::new(offline_client(), dir.path().join("pods"), BTreeMap::new());
    let mut pod = pod("uid-hosts", vec![], None);
    if let Some(spec) = pod.spec.as_mut() {
        spec.hostname = Some("db-0".into());
        spec.subdomain = Some("db".into());
    }
    let path = volumes
        .write_etc_hosts(&pod, &["10.42.0.7".into()], "cluster.local")
        .unwrap();
    assert_eq!(path, dir.path().join("pods/uid-hosts/etc-hosts"));
    let content = fs::read_to_string(&path).unwrap();
    assert!(
        content.ends_with("10.42.0.7\tdb-0.db.default.svc.cluster.local\tdb-0\n"),
        "{content}"
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let inode = fs::metadata(&path).unwrap().ino();
    volumes
        .write_etc_hosts(&pod, &["10.42.0.8".into()], "cluster.local")
        .unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().ino(),
        inode,
        "same inode: running containers see it"
    );
    assert!(fs::read_to_string(&path).unwrap().contains("10.42.0.8"));
    volumes.tear_down("uid-hosts").await.unwrap();
}

#[tokio::test]
async fn sub_path_is_bind_mounted_outside_the_containers_reach() {
    if !is_root() {
        eprintln!("skipping: bind-mounting a subPath needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _guard = MountGuard(dir.path().to_path_buf());
    let volumes = Volumes::new(offline_client(), dir.path().join("pods"), BTreeMap::new());
    let pod = pod("uid-sub", vec![empty_dir("data", None, None)], None);
    let set_up = volumes.set_up(&pod).await.unwrap();
    let data = set_up.get("data").unwrap().host_path.clone();
    let env = BTreeMap::from([("POD_NAME".to_owned(), "web".to_owned())]);
    let container = Container {
        name: "app".into(),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: "/whole".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "data".into(),
                mount_path: "/logs".into(),
                sub_path_expr: Some("logs/$(POD_NAME)".into()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let options = ContainerMountOptions {
        env: &env,
        etc_hosts: None,
        supports_recursive_read_only: false,
    };
    let mounts = container_mounts(&container, &set_up, &options).unwrap();
    let target = dir.path().join("pods/uid-sub/volume-subpaths/data/app/1");
    assert_eq!(mounts[0].host_path, data.to_string_lossy());
    assert_eq!(mounts[1].host_path, target.to_string_lossy());
    assert!(mount_line(&target).is_some(), "bind-mounted");
    let created = data.join("logs/web");
    assert_eq!(
        fs::metadata(&created).unwrap().permissions().mode() & 0o7777,
        0o777,
        "the volume's mode"
    );
    fs::write(target.join("through-the-bind"), "x").unwrap();
    assert_eq!(
        fs::read_to_string(created.join("through-the-bind")).unwrap(),
        "x"
    );

    // The container restarts: the bind is replaced, not stacked.
    container_mounts(&container, &set_up, &options).unwrap();
    let canonical = fs::canonicalize(&target).unwrap();
    let binds = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == canonical.to_str())
        .count();
    assert_eq!(binds, 1);

    // A symlink swapped in after the bind changes nothing for the mount.
    fs::rename(data.join("logs"), data.join("logs-moved")).unwrap();
    std::os::unix::fs::symlink("/etc", data.join("logs")).unwrap();
    assert!(target.join("through-the-bind").exists());

    volumes.tear_down("uid-sub").await.unwrap();
    assert!(mount_line(&canonical).is_none());
    assert!(!dir.path().join("pods/uid-sub").exists());
    assert!(
        Path::new("/etc/hostname").exists() || Path::new("/etc/passwd").exists(),
        "the host's /etc is untouched"
    );
}
