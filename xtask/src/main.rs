//! k3rs developer workflows: every task that is not plain `cargo build`/`cargo test`.
//!
//! Run as `cargo xtask <command>` (aliased in `.cargo/config.toml`). Each subcommand lives in its
//! own module; they share the helpers in [`util`].

#![forbid(unsafe_code)]

mod bench;
mod ci;
mod deps;
mod fuzz;
mod go_layout;
mod images;
mod protobuf_schema;
mod up;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "k3rs developer workflows")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install the host packages builds and tests need (idempotent, fast when all are present).
    Deps(deps::Args),
    /// Install what tests need, then run fmt, clippy and every test tier this machine can run.
    Ci(ci::Args),
    /// Install missing packages, build, and run `k3rs server` in the foreground.
    Up(up::Args),
    /// Build the reproducible OCI test images from `rootfs/` recipes.
    Images(images::Args),
    /// Run benchmarks side by side with their baselines.
    Bench(bench::Args),
    /// Build the fuzz targets of crates/apiserver/fuzz and run each for a bounded time.
    Fuzz(fuzz::Args),
    /// Regenerate the Kubernetes protobuf schema table of `crates/protobuf` from k8s-pb and k8s-openapi.
    ProtobufSchema(protobuf_schema::Args),
    /// Regenerate the Go JSON layout table of `crates/api` (field order, omitempty) from upstream's Go sources.
    GoLayout(go_layout::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Deps(args) => deps::run(args),
        Command::Ci(args) => ci::run(args),
        Command::Up(args) => up::run(args),
        Command::Images(args) => images::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::ProtobufSchema(args) => protobuf_schema::run(args),
        Command::GoLayout(args) => go_layout::run(args),
    }
}
