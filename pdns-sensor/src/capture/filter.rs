//! The kernel filter of the capture sockets: the `pdns-ebpf` socket filter,
//! or the classic BPF fallback when eBPF cannot be loaded.
//!
//! The eBPF object is built by `build.rs` and embedded in the binary, so the
//! sensor is one file. It is loaded once; the same program is attached to
//! every socket (fanout demultiplexes *before* the per-socket filter, so
//! each member needs it). Its port set is a map filled from `--port`, and
//! its verdicts are counted per CPU in another map, summed here.
//!
//! Loading can fail on old kernels or without CAP_BPF/CAP_SYS_ADMIN. The
//! sensor then attaches the equivalent classic program from [`super::cbpf`]
//! and says so in one log line: it never silently captures everything.

use std::os::fd::AsFd;

use anyhow::{Context, Result, anyhow, bail};
use aya::Ebpf;
use aya::maps::{HashMap, MapData, PerCpuArray};
use aya::programs::SocketFilter;
use pdns_common::{FilterStats, MAX_PORTS, PORTS_MAP, PROGRAM_NAME, STATS_MAP};

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

/// The filter the capture sockets share.
pub enum Filter {
    Ebpf(EbpfFilter),
    Classic(Vec<libc::sock_filter>),
}

/// The loaded eBPF program and its counters map.
pub struct EbpfFilter {
    ebpf: Ebpf,
    stats: PerCpuArray<MapData, [u64; STATS_WORDS]>,
}

const STATS_WORDS: usize = 6;
const _: () = assert!(std::mem::size_of::<FilterStats>() == STATS_WORDS * 8);

fn stats_from_words(w: &[u64; STATS_WORDS]) -> FilterStats {
    // Field order of the repr(C) struct in pdns-common.
    FilterStats {
        accepted: w[0],
        accepted_fragments: w[1],
        rejected_port: w[2],
        rejected_protocol: w[3],
        rejected_not_ip: w[4],
        rejected_malformed: w[5],
    }
}

/// The eBPF object built by `build.rs`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pdns-ebpf"));

impl Filter {
    /// Loads the filter for `ports` as `choice` asks.
    pub fn load(choice: FilterChoice, ports: &[u16]) -> Result<Filter> {
        if ports.is_empty() || ports.len() > MAX_PORTS {
            bail!(
                "between 1 and {MAX_PORTS} ports can be watched, got {}",
                ports.len()
            );
        }
        let classic = || -> Result<Filter> {
            Ok(Filter::Classic(cbpf::dns_filter(ports).map_err(|e| {
                anyhow!("building the classic filter: {e}")
            })?))
        };
        match choice {
            FilterChoice::Classic => classic(),
            FilterChoice::Ebpf => Ok(Filter::Ebpf(EbpfFilter::load(ports)?)),
            FilterChoice::Auto => match EbpfFilter::load(ports) {
                Ok(f) => Ok(Filter::Ebpf(f)),
                Err(e) => {
                    tracing::warn!(
                        "eBPF filter unavailable ({e:#}); falling back to a classic BPF filter \
                         (ports {ports:?} either direction, UDP/TCP, IPv4/IPv6, fragments; \
                         at most 2 in-band VLAN tags and 1 IPv6 extension header; no kernel counters)"
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
            Filter::Classic(prog) => {
                cbpf::attach(socket, prog).context("attaching the classic filter")
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

    /// The kernel filter's counters summed over CPUs (eBPF only).
    pub fn stats(&self) -> Option<Result<FilterStats>> {
        match self {
            Filter::Ebpf(f) => Some(f.stats()),
            Filter::Classic(_) => None,
        }
    }
}

impl EbpfFilter {
    fn load(ports: &[u16]) -> Result<EbpfFilter> {
        raise_memlock_limit();
        let mut ebpf = Ebpf::load(EBPF_OBJECT).context("loading the eBPF object")?;
        {
            let program: &mut SocketFilter = ebpf
                .program_mut(PROGRAM_NAME)
                .ok_or_else(|| anyhow!("no program {PROGRAM_NAME} in the eBPF object"))?
                .try_into()
                .context("the eBPF program is not a socket filter")?;
            program.load().context("verifying the eBPF program")?;
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
        let stats = ebpf
            .take_map(STATS_MAP)
            .ok_or_else(|| anyhow!("no map {STATS_MAP} in the eBPF object"))?;
        let stats = PerCpuArray::try_from(stats)?;
        Ok(EbpfFilter { ebpf, stats })
    }

    fn program(&self) -> Result<&SocketFilter> {
        Ok(self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or_else(|| anyhow!("no program {PROGRAM_NAME}"))?
            .try_into()?)
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
