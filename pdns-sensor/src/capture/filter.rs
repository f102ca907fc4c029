//! The kernel filter of the capture sockets: the `pdns-ebpf` socket filter,
//! or the classic BPF fallback when eBPF cannot be loaded.
//!
//! The eBPF object is built by `build.rs` and embedded in the binary, so the
//! sensor is one file. It is loaded once per captured interface, and that
//! program is attached to every socket of the interface's fanout group
//! (fanout demultiplexes *before* the per-socket filter, so each member
//! needs it). One per interface because `run`'s sockets are bound to every
//! device and the filter picks the interface by its index, held in a map
//! of the instance ([`Filter::set_interface`]; see `super` on following an
//! interface). Its port set is a map filled from `--port`, and its
//! verdicts are counted per CPU in another map, summed here, and over the
//! instances by [`sum_stats`]. With `--explain-filter N` each instance
//! explains the first N packets of its own interface.
//!
//! Loading can fail on old kernels or without CAP_BPF/CAP_SYS_ADMIN. The
//! sensor then attaches the equivalent classic program from `super::cbpf`
//! and says so in one log line: it never silently captures everything.
//!
//! `--explain-filter N` answers "why is my traffic rejected?": the object's
//! second program, `pdns_filter_explain`, is loaded instead of the
//! production one. It classifies with the same code, and for the first N
//! packets writes one line each through aya-log (its own ring buffer map)
//! saying which verdict it reached and why. A thread here drains that ring
//! into the `log` crate, which tracing-subscriber's `tracing-log` bridge
//! turns into ordinary `INFO` lines on stderr. The production program has
//! no logging code, so the option costs nothing when it is not given; the
//! classic filter cannot explain anything, so asking it to is an error.
//!
//! Tunnels ([`Tunnels`]): the eBPF filter opens VXLAN and Geneve on their
//! UDP ports (a map filled from `--vxlan-port` and `--geneve-port`) and GRE
//! with ERSPAN (a flag), and classifies the packet inside like any other;
//! `--no-tunnels` leaves the map empty and the flag clear. The classic
//! fallback keeps tunnel traffic whole (see `super::cbpf`).
//!
//! The same object has the fanout program ([`FANOUT_PROGRAM_NAME`]): with
//! the eBPF filter the capture sockets join a `PACKET_FANOUT_EBPF` group
//! that runs it ([`Filter::fanout`]): every whole UDP datagram about one
//! DNS question name meets in one ring (and one aggregator), and both
//! directions of any other flow, inside a tunnel too, meet in one ring even
//! when their outer addresses differ. With
//! the classic filter, `PACKET_FANOUT_HASH` (the kernel's symmetric flow
//! hash, of the outer addresses and ports).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::programs::SocketFilter;
use aya::{Ebpf, EbpfLoader};
use pdns_common::{
    CONFIG_FLAGS, CONFIG_MAP, CONFIG_RINGS, EXPLAIN_MAP, EXPLAIN_PROGRAM_NAME, EXPLAIN_REMAINING,
    EXPLAIN_TOTAL, FANOUT_PROGRAM_NAME, FLAG_GRE, FilterStats, IFINDEX_ANY, IFINDEX_MAP, MAX_PORTS,
    MAX_TUNNEL_PORTS, PORTS_MAP, PROGRAM_NAME, STATS_MAP, TUNNEL_GENEVE, TUNNEL_PORTS_MAP,
    TUNNEL_VXLAN,
};

use super::cbpf;
use super::socket::PacketSocket;

/// Which filter to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FilterChoice {
    /// eBPF, falling back to classic BPF if it cannot be loaded.
    #[default]
    Auto,
    /// eBPF or fail.
    Ebpf,
    /// Classic BPF only.
    Classic,
}

/// The tunnels the kernel filter looks into (the decoder's options:
/// `--vxlan-port`, `--geneve-port`, `--no-tunnels`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnels {
    /// UDP destination ports of VXLAN.
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports of Geneve.
    pub geneve_ports: Vec<u16>,
    /// GRE (IP protocol 47), ERSPAN included.
    pub gre: bool,
}

impl Default for Tunnels {
    /// The decoder's defaults: VXLAN on 4789, Geneve on 6081, GRE.
    fn default() -> Self {
        Tunnels {
            vxlan_ports: vec![crate::decode::DEFAULT_VXLAN_PORT],
            geneve_ports: vec![crate::decode::DEFAULT_GENEVE_PORT],
            gre: true,
        }
    }
}

impl Tunnels {
    /// No tunnel is looked into (`--no-tunnels`).
    pub fn none() -> Tunnels {
        Tunnels {
            vxlan_ports: Vec::new(),
            geneve_ports: Vec::new(),
            gre: false,
        }
    }

    /// Each UDP tunnel port with its kind (`TUNNEL_VXLAN`, `TUNNEL_GENEVE`);
    /// a port named for both is VXLAN, as in the decoder.
    pub(crate) fn udp_ports(&self) -> Result<Vec<(u16, u8)>> {
        let mut ports: Vec<(u16, u8)> = Vec::new();
        for &p in &self.vxlan_ports {
            if !ports.iter().any(|&(q, _)| q == p) {
                ports.push((p, TUNNEL_VXLAN));
            }
        }
        for &p in &self.geneve_ports {
            if !ports.iter().any(|&(q, _)| q == p) {
                ports.push((p, TUNNEL_GENEVE));
            }
        }
        if ports.len() > MAX_TUNNEL_PORTS {
            bail!(
                "at most {MAX_TUNNEL_PORTS} VXLAN and Geneve ports together can be watched, got {}",
                ports.len()
            );
        }
        Ok(ports)
    }
}

/// How the capture sockets of an interface share its packets.
#[derive(Clone, Copy, Debug)]
pub enum Fanout<'a> {
    /// `PACKET_FANOUT_HASH`: the kernel's symmetric flow hash of the outer
    /// packet.
    Hash,
    /// `PACKET_FANOUT_EBPF` running this program (the fanout program:
    /// innermost addresses).
    Ebpf(BorrowedFd<'a>),
}

/// The filter of one interface's capture sockets.
pub enum Filter {
    Ebpf(Box<EbpfFilter>),
    Classic(ClassicFilter),
}

/// The classic program's inputs, and the interface it takes packets of.
/// Changing the interface means attaching a new program to every socket,
/// which only the ring thread that owns a socket does ([`ClassicFollow`]).
pub struct ClassicFilter {
    ports: Vec<u16>,
    tunnels: Tunnels,
    /// `IFINDEX_ANY`, an interface index, or `IFINDEX_ABSENT`.
    wanted: Arc<AtomicU32>,
    /// The index each follower's socket has a program for now
    /// ([`NOT_ATTACHED`] before its first).
    attached: Vec<Arc<AtomicU32>>,
}

/// A follower that has attached no program yet.
const NOT_ATTACHED: u32 = u32::MAX - 1;

/// How long [`Filter::set_interface`] waits for the ring threads to attach
/// the classic program for a new index: they look once per `poll()` (at
/// most 100 ms), so a running one is there well within this.
const ATTACH_WAIT: Duration = Duration::from_millis(500);

/// What a ring thread under the classic filter needs to follow its
/// interface: the index wanted now, and how to build the program for it.
#[derive(Clone)]
pub struct ClassicFollow {
    ports: Vec<u16>,
    tunnels: Tunnels,
    wanted: Arc<AtomicU32>,
    /// The index its socket has a program for, for the control plane.
    attached: Arc<AtomicU32>,
}

impl ClassicFollow {
    /// The interface index the socket should take packets of now.
    pub fn wanted(&self) -> u32 {
        self.wanted.load(Ordering::Acquire)
    }

    /// Attaches the program for interface `index` to the socket, and says
    /// so to the control plane (see [`Filter::set_interface`]).
    pub fn attach(&self, socket: &PacketSocket, index: u32) -> Result<()> {
        let prog = classic_program(&self.ports, &self.tunnels, index)?;
        cbpf::attach(socket, &prog).context("attaching the classic filter")?;
        self.attached.store(index, Ordering::Release);
        Ok(())
    }
}

/// The classic program for the port set and tunnels, taking the packets of
/// interface `index` (or of any with `IFINDEX_ANY`; none when absent).
fn classic_program(ports: &[u16], tunnels: &Tunnels, index: u32) -> Result<Vec<libc::sock_filter>> {
    let ifindex = match index {
        IFINDEX_ANY => None,
        pdns_common::IFINDEX_ABSENT => return Ok(cbpf::drop_all()),
        i => Some(i),
    };
    cbpf::dns_filter(ports, tunnels, ifindex)
        .map_err(|e| anyhow!("building the classic filter: {e}"))
}

/// The loaded eBPF program and its counters map.
pub struct EbpfFilter {
    ebpf: Ebpf,
    /// The interface map (`IFINDEX_MAP`).
    ifindex: Array<MapData, u32>,
    /// The settings map (`CONFIG_MAP`).
    config: Array<MapData, u32>,
    /// [`PROGRAM_NAME`] or [`EXPLAIN_PROGRAM_NAME`].
    program: &'static str,
    /// Whether the fanout program loaded.
    fanout: bool,
    stats: PerCpuArray<MapData, [u64; STATS_WORDS]>,
    /// Drains the explain program's log lines (with `--explain-filter`).
    _explain: Option<ExplainDrain>,
}

/// aya-log's ring buffer map (`aya_log_ebpf::macro_support::AYA_LOGS`).
/// Every object that logs has it, so it is created whichever program is
/// loaded.
const LOG_MAP: &str = "AYA_LOGS";

const STATS_WORDS: usize = 12;
const _: () = assert!(size_of::<FilterStats>() == STATS_WORDS * 8);

fn stats_from_words(w: &[u64; STATS_WORDS]) -> FilterStats {
    // Field order of the repr(C) struct in pdns-common.
    FilterStats {
        accepted: w[0],
        accepted_fragments: w[1],
        rejected_port: w[2],
        rejected_protocol: w[3],
        rejected_not_ip: w[4],
        rejected_malformed: w[5],
        accepted_tunnel: w[6],
        accepted_tunnel_fragments: w[7],
        rejected_tunnel_port: w[8],
        rejected_tunnel_protocol: w[9],
        rejected_tunnel_malformed: w[10],
        rejected_interface: w[11],
    }
}

/// The eBPF object built by `build.rs`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pdns-ebpf"));

impl Filter {
    /// Loads the filter for `ports` as `choice` asks, looking into the
    /// default tunnels.
    pub fn load(choice: FilterChoice, ports: &[u16]) -> Result<Filter> {
        Filter::load_explaining(choice, ports, &Tunnels::default(), None)
    }

    /// Like [`Filter::load`]; with `Some(n)` (`--explain-filter n`) it loads
    /// the explain program, which logs its verdict and the reason for it
    /// for the first `n` packets. That needs the eBPF filter: with
    /// [`FilterChoice::Classic`], or when eBPF cannot be loaded under
    /// [`FilterChoice::Auto`], it is an error rather than a silent fallback.
    pub fn load_explaining(
        choice: FilterChoice,
        ports: &[u16],
        tunnels: &Tunnels,
        explain: Option<u32>,
    ) -> Result<Filter> {
        Filter::load_for_interface(choice, ports, tunnels, explain, IFINDEX_ANY)
    }

    /// Like [`Filter::load_explaining`], taking only the packets of
    /// interface `index` (`IFINDEX_ABSENT`: none yet), for sockets bound to
    /// every device ([`super::open_following_ring`]); the index can be
    /// changed later ([`Filter::set_interface`]). Each interface needs its
    /// own filter: a loaded program cannot tell which socket it runs for.
    pub fn load_for_interface(
        choice: FilterChoice,
        ports: &[u16],
        tunnels: &Tunnels,
        explain: Option<u32>,
        index: u32,
    ) -> Result<Filter> {
        if ports.is_empty() || ports.len() > MAX_PORTS {
            bail!(
                "between 1 and {MAX_PORTS} ports can be watched, got {}",
                ports.len()
            );
        }
        tunnels.udp_ports()?;
        let classic = || -> Result<Filter> {
            // Built once here so that a port set that cannot be expressed
            // fails now, not in a ring thread.
            classic_program(ports, tunnels, IFINDEX_ANY)?;
            Ok(Filter::Classic(ClassicFilter {
                ports: ports.to_vec(),
                tunnels: tunnels.clone(),
                wanted: Arc::new(AtomicU32::new(index)),
                attached: Vec::new(),
            }))
        };
        if let Some(n) = explain {
            if choice == FilterChoice::Classic {
                bail!(
                    "--explain-filter needs the eBPF filter: the classic BPF filter cannot explain \
                     its verdicts (use --filter auto or --filter ebpf)"
                );
            }
            return EbpfFilter::load(ports, tunnels, Some(n), index)
                .map(|f| Filter::Ebpf(Box::new(f)))
                .with_context(|| {
                    format!(
                        "--explain-filter needs the eBPF filter, and it could not be loaded \
                         (the classic BPF fallback cannot explain its verdicts){}",
                        explain_capability_hint()
                    )
                });
        }
        match choice {
            FilterChoice::Classic => classic(),
            FilterChoice::Ebpf => Ok(Filter::Ebpf(Box::new(EbpfFilter::load(
                ports, tunnels, None, index,
            )?))),
            FilterChoice::Auto => match EbpfFilter::load(ports, tunnels, None, index) {
                Ok(f) => Ok(Filter::Ebpf(Box::new(f))),
                Err(e) => {
                    tracing::warn!(
                        "eBPF filter unavailable ({e:#}){}; falling back to a classic BPF filter \
                         (ports {ports:?} either direction, UDP/TCP, IPv4/IPv6, fragments; \
                         at most 2 in-band VLAN tags and 1 IPv6 extension header; tunnel traffic \
                         kept whole, not looked into; no kernel counters); capture rings share \
                         packets by PACKET_FANOUT_HASH (outer addresses)",
                        filter_capability_hint()
                    );
                    classic()
                }
            },
        }
    }

    /// Attaches the filter to a socket (replacing whatever it had).
    pub fn attach(&self, socket: &PacketSocket) -> Result<()> {
        match self {
            Filter::Ebpf(f) => f
                .program()?
                .attach(socket.as_fd())
                .context("attaching the eBPF filter"),
            Filter::Classic(c) => {
                let prog = classic_program(&c.ports, &c.tunnels, c.wanted.load(Ordering::Acquire))?;
                cbpf::attach(socket, &prog).context("attaching the classic filter")
            }
        }
    }

    /// Makes the filter take the packets of interface `index` from now on
    /// (`IFINDEX_ABSENT`: none). The eBPF filter's map is written here
    /// (without capabilities that needs kernel 6.5 or later, see
    /// [`EbpfFilter::stats`]); the classic filter is swapped by each ring
    /// thread, which watches [`Filter::follower`]'s index: this waits (up
    /// to [`ATTACH_WAIT`]) until every one has, so that what the caller
    /// says next ("capturing again") is true. Until a ring thread attaches
    /// the new program its socket keeps the old one, which takes nothing
    /// from the new index: packets arriving in that window would be lost.
    pub fn set_interface(&mut self, index: u32) -> Result<()> {
        match self {
            Filter::Ebpf(f) => f
                .ifindex
                .set(0, index, 0)
                .context("writing the interface index into the eBPF filter's map"),
            Filter::Classic(c) => {
                c.wanted.store(index, Ordering::Release);
                let deadline = Instant::now() + ATTACH_WAIT;
                while c
                    .attached
                    .iter()
                    .any(|a| a.load(Ordering::Acquire) != index)
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(())
            }
        }
    }

    /// Tells the fanout program how many rings share the interface's
    /// packets (see `pdns_common::CONFIG_RINGS`): with one, it returns at
    /// once instead of walking every packet to pick a ring. Nothing to do
    /// for the classic filter, whose fanout is the kernel's.
    pub fn set_rings(&mut self, rings: usize) -> Result<()> {
        match self {
            Filter::Ebpf(f) => f
                .config
                .set(CONFIG_RINGS, u32::try_from(rings).unwrap_or(u32::MAX), 0)
                .context("writing the ring count into the eBPF filter's map"),
            Filter::Classic(_) => Ok(()),
        }
    }

    /// What a ring thread needs to follow the interface (classic filter
    /// only: the eBPF filter follows through its map).
    pub fn follower(&mut self) -> Option<ClassicFollow> {
        match self {
            Filter::Ebpf(_) => None,
            Filter::Classic(c) => {
                let attached = Arc::new(AtomicU32::new(NOT_ATTACHED));
                c.attached.push(Arc::clone(&attached));
                Some(ClassicFollow {
                    ports: c.ports.clone(),
                    tunnels: c.tunnels.clone(),
                    wanted: Arc::clone(&c.wanted),
                    attached,
                })
            }
        }
    }

    /// `"ebpf"` or `"classic"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Filter::Ebpf(_) => "ebpf",
            Filter::Classic(_) => "classic",
        }
    }

    /// How the capture sockets share packets: the fanout program with the
    /// eBPF filter, else the kernel's flow hash.
    pub fn fanout(&self) -> Fanout<'_> {
        match self {
            Filter::Ebpf(f) => f.fanout_program().map_or(Fanout::Hash, Fanout::Ebpf),
            Filter::Classic(_) => Fanout::Hash,
        }
    }

    /// The kernel filter's counters summed over CPUs (eBPF only).
    pub fn stats(&self) -> Option<Result<FilterStats>> {
        match self {
            Filter::Ebpf(f) => Some(f.stats()),
            Filter::Classic(_) => None,
        }
    }
}

/// The kernel filters' counters summed over interfaces (eBPF only: `None`
/// with the classic filter, or with no filter).
pub fn sum_stats(filters: &[Filter]) -> Option<Result<FilterStats>> {
    let mut total: Option<FilterStats> = None;
    for f in filters {
        match f.stats() {
            None => {}
            Some(Ok(s)) => total.get_or_insert_with(FilterStats::default).add(&s),
            Some(Err(e)) => return Some(Err(e)),
        }
    }
    total.map(Ok)
}

impl EbpfFilter {
    /// Loads the production program, or with `Some(n)` the explain program
    /// with a budget of `n` lines and the thread that drains them.
    fn load(
        ports: &[u16],
        tunnels: &Tunnels,
        explain: Option<u32>,
        index: u32,
    ) -> Result<EbpfFilter> {
        raise_memlock_limit();
        let mut loader = EbpfLoader::new();
        // Enough room for every line, should all of them come in one burst
        // (aya-log reserves a power of two per record: 512 bytes at most
        // for these lines); without explaining, the smallest ring (one
        // page), which nothing writes.
        loader.map_max_entries(
            LOG_MAP,
            explain.map_or(4096, |n| {
                (n as u64 * 512)
                    .next_power_of_two()
                    .clamp(128 << 10, 64 << 20) as u32
            }),
        );
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .context("loading the eBPF object")?;
        let program = if explain.is_some() {
            EXPLAIN_PROGRAM_NAME
        } else {
            PROGRAM_NAME
        };
        {
            let prog: &mut SocketFilter = ebpf
                .program_mut(program)
                .ok_or_else(|| anyhow!("no program {program} in the eBPF object"))?
                .try_into()
                .context("the eBPF program is not a socket filter")?;
            prog.load()
                .with_context(|| format!("verifying the eBPF program {program}"))?;
            if let Ok(info) = prog.info() {
                tracing::debug!(
                    "eBPF program {program} loaded: {} instructions verified, {} translated bytes",
                    info.verified_instruction_count().unwrap_or(0),
                    info.size_translated().unwrap_or(0)
                );
            }
        }
        {
            let map = ebpf
                .map_mut(PORTS_MAP)
                .ok_or_else(|| anyhow!("no map {PORTS_MAP} in the eBPF object"))?;
            let mut map: HashMap<_, u16, u8> = HashMap::try_from(map)?;
            for &port in ports {
                map.insert(port, 1, 0)
                    .with_context(|| format!("adding port {port} to the filter"))?;
            }
        }
        {
            let map = ebpf
                .map_mut(TUNNEL_PORTS_MAP)
                .ok_or_else(|| anyhow!("no map {TUNNEL_PORTS_MAP} in the eBPF object"))?;
            let mut map: HashMap<_, u16, u8> = HashMap::try_from(map)?;
            for (port, kind) in tunnels.udp_ports()? {
                map.insert(port, kind, 0)
                    .with_context(|| format!("adding tunnel port {port} to the filter"))?;
            }
        }
        let fanout = match load_fanout(&mut ebpf) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    "eBPF fanout program unavailable ({e:#}); capture rings share packets by \
                     PACKET_FANOUT_HASH (outer addresses: both directions of a tunnelled flow \
                     may reach different rings)"
                );
                false
            }
        };
        let explain = match explain {
            None => None,
            Some(n) => {
                let map = ebpf
                    .map_mut(EXPLAIN_MAP)
                    .ok_or_else(|| anyhow!("no map {EXPLAIN_MAP} in the eBPF object"))?;
                let mut budget: Array<_, i64> = Array::try_from(map)?;
                // The total first: the program reads it only after taking
                // from the remaining budget.
                budget.set(EXPLAIN_TOTAL, n as i64, 0)?;
                budget.set(EXPLAIN_REMAINING, n as i64, 0)?;
                let drain = ExplainDrain::start(&mut ebpf)?;
                tracing::info!(
                    "explaining the kernel filter's verdicts for the first {n} packets \
                     (program {EXPLAIN_PROGRAM_NAME})"
                );
                Some(drain)
            }
        };
        let stats = ebpf
            .take_map(STATS_MAP)
            .ok_or_else(|| anyhow!("no map {STATS_MAP} in the eBPF object"))?;
        let stats = PerCpuArray::try_from(stats)?;
        let ifindex = ebpf
            .take_map(IFINDEX_MAP)
            .ok_or_else(|| anyhow!("no map {IFINDEX_MAP} in the eBPF object"))?;
        let mut ifindex: Array<MapData, u32> = Array::try_from(ifindex)?;
        ifindex
            .set(0, index, 0)
            .context("writing the interface index into the eBPF filter's map")?;
        let config = ebpf
            .take_map(CONFIG_MAP)
            .ok_or_else(|| anyhow!("no map {CONFIG_MAP} in the eBPF object"))?;
        let mut config: Array<MapData, u32> = Array::try_from(config)?;
        let flags = if tunnels.gre { FLAG_GRE } else { 0 };
        config.set(CONFIG_FLAGS, flags, 0)?;
        Ok(EbpfFilter {
            ebpf,
            ifindex,
            config,
            program,
            fanout,
            stats,
            _explain: explain,
        })
    }

    fn program(&self) -> Result<&SocketFilter> {
        Ok(self
            .ebpf
            .program(self.program)
            .ok_or_else(|| anyhow!("no program {}", self.program))?
            .try_into()?)
    }

    /// The fanout program's descriptor, if it loaded.
    fn fanout_program(&self) -> Option<BorrowedFd<'_>> {
        if !self.fanout {
            return None;
        }
        let prog: &SocketFilter = self.ebpf.program(FANOUT_PROGRAM_NAME)?.try_into().ok()?;
        Some(prog.fd().ok()?.as_fd())
    }

    /// Sums the per-CPU counters. Works after privileges are dropped on
    /// kernels ≥ 6.5, where map operations on an open descriptor need no
    /// capability.
    pub fn stats(&self) -> Result<FilterStats> {
        let per_cpu = self.stats.get(&0, 0).context("reading the eBPF counters")?;
        let mut total = FilterStats::default();
        for words in per_cpu.iter() {
            total.add(&stats_from_words(words));
        }
        Ok(total)
    }
}

/// Loads (verifies) the fanout program of the object.
fn load_fanout(ebpf: &mut Ebpf) -> Result<()> {
    let prog: &mut SocketFilter = ebpf
        .program_mut(FANOUT_PROGRAM_NAME)
        .ok_or_else(|| anyhow!("no program {FANOUT_PROGRAM_NAME} in the eBPF object"))?
        .try_into()
        .context("the fanout program is not a socket filter")?;
    prog.load()
        .with_context(|| format!("verifying the eBPF program {FANOUT_PROGRAM_NAME}"))?;
    if let Ok(info) = prog.info() {
        tracing::debug!(
            "eBPF program {FANOUT_PROGRAM_NAME} loaded: {} instructions verified, {} translated bytes",
            info.verified_instruction_count().unwrap_or(0),
            info.size_translated().unwrap_or(0)
        );
    }
    Ok(())
}

/// The thread that moves the explain program's lines from aya-log's ring
/// buffer to the `log` crate (and so to stderr). aya-log 0.3's reader is
/// synchronous, so a plain thread blocking in `poll()` does it; it keeps
/// working after privileges are dropped (it only reads an open map). On
/// drop it drains what is left, so no line written before the capture
/// stopped is lost.
struct ExplainDrain {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ExplainDrain {
    fn start(ebpf: &mut Ebpf) -> Result<ExplainDrain> {
        let mut logger = aya_log::EbpfLogger::init(ebpf)
            .context("opening the eBPF log ring (aya-log needs kernel 5.8)")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (released, wait_released) = std::sync::mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("pdns-explain".into())
                .spawn(move || {
                    // Started before the privilege drop, which clears
                    // only the dropping thread's capabilities when the
                    // sensor is not root; reading the ring needs none.
                    super::privileges::release_thread_capabilities();
                    let _ = released.send(());
                    loop {
                        let mut pfd = libc::pollfd {
                            fd: logger.as_raw_fd(),
                            events: libc::POLLIN,
                            revents: 0,
                        };
                        // SAFETY: one valid pollfd for the duration of the
                        // call; the descriptor stays open while `logger`
                        // lives. Errors and timeouts just lead to a flush.
                        unsafe { libc::poll(&mut pfd, 1, 100) };
                        logger.flush();
                        if stop.load(Ordering::Acquire) {
                            // Whatever arrived since the flush above.
                            logger.flush();
                            break;
                        }
                    }
                })
                .context("starting the eBPF log thread")?
        };
        // The drop checks every thread: this one must be done first.
        let _ = wait_released.recv();
        Ok(ExplainDrain {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ExplainDrain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Why the filter may not load: with CAP_BPF but without CAP_PERFMON the
/// verifier also walks every speculative path (Spectre v1 hardening for
/// loaders it treats as unprivileged), and the tunnel-aware filter then
/// exceeds its budget of a million instructions ("Argument list too long").
fn filter_capability_hint() -> &'static str {
    if lacks_perfmon() {
        "; the eBPF filter needs CAP_PERFMON besides CAP_BPF, and this process lacks it \
         (the packaged unit grants both)"
    } else {
        ""
    }
}

/// Whether the process holds CAP_BPF but neither CAP_PERFMON nor
/// CAP_SYS_ADMIN.
fn lacks_perfmon() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let Ok(caps) = super::privileges::effective_capabilities() else {
        return false;
    };
    let has = |cap: u32| caps & (1 << cap) != 0;
    has(CAP_BPF) && !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN)
}

/// Why the explain program may not load where the production one does:
/// with CAP_BPF alone the verifier treats the loader as unprivileged for
/// Spectre purposes and refuses the explain program's stack use ("attempt
/// to corrupt spilled pointer on stack"); CAP_PERFMON (or CAP_SYS_ADMIN)
/// lifts that. The systemd unit grants CAP_BPF only.
fn explain_capability_hint() -> &'static str {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let Ok(caps) = super::privileges::effective_capabilities() else {
        return "";
    };
    let has = |cap: u32| caps & (1 << cap) != 0;
    if has(CAP_BPF) && !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        "; the explaining program needs CAP_PERFMON besides CAP_BPF, and this process \
         lacks it (under the systemd unit, add it to AmbientCapabilities= and \
         CapabilityBoundingSet= in a drop-in)"
    } else {
        ""
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; raising it is
/// harmless on newer ones.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!(
            "could not raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}
