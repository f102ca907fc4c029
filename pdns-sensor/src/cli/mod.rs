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

/// Decoding and pre-aggregation options shared by `ingest` and `run`.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// UDP/TCP port carrying DNS; repeat for several (default 53).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Sections recorded: any of answer,authority,additional.
    #[arg(long, default_value = "answer")]
    pub sections: crate::extract::Sections,
    /// Pre-aggregation bound per thread (distinct keys held in memory).
    #[arg(long, default_value_t = 100_000)]
    pub aggregate_entries: usize,
    /// Seconds between flushes of pre-aggregated observations: the most a
    /// crash can lose.
    #[arg(long, default_value_t = 5)]
    pub flush_interval: u64,
}

impl Default for PipelineArgs {
    fn default() -> Self {
        PipelineArgs {
            ports: Vec::new(),
            sections: Default::default(),
            aggregate_entries: 100_000,
            flush_interval: 5,
        }
    }
}

impl PipelineArgs {
    /// The DNS ports asked for (sorted, without repeats), or the default.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports = if self.ports.is_empty() {
            vec![pdns_common::DEFAULT_DNS_PORT]
        } else {
            self.ports.clone()
        };
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// The pipeline these options describe, with `threads` decoder threads.
    pub fn config(&self, threads: usize) -> crate::pipeline::PipelineConfig {
        crate::pipeline::PipelineConfig {
            threads,
            decode: crate::decode::DecodeConfig {
                ports: self.ports(),
                ..Default::default()
            },
            sections: self.sections,
            max_entries: self.aggregate_entries,
            flush_interval: std::time::Duration::from_secs(self.flush_interval.max(1)),
            ..Default::default()
        }
    }
}

/// The database location, shared by every command.
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// Database directory (RocksDB).
    #[arg(long, env = "PDNS_DB", default_value = "./pdns-data")]
    pub db: PathBuf,
}
