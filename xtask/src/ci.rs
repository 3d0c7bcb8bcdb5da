//! `cargo xtask ci`.

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> Result<()> {
    anyhow::bail!("xtask ci: not written yet")
}
