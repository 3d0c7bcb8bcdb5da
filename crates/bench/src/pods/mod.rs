//! The pods benchmark: a real node (`k3rs server` with its agent, kubelet and containerd, in a
//! network namespace of its own through the black-box harness's [`TestNode`]) against the CRI
//! floor on the same containerd. In one run:
//!
//! 1. **Node Ready**: `--cold-starts` cold starts (a fresh data dir each, the images already in
//!    the air-gap dir), then one warm restart of the last node (same data dir): time from
//!    spawning `k3rs server` to the Node's Ready condition True, polled through the API.
//! 2. **Pods** for each of `--counts`, interleaved: k3rs (bare pods created at once through the
//!    API, each timed create sent → seen Running with its container running), then the floor
//!    (the same number of sandboxes and containers created directly through CRI on the node's
//!    containerd, each timed RunPodSandbox → StartContainer returned).
//! 3. **Resources**: the server's RSS and CPU, containerd's, and the shims' (summed), over
//!    `--idle-seconds` with no pods and again with the largest count of idle pods.
//!
//! Everything is removed at the end, on failure and on Ctrl-C (the node's own cleanup, the
//! floor's sandboxes and their cgroups).

mod floor;
mod ready;
mod report;
mod usage;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k3rs_tests::node::{missing_host_capability, NodeOptions, TestNode};
use tokio::sync::watch;

use crate::stats::Samples;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Pod counts, each run through k3rs and then the CRI floor.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    counts: Vec<usize>,
    /// Cold starts of a node timed to Ready (a fresh data dir each); a warm restart follows.
    #[arg(long, default_value_t = 3)]
    cold_starts: usize,
    /// Seconds of resource measurement, idle without pods and with the largest count of pods.
    #[arg(long, default_value_t = 20)]
    idle_seconds: u64,
    /// Give up on a round whose pods are not all running (or all gone) by then.
    #[arg(long, default_value_t = 180)]
    timeout_seconds: u64,
    /// The k3rs binary (a release build: `cargo xtask bench pods` builds it).
    #[arg(long, default_value = "target/release/k3rs")]
    k3rs: PathBuf,
    /// The directory holding `busybox.oci.tar` (`cargo xtask images busybox` writes it).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/images"))]
    images: PathBuf,
    #[command(flatten)]
    output: crate::report::Output,
}

/// The image both sides run (`cargo xtask images busybox`).
pub(crate) const IMAGE: &str = "k3rs/busybox:1.35.0";
/// The pods' command.
const COMMAND: [&str; 2] = ["sleep", "3600"];

/// One count's results on both sides.
#[derive(Debug)]
pub(crate) struct Round {
    pub(crate) pods: usize,
    pub(crate) k3rs: Timing,
    pub(crate) floor: Timing,
}

/// Per-pod start-up latencies of one round on one side, and the round's wall time.
#[derive(Debug, Default)]
pub(crate) struct Timing {
    pub(crate) latency: Samples,
    /// From the first create sent to the last pod running.
    pub(crate) total: Duration,
}

/// Everything the run measured.
#[derive(Debug)]
pub(crate) struct Results {
    /// Cold starts to Ready, in order.
    pub(crate) cold: Vec<Duration>,
    /// The last node's restart to Ready with its data dir kept.
    pub(crate) warm: Duration,
    pub(crate) rounds: Vec<Round>,
    /// Idle with no pods.
    pub(crate) idle: usage::Usage,
    /// Idle with the largest count of pods running.
    pub(crate) loaded: Option<(usize, usage::Usage)>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    if args.counts.is_empty() || args.counts.contains(&0) {
        bail!("--counts must list positive numbers");
    }
    if args.cold_starts == 0 {
        bail!("--cold-starts must be positive");
    }
    if let Some(missing) = missing_host_capability() {
        bail!("the pods benchmark runs a real node and needs root, containerd, runc and the CNI plugins: {missing}");
    }
    if !args.k3rs.is_file() {
        bail!(
            "{} not found (`cargo xtask bench pods` builds it)",
            args.k3rs.display()
        );
    }
    let archive = args.images.join("busybox.oci.tar");
    if !archive.is_file() {
        bail!(
            "{} not found: run `cargo xtask images busybox` (or pass --images)",
            archive.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let interrupt = Interrupt::install(&runtime);
    let scratch = args.output.scratch("pods")?;
    let machine = crate::machine::Machine::detect();
    let filesystem = crate::machine::filesystem_of(scratch.path());
    let results = measure(&args, &runtime, &interrupt, scratch.path());
    if results.is_err() {
        // Keep the servers' logs for a look: the scratch directory goes when the run ends.
        for entry in walk_logs(scratch.path()) {
            eprintln!("pods: a server's log: {}", entry.display());
            let name = entry
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = std::fs::copy(
                &entry,
                args.output.work_dir.join(format!("k3rs-pods-{name}.log")),
            );
        }
    }
    let results = results?;
    let markdown = report::Report {
        args: &args,
        machine,
        filesystem,
        results: &results,
    }
    .render();
    println!("{markdown}");
    args.output.write("pods", &markdown)
}

/// The `k3rs.log` of each node directory under `root`.
fn walk_logs(root: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("k3rs.log"))
                .filter(|log| log.is_file())
                .collect()
        })
        .unwrap_or_default()
}

fn node_options(args: &Args) -> NodeOptions {
    NodeOptions {
        k3rs: Some(args.k3rs.clone()),
        images_dir: Some(args.images.clone()),
        // Not the tests' `t` and 198.18.0.0/16: a benchmark and the tests run side by side.
        tag: 'b',
        block: std::net::Ipv4Addr::new(198, 19, 0, 0),
        own_process_group: true,
        log_filter: Some("info".to_owned()),
    }
}

fn measure(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    interrupt: &Interrupt,
    scratch: &std::path::Path,
) -> Result<Results> {
    // containerd's sockets live under the data dir, and a unix socket's path has room for
    // 107 bytes.
    let longest = scratch.join("node-0/data/run/containerd/containerd.sock.ttrpc");
    if longest.as_os_str().len() > 107 {
        bail!(
            "{} is too long for a unix socket: pass a shorter --work-dir",
            longest.display()
        );
    }
    let options = node_options(args);
    // Dropped after the node (declared first): the floor pods' cgroups, which the node's own
    // cleanup does not know.
    let floor_cgroups = floor::Cgroups::default();
    let mut cold = Vec::new();
    let mut last = None;
    for index in 0..args.cold_starts {
        interrupt.check()?;
        let root = scratch.join(format!("node-{index}"));
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let mut node = TestNode::prepare(&root, &["busybox"], &options)?;
        let took = runtime.block_on(interrupt.or(ready::time_to_ready(&mut node)))?;
        eprintln!("pods: cold start {}: Ready after {took:?}", index + 1);
        cold.push(took);
        if index + 1 == args.cold_starts {
            last = Some(node);
        }
    }
    let mut node = last.context("no node was started")?;
    interrupt.check()?;
    node.stop(Duration::from_secs(30))?;
    let warm = runtime.block_on(interrupt.or(ready::time_to_ready(&mut node)))?;
    eprintln!("pods: warm restart: Ready after {warm:?}");

    let measured = runtime.block_on(interrupt.or(pods_and_usage(args, &node, &floor_cgroups)));
    drop(node);
    floor_cgroups.remove(true);
    let (rounds, idle, loaded) = measured?;
    Ok(Results {
        cold,
        warm,
        rounds,
        idle,
        loaded,
    })
}

type Measured = (Vec<Round>, usage::Usage, Option<(usize, usage::Usage)>);

async fn pods_and_usage(
    args: &Args,
    node: &TestNode,
    floor_cgroups: &floor::Cgroups,
) -> Result<Measured> {
    let timeout = Duration::from_secs(args.timeout_seconds);
    let idle_for = Duration::from_secs(args.idle_seconds);
    let pid = node.pid().context("the node's server is not running")?;
    let cluster = workload::Cluster::connect(node).await?;
    let cri = k3rs_containerd::CriClient::connect(&node.containerd_socket())
        .await
        .context("connecting to the node's containerd")?;
    let floor = floor::Floor::new(node, cri.clone(), floor_cgroups)?;
    eprintln!("pods: settling 5 s, then {idle_for:?} idle without pods");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let processes = usage::NodeProcesses::find(pid, node)?;
    let idle = usage::measure(&processes, idle_for).await?;
    let largest = args.counts.iter().copied().max().unwrap_or(0);
    let mut rounds = Vec::new();
    let mut loaded = None;
    for &count in &args.counts {
        eprintln!("pods: k3rs, {count} pods");
        let k3rs = cluster.start_pods(count, timeout).await?;
        if count == largest && loaded.is_none() {
            eprintln!("pods: {idle_for:?} idle with {count} pods");
            let processes = usage::NodeProcesses::find(pid, node)?;
            loaded = Some((count, usage::measure(&processes, idle_for).await?));
        }
        cluster.delete_pods(&cri, timeout).await?;
        eprintln!("pods: floor, {count} pods");
        let floor_timing = floor.round(count, timeout).await;
        floor.remove_all().await?;
        rounds.push(Round {
            pods: count,
            k3rs,
            floor: floor_timing?,
        });
    }
    Ok((rounds, idle, loaded))
}

/// Ctrl-C, caught for the whole run so that the node and the floor's pods are cleaned up: the
/// async phases stop at once, the blocking ones at their next check.
#[derive(Debug, Clone)]
struct Interrupt {
    fired: watch::Receiver<bool>,
}

impl Interrupt {
    fn install(runtime: &tokio::runtime::Runtime) -> Interrupt {
        let (sender, fired) = watch::channel(false);
        let sender = Arc::new(sender);
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("pods: interrupted; cleaning up");
                let _ = sender.send(true);
            }
        });
        Interrupt { fired }
    }

    fn check(&self) -> Result<()> {
        if *self.fired.borrow() {
            bail!("interrupted");
        }
        Ok(())
    }

    /// Runs `work` unless Ctrl-C comes first.
    async fn or<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let mut fired = self.fired.clone();
        tokio::select! {
            result = work => result,
            _ = fired.wait_for(|f| *f) => bail!("interrupted"),
        }
    }
}
