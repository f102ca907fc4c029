//! The command line: argument definitions and one module per subcommand.
//! `main.rs` only parses and dispatches, so every command can also be
//! driven from tests.

pub mod dump;
pub mod import_zeek;
pub mod ingest;
pub mod run;
pub mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Passive DNS sensor: records every DNS answer seen on the wire.
#[derive(Debug, Parser)]
#[command(name = "pdns-sensor", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture DNS live on network interfaces (eBPF filter, AF_PACKET rings).
    Run(run::RunArgs),
    /// Read pcap/pcapng files into the database.
    Ingest(ingest::IngestArgs),
    /// Print stored records (works while another process writes).
    Dump(dump::DumpArgs),
    /// Serve the HTTP API (DNSDB, CIRCL, bro-pdns, /metrics) over a database.
    Serve(serve::ServeArgs),
    /// Import Zeek dns.log files (TSV or JSON, plain or gzip), or follow a
    /// live one.
    ImportZeek(import_zeek::ImportZeekArgs),
}

/// The database location, shared by every command.
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// Database directory (RocksDB).
    #[arg(long, env = "PDNS_DB", default_value = "./pdns-data")]
    pub db: PathBuf,
}
