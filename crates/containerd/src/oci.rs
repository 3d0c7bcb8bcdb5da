//! OCI and Docker image documents as far as import needs them: media types, descriptors, the
//! index and manifest shapes, and containerd's garbage-collection reference labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// containerd's image name annotation, preferred by its importer.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI reference name annotation: a full name, or (as the OCI spec suggests) only a tag.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The content label that keeps a blob's children from containerd's garbage collector.
const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content.";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The platform of a manifest in an index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI content descriptor. Fields are declared in the order Go's `ocispec.Descriptor`
/// marshals them, so a document built from these is byte-identical to containerd's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The Docker schema 2 manifest containerd writes for a `docker save` image; field order is
/// that of containerd's importer, so the digests agree with `ctr images import`.
#[derive(Debug, Serialize)]
pub struct DockerManifest<'a> {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: &'static str,
    pub config: &'a Descriptor,
    pub layers: &'a [Descriptor],
}

pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_INDEX || media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_OCI_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST
}

fn is_config(media_type: &str) -> bool {
    // containerd's `IsKnownConfig`: the image configs and its checkpoint configs.
    matches!(
        media_type,
        MEDIA_TYPE_OCI_CONFIG
            | MEDIA_TYPE_DOCKER_CONFIG
            | "application/vnd.containerd.container.criu.checkpoint.criu.tar"
            | "application/vnd.containerd.container.checkpoint.config.v1+proto"
    )
}

fn is_layer(media_type: &str) -> bool {
    // containerd's `IsLayerType`.
    if media_type.starts_with("application/vnd.oci.image.layer.") {
        return true;
    }
    let base = media_type.split_once('+').map_or(media_type, |(b, _)| b);
    matches!(
        base,
        MEDIA_TYPE_DOCKER_LAYER
            | MEDIA_TYPE_DOCKER_LAYER_GZIP
            | "application/vnd.docker.image.rootfs.foreign.diff.tar"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
            | "application/vnd.erofs.layer.v1"
    )
}

/// The labels a parent blob carries so that containerd's garbage collector keeps its
/// `children` (in document order), keyed as containerd's `SetChildrenMappedLabels` with
/// `ChildGCLabels` keys them: `…config` for the config, `…l.<i>` for the i-th layer, `…m.<i>`
/// for the i-th manifest of an index, `…<i>` for anything else (a nested index), each counter
/// running over the children of its kind. (containerd 2.x adds keys for referrers, which an
/// archive import does not create.)
pub fn gc_labels(children: &[Descriptor]) -> BTreeMap<String, String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut labels = BTreeMap::new();
    for child in children {
        let base = if is_config(&child.media_type) {
            format!("{GC_REF_CONTENT}config")
        } else if is_manifest(&child.media_type) {
            format!("{GC_REF_CONTENT}m.")
        } else if is_layer(&child.media_type) {
            format!("{GC_REF_CONTENT}l.")
        } else {
            GC_REF_CONTENT.to_owned()
        };
        let count = counts.entry(base.clone()).or_default();
        let index = *count;
        *count += 1;
        let key = if index > 0 || base.ends_with('.') {
            format!("{base}{index}")
        } else {
            base
        };
        labels.insert(key, child.digest.clone());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(media_type: &str, digest: &str) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: digest.into(),
            size: 1,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    #[test]
    fn manifest_labels_name_the_config_and_each_layer() {
        let labels = gc_labels(&[
            descriptor(MEDIA_TYPE_OCI_CONFIG, "sha256:c"),
            descriptor("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:l0"),
            descriptor(MEDIA_TYPE_DOCKER_LAYER, "sha256:l1"),
        ]);
        assert_eq!(
            labels,
            BTreeMap::from([
                (
                    "containerd.io/gc.ref.content.config".into(),
                    "sha256:c".into()
                ),
                (
                    "containerd.io/gc.ref.content.l.0".into(),
                    "sha256:l0".into()
                ),
                (
                    "containerd.io/gc.ref.content.l.1".into(),
                    "sha256:l1".into()
                ),
            ])
        );
    }

    #[test]
    fn index_labels_count_manifests_and_other_children_apart() {
        let labels = gc_labels(&[
            descriptor(MEDIA_TYPE_OCI_MANIFEST, "sha256:m0"),
            descriptor(MEDIA_TYPE_OCI_INDEX, "sha256:i0"),
            descriptor(MEDIA_TYPE_DOCKER_MANIFEST, "sha256:m1"),
        ]);
        assert_eq!(
            labels,
            BTreeMap::from([
                (
                    "containerd.io/gc.ref.content.m.0".into(),
                    "sha256:m0".into()
                ),
                (
                    "containerd.io/gc.ref.content.m.1".into(),
                    "sha256:m1".into()
                ),
                ("containerd.io/gc.ref.content.0".into(), "sha256:i0".into()),
            ])
        );
    }

    #[test]
    fn docker_manifest_encodes_as_containerd_does() {
        let config = descriptor(MEDIA_TYPE_DOCKER_CONFIG, "sha256:c");
        let layers = [descriptor(MEDIA_TYPE_DOCKER_LAYER_GZIP, "sha256:l")];
        let json = serde_json::to_string(&DockerManifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_DOCKER_MANIFEST,
            config: &config,
            layers: &layers,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:c","size":1},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:l","size":1}]}"#
        );
    }

    #[test]
    fn digests_are_lowercase_sha256() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
