//! Command-line surface of the `bench` binary.
//!
//! Kept in the library so the flag set (and its defaults) is one type that
//! both `main` and tests can construct.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use pdns_sensor::capture::filter::FilterChoice;

use crate::r#gen::Config;

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Workload generator and benchmark harness for pdns-sensor"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a deterministic pcap of recursive-resolver DNS traffic.
    Gen(GenArgs),
    /// Run benchmark scenarios against a sensor binary and record results.
    Run(RunArgs),
    /// Bare ring reader (the live scenario's baseline): the sensor's rings
    /// and filter, frames counted, nothing decoded; until SIGINT/SIGTERM.
    #[command(hide = true)]
    RingRead(RingReadArgs),
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Output pcap file.
    #[arg(long)]
    pub out: PathBuf,
    /// Exact number of packets to write.
    #[arg(long)]
    pub packets: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Distinct query names (popularity is Zipf over these).
    #[arg(long, default_value_t = 10_000)]
    pub names: u64,
    /// Zipf exponent of name popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Share of responses that are NXDOMAIN.
    #[arg(long, default_value_t = 0.05)]
    pub nxdomain: f64,
    /// Share of exchanges carried over TCP.
    #[arg(long, default_value_t = 0.0)]
    pub tcp_share: f64,
    /// Share of clients that use IPv6.
    #[arg(long, default_value_t = 0.2)]
    pub ipv6_share: f64,
    /// Distinct client address/port pairs.
    #[arg(long, default_value_t = 1000)]
    pub clients: u64,
    /// Share of responses that are large (≥ 3000 bytes, IPv4-fragmented).
    #[arg(long, default_value_t = 0.01)]
    pub large_share: f64,
    /// Every query is a fresh random subdomain of a victim zone, NXDOMAIN.
    #[arg(long)]
    pub water_torture: bool,
    /// Timestamp of the first packet, seconds since the epoch.
    #[arg(long, default_value_t = 1_700_000_000)]
    pub start_time: u64,
    /// Also write parameters and ground-truth counts as JSON here.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

impl GenArgs {
    pub fn config(&self) -> Config {
        Config {
            packets: self.packets,
            seed: self.seed,
            names: self.names,
            zipf: self.zipf,
            nxdomain: self.nxdomain,
            tcp_share: self.tcp_share,
            ipv6_share: self.ipv6_share,
            clients: self.clients,
            large_share: self.large_share,
            water_torture: self.water_torture,
            start_time: self.start_time,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Path to the pdns-sensor binary under test.
    #[arg(long)]
    pub sensor: PathBuf,
    /// Small workloads only (finishes in well under a minute).
    #[arg(long)]
    pub quick: bool,
    /// Where dated results, latest.json and latest.md are written.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    pub results_dir: PathBuf,
    /// Scenarios to run (repeatable); default: all.
    #[arg(long)]
    pub scenario: Vec<String>,
    /// Also keep this run as the committed reference result:
    /// `reference.md` and `reference/*.svg` in the results directory.
    #[arg(long)]
    pub save_reference: bool,
    /// Cache of generated workloads, keyed by parameters.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-cache"))]
    pub cache_dir: PathBuf,
    /// Seconds of traffic in the soak scenario (default 600; 20 with
    /// --quick, where the soak runs only when named with --scenario).
    #[arg(long, env = "PDNS_BENCH_SOAK_SECONDS")]
    pub soak_seconds: Option<u64>,
    /// Packets per second the soak scenario sends (two per DNS exchange).
    #[arg(long, env = "PDNS_BENCH_SOAK_PPS", default_value_t = crate::scenario::soak::DEFAULT_PPS)]
    pub soak_pps: u64,
}

#[derive(Debug, Args)]
pub struct RingReadArgs {
    /// Interface to capture on.
    #[arg(long)]
    pub interface: String,
    /// Rings (and reader threads) in the fanout group; 0 = one per core.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Where `{frames, drops, ...}` is written when stopped.
    #[arg(long)]
    pub stats_json: PathBuf,
    /// DNS port the filter keeps, repeatable.
    #[arg(long, default_values_t = [53])]
    pub port: Vec<u16>,
    /// Kernel filter, as `pdns-sensor run --filter`.
    #[arg(long, value_enum, default_value_t = FilterChoice::Auto)]
    pub filter: FilterChoice,
}
