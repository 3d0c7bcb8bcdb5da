//! The store benchmark: the same workload against the k3rs store and etcd, in one run.
//!
//! Workload, identical on both sides (same keys, same seeded 1–4 KiB values, same order):
//! 1. durable creates by N concurrent clients (per level: throughput, per-write p50/p99);
//! 2. lists of a prefix holding `--list-objects` keys, whole and paged;
//! 3. watch delivery: one client creates keys one after another while a watcher on the prefix
//!    records when each event arrives; latency runs from issuing the create to the event.

mod backend;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};

use crate::stats::{concurrently, Round, Samples};
use backend::Backend;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Durable creates measured per concurrency level, split evenly among the clients.
    #[arg(long, default_value_t = 2000)]
    writes: usize,
    /// Concurrency levels (clients writing at once), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Unmeasured creates before the measured ones (warms caches, files and connections).
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Objects under the listed prefix.
    #[arg(long, default_value_t = 10_000)]
    list_objects: usize,
    /// Page size of the paged list.
    #[arg(long, default_value_t = 500)]
    page_size: usize,
    /// Times each list (whole and paged) is repeated.
    #[arg(long, default_value_t = 20)]
    list_runs: usize,
    /// Watch events measured.
    #[arg(long, default_value_t = 1000)]
    watch_events: usize,
    /// Seed of the value sizes and contents.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    common: crate::report::Common,
    /// Run only one side (for debugging the harness; the report needs both).
    #[arg(long, value_enum, default_value_t = Only::Both)]
    only: Only,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    Both,
    K3rs,
    Etcd,
}

/// Distinct values the workload cycles through (sizes uniform in 1–4 KiB).
const VALUE_POOL: usize = 256;
const MIN_VALUE: usize = 1024;
const MAX_VALUE: usize = 4096;
/// Clients that fill the listed prefix (not measured).
const FILL_CLIENTS: usize = 16;
/// A watch that has not delivered every event by then has lost some.
const WATCH_DEADLINE: Duration = Duration::from_secs(60);

/// Everything measured on one store.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) writes: Vec<Round>,
    pub(crate) list_all: Samples,
    pub(crate) list_paged: Samples,
    pub(crate) list_page: Samples,
    pub(crate) watch: Samples,
}

pub(crate) fn run(args: Args) -> Result<()> {
    validate(&args)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run_async(args))
}

fn validate(args: &Args) -> Result<()> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs positive client counts");
    }
    if args.page_size == 0 || args.list_runs == 0 || args.watch_events == 0 {
        bail!("--page-size, --list-runs and --watch-events must be positive");
    }
    if args.only != Only::K3rs && !args.common.etcd.exists() {
        bail!(
            "{} not found: install Debian etcd-server (`cargo xtask deps`) or pass --etcd",
            args.common.etcd.display()
        );
    }
    Ok(())
}

async fn run_async(args: Args) -> Result<()> {
    let scratch = args.common.output.scratch("store")?;
    let filesystem = crate::machine::filesystem_of(scratch.path());
    if filesystem.starts_with("tmpfs") {
        eprintln!("warning: {filesystem}: fsync is free here, durable-write numbers mean little");
    }
    let values = value_pool(args.seed);

    let etcd = if args.only == Only::K3rs {
        None
    } else {
        let dir = scratch.path().join("etcd");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (server, client) = crate::etcd::EtcdServer::start(&args.common.etcd, &dir).await?;
        eprintln!("etcd: running");
        let results = workload(Backend::etcd(&client), &args, &values).await;
        drop(server);
        Some(results?)
    };

    let k3rs = if args.only == Only::Etcd {
        None
    } else {
        let path = scratch.path().join("k3rs");
        let store = k3rs_store::SledStore::open(k3rs_store::SledStoreConfig {
            path: path.clone(),
            ..Default::default()
        })
        .with_context(|| format!("opening the k3rs store in {}", path.display()))?;
        eprintln!("k3rs: store open");
        Some(workload(Backend::K3rs(store), &args, &values).await?)
    };

    let report = report::Report {
        args: &args,
        machine: crate::machine::Machine::detect(),
        filesystem,
        etcd_version: crate::etcd::version(&args.common.etcd).unwrap_or_else(|_| "3.4".to_owned()),
        k3rs: k3rs.as_ref(),
        etcd: etcd.as_ref(),
    };
    let markdown = report.render();
    println!("{markdown}");
    if k3rs.is_none() || etcd.is_none() {
        if !args.common.output.no_report {
            eprintln!(
                "not writing {}: the report needs both stores",
                args.common.output.report.display()
            );
        }
        return Ok(());
    }
    args.common.output.write("store", &markdown)
}

/// `VALUE_POOL` values of seeded random sizes and bytes.
fn value_pool(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..VALUE_POOL)
        .map(|_| {
            let len = rng.random_range(MIN_VALUE..=MAX_VALUE);
            let mut value = vec![0u8; len];
            rng.fill(value.as_mut_slice());
            value
        })
        .collect()
}

fn value(values: &[Vec<u8>], index: usize) -> Vec<u8> {
    values
        .get(index % values.len().max(1))
        .cloned()
        .unwrap_or_default()
}

async fn workload(backend: Backend, args: &Args, values: &[Vec<u8>]) -> Result<Results> {
    let name = backend.name();
    let started = Instant::now();
    let values = Arc::new(values.to_vec());

    concurrent_creates(&backend, "/bench/warmup/", 1, args.warmup, &values).await?;

    let mut writes = Vec::new();
    for &clients in &args.concurrency {
        let per_client = args.writes.div_ceil(clients);
        let prefix = format!("/bench/write/c{clients}/");
        let round = concurrent_creates(&backend, &prefix, clients, per_client, &values).await?;
        eprintln!(
            "{name}: {clients} client(s): {:.0} writes/s, p50 {:?}, p99 {:?}",
            round.per_second(),
            round.latency.p50(),
            round.latency.p99()
        );
        writes.push(round);
    }

    let list_prefix = "/bench/list/";
    let per_client = args.list_objects.div_ceil(FILL_CLIENTS);
    let fill = concurrent_creates(&backend, list_prefix, FILL_CLIENTS, per_client, &values).await?;
    let expected = fill.latency.len();
    let (list_all, list_paged, list_page) =
        lists(backend.clone(), list_prefix, expected, args).await?;
    eprintln!(
        "{name}: list {expected}: whole p50 {:?}, paged p50 {:?}",
        list_all.p50(),
        list_paged.p50()
    );

    let watch = watch_delivery(backend.clone(), args.watch_events, &values).await?;
    eprintln!(
        "{name}: watch delivery p50 {:?}, p99 {:?} ({:.0} s in all)",
        watch.p50(),
        watch.p99(),
        started.elapsed().as_secs_f64()
    );

    Ok(Results {
        writes,
        list_all,
        list_paged,
        list_page,
        watch,
    })
}

/// `clients` clients each create `per_client` keys under `prefix`, all starting together.
async fn concurrent_creates(
    backend: &Backend,
    prefix: &str,
    clients: usize,
    per_client: usize,
    values: &Arc<Vec<Vec<u8>>>,
) -> Result<Round> {
    let backend = backend.clone();
    let values = Arc::clone(values);
    let prefix = prefix.to_owned();
    concurrently(clients, per_client, move |client, i| {
        let mut backend = backend.clone();
        let key = format!("{prefix}{client:03}/{i:06}");
        let value = value(&values, client * per_client + i);
        async move { backend.create(&key, value).await }
    })
    .await
}

/// Whole lists and paged lists of `prefix`; returns (whole, paged pass, one page) latencies.
async fn lists(
    mut backend: Backend,
    prefix: &str,
    expected: usize,
    args: &Args,
) -> Result<(Samples, Samples, Samples)> {
    let mut whole = Samples::default();
    let mut paged = Samples::default();
    let mut page = Samples::default();
    for _ in 0..args.list_runs {
        let start = Instant::now();
        let count = backend.list_all(prefix).await?;
        whole.push(start.elapsed());
        if count != expected {
            bail!("{}: listed {count} keys, wrote {expected}", backend.name());
        }

        let pass_start = Instant::now();
        let mut cursor = None;
        let mut count = 0;
        loop {
            let page_start = Instant::now();
            let (items, next) = backend.list_page(prefix, args.page_size, cursor).await?;
            page.push(page_start.elapsed());
            count += items;
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        paged.push(pass_start.elapsed());
        if count != expected {
            bail!(
                "{}: paged through {count} keys, wrote {expected}",
                backend.name()
            );
        }
    }
    Ok((whole, paged, page))
}

/// Creates `events` keys one after another under a watched prefix; returns, per key, the time
/// from issuing its create to the watcher receiving its event.
async fn watch_delivery(
    mut backend: Backend,
    events: usize,
    values: &[Vec<u8>],
) -> Result<Samples> {
    let prefix = "/bench/watch/";
    let after = backend.current_revision().await?;
    let mut feed = backend.watch(prefix, after).await?;

    let receiver = tokio::spawn(async move {
        let mut received = Vec::with_capacity(events);
        while received.len() < events {
            match feed.events.recv().await {
                Some(Ok(event)) => received.push(event),
                Some(Err(err)) => return Err(err),
                None => bail!("the watch ended after {} events", received.len()),
            }
        }
        anyhow::Ok(received)
    });

    let mut issued = Vec::with_capacity(events);
    for i in 0..events {
        let key = format!("{prefix}{i:06}");
        issued.push(Instant::now());
        backend.create(&key, value(values, i)).await?;
    }
    let received = tokio::time::timeout(WATCH_DEADLINE, receiver)
        .await
        .with_context(|| format!("{}: the watch missed events", backend.name()))?
        .context("the watch task panicked")??;

    let mut delivery = Samples::default();
    for (key, at) in received {
        let index: usize = key
            .strip_prefix(prefix)
            .and_then(|suffix| suffix.parse().ok())
            .with_context(|| format!("unexpected watch event for {key}"))?;
        let sent = issued
            .get(index)
            .with_context(|| format!("watch event for {key}, which was never written"))?;
        delivery.push(at.saturating_duration_since(*sent));
    }
    Ok(delivery)
}
