//! IP fragment reassembly, bounded in memory and time.
//!
//! Large DNS answers (DNSSEC, big TXT sets, ANY) sent over UDP often exceed
//! the path MTU and arrive as IP fragments. Only the first fragment carries
//! the UDP header, so without reassembly such an answer is lost. A passive
//! sensor, though, sees everybody's fragments, including floods meant to
//! exhaust reassembly buffers, so everything held here is bounded:
//!
//! - at most `max_datagrams` incomplete datagrams; when the table is full the
//!   one least recently added to is evicted ([`DropReason::FragmentOverflow`]);
//! - each at most 65 535 payload bytes plus a 1 KiB bitmap of received
//!   8-byte blocks; a fragment that would go beyond that is refused;
//! - all together at most `max_bytes` of memory (their buffers' allocated
//!   capacity plus a fixed cost per entry, see [`Partial::footprint`]):
//!   one fragment at offset 65 000 makes a datagram 64 KiB long, so the
//!   entry cap alone would let a flood of such trains hold 1 024 × 65 KiB.
//!   Past the budget the datagrams least recently added to are evicted
//!   ([`DropReason::FragmentOverflow`]). Every eviction is also counted in
//!   [`DecodeStats::evictions`] by the bound that caused it. (Up to 16
//!   buffers of finished datagrams, 16 KiB at most each, are kept for
//!   reuse besides.)
//! - each for at most `timeout_secs` of *capture* time, counted from its
//!   first fragment ([`DropReason::FragmentTimeout`]).
//!
//! Why "least recently added to" rather than "oldest": a legitimate
//! answer's fragments follow each other closely, while a flood's trains
//! stop after a fragment or two. Ordered by their first fragment, an
//! answer cut into eight fragments, with a flood of a hundred trains
//! between each two of them, was evicted before it completed; ordered by
//! their latest fragment, it stays at the young end for as long as its
//! fragments keep coming. (The timeout keeps its own queue, in the order
//! datagrams were started.)
//!
//! Fragments may come in any order, and duplicates and overlaps are accepted
//! as long as the overlapping bytes agree. An overlap that *changes* data is
//! the classic trick to make a monitor see something other than the host
//! did, so such a datagram is discarded ([`DropReason::FragmentInvalid`])
//! rather than guessed at; so is one whose fragments contradict each other
//! about where it ends.
//!
//! Holes are tracked with one bit per 8-byte block: every fragment but the
//! last starts and ends on a multiple of 8, so a block is either received
//! whole or not at all (only the tail block of the last fragment may be
//! short, and nothing may lie beyond it).

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt};

use super::{Bound, DecodeStats, DropReason, StateTable};

/// Largest reassembled payload: the IP length fields are 16 bits.
const MAX_DATAGRAM: usize = 65_535;
/// Fragment offsets and non-final lengths are multiples of this.
const BLOCK: usize = 8;
/// Finished-datagram buffers kept for reuse.
const FREE_BUFFERS: usize = 16;
/// Largest buffer kept for reuse: a fragmented DNS answer is rarely
/// longer, and a reused buffer's whole capacity counts against the byte
/// budget of the datagram that gets it.
const FREE_BUFFER_SIZE: usize = 16 << 10;
/// What an incomplete datagram costs besides its buffers: the hash table
/// slot (with up to half again of spare capacity), its entries in the age
/// and recency queues (up to two in each before it is compacted) and
/// allocator overhead.
const PARTIAL_OVERHEAD: usize = (size_of::<FragKey>() + size_of::<Partial>() + 1) * 3 / 2
    + 4 * size_of::<(FragKey, u64)>()
    + 64;
/// The most one datagram can hold: 64 KiB of data and its bitmap.
const LARGEST_PARTIAL: usize = PARTIAL_OVERHEAD + MAX_DATAGRAM + MAX_DATAGRAM.div_ceil(BLOCK * 8);

/// What identifies the fragments of one datagram (RFC 791, RFC 8200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum FragKey {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        id: u16,
        proto: u8,
        /// The tunnels the fragments came through (0: none): the same
        /// addresses and id in two tunnels are two datagrams.
        tunnel: u64,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        id: u32,
        tunnel: u64,
    },
}

/// A reassembled datagram.
#[derive(Debug)]
pub(super) struct Datagram {
    /// Upper-layer protocol (from the first fragment).
    pub proto: u8,
    /// Transport header and data of the whole datagram.
    pub payload: Vec<u8>,
}

/// One datagram being rebuilt.
struct Partial {
    /// Serial number given when the datagram was started: matches the
    /// entry with its place in the age queue.
    id: u64,
    /// Serial number given anew with every fragment added: matches the
    /// entry with its current place in the recency queue.
    serial: u64,
    /// Capture time of the first fragment seen.
    first_seen: u64,
    proto: u8,
    /// Bytes received so far; as long as the highest fragment end seen,
    /// holes are zero.
    data: Vec<u8>,
    /// One bit per 8-byte block of `data` that has been received.
    blocks: Vec<u64>,
    /// Number of bits set in `blocks`.
    received: usize,
    /// Length of the datagram, known once the last fragment has arrived.
    end: Option<usize>,
}

/// A fragment contradicts what was received before.
struct Invalid;

impl Partial {
    fn new(id: u64, now: u64, proto: u8, data: Vec<u8>) -> Self {
        Partial {
            id,
            serial: u64::MAX,
            first_seen: now,
            proto,
            data,
            blocks: Vec::new(),
            received: 0,
            end: None,
        }
    }

    /// The bytes of memory this datagram holds, as the byte budget counts
    /// them: its buffers' allocated capacity plus [`PARTIAL_OVERHEAD`].
    fn footprint(&self) -> usize {
        PARTIAL_OVERHEAD + self.data.capacity() + self.blocks.capacity() * size_of::<u64>()
    }

    /// Adds one fragment, already checked to be aligned and to end within
    /// 64 KiB.
    fn add(&mut self, offset: usize, more: bool, payload: &[u8]) -> Result<(), Invalid> {
        let end = offset + payload.len();
        if let Some(known) = self.end {
            if end > known || (!more && end != known) {
                return Err(Invalid);
            }
        } else if !more {
            if self.data.len() > end {
                return Err(Invalid);
            }
            self.end = Some(end);
        }
        if self.data.len() < end {
            grow(&mut self.data, end);
        }
        let last_block = end.div_ceil(BLOCK);
        let words = last_block.div_ceil(64);
        if self.blocks.len() < words {
            self.blocks.resize(words, 0);
        }

        // Walk runs of blocks that are all received or all missing: compare
        // the former, copy the latter. Usually there is one run.
        let mut block = offset / BLOCK;
        while block < last_block {
            let have = self.has(block);
            let run_end = self.run_end(block, last_block, have);
            let (from, to) = (block * BLOCK, (run_end * BLOCK).min(end));
            let incoming = &payload[from - offset..to - offset];
            if have {
                if self.data[from..to] != *incoming {
                    return Err(Invalid);
                }
            } else {
                self.data[from..to].copy_from_slice(incoming);
                self.mark(block, run_end);
            }
            block = run_end;
        }
        Ok(())
    }

    #[inline]
    fn has(&self, block: usize) -> bool {
        self.blocks[block / 64] & (1 << (block % 64)) != 0
    }

    /// First block at or after `from` (and before `limit`) whose state is
    /// not `have`, else `limit`.
    fn run_end(&self, from: usize, limit: usize, have: bool) -> usize {
        let mut block = from;
        while block < limit {
            let word = self.blocks[block / 64];
            let differs = if have { !word } else { word } >> (block % 64);
            if differs != 0 {
                return (block + differs.trailing_zeros() as usize).min(limit);
            }
            block = (block / 64 + 1) * 64;
        }
        limit
    }

    /// Marks blocks `from..to` (all missing so far) as received.
    fn mark(&mut self, from: usize, to: usize) {
        let mut block = from;
        while block < to {
            let bits = (to - block).min(64 - block % 64);
            self.blocks[block / 64] |= (u64::MAX >> (64 - bits)) << (block % 64);
            block += bits;
        }
        self.received += to - from;
    }

    fn is_complete(&self) -> bool {
        self.end
            .is_some_and(|end| self.received == end.div_ceil(BLOCK))
    }
}

/// Grows `buf` to `len` zero bytes, never reserving beyond 64 KiB.
fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.capacity() < len {
        let want = (buf.capacity() * 2).clamp(len, MAX_DATAGRAM.max(len));
        buf.reserve_exact(want - buf.len());
    }
    buf.resize(len, 0);
}

/// Rebuilds fragmented IPv4 and IPv6 datagrams.
pub(super) struct Defragmenter {
    table: HashMap<FragKey, Partial>,
    /// Keys in the order their datagrams were started, with their id;
    /// entries of datagrams already gone are skipped lazily. The timeout
    /// reads it.
    age: VecDeque<(FragKey, u64)>,
    /// Keys from the least to the most recently added to, each with the
    /// serial its datagram was given then (every fragment gives a new
    /// one); stale entries are skipped lazily. Eviction reads it.
    /// entries of datagrams already gone are skipped lazily.
    recent: VecDeque<(FragKey, u64)>,
    next_serial: u64,
    /// Sum of the [`Partial::footprint`]s in `table`.
    bytes: usize,
    max_datagrams: usize,
    max_bytes: usize,
    timeout_secs: u64,
    free: Vec<Vec<u8>>,
}

impl Defragmenter {
    /// A table of at most `max_datagrams` incomplete datagrams (at least
    /// one) holding at most `max_bytes` together (at least what one
    /// datagram may hold), each kept at most `timeout_secs` of capture
    /// time.
    pub(super) fn new(max_datagrams: usize, max_bytes: usize, timeout_secs: u64) -> Self {
        Defragmenter {
            table: HashMap::new(),
            age: VecDeque::new(),
            recent: VecDeque::new(),
            next_serial: 0,
            bytes: 0,
            max_datagrams: max_datagrams.max(1),
            max_bytes: max_bytes.max(LARGEST_PARTIAL),
            timeout_secs,
            free: Vec::new(),
        }
    }

    /// Bytes of memory the incomplete datagrams hold.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds one fragment; returns the whole datagram when this fragment
    /// completes it.
    ///
    /// `offset` is in bytes (already multiplied by 8), `payload` is this
    /// fragment's bytes after the IP header (after the fragment extension
    /// header for IPv6), `proto` the upper-layer protocol number.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &mut self,
        now_secs: u64,
        key: FragKey,
        proto: u8,
        offset: usize,
        more: bool,
        payload: &[u8],
        stats: &mut DecodeStats,
    ) -> Option<Datagram> {
        if let Some(partial) = self.table.get(&key)
            && now_secs.saturating_sub(partial.first_seen) > self.timeout_secs
        {
            self.discard(&key, DropReason::FragmentTimeout, stats);
        }

        let fits = offset
            .checked_add(payload.len())
            .is_some_and(|end| end <= MAX_DATAGRAM);
        let aligned =
            offset.is_multiple_of(BLOCK) && (!more || payload.len().is_multiple_of(BLOCK));
        if !fits || !aligned {
            if self.table.contains_key(&key) {
                self.discard(&key, DropReason::FragmentInvalid, stats);
            } else {
                stats.drop(DropReason::FragmentInvalid);
            }
            return None;
        }

        if !self.table.contains_key(&key) {
            if offset == 0 && !more {
                // A whole datagram in one fragment (IPv6 atomic fragment).
                let mut buf = self.buffer();
                buf.extend_from_slice(payload);
                return Some(Datagram {
                    proto,
                    payload: buf,
                });
            }
            if self.table.len() >= self.max_datagrams {
                self.evict_oldest(Bound::Entries, stats);
            }
            let id = self.next_serial;
            self.next_serial += 1;
            let data = self.buffer();
            let partial = Partial::new(id, now_secs, proto, data);
            self.bytes += partial.footprint();
            self.table.insert(key, partial);
            self.age.push_back((key, id));
            if self.age.len() > 2 * self.table.len() + 64 {
                let table = &self.table;
                self.age
                    .retain(|(k, id)| table.get(k).is_some_and(|p| p.id == *id));
            }
        }

        let partial = self.table.get_mut(&key)?;
        if offset == 0 {
            partial.proto = proto;
        }
        let before = partial.footprint();
        let added = partial.add(offset, more, payload);
        self.bytes = self.bytes + partial.footprint() - before;
        if added.is_err() {
            self.discard(&key, DropReason::FragmentInvalid, stats);
            return None;
        }
        if !partial.is_complete() {
            // Queued again, as the most recently added to: the entry with
            // the old serial is stale from now on.
            partial.serial = self.next_serial;
            self.next_serial += 1;
            self.recent.push_back((key, partial.serial));
            if self.recent.len() > 2 * self.table.len() + 64 {
                let table = &self.table;
                self.recent
                    .retain(|(k, s)| table.get(k).is_some_and(|p| p.serial == *s));
            }
            while self.bytes > self.max_bytes && !self.table.is_empty() {
                self.evict_oldest(Bound::Bytes, stats);
            }
            return None;
        }
        let partial = self.table.remove(&key)?;
        self.bytes -= partial.footprint();
        Some(Datagram {
            proto: partial.proto,
            payload: partial.data,
        })
    }

    /// Evicts datagrams older than the timeout, counting each as
    /// [`DropReason::FragmentTimeout`].
    pub(super) fn expire(&mut self, now_secs: u64, stats: &mut DecodeStats) {
        while let Some(&(key, id)) = self.age.front() {
            match self.table.get(&key) {
                Some(p) if p.id == id => {
                    if now_secs.saturating_sub(p.first_seen) <= self.timeout_secs {
                        break;
                    }
                    self.discard(&key, DropReason::FragmentTimeout, stats);
                }
                _ => {}
            }
            self.age.pop_front();
        }
    }

    /// Takes back a finished datagram's buffer for reuse.
    pub(super) fn recycle(&mut self, datagram: Datagram) {
        self.release(datagram.payload);
    }

    /// Incomplete datagrams held.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// The input has ended: every incomplete datagram is given up and
    /// counted as timed out (its missing fragments will never come).
    pub(super) fn abandon_all(&mut self, stats: &mut DecodeStats) {
        for _ in 0..self.table.len() {
            stats.drop(DropReason::FragmentTimeout);
        }
        self.table.clear();
        self.age.clear();
        self.recent.clear();
        self.bytes = 0;
    }

    /// Drops the incomplete datagram least recently added to, to keep
    /// `bound`.
    fn evict_oldest(&mut self, bound: Bound, stats: &mut DecodeStats) {
        while let Some((key, serial)) = self.recent.pop_front() {
            if self.table.get(&key).is_some_and(|p| p.serial == serial) {
                stats.evict(StateTable::Fragments, bound);
                self.discard(&key, DropReason::FragmentOverflow, stats);
                return;
            }
        }
    }

    /// Forgets a datagram, counting why.
    fn discard(&mut self, key: &FragKey, reason: DropReason, stats: &mut DecodeStats) {
        if let Some(partial) = self.table.remove(key) {
            stats.drop(reason);
            self.bytes -= partial.footprint();
            self.release(partial.data);
        }
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    fn release(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < FREE_BUFFERS
            && buf.capacity() > 0
            && buf.capacity() <= FREE_BUFFER_SIZE
        {
            buf.clear();
            self.free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: FragKey = FragKey::V4 {
        src: [192, 0, 2, 1],
        dst: [198, 51, 100, 7],
        id: 0x1234,
        proto: 17,
        tunnel: 0,
    };

    fn key(id: u16) -> FragKey {
        FragKey::V4 {
            src: [192, 0, 2, 1],
            dst: [198, 51, 100, 7],
            id,
            proto: 17,
            tunnel: 0,
        }
    }

    fn datagram(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Pushes `(offset, more, end)` slices of `data`, returns what completed.
    fn push_all(
        d: &mut Defragmenter,
        stats: &mut DecodeStats,
        now: u64,
        key: FragKey,
        data: &[u8],
        frags: &[(usize, bool, usize)],
    ) -> Vec<Datagram> {
        frags
            .iter()
            .filter_map(|&(off, more, end)| d.push(now, key, 17, off, more, &data[off..end], stats))
            .collect()
    }

    #[test]
    fn in_order_and_reversed() {
        let data = datagram(3000);
        let frags = [(0, true, 1480), (1480, true, 2960), (2960, false, 3000)];
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let out = push_all(&mut d, &mut stats, 1, KEY, &data, &frags);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, data);
        assert_eq!(out[0].proto, 17);
        assert_eq!(d.len(), 0);

        let mut rev = frags;
        rev.reverse();
        let out = push_all(&mut d, &mut stats, 1, KEY, &data, &rev);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, data);
        assert_eq!(stats, DecodeStats::default());
    }

    #[test]
    fn duplicates_and_consistent_overlaps_are_fine() {
        let data = datagram(100);
        let frags = [
            (64, false, 100), // last
            (56, false, 100), // last again: same end, overlapping
            (0, true, 48),
            (0, true, 48),  // duplicate
            (16, true, 32), // inside what we have
            (40, true, 64), // overlaps both sides, completes
        ];
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let out = push_all(&mut d, &mut stats, 1, KEY, &data, &frags);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, data);
        assert_eq!(stats, DecodeStats::default());
    }

    #[test]
    fn overlap_that_changes_data_is_invalid() {
        let data = datagram(64);
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        assert!(
            d.push(1, KEY, 17, 0, true, &data[..32], &mut stats)
                .is_none()
        );
        let mut forged = data[16..48].to_vec();
        forged[3] ^= 0xff;
        assert!(d.push(1, KEY, 17, 16, true, &forged, &mut stats).is_none());
        assert_eq!(stats.dropped(DropReason::FragmentInvalid), 1);
        assert_eq!(d.len(), 0);
        // The rest of the datagram does not complete anything.
        assert!(
            d.push(1, KEY, 17, 32, false, &data[32..], &mut stats)
                .is_none()
        );
    }

    #[test]
    fn datagram_beyond_64k_is_invalid() {
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let chunk = vec![0u8; 8192];
        for i in 0..7 {
            assert!(
                d.push(1, KEY, 17, i * 8192, true, &chunk, &mut stats)
                    .is_none()
            );
        }
        // 7 * 8192 + 8200 = 65 544 bytes: too big, whole datagram dropped.
        let tail = vec![0u8; 8200];
        assert!(
            d.push(1, KEY, 17, 7 * 8192, false, &tail, &mut stats)
                .is_none()
        );
        assert_eq!(stats.dropped(DropReason::FragmentInvalid), 1);
        assert_eq!(d.len(), 0);
        // The largest legal offset with a fragment running past 65 535.
        assert!(
            d.push(1, KEY, 17, 65_528, false, &[0; 8], &mut stats)
                .is_none()
        );
        assert_eq!(stats.dropped(DropReason::FragmentInvalid), 2);
        assert_eq!(d.len(), 0);
        // Exactly 65 535 bytes is fine.
        let data = datagram(MAX_DATAGRAM);
        let frags = [(0, true, 32_768), (32_768, false, MAX_DATAGRAM)];
        let out = push_all(&mut d, &mut stats, 1, KEY, &data, &frags);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload.len(), MAX_DATAGRAM);
    }

    #[test]
    fn misaligned_fragments_are_invalid() {
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        assert!(d.push(1, KEY, 17, 0, true, &[0; 16], &mut stats).is_none());
        assert_eq!(d.len(), 1);
        // Non-last fragment of 13 bytes.
        assert!(d.push(1, KEY, 17, 16, true, &[0; 13], &mut stats).is_none());
        assert_eq!(stats.dropped(DropReason::FragmentInvalid), 1);
        assert_eq!(d.len(), 0);
        // Offset not a multiple of 8 (cannot come from a header, but no panic).
        assert!(d.push(1, KEY, 17, 3, false, &[0; 8], &mut stats).is_none());
        assert_eq!(stats.dropped(DropReason::FragmentInvalid), 2);
    }

    #[test]
    fn conflicting_ends_are_invalid() {
        let mut stats = DecodeStats::default();
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        // Two last fragments ending differently.
        assert!(
            d.push(1, KEY, 17, 16, false, &[0; 10], &mut stats)
                .is_none()
        );
        assert!(
            d.push(1, KEY, 17, 16, false, &[0; 12], &mut stats)
                .is_none()
        );
        assert_eq!(stats.dropped(DropReason::FragmentInvalid), 1);
        assert_eq!(d.len(), 0);

        // Data beyond a known end.
        assert!(
            d.push(1, KEY, 17, 16, false, &[0; 10], &mut stats)
                .is_none()
        );
        assert!(d.push(1, KEY, 17, 24, true, &[0; 8], &mut stats).is_none());
        assert_eq!(stats.dropped(DropReason::FragmentInvalid), 2);

        // A known end before data already received.
        assert!(d.push(1, KEY, 17, 32, true, &[0; 8], &mut stats).is_none());
        assert!(d.push(1, KEY, 17, 8, false, &[0; 10], &mut stats).is_none());
        assert_eq!(stats.dropped(DropReason::FragmentInvalid), 3);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn full_table_evicts_the_oldest() {
        let mut d = Defragmenter::new(2, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let data = datagram(24);
        for (t, id) in [(1, 1), (2, 2), (3, 3)] {
            assert!(
                d.push(t, key(id), 17, 0, true, &data[..16], &mut stats)
                    .is_none()
            );
        }
        assert_eq!(d.len(), 2);
        assert_eq!(stats.dropped(DropReason::FragmentOverflow), 1);
        // id 1 was evicted: its tail starts a new, incomplete datagram
        // (and evicts id 2).
        assert!(
            d.push(4, key(1), 17, 16, false, &data[16..], &mut stats)
                .is_none()
        );
        assert_eq!(stats.dropped(DropReason::FragmentOverflow), 2);
        // id 3 survived both evictions.
        let out = d.push(4, key(3), 17, 16, false, &data[16..], &mut stats);
        assert_eq!(out.map(|d| d.payload), Some(data));
    }

    #[test]
    fn byte_budget_evicts_the_oldest_datagrams() {
        // Room for three datagrams 64 KiB long (their last fragment came
        // first), while the table could hold a hundred.
        let mut d = Defragmenter::new(100, 3 * LARGEST_PARTIAL, 30);
        let mut stats = DecodeStats::default();
        let tail = [0u8; 8];
        for id in 0..10u16 {
            assert!(
                d.push(1, key(id), 17, 65_520, false, &tail, &mut stats)
                    .is_none()
            );
            assert!(d.bytes() <= 3 * LARGEST_PARTIAL);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(stats.evicted(StateTable::Fragments, Bound::Bytes), 7);
        assert_eq!(stats.evicted(StateTable::Fragments, Bound::Entries), 0);
        assert_eq!(stats.dropped(DropReason::FragmentOverflow), 7);
        // The newest three are the ones kept: each still completes.
        for id in 7..10u16 {
            let head = vec![1u8; 65_520];
            let done = d.push(1, key(id), 17, 0, true, &head, &mut stats);
            assert_eq!(done.map(|dg| dg.payload.len()), Some(65_528));
        }
        assert_eq!((d.len(), d.bytes()), (0, 0));

        // Small datagrams are cheap: many fit in the same budget.
        for id in 0..80u16 {
            d.push(2, key(id), 17, 0, true, &[0u8; 1480], &mut stats);
        }
        assert_eq!(d.len(), 80);
        assert_eq!(stats.evicted(StateTable::Fragments, Bound::Bytes), 7);
    }

    #[test]
    fn timeout_uses_capture_time_from_first_fragment() {
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let data = datagram(24);
        assert!(
            d.push(100, key(1), 17, 0, true, &data[..8], &mut stats)
                .is_none()
        );
        assert!(
            d.push(110, key(2), 17, 0, true, &data[..8], &mut stats)
                .is_none()
        );
        // A later fragment does not refresh the stamp.
        assert!(
            d.push(125, key(1), 17, 8, true, &data[8..16], &mut stats)
                .is_none()
        );
        d.expire(130, &mut stats);
        assert_eq!(d.len(), 2);
        d.expire(131, &mut stats);
        assert_eq!(d.len(), 1);
        assert_eq!(stats.dropped(DropReason::FragmentTimeout), 1);
        d.expire(1_000, &mut stats);
        assert_eq!(d.len(), 0);
        assert_eq!(stats.dropped(DropReason::FragmentTimeout), 2);
    }

    #[test]
    fn fragment_after_timeout_does_not_complete_a_stale_datagram() {
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let data = datagram(24);
        assert!(
            d.push(100, KEY, 17, 0, true, &data[..16], &mut stats)
                .is_none()
        );
        // No expire() call in between: push itself notices.
        assert!(
            d.push(200, KEY, 17, 16, false, &data[16..], &mut stats)
                .is_none()
        );
        assert_eq!(stats.dropped(DropReason::FragmentTimeout), 1);
        assert_eq!(d.len(), 1);
        // The new datagram it started completes with fresh fragments.
        let out = d.push(201, KEY, 17, 0, true, &data[..16], &mut stats);
        assert_eq!(out.map(|d| d.payload), Some(data));
    }

    #[test]
    fn atomic_fragment_and_v6_keys() {
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let v6 = FragKey::V6 {
            src: [1; 16],
            dst: [2; 16],
            id: 7,
            tunnel: 0,
        };
        let out = d.push(1, v6, 17, 0, false, b"whole", &mut stats);
        assert_eq!(out.map(|d| d.payload), Some(b"whole".to_vec()));
        assert_eq!(d.len(), 0);

        // The protocol is the first fragment's, whatever arrives first.
        let data = datagram(20);
        assert!(
            d.push(1, v6, 59, 8, false, &data[8..], &mut stats)
                .is_none()
        );
        let v4 = FragKey::V4 {
            src: [1; 4],
            dst: [2; 4],
            id: 7,
            proto: 17,
            tunnel: 0,
        };
        assert!(d.push(1, v4, 17, 0, true, &data[..8], &mut stats).is_none());
        assert_eq!(d.len(), 2);
        let out = d.push(1, v6, 17, 0, true, &data[..8], &mut stats).unwrap();
        assert_eq!((out.proto, out.payload), (17, data));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn recycled_buffers_are_reused() {
        let mut d = Defragmenter::new(8, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let data = datagram(1600);
        let frags = [(0, true, 800), (800, false, 1600)];
        let out = push_all(&mut d, &mut stats, 1, KEY, &data, &frags)
            .pop()
            .unwrap();
        let ptr = out.payload.as_ptr();
        d.recycle(out);
        let again = push_all(&mut d, &mut stats, 1, KEY, &data, &frags)
            .pop()
            .unwrap();
        assert_eq!(again.payload.as_ptr(), ptr);
        assert_eq!(again.payload, data);
        // Oversized buffers are not kept.
        for capacity in [1 << 20, MAX_DATAGRAM, FREE_BUFFER_SIZE + 1] {
            d.recycle(Datagram {
                proto: 17,
                payload: Vec::with_capacity(capacity),
            });
        }
        assert!(d.free.iter().all(|b| b.capacity() <= FREE_BUFFER_SIZE));
    }

    #[test]
    fn age_queue_stays_bounded() {
        let mut d = Defragmenter::new(4, usize::MAX, 30);
        let mut stats = DecodeStats::default();
        let data = datagram(16);
        for id in 0..10_000u16 {
            let frags = [(0, true, 8), (8, false, 16)];
            assert_eq!(
                push_all(&mut d, &mut stats, 1, key(id), &data, &frags).len(),
                1
            );
        }
        assert!(d.age.len() <= 2 * d.table.len() + 65);
        assert!(d.recent.len() <= 2 * d.table.len() + 65);
        assert_eq!(stats, DecodeStats::default());
    }

    proptest! {
        /// Any split into 8-aligned fragments, in any order, with
        /// duplicates, rebuilds the datagram exactly.
        #[test]
        fn any_order_rebuilds(
            len in 1usize..4000,
            cuts in prop::collection::vec(1usize..500, 0..20),
            order in prop::collection::vec(any::<prop::sample::Index>(), 1..40),
        ) {
            let data = datagram(len);
            let mut bounds = vec![0];
            for c in cuts {
                let next = bounds.last().unwrap() + c * BLOCK;
                if next >= len { break; }
                bounds.push(next);
            }
            bounds.push(len);
            let frags: Vec<(usize, bool, usize)> = bounds
                .windows(2)
                .map(|w| (w[0], w[1] != len, w[1]))
                .collect();
            // Every fragment at least once, then extra picks as duplicates,
            // all in a shuffled order.
            let mut seq: Vec<usize> = (0..frags.len()).collect();
            for ix in &order { seq.push(ix.index(frags.len())); }
            for (i, ix) in order.iter().enumerate() {
                let j = ix.index(seq.len());
                let i = i % seq.len();
                seq.swap(i, j);
            }
            let mut d = Defragmenter::new(4, usize::MAX, 30);
            let mut stats = DecodeStats::default();
            let mut done = Vec::new();
            for &i in &seq {
                let (off, more, end) = frags[i];
                if let Some(dg) = d.push(1, KEY, 17, off, more, &data[off..end], &mut stats) {
                    done.push(dg.payload);
                }
            }
            // The first completion is the datagram; later duplicates may
            // start (never finish) a new one.
            prop_assert!(!done.is_empty());
            prop_assert_eq!(&done[0], &data);
            prop_assert_eq!(stats.dropped(DropReason::FragmentInvalid), 0);
        }

        /// Arbitrary fragments never panic and never hold more than the
        /// bounds allow.
        #[test]
        fn arbitrary_fragments_stay_bounded(
            frags in prop::collection::vec(
                (0u16..4, 0usize..9000, any::<bool>(), 0usize..3000, 0u64..100),
                1..200,
            ),
        ) {
            // Room for two of the largest datagrams, not three.
            let mut d = Defragmenter::new(3, 2 * LARGEST_PARTIAL, 10);
            let mut stats = DecodeStats::default();
            let payload = vec![0xabu8; 3000];
            for (id, off, more, len, t) in frags {
                let _ = d.push(t, key(id), 17, off * 8, more, &payload[..len], &mut stats);
                d.expire(t, &mut stats);
                prop_assert!(d.len() <= 3);
                prop_assert_eq!(d.bytes, d.table.values().map(Partial::footprint).sum::<usize>());
                prop_assert!(d.bytes <= d.max_bytes);
                for p in d.table.values() {
                    prop_assert!(p.data.capacity() <= MAX_DATAGRAM);
                    prop_assert!(p.blocks.len() <= MAX_DATAGRAM.div_ceil(BLOCK * 64));
                }
            }
        }
    }
}
