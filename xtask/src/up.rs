//! `cargo xtask up`: install what is missing, build the release binary, run `k3rs server`.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util::{cargo, run_cmd, target_dir};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Skip `cargo xtask deps` (for machines where packages are managed some other way).
    #[arg(long)]
    no_deps: bool,
    /// Arguments passed through to `k3rs server`, after `--` (e.g. `-- --data-dir /tmp/k3rs`).
    #[arg(last = true)]
    server_args: Vec<String>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    if !args.no_deps {
        crate::deps::ensure()?;
    }
    run_cmd(cargo().args(["build", "--release", "-p", "k3rs"]))?;
    let binary = target_dir()?.join("release").join("k3rs");
    let mut server = Command::new(&binary);
    server.arg("server").args(&args.server_args);
    eprintln!("+ {}", crate::util::describe(&server));
    // exec: k3rs gets the terminal and signals directly, as it would under systemd.
    let err = server.exec();
    Err(err).with_context(|| format!("executing {}", binary.display()))
}
