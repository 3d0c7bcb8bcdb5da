//! Churn of the store alone: `keys` keys updated round after round, compacted every
//! `compact_every` rounds to the current revision, printing the database size and the process's
//! RSS. A measurement for issue 9, not a test; the numbers are printed, never asserted.
//!
//! `cargo run --release -p k3rs-store --example churn -- [rounds] [cache_mib] [background_ms]`
//! (`background_ms` 0 starts no sled background thread).

use std::time::{Duration, Instant};

use k3rs_store::{SledStore, SledStoreConfig, Store};

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

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds = arg(1, 300) as usize;
    let cache_mib = arg(2, 64);
    let background_ms = arg(3, 500);
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(SledStoreConfig {
        path: dir.path().join("db"),
        cache_capacity_bytes: cache_mib << 20,
        compaction_interval: None,
        background_every: (background_ms > 0).then(|| Duration::from_millis(background_ms)),
        ..Default::default()
    })?;
    println!("cache {cache_mib} MiB, background {background_ms} ms, {KEYS} keys, compaction every {COMPACT_EVERY} rounds");
    println!("round\twrites\tsecs\tdb_mb\tdir_mb\trss_mib");
    let start = Instant::now();
    let mut revisions = Vec::with_capacity(KEYS);
    for k in 0..KEYS {
        let kv = store
            .create(&format!("/registry/configmaps/default/cm-{k}"), value(k, 0))
            .await?;
        revisions.push(kv.mod_revision);
    }
    let mut writes = KEYS;
    for round in 1..=rounds {
        for (k, revision) in revisions.iter_mut().enumerate() {
            let kv = store
                .update(
                    &format!("/registry/configmaps/default/cm-{k}"),
                    value(k, round),
                    *revision,
                )
                .await?;
            *revision = kv.mod_revision;
            writes += 1;
        }
        if round % COMPACT_EVERY == 0 {
            store.compact(store.current_revision()).await?;
            report(&round.to_string(), writes, start, &store)?;
        }
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    report("idle 5 s", writes, start, &store)?;
    Ok(())
}

fn report(label: &str, writes: usize, start: Instant, store: &SledStore) -> anyhow::Result<()> {
    println!(
        "{label}\t{writes}\t{:.1}\t{:.1}\t{:.1}\t{:.1}",
        start.elapsed().as_secs_f64(),
        store.size_on_disk()? as f64 / 1e6,
        dir_bytes(store.path()) as f64 / 1e6,
        rss_mib()
    );
    Ok(())
}

/// A ConfigMap-sized JSON value (~1.2 KB) that changes every round.
fn value(key: usize, round: usize) -> Vec<u8> {
    let data: String = (0..20)
        .map(|i| format!("\"k{i}\":\"value-{key}-{round}-{i}-padding-padding\","))
        .collect();
    format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{key}\",\"namespace\":\"default\",\"resourceVersion\":\"{round}\",\"labels\":{{\"churn\":\"yes\"}}}},\"data\":{{{data}\"round\":\"{round}\"}}}}"
    )
    .into_bytes()
}
