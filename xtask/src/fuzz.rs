//! `cargo xtask fuzz`: builds the fuzz targets of `crates/apiserver/fuzz` and runs each for a bounded time.
//!
//! The targets build with cargo-fuzz on the stable toolchain: `--sanitizer none` is the one mode
//! in which cargo-fuzz passes rustc no `-Z` flag (its coverage instrumentation is `-C passes` and
//! `-C llvm-args`, both stable), and `--dev` selects the fuzz workspace's own `dev` profile,
//! tuned for a short build (see its `Cargo.toml`). They build into `<target dir>/fuzz`, apart
//! from the workspace's builds, whose flags differ.
//!
//! Each target starts from its committed seed inputs (`corpus/<target>/`, never written to) and
//! adds what it discovers to a scratch corpus under the target dir, kept between runs. A crash,
//! a failed assertion, a timeout or an out-of-memory input makes libFuzzer write the input to
//! `crates/apiserver/fuzz/artifacts/<target>/` (git-ignored); the run then fails with that path
//! and the command that reproduces it. Every target runs even when an earlier one failed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, describe, target_dir, workspace_root};

/// The fuzz workspace, relative to the root.
const FUZZ_DIR: &str = "crates/apiserver/fuzz";

/// Seconds per target when not told otherwise: the CI tier runs the four targets in well under
/// two minutes beside a build of a little over two.
pub(crate) const DEFAULT_SECONDS: u64 = 20;

/// A single input that takes longer than this (seconds) is a finding, not just a slow input:
/// every input is at most a few kilobytes.
const INPUT_TIMEOUT_SECONDS: u64 = 10;

/// cargo-fuzz's options for building and running: no sanitizer (stable rustc), the `dev` profile.
const BUILD_OPTIONS: [&str; 3] = ["--sanitizer", "none", "--dev"];

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run only this target (default: every target in crates/apiserver/fuzz).
    #[arg(long)]
    target: Option<String>,
    /// How long to fuzz each target, in seconds.
    #[arg(long, default_value_t = DEFAULT_SECONDS)]
    seconds: u64,
}

pub(crate) fn run(args: Args) -> Result<()> {
    fuzz(args.target.as_deref(), args.seconds)
}

/// Whether `cargo fuzz` is installed (by `cargo xtask deps`).
pub(crate) fn cargo_fuzz_installed() -> bool {
    crate::deps::cargo_fuzz_version().is_some()
}

/// Builds the targets (all, or `only`) and fuzzes each for `seconds`.
pub(crate) fn fuzz(only: Option<&str>, seconds: u64) -> Result<()> {
    if !cargo_fuzz_installed() {
        bail!("fuzz: cargo-fuzz is not installed (run `cargo xtask deps`)");
    }
    let fuzz_dir = workspace_root().join(FUZZ_DIR);
    let build_dir = target_dir()?.join("fuzz");
    let all = targets(&fuzz_dir)?;
    let targets: Vec<&str> = match only {
        None => all.iter().map(String::as_str).collect(),
        Some(name) if all.iter().any(|t| t == name) => vec![name],
        Some(name) => bail!(
            "fuzz: no target {name:?}; the targets are {}",
            all.join(", ")
        ),
    };

    let start = Instant::now();
    let mut build = cargo_fuzz("build", &fuzz_dir, &build_dir);
    if let Some(name) = only {
        build.arg(name);
    }
    crate::util::run_cmd(&mut build)?;
    eprintln!("fuzz: built in {:.0} s", start.elapsed().as_secs_f64());

    let mut failures = Vec::new();
    for target in &targets {
        if let Err(err) = fuzz_one(target, seconds, &fuzz_dir, &build_dir) {
            eprintln!("fuzz: {err:#}");
            failures.push(format!("{err:#}"));
        }
    }
    eprintln!(
        "fuzz: {} target(s), {seconds} s each, {:.0} s in all",
        targets.len(),
        start.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{}", failures.join("; "))
    }
}

/// Runs one target for `seconds`; fails with the reproducer's path when libFuzzer found one.
fn fuzz_one(target: &str, seconds: u64, fuzz_dir: &Path, build_dir: &Path) -> Result<()> {
    let seeds = fuzz_dir.join("corpus").join(target);
    let discovered = build_dir.join("corpus").join(target);
    fs::create_dir_all(&discovered)
        .with_context(|| format!("creating {}", discovered.display()))?;
    let artifacts = fuzz_dir.join("artifacts").join(target);
    let before = files_in(&artifacts);

    eprintln!("\n=== fuzz: {target} for {seconds} s");
    let mut cmd = cargo_fuzz("run", fuzz_dir, build_dir);
    // libFuzzer writes new inputs to the first corpus directory only.
    cmd.arg(target)
        .arg(&discovered)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1");
    eprintln!("+ {}", describe(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(&cmd)))?;
    if status.success() {
        return Ok(());
    }
    let found: Vec<PathBuf> = files_in(&artifacts).difference(&before).cloned().collect();
    if found.is_empty() {
        bail!("{target}: cargo fuzz run failed ({status}) without leaving a reproducer");
    }
    let root = workspace_root();
    let shown: Vec<String> = found
        .iter()
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    bail!(
        "{target}: found {} (reproduce: cargo fuzz run --fuzz-dir {FUZZ_DIR} {} {target} {})",
        shown.join(", "),
        BUILD_OPTIONS.join(" "),
        shown[0]
    )
}

/// `cargo fuzz <subcommand>` on the fuzz workspace, building into `build_dir`.
fn cargo_fuzz(subcommand: &str, fuzz_dir: &Path, build_dir: &Path) -> Command {
    let mut cmd = cargo();
    cmd.args(["fuzz", subcommand, "--fuzz-dir"])
        .arg(fuzz_dir)
        .args(BUILD_OPTIONS)
        .arg("--target-dir")
        .arg(build_dir);
    cmd
}

/// The fuzz targets, as `cargo fuzz list` names them.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let mut cmd = cargo();
    cmd.args(["fuzz", "list", "--fuzz-dir"]).arg(fuzz_dir);
    let output = cmd
        .output()
        .with_context(|| format!("running {}", describe(&cmd)))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            describe(&cmd),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The files directly in `dir` (none when it does not exist).
fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.is_file())
                .collect()
        })
        .unwrap_or_default()
}
