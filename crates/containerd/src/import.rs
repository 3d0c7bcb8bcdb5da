//! Image import through containerd's native API, as k3s does for its air-gap images: CRI has
//! no import verb.
//!
//! Every call carries `containerd-namespace: k8s.io` (the namespace CRI serves) and, during an
//! import, `containerd-lease` of a lease made for it, so the garbage collector cannot take a
//! blob before the image that holds it exists; the lease is deleted afterwards. Blobs containerd
//! has already are not written again; the others go through a `Content.Write` stream (WRITE
//! chunks at their offsets, then COMMIT with the size and the expected digest). Parents get
//! containerd's GC reference labels, then each image is created, or moved to its new target.
//! CRI picks the images up from containerd's events and unpacks them on first use. A second
//! import of the same archive writes nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{
    AbortRequest, CreateImageRequest, CreateRequest as CreateLeaseRequest,
    DeleteRequest as DeleteLeaseRequest, GetImageRequest, Image, Info, InfoRequest,
    UpdateImageRequest, UpdateRequest as UpdateContentRequest, WriteAction, WriteContentRequest,
    WriteContentResponse,
};
use containerd_client::types::Descriptor as ApiDescriptor;
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

use crate::archive::{self, ArchiveError, BlobChunk, ImageArchive, Problem, WantedBlob};
use crate::channel::{self, ConnectError};
use crate::oci::Descriptor;
use crate::plan::{self, BlobSource, Plan, PlannedBlob};

/// The containerd namespace CRI serves, where the kubelet's images live.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// How long a lease outlives a k3rs that died mid-import before containerd expires it.
const LEASE_EXPIRY: Duration = Duration::from_secs(3600);

/// The pass-2 chunks in flight between the archive reader and the gRPC writer.
const CHUNKS_IN_FLIGHT: usize = 4;

/// One image an import created or found in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The normalized name, `docker.io/k3rs/pause:3.10`.
    pub name: String,
    /// The digest of its target (a manifest or an index).
    pub target: String,
    pub change: ImageChange,
}

/// What an import did to an image record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageChange {
    Created,
    /// The name pointed at another target and was moved.
    Updated,
    /// The name already pointed at this target.
    Unchanged,
}

/// Importing an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("image archive {archive}: {step}")]
    Containerd {
        archive: String,
        step: String,
        #[source]
        source: Status,
    },
    #[error("image archive {archive}: the reading task failed")]
    Task {
        archive: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Imports image archives into containerd's `k8s.io` namespace.
#[derive(Debug, Clone)]
pub struct Importer {
    channel: Channel,
}

impl Importer {
    /// Connects to containerd's native API at `socket` (its `grpc.address`).
    pub async fn connect(socket: &Path) -> Result<Importer, ConnectError> {
        Ok(Importer::new(channel::connect(socket).await?))
    }

    /// An importer over an open channel to containerd.
    pub fn new(channel: Channel) -> Importer {
        Importer { channel }
    }

    /// Imports every named image of `archive` and returns them, in name order.
    pub async fn import(&self, archive: &ImageArchive) -> Result<Vec<ImportedImage>, ImportError> {
        let reading = archive.clone();
        let plan = tokio::task::spawn_blocking(move || {
            let scan = archive::scan(&reading)?;
            plan::plan(&reading, &scan)
        })
        .await
        .map_err(|source| ImportError::Task {
            archive: archive.to_string(),
            source,
        })??;

        let session = Session {
            importer: self,
            archive,
            lease: new_lease_id(),
        };
        session.create_lease().await?;
        let imported = session.import(&plan).await;
        let deleted = session.delete_lease().await;
        let imported = imported?;
        deleted?;
        Ok(imported)
    }
}

/// One import under its lease.
struct Session<'a> {
    importer: &'a Importer,
    archive: &'a ImageArchive,
    lease: String,
}

impl Session<'_> {
    /// `message` with the namespace and lease headers.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert(
            "containerd-namespace",
            MetadataValue::from_static(K8S_NAMESPACE),
        );
        // Lease ids are made by `new_lease_id`: ASCII letters, digits and dashes.
        if let Ok(lease) = MetadataValue::try_from(self.lease.as_str()) {
            metadata.insert("containerd-lease", lease);
        }
        request
    }

    fn failed(&self, step: impl Into<String>) -> impl FnOnce(Status) -> ImportError + '_ {
        let step = step.into();
        move |source| ImportError::Containerd {
            archive: self.archive.to_string(),
            step,
            source,
        }
    }

    fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.importer.channel.clone())
    }

    async fn create_lease(&self) -> Result<(), ImportError> {
        let expires = SystemTime::now() + LEASE_EXPIRY;
        let request = CreateLeaseRequest {
            id: self.lease.clone(),
            labels: [("containerd.io/gc.expire".to_owned(), rfc3339(expires))].into(),
        };
        LeasesClient::new(self.importer.channel.clone())
            .create(self.request(request))
            .await
            .map_err(self.failed(format!("creating lease {}", self.lease)))?;
        Ok(())
    }

    async fn delete_lease(&self) -> Result<(), ImportError> {
        let request = DeleteLeaseRequest {
            id: self.lease.clone(),
            sync: false,
        };
        LeasesClient::new(self.importer.channel.clone())
            .delete(self.request(request))
            .await
            .map_err(self.failed(format!("deleting lease {}", self.lease)))?;
        Ok(())
    }

    async fn import(&self, plan: &Plan) -> Result<Vec<ImportedImage>, ImportError> {
        // What containerd has: a blob it has keeps its labels, to compare with the plan's.
        let mut present: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
        for blob in &plan.blobs {
            if let Some(info) = self.info(&blob.digest).await? {
                present.insert(&blob.digest, info.labels.into_iter().collect());
            }
        }

        let mut streamed = BTreeMap::new();
        for blob in plan
            .blobs
            .iter()
            .filter(|b| !present.contains_key(b.digest.as_str()))
        {
            match &blob.source {
                BlobSource::Memory(bytes) => self.write_from_memory(blob, bytes).await?,
                BlobSource::Entry(path) => {
                    streamed.insert(
                        path.clone(),
                        WantedBlob {
                            digest: blob.digest.clone(),
                            size: blob.size,
                        },
                    );
                }
                BlobSource::Absent => {
                    return Err(self
                        .archive
                        .error(Problem::MissingBlob {
                            digest: blob.digest.clone(),
                            parent: blob.parent.clone(),
                        })
                        .into())
                }
            }
        }
        if !streamed.is_empty() {
            self.stream(plan, streamed).await?;
        }

        for blob in plan.blobs.iter().filter(|b| !b.labels.is_empty()) {
            let current = present.get(blob.digest.as_str());
            let missing: BTreeMap<&String, &String> = blob
                .labels
                .iter()
                .filter(|(key, value)| current.and_then(|c| c.get(*key)) != Some(*value))
                .collect();
            if !missing.is_empty() {
                self.label(&blob.digest, &missing).await?;
            }
        }

        let mut imported = Vec::new();
        for (name, target) in &plan.images {
            let change = self.put_image(name, target).await?;
            tracing::info!(archive = %self.archive, image = %name, target = %target.digest, ?change, "imported image");
            imported.push(ImportedImage {
                name: name.clone(),
                target: target.digest.clone(),
                change,
            });
        }
        Ok(imported)
    }

    async fn write_from_memory(&self, blob: &PlannedBlob, bytes: &[u8]) -> Result<(), ImportError> {
        let mut writer = BlobWriter::new(self, blob);
        for chunk in bytes.chunks(archive::CHUNK_SIZE) {
            if let Err(err) = writer.write(chunk.to_vec()).await {
                writer.abort().await;
                return Err(err);
            }
        }
        writer.commit().await
    }

    async fn info(&self, digest: &str) -> Result<Option<Info>, ImportError> {
        let request = InfoRequest {
            digest: digest.to_owned(),
        };
        match self.content().info(self.request(request)).await {
            Ok(response) => Ok(response.into_inner().info),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(self.failed(format!("looking up blob {digest}"))(status)),
        }
    }

    async fn label(
        &self,
        digest: &str,
        labels: &BTreeMap<&String, &String>,
    ) -> Result<(), ImportError> {
        let request = UpdateContentRequest {
            info: Some(Info {
                digest: digest.to_owned(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).clone(), (*v).clone()))
                    .collect(),
                ..Info::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: labels.keys().map(|key| format!("labels.{key}")).collect(),
            }),
        };
        self.content()
            .update(self.request(request))
            .await
            .map_err(self.failed(format!("labelling blob {digest}")))?;
        Ok(())
    }

    /// Pass 2: streams the archive entries in `wanted` into the content store.
    async fn stream(
        &self,
        plan: &Plan,
        wanted: BTreeMap<String, WantedBlob>,
    ) -> Result<(), ImportError> {
        let (sender, mut chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let reading = self.archive.clone();
        let reader = tokio::task::spawn_blocking(move || {
            archive::stream_blobs(&reading, &wanted, |chunk| {
                sender.blocking_send(chunk).is_ok()
            })
        });
        let by_digest: BTreeMap<&str, &PlannedBlob> =
            plan.blobs.iter().map(|b| (b.digest.as_str(), b)).collect();

        let mut writer: Option<BlobWriter<'_>> = None;
        let mut written = Ok(());
        while let Some(chunk) = chunks.recv().await {
            let step = match chunk {
                BlobChunk::Start { blob, .. } => match by_digest.get(blob.digest.as_str()) {
                    Some(planned) => {
                        writer = Some(BlobWriter::new(self, planned));
                        Ok(())
                    }
                    None => Ok(()),
                },
                BlobChunk::Data(data) => match writer.as_mut() {
                    Some(writer) => writer.write(data).await,
                    None => Ok(()),
                },
                BlobChunk::End => match writer.take() {
                    Some(writer) => writer.commit().await,
                    None => Ok(()),
                },
            };
            if let Err(err) = step {
                written = Err(err);
                break;
            }
        }
        // Dropping the receiver stops the reader at its next chunk.
        drop(chunks);
        let read = reader.await.map_err(|source| ImportError::Task {
            archive: self.archive.to_string(),
            source,
        })?;
        if let Some(writer) = writer {
            // The blob did not end: the reader or the writer failed half-way.
            writer.abort().await;
        }
        read?;
        written
    }

    /// Creates `name` → `target`, or moves an existing `name` there.
    async fn put_image(&self, name: &str, target: &Descriptor) -> Result<ImageChange, ImportError> {
        let mut images = ImagesClient::new(self.importer.channel.clone());
        let wanted = api_descriptor(target);
        let existing = match images
            .get(self.request(GetImageRequest {
                name: name.to_owned(),
            }))
            .await
        {
            Ok(response) => response.into_inner().image,
            Err(status) if status.code() == Code::NotFound => None,
            Err(status) => return Err(self.failed(format!("looking up image {name}"))(status)),
        };
        let image = Image {
            name: name.to_owned(),
            target: Some(wanted.clone()),
            ..Image::default()
        };
        match existing {
            None => {
                images
                    .create(self.request(CreateImageRequest {
                        image: Some(image),
                        source_date_epoch: None,
                    }))
                    .await
                    .map_err(self.failed(format!("creating image {name}")))?;
                Ok(ImageChange::Created)
            }
            Some(existing)
                if existing.target.as_ref().is_some_and(|t| {
                    t.digest == wanted.digest
                        && t.media_type == wanted.media_type
                        && t.size == wanted.size
                }) =>
            {
                Ok(ImageChange::Unchanged)
            }
            Some(_) => {
                // Only the target: CRI's own labels on the record stay.
                images
                    .update(self.request(UpdateImageRequest {
                        image: Some(image),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["target".to_owned()],
                        }),
                        source_date_epoch: None,
                    }))
                    .await
                    .map_err(self.failed(format!("updating image {name}")))?;
                Ok(ImageChange::Updated)
            }
        }
    }
}

fn api_descriptor(descriptor: &Descriptor) -> ApiDescriptor {
    ApiDescriptor {
        media_type: descriptor.media_type.clone(),
        digest: descriptor.digest.clone(),
        size: i64::try_from(descriptor.size).unwrap_or(i64::MAX),
        annotations: descriptor.annotations.clone().into_iter().collect(),
    }
}

/// One `Content.Write` session: the first message opens the stream, each message is answered
/// before the next is sent.
struct BlobWriter<'a> {
    session: &'a Session<'a>,
    digest: String,
    size: i64,
    reference: String,
    offset: i64,
    stream: Option<(
        mpsc::Sender<WriteContentRequest>,
        Streaming<WriteContentResponse>,
    )>,
    /// containerd answered that it has the blob (written meanwhile by someone else).
    exists: bool,
}

impl<'a> BlobWriter<'a> {
    fn new(session: &'a Session<'a>, blob: &PlannedBlob) -> BlobWriter<'a> {
        BlobWriter {
            session,
            digest: blob.digest.clone(),
            size: i64::try_from(blob.size).unwrap_or(i64::MAX),
            // Unique to the import: two imports writing the same blob at once do not wait on
            // each other's ingest lock, the slower commit just finds the blob there.
            reference: format!("{}-{}", session.lease, blob.digest),
            offset: 0,
            stream: None,
            exists: false,
        }
    }

    async fn write(&mut self, data: Vec<u8>) -> Result<(), ImportError> {
        let len = data.len() as i64;
        self.send(WriteContentRequest {
            action: WriteAction::Write as i32,
            offset: self.offset,
            data,
            ..WriteContentRequest::default()
        })
        .await?;
        self.offset += len;
        Ok(())
    }

    async fn commit(mut self) -> Result<(), ImportError> {
        self.send(WriteContentRequest {
            action: WriteAction::Commit as i32,
            offset: self.offset,
            ..WriteContentRequest::default()
        })
        .await?;
        tracing::debug!(archive = %self.session.archive, digest = %self.digest, exists = self.exists, "blob written");
        Ok(())
    }

    /// Drops the half-written blob (best effort: containerd's GC removes stale ingests too).
    async fn abort(self) {
        drop(self.stream);
        let request = AbortRequest {
            r#ref: self.reference.clone(),
        };
        if let Err(status) = self
            .session
            .content()
            .abort(self.session.request(request))
            .await
        {
            if status.code() != Code::NotFound {
                tracing::debug!(digest = %self.digest, %status, "aborting a blob write");
            }
        }
    }

    async fn send(&mut self, mut message: WriteContentRequest) -> Result<(), ImportError> {
        if self.exists {
            return Ok(());
        }
        // The first message names the ingest and, like the commit, the expected size and
        // digest (containerd answers AlreadyExists when it has that digest).
        let commit = message.action == WriteAction::Commit as i32;
        if self.stream.is_none() || commit {
            message.r#ref = self.reference.clone();
            message.total = self.size;
            message.expected = self.digest.clone();
        }
        let step = format!("writing blob {}", self.digest);
        let response = match &mut self.stream {
            Some((sender, responses)) => {
                // A send fails only when the call has ended; its status comes with the read.
                let _ = sender.send(message).await;
                responses.message().await
            }
            None => {
                let (sender, receiver) = mpsc::channel(1);
                // Queued before the call: containerd answers (and sends its headers) only once
                // it has the first message.
                let _ = sender.send(message).await;
                // A plain poll function, not an `unfold` of async blocks: the future of the
                // whole import stays `Send` for every lifetime (`tokio::spawn` needs that).
                let mut receiver = receiver;
                let requests = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
                match self
                    .session
                    .content()
                    .write(self.session.request(requests))
                    .await
                {
                    Ok(response) => {
                        let mut responses = response.into_inner();
                        let first = responses.message().await;
                        self.stream = Some((sender, responses));
                        first
                    }
                    Err(status) => Err(status),
                }
            }
        };
        match response {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(self.session.failed(step)(Status::new(
                Code::Unknown,
                "containerd ended the write stream without an answer",
            ))),
            Err(status) if status.code() == Code::AlreadyExists => {
                self.exists = true;
                self.stream = None;
                Ok(())
            }
            Err(status) => Err(self.session.failed(step)(status)),
        }
    }
}

/// A lease id unique to this process and call: `k3rs-import-<unix nanos>-<pid>-<n>`.
fn new_lease_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "k3rs-import-{nanos}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `time` (UTC, whole seconds), the format of containerd's
/// `gc.expire` label.
fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::MAX)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let at = |secs| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn lease_ids_are_unique_and_ascii() {
        let (a, b) = (new_lease_id(), new_lease_id());
        assert_ne!(a, b);
        assert!(MetadataValue::try_from(a.as_str()).is_ok());
    }
}
