//! Image import against a real containerd started for the test (root and the host's containerd
//! 1.6+, `ctr`, `unshare`, `nsenter`; skipped with the reason otherwise).
//!
//! The containerd runs in a private mount namespace with a tmpfs on `/run`, because containerd
//! 1.6 puts shim sockets and FIFOs under `/run/containerd` whatever its config says; `ctr` runs in
//! the same namespace. Everything else lives in a temporary directory.

// Test harness code: a failed setup step should panic with its error.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{InfoRequest, ListImagesRequest};
use k3rs_containerd::oci::sha256_digest;
use k3rs_containerd::{pause, ImageArchive, ImageChange, ImportError, Importer, PAUSE_IMAGE};
use serde_json::json;
use tonic::Request;

/// A containerd of the test's own, stopped and removed on drop.
struct Containerd {
    dir: tempfile::TempDir,
    process: Child,
    socket: PathBuf,
}

fn missing_capability() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned));
    if uid.as_deref() != Some("0") {
        return Some("not root".into());
    }
    for tool in ["containerd", "ctr", "unshare", "nsenter"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

impl Containerd {
    fn start() -> Option<Containerd> {
        if let Some(reason) = missing_capability() {
            eprintln!("skipping: {reason}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let socket = root.join("containerd.sock");
        let config = root.join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"#,
                root = root.display(),
                socket = socket.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(root.join("containerd.log")).unwrap();
        let process = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs tmpfs /run && exec containerd --config \"$0\"")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let containerd = Containerd {
            dir,
            process,
            socket,
        };
        let start = Instant::now();
        while !containerd.socket.exists() || containerd.ctr(&["version"]).status.code() != Some(0) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "containerd did not start:\n{}",
                containerd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(containerd)
    }

    /// The cgroup parent of the test's containers (relative to each hierarchy's root).
    fn cgroup_parent(&self) -> String {
        format!("k3rs-import-test-{}", self.process.id())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` in containerd's mount namespace, in namespace `k8s.io`.
    fn ctr_command(&self, namespace: &str, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["--target", &self.process.id().to_string(), "--mount", "ctr"])
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", namespace])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command("k8s.io", args).output().unwrap()
    }

    /// `ctr` that must succeed; its stdout.
    fn ctr_ok(&self, namespace: &str, args: &[&str]) -> String {
        let output = self.ctr_command(namespace, args).output().unwrap();
        assert!(
            output.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Image name → target digest, as `ctr images ls` shows them.
    fn images(&self, namespace: &str) -> BTreeMap<String, String> {
        self.ctr_ok(namespace, &["images", "ls"])
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                Some((fields.first()?.to_string(), fields.get(2)?.to_string()))
            })
            .collect()
    }

    fn content(&self) -> Vec<String> {
        self.ctr_ok("k8s.io", &["content", "ls", "-q"])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for args in [
            &["tasks", "kill", "--signal", "SIGKILL", "pause-test"][..],
            &["tasks", "delete", "--force", "pause-test"],
            &["containers", "delete", "pause-test"],
        ] {
            let _ = self
                .ctr_command("k8s.io", args)
                .stderr(Stdio::null())
                .output();
        }
        // runc leaves the parent of a container's cgroup behind: remove ours (empty by now).
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for hierarchy in hierarchies.flatten() {
                let _ = std::fs::remove_dir(hierarchy.path().join(self.cgroup_parent()));
            }
        }
        let _ = Command::new("kill")
            .arg(self.process.id().to_string())
            .status();
        let start = Instant::now();
        while self.process.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.process.kill();
                let _ = self.process.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A tar of (path, content) pairs.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Deterministic bytes that do not compress to nothing.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u8
        })
        .collect()
}

fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": sha256_digest(data), "size": data.len()})
}

fn blob_entry(data: &[u8]) -> String {
    format!("blobs/{}", sha256_digest(data).replace(':', "/"))
}

/// An image: its layers (uncompressed tars) and config.
struct TestImage {
    layers: Vec<Vec<u8>>,
    config: Vec<u8>,
}

impl TestImage {
    fn new(seed: u64) -> TestImage {
        // A small layer and one of several chunks, so the writer sends offsets > 0.
        let layers = vec![
            tar_of(&[("etc/hello", format!("hello {seed}\n").as_bytes())]),
            tar_of(&[("data/blob", &noise(2_500_000, seed))]),
        ];
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256_digest(l)).collect::<Vec<_>>()},
        }))
        .unwrap();
        TestImage { layers, config }
    }

    /// An OCI layout naming the image `names` (annotation key, value), as a plain tar.
    fn oci_layout(&self, names: &[(&str, &str)]) -> (Vec<u8>, String) {
        let gz_layer = gzip(&self.layers[0]);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", &self.config),
            "layers": [
                descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &gz_layer),
                descriptor("application/vnd.oci.image.layer.v1.tar", &self.layers[1]),
            ],
        }))
        .unwrap();
        let entries: Vec<serde_json::Value> = names
            .iter()
            .map(|(key, value)| {
                let mut entry = descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
                entry["annotations"] = json!({ *key: value });
                entry
            })
            .collect();
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": entries})).unwrap();
        let paths = [
            blob_entry(&self.config),
            blob_entry(&gz_layer),
            blob_entry(&self.layers[1]),
            blob_entry(&manifest),
        ];
        let archive = tar_of(&[
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            (&paths[0], &self.config),
            (&paths[1], &gz_layer),
            (&paths[2], &self.layers[1]),
            (&paths[3], &manifest),
            ("index.json", &index),
        ]);
        (archive, sha256_digest(&manifest))
    }

    /// A `docker save` archive: one plain and one gzip layer.
    fn docker_archive(&self, tags: &[&str]) -> Vec<u8> {
        let gz_layer = gzip(&self.layers[1]);
        let config_name = format!("{}.json", &sha256_digest(&self.config)[7..]);
        let manifest = serde_json::to_vec(&json!([{
            "Config": config_name,
            "RepoTags": tags,
            "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
        }]))
        .unwrap();
        tar_of(&[
            ("aaa/layer.tar", &self.layers[0]),
            ("bbb/layer.tar", &gz_layer),
            (&config_name, &self.config),
            ("manifest.json", &manifest),
        ])
    }
}

/// Blob digest → labels, and image name → updated-at, read through the API.
async fn snapshot(
    containerd: &Containerd,
) -> (
    BTreeMap<String, BTreeMap<String, String>>,
    BTreeMap<String, String>,
) {
    let channel = k3rs_containerd::channel::connect(&containerd.socket)
        .await
        .unwrap();
    let mut content = ContentClient::new(channel.clone());
    let mut blobs = BTreeMap::new();
    for digest in containerd.content() {
        let mut request = Request::new(InfoRequest {
            digest: digest.clone(),
        });
        request
            .metadata_mut()
            .insert("containerd-namespace", "k8s.io".parse().unwrap());
        let info = content
            .info(request)
            .await
            .unwrap()
            .into_inner()
            .info
            .unwrap();
        let mut labels: BTreeMap<String, String> = info.labels.into_iter().collect();
        labels.insert("(updated)".into(), format!("{:?}", info.updated_at));
        blobs.insert(digest, labels);
    }
    let mut request = Request::new(ListImagesRequest { filters: vec![] });
    request
        .metadata_mut()
        .insert("containerd-namespace", "k8s.io".parse().unwrap());
    let images = ImagesClient::new(channel)
        .list(request)
        .await
        .unwrap()
        .into_inner()
        .images
        .into_iter()
        .map(|i| (i.name, format!("{:?}", i.updated_at)))
        .collect();
    (blobs, images)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_import_into_containerd() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let files = containerd.dir.path().join("archives");
    std::fs::create_dir(&files).unwrap();
    let importer = Importer::connect(&containerd.socket).await.unwrap();

    // One OCI layout, three compressions, three names (a bare-tag entry is not an image).
    let image = TestImage::new(1);
    let mut expected = BTreeMap::new();
    let mut archives = Vec::new();
    for (ext, compress) in [
        ("tar", None::<fn(&[u8]) -> Vec<u8>>),
        ("tar.gz", Some(gzip as fn(&[u8]) -> Vec<u8>)),
        (
            "tar.zst",
            Some((|d: &[u8]| zstd::encode_all(d, 3).unwrap()) as fn(&[u8]) -> Vec<u8>),
        ),
    ] {
        let tag = ext.replace('.', "-");
        let (tar, manifest) = image.oci_layout(&[
            (
                "org.opencontainers.image.ref.name",
                &format!("k3rs/oci-test:{tag}"),
            ),
            ("org.opencontainers.image.ref.name", "bare-tag"),
        ]);
        // The name says nothing: compression is found from the bytes.
        let path = files.join(format!("oci-{tag}.archive"));
        std::fs::write(&path, compress.map_or(tar.clone(), |c| c(&tar))).unwrap();
        expected.insert(format!("docker.io/k3rs/oci-test:{tag}"), manifest);
        archives.push(path);
    }
    let docker = TestImage::new(2);
    let docker_path = files.join("docker.tar");
    std::fs::write(
        &docker_path,
        docker.docker_archive(&["k3rs/docker-test:1", "docker-test"]),
    )
    .unwrap();
    archives.push(docker_path.clone());

    let mut imported = BTreeMap::new();
    for path in &archives {
        for image in importer.import(&ImageArchive::file(path)).await.unwrap() {
            assert_eq!(image.change, ImageChange::Created, "{image:?}");
            imported.insert(image.name, image.target);
        }
    }
    let pause_image = pause::import(&importer).await.unwrap();
    assert_eq!(pause_image.name, PAUSE_IMAGE);
    assert_eq!(pause_image.change, ImageChange::Created);
    assert_eq!(pause_image.target, pause::image().unwrap().manifest_digest);

    // The docker conversion gives exactly what `ctr images import` gives.
    containerd.ctr_ok(
        "compare",
        &["images", "import", docker_path.to_str().unwrap()],
    );
    let by_ctr = containerd.images("compare");
    assert_eq!(
        by_ctr["docker.io/k3rs/docker-test:1"],
        imported["docker.io/k3rs/docker-test:1"]
    );
    assert_eq!(
        by_ctr["docker.io/library/docker-test:latest"],
        imported["docker.io/library/docker-test:latest"]
    );
    for (name, manifest) in &expected {
        assert_eq!(&imported[name], manifest, "{name}");
    }

    let listed = containerd.images("k8s.io");
    let mut names: Vec<&String> = listed.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "docker.io/k3rs/docker-test:1",
            "docker.io/k3rs/oci-test:tar",
            "docker.io/k3rs/oci-test:tar-gz",
            "docker.io/k3rs/oci-test:tar-zst",
            "docker.io/k3rs/pause:3.10",
            "docker.io/library/docker-test:latest",
        ]
    );
    for (name, target) in &listed {
        assert_eq!(
            &imported.get(name).unwrap_or(&pause_image.target),
            &target,
            "{name}"
        );
    }
    assert!(
        containerd
            .ctr_ok("k8s.io", &["leases", "ls", "-q"])
            .trim()
            .is_empty(),
        "the import leases are gone"
    );

    // A second import changes nothing: no blob, label or image record is touched.
    let before = snapshot(&containerd).await;
    for path in &archives {
        for image in importer.import(&ImageArchive::file(path)).await.unwrap() {
            assert_eq!(image.change, ImageChange::Unchanged, "{image:?}");
        }
    }
    assert_eq!(
        pause::import(&importer).await.unwrap().change,
        ImageChange::Unchanged
    );
    assert_eq!(snapshot(&containerd).await, before);

    // Moving a name to another target updates it.
    let moved = TestImage::new(3);
    let (tar, manifest) =
        moved.oci_layout(&[("io.containerd.image.name", "docker.io/k3rs/oci-test:tar")]);
    let moved_path = files.join("moved.tar");
    std::fs::write(&moved_path, tar).unwrap();
    let result = importer
        .import(&ImageArchive::file(&moved_path))
        .await
        .unwrap();
    assert_eq!(result[0].change, ImageChange::Updated);
    assert_eq!(result[0].target, manifest);

    // Garbage collection keeps everything the images reference (through the GC labels), and
    // does run: the moved name's old blobs are still held by the other two OCI names, while the
    // victim's own layer goes.
    let victim = TestImage::new(4);
    let (tar, _) = victim.oci_layout(&[("io.containerd.image.name", "k3rs/victim:1")]);
    let victim_path = files.join("victim.tar");
    std::fs::write(&victim_path, tar).unwrap();
    importer
        .import(&ImageArchive::file(&victim_path))
        .await
        .unwrap();
    let victim_layer = sha256_digest(&victim.layers[1]);
    assert!(containerd.content().contains(&victim_layer));
    containerd.ctr_ok(
        "k8s.io",
        &["images", "rm", "--sync", "docker.io/k3rs/victim:1"],
    );
    let content = containerd.content();
    assert!(
        !content.contains(&victim_layer),
        "GC ran and took the victim's layer"
    );
    for layer in image
        .layers
        .iter()
        .chain(&docker.layers[..1])
        .chain(&moved.layers)
    {
        let digest = sha256_digest(layer);
        let gz = sha256_digest(&gzip(layer));
        assert!(
            content.contains(&digest) || content.contains(&gz),
            "layer {digest} kept"
        );
    }
    let check = containerd.ctr_ok("k8s.io", &["images", "check"]);
    let lines: Vec<&str> = check.lines().skip(1).collect();
    assert_eq!(lines.len(), 6, "{check}");
    for line in lines {
        assert!(line.contains("complete"), "every image is complete: {line}");
    }

    // A blob whose bytes do not match its name is refused, and nothing is left behind.
    let bad = TestImage::new(5);
    let (tar, _) = bad.oci_layout(&[("io.containerd.image.name", "k3rs/bad:1")]);
    let mut tampered = tar.clone();
    let at = tampered
        .windows(16)
        .position(|w| w == &bad.layers[1][1_000_000..1_000_016])
        .unwrap();
    tampered[at] ^= 0xff;
    let bad_path = files.join("bad.tar");
    std::fs::write(&bad_path, tampered).unwrap();
    let err = importer
        .import(&ImageArchive::file(&bad_path))
        .await
        .unwrap_err();
    match &err {
        ImportError::Archive(archive) => {
            assert!(archive.to_string().contains("bad.tar"), "{err}");
            assert_eq!(
                archive.entry.as_deref(),
                Some(blob_entry(&bad.layers[1]).as_str())
            );
            assert!(archive.to_string().contains("digest"), "{err}");
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!containerd
        .images("k8s.io")
        .contains_key("docker.io/k3rs/bad:1"));
    assert!(!containerd
        .content()
        .contains(&sha256_digest(&bad.layers[1])));
    assert!(containerd
        .ctr_ok("k8s.io", &["leases", "ls", "-q"])
        .trim()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_of_the_same_blobs_both_succeed() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let importer = Importer::connect(&containerd.socket).await.unwrap();
    let image = TestImage::new(6);
    let mut paths = Vec::new();
    for name in ["k3rs/same:a", "k3rs/same:b"] {
        let (tar, _) = image.oci_layout(&[("io.containerd.image.name", name)]);
        let path = containerd
            .dir
            .path()
            .join(format!("{}.tar", name.replace([':', '/'], "-")));
        std::fs::write(&path, tar).unwrap();
        paths.push(ImageArchive::file(path));
    }
    let (a, b) = tokio::join!(importer.import(&paths[0]), importer.import(&paths[1]));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a[0].target, b[0].target);
    let check = containerd.ctr_ok("k8s.io", &["images", "check"]);
    assert_eq!(
        check.lines().filter(|l| l.contains("complete")).count(),
        2,
        "{check}"
    );
}

fn runc_works() -> Result<(), String> {
    match Command::new("runc").arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "runc --version failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(err) => Err(format!("runc is not installed: {err}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pause_image_runs_and_stops_on_sigterm() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    if let Err(reason) = runc_works() {
        eprintln!("skipping: {reason}");
        return;
    }
    let importer = Importer::connect(&containerd.socket).await.unwrap();
    pause::import(&importer).await.unwrap();

    let cgroup = format!("/{}/pause-test", containerd.cgroup_parent());
    let mut run = containerd
        .ctr_command(
            "k8s.io",
            &[
                "run",
                "--rm",
                "--cgroup",
                &cgroup,
                PAUSE_IMAGE,
                "pause-test",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let tasks = containerd.ctr_ok("k8s.io", &["tasks", "ls"]);
        if tasks
            .lines()
            .any(|l| l.starts_with("pause-test") && l.contains("RUNNING"))
        {
            break;
        }
        if let Some(status) = run.try_wait().unwrap() {
            let output = run.wait_with_output().unwrap();
            panic!(
                "ctr run exited with {status} before the task ran: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                containerd.log()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the task never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // It stays up.
    std::thread::sleep(Duration::from_millis(300));
    assert!(run.try_wait().unwrap().is_none(), "pause keeps running");

    let killed = Instant::now();
    containerd.ctr_ok(
        "k8s.io",
        &["tasks", "kill", "--signal", "SIGTERM", "pause-test"],
    );
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "pause ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "pause exits 0 on SIGTERM");
    assert!(killed.elapsed() < Duration::from_secs(5));
}
