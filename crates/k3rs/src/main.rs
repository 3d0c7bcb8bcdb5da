//! The `k3rs` binary: parses the command line and config file, sets up logging, runs a role.

#![deny(unsafe_code)]

mod agent;
mod check_config;
mod cli;
mod config_file;
mod host;
mod images;
mod node_facts;
mod server;
mod settings;
#[allow(unsafe_code)]
mod sys;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::cli::{Cli, Command, ImagesCommand};
use crate::config_file::ConfigError;

/// Exit code for a bad command line or config file (clap uses it for unknown flags too).
const EXIT_USAGE: u8 = 2;
/// Exit code for a failure while running.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    // Before any thread exists (see `sys`).
    let malloc = sys::tune_malloc();
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        // Prints help/version (exit 0) or the usage error (exit 2).
        Err(err) => err.exit(),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    init_logging();
    tracing::debug!(?malloc, "malloc tuning");

    match cli.command {
        Command::Server(args) => {
            let Some(("server", server_matches)) = matches.subcommand() else {
                return report(&anyhow::anyhow!(
                    "internal error: no server subcommand matches"
                ));
            };
            let settings = match settings::resolve(*args, server_matches) {
                Ok(settings) => settings,
                Err(err) => return report_config(&err),
            };
            tracing::debug!(?settings, "settings");
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(MAX_BLOCKING_THREADS)
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    return report(&anyhow::Error::new(err).context("starting the async runtime"))
                }
            };
            match runtime.block_on(server::run(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => report(&err),
            }
        }
        Command::CheckConfig => {
            if check_config::run() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Command::Images(ImagesCommand::Import(args)) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    return report(&anyhow::Error::new(err).context("starting the async runtime"))
                }
            };
            match runtime.block_on(images::import(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => report(&err),
            }
        }
    }
}

/// Threads for blocking work (store reads such as a watch's catch-up, file I/O). Tokio's default
/// of 512 lets a burst of watches (an informer restart, a rollout of many pods) start hundreds of
/// threads, each with its stack and malloc arena: on a 2–4 GB node that memory matters more than
/// the parallelism, which two cores cannot use anyway.
const MAX_BLOCKING_THREADS: usize = 16;

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: journald and log files get plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // kube-rs opens a debug-level `HTTP{http.method http.url otel.name}` span around every
    // request of the in-process clients (controllers, scheduler) and logs a failed one at ERROR
    // inside it. Those spans are kept whatever the level, so such a line names the request that
    // failed instead of only "client error (SendRequest)"; kube's own debug events stay off.
    let kube_request_spans = tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.is_span() && metadata.target() == KUBE_CLIENT_TRACE_TARGET
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter(filter.or(kube_request_spans)),
        )
        .init();
}

/// The target of kube-rs's per-request span (`kube_client::client::builder`'s `TraceLayer`).
const KUBE_CLIENT_TRACE_TARGET: &str = "kube_client::client::builder";

fn report_config(err: &ConfigError) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(EXIT_USAGE)
}

/// Prints an error and its causes on one line. A cause whose text its parent already ends with
/// (some errors repeat their source in their message) is printed once.
fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(err));
    ExitCode::from(EXIT_FAILURE)
}

fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|last| last.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_joined_without_repeats() {
        let io = std::io::Error::other("disk on fire");
        let err = anyhow::Error::new(io)
            .context("store I/O error at /x: disk on fire")
            .context("opening the store");
        assert_eq!(
            one_line(&err),
            "opening the store: store I/O error at /x: disk on fire"
        );
    }
}
