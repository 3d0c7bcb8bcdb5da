//! The termination message of an exited container, as upstream's kubelet reads it: the file
//! mounted at `terminationMessagePath` (at most 4 KiB), else — with `FallbackToLogsOnError`
//! and a failed run — the last 80 lines (at most 2 KiB) of its log.

use std::collections::HashMap;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::Path;

use k8s_cri::v1 as cri;

use super::reader::{tail_start, write_lines};
use super::LogOptions;
use crate::runtime::{annotations, label};

/// Upstream's `MaxContainerTerminationMessageLength`.
const MAX_MESSAGE_BYTES: u64 = 4 * 1024;
/// Upstream's `MaxContainerTerminationMessageLogLines` and `…LogLength`.
const FALLBACK_LINES: u64 = 80;
const FALLBACK_BYTES: u64 = 2 * 1024;

/// The last `max` bytes of a file (upstream's `tail.ReadAtMost`).
fn read_at_most(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut data = Vec::new();
    file.take(max).read_to_end(&mut data)?;
    Ok(data)
}

/// The last lines of a CRI log, as `kubectl logs --tail=<lines> --limit-bytes=<bytes>` shows
/// them.
fn log_tail(path: &Path, lines: u64, bytes: u64) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let start = tail_start(&mut file, lines)?;
    file.seek(SeekFrom::Start(start))?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw)?;
    let options = LogOptions {
        limit_bytes: Some(bytes),
        ..LogOptions::default()
    };
    Ok(String::from_utf8_lossy(&write_lines(&raw, &options)).into_owned())
}

/// The message of an exited container (upstream's `getTerminationMessage` and
/// `readLastStringFromContainerLogs`); empty when it left none. `annotations` are the
/// container's (the kubelet's record of `terminationMessagePath` and its policy).
pub fn termination_message(
    status: &cri::ContainerStatus,
    annotations: &HashMap<String, String>,
) -> String {
    if status.state != cri::ContainerState::ContainerExited as i32 {
        return String::new();
    }
    let path = label(annotations, annotations::TERMINATION_MESSAGE_PATH).unwrap_or("");
    let fallback = label(annotations, annotations::TERMINATION_MESSAGE_POLICY)
        == Some("FallbackToLogsOnError")
        && status.exit_code != 0
        && status.reason != "ContainerCannotRun";
    let mut check_logs = fallback;
    let mut message = String::new();
    if let Some(mount) = status
        .mounts
        .iter()
        .find(|m| !path.is_empty() && m.container_path == path)
    {
        match read_at_most(Path::new(&mount.host_path), MAX_MESSAGE_BYTES) {
            Ok(data) => {
                check_logs = fallback && data.is_empty();
                message = String::from_utf8_lossy(&data).into_owned();
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                return format!(
                    "Error on reading termination log {}: {err}",
                    mount.host_path
                );
            }
        }
    }
    if check_logs {
        message = log_tail(Path::new(&status.log_path), FALLBACK_LINES, FALLBACK_BYTES)
            .unwrap_or_else(|err| format!("Error on reading termination message from logs: {err}"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(dir: &Path, policy: &str, exit_code: i32) -> cri::ContainerStatus {
        cri::ContainerStatus {
            state: cri::ContainerState::ContainerExited as i32,
            exit_code,
            log_path: dir.join("0.log").display().to_string(),
            annotations: HashMap::from([
                (
                    annotations::TERMINATION_MESSAGE_PATH.to_owned(),
                    "/dev/termination-log".to_owned(),
                ),
                (
                    annotations::TERMINATION_MESSAGE_POLICY.to_owned(),
                    policy.to_owned(),
                ),
            ]),
            mounts: vec![cri::Mount {
                container_path: "/dev/termination-log".to_owned(),
                host_path: dir.join("termination").display().to_string(),
                ..cri::Mount::default()
            }],
            ..cri::ContainerStatus::default()
        }
    }

    fn message(status: &cri::ContainerStatus) -> String {
        termination_message(status, &status.annotations)
    }

    #[test]
    fn file_then_logs_on_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("0.log"),
            "2024-05-01T10:00:00Z stdout F first\n2024-05-01T10:00:01Z stderr F boom\n",
        )
        .unwrap();
        // No file written: File policy says nothing, FallbackToLogsOnError reads the log.
        assert_eq!(message(&exited(dir.path(), "File", 1)), "");
        assert_eq!(
            message(&exited(dir.path(), "FallbackToLogsOnError", 1)),
            "first\nboom\n"
        );
        // A successful run does not fall back.
        assert_eq!(message(&exited(dir.path(), "FallbackToLogsOnError", 0)), "");
        // A written file wins, cut to its last 4 KiB.
        std::fs::write(dir.path().join("termination"), "x".repeat(5000) + "end").unwrap();
        let written = message(&exited(dir.path(), "FallbackToLogsOnError", 1));
        assert_eq!(written.len(), 4096);
        assert!(written.ends_with("end"));
        // A running container has none.
        let mut running = exited(dir.path(), "File", 0);
        running.state = cri::ContainerState::ContainerRunning as i32;
        assert_eq!(message(&running), "");
    }
}
