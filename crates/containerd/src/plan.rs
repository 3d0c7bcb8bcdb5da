//! What importing an archive asks of containerd: its named images and every blob they need,
//! children before parents, each parent with containerd's GC reference labels.
//!
//! Pure: it reads what [`archive::scan`](crate::archive::scan) collected and touches neither
//! the archive nor containerd.
//!
//! - An OCI image layout names its images in `index.json`: an entry's `io.containerd.image.name`,
//!   else its `org.opencontainers.image.ref.name` when that is a full reference. A bare ref
//!   name (`1.0`) is only a tag — `ctr images import` prefixes it with a made-up
//!   `import-<date>` name no pod could ask for — so such an entry, like one without either
//!   annotation, is not imported. Unlike containerd, which keeps an OCI name as written, names
//!   are normalized (`k3rs/pause:3.10` → `docker.io/k3rs/pause:3.10`), since that is the form CRI
//!   looks images up by.
//! - A `docker save` archive (`manifest.json`) is converted as containerd's importer converts it:
//!   a Docker schema 2 manifest over the config and layers, byte for byte the one `ctr images
//!   import` writes, so the digests agree; each `RepoTags` entry, normalized, names it.
//! - A multi-platform index brings whatever platforms the archive holds (k3s imports with
//!   `WithAllPlatforms`): a child manifest or index missing from the archive is skipped; the
//!   config and layers of a manifest that is there must be in the archive or in containerd.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::archive::{detect_compression, ArchiveError, Compression, ImageArchive, Problem, Scan};
use crate::oci::{self, Descriptor};
use crate::reference;

/// The images an archive names and the blobs they need.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Image name → target descriptor (a manifest or an index), in name order.
    pub images: BTreeMap<String, Descriptor>,
    /// Every blob the images need, each once, children before their parents.
    pub blobs: Vec<PlannedBlob>,
}

/// One blob to have in containerd's content store.
#[derive(Debug, Clone)]
pub struct PlannedBlob {
    pub digest: String,
    pub size: u64,
    pub source: BlobSource,
    /// The GC reference labels it must carry (empty for a leaf).
    pub labels: BTreeMap<String, String>,
    /// What refers to it, for messages: a parent's digest or the archive's index.
    pub parent: String,
}

/// Where a blob's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobSource {
    /// Held in memory: a JSON document of the archive, or a converted docker manifest.
    Memory(Arc<[u8]>),
    /// The archive entry at this path, streamed in the second pass.
    Entry(String),
    /// Not in the archive: containerd must already have it.
    Absent,
}

/// Works out what importing `archive` (as `scan` saw it) takes.
pub fn plan(archive: &ImageArchive, scan: &Scan) -> Result<Plan, ArchiveError> {
    let mut planner = Planner {
        archive,
        scan,
        blobs: Vec::new(),
        planned: BTreeSet::new(),
    };
    let images = if let Some(version) = &scan.layout_version {
        if version != "1.0.0" {
            return Err(archive.entry_error("oci-layout", Problem::LayoutVersion(version.clone())));
        }
        planner.oci_layout()?
    } else if let Some(manifest) = &scan.docker_manifest {
        planner.docker_archive(manifest)?
    } else {
        return Err(archive.error(Problem::UnknownFormat));
    };
    if images.is_empty() {
        return Err(archive.error(Problem::NoNamedImages));
    }
    Ok(Plan {
        images,
        blobs: planner.blobs,
    })
}

/// The image name an OCI index entry's annotations give, if any (see the module doc).
pub fn oci_image_name(
    annotations: &BTreeMap<String, String>,
) -> Option<Result<String, reference::ReferenceError>> {
    if let Some(name) = annotations
        .get(oci::ANNOTATION_IMAGE_NAME)
        .filter(|n| !n.is_empty())
    {
        return Some(reference::normalize(name));
    }
    let ref_name = annotations.get(oci::ANNOTATION_REF_NAME)?;
    ref_name
        .contains(['/', ':', '@'])
        .then(|| reference::normalize(ref_name))
}

/// The `org.opencontainers.image.ref.name` containerd writes for a normalized name: its tag,
/// or the whole name when it has a digest instead.
fn oci_reference_name(name: &str) -> String {
    if name.contains('@') {
        return name.to_owned();
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag.to_owned(),
        None => name.to_owned(),
    }
}

/// The archive path of a blob in an OCI layout, `blobs/sha256/<hex>`.
fn blob_path(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| format!("blobs/sha256/{hex}"))
}

struct Planner<'a> {
    archive: &'a ImageArchive,
    scan: &'a Scan,
    blobs: Vec<PlannedBlob>,
    planned: BTreeSet<String>,
}

#[derive(serde::Deserialize)]
struct DockerArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

impl Planner<'_> {
    fn oci_layout(&mut self) -> Result<BTreeMap<String, Descriptor>, ArchiveError> {
        let index_entry = self
            .scan
            .entries
            .get("index.json")
            .ok_or_else(|| self.archive.error(Problem::MissingIndex))?;
        let json = index_entry
            .json
            .as_ref()
            .ok_or_else(|| self.archive.entry_error("index.json", Problem::NotJson))?;
        let index: oci::Index = serde_json::from_slice(json).map_err(|source| {
            self.archive
                .entry_error("index.json", Problem::Json(source))
        })?;
        let mut images = BTreeMap::new();
        for entry in &index.manifests {
            match oci_image_name(&entry.annotations) {
                None => tracing::debug!(
                    archive = %self.archive,
                    digest = %entry.digest,
                    "index.json entry without an image name: not imported"
                ),
                Some(Err(source)) => {
                    return Err(self.archive.entry_error(
                        "index.json",
                        Problem::ImageName {
                            name: entry
                                .annotations
                                .get(oci::ANNOTATION_IMAGE_NAME)
                                .or_else(|| entry.annotations.get(oci::ANNOTATION_REF_NAME))
                                .cloned()
                                .unwrap_or_default(),
                            source,
                        },
                    ))
                }
                Some(Ok(name)) => {
                    self.walk(entry, "index.json")?;
                    images.insert(name, entry.clone());
                }
            }
        }
        Ok(images)
    }

    /// Plans `descriptor` and everything below it.
    fn walk(&mut self, descriptor: &Descriptor, parent: &str) -> Result<(), ArchiveError> {
        if self.planned.contains(&descriptor.digest) {
            return Ok(());
        }
        let media_type = descriptor.media_type.as_str();
        let (document, children) = if oci::is_index(media_type) {
            let document = self.document(descriptor, parent)?;
            let index: oci::Index = self.parse(descriptor, &document)?;
            self.check_media_type(descriptor, index.media_type.as_deref())?;
            for child in &index.manifests {
                let nested =
                    oci::is_index(&child.media_type) || oci::is_manifest(&child.media_type);
                let present = blob_path(&child.digest)
                    .is_some_and(|path| self.scan.entries.contains_key(&path));
                if nested && !present {
                    tracing::debug!(
                        archive = %self.archive,
                        digest = %child.digest,
                        platform = ?child.platform,
                        "manifest not in the archive: skipped"
                    );
                    continue;
                }
                self.walk(child, &descriptor.digest)?;
            }
            (document, index.manifests)
        } else if oci::is_manifest(media_type) {
            let document = self.document(descriptor, parent)?;
            let manifest: oci::Manifest = self.parse(descriptor, &document)?;
            self.check_media_type(descriptor, manifest.media_type.as_deref())?;
            let mut children = vec![manifest.config];
            children.extend(manifest.layers);
            for child in &children {
                self.leaf(child, &descriptor.digest)?;
            }
            (document, children)
        } else {
            return self.leaf(descriptor, parent);
        };
        self.push(PlannedBlob {
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            source: BlobSource::Memory(document),
            labels: oci::gc_labels(&children),
            parent: parent.to_owned(),
        });
        Ok(())
    }

    /// Plans a blob without children (a config, a layer, anything unknown).
    fn leaf(&mut self, descriptor: &Descriptor, parent: &str) -> Result<(), ArchiveError> {
        if self.planned.contains(&descriptor.digest) {
            return Ok(());
        }
        let path = self.path_of(descriptor)?;
        let source = match self.scan.entries.get(&path) {
            None => BlobSource::Absent,
            Some(entry) => {
                self.check_size(&path, descriptor.size, entry.size)?;
                match &entry.json {
                    Some(json) => {
                        self.check_digest(&path, &descriptor.digest, entry.digest.as_deref())?;
                        BlobSource::Memory(Arc::clone(json))
                    }
                    None => BlobSource::Entry(path),
                }
            }
        };
        self.push(PlannedBlob {
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            source,
            labels: BTreeMap::new(),
            parent: parent.to_owned(),
        });
        Ok(())
    }

    fn push(&mut self, blob: PlannedBlob) {
        self.planned.insert(blob.digest.clone());
        self.blobs.push(blob);
    }

    fn path_of(&self, descriptor: &Descriptor) -> Result<String, ArchiveError> {
        blob_path(&descriptor.digest).ok_or_else(|| {
            self.archive
                .error(Problem::UnsupportedDigest(descriptor.digest.clone()))
        })
    }

    /// The verified content of an index or manifest, which must be in the archive.
    fn document(&self, descriptor: &Descriptor, parent: &str) -> Result<Arc<[u8]>, ArchiveError> {
        let path = self.path_of(descriptor)?;
        let entry = self.scan.entries.get(&path).ok_or_else(|| {
            self.archive
                .entry_error(&path, Problem::MissingEntry(parent.to_owned()))
        })?;
        self.check_size(&path, descriptor.size, entry.size)?;
        let json = entry
            .json
            .as_ref()
            .ok_or_else(|| self.archive.entry_error(&path, Problem::NotJson))?;
        self.check_digest(&path, &descriptor.digest, entry.digest.as_deref())?;
        Ok(Arc::clone(json))
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        descriptor: &Descriptor,
        document: &[u8],
    ) -> Result<T, ArchiveError> {
        serde_json::from_slice(document).map_err(|source| {
            self.archive.entry_error(
                &blob_path(&descriptor.digest).unwrap_or_default(),
                Problem::Json(source),
            )
        })
    }

    fn check_media_type(
        &self,
        descriptor: &Descriptor,
        declared: Option<&str>,
    ) -> Result<(), ArchiveError> {
        match declared {
            Some(declared) if !declared.is_empty() && declared != descriptor.media_type => {
                Err(self.archive.entry_error(
                    &blob_path(&descriptor.digest).unwrap_or_default(),
                    Problem::MediaTypeMismatch {
                        declared: declared.to_owned(),
                        expected: descriptor.media_type.clone(),
                    },
                ))
            }
            _ => Ok(()),
        }
    }

    fn check_size(&self, path: &str, expected: u64, actual: u64) -> Result<(), ArchiveError> {
        if expected == actual {
            Ok(())
        } else {
            Err(self
                .archive
                .entry_error(path, Problem::SizeMismatch { expected, actual }))
        }
    }

    fn check_digest(
        &self,
        path: &str,
        expected: &str,
        actual: Option<&str>,
    ) -> Result<(), ArchiveError> {
        match actual {
            Some(actual) if actual == expected => Ok(()),
            actual => Err(self.archive.entry_error(
                path,
                Problem::DigestMismatch {
                    expected: expected.to_owned(),
                    actual: actual.unwrap_or("unknown").to_owned(),
                },
            )),
        }
    }

    fn docker_archive(
        &mut self,
        manifest_json: &[u8],
    ) -> Result<BTreeMap<String, Descriptor>, ArchiveError> {
        let entries: Vec<DockerArchiveEntry> =
            serde_json::from_slice(manifest_json).map_err(|source| {
                self.archive
                    .entry_error("manifest.json", Problem::Json(source))
            })?;
        let mut images = BTreeMap::new();
        for entry in entries {
            let tags = entry.repo_tags.clone().unwrap_or_default();
            if tags.is_empty() {
                tracing::debug!(archive = %self.archive, config = %entry.config, "docker image without RepoTags: not imported");
                continue;
            }
            let mut names = Vec::new();
            for tag in &tags {
                let name = reference::normalize(tag).map_err(|source| {
                    self.archive.entry_error(
                        "manifest.json",
                        Problem::ImageName {
                            name: tag.clone(),
                            source,
                        },
                    )
                })?;
                names.push(name);
            }
            let target = self.docker_image(&entry)?;
            for name in names {
                let mut descriptor = target.clone();
                descriptor.annotations = BTreeMap::from([
                    (oci::ANNOTATION_IMAGE_NAME.to_owned(), name.clone()),
                    (
                        oci::ANNOTATION_REF_NAME.to_owned(),
                        oci_reference_name(&name),
                    ),
                ]);
                images.insert(name, descriptor);
            }
        }
        Ok(images)
    }

    /// Plans one image of a docker archive and returns its manifest's descriptor.
    fn docker_image(&mut self, entry: &DockerArchiveEntry) -> Result<Descriptor, ArchiveError> {
        let scan = self.scan;
        let config_path = self.resolve(&entry.config)?;
        let config_entry = &scan.entries[&config_path];
        let config_json = config_entry
            .json
            .clone()
            .ok_or_else(|| self.archive.entry_error(&config_path, Problem::NotJson))?;
        let config = Descriptor {
            media_type: oci::MEDIA_TYPE_DOCKER_CONFIG.to_owned(),
            digest: self.entry_digest(&config_path)?,
            size: config_entry.size,
            annotations: BTreeMap::new(),
            platform: None,
        };
        let mut layers = Vec::new();
        let mut sources = Vec::new();
        for layer in &entry.layers {
            let path = self.resolve(layer)?;
            let info = &scan.entries[&path];
            // As containerd: plain tar (or empty) is `…diff.tar`, anything compressed is taken
            // for gzip (containerd's applier detects the real compression from the bytes).
            let media_type = match detect_compression(&info.head) {
                Compression::None => oci::MEDIA_TYPE_DOCKER_LAYER,
                _ => oci::MEDIA_TYPE_DOCKER_LAYER_GZIP,
            };
            layers.push(Descriptor {
                media_type: media_type.to_owned(),
                digest: self.entry_digest(&path)?,
                size: info.size,
                annotations: BTreeMap::new(),
                platform: None,
            });
            sources.push(match &info.json {
                Some(json) => BlobSource::Memory(Arc::clone(json)),
                None => BlobSource::Entry(path),
            });
        }
        let manifest = serde_json::to_vec(&oci::DockerManifest {
            schema_version: 2,
            media_type: oci::MEDIA_TYPE_DOCKER_MANIFEST,
            config: &config,
            layers: &layers,
        })
        .map_err(|source| {
            self.archive
                .entry_error("manifest.json", Problem::Encode(source))
        })?;
        let descriptor = Descriptor {
            media_type: oci::MEDIA_TYPE_DOCKER_MANIFEST.to_owned(),
            digest: oci::sha256_digest(&manifest),
            size: manifest.len() as u64,
            annotations: BTreeMap::new(),
            platform: None,
        };
        if self.planned.contains(&descriptor.digest) {
            return Ok(descriptor);
        }
        let mut children = vec![config.clone()];
        children.extend(layers.iter().cloned());
        let blobs = std::iter::once((config, BlobSource::Memory(config_json)))
            .chain(layers.into_iter().zip(sources));
        for (blob, source) in blobs {
            if !self.planned.contains(&blob.digest) {
                self.push(PlannedBlob {
                    digest: blob.digest,
                    size: blob.size,
                    source,
                    labels: BTreeMap::new(),
                    parent: descriptor.digest.clone(),
                });
            }
        }
        self.push(PlannedBlob {
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            source: BlobSource::Memory(manifest.into()),
            labels: oci::gc_labels(&children),
            parent: "manifest.json".to_owned(),
        });
        Ok(descriptor)
    }

    /// The regular file a `manifest.json` path names, through symbolic links.
    fn resolve(&self, name: &str) -> Result<String, ArchiveError> {
        let Some(mut path) = crate::archive::clean(std::path::Path::new(name)) else {
            return Err(self
                .archive
                .entry_error(name, Problem::MissingEntry("manifest.json".into())));
        };
        for _ in 0..16 {
            if self.scan.entries.contains_key(&path) {
                return Ok(path);
            }
            match self.scan.symlinks.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        Err(if path == name {
            self.archive
                .entry_error(name, Problem::MissingEntry("manifest.json".into()))
        } else {
            self.archive
                .entry_error(name, Problem::DanglingSymlink(path))
        })
    }

    /// The digest of a docker archive entry: hashed in pass 1, or given by a `blobs/` name
    /// (checked in pass 2).
    fn entry_digest(&self, path: &str) -> Result<String, ArchiveError> {
        if let Some(digest) = &self.scan.entries[path].digest {
            return Ok(digest.clone());
        }
        path.strip_prefix("blobs/sha256/")
            .map(|hex| format!("sha256:{hex}"))
            .filter(|digest| blob_path(digest).is_some())
            .ok_or_else(|| {
                self.archive
                    .entry_error(path, Problem::UnsupportedDigest(path.to_owned()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::scan;
    use crate::archive::tests::{gzip, tar_of};

    fn layout_with(index: &serde_json::Value, blobs: &[&[u8]]) -> Vec<u8> {
        let index = serde_json::to_vec(index).unwrap();
        let paths: Vec<String> = blobs
            .iter()
            .map(|b| blob_path(&oci::sha256_digest(b)).unwrap())
            .collect();
        let mut files: Vec<(&str, &[u8])> = vec![
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", &index),
        ];
        files.extend(paths.iter().map(String::as_str).zip(blobs.iter().copied()));
        tar_of(&files)
    }

    fn desc(media_type: &str, data: &[u8]) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": oci::sha256_digest(data), "size": data.len()})
    }

    fn plan_of(bytes: Vec<u8>) -> Result<Plan, ArchiveError> {
        let archive = ImageArchive::memory("test.tar", bytes);
        plan(&archive, &scan(&archive)?)
    }

    #[test]
    fn oci_names_come_from_annotations() {
        let name = |pairs: &[(&str, &str)]| {
            let map = pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            oci_image_name(&map).map(|r| r.unwrap())
        };
        assert_eq!(
            name(&[
                (oci::ANNOTATION_IMAGE_NAME, "busybox:1.36"),
                (oci::ANNOTATION_REF_NAME, "1.36")
            ]),
            Some("docker.io/library/busybox:1.36".into())
        );
        assert_eq!(
            name(&[(oci::ANNOTATION_REF_NAME, "k3rs/busybox:1")]),
            Some("docker.io/k3rs/busybox:1".into())
        );
        assert_eq!(
            name(&[(oci::ANNOTATION_REF_NAME, "1.0")]),
            None,
            "a bare tag"
        );
        assert_eq!(name(&[]), None);
        assert_eq!(oci_reference_name("docker.io/library/busybox:1.36"), "1.36");
        assert_eq!(oci_reference_name("localhost:5000/x"), "localhost:5000/x");
    }

    #[test]
    fn an_oci_layout_plans_children_first_with_gc_labels() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let layer = gzip(b"not really a tar");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::MEDIA_TYPE_OCI_MANIFEST,
            "config": desc(oci::MEDIA_TYPE_OCI_CONFIG, config),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
        }))
        .unwrap();
        let mut entry = desc(oci::MEDIA_TYPE_OCI_MANIFEST, &manifest);
        entry["annotations"] = serde_json::json!({oci::ANNOTATION_REF_NAME: "k3rs/x:1"});
        let mut unnamed = desc(oci::MEDIA_TYPE_OCI_MANIFEST, b"{}");
        unnamed["annotations"] = serde_json::json!({oci::ANNOTATION_REF_NAME: "1.0"});
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry, unnamed]});
        let plan = plan_of(layout_with(&index, &[config, &layer, &manifest])).unwrap();

        assert_eq!(
            plan.images.keys().collect::<Vec<_>>(),
            ["docker.io/k3rs/x:1"]
        );
        assert_eq!(
            plan.images["docker.io/k3rs/x:1"].digest,
            oci::sha256_digest(&manifest)
        );
        let digests: Vec<_> = plan.blobs.iter().map(|b| b.digest.clone()).collect();
        assert_eq!(
            digests,
            [&config[..], &layer[..], &manifest[..]].map(oci::sha256_digest)
        );
        assert_eq!(
            plan.blobs[0].source,
            BlobSource::Memory(Arc::from(&config[..]))
        );
        assert_eq!(
            plan.blobs[1].source,
            BlobSource::Entry(blob_path(&digests[1]).unwrap())
        );
        assert_eq!(
            plan.blobs[2].labels,
            BTreeMap::from([
                (
                    "containerd.io/gc.ref.content.config".into(),
                    digests[0].clone()
                ),
                (
                    "containerd.io/gc.ref.content.l.0".into(),
                    digests[1].clone()
                ),
            ])
        );
    }

    #[test]
    fn a_multi_platform_index_brings_what_the_archive_holds() {
        let config = br#"{"architecture":"arm64","os":"linux"}"#;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::MEDIA_TYPE_OCI_MANIFEST,
            "config": desc(oci::MEDIA_TYPE_OCI_CONFIG, config),
            "layers": [],
        }))
        .unwrap();
        let absent = desc(oci::MEDIA_TYPE_OCI_MANIFEST, b"{\"absent\":1}");
        let image_index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::MEDIA_TYPE_OCI_INDEX,
            "manifests": [absent, desc(oci::MEDIA_TYPE_OCI_MANIFEST, &manifest)],
        }))
        .unwrap();
        let mut entry = desc(oci::MEDIA_TYPE_OCI_INDEX, &image_index);
        entry["annotations"] = serde_json::json!({oci::ANNOTATION_IMAGE_NAME: "quay.io/a/b:c"});
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
        let plan = plan_of(layout_with(&index, &[config, &manifest, &image_index])).unwrap();
        assert_eq!(plan.blobs.len(), 3, "the absent platform is skipped");
        let top = plan.blobs.last().unwrap();
        assert_eq!(top.digest, oci::sha256_digest(&image_index));
        // The index still labels both manifests, as containerd does.
        assert_eq!(top.labels.len(), 2);
        assert_eq!(
            top.labels["containerd.io/gc.ref.content.m.1"],
            oci::sha256_digest(&manifest)
        );
    }

    #[test]
    fn a_wrong_document_digest_is_an_error() {
        let manifest =
            br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1}}"#;
        let mut entry = desc(oci::MEDIA_TYPE_OCI_MANIFEST, manifest);
        entry["annotations"] = serde_json::json!({oci::ANNOTATION_IMAGE_NAME: "a:b"});
        let index = serde_json::to_vec(&serde_json::json!({"manifests": [entry]})).unwrap();
        // The manifest is stored under its digest, but with other bytes of the same size.
        let path = blob_path(&oci::sha256_digest(manifest)).unwrap();
        let mut tampered = manifest.to_vec();
        tampered[1] = b' ';
        let archive = tar_of(&[
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", &index),
            (&path, &tampered),
        ]);
        let err = plan_of(archive).unwrap_err();
        assert!(
            matches!(err.problem, Problem::DigestMismatch { .. }),
            "{err}"
        );
        assert_eq!(err.entry.as_deref(), Some(path.as_str()));
        assert!(
            err.to_string()
                .starts_with("image archive test.tar (in memory), entry blobs/sha256/"),
            "{err}"
        );
    }

    #[test]
    fn a_docker_archive_becomes_a_schema2_manifest() {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#;
        let plain_layer = tar_of(&[("hello", b"world")]);
        let gzip_layer = gzip(&plain_layer);
        let manifest_json = serde_json::to_vec(&serde_json::json!([{
            "Config": "cfg.json",
            "RepoTags": ["busybox:1.36", "k3rs/busybox:1"],
            "Layers": ["a/layer.tar", "b/layer.tar", "c/layer.tar"],
        }]))
        .unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in [
            ("manifest.json", &manifest_json[..]),
            ("cfg.json", config),
            ("a/layer.tar", &plain_layer),
            ("b/layer.tar", &gzip_layer),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, path, data).unwrap();
        }
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "c/layer.tar", "../a/layer.tar")
            .unwrap();
        let plan = plan_of(builder.into_inner().unwrap()).unwrap();

        let expected_manifest = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#,
                r#""config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":{}}},"#,
                r#""layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"{}","size":{}}},"#,
                r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":{}}},"#,
                r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"{}","size":{}}}]}}"#
            ),
            oci::sha256_digest(config),
            config.len(),
            oci::sha256_digest(&plain_layer),
            plain_layer.len(),
            oci::sha256_digest(&gzip_layer),
            gzip_layer.len(),
            oci::sha256_digest(&plain_layer),
            plain_layer.len(),
        );
        let manifest_digest = oci::sha256_digest(expected_manifest.as_bytes());
        let names: Vec<_> = plan.images.keys().cloned().collect();
        assert_eq!(
            names,
            ["docker.io/k3rs/busybox:1", "docker.io/library/busybox:1.36"]
        );
        let target = &plan.images["docker.io/library/busybox:1.36"];
        assert_eq!(target.digest, manifest_digest);
        assert_eq!(target.media_type, oci::MEDIA_TYPE_DOCKER_MANIFEST);
        assert_eq!(target.annotations[oci::ANNOTATION_REF_NAME], "1.36");

        // config, two distinct layers, manifest.
        assert_eq!(plan.blobs.len(), 4);
        let manifest = plan.blobs.last().unwrap();
        assert_eq!(
            manifest.source,
            BlobSource::Memory(Arc::from(expected_manifest.as_bytes()))
        );
        assert_eq!(manifest.labels.len(), 4, "config and three layer slots");
        assert_eq!(
            manifest.labels["containerd.io/gc.ref.content.l.2"],
            oci::sha256_digest(&plain_layer)
        );
        assert_eq!(
            plan.blobs[1].source,
            BlobSource::Entry("a/layer.tar".into())
        );
    }

    #[test]
    fn archives_without_images_or_format_are_errors() {
        let err = plan_of(tar_of(&[("hello", b"x")])).unwrap_err();
        assert!(matches!(err.problem, Problem::UnknownFormat));
        let mut entry = desc(oci::MEDIA_TYPE_OCI_MANIFEST, b"{}");
        entry["annotations"] = serde_json::json!({oci::ANNOTATION_REF_NAME: "latest"});
        let err =
            plan_of(layout_with(&serde_json::json!({"manifests": [entry]}), &[])).unwrap_err();
        assert!(matches!(err.problem, Problem::NoNamedImages));
        let err = plan_of(tar_of(&[(
            "oci-layout",
            br#"{"imageLayoutVersion":"2.0.0"}"#,
        )]))
        .unwrap_err();
        assert!(matches!(err.problem, Problem::LayoutVersion(_)));
    }
}
