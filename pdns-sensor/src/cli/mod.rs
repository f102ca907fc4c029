//! The command line: argument definitions and one module per subcommand.
//! `main.rs` only parses and dispatches, so every command can also be
//! driven from tests. Every option can also come from its `PDNS_*`
//! variable or the configuration file ([`config`]).

pub mod backup;
pub mod clickhouse_schema;
pub mod completions;
pub mod config;
pub mod dnstap;
pub mod dump;
pub mod export;
pub mod import_bro_pdns;
pub mod import_zeek;
pub mod ingest;
pub mod manpages;
pub mod progress;
pub mod run;
pub mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Passive DNS sensor: records every DNS answer seen on the wire.
#[derive(Debug, Parser)]
#[command(name = "pdns-sensor", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML, one table per command; see `config
    /// check`). Default: /etc/pdns-sensor/pdns-sensor.toml if it exists;
    /// /dev/null for none.
    #[arg(long, global = true, env = config::CONFIG_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The command line as the binary parses it: [`Cli`] with a `PDNS_*`
/// variable for every option (for man pages and completions too).
pub fn command() -> clap::Command {
    config::environment(<Cli as clap::CommandFactory>::command())
}

// Parsed once at start-up: a variant's size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture DNS live on network interfaces (eBPF filter, AF_PACKET rings)
    /// and/or receive it from DNS servers over dnstap.
    Run(run::RunArgs),
    /// Read pcap/pcapng and dnstap (Frame Streams) files into the database.
    Ingest(ingest::IngestArgs),
    /// Print stored records (works while another process writes).
    Dump(dump::DumpArgs),
    /// Serve the HTTP API (DNSDB, CIRCL, bro-pdns, /metrics) over a database.
    Serve(serve::ServeArgs),
    /// Import Zeek dns.log files (TSV or JSON, plain or gzip), or follow a
    /// live one.
    ImportZeek(import_zeek::ImportZeekArgs),
    /// Import a bro-pdns database (SQLite file or PostgreSQL URL, either
    /// generation); importing it again adds only what grew.
    ImportBroPdns(import_bro_pdns::ImportBroPdnsArgs),
    /// Check the configuration file; show what each command would run with.
    Config(config::ConfigArgs),
    /// Print the shell completion script (bash, zsh or fish) to stdout.
    Completions(completions::CompletionsArgs),
    /// Write the manual pages (packaging).
    #[command(hide = true)]
    Manpages(manpages::ManpagesArgs),
    /// Copy the database, consistently, while another process may write it.
    Backup(backup::BackupArgs),
    /// Send what the database's export spool holds to ClickHouse, and exit.
    Export(export::ExportCommandArgs),
    /// Print the ClickHouse schema (tables and views), or create it on a
    /// server with --apply.
    ClickhouseSchema(clickhouse_schema::ClickHouseSchemaArgs),
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
    /// Pre-aggregation bound: distinct keys held in memory, by all
    /// decoder threads (rings, dnstap workers) together, in equal shares.
    #[arg(long, default_value_t = crate::pipeline::DEFAULT_MAX_ENTRIES)]
    pub aggregate_entries: usize,
    /// Seconds between flushes of pre-aggregated observations: the most a
    /// crash can lose.
    #[arg(long, default_value_t = 5)]
    pub flush_interval: u64,
    /// UDP port of VXLAN tunnels looked into (mirrored traffic, e.g. AWS
    /// VPC Traffic Mirroring); repeat for several (default 4789).
    #[arg(long = "vxlan-port", value_name = "PORT")]
    pub vxlan_ports: Vec<u16>,
    /// UDP port of Geneve tunnels looked into; repeat for several (default
    /// 6081).
    #[arg(long = "geneve-port", value_name = "PORT")]
    pub geneve_ports: Vec<u16>,
    /// Do not look into tunnels (VXLAN, Geneve, GRE, ERSPAN): tunnelled
    /// packets are counted and skipped.
    #[arg(long)]
    pub no_tunnels: bool,
}

impl Default for PipelineArgs {
    fn default() -> Self {
        PipelineArgs {
            ports: Vec::new(),
            sections: Default::default(),
            aggregate_entries: crate::pipeline::DEFAULT_MAX_ENTRIES,
            flush_interval: 5,
            vxlan_ports: Vec::new(),
            geneve_ports: Vec::new(),
            no_tunnels: false,
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

    /// The VXLAN ports asked for, or the default (none with
    /// `--no-tunnels`).
    pub fn vxlan_ports(&self) -> Vec<u16> {
        self.tunnel_ports(&self.vxlan_ports, crate::decode::DEFAULT_VXLAN_PORT)
    }

    /// The Geneve ports asked for, or the default (none with
    /// `--no-tunnels`).
    pub fn geneve_ports(&self) -> Vec<u16> {
        self.tunnel_ports(&self.geneve_ports, crate::decode::DEFAULT_GENEVE_PORT)
    }

    fn tunnel_ports(&self, asked: &[u16], default: u16) -> Vec<u16> {
        if self.no_tunnels {
            return Vec::new();
        }
        let mut ports = if asked.is_empty() {
            vec![default]
        } else {
            asked.to_vec()
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
                vxlan_ports: self.vxlan_ports(),
                geneve_ports: self.geneve_ports(),
                tunnels: !self.no_tunnels,
                ..Default::default()
            },
            sections: self.sections,
            max_entries: self.aggregate_entries,
            flush_interval: std::time::Duration::from_secs(self.flush_interval.max(1)),
            ..Default::default()
        }
    }
}

/// Writes a report as pretty JSON (`--stats-json`).
pub fn write_json(path: &std::path::Path, report: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    let text = serde_json::to_string_pretty(report)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `--retention`, for the commands that write (`run`, `ingest`,
/// `import-zeek`, `import-bro-pdns`).
#[derive(Debug, Args, Clone, Default)]
pub struct RetentionArgs {
    /// Drop records, negative answers and index entries last seen more than
    /// DAYS days ago (by capture time), now and from then on; `off` keeps
    /// everything. Recorded in the database: without the option, the
    /// recorded setting stays in force.
    #[arg(long, value_name = "DAYS|off", allow_hyphen_values = true, value_parser = parse_retention)]
    pub retention: Option<crate::store::retention::Retention>,
}

fn parse_retention(text: &str) -> Result<crate::store::retention::Retention, String> {
    text.parse()
}

impl RetentionArgs {
    /// How a writing command opens its database.
    pub fn store_options(&self) -> anyhow::Result<crate::store::StoreOptions> {
        Ok(crate::store::StoreOptions {
            retention: self.retention,
            clock: clock()?,
            nod: Default::default(),
            split_compactions: false,
        })
    }
}

/// Newly observed domains, for the commands that write (`run`, `ingest`,
/// `import-zeek`, `import-bro-pdns`).
#[derive(Debug, Args, Clone)]
pub struct NodArgs {
    /// Do not record newly observed domains (the first sighting of each
    /// registrable domain, served at /nod and by `dump --new-since`).
    #[arg(long)]
    pub no_nod: bool,
    /// Also record the registrable domains of names inside rdata (CNAME,
    /// DNAME, NS and PTR targets, MX and KX exchanges, SRV and SVCB/HTTPS
    /// targets), not only of owner names.
    #[arg(long)]
    pub nod_rdata: bool,
    /// Warm-up of a fresh database, in observation time from its first
    /// sighting: domains first seen during it are recorded with `warmup:
    /// true` (everything looks new to an empty database). Seconds, or a
    /// number with s, m, h or d; 0 for none.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub nod_warmup: u64,
}

impl Default for NodArgs {
    fn default() -> Self {
        NodArgs {
            no_nod: false,
            nod_rdata: false,
            nod_warmup: crate::store::nod::DEFAULT_WARMUP_SECS,
        }
    }
}

impl NodArgs {
    /// `options` with these settings.
    pub fn apply(&self, options: crate::store::StoreOptions) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            nod: crate::store::nod::NodConfig {
                enabled: !self.no_nod,
                rdata: self.nod_rdata,
                warmup_secs: self.nod_warmup,
            },
            ..options
        }
    }
}

/// Seconds, or a number with `s`, `m`, `h` or `d` (`24h`, `90m`, `2d`).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration (seconds, or a number with s, m, h or d: 24h)"
            ));
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("{text:?} is not a duration (seconds, or a number with s, m, h or d: 24h)")
    })?;
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long a duration"))
}

/// The clock retention is judged by: the wall clock, unless a test fixes
/// it (`PDNS_SENSOR_TEST_NOW`).
pub fn clock() -> anyhow::Result<crate::store::retention::Clock> {
    crate::store::retention::Clock::from_env().map_err(anyhow::Error::msg)
}

/// The database location, shared by every command.
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// Database directory (RocksDB).
    #[arg(long, env = "PDNS_DB", default_value = "./pdns-data")]
    pub db: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    /// Every command's options have distinct ids and long names. clap
    /// checks this only in debug builds (where a clash panics at start);
    /// release builds, the tests' included, take a clash silently, and
    /// `run` once had two `--sensor-id`s (the export's and the API's).
    #[test]
    fn no_command_has_two_options_of_one_name() {
        use clap::CommandFactory;
        let mut cli = super::Cli::command();
        cli.build();
        let mut commands = vec![&cli];
        let mut checked = 0;
        while let Some(command) = commands.pop() {
            let mut ids = std::collections::BTreeSet::new();
            let mut longs = std::collections::BTreeSet::new();
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                assert!(
                    ids.insert(id),
                    "`{}`: option id {id} twice",
                    command.get_name()
                );
                if let Some(long) = arg.get_long() {
                    assert!(
                        longs.insert(long),
                        "`{}`: --{long} twice",
                        command.get_name()
                    );
                }
            }
            checked += 1;
            commands.extend(command.get_subcommands());
        }
        assert!(checked > 10, "{checked} commands");
    }

    #[test]
    fn durations_are_seconds_or_have_a_unit() {
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("90m"), Ok(5_400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("3600"), Ok(3_600));
        assert_eq!(parse_duration("45s"), Ok(45));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in [
            "",
            "h",
            "1w",
            "-1h",
            "1.5h",
            "99999999999999999999d",
            "24 h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
