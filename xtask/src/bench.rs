//! `cargo xtask bench`: benchmarks run side by side with their baselines (crate `k3rs-bench`).

use anyhow::Result;
use clap::Subcommand;

use crate::util::{cargo, run_cmd, target_dir, workspace_root};

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
    Store {
        /// Print the benchmark's own options.
        #[arg(long)]
        help_bench: bool,
        /// Arguments for `k3rs-bench store`, e.g. `--writes 5000 --concurrency 1,4,16`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        bench_args: Vec<String>,
    },
}

pub(crate) fn run(args: Args) -> Result<()> {
    match args.bench {
        Bench::Store {
            help_bench,
            bench_args,
        } => {
            if !args.no_deps && !help_bench {
                // etcd-server for the baseline, protoc for etcd-client.
                crate::deps::ensure()?;
            }
            // Data on the target dir's disk, not /tmp (which may be tmpfs, where fsync is free).
            let work_dir = target_dir()?.join("k3rs-bench");
            let report = workspace_root().join("docs").join("benchmarks.md");
            let mut cmd = cargo();
            cmd.args(["run", "--release", "-p", "k3rs-bench", "--", "store"]);
            if help_bench {
                cmd.arg("--help");
            } else {
                cmd.arg("--work-dir")
                    .arg(work_dir)
                    .arg("--report")
                    .arg(report)
                    .args(bench_args);
            }
            run_cmd(&mut cmd)
        }
    }
}
