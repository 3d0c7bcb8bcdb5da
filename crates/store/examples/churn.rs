//! Churn of the store alone: `keys` keys updated round after round (values of ~1.5 KiB),
//! compacted every `compact_every` rounds to the current revision, printing per sample the writes
//! so far, the seconds, the database size and the process's RSS. A measurement for issue 9 (sled
//! against redb under the same churn), not a test; the numbers are printed, never asserted.
//!
//! `cargo run --release -p k3rs-store --example churn -- [sled|redb] [rounds] [cache_mib] [background_ms]`
//! (defaults: sled, 300 rounds, the backend's default cache, 500 ms; `background_ms` is sled's
//! background thread, 0 starts none, and redb ignores it).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k3rs_store::{RedbStore, RedbStoreConfig, SledStore, SledStoreConfig, Store};

use common::{arg, value};

const KEYS: usize = 100;
const COMPACT_EVERY: usize = 30;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .filter(|meta| meta.is_file())
        .map(|meta| meta.len())
        .sum()
}

/// The store under test.
enum Churned {
    Sled(Arc<SledStore>),
    Redb(Arc<RedbStore>),
}

impl Churned {
    fn store(&self) -> &dyn Store {
        match self {
            Churned::Sled(store) => store.as_ref(),
            Churned::Redb(store) => store.as_ref(),
        }
    }

    fn size_on_disk(&self) -> anyhow::Result<u64> {
        Ok(match self {
            Churned::Sled(store) => store.size_on_disk()?,
            Churned::Redb(store) => store.size_on_disk()?,
        })
    }

    fn path(&self) -> &std::path::Path {
        match self {
            Churned::Sled(store) => store.path(),
            Churned::Redb(store) => store.path(),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "sled".to_owned());
    let rounds = arg(2, 300) as usize;
    let background_ms = arg(4, 500);
    let dir = tempfile::tempdir()?;
    let (churned, cache_mib) = match backend.as_str() {
        "sled" => {
            let cache_mib = arg(3, SledStoreConfig::default().cache_capacity_bytes >> 20);
            let store = SledStore::open(SledStoreConfig {
                path: dir.path().join("db"),
                cache_capacity_bytes: cache_mib << 20,
                compaction_interval: None,
                background_every: (background_ms > 0).then(|| Duration::from_millis(background_ms)),
                ..Default::default()
            })?;
            (Churned::Sled(store), cache_mib)
        }
        "redb" => {
            let cache_mib = arg(3, RedbStoreConfig::default().cache_capacity_bytes >> 20);
            let store = RedbStore::open(RedbStoreConfig {
                path: dir.path().join("db"),
                cache_capacity_bytes: cache_mib << 20,
                compaction_interval: None,
                ..Default::default()
            })?;
            (Churned::Redb(store), cache_mib)
        }
        other => anyhow::bail!("unknown backend {other:?}: sled or redb"),
    };
    let store = churned.store();
    println!(
        "{backend}: cache {cache_mib} MiB, background {background_ms} ms, {KEYS} keys, values {} bytes, compaction every {COMPACT_EVERY} rounds",
        value(KEYS - 1, rounds, 0).len()
    );
    println!("round\twrites\tsecs\tw_per_s\tdb_mb\tdir_mb\trss_mib");
    let start = Instant::now();
    let mut revisions = Vec::with_capacity(KEYS);
    for k in 0..KEYS {
        let kv = store
            .create(
                &format!("/registry/configmaps/default/cm-{k}"),
                value(k, 0, 0),
            )
            .await?;
        revisions.push(kv.mod_revision);
    }
    let mut writes = KEYS;
    for round in 1..=rounds {
        for (k, revision) in revisions.iter_mut().enumerate() {
            let kv = store
                .update(
                    &format!("/registry/configmaps/default/cm-{k}"),
                    value(k, round, 0),
                    *revision,
                )
                .await?;
            *revision = kv.mod_revision;
            writes += 1;
        }
        if round % COMPACT_EVERY == 0 {
            store.compact(store.current_revision()).await?;
            report(&round.to_string(), writes, start, &churned)?;
        }
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    report("idle 5 s", writes, start, &churned)?;
    Ok(())
}

fn report(label: &str, writes: usize, start: Instant, store: &Churned) -> anyhow::Result<()> {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label}\t{writes}\t{secs:.1}\t{:.0}\t{:.1}\t{:.1}\t{:.1}",
        writes as f64 / secs,
        store.size_on_disk()? as f64 / 1e6,
        dir_bytes(store.path()) as f64 / 1e6,
        rss_mib()
    );
    Ok(())
}
