//! The API benchmark: the k3rs API server (a `k3rs server` child, driven over HTTPS/2 with JSON
//! as kubectl and controllers drive it) against etcd 3.4 (a child, over gRPC) — the database a
//! stock control plane keeps its objects in, without the kube-apiserver that k3rs replaces on
//! top of it. k3rs does strictly more work per request (TLS, authentication, RBAC, decoding,
//! defaulting, validation, field ownership), so ratios near 1 mean the API layer costs little.
//!
//! Workload, the same on both sides (same names and bytes, ConfigMaps of about 1 KiB):
//! 1. creates by N concurrent clients (per level: throughput, per-create p50/p99);
//! 2. fill to `--objects` objects, then the server's memory (RSS);
//! 3. gets of random objects, lists of all of them (p50/p99);
//! 4. watch fan-out: `--watchers` watches of the namespace, then updates of one object one after
//!    another; latency from issuing the update to each watcher's event, and to the last watcher's;
//!    then the memory again, with the watchers open;
//! 5. (k3rs only) a fresh server's memory before and after a user's first commands
//!    (`first_commands.rs`);
//! 6. the churn soak (`soak.rs`): minutes of mixed load then idle on a fresh server, memory and
//!    database size sampled all along.
//!
//! Parts 5 and 6 run first (each on fresh servers), so that a long run fails early.

mod first_commands;
mod report;
mod soak;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use etcd_client::{
    Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, WatchClient, WatchOptions,
};
use http::Method;
use http_body_util::BodyExt;
use rand::{Rng, SeedableRng};

use crate::client::ApiClient;
use crate::server;
use crate::stats::{concurrently, Round, Samples};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Creates measured per concurrency level, split evenly among the clients.
    #[arg(long, default_value_t = 1000)]
    creates: usize,
    /// Concurrency levels (clients creating at once), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Objects in the namespace for gets, lists and memory.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Gets measured.
    #[arg(long, default_value_t = 2000)]
    gets: usize,
    /// Lists of all objects measured.
    #[arg(long, default_value_t = 20)]
    list_runs: usize,
    /// Watches open at once for the fan-out.
    #[arg(long, default_value_t = 500)]
    watchers: usize,
    /// Updates each watcher must see.
    #[arg(long, default_value_t = 50)]
    watch_events: usize,
    /// kubectl, for a user's first commands (`kubectl explain pod`, `kubectl apply`).
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// Seconds of idle after the first commands before the server's RSS is read.
    #[arg(long, default_value_t = 30)]
    first_commands_idle: u64,
    /// Seconds of mixed load in the churn soak (600 for the recorded numbers; less while
    /// developing).
    #[arg(long, default_value_t = 600)]
    soak_load: u64,
    /// Seconds the soak goes on sampling after the load.
    #[arg(long, default_value_t = 120)]
    soak_idle: u64,
    /// Seconds between the soak's samples.
    #[arg(long, default_value_t = 60)]
    soak_sample: u64,
    /// Requests per second of the soak's load, over its 8 connections.
    #[arg(long, default_value_t = 1100)]
    soak_rate: u64,
    /// History compaction interval of both sides during the soak, in seconds (k3rs's
    /// `--etcd-compaction-interval`; kube-apiserver's default is 300).
    #[arg(long, default_value_t = 300)]
    soak_compaction: u64,
    /// Run only these parts (while developing): `requests` (creates, gets, lists, watches),
    /// `first-commands`, `soak`. The section of docs/benchmarks.md is written only by a run
    /// of all three.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Part>,
    /// The k3rs binary (a release build: `cargo xtask bench api` builds it).
    #[arg(long, default_value = "target/release/k3rs")]
    k3rs: PathBuf,
    #[command(flatten)]
    common: crate::report::Common,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Requests,
    FirstCommands,
    Soak,
}

impl Args {
    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }

    fn soak_settings(&self) -> soak::Settings {
        soak::Settings {
            load: Duration::from_secs(self.soak_load),
            idle: Duration::from_secs(self.soak_idle),
            sample_every: Duration::from_secs(self.soak_sample.max(1)),
            rate: self.soak_rate,
            compaction: Duration::from_secs(self.soak_compaction),
        }
    }
}

/// Bytes of the filler value in every object.
const VALUE_BYTES: usize = 1024;
/// Clients that fill the namespace (not measured).
const FILL_CLIENTS: usize = 16;
/// Watch streams per HTTP/2 connection (upstream clients share connections the same way).
const WATCHES_PER_CONNECTION: usize = 50;
/// A watcher that has not seen every update by then has lost some.
const WATCH_DEADLINE: Duration = Duration::from_secs(120);
/// The namespace of the benchmark's objects.
const NAMESPACE: &str = "bench";

/// Everything measured on one side.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) creates: Vec<Round>,
    pub(crate) rss_objects_mib: f64,
    pub(crate) gets: Samples,
    pub(crate) lists: Samples,
    pub(crate) delivery: Samples,
    pub(crate) last_watcher: Samples,
    pub(crate) rss_watchers_mib: f64,
}

/// What the benchmark reads of a k3rs list.
#[derive(serde::Deserialize)]
struct ListShape {
    metadata: ListMeta,
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct ListMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: String,
}

/// One side of the benchmark, cheap to clone per client.
#[derive(Clone)]
enum Side {
    K3rs(ApiClient),
    Etcd(Box<(KvClient, WatchClient)>),
}

fn config_map(name: &str, seq: usize, filler: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {"seq": seq.to_string(), "v": filler},
        })
        .to_string(),
    )
}

fn etcd_key(name: &str) -> String {
    format!("/registry/configmaps/{NAMESPACE}/{name}")
}

/// The `seq` an event carries (`"seq":"<n>"` in its JSON).
fn seq_of(event: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(event).ok()?;
    let start = text.find("\"seq\":\"")? + 7;
    let digits = text.get(start..)?.split('"').next()?;
    digits.parse().ok()
}

impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Side {
    fn name(&self) -> &'static str {
        match self {
            Side::K3rs(_) => "k3rs",
            Side::Etcd(_) => "etcd",
        }
    }

    async fn create(&mut self, name: &str, body: Bytes) -> Result<()> {
        match self {
            Side::K3rs(client) => {
                let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
                client
                    .call(Method::POST, &path, "application/json", body)
                    .await?;
            }
            Side::Etcd(clients) => {
                let key = etcd_key(name);
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.as_str(), body.to_vec(), None)]);
                if !clients.0.txn(txn).await?.succeeded() {
                    bail!("etcd: {key} already exists");
                }
            }
        }
        Ok(())
    }

    async fn update(&mut self, name: &str, body: Bytes) -> Result<()> {
        match self {
            Side::K3rs(client) => {
                let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps/{name}");
                client
                    .call(Method::PUT, &path, "application/json", body)
                    .await?;
            }
            Side::Etcd(clients) => {
                clients.0.put(etcd_key(name), body.to_vec(), None).await?;
            }
        }
        Ok(())
    }

    async fn get(&mut self, name: &str) -> Result<usize> {
        match self {
            Side::K3rs(client) => {
                let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps/{name}");
                Ok(client.get(&path).await?.len())
            }
            Side::Etcd(clients) => {
                let response = clients.0.get(etcd_key(name), None).await?;
                Ok(response.kvs().first().map_or(0, |kv| kv.value().len()))
            }
        }
    }

    /// Lists every object; returns how many there were and the revision of the list.
    async fn list(&mut self) -> Result<(usize, i64)> {
        match self {
            Side::K3rs(client) => {
                let body = client
                    .get(&format!("/api/v1/namespaces/{NAMESPACE}/configmaps"))
                    .await?;
                // Checked, not decoded into values: the etcd side does not parse its values
                // either, so neither side's client pays for building objects.
                let list: ListShape = serde_json::from_slice(&body)?;
                let revision = list
                    .metadata
                    .resource_version
                    .parse()
                    .context("a list's resourceVersion is not a number")?;
                Ok((list.items.len(), revision))
            }
            Side::Etcd(clients) => {
                let prefix = format!("/registry/configmaps/{NAMESPACE}/");
                let response = clients
                    .0
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await?;
                let revision = response.header().map_or(0, |h| h.revision());
                Ok((response.kvs().len(), revision))
            }
        }
    }

    /// Opens one watch of the namespace after `revision`; its events go to `events` as
    /// (seq, arrival) pairs.
    async fn watch(
        &mut self,
        revision: i64,
        events: tokio::sync::mpsc::UnboundedSender<(usize, Instant)>,
    ) -> Result<tokio::task::JoinHandle<()>> {
        match self {
            Side::K3rs(client) => {
                let path = format!(
                    "/api/v1/namespaces/{NAMESPACE}/configmaps?watch=1&resourceVersion={revision}"
                );
                let mut body = client.watch(&path).await?;
                Ok(tokio::spawn(async move {
                    let mut pending = Vec::new();
                    while let Some(Ok(frame)) = body.frame().await {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        let now = Instant::now();
                        pending.extend_from_slice(&data);
                        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = pending.drain(..=end).collect();
                            if let Some(seq) = seq_of(&line) {
                                let _ = events.send((seq, now));
                            }
                        }
                    }
                }))
            }
            Side::Etcd(clients) => {
                let prefix = format!("/registry/configmaps/{NAMESPACE}/");
                let options = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1);
                let mut stream = clients.1.watch(prefix, Some(options)).await?;
                // The first response confirms the watch, as k3rs's response headers do.
                let created = stream.message().await?;
                if !created.is_some_and(|response| response.created()) {
                    bail!("etcd: no confirmation of the watch");
                }
                Ok(tokio::spawn(async move {
                    while let Ok(Some(response)) = stream.message().await {
                        let now = Instant::now();
                        for event in response.events() {
                            if let Some(seq) = event.kv().and_then(|kv| seq_of(kv.value())) {
                                let _ = events.send((seq, now));
                            }
                        }
                    }
                }))
            }
        }
    }
}

pub(crate) fn run(args: Args) -> Result<()> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs positive client counts");
    }
    if args.objects == 0 || args.gets == 0 || args.list_runs == 0 || args.watch_events == 0 {
        bail!("--objects, --gets, --list-runs and --watch-events must be positive");
    }
    for binary in [&args.k3rs, &args.common.etcd] {
        if !binary.exists() {
            bail!(
                "{} not found (`cargo xtask bench api` builds k3rs and installs etcd)",
                binary.display()
            );
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<()> {
    let scratch = args.common.output.scratch("api")?;
    let filler: String = {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        (0..VALUE_BYTES)
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect()
    };

    let first = if args.runs(Part::FirstCommands) {
        Some(
            first_commands::measure(
                &args.k3rs,
                &args.kubectl,
                &scratch.path().join("k3rs-first-commands"),
                Duration::from_secs(args.first_commands_idle),
            )
            .await?,
        )
    } else {
        None
    };
    let (k3rs_soak, etcd_soak) = if args.runs(Part::Soak) {
        let (k3rs, etcd) = soaks(&args, scratch.path(), &filler).await?;
        (Some(k3rs), Some(etcd))
    } else {
        (None, None)
    };

    let (k3rs, etcd) = if args.runs(Part::Requests) {
        let (k3rs, etcd) = requests(&args, scratch.path(), &filler).await?;
        (Some(k3rs), Some(etcd))
    } else {
        (None, None)
    };
    let report = report::Report {
        args: &args,
        machine: crate::machine::Machine::detect(),
        filesystem: crate::machine::filesystem_of(scratch.path()),
        etcd_version: crate::etcd::version(&args.common.etcd).unwrap_or_else(|_| "3.4".to_owned()),
        k3rs: k3rs.as_ref(),
        etcd: etcd.as_ref(),
        first,
        k3rs_soak: k3rs_soak.as_ref(),
        etcd_soak: etcd_soak.as_ref(),
    };
    let markdown = report.render();
    println!("{markdown}");
    if !args.only.is_empty() {
        eprintln!("--only: docs/benchmarks.md not written");
        return Ok(());
    }
    args.common.output.write("api", &markdown)
}

/// The soak on a fresh k3rs, then on a fresh etcd.
async fn soaks(args: &Args, scratch: &Path, filler: &str) -> Result<(soak::Soak, soak::Soak)> {
    let settings = args.soak_settings();
    let k3rs = {
        let dir = scratch.join("k3rs-soak");
        std::fs::create_dir_all(&dir)?;
        let flags = [format!(
            "--etcd-compaction-interval={}s",
            args.soak_compaction
        )];
        let server = server::K3rsServer::start_with(&args.k3rs, &dir, &flags).await?;
        let admin = ApiClient::connect(server.port, &server.credentials, 1).await?;
        create_namespace(&admin).await?;
        let token = soak::bearer_token(&admin).await?;
        let client = ApiClient::connect_with_token(
            server.port,
            &server.credentials,
            soak::CONNECTIONS,
            &token,
        )
        .await?;
        let watched = soak::Watched {
            pid: server.pid(),
            database: server.store_dir.clone(),
        };
        let results = soak::run(soak::Target::K3rs(client), None, &watched, settings, filler).await;
        drop(server);
        results?
    };
    let etcd = {
        let dir = scratch.join("etcd-soak");
        std::fs::create_dir_all(&dir)?;
        let (server, client) = crate::etcd::EtcdServer::start(&args.common.etcd, &dir).await?;
        let watched = soak::Watched {
            pid: server.pid(),
            database: soak::etcd_database(&dir.join("data")),
        };
        let target = soak::Target::Etcd(Box::new(client.kv_client()));
        let results = soak::run(target, Some(client), &watched, settings, filler).await;
        drop(server);
        results?
    };
    Ok((k3rs, etcd))
}

/// Creates the benchmark's namespace on a k3rs server.
async fn create_namespace(client: &ApiClient) -> Result<()> {
    let namespace = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
    });
    client
        .call(
            Method::POST,
            "/api/v1/namespaces",
            "application/json",
            Bytes::from(namespace.to_string()),
        )
        .await?;
    Ok(())
}

/// Creates, gets, lists and watches on etcd, then on k3rs.
async fn requests(args: &Args, scratch: &Path, filler: &str) -> Result<(Results, Results)> {
    let etcd = {
        let dir = scratch.join("etcd");
        std::fs::create_dir_all(&dir)?;
        let (server, client) = crate::etcd::EtcdServer::start(&args.common.etcd, &dir).await?;
        let max = 256 << 20;
        let side = Side::Etcd(Box::new((
            client.kv_client().max_decoding_message_size(max),
            client.watch_client().max_decoding_message_size(max),
        )));
        let pid = server.pid();
        let results = workload(side, pid, args, filler).await;
        drop(server);
        results?
    };

    let k3rs = {
        let dir = scratch.join("k3rs");
        std::fs::create_dir_all(&dir)?;
        let server = server::K3rsServer::start(&args.k3rs, &dir).await?;
        let connections = args
            .concurrency
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .max(FILL_CLIENTS);
        let client = ApiClient::connect(server.port, &server.credentials, connections).await?;
        create_namespace(&client).await?;
        let results = workload(Side::K3rs(client), server.pid(), args, filler).await;
        drop(server);
        results?
    };
    Ok((k3rs, etcd))
}

async fn workload(side: Side, pid: u32, args: &Args, filler: &str) -> Result<Results> {
    let name = side.name();
    let filler: Arc<str> = Arc::from(filler);
    let mut creates = Vec::new();
    for &clients in &args.concurrency {
        let per_client = args.creates.div_ceil(clients);
        let round =
            concurrent_creates(&side, &format!("c{clients}"), clients, per_client, &filler).await?;
        eprintln!(
            "{name}: {clients} client(s): {:.0} creates/s, p50 {:?}, p99 {:?}",
            round.per_second(),
            round.latency.p50(),
            round.latency.p99()
        );
        creates.push(round);
    }
    let (existing, _) = side.clone().list().await?;
    let missing = args.objects.saturating_sub(existing);
    concurrent_creates(
        &side,
        "fill",
        FILL_CLIENTS,
        missing.div_ceil(FILL_CLIENTS),
        &filler,
    )
    .await?;
    let (objects, revision) = side.clone().list().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_objects_mib = server::rss_mib(pid)?;
    eprintln!("{name}: {objects} objects, RSS {rss_objects_mib:.0} MiB");

    let mut gets = Samples::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let per_client = missing.div_ceil(FILL_CLIENTS);
    let mut one = side.clone();
    for _ in 0..args.gets {
        let client = rng.random_range(0..FILL_CLIENTS);
        let index = rng.random_range(0..per_client.max(1));
        let start = Instant::now();
        let bytes = one.get(&format!("fill-{client:02}-{index:06}")).await?;
        gets.push(start.elapsed());
        if bytes == 0 {
            bail!("{name}: a get found nothing");
        }
    }
    let mut lists = Samples::default();
    for _ in 0..args.list_runs {
        let start = Instant::now();
        let (count, _) = one.list().await?;
        lists.push(start.elapsed());
        if count != objects {
            bail!("{name}: a list found {count} objects, not {objects}");
        }
    }
    eprintln!(
        "{name}: get p50 {:?}, list {objects} p50 {:?}",
        gets.p50(),
        lists.p50()
    );

    let (delivery, last_watcher, rss_watchers_mib) =
        fan_out(&side, pid, revision, args, &filler).await?;
    eprintln!(
        "{name}: fan-out to {}: p50 {:?}, last watcher p99 {:?}, RSS {rss_watchers_mib:.0} MiB",
        args.watchers,
        delivery.p50(),
        last_watcher.p99()
    );
    Ok(Results {
        creates,
        rss_objects_mib,
        gets,
        lists,
        delivery,
        last_watcher,
        rss_watchers_mib,
    })
}

/// `clients` clients each create `per_client` objects named `<prefix>-<client>-<i>`, starting
/// together.
async fn concurrent_creates(
    side: &Side,
    prefix: &str,
    clients: usize,
    per_client: usize,
    filler: &Arc<str>,
) -> Result<Round> {
    let side = side.clone();
    let filler = Arc::clone(filler);
    let prefix = prefix.to_owned();
    concurrently(clients, per_client, move |client, i| {
        let mut side = side.clone();
        let name = format!("{prefix}-{client:02}-{i:06}");
        let body = config_map(&name, 0, &filler);
        async move { side.create(&name, body).await }
    })
    .await
}

/// Opens the watchers, updates one object `watch_events` times, and measures each delivery.
/// Returns (per watcher and event, slowest watcher per event, RSS with the watchers open).
async fn fan_out(
    side: &Side,
    pid: u32,
    revision: i64,
    args: &Args,
    filler: &str,
) -> Result<(Samples, Samples, f64)> {
    let watched = "watched";
    let mut writer = side.clone();
    writer
        .create(watched, config_map(watched, 0, filler))
        .await?;
    let sides: Vec<Side> = match side {
        Side::K3rs(client) => {
            let connections = args.watchers.div_ceil(WATCHES_PER_CONNECTION);
            let mut out = Vec::new();
            for _ in 0..connections {
                let port = client.port();
                let credentials = client.credentials().clone();
                out.push(Side::K3rs(ApiClient::connect(port, &credentials, 1).await?));
            }
            out
        }
        Side::Etcd(_) => vec![side.clone()],
    };
    let mut receivers = Vec::with_capacity(args.watchers);
    let mut tasks = Vec::with_capacity(args.watchers);
    for index in 0..args.watchers {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut watch_side = sides[index % sides.len()].clone();
        tasks.push(watch_side.watch(revision, sender).await?);
        receivers.push(receiver);
    }
    // Every watch answered; give the servers a moment to settle before the first update.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The creation of the watched object is the first event; wait for every watcher to see it.
    for receiver in &mut receivers {
        tokio::time::timeout(WATCH_DEADLINE, receiver.recv())
            .await
            .context("a watcher missed the first event")?;
    }
    let mut sent = Vec::with_capacity(args.watch_events);
    for seq in 1..=args.watch_events {
        let body = config_map(watched, seq, filler);
        sent.push(Instant::now());
        writer.update(watched, body).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss = server::rss_mib(pid)?;
    let mut delivery = Samples::default();
    let mut slowest = vec![Duration::ZERO; args.watch_events];
    let deadline = Instant::now() + WATCH_DEADLINE;
    for receiver in &mut receivers {
        let mut seen = 0;
        while seen < args.watch_events {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some((seq, at))) = tokio::time::timeout(left, receiver.recv()).await else {
                bail!("a watcher saw {seen} of {} updates", args.watch_events);
            };
            let Some(issued) = seq.checked_sub(1).and_then(|i| sent.get(i)) else {
                continue;
            };
            let latency = at.saturating_duration_since(*issued);
            delivery.push(latency);
            if let Some(slot) = slowest.get_mut(seq - 1) {
                *slot = (*slot).max(latency);
            }
            seen += 1;
        }
    }
    for task in tasks {
        task.abort();
    }
    let mut last_watcher = Samples::default();
    for latency in slowest {
        last_watcher.push(latency);
    }
    Ok((delivery, last_watcher, rss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_sequence_number() {
        let body = config_map("watched", 42, "xyz");
        assert_eq!(seq_of(&body), Some(42));
        let event = format!(
            r#"{{"type":"MODIFIED","object":{}}}"#,
            String::from_utf8_lossy(&body)
        );
        assert_eq!(seq_of(event.as_bytes()), Some(42));
        assert_eq!(seq_of(br#"{"data":{"v":"x"}}"#), None);
    }
}
