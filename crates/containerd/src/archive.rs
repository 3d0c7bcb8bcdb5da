//! Reading image archives — a file, or bytes in memory — in two streaming passes.
//!
//! An archive is a tar, plain or compressed with gzip or zstd (found from its first bytes, not
//! its name: k3s's air-gap formats `.tar`, `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`), holding an OCI
//! image layout or a `docker save` archive. Archives can be hundreds of megabytes, so nothing
//! holds the blobs: [`scan`] (pass 1) keeps only the small JSON documents and each entry's size
//! and first bytes, hashing the entries whose name does not say their digest; [`stream_blobs`]
//! (pass 2) reads the entries the import still needs in chunks, verifying each one's size and
//! digest as it goes. A compressed archive is decompressed once per pass.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::oci::hex;

/// The largest JSON document (index, manifest, config, `manifest.json`) read into memory,
/// containerd's own limit for the JSON files of an archive.
pub const JSON_LIMIT: u64 = 20 << 20;

/// The size of the chunks [`stream_blobs`] hands on.
pub const CHUNK_SIZE: usize = 1 << 20;

/// How many first bytes of each entry [`scan`] keeps (enough for every compression magic).
const HEAD_LEN: usize = 8;

/// An image archive to import: a file, or an archive built in memory (the embedded pause
/// image), read the same way.
#[derive(Clone)]
pub enum ImageArchive {
    File(PathBuf),
    Memory { name: String, bytes: Arc<[u8]> },
}

impl ImageArchive {
    /// The archive in the file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> ImageArchive {
        ImageArchive::File(path.into())
    }

    /// An archive held in memory; `name` stands for it in messages.
    pub fn memory(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> ImageArchive {
        ImageArchive::Memory {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    /// The tar stream: the archive decompressed as its first bytes say.
    fn open(&self) -> Result<Box<dyn Read + Send>, ArchiveError> {
        match self {
            ImageArchive::File(path) => {
                let file = File::open(path).map_err(|source| self.error(Problem::Open(source)))?;
                self.decompress(BufReader::with_capacity(256 << 10, file))
            }
            ImageArchive::Memory { bytes, .. } => {
                self.decompress(io::Cursor::new(Arc::clone(bytes)))
            }
        }
    }

    fn decompress<R: BufRead + Send + 'static>(
        &self,
        mut reader: R,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let head = reader
            .fill_buf()
            .map_err(|source| self.error(Problem::Read(source)))?;
        Ok(match detect_compression(head) {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(reader)
                    .map_err(|source| self.error(Problem::Read(source)))?,
            ),
            Compression::Unsupported(kind) => {
                return Err(self.error(Problem::UnsupportedCompression(kind)))
            }
        })
    }

    pub(crate) fn error(&self, problem: Problem) -> ArchiveError {
        ArchiveError {
            archive: self.to_string(),
            entry: None,
            problem,
        }
    }

    pub(crate) fn entry_error(&self, entry: &str, problem: Problem) -> ArchiveError {
        ArchiveError {
            archive: self.to_string(),
            entry: Some(entry.to_owned()),
            problem,
        }
    }
}

impl fmt::Display for ImageArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageArchive::File(path) => write!(f, "{}", path.display()),
            ImageArchive::Memory { name, .. } => write!(f, "{name} (in memory)"),
        }
    }
}

impl fmt::Debug for ImageArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageArchive::File(path) => f.debug_tuple("File").field(path).finish(),
            ImageArchive::Memory { name, bytes } => f
                .debug_struct("Memory")
                .field("name", name)
                .field("len", &bytes.len())
                .finish(),
        }
    }
}

/// Reading or interpreting an archive failed; says which archive and, where there is one,
/// which entry. Its message includes the [`Problem`]; its source is the problem's cause.
#[derive(Debug)]
pub struct ArchiveError {
    pub archive: String,
    pub entry: Option<String>,
    pub problem: Problem,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "image archive {}", self.archive)?;
        if let Some(entry) = &self.entry {
            write!(f, ", entry {entry}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ArchiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.problem)
    }
}

/// What went wrong in an [`ArchiveError`].
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("opening")]
    Open(#[source] io::Error),
    #[error("reading")]
    Read(#[source] io::Error),
    #[error("compressed with {0}, which is not supported (plain tar, gzip or zstd)")]
    UnsupportedCompression(&'static str),
    #[error("the entry appears twice")]
    Duplicate,
    #[error("invalid JSON")]
    Json(#[source] serde_json::Error),
    #[error("{size} bytes, larger than the 20 MiB a JSON document may have")]
    JsonTooLarge { size: u64 },
    #[error("not a JSON document")]
    NotJson,
    #[error("content has digest {actual}, expected {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("content has {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("neither an OCI image layout (oci-layout) nor a docker archive (manifest.json)")]
    UnknownFormat,
    #[error("OCI image layout version {0:?} is not supported (1.0.0)")]
    LayoutVersion(String),
    #[error("an OCI image layout without index.json")]
    MissingIndex,
    #[error("blob {digest} (referenced by {parent}) is neither in the archive nor in containerd")]
    MissingBlob { digest: String, parent: String },
    #[error("no such entry (referenced by {0})")]
    MissingEntry(String),
    #[error("symbolic link to {0}, which is not in the archive")]
    DanglingSymlink(String),
    #[error("digest {0:?} is not a sha256 digest")]
    UnsupportedDigest(String),
    #[error("media type {declared:?} in the document, {expected:?} in its descriptor")]
    MediaTypeMismatch { declared: String, expected: String },
    #[error("image name {name:?}")]
    ImageName {
        name: String,
        #[source]
        source: crate::reference::ReferenceError,
    },
    #[error("no image in the archive has a name (io.containerd.image.name, a full org.opencontainers.image.ref.name, or docker RepoTags)")]
    NoNamedImages,
    #[error("encoding the docker manifest")]
    Encode(#[source] serde_json::Error),
}

/// How an archive (or a layer) is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// A format k3rs does not read, by name.
    Unsupported(&'static str),
}

/// The compression `head` (the first bytes of a stream) announces.
pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Unsupported("xz")
    } else if head.starts_with(b"BZh") {
        Compression::Unsupported("bzip2")
    } else if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Compression::Unsupported("lz4")
    } else {
        Compression::None
    }
}

/// What pass 1 learned about one regular file of the archive.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    pub size: u64,
    /// Its first bytes (fewer if it is shorter).
    pub head: Vec<u8>,
    /// `sha256:<hex>` of its content, for entries read whole in pass 1: JSON documents and
    /// entries outside `blobs/` (a docker archive's layers), whose names do not give a digest.
    pub digest: Option<String>,
    /// The content of a JSON document (an index, manifest, config).
    pub json: Option<Arc<[u8]>>,
}

/// Everything pass 1 collects: the archive's small documents and a map of its entries.
#[derive(Debug, Default)]
pub struct Scan {
    /// The `oci-layout` file's `imageLayoutVersion`, when there is one.
    pub layout_version: Option<String>,
    /// The content of a docker archive's `manifest.json`.
    pub docker_manifest: Option<Arc<[u8]>>,
    /// Regular files by path (`blobs/sha256/<hex>`, `index.json`, `<id>/layer.tar`, …).
    pub entries: BTreeMap<String, EntryInfo>,
    /// Symbolic links, path → the path they point at (old `docker save` archives link repeated
    /// layers).
    pub symlinks: BTreeMap<String, String>,
}

/// Pass 1: reads the archive once, keeping its JSON documents and a map of its entries.
pub fn scan(archive: &ImageArchive) -> Result<Scan, ArchiveError> {
    let mut tar = tar::Archive::new(archive.open()?);
    let mut scan = Scan::default();
    let entries = tar
        .entries()
        .map_err(|source| archive.error(Problem::Read(source)))?;
    for entry in entries {
        let mut entry = entry.map_err(|source| archive.error(Problem::Read(source)))?;
        let raw_path = entry
            .path()
            .map_err(|source| archive.error(Problem::Read(source)))?
            .into_owned();
        let Some(path) = clean(&raw_path) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            if let Ok(Some(target)) = entry.link_name() {
                let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
                if let Some(target) = clean(&dir.join(target)) {
                    scan.symlinks.insert(path, target);
                }
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if scan.entries.contains_key(&path)
            || (path == "oci-layout" && scan.layout_version.is_some())
            || (path == "manifest.json" && scan.docker_manifest.is_some())
        {
            return Err(archive.entry_error(&path, Problem::Duplicate));
        }
        let size = entry.size();
        let mut head = vec![0; HEAD_LEN.min(usize::try_from(size).unwrap_or(HEAD_LEN))];
        entry
            .read_exact(&mut head)
            .map_err(|source| archive.entry_error(&path, Problem::Read(source)))?;
        let named_by_digest = path.starts_with("blobs/");
        let looks_like_json = size <= JSON_LIMIT && starts_like_json(&head);

        if path == "oci-layout" || path == "manifest.json" {
            let data = read_json(archive, &path, size, head, &mut entry)?;
            if path == "oci-layout" {
                #[derive(serde::Deserialize)]
                struct Layout {
                    #[serde(rename = "imageLayoutVersion")]
                    version: String,
                }
                let layout: Layout = serde_json::from_slice(&data)
                    .map_err(|source| archive.entry_error(&path, Problem::Json(source)))?;
                scan.layout_version = Some(layout.version);
            } else {
                scan.docker_manifest = Some(data.into());
            }
            continue;
        }

        let info = if looks_like_json {
            let data = read_json(archive, &path, size, head.clone(), &mut entry)?;
            EntryInfo {
                size,
                head,
                digest: Some(crate::oci::sha256_digest(&data)),
                json: Some(data.into()),
            }
        } else if !named_by_digest {
            let mut hasher = Sha256::new();
            hasher.update(&head);
            let rest = io::copy(&mut entry, &mut HashWriter(&mut hasher))
                .map_err(|source| archive.entry_error(&path, Problem::Read(source)))?;
            check_size(archive, &path, size, head.len() as u64 + rest)?;
            EntryInfo {
                size,
                head,
                digest: Some(format!("sha256:{}", hex(&hasher.finalize()))),
                json: None,
            }
        } else {
            EntryInfo {
                size,
                head,
                digest: None,
                json: None,
            }
        };
        scan.entries.insert(path, info);
    }
    Ok(scan)
}

/// Reads the rest of a JSON entry whose first bytes are `head`.
fn read_json(
    archive: &ImageArchive,
    path: &str,
    size: u64,
    mut data: Vec<u8>,
    entry: &mut impl Read,
) -> Result<Vec<u8>, ArchiveError> {
    if size > JSON_LIMIT {
        return Err(archive.entry_error(path, Problem::JsonTooLarge { size }));
    }
    entry
        .take(JSON_LIMIT)
        .read_to_end(&mut data)
        .map_err(|source| archive.entry_error(path, Problem::Read(source)))?;
    check_size(archive, path, size, data.len() as u64)?;
    Ok(data)
}

fn check_size(
    archive: &ImageArchive,
    path: &str,
    expected: u64,
    actual: u64,
) -> Result<(), ArchiveError> {
    if expected == actual {
        Ok(())
    } else {
        Err(archive.entry_error(path, Problem::SizeMismatch { expected, actual }))
    }
}

/// Whether the first bytes of an entry open a JSON object or array.
fn starts_like_json(head: &[u8]) -> bool {
    matches!(
        head.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// A tar path made relative and clean (`./blobs//sha256/x` → `blobs/sha256/x`), as Go's
/// `path.Clean` does for containerd's importer; `None` for the archive's root itself.
pub(crate) fn clean(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// An `io::Write` that feeds a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An entry pass 2 is to read, and what its content must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedBlob {
    pub digest: String,
    pub size: u64,
}

/// What pass 2 hands on, in order: `Start`, the blob's bytes in `Data` chunks, then `End` once
/// the size and digest have been checked (a blob that fails the check ends without `End`, and
/// [`stream_blobs`] returns the error).
#[derive(Debug)]
pub enum BlobChunk {
    Start { entry: String, blob: WantedBlob },
    Data(Vec<u8>),
    End,
}

/// Pass 2: reads the entries in `wanted` (by path) in archive order and hands their content to
/// `sink`, which returns `false` to stop early (its reader went away). Every wanted entry must
/// be found.
pub fn stream_blobs(
    archive: &ImageArchive,
    wanted: &BTreeMap<String, WantedBlob>,
    mut sink: impl FnMut(BlobChunk) -> bool,
) -> Result<(), ArchiveError> {
    let mut tar = tar::Archive::new(archive.open()?);
    let mut left: BTreeMap<&str, &WantedBlob> =
        wanted.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let entries = tar
        .entries()
        .map_err(|source| archive.error(Problem::Read(source)))?;
    for entry in entries {
        if left.is_empty() {
            break;
        }
        let mut entry = entry.map_err(|source| archive.error(Problem::Read(source)))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw_path = entry
            .path()
            .map_err(|source| archive.error(Problem::Read(source)))?
            .into_owned();
        let Some(path) = clean(&raw_path) else {
            continue;
        };
        let Some(blob) = left.remove(path.as_str()) else {
            continue;
        };
        if !sink(BlobChunk::Start {
            entry: path.clone(),
            blob: blob.clone(),
        }) {
            return Ok(());
        }
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        loop {
            let mut chunk = Vec::with_capacity(CHUNK_SIZE);
            let n = (&mut entry)
                .take(CHUNK_SIZE as u64)
                .read_to_end(&mut chunk)
                .map_err(|source| archive.entry_error(&path, Problem::Read(source)))?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk);
            total += n as u64;
            if total > blob.size {
                break;
            }
            if !sink(BlobChunk::Data(chunk)) {
                return Ok(());
            }
        }
        check_size(archive, &path, blob.size, total)?;
        let actual = format!("sha256:{}", hex(&hasher.finalize()));
        if actual != blob.digest {
            return Err(archive.entry_error(
                &path,
                Problem::DigestMismatch {
                    expected: blob.digest.clone(),
                    actual,
                },
            ));
        }
        if !sink(BlobChunk::End) {
            return Ok(());
        }
    }
    match left.into_keys().next() {
        None => Ok(()),
        Some(path) => Err(archive.entry_error(
            path,
            Problem::MissingEntry("the first pass over the archive".into()),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write as _;

    use super::*;

    /// A tar of `files` (path, content), in that order.
    pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn compression_is_found_from_magic_bytes() {
        let tar = tar_of(&[("a", b"x")]);
        assert_eq!(detect_compression(&tar), Compression::None);
        assert_eq!(detect_compression(&gzip(&tar)), Compression::Gzip);
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        assert_eq!(detect_compression(&zst), Compression::Zstd);
        assert_eq!(
            detect_compression(b"\xfd7zXZ\x00rest"),
            Compression::Unsupported("xz")
        );
        assert_eq!(
            detect_compression(b"BZh91AY"),
            Compression::Unsupported("bzip2")
        );
        assert_eq!(detect_compression(b""), Compression::None);

        // The same entries come out of each, whatever the name says.
        for bytes in [tar.clone(), gzip(&tar), zst] {
            let archive = ImageArchive::memory("archive.tar", bytes);
            let scan = scan(&archive).unwrap();
            assert_eq!(scan.entries["a"].size, 1);
            assert_eq!(
                scan.entries["a"].digest.as_deref(),
                Some(crate::oci::sha256_digest(b"x").as_str())
            );
        }
        let xz = ImageArchive::memory("a.tar.xz", b"\xfd7zXZ\x00rest".to_vec());
        let err = scan(&xz).unwrap_err();
        assert!(matches!(err.problem, Problem::UnsupportedCompression("xz")));
        assert!(err.to_string().contains("a.tar.xz (in memory)"), "{err}");
    }

    #[test]
    fn scan_keeps_json_and_maps_entries() {
        let layer = vec![7u8; 3000];
        let tar = tar_of(&[
            ("./oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", b" {\"manifests\":[]}"),
            ("blobs/sha256/aa", &layer),
            ("x/layer.tar", &layer),
        ]);
        let scan = scan(&ImageArchive::memory("t", tar)).unwrap();
        assert_eq!(scan.layout_version.as_deref(), Some("1.0.0"));
        assert!(scan.entries["index.json"].json.is_some());
        let blob = &scan.entries["blobs/sha256/aa"];
        assert_eq!(
            (blob.size, blob.digest.as_ref(), blob.json.is_some()),
            (3000, None, false)
        );
        assert_eq!(blob.head, vec![7; 8]);
        let docker_layer = &scan.entries["x/layer.tar"];
        assert_eq!(
            docker_layer.digest.as_deref(),
            Some(crate::oci::sha256_digest(&layer).as_str())
        );
    }

    #[test]
    fn duplicate_entries_are_errors() {
        let tar = tar_of(&[("a", b"1"), ("./a", b"2")]);
        let err = scan(&ImageArchive::memory("t", tar)).unwrap_err();
        assert!(matches!(err.problem, Problem::Duplicate));
        assert_eq!(err.entry.as_deref(), Some("a"));
    }

    #[test]
    fn stream_blobs_checks_digests_and_sizes() {
        let good = vec![1u8; CHUNK_SIZE + 10];
        let tar = tar_of(&[("blobs/sha256/good", &good), ("blobs/sha256/bad", b"evil")]);
        let archive = ImageArchive::memory("t", tar);

        let wanted = BTreeMap::from([(
            "blobs/sha256/good".to_owned(),
            WantedBlob {
                digest: crate::oci::sha256_digest(&good),
                size: good.len() as u64,
            },
        )]);
        let mut received = Vec::new();
        let mut ends = 0;
        stream_blobs(&archive, &wanted, |chunk| {
            match chunk {
                BlobChunk::Data(data) => received.extend(data),
                BlobChunk::End => ends += 1,
                BlobChunk::Start { .. } => {}
            }
            true
        })
        .unwrap();
        assert_eq!((received == good, ends), (true, 1));

        let wanted = BTreeMap::from([(
            "blobs/sha256/bad".to_owned(),
            WantedBlob {
                digest: crate::oci::sha256_digest(b"good"),
                size: 4,
            },
        )]);
        let mut ended = false;
        let err = stream_blobs(&archive, &wanted, |chunk| {
            ended |= matches!(chunk, BlobChunk::End);
            true
        })
        .unwrap_err();
        assert!(
            matches!(err.problem, Problem::DigestMismatch { .. }),
            "{err}"
        );
        assert!(!ended, "a blob that fails its check never ends");
        assert_eq!(err.entry.as_deref(), Some("blobs/sha256/bad"));

        let wanted = BTreeMap::from([(
            "blobs/sha256/bad".to_owned(),
            WantedBlob {
                digest: crate::oci::sha256_digest(b"evil"),
                size: 5,
            },
        )]);
        let err = stream_blobs(&archive, &wanted, |_| true).unwrap_err();
        assert!(matches!(
            err.problem,
            Problem::SizeMismatch {
                expected: 5,
                actual: 4
            }
        ));

        let wanted = BTreeMap::from([(
            "blobs/sha256/none".to_owned(),
            WantedBlob {
                digest: crate::oci::sha256_digest(b""),
                size: 0,
            },
        )]);
        let err = stream_blobs(&archive, &wanted, |_| true).unwrap_err();
        assert!(matches!(err.problem, Problem::MissingEntry(_)));
    }

    #[test]
    fn paths_are_cleaned_as_go_does() {
        assert_eq!(clean(Path::new("./a//b/")).as_deref(), Some("a/b"));
        assert_eq!(clean(Path::new("/a/../b")).as_deref(), Some("b"));
        assert_eq!(clean(Path::new("./")), None);
    }
}
