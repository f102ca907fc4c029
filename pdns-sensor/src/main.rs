//! The `pdns-sensor` binary: parse the command line, run the command.
//! Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use pdns_sensor::cli::{Cli, Command, dump, import_zeek, ingest, run, serve};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Ingest(args) => ingest::run(args).map(|_| ()),
        Command::Dump(args) => dump::run(args).map(|_| ()),
        Command::ImportZeek(args) => import_zeek::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pdns-sensor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
