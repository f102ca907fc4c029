//! Live capture: AF_PACKET TPACKET_V3 rings behind an eBPF socket filter.
//!
//! Why this shape (the figures are from a 2-core VM, tcpreplay sending over
//! a veth pair; the README's benchmark section has the current ones):
//!
//! * **Filter in the kernel.** On a resolver host most packets are not DNS.
//!   The `pdns-ebpf` socket filter ([`filter`]) drops them before the kernel
//!   copies them into a ring, so they cost neither ring space nor decoder
//!   time. If the eBPF object cannot be loaded (old kernel, no CAP_BPF) an
//!   equivalent classic BPF program (`cbpf`) is attached instead, never
//!   "capture everything". With 90 % non-DNS traffic, only the DNS tenth
//!   of the frames reached the ring.
//! * **One ring per decoder thread.** Each thread owns one AF_PACKET socket
//!   with a TPACKET_V3 receive ring ([`ring`]) and feeds one
//!   [`FrameSink`](thread::FrameSink) — in `run`, a pipeline
//!   [`Worker`](crate::pipeline::Worker). The sockets of an interface form a
//!   fanout group ([`socket`]) whose hash is symmetric, so a query, its
//!   response and every segment of a TCP stream reach the same thread, and
//!   `PACKET_FANOUT_FLAG_DEFRAG` reassembles IPv4 fragments before the hash
//!   (and the filter) sees them. With the eBPF filter the group is
//!   `PACKET_FANOUT_EBPF`, running the object's fanout program: a hash of
//!   the innermost IP addresses, so both directions of a flow inside a
//!   tunnel meet even when a mirror sends them from different outer
//!   addresses or ports. With the classic filter, `PACKET_FANOUT_HASH` (the
//!   kernel's flow hash of the outer packet).
//! * **Zero copy.** Frames are decoded straight out of the mapped blocks. A
//!   block is handed back to the kernel only when every frame borrowed from
//!   it has gone through the worker; the borrow checker enforces this (a
//!   frame borrows its [`ring::Block`], which returns itself on drop).
//!   Reading 3 million frames cost the reader under half a CPU second; at
//!   the 300–360 k packets/s one sender reached, the limit was the sending
//!   core, not the reader.
//! * **Plain threads for data, tokio for control.** Ring threads block in
//!   `poll()`; the control plane (signals, status line, timers) runs on a
//!   small tokio runtime in `cli::run`.
//! * **Following an interface: sockets bound to every device.** An
//!   interface that is deleted and created again under its name (bond or
//!   VLAN reconfiguration, hot-plug, a container's veth) gets a new index.
//!   A socket bound to the old index is unhooked when the device goes
//!   (and `poll` reports "Network is down" forever), and `run` cannot open
//!   a new one: it has dropped every capability after setup, and
//!   `socket(AF_PACKET)` needs CAP_NET_RAW; nor can it bind the old socket
//!   again, since the kernel refuses `bind` on a socket in a fanout group.
//!   So `run`'s sockets ([`open_following_ring`]) are bound to ifindex 0,
//!   every device of the network namespace, and the kernel filter picks
//!   the interface: the eBPF filter's first check is `skb->ifindex`
//!   against a one-entry map (`pdns_common::IFINDEX_MAP`, 0 while the
//!   interface is absent), the classic filter's an `SKF_AD_IFINDEX` load.
//!   Since one loaded program cannot know which socket it runs for, each
//!   interface gets its own filter instance (and fanout program). `run`'s
//!   watcher looks the names up once a second and points each filter at
//!   the interface's current index: the eBPF map is written from the
//!   control plane, the classic program is re-attached by each ring thread
//!   to its own socket (`SO_ATTACH_FILTER` needs no capability), and the
//!   watcher waits for them (half a second at most) before it says the
//!   interface is captured again: until a thread attaches the new program,
//!   its socket takes nothing from the new index. The
//!   costs: every packet of the network namespace passes each interface
//!   group's fanout program (which stops at the index check) and filter,
//!   and is counted there (`rejected_interface`) when it is another
//!   device's. IPv4 reassembly (`PACKET_FANOUT_FLAG_DEFRAG`) is asked for
//!   by the first interface's group only, and it reassembles the IPv4
//!   fragments of every device: the kernel keeps one reassembly queue per
//!   datagram for all the fanout groups of a network namespace, so of two
//!   defragmenting groups that both see a datagram's fragments, one gets
//!   the datagram and the other nothing (with every group defragmenting,
//!   the fragments sent through the first interface were lost). The other
//!   interfaces' groups receive IPv4 fragments as they are, like IPv6's:
//!   the filter keeps the non-first ones, the fanout hashes all of a
//!   datagram's fragments alike, and the decoder reassembles them. The
//!   same sharing means that another program in the same network
//!   namespace whose defragmenting fanout group is bound to another
//!   device (Suricata's or Zeek's AF_PACKET capture with defrag, a second
//!   sensor) can lose fragmented datagrams to the sensor's group, which
//!   runs first because it is hooked on every device. Writing the eBPF map
//!   without capabilities needs Linux 6.5 or later (map operations on an
//!   open descriptor); on an older kernel the sensor says once that the
//!   interface cannot be followed without a restart, and goes on
//!   capturing as it was. The benchmark's ring reader still binds to one
//!   device ([`open_ring`]), with a filter that takes any device's packets.
//!
//! The modules are one job each: [`iface`] (names, indices, the
//! default-route interface), [`socket`] (the socket options and their
//! order), [`ring`] (the mapped ring and its blocks), [`filter`] (loading
//! and attaching the eBPF program, its counters), `cbpf` (the classic
//! fallback), [`stats`] (kernel ring statistics and frames read, per
//! ring; `run`'s control loop publishes them), [`thread`] (a ring thread's
//! loop, its drain protocol and the [`FrameSink`](thread::FrameSink) it
//! feeds) and `privileges` (dropping root). [`open_ring`] puts
//! [`socket`] and [`ring`] together in the right order; it and the ring
//! thread are public so that other consumers of the same rings (the
//! benchmark's bare ring reader) open and drain them exactly as `run` does.

mod cbpf;
pub mod filter;
pub mod iface;
pub(crate) mod privileges;
pub mod ring;
pub mod socket;
pub mod stats;
pub mod thread;

use anyhow::{Context, Result};

/// Opens one TPACKET_V3 ring on `iface` and joins it to the interface's
/// fanout group, in the order [`socket`] describes (steps 1 to 5), in the
/// mode `fanout` says ([`filter::Filter::fanout`]: the eBPF fanout program
/// with the eBPF filter, `PACKET_FANOUT_HASH` otherwise). `group` is `None`
/// for the first ring of an interface (the kernel then picks a unique group
/// id) and holds that id afterwards; pass the same `group` and `fanout` for
/// the interface's other rings.
///
/// The ring receives nothing yet: its socket carries a drop-everything
/// filter until the caller attaches the real one ([`filter::Filter::attach`]),
/// which it should do once every ring of the group is open.
pub fn open_ring(
    iface: &iface::Interface,
    config: &RingConfig,
    group: &mut Option<u16>,
    fanout: filter::Fanout<'_>,
) -> Result<ring::Ring> {
    open_bound_ring(iface.index, iface.loopback, true, config, group, fanout)
}

/// Like [`open_ring`], but bound to every device of the network namespace
/// (ifindex 0), so that the ring keeps working when its interface is
/// deleted and created again (see "Following an interface" in the module
/// docs). Its filter must take only the interface's packets
/// ([`filter::Filter::load_for_interface`]). `loopback`: the interface
/// is `lo` (the group then ignores outgoing copies, which on any other
/// device the filter drops anyway). `defrag`: the group asks the kernel to
/// reassemble IPv4 (`PACKET_FANOUT_FLAG_DEFRAG`); at most one group of a
/// process may (see the module docs).
pub fn open_following_ring(
    loopback: bool,
    defrag: bool,
    config: &RingConfig,
    group: &mut Option<u16>,
    fanout: filter::Fanout<'_>,
) -> Result<ring::Ring> {
    open_bound_ring(0, loopback, defrag, config, group, fanout)
}

fn open_bound_ring(
    ifindex: u32,
    loopback: bool,
    defrag: bool,
    config: &RingConfig,
    group: &mut Option<u16>,
    fanout: filter::Fanout<'_>,
) -> Result<ring::Ring> {
    let socket =
        socket::PacketSocket::open().context("opening an AF_PACKET socket (needs CAP_NET_RAW)")?;
    cbpf::attach(&socket, &cbpf::drop_all()).context("attaching the setup filter")?;
    if loopback {
        socket
            .ignore_outgoing()
            .context("setting PACKET_IGNORE_OUTGOING")?;
    }
    let ring = ring::Ring::new(socket, config).context("setting up the TPACKET_V3 ring")?;
    ring.socket().bind(ifindex).context("binding")?;
    *group = Some(
        ring.socket()
            .join_fanout_with(*group, loopback, defrag, fanout)
            .context("joining the fanout group")?,
    );
    Ok(ring)
}

/// Geometry of one TPACKET_V3 receive ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes per block; a power of two, a multiple of the page size.
    pub block_size: u32,
    /// Blocks per ring.
    pub block_count: u32,
    /// Milliseconds after which the kernel hands over a block that is not
    /// full: the longest a lone packet waits in the ring.
    pub retire_timeout_ms: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            block_size: 1 << 20,
            block_count: 64,
            retire_timeout_ms: 10,
        }
    }
}

impl RingConfig {
    /// Largest frame slot the kernel is told about (`tp_frame_size`).
    /// TPACKET_V3 packs frames of any size into a block, this only has to
    /// divide the block size.
    pub const FRAME_SIZE: u32 = 2048;

    /// Checks the geometry the kernel will insist on, with readable errors.
    pub fn validate(&self) -> Result<(), String> {
        let page = page_size();
        if !self.block_size.is_power_of_two() || (self.block_size as usize) < page {
            return Err(format!(
                "--ring-block-size must be a power of two of at least the page size ({page}), got {}",
                self.block_size
            ));
        }
        if self.block_size < Self::FRAME_SIZE {
            return Err(format!(
                "--ring-block-size must be at least {} bytes",
                Self::FRAME_SIZE
            ));
        }
        if self.block_count == 0 {
            return Err("--ring-blocks must be at least 1".into());
        }
        if (self.block_size as u64) * (self.block_count as u64) > (1 << 34) {
            return Err("ring larger than 16 GiB".into());
        }
        Ok(())
    }

    /// Bytes mapped per ring.
    pub fn bytes(&self) -> usize {
        self.block_size as usize * self.block_count as usize
    }
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n <= 0 { 4096 } else { n as usize }
}
