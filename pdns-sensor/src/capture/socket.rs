//! The AF_PACKET socket behind a ring, and the socket options in the order
//! the kernel needs them:
//!
//! 1. `socket(AF_PACKET, SOCK_RAW, 0)`: protocol 0, so nothing is queued
//!    before we are ready;
//! 2. a drop-everything classic filter, so nothing is queued until the real
//!    filter replaces it;
//! 3. `PACKET_VERSION = TPACKET_V3`, `PACKET_IGNORE_OUTGOING` on loopback
//!    only (on a real interface the resolver's own outgoing answers are
//!    exactly what we want), `PACKET_RX_RING` and the mapping ([`Ring`]);
//! 4. `bind` with `ETH_P_ALL`, to the interface or, for `run`, to every
//!    device (ifindex 0; the filter then picks the interface's packets,
//!    see `super::filter`): delivery starts here;
//! 5. `PACKET_FANOUT` (it needs a bound, running socket), and for a
//!    `PACKET_FANOUT_EBPF` group its program (`PACKET_FANOUT_DATA`, once,
//!    by the socket that created the group);
//! 6. the real filter, once every socket of the interface is in the group.
//!
//! Steps 2 and 6 close a window a naive order leaves open: between `bind`
//! and joining the group a socket receives a copy of everything on the
//! interface, duplicating packets its group peers also receive.
//!
//! [`Ring`]: super::ring::Ring

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::filter::Fanout;

/// An AF_PACKET socket.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

/// Kernel ring statistics since the last read (the kernel resets them on
/// every read). `packets` includes `drops`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub packets: u64,
    pub drops: u64,
    pub freezes: u64,
}

impl PacketSocket {
    /// Opens an AF_PACKET raw socket that receives nothing yet.
    pub fn open() -> io::Result<PacketSocket> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PacketSocket { fd })
    }

    /// Sets a socket option from a plain value.
    pub fn setsockopt<T: Copy>(&self, level: i32, name: i32, value: &T) -> io::Result<()> {
        // SAFETY: `value` points to `size_of::<T>()` readable bytes for the
        // duration of the call; the kernel copies them.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// `PACKET_VERSION = TPACKET_V3`.
    pub fn set_tpacket_v3(&self) -> io::Result<()> {
        let v = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_VERSION, &v)
    }

    /// `PACKET_IGNORE_OUTGOING`: skip the copy of packets this host sends.
    pub fn ignore_outgoing(&self) -> io::Result<()> {
        self.setsockopt(
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &1 as &libc::c_int,
        )
    }

    /// Binds to one interface (or with 0 to every device of the network
    /// namespace), all protocols. Delivery starts here.
    pub fn bind(&self, ifindex: u32) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the given length.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Joins a fanout group in hash mode (see [`PacketSocket::join_fanout`]).
    pub fn join_fanout_hash(&self, group: Option<u16>, ignore_outgoing: bool) -> io::Result<u16> {
        self.join_fanout(group, ignore_outgoing, Fanout::Hash)
    }

    /// Joins a fanout group, with IPv4 defragmentation so that fragments
    /// are hashed (and filtered) as one datagram; the kernel applies it
    /// before any mode's demultiplexing, `PACKET_FANOUT_EBPF` included.
    /// With `None` the kernel creates a group with an id unique in the
    /// network namespace (`PACKET_FANOUT_FLAG_UNIQUEID`), so another process
    /// can never join ours by accident; the id is returned for the other
    /// sockets. In [`Fanout::Ebpf`] mode the socket that creates the group
    /// gives it its program; until then the group sends everything to its
    /// first socket (which drops everything during setup).
    ///
    /// `ignore_outgoing` must be repeated here for loopback: once a socket
    /// is in a group, the kernel consults the group's flag, not the
    /// socket's `PACKET_IGNORE_OUTGOING`.
    pub fn join_fanout(
        &self,
        group: Option<u16>,
        ignore_outgoing: bool,
        fanout: Fanout<'_>,
    ) -> io::Result<u16> {
        self.join_fanout_with(group, ignore_outgoing, true, fanout)
    }

    /// [`PacketSocket::join_fanout`], with the kernel's IPv4
    /// defragmentation only if `defrag`. It must be off for all but one
    /// group of sockets bound to every device: the kernel keeps one
    /// reassembly queue per datagram for all fanout groups of the network
    /// namespace, so of two defragmenting groups that see the same
    /// fragments, the first to take each fragment gets the datagram and
    /// the other nothing (see `super` on following an interface).
    pub fn join_fanout_with(
        &self,
        group: Option<u16>,
        ignore_outgoing: bool,
        defrag: bool,
        fanout: Fanout<'_>,
    ) -> io::Result<u16> {
        let kind = match fanout {
            Fanout::Hash => libc::PACKET_FANOUT_HASH,
            Fanout::Ebpf(_) => libc::PACKET_FANOUT_EBPF,
        };
        let mut mode = kind;
        if defrag {
            mode |= libc::PACKET_FANOUT_FLAG_DEFRAG;
        }
        if ignore_outgoing {
            mode |= libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        }
        if group.is_none() {
            mode |= libc::PACKET_FANOUT_FLAG_UNIQUEID;
        }
        let arg: libc::c_int = (group.unwrap_or(0) as u32 | (mode << 16)) as libc::c_int;
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)?;
        if let Some(id) = group {
            return Ok(id);
        }
        if let Fanout::Ebpf(prog) = fanout {
            let fd: u32 = prog.as_raw_fd() as u32;
            self.setsockopt(libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &fd)?;
        }
        let mut value: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` has room for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((value as u32 & 0xffff) as u16)
    }

    /// Reads and clears the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut value: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` has room for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
    }

    /// Reads and resets the kernel's ring statistics.
    pub fn take_stats(&self) -> io::Result<KernelStats> {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` has room for `len` bytes; the kernel writes at most
        // that and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(KernelStats {
            packets: st.tp_packets as u64,
            drops: st.tp_drops as u64,
            freezes: st.tp_freeze_q_cnt as u64,
        })
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
