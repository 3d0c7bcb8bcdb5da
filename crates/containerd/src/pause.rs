//! The pause image, embedded in the binary so that a pod sandbox never needs a registry.
//!
//! `rootfs/pause/pause.c`, compiled by the build script, is the whole image: one uncompressed
//! layer holding `/pause` (mode 0755, owner 0:0, mtime 0), a config that runs it as
//! 65535:65535 like upstream's pause, an OCI manifest and an index naming it [`PAUSE_IMAGE`].
//! Everything is built in memory and byte-identical on every call, so the digests only change
//! with the program; [`import`] feeds it to the [`Importer`] like any archive file.

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;

use crate::archive::ImageArchive;
use crate::import::{ImportError, ImportedImage, Importer};
use crate::oci::{self, Descriptor, Platform};

/// The name of the embedded pause image, for containerd's `sandbox_image`.
pub const PAUSE_IMAGE: &str = "docker.io/k3rs/pause:3.10";

/// The tag part of [`PAUSE_IMAGE`], the index entry's `org.opencontainers.image.ref.name`.
const PAUSE_TAG: &str = "3.10";

/// The freestanding static `pause` program for the target architecture.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// Upstream pause's user: nobody needs to be root to hold namespaces open.
const PAUSE_USER: &str = "65535:65535";

const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Building or importing the pause image failed.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("building the pause image's layer")]
    Layer(#[source] io::Error),
    #[error("encoding the pause image's {0}")]
    Encode(&'static str, #[source] serde_json::Error),
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// The pause image, built.
#[derive(Debug, Clone)]
pub struct PauseImage {
    /// The OCI image layout, as a tar.
    pub archive: Vec<u8>,
    /// The one layer: a tar of `/pause`.
    pub layer: Vec<u8>,
    /// The digest of the manifest, the image's target.
    pub manifest_digest: String,
}

/// The platform the binary was built for.
fn platform() -> Platform {
    let (architecture, variant) = if cfg!(target_arch = "aarch64") {
        ("arm64", Some("v8"))
    } else {
        ("amd64", None)
    };
    Platform {
        architecture: architecture.to_owned(),
        os: "linux".to_owned(),
        variant: variant.map(str::to_owned),
    }
}

/// Image config keys in sorted order, as the JSON is written.
#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    config: RuntimeConfig,
    created: &'static str,
    os: &'a str,
    rootfs: RootFs,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

#[derive(Serialize)]
struct RuntimeConfig {
    #[serde(rename = "Entrypoint")]
    entrypoint: [&'static str; 1],
    #[serde(rename = "User")]
    user: &'static str,
    #[serde(rename = "WorkingDir")]
    working_dir: &'static str,
}

#[derive(Serialize)]
struct RootFs {
    diff_ids: [String; 1],
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: &'a Descriptor,
    layers: [&'a Descriptor; 1],
}

#[derive(Serialize)]
struct Index<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: [&'a Descriptor; 1],
}

fn descriptor(media_type: &str, blob: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: oci::sha256_digest(blob),
        size: blob.len() as u64,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

/// A tar of `files` (path, mode, content), every entry owned by 0:0 with mtime 0 and no names.
fn tar(files: &[(&str, u32, &[u8])]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(*mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, path, *data)?;
    }
    builder.into_inner()
}

/// Builds the pause image.
pub fn image() -> Result<PauseImage, PauseError> {
    let layer = tar(&[("pause", 0o755, PAUSE_BINARY)]).map_err(PauseError::Layer)?;
    let platform = platform();
    let config = serde_json::to_vec(&ImageConfig {
        architecture: &platform.architecture,
        config: RuntimeConfig {
            entrypoint: ["/pause"],
            user: PAUSE_USER,
            working_dir: "/",
        },
        created: EPOCH,
        os: &platform.os,
        rootfs: RootFs {
            diff_ids: [oci::sha256_digest(&layer)],
            kind: "layers",
        },
        variant: platform.variant.as_deref(),
    })
    .map_err(|e| PauseError::Encode("config", e))?;
    let config_descriptor = descriptor(oci::MEDIA_TYPE_OCI_CONFIG, &config);
    let layer_descriptor = descriptor(oci::MEDIA_TYPE_OCI_LAYER, &layer);
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: oci::MEDIA_TYPE_OCI_MANIFEST,
        config: &config_descriptor,
        layers: [&layer_descriptor],
    })
    .map_err(|e| PauseError::Encode("manifest", e))?;
    let mut manifest_descriptor = descriptor(oci::MEDIA_TYPE_OCI_MANIFEST, &manifest);
    manifest_descriptor.annotations = BTreeMap::from([
        (
            oci::ANNOTATION_IMAGE_NAME.to_owned(),
            PAUSE_IMAGE.to_owned(),
        ),
        (oci::ANNOTATION_REF_NAME.to_owned(), PAUSE_TAG.to_owned()),
    ]);
    manifest_descriptor.platform = Some(platform);
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: oci::MEDIA_TYPE_OCI_INDEX,
        manifests: [&manifest_descriptor],
    })
    .map_err(|e| PauseError::Encode("index", e))?;

    let blob_path = |descriptor: &Descriptor| descriptor.digest.replacen(':', "/", 1);
    let (config_path, layer_path) = (
        format!("blobs/{}", blob_path(&config_descriptor)),
        format!("blobs/{}", blob_path(&layer_descriptor)),
    );
    let manifest_path = format!("blobs/{}", blob_path(&manifest_descriptor));
    let archive = tar(&[
        ("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", 0o644, &index),
        (&config_path, 0o644, &config),
        (&layer_path, 0o644, &layer),
        (&manifest_path, 0o644, &manifest),
    ])
    .map_err(PauseError::Layer)?;
    Ok(PauseImage {
        archive,
        layer,
        manifest_digest: manifest_descriptor.digest,
    })
}

/// The pause image as an archive to import.
pub fn archive() -> Result<ImageArchive, PauseError> {
    Ok(ImageArchive::memory(PAUSE_IMAGE, image()?.archive))
}

/// Imports the pause image into containerd (nothing is written when it is there already).
pub async fn import(importer: &Importer) -> Result<ImportedImage, PauseError> {
    let archive = archive()?;
    let mut imported = importer.import(&archive).await?;
    // The archive names exactly one image (the plan refuses an archive that names none).
    imported.pop().ok_or_else(|| {
        PauseError::Import(ImportError::Archive(
            archive.error(crate::archive::Problem::NoNamedImages),
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn the_image_is_byte_identical_across_calls() {
        let (first, second) = (image().unwrap(), image().unwrap());
        assert_eq!(first.layer, second.layer);
        assert_eq!(first.archive, second.archive);
        assert_eq!(first.manifest_digest, second.manifest_digest);

        let mut layer = tar::Archive::new(&first.layer[..]);
        let mut entries = layer.entries().unwrap();
        let mut pause = entries.next().unwrap().unwrap();
        let header = pause.header().clone();
        assert_eq!(pause.path().unwrap().to_str(), Some("pause"));
        assert_eq!(
            (
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap()
            ),
            (0o755, 0, 0)
        );
        assert_eq!(header.mtime().unwrap(), 0);
        let mut content = Vec::new();
        pause.read_to_end(&mut content).unwrap();
        assert_eq!(content, PAUSE_BINARY);
        assert!(entries.next().is_none(), "only /pause");
    }

    #[test]
    fn the_archive_names_one_image_with_three_blobs() {
        let archive = archive().unwrap();
        let scan = crate::archive::scan(&archive).unwrap();
        let plan = crate::plan::plan(&archive, &scan).unwrap();
        assert_eq!(plan.images.keys().collect::<Vec<_>>(), [PAUSE_IMAGE]);
        assert_eq!(
            plan.images[PAUSE_IMAGE].digest,
            image().unwrap().manifest_digest
        );
        assert_eq!(plan.blobs.len(), 3);

        let config: serde_json::Value = match &plan.blobs[0].source {
            crate::plan::BlobSource::Memory(bytes) => serde_json::from_slice(bytes).unwrap(),
            other => panic!("config source {other:?}"),
        };
        assert_eq!(config["config"]["Entrypoint"][0], "/pause");
        assert_eq!(config["config"]["User"], PAUSE_USER);
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], platform().architecture);
    }

    #[test]
    fn the_binary_is_static_and_small() {
        assert_eq!(&PAUSE_BINARY[..4], b"\x7fELF");
        assert!(
            PAUSE_BINARY.len() < 64 << 10,
            "{} bytes",
            PAUSE_BINARY.len()
        );
    }

    /// The binary written out to run it.
    fn pause_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pause");
        std::fs::write(&path, PAUSE_BINARY).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    fn signal(pid: u32, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {pid}");
    }

    fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn pause_runs_until_sigterm_and_then_exits_0() {
        let (_dir, path) = pause_file();
        let mut child = Command::new(&path).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "pause stays up");
        signal(child.id(), "CHLD");
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().unwrap().is_none(),
            "SIGCHLD does not stop it"
        );

        signal(child.id(), "TERM");
        let start = Instant::now();
        let mut status = None;
        wait_until("pause exits", Duration::from_secs(2), || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(status.and_then(|s| s.code()), Some(0));

        let mut child = Command::new(&path).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        signal(child.id(), "INT");
        assert_eq!(child.wait().unwrap().code(), Some(0), "SIGINT too");
    }

    /// The parent pid and state of process `pid`, from `/proc/<pid>/stat`.
    fn ppid_and_state(pid: u32) -> Option<(u32, char)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split(' ');
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        Some((ppid, state))
    }

    fn children_of(pid: u32) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| ppid_and_state(*p).is_some_and(|(ppid, _)| ppid == pid))
            .collect()
    }

    #[test]
    fn pause_reaps_the_children_it_inherits() {
        // `sh` starts a short-lived child and then becomes pause (exec keeps the pid, and the
        // child): when the child exits, pause gets SIGCHLD and must reap it.
        let (_dir, path) = pause_file();
        let mut pause = Command::new("sh")
            .args(["-c", "sleep 0.3 & exec \"$0\""])
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = pause.id();
        let exe = std::fs::canonicalize(&path).unwrap();
        wait_until("sh execs pause", Duration::from_secs(5), || {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe)
        });
        let children = children_of(pid);
        assert_eq!(children.len(), 1, "the sleep child: {children:?}");
        let sleep = children[0];
        wait_until("the child is reaped", Duration::from_secs(5), || {
            ppid_and_state(sleep).is_none_or(|(ppid, _)| ppid != pid)
        });
        assert!(pause.try_wait().unwrap().is_none(), "pause is still up");
        signal(pid, "TERM");
        assert_eq!(pause.wait().unwrap().code(), Some(0));
    }
}
