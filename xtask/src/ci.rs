//! `cargo xtask ci`: everything CI checks, in order, with a summary of the tiers run and skipped.
//!
//! Tiers (see STYLE.md, "Test tiers"): lints (fmt, clippy), the `k3rs` debug build, unit and
//! integration tests of every workspace crate, black-box tests (the workspace package in the
//! top-level `tests/` directory, which starts the real binary through `K3RS_BIN`), and the fuzz
//! targets of `crates/apiserver/fuzz` for a few seconds each (`cargo xtask fuzz`). A tier that this
//! machine cannot run is skipped with the reason, never silently. Later tiers still run after a
//! failed one when they do not depend on it, so one CI run reports every problem; the exit status
//! is non-zero if anything failed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{cargo, cargo_metadata, run_cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Kill-and-reopen iterations of the store's crash test (exported as K3RS_CRASH_ITERATIONS).
    #[arg(long, env = "K3RS_CRASH_ITERATIONS", default_value_t = 120)]
    crash_iterations: u32,
    /// Do not run `cargo xtask deps` first (packages are managed some other way).
    #[arg(long)]
    no_deps: bool,
    /// Seconds of fuzzing per fuzz target (0 skips the fuzz tier).
    #[arg(long, env = "K3RS_FUZZ_SECONDS", default_value_t = crate::fuzz::DEFAULT_SECONDS)]
    fuzz_seconds: u64,
}

/// How one tier ended.
#[derive(Debug)]
enum Outcome {
    Passed(Duration),
    Failed(Duration, String),
    Skipped(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Passed(took) => write!(f, "passed   {:>7.1} s", took.as_secs_f64()),
            Outcome::Failed(took, why) => {
                write!(f, "FAILED   {:>7.1} s  {why}", took.as_secs_f64())
            }
            Outcome::Skipped(why) => write!(f, "skipped             {why}"),
        }
    }
}

/// The tiers run so far, for the closing summary.
#[derive(Debug, Default)]
struct Report {
    tiers: Vec<(&'static str, Outcome)>,
}

impl Report {
    /// Runs `step` as tier `name`; returns whether it passed.
    fn run(&mut self, name: &'static str, step: impl FnOnce() -> Result<()>) -> bool {
        eprintln!("\n=== ci: {name}");
        let start = Instant::now();
        let outcome = match step() {
            Ok(()) => Outcome::Passed(start.elapsed()),
            Err(err) => Outcome::Failed(start.elapsed(), short_error(&err)),
        };
        let passed = matches!(outcome, Outcome::Passed(_));
        self.tiers.push((name, outcome));
        passed
    }

    fn skip(&mut self, name: &'static str, why: impl Into<String>) {
        self.tiers.push((name, Outcome::Skipped(why.into())));
    }

    fn failures(&self) -> usize {
        self.tiers
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Failed(..)))
            .count()
    }

    fn print(&self, total: Duration) {
        eprintln!("\n=== ci summary ({:.0} s)", total.as_secs_f64());
        for (name, outcome) in &self.tiers {
            eprintln!("  {name:<24} {outcome}");
        }
    }
}

pub(crate) fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let root = workspace_root();
    let mut report = Report::default();

    if args.no_deps {
        report.skip("deps", "--no-deps");
    } else {
        report.run("deps", crate::deps::ensure);
    }
    report.run("fmt", || {
        run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))?;
        // The fuzz targets are a workspace of their own, which `--all` does not reach.
        run_cmd(cargo().args([
            "fmt",
            "--manifest-path",
            "crates/apiserver/fuzz/Cargo.toml",
            "--",
            "--check",
        ]))
    });
    report.run("clippy", || {
        run_cmd(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    });

    let metadata = cargo_metadata()?;
    let target_dir = metadata
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .context("cargo metadata output has no target_directory")?;
    let k3rs_bin = target_dir.join("debug").join("k3rs");
    let black_box = black_box_package(&metadata, &root);

    let built = report.run("build k3rs", || {
        run_cmd(cargo().args(["build", "-p", "k3rs", "--bin", "k3rs"]))
    });

    // The node tests run pods from these (air-gap archives; no registry is reachable here).
    report.run("images", || {
        crate::images::run(crate::images::Args::named(&["busybox", "nginx"]))
    });
    let images_dir = root.join("target").join("images");
    let test_env = |cmd: &mut Command| {
        cmd.env("K3RS_BIN", &k3rs_bin)
            .env("K3RS_TEST_IMAGES", &images_dir)
            .env("K3RS_CRASH_ITERATIONS", args.crash_iterations.to_string());
    };
    report.run("unit + integration", || {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace"]);
        if let Some(package) = &black_box {
            cmd.args(["--exclude", package]);
        }
        test_env(&mut cmd);
        run_cmd(&mut cmd)
    });

    const BLACK_BOX: &str = "black-box (tests/)";
    match &black_box {
        None => report.skip(BLACK_BOX, "no workspace package in tests/ yet"),
        Some(_) if !built => report.skip(BLACK_BOX, "the k3rs build failed"),
        Some(package) => {
            report.run(BLACK_BOX, || {
                let mut cmd = cargo();
                cmd.args(["test", "-p", package]);
                test_env(&mut cmd);
                run_cmd(&mut cmd)
            });
        }
    }

    // Last: it needs nothing the other tiers build, and its findings are the least urgent.
    const FUZZ: &str = "fuzz (crates/apiserver)";
    if args.fuzz_seconds == 0 {
        report.skip(FUZZ, "--fuzz-seconds 0");
    } else if !crate::fuzz::cargo_fuzz_installed() {
        report.skip(
            FUZZ,
            "cargo-fuzz is not installed (`cargo xtask deps` installs it)",
        );
    } else {
        report.run(FUZZ, || crate::fuzz::fuzz(None, args.fuzz_seconds));
    }

    report.print(start.elapsed());
    eprintln!(
        "  (the store's crash test ran with K3RS_CRASH_ITERATIONS={} SIGKILLs; fuzzing {} s per target)",
        args.crash_iterations, args.fuzz_seconds
    );
    match report.failures() {
        0 => Ok(()),
        n => bail!("ci: {n} tier(s) failed"),
    }
}

/// An error for the one-line summary: `$CARGO` is a long toolchain path, say `cargo`.
fn short_error(err: &anyhow::Error) -> String {
    let message = format!("{err:#}");
    match std::env::var("CARGO") {
        Ok(cargo_path) if !cargo_path.is_empty() => message.replace(&cargo_path, "cargo"),
        _ => message,
    }
}

/// The name of the workspace package whose manifest is `tests/Cargo.toml`, if there is one.
fn black_box_package(metadata: &serde_json::Value, root: &Path) -> Option<String> {
    let manifest = root.join("tests").join("Cargo.toml");
    metadata
        .get("packages")?
        .as_array()?
        .iter()
        .find(|package| {
            package
                .get("manifest_path")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|path| Path::new(path) == manifest)
        })?
        .get("name")?
        .as_str()
        .map(str::to_owned)
}
