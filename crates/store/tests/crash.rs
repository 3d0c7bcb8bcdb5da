//! Crash test: a writer in a child process is SIGKILLed at random moments — while it writes,
//! a few milliseconds into start-up, and the instant sled starts writing a snapshot file (for
//! redb, which writes no such files: after a longer spell of writing) — and after every kill the
//! store must open and hold every acknowledged write, with nothing unacknowledged half-applied.
//! It runs once per backend (`sled_…` and `redb_…`).
//!
//! `K3RS_CRASH_ITERATIONS` sets the number of kills (default 30; `cargo xtask ci` runs more),
//! `K3RS_CRASH_SEED` replays a run.
//!
//! The child is this test binary itself, re-run with `K3RS_CRASH_CHILD_DIR` (and
//! `K3RS_CRASH_CHILD_BACKEND`) set: the `crash_writer_child` test is the writer, and does nothing
//! in a normal run.

// The test bodies are plain functions that `backend_tests!` (or a pair of `#[test]`s) runs per
// backend, so clippy's allowance for `unwrap` in tests does not reach them.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Config, Kind};
use k3rs_store::{ListOptions, Revision};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

const CHILD_DIR_ENV: &str = "K3RS_CRASH_CHILD_DIR";
const CHILD_SEQ_ENV: &str = "K3RS_CRASH_CHILD_SEQ";
const CHILD_BACKEND_ENV: &str = "K3RS_CRASH_CHILD_BACKEND";
const TASKS: u64 = 4;
const KEYS_PER_TASK: u64 = 12;

fn store_config(dir: &Path) -> Config {
    Config {
        // Compact often, so kills also land in the middle of compactions.
        compaction_interval: Some(Duration::from_millis(30)),
        compaction_retention: 0,
        ..Config::new(dir)
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Sled => "sled",
        Kind::Redb => "redb",
    }
}

/// The value written by write number `seq` to `key`: 1–4 KiB, self-describing and checkable.
fn value_for(key: &str, seq: u64) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(seq.to_be_bytes());
    let seed = hasher.finalize();
    let len = 1024 + (u64::from(seed[0]) << 4 | u64::from(seed[1] & 0x0f)) as usize % 3072;
    let mut out = format!("{seq}:").into_bytes();
    let mut block = seed.to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// Reads the write number back out of a value, checking that every byte is as written.
fn check_value(key: &str, value: &[u8]) -> Result<u64, String> {
    let colon = value.iter().position(|b| *b == b':').ok_or("no header")?;
    let seq: u64 = std::str::from_utf8(&value[..colon])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("bad header")?;
    if value_for(key, seq) != value {
        return Err(format!("value of {key} (write {seq}) is torn"));
    }
    Ok(seq)
}

fn key_name(task: u64, index: u64) -> String {
    format!("/crash/{task}/{index:02}")
}

/// The child: writes forever, printing `BEGIN key op seq` before and `ACK key op seq rev`
/// after each acknowledged write. One task owns each key, so a key has at most one write in
/// flight.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let seq_base: u64 = std::env::var(CHILD_SEQ_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("sequence base");
    let kind = match std::env::var(CHILD_BACKEND_ENV).as_deref() {
        Ok("redb") => Kind::Redb,
        _ => Kind::Sled,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store =
            common::open(kind, store_config(Path::new(&dir))).expect("child opens the store");
        println!("OPENED {}", store.current_revision());
        let mut state: BTreeMap<String, Revision> = BTreeMap::new();
        for kv in store
            .list("/crash/", ListOptions::default())
            .await
            .expect("list")
            .items
        {
            state.insert(kv.key, kv.mod_revision);
        }
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let store = std::sync::Arc::clone(&store);
            let mut mine: BTreeMap<String, Revision> = state
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("/crash/{task}/")))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seq_base + task);
                let mut seq = seq_base + task * 1_000_000;
                loop {
                    seq += 1;
                    let key = key_name(task, rng.random_range(0..KEYS_PER_TASK));
                    match mine.get(&key).copied() {
                        None => {
                            println!("BEGIN {key} C {seq}");
                            let kv = store
                                .create(&key, value_for(&key, seq))
                                .await
                                .expect("create");
                            println!("ACK {key} C {seq} {}", kv.mod_revision);
                            mine.insert(key, kv.mod_revision);
                        }
                        Some(rev) if rng.random_bool(0.2) => {
                            println!("BEGIN {key} D {seq}");
                            let deleted = store.delete(&key, Some(rev)).await.expect("delete");
                            println!("ACK {key} D {seq} {}", deleted.revision);
                            mine.remove(&key);
                        }
                        Some(rev) => {
                            println!("BEGIN {key} U {seq}");
                            let kv = store
                                .update(&key, value_for(&key, seq), rev)
                                .await
                                .expect("update");
                            println!("ACK {key} U {seq} {}", kv.mod_revision);
                            mine.insert(key, kv.mod_revision);
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer task");
        }
    });
}

/// What the parent knows of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Known {
    Absent,
    Present { seq: u64, revision: Revision },
}

#[derive(Clone, Copy, Debug)]
enum KillMode {
    /// 5–60 ms after the child starts: inside sled's open and our start-up.
    StartUp,
    /// When a `snap.*.generating` file appears (sled); 600–2000 ms into writing (redb).
    SnapshotFile,
    /// While writes stream.
    Writing,
}

struct Outcome {
    lines: Vec<String>,
    leftover_generating: bool,
    exit: std::process::ExitStatus,
}

fn run_child(kind: Kind, dir: &Path, seq_base: u64, mode: KillMode, rng: &mut impl Rng) -> Outcome {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
    inotify
        .add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
        .expect("watch the store directory");
    let exe = std::env::current_exe().expect("test binary");
    let mut child: Child = Command::new(exe)
        .args([
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_SEQ_ENV, seq_base.to_string())
        .env(CHILD_BACKEND_ENV, kind_name(kind))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let pid = Pid::from_raw(child.id() as i32);
    match mode {
        KillMode::StartUp => {
            std::thread::sleep(Duration::from_millis(rng.random_range(5..=60)));
        }
        KillMode::Writing => {
            std::thread::sleep(Duration::from_millis(rng.random_range(60..=600)));
        }
        KillMode::SnapshotFile if kind == Kind::Redb => {
            std::thread::sleep(Duration::from_millis(rng.random_range(600..=2000)));
        }
        KillMode::SnapshotFile => {
            'wait: while started.elapsed() < Duration::from_secs(5) {
                match inotify.read_events() {
                    Ok(events) => {
                        for event in events {
                            let name = event.name.map(|n| n.to_string_lossy().into_owned());
                            if name.is_some_and(|n| n.ends_with(".generating")) {
                                break 'wait;
                            }
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => std::thread::yield_now(),
                    Err(err) => panic!("inotify: {err}"),
                }
            }
        }
    }
    // The child may have died on its own (a failed write panics it): that is a failure too.
    let _ = kill(pid, Signal::SIGKILL);
    let exit = child.wait().expect("wait for the writer");
    let leftover_generating = std::fs::read_dir(dir)
        .expect("read store dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".generating"));
    reader.join().expect("stdout reader");
    Outcome {
        lines: rx.try_iter().collect(),
        leftover_generating,
        exit,
    }
}

/// Checks the store against what the child acknowledged; returns the new known state.
async fn verify(
    kind: Kind,
    dir: &Path,
    known: &BTreeMap<String, Known>,
    lines: &[String],
    iteration: usize,
) -> (BTreeMap<String, Known>, Revision) {
    let mut acked: BTreeMap<String, Known> = BTreeMap::new();
    let mut pending: BTreeMap<String, Known> = BTreeMap::new();
    let mut max_acked = 0;
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["BEGIN", key, op, seq] => {
                let seq: u64 = seq.parse().expect("seq");
                let after = if *op == "D" {
                    Known::Absent
                } else {
                    Known::Present { seq, revision: 0 }
                };
                pending.insert((*key).to_owned(), after);
            }
            ["ACK", key, op, seq, rev] => {
                let seq: u64 = seq.parse().expect("seq");
                let revision: Revision = rev.parse().expect("rev");
                max_acked = max_acked.max(revision);
                pending.remove(*key);
                let after = if *op == "D" {
                    Known::Absent
                } else {
                    Known::Present { seq, revision }
                };
                acked.insert((*key).to_owned(), after);
            }
            _ => {}
        }
    }

    let store = match common::open(kind, store_config(dir)) {
        Ok(store) => store,
        Err(err) => panic!("iteration {iteration}: the store does not open after a kill: {err}"),
    };
    assert!(
        store.current_revision() >= max_acked,
        "iteration {iteration}: revision {} is behind acknowledged revision {max_acked}",
        store.current_revision()
    );
    let mut actual: BTreeMap<String, Known> = BTreeMap::new();
    let page = store
        .list("/crash/", ListOptions::default())
        .await
        .expect("list");
    for kv in page.items {
        let seq = check_value(&kv.key, &kv.value)
            .unwrap_or_else(|err| panic!("iteration {iteration}: {err}"));
        actual.insert(
            kv.key,
            Known::Present {
                seq,
                revision: kv.mod_revision,
            },
        );
    }
    let mut next = BTreeMap::new();
    for task in 0..TASKS {
        for index in 0..KEYS_PER_TASK {
            let key = key_name(task, index);
            let found = actual.get(&key).cloned().unwrap_or(Known::Absent);
            let base = acked
                .get(&key)
                .or_else(|| known.get(&key))
                .cloned()
                .unwrap_or(Known::Absent);
            let in_flight = pending.get(&key);
            let matches_base = found == base;
            let base_revision = match base {
                Known::Present { revision, .. } => revision,
                Known::Absent => 0,
            };
            let matches_in_flight = match (in_flight, &found) {
                (Some(Known::Absent), Known::Absent) => true,
                // An unacknowledged write that landed did so after the state it replaced.
                (Some(Known::Present { seq, .. }), Known::Present { seq: got, revision }) => {
                    seq == got && *revision > base_revision
                }
                _ => false,
            };
            assert!(
                matches_base || matches_in_flight,
                "iteration {iteration}: {key} is {found:?}; acknowledged state {base:?}, in flight {in_flight:?}"
            );
            next.insert(key, found);
        }
    }
    assert_eq!(
        actual.len(),
        next.values().filter(|k| **k != Known::Absent).count(),
        "iteration {iteration}: unexpected keys in {actual:?}"
    );
    let revision = store.current_revision();
    drop(store);
    (next, revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_acknowledged_writes_survive_sigkill() {
    acknowledged_writes_survive_sigkill(Kind::Sled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_acknowledged_writes_survive_sigkill() {
    acknowledged_writes_survive_sigkill(Kind::Redb).await;
}

async fn acknowledged_writes_survive_sigkill(kind: Kind) {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    let iterations: usize = std::env::var("K3RS_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("K3RS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let backend = kind_name(kind);
    eprintln!("crash test ({backend}): {iterations} kills, K3RS_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().join("store");
    std::fs::create_dir_all(&dir).expect("store dir");

    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let mut revision = 0;
    let mut acks = 0usize;
    let mut leftovers = 0usize;
    let mut per_mode = [0usize; 3];
    for iteration in 0..iterations {
        let mode = match iteration % 3 {
            0 => KillMode::Writing,
            1 => KillMode::StartUp,
            _ => KillMode::SnapshotFile,
        };
        per_mode[iteration % 3] += 1;
        let seq_base = (iteration as u64 + 1) * 10_000_000;
        let outcome = run_child(kind, &dir, seq_base, mode, &mut rng);
        assert!(
            outcome.exit.code().is_none(),
            "iteration {iteration}: the writer exited by itself ({}) instead of being killed; last lines: {:?}",
            outcome.exit,
            outcome.lines.iter().rev().take(5).collect::<Vec<_>>()
        );
        leftovers += usize::from(outcome.leftover_generating);
        acks += outcome
            .lines
            .iter()
            .filter(|l| l.starts_with("ACK"))
            .count();
        let (next, rev) = verify(kind, &dir, &known, &outcome.lines, iteration).await;
        assert!(
            rev >= revision,
            "iteration {iteration}: revision went back from {revision} to {rev}"
        );
        known = next;
        revision = rev;
    }
    eprintln!(
        "crash test ({backend}): {iterations} kills (writing {}, start-up {}, snapshot file {}), {acks} acknowledged writes checked, \
         {leftovers} half-written snapshot files left by kills and cleaned on open, final revision {revision}",
        per_mode[0], per_mode[1], per_mode[2]
    );
    assert!(
        acks > 0,
        "the writer acknowledged nothing: the test proved nothing"
    );
}
