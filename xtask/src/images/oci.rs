//! OCI image layout archives (`oci-archive`): one gzipped layer, config, manifest, index.
//!
//! Every JSON document is written compactly with its keys in sorted order (struct fields are
//! declared alphabetically by their JSON names; maps are `BTreeMap`s), and the archive itself is
//! a [`tarball::tar`](super::tarball::tar) of an in-memory [`Tree`], so identical inputs give
//! identical digests.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::deb::hex;
use super::tarball;
use super::tree::{Node, Tree};

pub(crate) const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The OCI annotation tools read an image's name from (skopeo, `ctr images import`).
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's own name annotation, which `ctr images import` prefers over the OCI one.
pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// The platform an image runs on, in OCI's (Go's) spelling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Platform {
    pub(crate) architecture: String,
    pub(crate) os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
}

impl Platform {
    /// The Linux platform of a Debian architecture name.
    pub(crate) fn from_debian_arch(arch: &str) -> Result<Platform> {
        let (architecture, variant) = match arch {
            "amd64" => ("amd64", None),
            "arm64" => ("arm64", Some("v8")),
            "armhf" => ("arm", Some("v7")),
            "armel" => ("arm", Some("v5")),
            "i386" => ("386", None),
            "ppc64el" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            "mips64el" => ("mips64le", None),
            other => bail!("no OCI platform known for Debian architecture {other:?}"),
        };
        Ok(Platform {
            architecture: architecture.to_owned(),
            os: "linux".to_owned(),
            variant: variant.map(str::to_owned),
        })
    }
}

/// An empty JSON object, the value type of `ExposedPorts`.
#[derive(Debug, Serialize)]
struct Empty {}

/// The runtime defaults of an image (the `config` object of the image config), with OCI's
/// capitalised keys.
#[derive(Debug, Default, Serialize)]
pub(crate) struct RuntimeConfig {
    #[serde(rename = "Cmd", skip_serializing_if = "Vec::is_empty")]
    pub(crate) cmd: Vec<String>,
    #[serde(rename = "Entrypoint", skip_serializing_if = "Vec::is_empty")]
    pub(crate) entrypoint: Vec<String>,
    #[serde(rename = "Env", skip_serializing_if = "Vec::is_empty")]
    pub(crate) env: Vec<String>,
    #[serde(
        rename = "ExposedPorts",
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "exposed_ports"
    )]
    pub(crate) exposed_ports: Vec<String>,
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(rename = "StopSignal", skip_serializing_if = "Option::is_none")]
    pub(crate) stop_signal: Option<String>,
    #[serde(rename = "User", skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    #[serde(rename = "WorkingDir", skip_serializing_if = "Option::is_none")]
    pub(crate) working_dir: Option<String>,
}

fn exposed_ports<S: serde::Serializer>(ports: &[String], s: S) -> Result<S::Ok, S::Error> {
    let map: BTreeMap<&str, Empty> = ports.iter().map(|p| (p.as_str(), Empty {})).collect();
    map.serialize(s)
}

/// Everything about an image except its files.
#[derive(Debug)]
pub(crate) struct ImageMeta {
    /// The full reference, `docker.io/k3rs/busybox:1.35.0`.
    pub(crate) reference: String,
    pub(crate) platform: Platform,
    /// Modification time of every file and the image's `created` time, in Unix seconds.
    pub(crate) epoch: u64,
    pub(crate) config: RuntimeConfig,
    /// Annotations on the manifest.
    pub(crate) annotations: BTreeMap<String, String>,
    /// The history entry's `created_by`: what built the layer.
    pub(crate) created_by: String,
}

/// A finished archive and the digests worth printing.
#[derive(Debug)]
pub(crate) struct OciArchive {
    pub(crate) bytes: Vec<u8>,
    pub(crate) manifest_digest: String,
    pub(crate) config_digest: String,
    pub(crate) layer_digest: String,
    /// The sha256 of the uncompressed layer, as listed in the config's `rootfs.diff_ids`.
    pub(crate) diff_id: String,
}

#[derive(Serialize)]
struct Descriptor<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    digest: String,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<&'a Platform>,
    size: u64,
}

impl<'a> Descriptor<'a> {
    fn of(media_type: &'a str, blob: &[u8]) -> Descriptor<'a> {
        Descriptor {
            annotations: BTreeMap::new(),
            digest: digest(blob),
            media_type,
            platform: None,
            size: blob.len() as u64,
        }
    }
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    config: &'a RuntimeConfig,
    created: &'a str,
    history: [History<'a>; 1],
    os: &'a str,
    rootfs: RootFs,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'a str,
}

#[derive(Serialize)]
struct RootFs {
    diff_ids: Vec<String>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
}

#[derive(Serialize)]
struct Index<'a> {
    manifests: Vec<Descriptor<'a>>,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
}

#[derive(Serialize)]
struct Layout {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: &'static str,
}

/// `sha256:<hex>` of `data`.
pub(crate) fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// Builds the OCI layout of a one-layer image holding `rootfs` and returns it as a tar.
pub(crate) fn build(rootfs: &Tree, meta: &ImageMeta) -> Result<OciArchive> {
    let layer_tar = tarball::tar(rootfs, meta.epoch)?;
    let diff_id = digest(&layer_tar);
    let layer = tarball::gzip(&layer_tar)?;
    drop(layer_tar);

    let created = rfc3339(meta.epoch);
    let config = serde_json::to_vec(&ImageConfig {
        architecture: &meta.platform.architecture,
        config: &meta.config,
        created: &created,
        history: [History {
            created: &created,
            created_by: &meta.created_by,
        }],
        os: &meta.platform.os,
        rootfs: RootFs {
            diff_ids: vec![diff_id.clone()],
            kind: "layers",
        },
        variant: meta.platform.variant.as_deref(),
    })
    .context("encoding image config")?;

    let manifest = serde_json::to_vec(&Manifest {
        annotations: &meta.annotations,
        config: Descriptor::of(MEDIA_TYPE_CONFIG, &config),
        layers: vec![Descriptor::of(MEDIA_TYPE_LAYER_GZIP, &layer)],
        media_type: MEDIA_TYPE_MANIFEST,
        schema_version: 2,
    })
    .context("encoding manifest")?;

    let mut manifest_descriptor = Descriptor::of(MEDIA_TYPE_MANIFEST, &manifest);
    manifest_descriptor.platform = Some(&meta.platform);
    manifest_descriptor.annotations = BTreeMap::from([
        (
            ANNOTATION_CONTAINERD_NAME.to_owned(),
            meta.reference.clone(),
        ),
        (ANNOTATION_REF_NAME.to_owned(), meta.reference.clone()),
    ]);
    let index = serde_json::to_vec(&Index {
        manifests: vec![manifest_descriptor],
        media_type: MEDIA_TYPE_INDEX,
        schema_version: 2,
    })
    .context("encoding index")?;
    let layout = serde_json::to_vec(&Layout {
        image_layout_version: "1.0.0",
    })
    .context("encoding oci-layout")?;

    let out = OciArchive {
        bytes: Vec::new(),
        manifest_digest: digest(&manifest),
        config_digest: digest(&config),
        layer_digest: digest(&layer),
        diff_id,
    };
    let mut tree = Tree::new();
    for blob in [config, layer, manifest] {
        let name = digest(&blob).replace(':', "/");
        tree.insert(&format!("/blobs/{name}"), Node::file(0o644, blob))?;
    }
    tree.insert("/index.json", Node::file(0o644, index))?;
    tree.insert("/oci-layout", Node::file(0o644, layout))?;
    Ok(OciArchive {
        bytes: tarball::tar(&tree, meta.epoch)?,
        ..out
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix time `secs` (UTC).
pub(crate) fn rfc3339(secs: u64) -> String {
    jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::MAX)
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Read;

    use serde_json::Value;

    use super::*;

    fn fake_rootfs() -> Tree {
        let mut tree = Tree::new();
        tree.insert("/bin/busybox", Node::file(0o755, &b"\x7fELF fake"[..]))
            .unwrap();
        for applet in ["sh", "ls", "cat"] {
            tree.insert(
                &format!("/bin/{applet}"),
                Node::Symlink {
                    target: "busybox".into(),
                },
            )
            .unwrap();
        }
        tree.insert("/tmp", Node::Dir { mode: 0o1777 }).unwrap();
        tree.insert(
            "/etc/passwd",
            Node::file(0o644, &b"root:x:0:0::/root:/bin/sh\n"[..]),
        )
        .unwrap();
        tree
    }

    fn fake_meta() -> ImageMeta {
        ImageMeta {
            reference: "docker.io/k3rs/fake:1.0".into(),
            platform: Platform::from_debian_arch("amd64").unwrap(),
            epoch: 0,
            config: RuntimeConfig {
                cmd: vec!["sh".into()],
                env: vec!["PATH=/bin".into()],
                exposed_ports: vec!["80/tcp".into()],
                labels: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
                ..RuntimeConfig::default()
            },
            annotations: BTreeMap::from([("x".into(), "y".into())]),
            created_by: "test".into(),
        }
    }

    /// The archive's files by path.
    fn unpack(archive: &[u8]) -> HashMap<String, Vec<u8>> {
        let mut out = HashMap::new();
        let mut tar = tar::Archive::new(archive);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type() == tar::EntryType::Regular {
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                out.insert(path, data);
            }
        }
        out
    }

    fn blob<'a>(files: &'a HashMap<String, Vec<u8>>, descriptor: &Value) -> &'a [u8] {
        let digest = descriptor["digest"].as_str().unwrap();
        let data = &files[&format!("blobs/{}", digest.replace(':', "/"))];
        assert_eq!(super::digest(data), digest, "blob content matches its name");
        assert_eq!(descriptor["size"].as_u64().unwrap(), data.len() as u64);
        data
    }

    /// Parses `data` and checks it is the canonical encoding: compact, keys sorted.
    fn canonical_json(data: &[u8]) -> Value {
        let value: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(serde_json::to_vec(&value).unwrap(), data, "canonical JSON");
        value
    }

    #[test]
    fn building_twice_gives_the_same_archive() {
        let first = build(&fake_rootfs(), &fake_meta()).unwrap();
        let second = build(&fake_rootfs(), &fake_meta()).unwrap();
        assert_eq!(first.manifest_digest, second.manifest_digest);
        assert_eq!(first.layer_digest, second.layer_digest);
        assert_eq!(first.bytes, second.bytes);

        let mut other = fake_rootfs();
        other
            .insert("/etc/group", Node::file(0o644, &b"root:x:0:\n"[..]))
            .unwrap();
        let third = build(&other, &fake_meta()).unwrap();
        assert_ne!(first.manifest_digest, third.manifest_digest);
    }

    #[test]
    fn the_layout_is_consistent() {
        let built = build(&fake_rootfs(), &fake_meta()).unwrap();
        let files = unpack(&built.bytes);
        let layout = canonical_json(&files["oci-layout"]);
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");

        let index = canonical_json(&files["index.json"]);
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["mediaType"], MEDIA_TYPE_INDEX);
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(
            entries.len(),
            1,
            "one image per archive, so no ref is needed"
        );
        let entry = &entries[0];
        assert_eq!(
            entry["annotations"][ANNOTATION_REF_NAME],
            "docker.io/k3rs/fake:1.0"
        );
        assert_eq!(
            entry["annotations"][ANNOTATION_CONTAINERD_NAME],
            "docker.io/k3rs/fake:1.0"
        );
        assert_eq!(entry["platform"]["architecture"], "amd64");
        assert_eq!(entry["digest"], built.manifest_digest.as_str());

        let manifest = canonical_json(blob(&files, entry));
        assert_eq!(manifest["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(manifest["annotations"]["x"], "y");
        let config = canonical_json(blob(&files, &manifest["config"]));
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], MEDIA_TYPE_LAYER_GZIP);
        let layer = blob(&files, &layers[0]);

        let mut uncompressed = Vec::new();
        flate2::read::GzDecoder::new(layer)
            .read_to_end(&mut uncompressed)
            .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            digest(&uncompressed).as_str()
        );
        assert_eq!(config["rootfs"]["diff_ids"][0], built.diff_id.as_str());
        assert_eq!(config["created"], "1970-01-01T00:00:00Z");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["Cmd"][0], "sh");
        assert_eq!(
            config["config"]["ExposedPorts"]["80/tcp"],
            serde_json::json!({})
        );
        assert_eq!(config["config"]["Labels"]["a"], "1");
        assert!(config["config"].get("Entrypoint").is_none());
    }

    #[test]
    fn rfc3339_formats_unix_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn debian_architectures_map_to_oci_platforms() {
        assert_eq!(
            Platform::from_debian_arch("i386").unwrap().architecture,
            "386"
        );
        let arm64 = Platform::from_debian_arch("arm64").unwrap();
        assert_eq!(arm64.variant.as_deref(), Some("v8"));
        assert!(Platform::from_debian_arch("all").is_err());
    }
}
