//! k3rs benchmarks, each run side by side with its baseline in the same process run, so that the
//! ratio between the two means something even on a noisy machine.
//!
//! `k3rs-bench store`: the k3rs store (sled backend, embedded as the API server embeds it)
//! against etcd 3.4 (a child process on loopback, reached over gRPC as the API server reaches it).
//! `k3rs-bench api`: the k3rs API server (a `k3rs server` child over HTTPS) against etcd 3.4
//! alone, the storage a stock control plane puts under kube-apiserver.
//! `k3rs-bench scale`: a `k3rs server` child with hollow nodes and thousands of pods made by
//! Deployments, against the same pods created already placed (no controllers or scheduler).
//! `k3rs-bench pods`: a real node (`k3rs server` with its agent and containerd, in a network
//! namespace of its own) starting pods, against the same sandboxes and containers created
//! directly through CRI on its containerd; node Ready time and the node's memory (needs root).
//! Results are printed as a table and written to `docs/benchmarks.md`.
//!
//! Numbers from here are never test assertions: they describe one machine on one day.

#![forbid(unsafe_code)]

mod api;
mod client;
mod etcd;
mod machine;
mod pods;
mod report;
mod scale;
mod server;
mod stats;
mod store;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "k3rs-bench",
    about = "k3rs benchmarks against their baselines",
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The k3rs store against etcd 3.4: durable writes, lists of 10k objects, watch delivery.
    Store(store::Args),
    /// The k3rs API server against etcd 3.4 alone: creates, gets and lists at 10k objects,
    /// watch fan-out, memory.
    Api(api::Args),
    /// Hollow nodes and pods via Deployments against the same pods pre-placed: time to all
    /// Running, bind rate, pod startup, server memory and CPU.
    Scale(scale::Args),
    /// A real node's pod start-up (1, 10, 50 pods) against the CRI floor on the same
    /// containerd, node Ready from a cold start, the node's memory and CPU. Needs root.
    Pods(pods::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.bench {
        Bench::Store(args) => store::run(args),
        Bench::Api(args) => api::run(args),
        Bench::Scale(args) => scale::run(args),
        Bench::Pods(args) => pods::run(args),
    }
}
