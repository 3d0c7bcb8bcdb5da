//! `cargo xtask bench`: benchmarks run side by side with their baselines (crate `k3rs-bench`).

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::util::{cargo, is_root, run_cmd, target_dir, workspace_root};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Do not run `cargo xtask deps` first (packages are managed some other way).
    #[arg(long)]
    no_deps: bool,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The k3rs store against etcd 3.4, in one run; writes its section of docs/benchmarks.md.
    ///
    /// Extra arguments go to `k3rs-bench store` (see `cargo xtask bench store --help-bench`).
    Store(BenchArgs),
    /// The k3rs API server (release build) against etcd 3.4 alone: creates/s, get and list
    /// latency at 10k objects, watch fan-out to 500 watchers, server memory, the memory of a
    /// user's first commands, and a churn soak (RSS and database size every minute during 10
    /// minutes of mixed load and 2 after; `--soak-load 120` shortens it while developing);
    /// writes its section of docs/benchmarks.md.
    ///
    /// Extra arguments go to `k3rs-bench api` (see `cargo xtask bench api --help-bench`).
    Api(BenchArgs),
    /// k3rs (release build) with 50 hollow nodes and 3,000 pods via Deployments, against the
    /// same pods created pre-placed: time to all Running, scheduler pods/s, pod startup, server
    /// RSS and CPU idle, during and after; writes its section of docs/benchmarks.md.
    ///
    /// Extra arguments go to `k3rs-bench scale` (see `cargo xtask bench scale --help-bench`).
    Scale(BenchArgs),
    /// A real node (release build; `k3rs server` with its agent, kubelet and containerd in a
    /// network namespace of its own) starting 1, 10 and 50 busybox pods, each round followed by
    /// the same sandboxes and containers created directly through CRI on its containerd (the
    /// floor): p50/p99 start-up and their ratios; node Ready from cold starts and a warm
    /// restart; the server's, containerd's and the shims' RSS and CPU idle with no pods and
    /// with 50; writes its section of docs/benchmarks.md. About 5 minutes.
    ///
    /// Needs root (network namespaces, cgroups, containerd), containerd, runc and the CNI
    /// plugins (`cargo xtask deps` installs them), and builds the busybox image
    /// (`cargo xtask images busybox`) when target/images lacks it.
    ///
    /// Extra arguments go to `k3rs-bench pods` (see `cargo xtask bench pods --help-bench`).
    Pods(BenchArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Print the benchmark's own options.
    #[arg(long)]
    help_bench: bool,
    /// Arguments for `k3rs-bench <name>`, e.g. `--writes 5000 --concurrency 1,4,16`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    bench_args: Vec<String>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let (name, bench) = match args.bench {
        Bench::Store(bench) => ("store", bench),
        Bench::Api(bench) => ("api", bench),
        Bench::Scale(bench) => ("scale", bench),
        Bench::Pods(bench) => ("pods", bench),
    };
    if name == "pods" && !bench.help_bench && !is_root() {
        bail!(
            "bench pods runs a real node (network namespaces, cgroups, its own containerd) and \
             needs root: run it as root"
        );
    }
    if !args.no_deps && !bench.help_bench {
        // etcd-server for the baseline, protoc for etcd-client; containerd, runc and the CNI
        // plugins for the pods benchmark's node.
        crate::deps::ensure()?;
    }
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "k3rs-bench", "--", name]);
    if bench.help_bench {
        cmd.arg("--help");
        return run_cmd(&mut cmd);
    }
    if name == "pods" {
        let images = workspace_root().join("target").join("images");
        if !images.join("busybox.oci.tar").is_file() {
            crate::images::run(crate::images::Args::named(&["busybox"]))?;
        }
        cmd.arg("--images").arg(images);
    }
    if name == "api" || name == "scale" || name == "pods" {
        // The server under test is the release binary a user installs.
        run_cmd(cargo().args(["build", "--release", "-p", "k3rs"]))?;
        cmd.arg("--k3rs")
            .arg(target_dir()?.join("release").join("k3rs"));
    }
    // Data on the target dir's disk, not /tmp (which may be tmpfs, where fsync is free).
    let work_dir = target_dir()?.join("k3rs-bench");
    let report = workspace_root().join("docs").join("benchmarks.md");
    cmd.arg("--work-dir")
        .arg(work_dir)
        .arg("--report")
        .arg(report)
        .args(bench.bench_args);
    run_cmd(&mut cmd)
}
