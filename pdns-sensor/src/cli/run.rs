//! `pdns-sensor run`: live capture on network interfaces, and dnstap from
//! DNS servers.
//!
//! With `--dnstap` the run also listens for dnstap senders (see
//! [`crate::source::dnstap`]); with `--dnstap` and no `--interface` it
//! captures nothing: no filter is loaded, no ring opened, and no
//! privilege is needed beyond what the socket paths ask for.
//!
//! A run has four parts, one function each:
//!
//! 1. **`prepare`**, with privileges, in this order: load the kernel
//!    filter (one per interface), bind the API socket, open and map one
//!    ring per decoder thread for every interface (bound to every device;
//!    the interface's filter picks its packets) and join them into the
//!    interface's fanout group, attach the filter, drop privileges to
//!    `--user`, and only then open the
//!    database. The database comes last because RocksDB starts its
//!    background threads when it opens, and a thread keeps the
//!    capabilities it was started with when a process sheds its own
//!    (see the `capture::privileges` module); the rings buffer whatever
//!    arrives meanwhile.
//! 2. **`start`**: one ring thread per ring, each feeding a pipeline
//!    [`Worker`] (see [`crate::capture`]), and the API.
//! 3. **`control`**: this thread runs a small tokio runtime for the
//!    control plane — SIGINT/SIGTERM, the once-a-second look at the
//!    captured interfaces (following one that is deleted and created
//!    again, see `Watch`) and publication of capture counters, the
//!    periodic status line — until a signal comes or a ring thread gives
//!    up.
//! 4. **`shut_down`** and the report: stop and drain the rings, flush the
//!    workers and the database, and say what was done.
//!
//! On SIGINT or SIGTERM every ring stops taking packets, drains what the
//! kernel already holds, and its worker flushes every pre-aggregated
//! observation; then the database is flushed and closed. Nothing that
//! reached a ring before the signal is lost.
//!
//! Crash window (SIGKILL, power loss): observations wait in a ring
//! thread's memory at most `--flush-interval` seconds (default 5) or until
//! its map holds its share of `--aggregate-entries` keys, plus at most the
//! ring's retire timeout in the ring. Everything written is in RocksDB's
//! write-ahead log, which survives a killed process; after a power loss,
//! what the OS had not yet written back of that log can be lost too.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use tokio::runtime::Runtime;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::DbArgs;
use super::export::RunningExport;
use crate::capture::filter::{Fanout, Filter, FilterChoice, Tunnels, sum_stats};
use crate::capture::iface::{Interface, Presence, default_route_interface, probe};
use crate::capture::privileges::{self, User};
use crate::capture::ring::Ring;
use crate::capture::stats::{RingCounters, RingTotals};
use crate::capture::thread::RingThread;
use crate::capture::{RingConfig, open_following_ring};
use crate::metrics::{self, CapturePublisher};
use crate::pipeline::{PipelineConfig, Summary, Worker};
use crate::report::DnstapReport;
use crate::report::{ExportSummary, PipelineTotals, RetentionSummary, RingReport, RunReport};
use crate::serve::Api;
use crate::source::dnstap::{DnstapService, Listener};
use crate::store::{CF_RECORDS, Store};
use pdns_common::IFINDEX_ABSENT;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Interface to capture on; repeat for several (default: the interface
    /// of the default route).
    #[arg(long = "interface", short = 'i', value_name = "IF")]
    pub interfaces: Vec<String>,
    /// Fail at startup if an interface named with --interface does not
    /// exist (by default the sensor waits for it and captures once it
    /// appears).
    #[arg(long)]
    pub require_interface: bool,
    /// Decoder threads (one ring each) per interface; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub pipeline: super::PipelineArgs,
    #[command(flatten)]
    pub retention: super::RetentionArgs,
    #[command(flatten)]
    pub nod: super::NodArgs,
    #[command(flatten)]
    pub export: super::export::ExportArgs,
    #[command(flatten)]
    pub dnstap: super::dnstap::DnstapArgs,
    /// After setup, switch to this user (and its group), keeping no
    /// capabilities. The database directory is given to that user. Already
    /// running as this user (a service with capabilities): drop them.
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
    /// Log the kernel filter's verdict, and why, for each of the first N
    /// packets it sees (eBPF only; kernel 5.12 or later).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub explain_filter: Option<u32>,
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

/// Runs a capture until SIGINT or SIGTERM; returns what it did.
pub fn run(args: &RunArgs) -> Result<RunReport> {
    let started = Instant::now();
    // Before any thread exists, so that every thread inherits it.
    let bounding_emptied = match args.user {
        Some(_) => privileges::lock_exec_privileges()?,
        None => false,
    };
    let mut control_plane = ControlPlane::new()?;
    let prepared = prepare(args, bounding_emptied, &control_plane.runtime)?;
    let mut capture = start(prepared, args, &control_plane.runtime)?;
    let reason = control(&mut control_plane, &mut capture, args);
    if !args.quiet {
        eprintln!("pdns-sensor: {reason}: stopping capture, flushing");
    }
    tracing::debug!("stopping: {reason}");
    let mut stopped = shut_down(capture)?;
    let report = stopped.report(started.elapsed())?;
    if let (Some(file), Some(path)) = (stopped.stats_file.take(), &args.stats_json) {
        write_stats(file, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.quiet {
        eprint!("{}", render_report(&report));
    }
    drop(stopped.store);
    match stopped.first_error {
        Some(e) => Err(e.context("capture failed")),
        None => Ok(report),
    }
}

/// The tokio runtime of the control plane and the signals it waits for
/// (caught from the start, so a signal during setup is not lost).
struct ControlPlane {
    runtime: Runtime,
    sigint: Signal,
    sigterm: Signal,
    /// Caught so that it never ends a capture (`systemctl reload` sends
    /// it); the API reloads its TLS certificates on it.
    sighup: Signal,
}

impl ControlPlane {
    fn new() -> Result<ControlPlane> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the control runtime")?;
        let (sigint, sigterm, sighup) = runtime
            .block_on(async {
                Ok::<_, std::io::Error>((
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::terminate())?,
                    signal(SignalKind::hangup())?,
                ))
            })
            .context("installing the signal handlers")?;
        Ok(ControlPlane {
            runtime,
            sigint,
            sigterm,
            sighup,
        })
    }
}

/// Everything set up as root, before any packet is read.
struct Prepared {
    store: Arc<Store>,
    export: Option<RunningExport>,
    interfaces: Vec<Target>,
    /// Each ring with the index of its interface.
    rings: Vec<(usize, Ring)>,
    /// One per interface (none when nothing is captured: dnstap only).
    filters: Vec<Filter>,
    dnstap: Vec<Listener>,
    api: Option<Api>,
    pipeline: PipelineConfig,
    ring_config: RingConfig,
    stats_file: Option<File>,
}

/// Checks the options and sets everything up that needs privileges, then
/// drops them (see the module docs for the order).
/// `bounding_emptied`: whether [`privileges::lock_exec_privileges`]
/// emptied the capability bounding set (the drop checks it stayed so).
fn prepare(args: &RunArgs, bounding_emptied: bool, runtime: &Runtime) -> Result<Prepared> {
    let ring_config = RingConfig {
        block_size: args.ring_block_size,
        block_count: args.ring_blocks,
        retire_timeout_ms: args.ring_timeout_ms,
    };
    ring_config.validate().map_err(anyhow::Error::msg)?;
    let store_options = args.nod.apply(args.retention.store_options()?);
    let ports = args.pipeline.ports();
    // dnstap alone: no capture at all.
    let capture = !args.interfaces.is_empty() || !args.dnstap.enabled();
    if !capture && args.explain_filter.is_some() {
        anyhow::bail!("--explain-filter needs a capture: add --interface");
    }
    let interfaces = if capture {
        interfaces(&args.interfaces, args.require_interface)?
    } else {
        Vec::new()
    };
    let user = args.user.as_deref().map(User::lookup).transpose()?;
    if let Some(user) = &user {
        privileges::check_can_become(user)?;
    }

    // ClickHouse checked (and, with --export-required, refused) before
    // anything is opened.
    let export = args.export.prepare()?;
    // Before anything is created: a filter that cannot do what was asked
    // (explain with the classic filter) is an error.
    let mut filters = load_filters(&interfaces, args, &ports)?;
    // The dnstap sockets too (a path under /run may need root).
    let dnstap = args.dnstap.bind()?;
    if let Some(user) = &user {
        give_sockets(&dnstap, user)?;
    }
    // The API socket is bound before privileges are dropped (a port below
    // 1024 needs them). A taken port is reported, not fatal: capture is the
    // job that must not stop.
    let api = if args.no_api {
        None
    } else {
        match runtime.block_on(Api::bind(args.api.config(args.export.sensor_id.clone())?)) {
            Ok(api) => Some(api),
            Err(e) => {
                tracing::error!("HTTP API not started: {e:#}");
                None
            }
        }
    };
    let pipeline = args.pipeline.config(args.threads);
    for filter in &mut filters {
        filter.set_rings(pipeline.thread_count())?;
    }
    let rings = open_rings(&interfaces, pipeline.thread_count(), &ring_config, &filters)?;

    // Opened now, while we may still write anywhere.
    let stats_file = args
        .stats_json
        .as_ref()
        .map(|p| File::create(p).with_context(|| format!("creating {}", p.display())))
        .transpose()?;
    if let Some(user) = &user {
        drop_privileges(user, bounding_emptied, &args.db.db)?;
    }
    let mut store = Store::open_with(&args.db.db, &store_options)?;
    super::export::attach(export.as_ref(), &mut store)?;
    let store = Arc::new(store);
    let export = export.map(|e| e.start(&store)).transpose()?;
    Ok(Prepared {
        store,
        export,
        interfaces,
        rings,
        filters,
        dnstap,
        api,
        pipeline,
        ring_config,
        stats_file,
    })
}

/// One filter per interface (a loaded eBPF program cannot tell which
/// socket it runs for, and the sockets are bound to every device; see
/// `crate::capture`), each taking its interface's packets, or none while
/// the interface is absent. Under `--filter auto`, the first decides: if
/// eBPF cannot be loaded for it, every interface gets the classic filter
/// (one fallback line, not one per interface). With `--explain-filter N`
/// each interface explains its own first N packets.
fn load_filters(interfaces: &[Target], args: &RunArgs, ports: &[u16]) -> Result<Vec<Filter>> {
    let tunnels = filter_tunnels(&args.pipeline);
    let mut choice = args.filter;
    let mut filters: Vec<Filter> = Vec::new();
    for target in interfaces {
        let index = target
            .interface
            .as_ref()
            .map_or(IFINDEX_ABSENT, |i| i.index);
        let filter =
            Filter::load_for_interface(choice, ports, &tunnels, args.explain_filter, index)
                .with_context(|| format!("loading the kernel filter for {}", target.name))?;
        choice = match filter {
            Filter::Ebpf(_) => FilterChoice::Ebpf,
            Filter::Classic(_) => FilterChoice::Classic,
        };
        filters.push(filter);
    }
    Ok(filters)
}

/// The tunnels the kernel filter looks into: the decoder's.
fn filter_tunnels(pipeline: &super::PipelineArgs) -> Tunnels {
    if pipeline.no_tunnels {
        return Tunnels::none();
    }
    Tunnels {
        vxlan_ports: pipeline.vxlan_ports(),
        geneve_ports: pipeline.geneve_ports(),
        gre: true,
    }
}

/// Gives the dnstap socket files to the user the run switches to, so that
/// it can remove them at the end.
fn give_sockets(listeners: &[Listener], user: &User) -> Result<()> {
    for l in listeners {
        if let Listener::Unix { path, .. } = l {
            std::os::unix::fs::chown(path, Some(user.uid), None)
                .with_context(|| format!("giving {} to {}", path.display(), user.name))?;
        }
    }
    Ok(())
}

/// An interface to capture on, by name: it may not exist yet.
struct Target {
    name: String,
    /// What it was at startup; None if it did not exist.
    interface: Option<Interface>,
}

/// The interfaces asked for, each once, or the default route's. One that
/// does not exist yet is waited for (with a log line), unless
/// `require` (`--require-interface`); one that exists must be
/// capturable (Ethernet or loopback), and so must the default route's.
fn interfaces(names: &[String], require: bool) -> Result<Vec<Target>> {
    let mut unique: Vec<String> = Vec::new();
    for name in names {
        // The same interface twice would capture every packet twice.
        if !unique.contains(name) {
            unique.push(name.clone());
        }
    }
    if unique.is_empty() {
        let name = default_route_interface()?;
        let interface = Some(Interface::resolve(&name)?);
        return Ok(vec![Target { name, interface }]);
    }
    unique
        .into_iter()
        .map(|name| {
            let interface = match probe(&name) {
                Presence::Absent if !require => {
                    tracing::warn!(
                        "waiting for interface {name}: it does not exist (yet); capture on it \
                         starts when it appears (--require-interface makes this an error)"
                    );
                    None
                }
                _ => Some(Interface::resolve(&name).with_context(|| {
                    if require {
                        format!("--require-interface: interface {name} is not there")
                    } else {
                        format!("interface {name}")
                    }
                })?),
            };
            Ok(Target { name, interface })
        })
        .collect()
}

/// Opens `per_interface` rings for every interface, bound to every device
/// (each interface's filter picks its packets; see `crate::capture`). All
/// of an interface's sockets join its fanout group behind a
/// drop-everything filter; the real filter goes on once the group is
/// complete.
fn open_rings(
    interfaces: &[Target],
    per_interface: usize,
    config: &RingConfig,
    filters: &[Filter],
) -> Result<Vec<(usize, Ring)>> {
    let mut rings = Vec::new();
    for (i, (target, filter)) in interfaces.iter().zip(filters).enumerate() {
        let loopback = target.interface.as_ref().is_some_and(|i| i.loopback);
        let mut group = None;
        let first = rings.len();
        for _ in 0..per_interface {
            // Only one group may defragment (see `crate::capture`).
            let ring = open_following_ring(loopback, i == 0, config, &mut group, filter.fanout())
                .with_context(|| format!("opening a capture ring for {}", target.name))?;
            rings.push((i, ring));
        }
        for (_, ring) in &rings[first..] {
            filter.attach(ring.socket())?;
        }
    }
    Ok(rings)
}

/// Switches to `user` with no capabilities, giving it the database (made
/// here if it does not exist yet, while we may still write anywhere), and
/// checks the database is writable. A sensor already running as `user`
/// (the systemd unit) only sheds its capabilities: the database is its
/// own already.
fn drop_privileges(user: &User, bounding_emptied: bool, db: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(db).with_context(|| format!("creating {}", db.display()))?;
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != user.uid {
        privileges::chown_tree(db, user)?;
    }
    privileges::drop_to(user, bounding_emptied)?;
    // RocksDB creates files as it goes: fail now, not at the first flush.
    let probe = db.join(".pdns-write-probe");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| {
            format!(
                "the database {} is not writable as {} (are its parent directories traversable?)",
                db.display(),
                user.name
            )
        })?;
    let bounding = if bounding_emptied {
        "bounding set emptied".to_string()
    } else {
        format!(
            "bounding set {:#x} kept (no CAP_SETPCAP to empty it)",
            privileges::thread_capabilities()?
                .first()
                .map_or(0, |t| t.bounding)
        )
    };
    tracing::info!(
        "running as {} (uid {}, gid {}), no capabilities; no execve can grant any (no_new_privs, {bounding})",
        user.name,
        user.uid,
        user.gid
    );
    Ok(())
}

/// One running ring thread.
struct RingHandle {
    interface: usize,
    counters: Arc<RingCounters>,
    handle: JoinHandle<Result<Summary>>,
}

/// A running capture.
struct Capture {
    store: Arc<Store>,
    export: Option<RunningExport>,
    interfaces: Vec<Arc<str>>,
    threads: Vec<RingHandle>,
    stop: Arc<AtomicBool>,
    /// One per interface, in the order of `interfaces`.
    filters: Vec<Filter>,
    /// One per interface, in the order of `interfaces`.
    watches: Vec<Watch>,
    dnstap: Option<DnstapService>,
    publisher: CapturePublisher,
    stats_file: Option<File>,
}

/// Starts a ring thread (with its worker) per ring, and the API.
fn start(prepared: Prepared, args: &RunArgs, runtime: &Runtime) -> Result<Capture> {
    let Prepared {
        store,
        export,
        interfaces,
        rings,
        mut filters,
        dnstap,
        api,
        pipeline,
        ring_config,
        stats_file,
    } = prepared;
    let names: Vec<Arc<str>> = interfaces
        .iter()
        .map(|t| Arc::from(t.name.as_str()))
        .collect();
    let watches: Vec<Watch> = interfaces.iter().map(Watch::new).collect();
    let per_interface = rings.len() / interfaces.len().max(1);
    let stop = Arc::new(AtomicBool::new(false));
    // Live traffic cannot wait: a full disk holds the writers (and, once
    // their workers are full too, drops at the rings) until there is room
    // again or the sensor stops.
    let pipeline = PipelineConfig {
        wait_for_space: Some(Arc::clone(&stop)),
        ..pipeline
    };
    // Every ring and every dnstap worker has a worker: they share the
    // aggregator bound.
    let dnstap_config = args.dnstap.config();
    let dnstap_workers = if dnstap.is_empty() {
        0
    } else {
        dnstap_config.worker_count()
    };
    let pipeline = pipeline.per_worker(rings.len() + dnstap_workers);
    let mut threads = Vec::new();
    for (n, (i, ring)) in rings.into_iter().enumerate() {
        let counters = Arc::new(RingCounters::default());
        let thread = RingThread {
            interface: Arc::clone(&names[i]),
            ring,
            sink: Worker::new(&pipeline, Arc::clone(&store), &format!("pdns-store-{n}"))?,
            counters: Arc::clone(&counters),
            stop: Arc::clone(&stop),
            retire_timeout: Duration::from_millis(ring_config.retire_timeout_ms as u64),
        };
        let follow = filters[i].follower();
        let handle = std::thread::Builder::new()
            .name(format!("pdns-ring-{n}"))
            .spawn(move || thread.run_following(follow))
            .context("starting a ring thread")?;
        threads.push(RingHandle {
            interface: i,
            counters,
            handle,
        });
    }
    if let Some(filter) = filters.first() {
        let fanout = match filter.fanout() {
            Fanout::Ebpf(_) => "eBPF fanout (innermost addresses)",
            Fanout::Hash => "hash fanout",
        };
        tracing::info!(
            "capturing DNS on {} ({} ring(s) each, {} filter, {}, ports {:?}) into {}",
            names.join(", "),
            per_interface,
            filter.kind(),
            fanout,
            args.pipeline.ports(),
            args.db.db.display()
        );
    }
    let dnstap = if dnstap.is_empty() {
        None
    } else {
        Some(DnstapService::start(
            dnstap,
            dnstap_config,
            &pipeline,
            Arc::clone(&store),
        )?)
    };
    if let Some(api) = api {
        let store = Arc::clone(&store);
        runtime.spawn(async move {
            if let Err(e) = api
                .serve(crate::serve::Backend::Store(store), std::future::pending())
                .await
            {
                tracing::error!("HTTP API stopped: {e:#}");
            }
        });
    }
    Ok(Capture {
        store,
        export,
        interfaces: names,
        threads,
        stop,
        filters,
        watches,
        dnstap,
        publisher: CapturePublisher::default(),
        stats_file,
    })
}

impl Capture {
    /// Publishes the capture counters' increase (rings and eBPF filter);
    /// returns the filter's verdicts, if it has any.
    fn publish(&mut self) -> Option<pdns_common::FilterStats> {
        let interfaces = &self.interfaces;
        self.publisher.rings(
            self.threads
                .iter()
                .map(|t| (&*interfaces[t.interface], t.counters.totals())),
        );
        if let Some(dnstap) = &self.dnstap {
            dnstap.publish();
        }
        match sum_stats(&self.filters)? {
            Ok(s) => {
                self.publisher.filter(s);
                Some(s)
            }
            Err(e) => {
                tracing::debug!("{e:#}");
                None
            }
        }
    }

    /// Looks at every captured interface and follows it: see [`Watch`].
    fn watch(&mut self) {
        for (watch, filter) in self.watches.iter_mut().zip(&mut self.filters) {
            watch.check(filter);
        }
    }
}

/// What the watcher knows of one captured interface. Once a second (on the
/// control plane's tick) the interface is looked up by name
/// ([`probe`]); when it has changed, the filter is pointed at its new index
/// (or at none when it is gone or refused), one line says what happened,
/// and `pdns_capture_interface_up{interface}` follows. Polling rather than
/// netlink: a second's delay is nothing next to a reconfiguration, and
/// the sensor holds no capability a netlink socket would need anyway.
struct Watch {
    name: Arc<str>,
    /// The capture was set up for loopback (an interface that did not
    /// exist at startup is taken to be Ethernet).
    loopback: bool,
    /// The index the filter takes packets of (`IFINDEX_ABSENT`: none).
    index: u32,
    /// What was seen last; None before the first look.
    seen: Option<Seen>,
    /// The filter could not be changed (eBPF map write refused): said
    /// once.
    stuck: bool,
    /// The index the interface had when it was last up (None: never
    /// seen up yet).
    last_up: Option<u32>,
}

/// An interface's state as the watcher sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Absent,
    Down(u32),
    Up(u32),
    /// Present, with this index and a link type that is not capturable.
    Refused(u32, u32),
}

impl Watch {
    fn new(target: &Target) -> Watch {
        Watch {
            name: Arc::from(target.name.as_str()),
            loopback: target.interface.as_ref().is_some_and(|i| i.loopback),
            index: target
                .interface
                .as_ref()
                .map_or(IFINDEX_ABSENT, |i| i.index),
            seen: None,
            stuck: false,
            last_up: None,
        }
    }

    fn check(&mut self, filter: &mut Filter) {
        let now = match probe(&self.name) {
            Presence::Absent => Seen::Absent,
            Presence::Present { index, kind, .. } if !Presence::capturable(kind, self.loopback) => {
                Seen::Refused(index, kind)
            }
            Presence::Present {
                index, up: true, ..
            } => Seen::Up(index),
            Presence::Present {
                index, up: false, ..
            } => Seen::Down(index),
        };
        if self.seen == Some(now) {
            return;
        }
        let wanted = match now {
            Seen::Up(i) | Seen::Down(i) => i,
            Seen::Absent | Seen::Refused(..) => IFINDEX_ABSENT,
        };
        if wanted != self.index {
            match filter.set_interface(wanted) {
                Ok(()) => self.index = wanted,
                Err(e) => {
                    if !self.stuck {
                        tracing::error!(
                            "interface {}: cannot follow it without a restart: {e:#} (once \
                             privileges are dropped, writing the eBPF filter's map needs Linux \
                             6.5 or later); capture on it stays as it was",
                            self.name
                        );
                    }
                    self.stuck = true;
                }
            }
        }
        let name = &self.name;
        let before = self.seen;
        match now {
            Seen::Absent => {
                if before.is_some() {
                    tracing::warn!("interface {name} is gone; waiting for it");
                }
            }
            Seen::Refused(index, kind) => tracing::error!(
                "interface {name} (index {index}) has link type {kind} (ARPHRD), not {}: not \
                 captured; waiting for one that is",
                if self.loopback {
                    "loopback"
                } else {
                    "Ethernet"
                }
            ),
            Seen::Up(index) => {
                match (self.last_up, before) {
                    // Up from the start: the startup line said enough.
                    (None, None) => {}
                    (None, _) => {
                        tracing::info!("interface {name} is there (index {index}); capturing")
                    }
                    (Some(i), Some(Seen::Down(j))) if i == index && j == index => {
                        tracing::info!("interface {name} is up; capturing again")
                    }
                    _ => {
                        tracing::info!("interface {name} is back (index {index}); capturing again")
                    }
                }
                self.last_up = Some(index);
            }
            Seen::Down(index) => match before {
                Some(Seen::Up(i)) if i == index => {
                    tracing::warn!("interface {name} is down; capturing again when it comes up")
                }
                _ => tracing::warn!(
                    "interface {name} is there (index {index}) but down; capturing once it \
                     comes up"
                ),
            },
        }
        self.seen = Some(now);
        let up = matches!(now, Seen::Up(i) if i == self.index);
        metrics::publish_interface_up(name, up);
    }
}

/// The control loop: publishes counters every second and prints the status
/// line, until a signal or a ring thread gives up; returns why it stopped.
fn control(plane: &mut ControlPlane, capture: &mut Capture, args: &RunArgs) -> &'static str {
    let ControlPlane {
        runtime,
        sigint,
        sigterm,
        sighup,
    } = plane;
    let mut status = Status::new(args.quiet);
    let status_every = Duration::from_secs(args.status_interval.max(1));
    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = Instant::now();
        loop {
            tokio::select! {
                _ = sigint.recv() => break "SIGINT",
                _ = sigterm.recv() => break "SIGTERM",
                // The API, if it runs, reloads its certificates on it.
                _ = sighup.recv() => tracing::debug!("SIGHUP: capture goes on"),
                _ = tick.tick() => {
                    capture.watch();
                    capture.publish();
                    if capture.threads.iter().any(|t| t.handle.is_finished()) {
                        break "a ring thread stopped";
                    }
                    if capture.dnstap.as_ref().is_some_and(DnstapService::failed) {
                        break "a dnstap worker stopped";
                    }
                    if last_status.elapsed() >= status_every {
                        last_status = Instant::now();
                        status.print(&capture.threads, &capture.store);
                    }
                }
            }
        }
    })
}

/// A capture that has stopped: its threads' results, before the report.
struct Stopped {
    store: Arc<Store>,
    export: Option<ExportSummary>,
    filter_kind: &'static str,
    filter_stats: Option<pdns_common::FilterStats>,
    /// Per ring: interface and totals.
    rings: Vec<(Arc<str>, RingTotals)>,
    dnstap: Option<DnstapReport>,
    summary: Summary,
    first_error: Option<anyhow::Error>,
    stats_file: Option<File>,
}

/// Stops every ring (each drains what the kernel holds and flushes its
/// worker), waits for them, publishes the last counters and flushes the
/// database. A ring thread's failure is kept for the end; the others still
/// finish.
fn shut_down(mut capture: Capture) -> Result<Stopped> {
    capture.stop.store(true, Ordering::Release);
    let mut summary = Summary::default();
    let mut first_error = None;
    let mut rings = Vec::new();
    let threads = std::mem::take(&mut capture.threads);
    let mut finished = Vec::new();
    for t in threads {
        let result = t
            .handle
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a ring thread panicked")));
        match result {
            Ok(s) => summary.add(&s),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        rings.push((
            Arc::clone(&capture.interfaces[t.interface]),
            t.counters.totals(),
        ));
        finished.push((t.interface, t.counters));
    }
    let interfaces = &capture.interfaces;
    capture.publisher.rings(
        finished
            .iter()
            .map(|(i, counters)| (&*interfaces[*i], counters.totals())),
    );
    let mut dnstap = None;
    if let Some(service) = capture.dnstap.take() {
        let outcome = service.stop();
        summary.add(&outcome.summary);
        if let Some(e) = outcome.error {
            first_error.get_or_insert(anyhow::Error::new(e).context("recording dnstap"));
        }
        dnstap = Some(DnstapReport::from_stats(
            &outcome.stats,
            Some(outcome.connections),
        ));
    }
    let filter_stats = match sum_stats(&capture.filters) {
        Some(Ok(s)) => {
            capture.publisher.filter(s);
            Some(s)
        }
        Some(Err(e)) => {
            tracing::debug!("{e:#}");
            None
        }
        None => None,
    };
    // Every batch is written (and spooled): wait for ClickHouse.
    let export = capture.export.take().map(|e| e.finish());
    capture.store.flush()?;
    Ok(Stopped {
        store: capture.store,
        export,
        filter_kind: capture.filters.first().map_or("none", Filter::kind),
        filter_stats,
        rings,
        dnstap,
        summary,
        first_error,
        stats_file: capture.stats_file,
    })
}

impl Stopped {
    fn report(&self, elapsed: Duration) -> Result<RunReport> {
        let mut report = RunReport {
            filter: self.filter_kind.to_string(),
            filter_stats: self.filter_stats.map(Into::into),
            totals: PipelineTotals::from_summary(&self.summary),
            elapsed_secs: elapsed.as_secs_f64(),
            db_bytes: self.store.disk_bytes()?,
            retention: RetentionSummary::of(&self.store),
            export: self.export.clone(),
            dnstap: self.dnstap.clone(),
            summary: self.summary.clone(),
            ..RunReport::default()
        };
        for (interface, totals) in &self.rings {
            report
                .interfaces
                .entry(interface.to_string())
                .or_default()
                .add(totals);
            report.rings.push(RingReport {
                interface: interface.to_string(),
                totals: *totals,
            });
        }
        Ok(report)
    }
}

fn write_stats(mut file: File, report: &RunReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report)? + "\n";
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(())
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

impl Status {
    fn new(quiet: bool) -> Status {
        Status {
            quiet,
            at: Instant::now(),
            packets: 0,
            responses: metrics::dns_responses(),
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
        let responses = metrics::dns_responses();
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

/// The human summary printed at the end of a run.
pub fn render_report(report: &RunReport) -> String {
    let t = &report.totals;
    let mut s = format!(
        "captured for {:.1}s: {} frames, {} DNS responses, {} queries, {} observations -> \
         {} records, {} negative answers written\n",
        report.elapsed_secs,
        t.packets,
        t.dns_responses,
        t.dns_queries,
        t.observations,
        t.records_written,
        t.negatives_written,
    );
    for (name, t) in &report.interfaces {
        s.push_str(&format!(
            "  {name}: kernel offered {} packets, dropped {} (ring full), {} freezes; \
             {} frames read, {} with an outer VLAN tag\n",
            t.packets, t.drops, t.freezes, t.frames, t.vlan_tagged
        ));
    }
    if let Some(dnstap) = &report.dnstap {
        s.push_str(&dnstap.render());
    }
    match &report.filter_stats {
        _ if report.filter == "none" => {}
        Some(f) => s.push_str(&format!(
            "  eBPF filter: kept {} ({} DNS port, {} fragments, {} tunnelled DNS port, \
             {} tunnelled fragments), rejected {} (port {}, protocol {}, not IP {}, \
             malformed {}, tunnelled: port {}, protocol {}, malformed {}; other devices {})\n",
            f.kept(),
            f.accepted,
            f.accepted_fragments,
            f.accepted_tunnel,
            f.accepted_tunnel_fragments,
            f.rejected(),
            f.rejected_port,
            f.rejected_protocol,
            f.rejected_not_ip,
            f.rejected_malformed,
            f.rejected_tunnel_port,
            f.rejected_tunnel_protocol,
            f.rejected_tunnel_malformed,
            f.rejected_interface
        )),
        None => s.push_str(&format!(
            "  {} filter (no kernel counters)\n",
            report.filter
        )),
    }
    let skipped = t.drops_summary();
    if !skipped.is_empty() {
        s.push_str(&format!("skipped: {skipped}\n"));
    }
    s.push_str(&report.retention.render());
    if report.interfaces.values().any(|t| t.drops > 0) {
        s.push_str(
            "warning: the kernel dropped packets (rings full): raise --ring-blocks or --threads\n",
        );
    }
    s
}
