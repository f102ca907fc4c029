//! `pdns-sensor import-zeek FILE...`: Zeek dns.log files into the store.

use anyhow::Result;
use clap::Args;

use super::DbArgs;

#[derive(Debug, Args)]
pub struct ImportZeekArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// dns.log files or directories (TSV or JSON, plain or gzip).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<std::path::PathBuf>,
}

pub fn run(_args: &ImportZeekArgs) -> Result<()> {
    anyhow::bail!("import-zeek is being implemented")
}
