//! `pdns-sensor run`: live capture on network interfaces.
//!
//! Setup happens as root, in this order: open the database, load the
//! kernel filter, open and map one ring per decoder thread on every
//! interface and join them into a fanout group, attach the filter, and
//! only then drop privileges to `--user`. Ring threads are plain OS
//! threads (see [`crate::capture`]); this thread runs a small tokio
//! runtime for the control plane: SIGINT/SIGTERM, the once-a-second eBPF
//! counter publication and the periodic status line.
//!
//! On SIGINT or SIGTERM every ring stops taking packets, drains what the
//! kernel already holds, and its worker flushes every pre-aggregated
//! observation; then the database is flushed and closed. Nothing that
//! reached a ring before the signal is lost.
//!
//! Crash window (SIGKILL, power loss): observations wait in a ring
//! thread's memory at most `--flush-interval` seconds (default 5) or until
//! its map holds `--aggregate-entries` keys, plus at most the ring's retire
//! timeout in the ring. Everything written is in RocksDB's write-ahead
//! log, which survives a killed process; after a power loss, what the OS
//! had not yet written back of that log can be lost too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use pdns_common::FilterStats;

use super::DbArgs;
use crate::capture::filter::{Filter, FilterChoice};
use crate::capture::iface::{Interface, default_route_interface};
use crate::capture::privileges::{self, User};
use crate::capture::ring::Ring;
use crate::capture::stats::{FilterPublisher, RingCounters, RingTotals};
use crate::capture::thread::RingThread;
use crate::capture::{RingConfig, open_ring};
use crate::decode::DropReason;
use crate::metrics::METRICS;
use crate::pipeline::{Summary, Worker};
use crate::store::{CF_RECORDS, Store};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Interface to capture on; repeat for several (default: the interface
    /// of the default route).
    #[arg(long = "interface", short = 'i', value_name = "IF")]
    pub interfaces: Vec<String>,
    /// Decoder threads (one ring each) per interface; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub pipeline: super::PipelineArgs,
    /// After setup, switch to this user (and its group), keeping no
    /// capabilities. The database directory is given to that user.
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: Option<String>,
    /// Bytes per ring block (a power of two).
    #[arg(long, default_value_t = RingConfig::default().block_size)]
    pub ring_block_size: u32,
    /// Blocks per ring.
    #[arg(long, default_value_t = RingConfig::default().block_count)]
    pub ring_blocks: u32,
    /// Milliseconds after which a partly filled block is handed over.
    #[arg(long, default_value_t = RingConfig::default().retire_timeout_ms)]
    pub ring_timeout_ms: u32,
    /// Kernel filter: eBPF with classic fallback, or one of them only.
    #[arg(long, value_enum, default_value_t = FilterChoice::Auto)]
    pub filter: FilterChoice,
    /// Seconds between status lines on stderr.
    #[arg(long, default_value_t = 10)]
    pub status_interval: u64,
    /// No status lines and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Write the run's counters as JSON to this file at the end.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Do not serve the HTTP API.
    #[arg(long)]
    pub no_api: bool,
    #[command(flatten)]
    pub api: super::serve::ApiArgs,
}

/// What a capture run did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub summary: Summary,
    /// Per interface: the sum of its rings.
    pub interfaces: Vec<(String, RingTotals)>,
    /// Per ring: its interface and totals (how fanout spread the load).
    pub rings: Vec<(String, RingTotals)>,
    /// `"ebpf"` or `"classic"`.
    pub filter: &'static str,
    /// eBPF verdicts (None with the classic filter).
    pub filter_stats: Option<FilterStats>,
    pub elapsed: Duration,
}

struct RingHandle {
    interface: usize,
    counters: Arc<RingCounters>,
    handle: JoinHandle<Result<Summary>>,
}

pub fn run(args: &RunArgs) -> Result<()> {
    run_report(args).map(|_| ())
}

pub fn run_report(args: &RunArgs) -> Result<RunReport> {
    let started = Instant::now();
    let ring_config = RingConfig {
        block_size: args.ring_block_size,
        block_count: args.ring_blocks,
        retire_timeout_ms: args.ring_timeout_ms,
    };
    ring_config.validate().map_err(anyhow::Error::msg)?;
    let ports = args.pipeline.ports();
    let mut names: Vec<String> = Vec::new();
    for name in &args.interfaces {
        // The same interface twice would capture every packet twice.
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    if names.is_empty() {
        names.push(default_route_interface()?);
    }
    let interfaces = names
        .iter()
        .map(|n| Interface::resolve(n))
        .collect::<Result<Vec<_>>>()?;
    let user = args.user.as_deref().map(User::lookup).transpose()?;

    // The control plane: signals are caught from here on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let (mut sigint, mut sigterm) = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;

    let store = Arc::new(
        Store::open(&args.db.db)
            .with_context(|| format!("opening database {}", args.db.db.display()))?,
    );
    // The API socket is bound before privileges are dropped (a port below
    // 1024 needs them). A taken port is reported, not fatal: capture is the
    // job that must not stop.
    let api = if args.no_api {
        None
    } else {
        let config = args.api.config()?;
        match runtime.block_on(tokio::net::TcpListener::bind(config.listen)) {
            Ok(listener) => Some((listener, config)),
            Err(e) => {
                tracing::error!(
                    "HTTP API not started: cannot listen on {}: {e}",
                    config.listen
                );
                None
            }
        }
    };
    let filter = Filter::load(args.filter, &ports)?;
    let config = args.pipeline.config(args.threads);
    let per_interface = config.thread_count();

    // Rings: all of an interface's sockets join its fanout group behind a
    // drop-everything filter; the real filter goes on once the group is
    // complete.
    let mut rings: Vec<(usize, Ring)> = Vec::new();
    for (i, iface) in interfaces.iter().enumerate() {
        let mut group = None;
        let first = rings.len();
        for _ in 0..per_interface {
            let ring = open_ring(iface, &ring_config, &mut group)
                .with_context(|| format!("opening a capture ring on {}", iface.name))?;
            rings.push((i, ring));
        }
        for (_, ring) in &rings[first..] {
            filter.attach(ring.socket())?;
        }
    }

    // Opened now, while we may still write anywhere.
    let stats_file = args
        .stats_json
        .as_ref()
        .map(|p| std::fs::File::create(p).with_context(|| format!("creating {}", p.display())))
        .transpose()?;
    if let Some(user) = &user {
        privileges::chown_tree(&args.db.db, user)?;
        privileges::drop_to(user)?;
        // RocksDB creates files as it goes: fail now, not at the first flush.
        let probe = args.db.db.join(".pdns-write-probe");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .with_context(|| {
                format!(
                    "the database {} is not writable as {} (are its parent directories traversable?)",
                    args.db.db.display(),
                    user.name
                )
            })?;
        tracing::info!(
            "running as {} (uid {}, gid {}), no capabilities",
            user.name,
            user.uid,
            user.gid
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let iface_names: Vec<Arc<str>> = interfaces
        .iter()
        .map(|i| Arc::from(i.name.as_str()))
        .collect();
    let mut threads = Vec::new();
    for (n, (i, ring)) in rings.into_iter().enumerate() {
        let counters = Arc::new(RingCounters::default());
        let worker = RingThread {
            interface: Arc::clone(&iface_names[i]),
            ring,
            worker: Worker::new(&config, Arc::clone(&store), &format!("pdns-store-{n}"))
                .context("starting a store writer thread")?,
            counters: Arc::clone(&counters),
            stop: Arc::clone(&stop),
            retire_timeout: Duration::from_millis(ring_config.retire_timeout_ms as u64),
        };
        let handle = std::thread::Builder::new()
            .name(format!("pdns-ring-{n}"))
            .spawn(move || worker.run())
            .context("starting a ring thread")?;
        threads.push(RingHandle {
            interface: i,
            counters,
            handle,
        });
    }
    tracing::info!(
        "capturing DNS on {} ({} ring(s) each, {} filter, ports {:?}) into {}",
        names.join(", "),
        per_interface,
        filter.kind(),
        ports,
        args.db.db.display()
    );

    if let Some((listener, config)) = api {
        tracing::info!("API listening on http://{}", listener.local_addr()?);
        let state = Arc::new(crate::serve::AppState {
            store: Arc::clone(&store),
            config,
        });
        runtime.spawn(async move {
            let app = crate::serve::router(state);
            if let Err(e) = axum::serve(crate::serve::nodelay(listener), app).await {
                tracing::error!("HTTP API stopped: {e}");
            }
        });
    }

    // Control loop: until a signal or a ring thread gives up.
    let mut publisher = FilterPublisher::default();
    let mut status = Status::new(args.quiet);
    let status_every = Duration::from_secs(args.status_interval.max(1));
    let reason = runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = Instant::now();
        loop {
            tokio::select! {
                _ = sigint.recv() => break "SIGINT",
                _ = sigterm.recv() => break "SIGTERM",
                _ = tick.tick() => {
                    publish_filter(&filter, &mut publisher);
                    if threads.iter().any(|t| t.handle.is_finished()) {
                        break "a ring thread stopped";
                    }
                    if last_status.elapsed() >= status_every {
                        last_status = Instant::now();
                        status.print(&threads, &store);
                    }
                }
            }
        }
    });
    if !args.quiet {
        eprintln!("pdns-sensor: {reason}: stopping capture, flushing");
    }
    tracing::debug!("stopping: {reason}");
    stop.store(true, Ordering::Release);

    let mut report = RunReport {
        filter: filter.kind(),
        interfaces: names
            .iter()
            .map(|n| (n.clone(), RingTotals::default()))
            .collect(),
        ..RunReport::default()
    };
    let mut first_error = None;
    for t in threads {
        let result = t
            .handle
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a ring thread panicked")));
        let totals = t.counters.totals();
        report.interfaces[t.interface].1.add(&totals);
        report
            .rings
            .push((report.interfaces[t.interface].0.clone(), totals));
        match result {
            Ok(s) => {
                report.summary.decode.add(&s.decode);
                report.summary.records_written += s.records_written;
                report.summary.negatives_written += s.negatives_written;
                report.summary.flushes += s.flushes;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    store.flush().context("flushing the database")?;
    report.filter_stats = publish_filter(&filter, &mut publisher);
    report.elapsed = started.elapsed();
    if let (Some(file), Some(path)) = (stats_file, &args.stats_json) {
        write_stats(file, &report, &store)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.quiet {
        eprint!("{}", render_report(&report));
    }
    drop(store);
    if let Some(e) = first_error {
        return Err(e.context("capture failed"));
    }
    Ok(report)
}

fn publish_filter(filter: &Filter, publisher: &mut FilterPublisher) -> Option<FilterStats> {
    match filter.stats()? {
        Ok(s) => {
            publisher.publish(s);
            Some(s)
        }
        Err(e) => {
            tracing::debug!("{e:#}");
            None
        }
    }
}

/// The periodic status line. Packets come from the kernel ring counters
/// (read every second); DNS responses from the pipeline metrics, which the
/// workers publish when they flush, so that rate moves in steps of the
/// flush interval.
struct Status {
    quiet: bool,
    at: Instant,
    packets: u64,
    responses: u64,
}

fn dns_responses() -> u64 {
    ["udp", "tcp"]
        .iter()
        .map(|t| {
            METRICS
                .dns_messages
                .with_label_values(&["response", t])
                .get()
        })
        .sum()
}

impl Status {
    fn new(quiet: bool) -> Status {
        Status {
            quiet,
            at: Instant::now(),
            packets: 0,
            responses: dns_responses(),
        }
    }

    fn print(&mut self, threads: &[RingHandle], store: &Store) {
        if self.quiet {
            return;
        }
        let mut total = RingTotals::default();
        for t in threads {
            total.add(&t.counters.totals());
        }
        let responses = dns_responses();
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let records = store.estimate_keys(CF_RECORDS).unwrap_or(0);
        let db = dir_bytes(store.path());
        eprintln!(
            "pdns-sensor: {:.0} pkt/s, {:.0} DNS responses/s, {} drops, {} records, db {:.1} MiB",
            total.packets.saturating_sub(self.packets) as f64 / secs,
            responses.saturating_sub(self.responses) as f64 / secs,
            total.drops,
            records,
            db as f64 / (1 << 20) as f64,
        );
        self.at = Instant::now();
        self.packets = total.packets;
        self.responses = responses;
    }
}

/// Bytes of the files in the database directory (SST files, write-ahead
/// log, manifest): what the database occupies right now, before
/// memtables are flushed into SST files too.
fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn write_stats(mut file: std::fs::File, report: &RunReport, store: &Store) -> Result<()> {
    let d = &report.summary.decode;
    let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), d.dropped(*r).into()))
        .collect();
    let interfaces: serde_json::Map<String, serde_json::Value> = report
        .interfaces
        .iter()
        .map(|(n, t)| (n.clone(), serde_json::to_value(t).expect("plain struct")))
        .collect();
    let rings: Vec<serde_json::Value> = report
        .rings
        .iter()
        .map(|(n, t)| {
            let mut v = serde_json::to_value(t).expect("plain struct");
            v["interface"] = n.clone().into();
            v
        })
        .collect();
    let filter_stats = report.filter_stats.map(|f| {
        serde_json::json!({
            "accepted": f.accepted,
            "accepted_fragments": f.accepted_fragments,
            "rejected_port": f.rejected_port,
            "rejected_protocol": f.rejected_protocol,
            "rejected_not_ip": f.rejected_not_ip,
            "rejected_malformed": f.rejected_malformed,
        })
    });
    let stats = serde_json::json!({
        "filter": report.filter,
        "filter_stats": filter_stats,
        "interfaces": interfaces,
        "rings": rings,
        "packets": d.frames,
        "bytes": d.bytes,
        "dns_queries": d.dns_queries,
        "dns_responses": d.dns_responses,
        "observations": d.observations + d.negatives,
        "records_written": report.summary.records_written,
        "negatives_written": report.summary.negatives_written,
        "flushes": report.summary.flushes,
        "elapsed_secs": report.elapsed.as_secs_f64(),
        "db_bytes": store.disk_bytes()?,
        "drops": drops,
    });
    std::io::Write::write_all(
        &mut file,
        (serde_json::to_string_pretty(&stats)? + "\n").as_bytes(),
    )?;
    Ok(())
}

/// The human summary printed at the end of a run.
pub fn render_report(report: &RunReport) -> String {
    let d = &report.summary.decode;
    let mut s = format!(
        "captured for {:.1}s: {} frames, {} DNS responses, {} queries, {} observations -> \
         {} records, {} negative answers written\n",
        report.elapsed.as_secs_f64(),
        d.frames,
        d.dns_responses,
        d.dns_queries,
        d.observations + d.negatives,
        report.summary.records_written,
        report.summary.negatives_written,
    );
    for (name, t) in &report.interfaces {
        s.push_str(&format!(
            "  {name}: kernel offered {} packets, dropped {} (ring full), {} freezes; \
             {} frames read, {} with an outer VLAN tag\n",
            t.packets, t.drops, t.freezes, t.frames, t.vlan_tagged
        ));
    }
    match &report.filter_stats {
        Some(f) => s.push_str(&format!(
            "  eBPF filter: kept {} ({} DNS port, {} fragments), rejected {} \
             (port {}, protocol {}, not IP {}, malformed {})\n",
            f.kept(),
            f.accepted,
            f.accepted_fragments,
            f.rejected(),
            f.rejected_port,
            f.rejected_protocol,
            f.rejected_not_ip,
            f.rejected_malformed
        )),
        None => s.push_str(&format!(
            "  {} filter (no kernel counters)\n",
            report.filter
        )),
    }
    let skipped = d.drops_summary();
    if !skipped.is_empty() {
        s.push_str(&format!("skipped: {skipped}\n"));
    }
    if report.interfaces.iter().any(|(_, t)| t.drops > 0) {
        s.push_str(
            "warning: the kernel dropped packets (rings full): raise --ring-blocks or --threads\n",
        );
    }
    s
}
