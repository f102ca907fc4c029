//! `pdns-sensor backup --db DIR DEST`: a consistent copy of the database,
//! taken by the process writing it if one runs (see
//! [`crate::store::backup`] for how and why).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::DbArgs;
use crate::store::backup::{self, BackupReport};

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// No summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Directory to create with the copy (must not exist).
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
}

pub fn run(args: &BackupArgs) -> Result<BackupReport> {
    let report = backup::backup(&args.db.db, &args.dest)?;
    if !args.quiet {
        eprintln!(
            "backed up {} to {}: {} files, {:.1} MiB in {:.2}s, consistent as of the request ({}); \
             restore by stopping the writer and putting {} in place of {}",
            args.db.db.display(),
            args.dest.display(),
            report.files,
            report.bytes as f64 / (1 << 20) as f64,
            report.elapsed_secs,
            if report.from_running_writer {
                "checkpoint by the running writer"
            } else {
                "no writer was running"
            },
            args.dest.display(),
            args.db.db.display(),
        );
    }
    Ok(report)
}
