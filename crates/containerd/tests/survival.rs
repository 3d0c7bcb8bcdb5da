//! A pod sandbox outlives containerd: stopped containerd leaves the sandbox's process running,
//! and the next containerd on the same dirs adopts it. Needs root, containerd, runc, `ctr`,
//! `unshare` and a static `/bin/busybox` (else the test says why it skips).
//!
//! containerd puts shim sockets under `/run/containerd/s` whatever its config says, so this test
//! runs it in a private mount namespace whose `/run` is a directory of the test's: nothing
//! reaches the host's `/run`, and each namespace (with the sandbox's mounts) goes with the last
//! process in it.

// Test helpers unwrap: a failure there is the test failing.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k3rs_containerd::process::find_binary;
use k3rs_containerd::{
    CgroupDriver, Containerd, ContainerdConfig, ContainerdError, ContainerdPaths,
    ContainerdSettings, CriClient, HostFacts,
};
use k8s_cri::v1::{
    ImageSpec, ImageStatusRequest, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
    PodSandboxState, RemovePodSandboxRequest, RunPodSandboxRequest, StopPodSandboxRequest,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

const IMAGE: &str = "k3rs.test/survivor:1";

fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("containerd needs root".into());
    }
    let path = std::env::var_os("PATH");
    for tool in ["containerd", "runc", "ctr", "unshare", "mount"] {
        if find_binary(Path::new(tool), path.as_deref()).is_none() {
            return Some(format!("no {tool} on PATH"));
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        return Some("no /bin/busybox for the test image".into());
    }
    None
}

/// An OCI image archive whose one layer is busybox and whose entrypoint sleeps `seconds`.
fn image_archive(seconds: u32) -> Vec<u8> {
    let busybox = fs::read("/bin/busybox").unwrap();
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(busybox.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    layer
        .append_data(&mut header, "busybox", &busybox[..])
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let digest = |bytes: &[u8]| format!("sha256:{:x}", Sha256::digest(bytes));
    let layer_digest = digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Entrypoint": ["/busybox", "sleep", seconds.to_string()] },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": { "io.containerd.image.name": IMAGE },
        }],
    }))
    .unwrap();
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, name, bytes).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in [&layer, &config, &manifest] {
        let name = format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]);
        add(&name, blob);
    }
    archive.into_inner().unwrap()
}

/// Pids of processes whose arguments are exactly `args`.
fn pids_running(args: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            (cmdline == wanted).then_some(pid)
        })
        .collect()
}

/// Pids of processes whose command line mentions `text`.
fn pids_mentioning(text: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(text)
                .then_some(pid)
        })
        .collect()
}

/// Kills whatever the test left running (shims name the socket, the sandbox its sleep), also
/// when it fails halfway.
struct Leftovers {
    socket: String,
    sleep_args: Vec<String>,
    /// The pods' cgroup parent (cgroupfs driver), removed from every hierarchy.
    cgroup_parent: Option<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let args: Vec<&str> = self.sleep_args.iter().map(String::as_str).collect();
        for pid in pids_mentioning(&self.socket)
            .into_iter()
            .chain(pids_running(&args))
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Some(parent) = &self.cgroup_parent {
            // Killed processes leave their cgroups a moment later: retry for a while.
            let relative = parent.trim_start_matches('/');
            let mut roots = vec![Path::new("/sys/fs/cgroup").join(relative)];
            for hierarchy in fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                roots.push(hierarchy.path().join(relative));
            }
            for _ in 0..50 {
                roots.retain(|root| root.exists() && remove_cgroup_tree(root).is_err());
                if roots.is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !roots.is_empty() {
                eprintln!("could not remove test cgroups {roots:?}");
            }
        }
    }
}

/// Removes a cgroup directory and the cgroups below it (rmdir, deepest first).
fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    fs::remove_dir(dir)
}

async fn start(settings: &ContainerdSettings) -> Containerd {
    // A script just written can fail exec with ETXTBSY while another thread forks: retry.
    for _ in 0..10 {
        match Containerd::start(settings.clone()).await {
            Err(ContainerdError::Spawn { source, .. })
                if source.raw_os_error() == Some(nix::libc::ETXTBSY) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            result => return result.unwrap(),
        }
    }
    panic!("containerd wrapper stayed busy (ETXTBSY)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_sandbox_outlives_containerd_and_is_adopted() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipping: {reason}");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("k3rs-surv")
        .tempdir()
        .unwrap();
    if dir.path().starts_with("/run") {
        eprintln!("skipping: the temporary directory is under /run, which the test hides");
        return;
    }
    let host = HostFacts::detect().unwrap();
    let paths = ContainerdPaths::for_data_dir(dir.path());
    let containerd_binary: PathBuf =
        find_binary(Path::new("containerd"), std::env::var_os("PATH").as_deref()).unwrap();
    // The shims' sockets land in `fake_run/containerd/s`: every containerd this test starts
    // sees that directory as its /run, so the second one finds the first one's shims.
    let fake_run = dir.path().join("run-for-containerd");
    fs::create_dir(&fake_run).unwrap();
    let wrapper = dir.path().join("containerd-private-run");
    {
        let mut file = fs::File::create(&wrapper).unwrap();
        write!(
            file,
            "#!/bin/sh\nexec unshare --mount --propagation private -- /bin/sh -c \
             'mount --bind {} /run && exec \"$0\" \"$@\"' {} \"$@\"\n",
            fake_run.display(),
            containerd_binary.display()
        )
        .unwrap();
    }
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();

    let mut config = ContainerdConfig::new(&paths, IMAGE, "/usr/lib/cni", dir.path().join("cni"));
    config.stream_server_port = 0;
    config.restrict_oom_score_adj = host.restrict_oom_score_adj();
    config.cgroup_driver = host.cgroup_driver();
    let mut settings = ContainerdSettings::new(&paths, config);
    settings.binary = wrapper;
    // Should CRI ever try to pull the test image, it must not look the name up in DNS or
    // leave the host: point its registry at a closed loopback port.
    let hosts = paths.registry_config_dir.join("k3rs.test");
    fs::create_dir_all(&hosts).unwrap();
    fs::write(
        hosts.join("hosts.toml"),
        "server = \"http://127.0.0.1:9\"\n[host.\"http://127.0.0.1:9\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
    )
    .unwrap();

    let seconds = 3_000 + std::process::id() % 1_000;
    let sleep_args = [
        "/busybox".to_owned(),
        "sleep".to_owned(),
        seconds.to_string(),
    ];
    // runc leaves a pod's cgroup parent behind: put it where the guard can remove it.
    let cgroup_parent = (host.cgroup_driver() == CgroupDriver::Cgroupfs)
        .then(|| format!("/k3rs-test-{}", std::process::id()));
    let _leftovers = Leftovers {
        socket: paths.grpc_socket.to_string_lossy().into_owned(),
        sleep_args: sleep_args.to_vec(),
        cgroup_parent: cgroup_parent.clone(),
    };
    let sleep_args: Vec<&str> = sleep_args.iter().map(String::as_str).collect();

    let containerd = start(&settings).await;
    let archive = dir.path().join("image.tar");
    fs::write(&archive, image_archive(seconds)).unwrap();
    let import = Command::new("ctr")
        .arg("--address")
        .arg(&paths.grpc_socket)
        .args(["--namespace", "k8s.io", "images", "import", "--no-unpack"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(import.status.success(), "ctr import: {import:?}");
    eprintln!("ctr import: {}", String::from_utf8_lossy(&import.stdout));

    // CRI learns of imported images from containerd's events: wait until it sees this one.
    let client = CriClient::connect(containerd.socket()).await.unwrap();
    let mut images = client.images();
    let mut seen = false;
    for _ in 0..100 {
        let status = images
            .image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: IMAGE.to_owned(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        if status.image.is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "CRI does not see the imported {IMAGE}");

    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "survivor".into(),
            uid: format!("uid-{seconds}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.clone().unwrap_or_default(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    // The host's network: no CNI needed.
                    network: NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut runtime = client.runtime();
    let sandbox = runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    // runc start returns once the sandbox's init was told to exec; the exec follows.
    let mut running = pids_running(&sleep_args);
    for _ in 0..50 {
        if !running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        running = pids_running(&sleep_args);
    }
    assert_eq!(
        running.len(),
        1,
        "sandbox process {sleep_args:?}: {running:?}"
    );

    // Stop containerd: the sandbox's process runs on.
    containerd.stop().await.unwrap();
    assert!(pids_mentioning(&format!("--config\0{}", paths.config_file.display())).is_empty());
    assert_eq!(
        pids_running(&sleep_args),
        running,
        "the sandbox died with containerd"
    );

    // The next containerd adopts it.
    let containerd = start(&settings).await;
    let client = CriClient::connect(containerd.socket()).await.unwrap();
    let mut runtime = client.runtime();
    let sandboxes = runtime
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    assert_eq!(sandboxes[0].id, sandbox);
    assert_eq!(sandboxes[0].state, PodSandboxState::SandboxReady as i32);

    runtime
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone(),
        })
        .await
        .unwrap();
    runtime
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        })
        .await
        .unwrap();
    assert!(pids_running(&sleep_args).is_empty());
    containerd.stop().await.unwrap();
    // Shims exit with their last task; give them a moment.
    for _ in 0..50 {
        if pids_mentioning(&paths.grpc_socket.to_string_lossy()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pids_mentioning(&paths.grpc_socket.to_string_lossy()),
        Vec::<i32>::new()
    );
}
