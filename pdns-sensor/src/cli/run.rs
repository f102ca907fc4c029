//! `pdns-sensor run`: live capture on network interfaces.

use anyhow::Result;
use clap::Args;

use super::DbArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(_args: &RunArgs) -> Result<()> {
    anyhow::bail!("live capture is being implemented")
}
