//! `cargo xtask bench`.

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> Result<()> {
    anyhow::bail!("xtask bench: not written yet")
}
