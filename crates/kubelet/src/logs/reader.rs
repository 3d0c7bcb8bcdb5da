//! Reading a container's CRI log file for a client, as upstream's `ReadLogs`: the last
//! `tail` lines, lines since a time, timestamps, a byte limit, and `follow`: keep reading as the
//! file grows, move on to the new file when the log is rotated, and end once the container no
//! longer runs and everything it wrote has been sent.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::mpsc;

use super::cri_line;
use super::LogOptions;

/// How often a followed file is looked at for new lines.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How often a follower asks whether the container still runs (upstream's
/// `logForceCheckPeriod`).
const STATE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Output is sent in pieces of about this size.
const CHUNK: usize = 32 * 1024;

/// Whether the container whose log is followed still runs: a follower ends once it does not
/// and the file is read to its end.
#[async_trait]
pub trait ContainerRunning: Send + Sync {
    async fn running(&self) -> bool;
}

/// A log file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    #[error("failed to open log file {path:?}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read log file {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Whether to go on after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The byte limit is reached.
    Done,
}

/// Turns log lines into what the client sees: lines before `since` skipped, partial lines
/// joined, the timestamp in front of each line (not of its continuations), the output cut at
/// the byte limit.
#[derive(Debug)]
struct LineWriter {
    since: Option<jiff::Timestamp>,
    timestamps: bool,
    remaining: Option<u64>,
    /// Whether the next record starts a line (the previous one was not partial).
    new_line: bool,
}

impl LineWriter {
    fn new(options: &LogOptions) -> Self {
        LineWriter {
            since: options.since,
            timestamps: options.timestamps,
            remaining: options.limit_bytes,
            new_line: true,
        }
    }

    fn write(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Flow {
        let line = match cri_line::parse(raw) {
            Ok(line) => line,
            Err(err) => {
                tracing::warn!("skipping a log line: {err}");
                return Flow::Continue;
            }
        };
        let new_line = std::mem::replace(&mut self.new_line, !line.partial);
        if self.since.is_some_and(|since| line.timestamp < since) {
            return Flow::Continue;
        }
        let start = out.len();
        if self.timestamps && new_line {
            out.extend_from_slice(line.timestamp_text.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line.content);
        if let Some(remaining) = self.remaining.as_mut() {
            let written = u64::try_from(out.len() - start).unwrap_or(u64::MAX);
            if written >= *remaining {
                let keep = usize::try_from(*remaining).unwrap_or(usize::MAX);
                out.truncate(start + keep);
                *remaining = 0;
                return Flow::Done;
            }
            *remaining -= written;
        }
        Flow::Continue
    }
}

/// Where the last `lines` lines of `file` start (upstream's `FindTailLineStartIndex`): a
/// newline at the very end does not begin another line.
pub(crate) fn tail_start<F: Read + Seek>(file: &mut F, lines: u64) -> io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    if lines == 0 {
        return Ok(len);
    }
    let mut found = 0u64;
    // The byte before which to look next; the file's last byte is never a line start.
    let mut end = len.saturating_sub(1);
    let mut block = vec![0u8; 8192];
    while end > 0 {
        let size = end.min(block.len() as u64);
        let begin = end - size;
        file.seek(SeekFrom::Start(begin))?;
        let size = usize::try_from(size).unwrap_or(block.len());
        file.read_exact(&mut block[..size])?;
        for (index, byte) in block[..size].iter().enumerate().rev() {
            if *byte == b'\n' {
                found += 1;
                if found == lines {
                    return Ok(begin + index as u64 + 1);
                }
            }
        }
        end = begin;
    }
    Ok(0)
}

/// Every line of `raw` written as `options` ask (without tail or follow).
pub(crate) fn write_lines(raw: &[u8], options: &LogOptions) -> Vec<u8> {
    let mut writer = LineWriter::new(options);
    let mut out = Vec::new();
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if writer.write(line, &mut out) == Flow::Done {
            break;
        }
    }
    out
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

async fn open(
    path: &Path,
    tail: Option<u64>,
) -> Result<(BufReader<tokio::fs::File>, u64), LogReadError> {
    let opened = |source| LogReadError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(opened)?;
    let ino = file.metadata().map_err(opened)?.ino();
    let start = match tail {
        Some(lines) => tail_start(&mut file, lines).map_err(opened)?,
        None => 0,
    };
    file.seek(SeekFrom::Start(start)).map_err(opened)?;
    Ok((BufReader::new(tokio::fs::File::from_std(file)), ino))
}

/// Reads the log at `path` as `options` ask and sends it to `out` in pieces. Returns once the
/// file is read (without `follow`), the byte limit is reached, the container has stopped and
/// its log is read to the end (with `follow`), or `out` is closed.
pub async fn read_logs(
    path: &Path,
    options: &LogOptions,
    running: &dyn ContainerRunning,
    out: mpsc::Sender<Bytes>,
) -> Result<(), LogReadError> {
    let (mut reader, mut ino) = open(path, options.tail).await?;
    let mut writer = LineWriter::new(options);
    let mut line = Vec::new();
    let mut pending = Vec::new();
    // Whether the container ran at the last check: once it does not, the next end of file
    // ends the follow.
    let mut still_running = true;
    let mut last_check: Option<Instant> = None;
    // A rotation was seen: the old file is read to its end once more before the new one.
    let mut rotation_seen = false;
    let read_failed = |source| LogReadError::Read {
        path: path.to_path_buf(),
        source,
    };
    loop {
        reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(read_failed)?;
        if line.ends_with(b"\n") {
            let flow = writer.write(&line, &mut pending);
            line.clear();
            if flow == Flow::Done {
                break;
            }
            if pending.len() >= CHUNK
                && out
                    .send(Bytes::from(std::mem::take(&mut pending)))
                    .await
                    .is_err()
            {
                return Ok(());
            }
            continue;
        }
        // The end of the file, with an incomplete line in `line` perhaps.
        if !options.follow {
            if !line.is_empty() {
                writer.write(&line, &mut pending);
            }
            break;
        }
        if !pending.is_empty()
            && out
                .send(Bytes::from(std::mem::take(&mut pending)))
                .await
                .is_err()
        {
            return Ok(());
        }
        if out.is_closed() {
            return Ok(());
        }
        if inode(path).is_some_and(|now| now != ino) {
            if rotation_seen {
                // The old file is done: what follows is in the new one.
                let (new_reader, new_ino) = open(path, None).await?;
                reader = new_reader;
                ino = new_ino;
                rotation_seen = false;
                line.clear();
            } else {
                rotation_seen = true;
            }
            continue;
        }
        if !still_running {
            break;
        }
        if last_check.is_none_or(|at| at.elapsed() >= STATE_CHECK_EVERY) {
            still_running = running.running().await;
            last_check = Some(Instant::now());
            if !still_running {
                // Read once more: what it wrote before it stopped.
                continue;
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    if !pending.is_empty() {
        let _closed = out.send(Bytes::from(pending)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write as _};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    const LOG: &str = "\
2024-05-01T10:00:00.1Z stdout F one
2024-05-01T10:00:01.2Z stderr F two
2024-05-01T10:00:02.3Z stdout P thr
2024-05-01T10:00:02.4Z stdout F ee
2024-05-01T10:00:03.5Z stdout F four
";

    fn render(options: &LogOptions, text: &str) -> String {
        let mut writer = LineWriter::new(options);
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            if writer.write(line.as_bytes(), &mut out) == Flow::Done {
                break;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn joins_partial_lines_and_prefixes_timestamps() {
        assert_eq!(
            render(&LogOptions::default(), LOG),
            "one\ntwo\nthree\nfour\n"
        );
        let options = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(&options, LOG),
            "2024-05-01T10:00:00.1Z one\n2024-05-01T10:00:01.2Z two\n\
             2024-05-01T10:00:02.3Z three\n2024-05-01T10:00:03.5Z four\n"
        );
    }

    #[test]
    fn since_skips_older_lines_and_bad_lines_are_skipped() {
        let options = LogOptions {
            since: Some("2024-05-01T10:00:01.2Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(render(&options, LOG), "two\nthree\nfour\n");
        assert_eq!(
            render(
                &LogOptions::default(),
                "garbage\n2024-05-01T10:00:00Z stdout F ok\n"
            ),
            "ok\n"
        );
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        let options = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(render(&options, LOG), "one\ntw");
        let options = LogOptions {
            limit_bytes: Some(4),
            ..Default::default()
        };
        assert_eq!(render(&options, LOG), "one\n");
    }

    #[test]
    fn tail_finds_the_last_lines() {
        let text = b"a\nb\nc\n";
        for (lines, start) in [(0, 6), (1, 4), (2, 2), (3, 0), (10, 0)] {
            assert_eq!(
                tail_start(&mut Cursor::new(text), lines).unwrap(),
                start,
                "{lines}"
            );
        }
        // An incomplete last line counts as a line.
        assert_eq!(tail_start(&mut Cursor::new(b"a\nb\nc"), 1).unwrap(), 4);
        assert_eq!(tail_start(&mut Cursor::new(b""), 3).unwrap(), 0);
        // Across blocks.
        let long: Vec<u8> = (0..5000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let start = tail_start(&mut Cursor::new(&long), 2).unwrap() as usize;
        assert_eq!(&long[start..], b"4998\n4999\n");
    }

    #[derive(Debug)]
    struct Flag(Arc<AtomicBool>);

    #[async_trait]
    impl ContainerRunning for Flag {
        async fn running(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    async fn collect(mut rx: mpsc::Receiver<Bytes>) -> String {
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend_from_slice(&chunk);
        }
        String::from_utf8(all).unwrap()
    }

    #[tokio::test]
    async fn reads_the_tail_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let options = LogOptions {
            tail: Some(2),
            ..Default::default()
        };
        let running = Flag(Arc::new(AtomicBool::new(true)));
        read_logs(&path, &options, &running, tx).await.unwrap();
        // The last two records are one partial line's end and a full line.
        assert_eq!(collect(rx).await, "ee\nfour\n");
    }

    #[tokio::test]
    async fn follows_across_a_rotation_until_the_container_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(file, "2024-05-01T10:00:00Z stdout F first").unwrap();
        let flag = Arc::new(AtomicBool::new(true));
        let (tx, mut rx) = mpsc::channel(16);
        let reader = tokio::spawn({
            let path = path.clone();
            let running = Flag(flag.clone());
            async move {
                let options = LogOptions {
                    follow: true,
                    ..Default::default()
                };
                read_logs(&path, &options, &running, tx).await
            }
        });
        assert_eq!(&rx.recv().await.unwrap()[..], b"first\n");
        // Appended, half a record first.
        write!(file, "2024-05-01T10:00:01Z stdout F sec").unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        writeln!(file, "ond").unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"second\n");
        // Rotated: the old file renamed, a new one at the path.
        std::fs::rename(&path, dir.path().join("0.log.20240501-100002")).unwrap();
        writeln!(file, "2024-05-01T10:00:02Z stdout F late in the old file").unwrap();
        let mut new_file = std::fs::File::create(&path).unwrap();
        writeln!(new_file, "2024-05-01T10:00:03Z stdout F third").unwrap();
        let mut got = String::new();
        while !got.ends_with("third\n") {
            got.push_str(std::str::from_utf8(&rx.recv().await.unwrap()).unwrap());
        }
        assert_eq!(got, "late in the old file\nthird\n");
        // The container stops after a last line; the follower sends it and ends.
        writeln!(new_file, "2024-05-01T10:00:04Z stdout F last").unwrap();
        flag.store(false, Ordering::SeqCst);
        assert_eq!(collect(rx).await, "last\n");
        reader.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_missing_file_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let running = Flag(Arc::new(AtomicBool::new(false)));
        let err = read_logs(
            &dir.path().join("no.log"),
            &LogOptions::default(),
            &running,
            tx,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().starts_with("failed to open log file"),
            "{err}"
        );
    }
}
