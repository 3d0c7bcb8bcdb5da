//! `cargo xtask images`.

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> Result<()> {
    anyhow::bail!("xtask images: not written yet")
}
