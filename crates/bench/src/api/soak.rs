//! The churn soak: minutes of mixed load on a fresh server — 8 connections at a fixed request
//! rate, one request in ten a merge patch of one of 100 ConfigMaps, one a list of them, the
//! rest gets, as a service account with a bearer token on the k3rs side — then minutes of
//! idle, with the server's RSS and database size sampled all along. Both sides compact their
//! history on the same interval (k3rs by its `--etcd-compaction-interval`, etcd by the
//! benchmark as kube-apiserver's compactor does it).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::Method;
use rand::{Rng, SeedableRng};

use super::{config_map, etcd_key, NAMESPACE};
use crate::client::ApiClient;
use crate::server::{self, disk_bytes};

/// Connections (and clients) of the load, as wrk's `-c 8`.
pub(crate) const CONNECTIONS: usize = 8;
/// ConfigMaps the load patches, gets and lists.
pub(crate) const OBJECTS: usize = 100;
/// One request in this many is a patch, one a list.
const PATCH_EVERY: u64 = 10;

/// The soak's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) load: Duration,
    pub(crate) idle: Duration,
    pub(crate) sample_every: Duration,
    /// Requests per second over all connections.
    pub(crate) rate: u64,
    pub(crate) compaction: Duration,
}

/// One sample of the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Seconds since the load started.
    pub(crate) at: Duration,
    pub(crate) rss_mib: f64,
    pub(crate) database_mib: f64,
    /// Whether the load was running.
    pub(crate) loaded: bool,
}

/// What one side's soak measured.
#[derive(Debug, Clone)]
pub(crate) struct Soak {
    pub(crate) samples: Vec<Sample>,
    pub(crate) requests: u64,
    pub(crate) load_seconds: f64,
    pub(crate) compaction: Duration,
}

impl Soak {
    /// Requests per second the load achieved.
    pub(crate) fn rate(&self) -> f64 {
        self.requests as f64 / self.load_seconds.max(f64::EPSILON)
    }

    fn loaded(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.loaded)
    }

    /// The highest RSS while loaded.
    pub(crate) fn peak_rss(&self) -> Option<f64> {
        self.loaded().map(|s| s.rss_mib).reduce(f64::max)
    }

    /// Growth of the RSS over the last half of the load, in percent (the plateau test: the
    /// last 5 of 10 minutes).
    pub(crate) fn late_growth_percent(&self) -> Option<f64> {
        let loaded: Vec<&Sample> = self.loaded().collect();
        let end = loaded.last()?;
        let half = end.at / 2;
        let start = loaded.iter().find(|s| s.at >= half)?;
        (start.rss_mib > 0.0).then(|| (end.rss_mib / start.rss_mib - 1.0) * 100.0)
    }

    /// The RSS at the last sample, after the idle time.
    pub(crate) fn rss_after_idle(&self) -> Option<f64> {
        self.samples.last().filter(|s| !s.loaded).map(|s| s.rss_mib)
    }

    /// The database size at the first sample after the first compaction.
    pub(crate) fn database_after_first_compaction(&self) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.at > self.compaction)
            .map(|s| s.database_mib)
    }

    /// The largest database size from the first compaction on.
    pub(crate) fn database_max_after_compaction(&self) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| s.at > self.compaction)
            .map(|s| s.database_mib)
            .reduce(f64::max)
    }
}

/// The load's side: k3rs over HTTPS with a bearer token, or etcd over gRPC.
#[derive(Clone)]
pub(crate) enum Target {
    K3rs(ApiClient),
    Etcd(Box<etcd_client::KvClient>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::K3rs(_) => "k3rs",
            Target::Etcd(_) => "etcd",
        })
    }
}

fn name_of(index: usize) -> String {
    format!("soak-{index:03}")
}

impl Target {
    async fn create(&mut self, index: usize, filler: &str) -> Result<()> {
        let name = name_of(index);
        let body = config_map(&name, 0, filler);
        match self {
            Target::K3rs(client) => {
                let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
                client
                    .call(Method::POST, &path, "application/json", body)
                    .await?;
            }
            Target::Etcd(kv) => {
                kv.put(etcd_key(&name), body.to_vec(), None).await?;
            }
        }
        Ok(())
    }

    /// Request `n` of the mix.
    async fn request(&mut self, n: u64, index: usize, filler: &str) -> Result<()> {
        let name = name_of(index);
        match (n % PATCH_EVERY, self) {
            (0, Target::K3rs(client)) => {
                let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps/{name}");
                let patch = format!(r#"{{"data":{{"seq":"{n}"}}}}"#);
                client
                    .call(
                        Method::PATCH,
                        &path,
                        "application/merge-patch+json",
                        Bytes::from(patch),
                    )
                    .await?;
            }
            (0, Target::Etcd(kv)) => {
                // kube-apiserver's patch: the object read (from its cache), changed, written.
                let seq = usize::try_from(n).unwrap_or(usize::MAX);
                kv.put(
                    etcd_key(&name),
                    config_map(&name, seq, filler).to_vec(),
                    None,
                )
                .await?;
            }
            (5, Target::K3rs(client)) => {
                client
                    .get(&format!("/api/v1/namespaces/{NAMESPACE}/configmaps"))
                    .await?;
            }
            (5, Target::Etcd(kv)) => {
                let prefix = format!("/registry/configmaps/{NAMESPACE}/soak-");
                kv.get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
                    .await?;
            }
            (_, Target::K3rs(client)) => {
                client
                    .get(&format!("/api/v1/namespaces/{NAMESPACE}/configmaps/{name}"))
                    .await?;
            }
            (_, Target::Etcd(kv)) => {
                kv.get(etcd_key(&name), None).await?;
            }
        }
        Ok(())
    }
}

/// A service account token with cluster-admin rights, for the k3rs side's load.
pub(crate) async fn bearer_token(admin: &ApiClient) -> Result<String> {
    let json = "application/json";
    admin
        .call(
            Method::POST,
            &format!("/api/v1/namespaces/{NAMESPACE}/serviceaccounts"),
            json,
            Bytes::from(
                r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"soak"}}"#,
            ),
        )
        .await?;
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "bench-soak"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "soak", "namespace": NAMESPACE}],
    });
    admin
        .call(
            Method::POST,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            json,
            Bytes::from(binding.to_string()),
        )
        .await?;
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 86_400},
    });
    let answer = admin
        .call(
            Method::POST,
            &format!("/api/v1/namespaces/{NAMESPACE}/serviceaccounts/soak/token"),
            json,
            Bytes::from(request.to_string()),
        )
        .await?;
    let answer: serde_json::Value = serde_json::from_slice(&answer)?;
    answer["status"]["token"]
        .as_str()
        .map(str::to_owned)
        .context("a TokenRequest without status.token")
}

/// Where one side's process and database are.
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) pid: u32,
    /// The database's files: k3rs's store directory, or etcd's bbolt file (its WAL, preallocated
    /// in 64 MB segments, is left out).
    pub(crate) database: PathBuf,
}

/// Runs the soak against `target` (connected with [`CONNECTIONS`] connections; for etcd,
/// `compact` is the client that compacts as kube-apiserver would).
pub(crate) async fn run(
    target: Target,
    compact: Option<etcd_client::Client>,
    watched: &Watched,
    settings: Settings,
    filler: &str,
) -> Result<Soak> {
    let name = format!("{target:?}");
    let filler: Arc<str> = Arc::from(filler);
    for index in 0..OBJECTS {
        target.clone().create(index, &filler).await?;
    }
    let compactor = compact
        .map(|client| tokio::spawn(compact_like_kube_apiserver(client, settings.compaction)));

    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop_at = started + settings.load;
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for client in 0..CONNECTIONS {
        let mut target = target.clone();
        let requests = Arc::clone(&requests);
        let filler = Arc::clone(&filler);
        let every = Duration::from_secs_f64(CONNECTIONS as f64 / settings.rate.max(1) as f64);
        clients.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(client as u64);
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = client as u64;
            while Instant::now() < stop_at {
                ticker.tick().await;
                let index = rng.random_range(0..OBJECTS);
                target.request(n, index, &filler).await?;
                requests.fetch_add(1, Ordering::Relaxed);
                n += CONNECTIONS as u64;
            }
            anyhow::Ok(())
        }));
    }

    let mut samples = Vec::new();
    let total = settings.load + settings.idle;
    let mut next = Duration::ZERO;
    let mut load_seconds = settings.load.as_secs_f64();
    let mut load_done = false;
    loop {
        let at = started.elapsed();
        if !load_done && at >= settings.load {
            for client in clients.drain(..) {
                client.await.context("a load client panicked")??;
            }
            load_seconds = started.elapsed().as_secs_f64();
            load_done = true;
        }
        if at >= next {
            let sample = Sample {
                at,
                rss_mib: server::rss_mib(watched.pid)?,
                database_mib: disk_bytes(&watched.database) as f64 / (1024.0 * 1024.0),
                loaded: !load_done,
            };
            eprintln!(
                "{name} soak {:>4}s: RSS {:.0} MiB, database {:.1} MiB, {} requests",
                at.as_secs(),
                sample.rss_mib,
                sample.database_mib,
                requests.load(Ordering::Relaxed)
            );
            samples.push(sample);
            next += settings.sample_every;
            if next > total {
                break;
            }
        }
        if clients.iter().any(|c| c.is_finished()) && !load_done {
            // A client that stopped early failed: report it now, not at the end.
            for client in clients.iter_mut().filter(|c| c.is_finished()) {
                client.await.context("a load client panicked")??;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(compactor) = compactor {
        compactor.abort();
    }
    let requests = requests.load(Ordering::Relaxed);
    if requests == 0 {
        bail!("{name}: the soak's load sent no request");
    }
    Ok(Soak {
        samples,
        requests,
        load_seconds,
        compaction: settings.compaction,
    })
}

/// kube-apiserver's compactor over etcd: every `interval`, compact to the revision it saw the
/// interval before (so the first compaction is at the second tick, and one interval of history
/// is always kept).
async fn compact_like_kube_apiserver(mut client: etcd_client::Client, interval: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut previous: Option<i64> = None;
    loop {
        ticker.tick().await;
        let current = match client.get("compact_rev_key", None).await {
            Ok(response) => response.header().map_or(0, |h| h.revision()),
            Err(err) => {
                eprintln!("etcd compactor: {err}");
                continue;
            }
        };
        if let Some(revision) = previous.filter(|r| *r > 0) {
            if let Err(err) = client.compact(revision, None).await {
                eprintln!("etcd compactor: compacting to {revision}: {err}");
            }
        }
        previous = Some(current);
    }
}

/// The etcd database file under an etcd data dir.
pub(crate) fn etcd_database(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap").join("db")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(minute: u64, rss: f64, database: f64, loaded: bool) -> Sample {
        Sample {
            at: Duration::from_secs(minute * 60),
            rss_mib: rss,
            database_mib: database,
            loaded,
        }
    }

    #[test]
    fn summaries_read_the_samples_they_name() {
        let soak = Soak {
            samples: vec![
                sample(0, 40.0, 1.0, true),
                sample(5, 100.0, 8.0, true),
                sample(6, 110.0, 4.0, true),
                sample(10, 120.0, 6.0, true),
                sample(12, 50.0, 6.0, false),
            ],
            requests: 600,
            load_seconds: 600.0,
            compaction: Duration::from_secs(300),
        };
        assert_eq!(soak.rate(), 1.0);
        assert_eq!(soak.peak_rss(), Some(120.0));
        assert_eq!(soak.late_growth_percent().map(f64::round), Some(20.0));
        assert_eq!(soak.rss_after_idle(), Some(50.0));
        assert_eq!(soak.database_after_first_compaction(), Some(4.0));
        assert_eq!(soak.database_max_after_compaction(), Some(6.0));
    }
}
