//! The scale benchmark, kubemark-style: a release `k3rs server`, `--nodes` hollow nodes (the k3rs
//! kubelet over a fake runtime, from `k3rs-hollow`, each with its own connection) and
//! `--pods` pods on them. Two sides, each on a fresh server in the same run:
//!
//! - **k3rs**: `--deployments` Deployments (the pods split evenly among them) created at once;
//!   the Deployment and ReplicaSet controllers create the pods, the scheduler binds them, the
//!   hollow nodes report them Running.
//! - **pre-placed** (the baseline): the same number of bare pods, created by the benchmark itself
//!   (`CREATE_CLIENTS` at once) with `spec.nodeName` already set round-robin — what the
//!   controllers and the scheduler would have produced, without them. The difference between the
//!   sides is what the controllers and the scheduler cost.
//!
//! Measured per side, from a watch of the pods (times are when the benchmark sees a change):
//! the time from the first create to every pod Running; each pod's startup latency (seen added →
//! seen Running, upstream's pod-startup SLI); the bind rate; the server's RSS and CPU while idle
//! (nodes registered, no pods), during the ramp, and settled after it.

mod report;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k3rs_hollow::{HollowNode, HollowNodeConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Api, Client, Config};
use tokio::sync::watch;

use crate::server::{cpu_seconds, rss_mib, K3rsServer};
use crate::stats::Samples;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Hollow nodes.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Pods in all, on each side.
    #[arg(long, default_value_t = 3000)]
    pods: usize,
    /// Deployments the k3rs side splits the pods among.
    #[arg(long, default_value_t = 30)]
    deployments: usize,
    /// Seconds measured with the nodes registered and no pods yet.
    #[arg(long, default_value_t = 20)]
    idle_seconds: u64,
    /// Seconds measured after every pod is Running.
    #[arg(long, default_value_t = 30)]
    settle_seconds: u64,
    /// Give up on a side whose pods are not all Running by then.
    #[arg(long, default_value_t = 1800)]
    timeout_seconds: u64,
    /// The k3rs binary (a release build: `cargo xtask bench scale` builds it).
    #[arg(long, default_value = "target/release/k3rs")]
    k3rs: PathBuf,
    #[command(flatten)]
    output: crate::report::Output,
}

/// The namespace of the benchmark's pods.
const NAMESPACE: &str = "scale";
/// Clients creating the pre-placed pods at once.
const CREATE_CLIENTS: usize = 16;
/// How often the server's memory and CPU are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How a side makes its pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Deployments,
    PrePlaced,
}

/// Memory and CPU over one window of the run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    /// The mean RSS over the window (MiB).
    pub(crate) rss_mib: f64,
    /// The highest RSS seen in the window (MiB).
    pub(crate) peak_rss_mib: f64,
    /// CPU used over the window, in cores (1.0 = one core busy all the time).
    pub(crate) cpu_cores: f64,
}

/// Everything measured on one side.
#[derive(Debug)]
pub(crate) struct Results {
    /// From the first create to the last pod seen Running.
    pub(crate) all_running: Duration,
    /// Per pod: seen added → seen Running.
    pub(crate) startup: Samples,
    /// Pods seen bound per second, from the first create to the last bind.
    pub(crate) bound_per_second: f64,
    /// The most pods seen bound in one second.
    pub(crate) peak_bound_per_second: usize,
    pub(crate) idle: Usage,
    pub(crate) ramp: Usage,
    pub(crate) settled: Usage,
    /// The benchmark process's own CPU during the ramp (hollow nodes and the watch), in cores.
    pub(crate) bench_cpu_cores: f64,
}

pub(crate) fn run(args: Args) -> Result<()> {
    if args.nodes == 0 || args.pods == 0 || args.deployments == 0 {
        bail!("--nodes, --pods and --deployments must be positive");
    }
    if args.deployments > args.pods {
        bail!("--deployments may not exceed --pods");
    }
    if !args.k3rs.exists() {
        bail!(
            "{} not found (`cargo xtask bench scale` builds it)",
            args.k3rs.display()
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<()> {
    let scratch = args.output.scratch("scale")?;
    let pre_placed = side(
        &args,
        Workload::PrePlaced,
        &scratch.path().join("pre-placed"),
    )
    .await?;
    let k3rs = side(&args, Workload::Deployments, &scratch.path().join("k3rs")).await?;
    let report = report::Report {
        args: &args,
        machine: crate::machine::Machine::detect(),
        filesystem: crate::machine::filesystem_of(scratch.path()),
        k3rs: &k3rs,
        pre_placed: &pre_placed,
    };
    let markdown = report.render();
    println!("{markdown}");
    args.output.write("scale", &markdown)
}

/// One side on a fresh server: idle, ramp, settle.
async fn side(args: &Args, workload: Workload, dir: &Path) -> Result<Results> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let server = K3rsServer::start(&args.k3rs, dir).await?;
    let pid = server.pid();
    let result = measure(args, workload, &server).await;
    if result.is_err() {
        eprintln!(
            "scale: the server's log is {}",
            dir.join("k3rs.log").display()
        );
        // Keep the log for a look: the scratch directory goes when the run ends.
        let _ = std::fs::copy(
            dir.join("k3rs.log"),
            args.output.work_dir.join("k3rs-scale.log"),
        );
    }
    drop(server);
    eprintln!("scale: {workload:?} done (server pid {pid})");
    result
}

async fn measure(args: &Args, workload: Workload, server: &K3rsServer) -> Result<Results> {
    let pid = server.pid();
    let client = client(&server.kubeconfig).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await
        .context("creating the namespace")?;
    // Pods need the namespace's `default` ServiceAccount, which the controllers add.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(30);
    while accounts.get_opt("default").await?.is_none() {
        if Instant::now() > deadline {
            bail!("no default ServiceAccount in namespace {NAMESPACE} after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!("scale: {workload:?}: starting {} hollow nodes", args.nodes);
    let mut nodes = Vec::with_capacity(args.nodes);
    for index in 0..args.nodes {
        // Each node its own client and connection, as kubelets have.
        let node_client = self::client(&server.kubeconfig).await?;
        let node = HollowNode::start(
            node_client,
            HollowNodeConfig::new(format!("hollow-{index}")),
        )
        .await
        .with_context(|| format!("starting hollow node {index}"))?;
        nodes.push(node);
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name().to_owned()).collect();

    let sampler = Sampler::start(pid);
    let pods = PodWatch::start(client.clone());
    let idle_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle_end = Instant::now();
    let bench_cpu_start = cpu_seconds(std::process::id())?;

    eprintln!("scale: {workload:?}: creating {} pods", args.pods);
    let start = Instant::now();
    match workload {
        Workload::Deployments => create_deployments(&client, args).await?,
        Workload::PrePlaced => create_pods(&client, args.pods, &names).await?,
    }
    let deadline = start + Duration::from_secs(args.timeout_seconds);
    let end = pods.wait_running(args.pods, deadline).await?;
    let bench_cpu_cores =
        (cpu_seconds(std::process::id())? - bench_cpu_start) / (end - start).as_secs_f64();
    eprintln!(
        "scale: {workload:?}: {} pods Running after {:.1} s; settling {} s",
        args.pods,
        (end - start).as_secs_f64(),
        args.settle_seconds
    );
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let settle_end = Instant::now();

    let samples = sampler.stop().await?;
    let times = pods.stop().await;
    for node in nodes {
        node.stop().await;
    }
    let (startup, bound_per_second, peak_bound_per_second) = times.summary(start)?;
    Ok(Results {
        all_running: end - start,
        startup,
        bound_per_second,
        peak_bound_per_second,
        idle: usage(&samples, idle_start, idle_end),
        ramp: usage(&samples, start, end),
        settled: usage(&samples, end, settle_end),
        bench_cpu_cores,
    })
}

async fn client(kubeconfig: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("a client config from the server's kubeconfig")?;
    Client::try_from(config).context("a kube client")
}

/// The pod template both sides use: one container that asks for little (a hollow node runs
/// nothing), labelled for its Deployment.
fn pod_spec(app: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }],
        },
    })
}

async fn create_deployments(client: &Client, args: &Args) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let base = args.pods / args.deployments;
    let extra = args.pods % args.deployments;
    let deployments: Vec<Deployment> = (0..args.deployments)
        .map(|index| {
            let app = format!("app-{index}");
            let replicas = base + usize::from(index < extra);
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": app},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": app}},
                    "template": pod_spec(&app),
                },
            }))
        })
        .collect::<Result<_, _>>()?;
    futures::stream::iter(deployments)
        .map(|deployment| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &deployment).await }
        })
        .buffer_unordered(CREATE_CLIENTS)
        .try_collect::<Vec<_>>()
        .await
        .context("creating the Deployments")?;
    Ok(())
}

async fn create_pods(client: &Client, count: usize, nodes: &[String]) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    futures::stream::iter(0..count)
        .map(|index| {
            let api = api.clone();
            let mut pod = pod_spec("pre-placed");
            pod["metadata"]["name"] = format!("pod-{index}").into();
            pod["spec"]["nodeName"] = nodes[index % nodes.len()].clone().into();
            async move {
                let pod: Pod = serde_json::from_value(pod)?;
                api.create(&PostParams::default(), &pod).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CLIENTS)
        .try_collect::<Vec<_>>()
        .await
        .context("creating the pods")?;
    Ok(())
}

/// The server's RSS and CPU time, read every [`SAMPLE_EVERY`].
struct Sampler {
    task: tokio::task::JoinHandle<Result<Vec<Sample>>>,
    stop: watch::Sender<bool>,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    rss_mib: f64,
    cpu_seconds: f64,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                samples.push(Sample {
                    at: Instant::now(),
                    rss_mib: rss_mib(pid)?,
                    cpu_seconds: cpu_seconds(pid)?,
                });
            }
            Ok(samples)
        });
        Sampler { task, stop }
    }

    async fn stop(self) -> Result<Vec<Sample>> {
        let _ = self.stop.send(true);
        self.task.await.context("the sampler panicked")?
    }
}

/// Memory and CPU over `[from, to]`, from the samples inside it.
fn usage(samples: &[Sample], from: Instant, to: Instant) -> Usage {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
        return Usage::default();
    };
    let seconds = (last.at - first.at).as_secs_f64();
    Usage {
        rss_mib: inside.iter().map(|s| s.rss_mib).sum::<f64>() / inside.len() as f64,
        peak_rss_mib: inside.iter().map(|s| s.rss_mib).fold(0.0, f64::max),
        cpu_cores: if seconds > 0.0 {
            (last.cpu_seconds - first.cpu_seconds) / seconds
        } else {
            0.0
        },
    }
}

/// When the benchmark first saw each pod, bound, and Running.
#[derive(Debug, Default)]
struct PodTimes {
    pods: HashMap<String, Seen>,
    running: usize,
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    added: Instant,
    bound: Option<Instant>,
    running: Option<Instant>,
}

impl PodTimes {
    fn observe(&mut self, pod: &Pod, now: Instant) {
        let Some(name) = pod.metadata.name.clone() else {
            return;
        };
        let seen = self.pods.entry(name).or_insert(Seen {
            added: now,
            bound: None,
            running: None,
        });
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        if bound && seen.bound.is_none() {
            seen.bound = Some(now);
        }
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if running && seen.running.is_none() {
            seen.running = Some(now);
            self.running += 1;
        }
    }

    /// Startup latencies, the mean bind rate from `start`, and the most binds in one second.
    fn summary(&self, start: Instant) -> Result<(Samples, f64, usize)> {
        let mut startup = Samples::default();
        let mut binds = Vec::with_capacity(self.pods.len());
        for seen in self.pods.values() {
            let running = seen.running.context("a pod was never seen Running")?;
            startup.push(running.saturating_duration_since(seen.added));
            binds.push(seen.bound.unwrap_or(running));
        }
        let last = binds.iter().max().copied().unwrap_or(start);
        let rate = binds.len() as f64 / (last - start).as_secs_f64().max(f64::EPSILON);
        let mut per_second: HashMap<u64, usize> = HashMap::new();
        for bound in &binds {
            *per_second
                .entry(bound.saturating_duration_since(start).as_secs())
                .or_default() += 1;
        }
        let peak = per_second.values().copied().max().unwrap_or(0);
        Ok((startup, rate, peak))
    }
}

/// A watch of the namespace's pods, recording [`PodTimes`].
struct PodWatch {
    times: Arc<Mutex<PodTimes>>,
    running: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    fn start(client: Client) -> PodWatch {
        let times = Arc::new(Mutex::new(PodTimes::default()));
        let (running_tx, running) = watch::channel(0);
        let task = {
            let times = Arc::clone(&times);
            tokio::spawn(async move {
                let api: Api<Pod> = Api::namespaced(client, NAMESPACE);
                let mut events = watcher(api, watcher::Config::default()).boxed();
                while let Some(event) = events.next().await {
                    let pod = match event {
                        Ok(Event::Apply(pod) | Event::InitApply(pod)) => pod,
                        Ok(_) => continue,
                        Err(err) => {
                            eprintln!("scale: pod watch: {err} (retrying)");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                    let now = Instant::now();
                    let count = match times.lock() {
                        Ok(mut times) => {
                            times.observe(&pod, now);
                            times.running
                        }
                        Err(_) => return,
                    };
                    let _ = running_tx.send(count);
                }
            })
        };
        PodWatch {
            times,
            running,
            task,
        }
    }

    /// Waits until `count` pods have been seen Running; returns when the last was.
    async fn wait_running(&self, count: usize, deadline: Instant) -> Result<Instant> {
        let mut running = self.running.clone();
        let reached =
            tokio::time::timeout_at(deadline.into(), running.wait_for(|&n| n >= count)).await;
        match reached.map(|seen| seen.map(|_| ())) {
            Ok(Ok(())) => Ok(Instant::now()),
            Ok(Err(_)) => bail!("the pod watch ended"),
            Err(_) => bail!(
                "only {} of {count} pods Running before the deadline",
                *self.running.borrow()
            ),
        }
    }

    async fn stop(self) -> PodTimes {
        self.task.abort();
        let _ = self.task.await;
        match Arc::try_unwrap(self.times) {
            Ok(times) => times.into_inner().unwrap_or_else(|e| e.into_inner()),
            Err(shared) => std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}
