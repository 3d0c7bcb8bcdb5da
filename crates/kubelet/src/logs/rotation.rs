//! Container log rotation by size, as upstream's container log manager: every period, a
//! running container's log over the size limit is renamed to `<log>.<YYYYmmdd-HHMMSS>` and the
//! runtime reopens it (CRI `ReopenContainerLog`); older rotated files are gzipped and the oldest
//! removed so that at most `max_files` files (the current one included) remain.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;

use crate::runtime::Runtime;

const COMPRESS_SUFFIX: &str = ".gz";
const TMP_SUFFIX: &str = ".tmp";

/// When logs rotate (the kubelet's `containerLogMaxSize`, `containerLogMaxFiles` and its
/// monitor period).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// A log at least this big is rotated.
    pub max_size: u64,
    /// How many files a container's log may have, the current one included (at least 2).
    pub max_files: usize,
    /// How often logs are looked at.
    pub period: Duration,
}

impl Default for RotationPolicy {
    /// Upstream's defaults: 10 MiB, 5 files, every 10 s.
    fn default() -> Self {
        RotationPolicy {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
            period: Duration::from_secs(10),
        }
    }
}

/// What one rotation of a log does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RotationPlan {
    /// Leftovers: unfinished compressions, and uncompressed files whose `.gz` exists.
    pub(crate) clean: Vec<PathBuf>,
    /// The oldest rotated files, beyond the count.
    pub(crate) remove: Vec<PathBuf>,
    /// Rotated files to gzip (every kept one not yet compressed).
    pub(crate) compress: Vec<PathBuf>,
    /// Where the current log is renamed to.
    pub(crate) rotate_to: PathBuf,
}

/// Plans the rotation of `log` (upstream's `rotateLog`): `rotated` are the files named
/// `<log>.*`, `stamp` the time suffix of the new rotated file.
pub(crate) fn plan(
    log: &Path,
    rotated: &[PathBuf],
    policy: &RotationPolicy,
    stamp: &str,
) -> RotationPlan {
    let name = |p: &PathBuf| p.to_string_lossy().into_owned();
    let mut clean = Vec::new();
    let mut kept: Vec<PathBuf> = Vec::new();
    for file in rotated {
        let text = name(file);
        let superseded = !text.ends_with(COMPRESS_SUFFIX)
            && rotated
                .iter()
                .any(|other| name(other) == format!("{text}{COMPRESS_SUFFIX}"));
        if text.ends_with(TMP_SUFFIX) || superseded {
            clean.push(file.clone());
        } else {
            kept.push(file.clone());
        }
    }
    // Oldest first: the suffix is a timestamp.
    kept.sort();
    // The current log and the one rotated now take two of the files.
    let keep = policy.max_files.saturating_sub(2);
    let excess = kept.len().saturating_sub(keep);
    let remove: Vec<PathBuf> = kept.drain(..excess).collect();
    let compress = kept
        .into_iter()
        .filter(|p| !name(p).ends_with(COMPRESS_SUFFIX))
        .collect();
    let mut rotate_to = log.as_os_str().to_owned();
    rotate_to.push(".");
    rotate_to.push(stamp);
    RotationPlan {
        clean,
        remove,
        compress,
        rotate_to: PathBuf::from(rotate_to),
    }
}

/// A log that could not be rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("{action} {path:?}: {source}")]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {id}: reopening its log: {source}")]
    Reopen {
        id: String,
        #[source]
        source: crate::runtime::RuntimeError,
    },
}

fn file_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RotationError {
    let path = path.to_path_buf();
    move |source| RotationError::File {
        action,
        path,
        source,
    }
}

/// The files `<log>.*` beside `log`.
fn rotated_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(base)) = (log.parent(), log.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", base.to_string_lossy());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Gzips `path` into `path.gz` (through `path.gz.tmp`), then removes it.
fn compress(path: &Path) -> Result<(), RotationError> {
    let mut gz = path.as_os_str().to_owned();
    gz.push(COMPRESS_SUFFIX);
    let gz = PathBuf::from(gz);
    let mut tmp = gz.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let mut input = std::fs::File::open(path).map_err(file_error("opening", path))?;
    let output = std::fs::File::create(&tmp).map_err(file_error("creating", &tmp))?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    io::copy(&mut input, &mut encoder).map_err(file_error("compressing", path))?;
    encoder.finish().map_err(file_error("compressing", path))?;
    std::fs::rename(&tmp, &gz).map_err(file_error("renaming", &tmp))?;
    std::fs::remove_file(path).map_err(file_error("removing", path))?;
    Ok(())
}

/// Rotates container logs on a schedule.
#[derive(Debug)]
pub struct LogRotation {
    runtime: Arc<dyn Runtime>,
    policy: RotationPolicy,
}

impl LogRotation {
    pub fn new(runtime: Arc<dyn Runtime>, policy: RotationPolicy) -> Self {
        LogRotation { runtime, policy }
    }

    /// Looks at the logs every period, forever.
    pub async fn run(self) {
        loop {
            tokio::time::sleep(self.policy.period).await;
            self.rotate_all().await;
        }
    }

    /// One pass over the running containers.
    pub async fn rotate_all(&self) {
        let containers = match self.runtime.list_containers().await {
            Ok(containers) => containers,
            Err(err) => {
                tracing::warn!("log rotation: listing containers: {err}");
                return;
            }
        };
        for container in containers {
            if container.state != cri::ContainerState::ContainerRunning as i32 {
                continue;
            }
            let log = match self.runtime.container_status(&container.id).await {
                Ok(status) if !status.log_path.is_empty() => PathBuf::from(status.log_path),
                Ok(_) => continue,
                Err(err) => {
                    tracing::debug!(container = %container.id, "log rotation: {err}");
                    continue;
                }
            };
            let size = match std::fs::metadata(&log) {
                Ok(meta) => meta.len(),
                Err(_) => continue,
            };
            if size < self.policy.max_size {
                continue;
            }
            if let Err(err) = self.rotate(&container.id, &log).await {
                tracing::warn!(container = %container.id, log = %log.display(), "log rotation: {err}");
            }
        }
    }

    async fn rotate(&self, id: &str, log: &Path) -> Result<(), RotationError> {
        let rotated = rotated_files(log).map_err(file_error("listing rotated files of", log))?;
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        let plan = plan(log, &rotated, &self.policy, &stamp);
        for path in plan.clean.iter().chain(&plan.remove) {
            std::fs::remove_file(path).map_err(file_error("removing", path))?;
        }
        for path in &plan.compress {
            compress(path)?;
        }
        std::fs::rename(log, &plan.rotate_to).map_err(file_error("renaming", log))?;
        if let Err(source) = self.runtime.reopen_container_log(id).await {
            // The container keeps writing to the renamed file; put it back.
            if let Err(err) = std::fs::rename(&plan.rotate_to, log) {
                tracing::warn!(log = %log.display(), "putting a log back after a failed reopen: {err}");
            }
            return Err(RotationError::Reopen {
                id: id.to_owned(),
                source,
            });
        }
        tracing::debug!(log = %log.display(), to = %plan.rotate_to.display(), "rotated a container log");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|n| PathBuf::from(format!("/l/app/{n}")))
            .collect()
    }

    #[test]
    fn first_rotation() {
        let policy = RotationPolicy::default();
        let plan = plan(Path::new("/l/app/0.log"), &[], &policy, "20240501-100000");
        assert_eq!(
            plan,
            RotationPlan {
                clean: vec![],
                remove: vec![],
                compress: vec![],
                rotate_to: PathBuf::from("/l/app/0.log.20240501-100000"),
            }
        );
    }

    #[test]
    fn keeps_max_files_compresses_and_cleans() {
        let policy = RotationPolicy {
            max_files: 4,
            ..Default::default()
        };
        let rotated = paths(&[
            "0.log.20240501-100003",
            "0.log.20240501-100001.gz",
            "0.log.20240501-100002.gz",
            "0.log.20240501-100000.gz",
            "0.log.20240501-100002",
            "0.log.20240501-100004.gz.tmp",
        ]);
        let plan = plan(
            Path::new("/l/app/0.log"),
            &rotated,
            &policy,
            "20240501-100005",
        );
        assert_eq!(
            plan.clean,
            paths(&["0.log.20240501-100002", "0.log.20240501-100004.gz.tmp"])
        );
        // Four rotated kept files, two may stay (4 files minus the current and the new one).
        assert_eq!(
            plan.remove,
            paths(&["0.log.20240501-100000.gz", "0.log.20240501-100001.gz"])
        );
        assert_eq!(plan.compress, paths(&["0.log.20240501-100003"]));
    }

    #[test]
    fn two_files_keep_no_old_rotation() {
        let policy = RotationPolicy {
            max_files: 2,
            ..Default::default()
        };
        let rotated = paths(&["0.log.20240501-100000"]);
        let plan = plan(
            Path::new("/l/app/0.log"),
            &rotated,
            &policy,
            "20240501-100001",
        );
        assert_eq!(plan.remove, rotated);
        assert!(plan.compress.is_empty());
    }

    #[test]
    fn compress_gzips_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log.1");
        std::fs::write(&path, "hello\n").unwrap();
        compress(&path).unwrap();
        assert!(!path.exists());
        let gz = std::fs::File::open(dir.path().join("0.log.1.gz")).unwrap();
        let mut text = String::new();
        io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut text).unwrap();
        assert_eq!(text, "hello\n");
    }
}
