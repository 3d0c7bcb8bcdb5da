//! Churn of the redb store with concurrent readers, like the API server's soak: one writer
//! updating 100 keys (values of ~1.5 KiB) at a fixed rate, `readers` tasks doing gets and prefix
//! lists of the 100 keys through the `Store` trait as fast as they can (or at a total rate), and
//! the store's automatic compaction every `compact_secs`. Prints, every 5 s, the writes and reads
//! so far, the database file size and redb's own account of it (pages allocated, B-tree pages,
//! live leaf bytes). A measurement, not a test: the numbers are printed, never asserted.
//!
//! `cargo run --release -p k3rs-store --example churn_readers -- [secs] [readers] [writes_per_s] [compact_secs] [reads_per_s] [extra_bytes]`
//! (defaults: 240 s, 4 readers, 60 writes/s, compaction every 120 s, reads unthrottled (0), and
//! no bytes added to the ~1.3 KiB values).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k3rs_store::{ListOptions, RedbStore, RedbStoreConfig, Store};

use common::{arg, value};

const KEYS: usize = 100;
const PREFIX: &str = "/registry/configmaps/default/";

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    /// Microseconds spent in lists.
    list_us: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = arg(1, 240);
    let readers = arg(2, 4);
    let writes_per_s = arg(3, 60).max(1);
    let compact_secs = arg(4, 120);
    let reads_per_s = arg(5, 0);
    let extra = arg(6, 0) as usize;
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open(RedbStoreConfig {
        path: dir.path().join("db"),
        compaction_interval: (compact_secs > 0).then(|| Duration::from_secs(compact_secs)),
        ..Default::default()
    })?;
    println!(
        "redb: {KEYS} keys, values {} bytes, {writes_per_s} writes/s, {readers} readers ({}), compaction every {compact_secs} s",
        value(KEYS - 1, 0, extra).len(),
        if reads_per_s == 0 {
            "unthrottled".to_owned()
        } else {
            format!("{reads_per_s} reads/s in all")
        }
    );
    println!("secs\twrites\tgets/s\tlists/s\tlist_ms\tfile_mb\talloc_mb\ttree_mb\tlive_mb\trev\tcompacted");
    let mut revisions = Vec::with_capacity(KEYS);
    for k in 0..KEYS {
        let kv = store
            .create(&format!("{PREFIX}cm-{k}"), value(k, 0, extra))
            .await?;
        revisions.push(kv.mod_revision);
    }
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);

    let mut tasks = Vec::new();
    for reader in 0..readers {
        let store = Arc::clone(&store);
        let counters = Arc::clone(&counters);
        let pause =
            (reads_per_s > 0).then(|| Duration::from_secs_f64(readers as f64 / reads_per_s as f64));
        tasks.push(tokio::spawn(async move {
            let mut i = reader as usize;
            let mut next = Instant::now();
            while Instant::now() < end {
                // Nine gets to one list, like a controller's mix of gets and relists.
                if i.is_multiple_of(10) {
                    let began = Instant::now();
                    let page = store.list(PREFIX, ListOptions::default()).await?;
                    anyhow::ensure!(page.items.len() == KEYS, "list saw {}", page.items.len());
                    counters
                        .list_us
                        .fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
                    counters.lists.fetch_add(1, Ordering::Relaxed);
                } else {
                    store.get(&format!("{PREFIX}cm-{}", i % KEYS)).await?;
                    counters.gets.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                if let Some(pause) = pause {
                    next += pause;
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            anyhow::Ok(())
        }));
    }

    {
        let store = Arc::clone(&store);
        let counters = Arc::clone(&counters);
        tasks.push(tokio::spawn(async move {
            let every = Duration::from_secs_f64(1.0 / writes_per_s as f64);
            let mut next = Instant::now();
            let mut n = 0usize;
            while Instant::now() < end {
                let k = n % KEYS;
                let kv = store
                    .update(
                        &format!("{PREFIX}cm-{k}"),
                        value(k, n / KEYS + 1, extra),
                        revisions[k],
                    )
                    .await?;
                revisions[k] = kv.mod_revision;
                counters.writes.fetch_add(1, Ordering::Relaxed);
                n += 1;
                next += every;
                tokio::time::sleep_until(next.into()).await;
            }
            anyhow::Ok(())
        }));
    }

    let mut last = (0u64, 0u64, 0u64, 0u64, start);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = Instant::now();
        let gets = counters.gets.load(Ordering::Relaxed);
        let lists = counters.lists.load(Ordering::Relaxed);
        let list_us = counters.list_us.load(Ordering::Relaxed);
        let dt = now.duration_since(last.4).as_secs_f64();
        let stats = store.stats()?;
        println!(
            "{:.0}\t{}\t{:.0}\t{:.0}\t{:.2}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{}\t{}",
            now.duration_since(start).as_secs_f64(),
            counters.writes.load(Ordering::Relaxed),
            (gets - last.1) as f64 / dt,
            (lists - last.2) as f64 / dt,
            (list_us - last.3) as f64 / 1000.0 / (lists - last.2).max(1) as f64,
            store.size_on_disk()? as f64 / 1e6,
            stats.allocated_bytes as f64 / 1e6,
            stats.tree_bytes as f64 / 1e6,
            stats.stored_leaf_bytes as f64 / 1e6,
            store.current_revision(),
            store.compacted_revision(),
        );
        last = (0, gets, lists, list_us, now);
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
