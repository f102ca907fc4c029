//! A TPACKET_V3 receive ring: the kernel writes frames into blocks of a
//! shared mapping, userspace reads them in place.
//!
//! Ownership of a block is a status word at its start: `TP_STATUS_KERNEL`
//! (the kernel may write it) or `TP_STATUS_USER` (full or retired, ours to
//! read). Blocks are used in order, so the reader only ever looks at the
//! next one. [`Ring::next_block`] waits (with `poll`) until that block is
//! ours and returns a [`Block`] guard that borrows the ring mutably: one
//! block at a time. Frames borrow the guard, so none can outlive it, and
//! dropping the guard hands the block back with a release store — after
//! every frame borrowed from it has been decoded.
//!
//! A frame's outer VLAN tag, stripped by the kernel on receive, comes
//! alongside the frame in [`RingFrame::vlan`]; the bytes themselves are
//! already a valid Ethernet frame (an inner QinQ tag stays in band), so
//! untagged and tagged frames alike are decoded without a copy.
//! [`RingFrame::with_outer_tag`] rebuilds the wire frame when it is needed.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::RingConfig;
use super::socket::PacketSocket;
use crate::vocab::packet::Timestamp;

/// An 802.1Q/802.1ad tag reported out of band by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// Tag protocol identifier: 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub tpid: u16,
    /// Priority, DEI and VLAN id.
    pub tci: u16,
}

impl VlanTag {
    pub fn id(&self) -> u16 {
        self.tci & 0x0fff
    }
}

/// One frame in a ring block.
#[derive(Clone, Copy, Debug)]
pub struct RingFrame<'a> {
    pub ts: Timestamp,
    /// The captured bytes (`tp_snaplen`), from the Ethernet header on.
    pub data: &'a [u8],
    /// The length on the wire (`tp_len`).
    pub wire_len: u32,
    /// The outer VLAN tag the kernel stripped, if any.
    pub vlan: Option<VlanTag>,
}

impl RingFrame<'_> {
    /// The frame as it was on the wire, with the stripped outer tag put back
    /// after the MAC addresses, in `buf`. Untagged frames are returned as is.
    pub fn with_outer_tag<'b>(&'b self, buf: &'b mut Vec<u8>) -> &'b [u8] {
        match self.vlan {
            Some(tag) if self.data.len() >= 12 => {
                buf.clear();
                buf.extend_from_slice(&self.data[..12]);
                buf.extend_from_slice(&tag.tpid.to_be_bytes());
                buf.extend_from_slice(&tag.tci.to_be_bytes());
                buf.extend_from_slice(&self.data[12..]);
                buf
            }
            _ => self.data,
        }
    }
}

/// A mapped TPACKET_V3 receive ring on a [`PacketSocket`].
pub struct Ring {
    socket: PacketSocket,
    map: NonNull<u8>,
    map_len: usize,
    block_size: usize,
    block_count: usize,
    /// The block to read next.
    next: usize,
    /// Frames whose headers pointed outside their block (never expected;
    /// counted rather than trusted).
    pub bad_frames: u64,
}

// SAFETY: the mapping is owned by the Ring alone (no aliases escape except
// through borrows of the Ring), so moving it to another thread is sound.
unsafe impl Send for Ring {}

impl Ring {
    /// Sets TPACKET_V3, requests the ring and maps it. The socket must not be
    /// bound yet (the kernel refuses a ring change on a running socket with
    /// pending frames, and binding first would queue frames in no ring).
    pub fn new(socket: PacketSocket, config: &RingConfig) -> io::Result<Ring> {
        socket.set_tpacket_v3()?;
        let frame_nr = config.block_size / RingConfig::FRAME_SIZE * config.block_count;
        let req = libc::tpacket_req3 {
            tp_block_size: config.block_size,
            tp_block_nr: config.block_count,
            tp_frame_size: RingConfig::FRAME_SIZE,
            tp_frame_nr: frame_nr,
            tp_retire_blk_tov: config.retire_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: libc::TP_FT_REQ_FILL_RXHASH,
        };
        socket.setsockopt(libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let map_len = config.bytes();
        // SAFETY: a fresh shared mapping of the ring the kernel just set up on
        // this socket; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                socket.as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Ring {
            socket,
            map: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?,
            map_len,
            block_size: config.block_size as usize,
            block_count: config.block_count as usize,
            next: 0,
            bad_frames: 0,
        })
    }

    pub fn socket(&self) -> &PacketSocket {
        &self.socket
    }

    /// The status word of block `i`, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.block_count);
        // SAFETY: block `i` starts inside the mapping at a page-aligned
        // offset; its first field, `tpacket_block_desc.hdr.bh1.block_status`
        // at offset 8, is a naturally aligned u32 that the kernel and we
        // only ever access as a whole word. The reference lives no longer
        // than `&self`, which keeps the mapping alive.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(i * self.block_size + 8)
                .cast::<AtomicU32>()
        }
    }

    fn ready(&self) -> bool {
        self.status(self.next).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// The next block once the kernel has handed it over, waiting at most
    /// `timeout`; `None` if it is still the kernel's after that.
    pub fn next_block(&mut self, timeout: Duration) -> io::Result<Option<Block<'_>>> {
        if !self.ready() {
            let mut pfd = libc::pollfd {
                fd: self.socket.as_fd().as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                return Err(e);
            }
            if pfd.revents & libc::POLLERR != 0 {
                // E.g. ENETDOWN when the interface goes down; reading the
                // error clears it (the socket keeps capturing once the
                // interface is back).
                if let Some(e) = self.socket.take_error()? {
                    return Err(e);
                }
            }
            if !self.ready() {
                return Ok(None);
            }
        }
        let index = self.next;
        self.next = (self.next + 1) % self.block_count;
        Ok(Some(Block {
            ring: self,
            index,
            bad: Cell::new(0),
        }))
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no borrow of it
        // can outlive `self`.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.map_len);
        }
    }
}

/// A block that belongs to userspace until the guard is dropped.
pub struct Block<'r> {
    ring: &'r mut Ring,
    index: usize,
    bad: Cell<u64>,
}

impl Block<'_> {
    fn bytes(&self) -> &[u8] {
        // SAFETY: the block lies inside the mapping; while its status is
        // TP_STATUS_USER (until this guard drops) the kernel does not write
        // it, so a shared slice over it is sound for the guard's lifetime.
        unsafe {
            std::slice::from_raw_parts(
                self.ring
                    .map
                    .as_ptr()
                    .add(self.index * self.ring.block_size),
                self.ring.block_size,
            )
        }
    }

    /// Frames in the block. Headers are bounds-checked against the block:
    /// a frame that would point outside it ends the walk and is counted in
    /// [`Ring::bad_frames`].
    pub fn frames(&self) -> Frames<'_> {
        let bytes = self.bytes();
        Frames {
            bytes,
            offset: u32_at(bytes, 16) as usize,
            left: u32_at(bytes, 12),
            bad: &self.bad,
        }
    }

    /// Number of frames in the block.
    pub fn len(&self) -> u32 {
        u32_at(self.bytes(), 12)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.ring.bad_frames += self.bad.get();
        // Every frame borrowed from the block is gone: hand it back. The
        // release store orders our reads of the block before the kernel's
        // next writes to it.
        self.ring
            .status(self.index)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes(b[off..off + 2].try_into().expect("2 bytes"))
}

/// Iterator over the frames of a [`Block`].
pub struct Frames<'b> {
    bytes: &'b [u8],
    offset: usize,
    left: u32,
    bad: &'b Cell<u64>,
}

/// `tpacket3_hdr` field offsets.
const H_NEXT: usize = 0;
const H_SEC: usize = 4;
const H_NSEC: usize = 8;
const H_SNAPLEN: usize = 12;
const H_LEN: usize = 16;
const H_STATUS: usize = 20;
const H_MAC: usize = 24;
const H_VLAN_TCI: usize = 32;
const H_VLAN_TPID: usize = 36;
const H_SIZE: usize = 48;

const _: () = {
    use std::mem::{offset_of, size_of};
    type H = libc::tpacket3_hdr;
    assert!(size_of::<H>() == H_SIZE);
    assert!(offset_of!(H, tp_next_offset) == H_NEXT);
    assert!(offset_of!(H, tp_sec) == H_SEC);
    assert!(offset_of!(H, tp_nsec) == H_NSEC);
    assert!(offset_of!(H, tp_snaplen) == H_SNAPLEN);
    assert!(offset_of!(H, tp_len) == H_LEN);
    assert!(offset_of!(H, tp_status) == H_STATUS);
    assert!(offset_of!(H, tp_mac) == H_MAC);
    assert!(offset_of!(H, hv1) + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci) == H_VLAN_TCI);
    assert!(
        offset_of!(H, hv1) + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid) == H_VLAN_TPID
    );
    // tpacket_block_desc: status, packet count and first offset.
    type B = libc::tpacket_hdr_v1;
    assert!(offset_of!(libc::tpacket_block_desc, hdr) == 8);
    assert!(offset_of!(B, block_status) == 0);
    assert!(offset_of!(B, num_pkts) == 4);
    assert!(offset_of!(B, offset_to_first_pkt) == 8);
};

impl<'b> Iterator for Frames<'b> {
    type Item = RingFrame<'b>;

    fn next(&mut self) -> Option<RingFrame<'b>> {
        if self.left == 0 {
            return None;
        }
        let b = self.bytes;
        let h = self.offset;
        if h.checked_add(H_SIZE).is_none_or(|end| end > b.len()) {
            self.bad.set(self.bad.get() + self.left as u64);
            self.left = 0;
            return None;
        }
        let snaplen = u32_at(b, h + H_SNAPLEN) as usize;
        let mac = u16_at(b, h + H_MAC) as usize;
        let start = h + mac;
        if start.checked_add(snaplen).is_none_or(|end| end > b.len()) {
            self.bad.set(self.bad.get() + self.left as u64);
            self.left = 0;
            return None;
        }
        let status = u32_at(b, h + H_STATUS);
        let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| VlanTag {
            tpid: if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                u16_at(b, h + H_VLAN_TPID)
            } else {
                0x8100
            },
            tci: u32_at(b, h + H_VLAN_TCI) as u16,
        });
        let frame = RingFrame {
            ts: Timestamp {
                secs: u32_at(b, h + H_SEC) as u64,
                nanos: u32_at(b, h + H_NSEC),
            },
            data: &b[start..start + snaplen],
            wire_len: u32_at(b, h + H_LEN),
            vlan,
        };
        self.left -= 1;
        let next = u32_at(b, h + H_NEXT) as usize;
        if self.left > 0 && next == 0 {
            self.bad.set(self.bad.get() + self.left as u64);
            self.left = 0;
        }
        self.offset = h + next;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_tag_is_reinserted_after_the_macs() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45, 0];
        let frame = RingFrame {
            ts: Timestamp::default(),
            data: &data,
            wire_len: 16,
            vlan: Some(VlanTag {
                tpid: 0x88a8,
                tci: 0x00c8,
            }),
        };
        let mut buf = Vec::new();
        let wire = frame.with_outer_tag(&mut buf);
        assert_eq!(&wire[..12], &data[..12]);
        assert_eq!(&wire[12..16], &[0x88, 0xa8, 0x00, 0xc8]);
        assert_eq!(&wire[16..], &data[12..]);
        assert_eq!(frame.vlan.unwrap().id(), 200);
        let untagged = RingFrame {
            vlan: None,
            ..frame
        };
        assert_eq!(untagged.with_outer_tag(&mut buf), &data);
    }
}
