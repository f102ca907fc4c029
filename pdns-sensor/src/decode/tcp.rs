//! DNS over TCP: rebuild each direction's byte stream and cut it into
//! messages.
//!
//! Answers too big for UDP (truncated, then retried over TCP), zone
//! transfers and resolvers that keep TCP connections open all carry DNS as
//! a stream framed by a 2-byte length (RFC 1035 §4.2.2, RFC 7766). TCP
//! segment boundaries need not match message boundaries, segments get lost,
//! duplicated and reordered, and a capture can start in the middle of a
//! connection, so each direction ([`FlowKey`] is directional) is a small
//! state machine:
//!
//! - **In order** (the common case): whole messages are handed to `emit` as
//!   slices of the segment itself; only a message that continues in a later
//!   segment is copied, into the direction's `pending` buffer.
//! - **Retransmissions and overlaps**: bytes before the next expected
//!   sequence number were delivered already and are skipped.
//! - **Out of order**: a segment beyond a hole waits in a small queue until
//!   the hole fills. A hole is given up ([`DropReason::TcpGap`]) as soon as
//!   the other direction acknowledges the bytes after it (its receiver got
//!   the hole, so the capture missed it for good: tshark's "ACKed unseen
//!   segment"), whichever of the ACK and the held segment is seen first;
//!   otherwise when the segment after it has waited 2 s of capture time (a
//!   missing segment that the sender retransmits arrives well within that;
//!   one the *capture* dropped never does), when the direction closes,
//!   idles out or the input ends, or (as [`DropReason::TcpOverflow`]) when
//!   the queue would exceed its bounds. Then the partial message before the
//!   hole is dropped, and the stream resynchronises by assuming that the
//!   first segment after the hole starts a message; the messages held
//!   there are emitted. This is the same guess as for a capture starting
//!   mid-stream, and it is usually right: DNS senders write one message (or
//!   one length prefix) per `send`.
//! - **SYN** gives the initial sequence number; data on the SYN (TCP Fast
//!   Open) starts at ISN + 1. A SYN with another ISN starts a new stream.
//!   Without a SYN, the first segment with data is taken as a message
//!   boundary.
//! - **FIN** flushes (gives up any hole) and forgets the direction; **RST**
//!   forgets it at once, dropping what was pending.
//!
//! Bounds: per direction at most `max_buffer` buffered bytes (pending
//! message plus out-of-order data) in at most 64 held segments; a message
//! too large to buffer is skipped exactly (its length is known) and counted
//! as [`DropReason::TcpOverflow`]. Across all directions, at most
//! `max_flows` directions and `max_bytes` bytes of memory: what each
//! direction's buffers have allocated plus a fixed cost per direction for
//! its table entry (see [`Direction::footprint`]). The per-direction cap
//! alone would let a sender who opens many connections and never finishes
//! a message hold `max_flows × max_buffer` (2 GiB with the defaults); the
//! byte budget is what bounds a decoder thread. When either bound is
//! passed, [`TcpReassembler::shed`] evicts the least recently used
//! directions until both hold. (The order is exact: every segment queues
//! its direction again, and the stale entries are skipped. A second-chance
//! queue, cheaper by a push per segment, proved too weak: under a flood
//! whose every connection sent two segments, one sweep of the queue
//! requeued them all at once, and a live DNS connection that happened to
//! be quiet during that sweep was evicted.) An evicted direction is flushed first: the
//! complete messages it held behind a hole are emitted (stamped with its
//! last segment's time), and only what was incomplete is lost, counted as
//! [`DropReason::TcpOverflow`]; every eviction is counted in
//! [`DecodeStats::evictions`] by the bound that caused it. Active DNS
//! connections are the most recently used, so a flood of connections that
//! go quiet evicts itself. Directions idle
//! for `idle_secs` are flushed like a FIN and removed by
//! [`TcpReassembler::expire`], and [`TcpReassembler::flush_all`] does the
//! same to every direction at the end of the input; a partial message they
//! still held counts as [`DropReason::TcpGap`]. Only bytes seen on the wire
//! are ever emitted; a message completed by a later segment (or released
//! when a hole is filled or given up) is emitted while that segment (or
//! that ACK) is handled.
//!
//! The fast path costs one hash lookup per segment: the other direction is
//! looked up only while some direction holds data behind a hole (for an
//! ACK), or when this one does (for the last ACK the other side sent).
//!
//! Sequence numbers are compared modulo 2^32 (RFC 1982 style).

use std::collections::VecDeque;
use std::collections::hash_map::Entry;

use foldhash::{HashMap, HashMapExt};

use super::{Bound, DecodeStats, DropReason, FlowKey, StateTable};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Capture seconds a segment beyond a hole waits for the hole to be filled.
const GAP_WAIT_SECS: u64 = 2;
/// Out-of-order segments held per direction.
const MAX_OUT_OF_ORDER: usize = 64;
/// A segment ending further than this behind the expected sequence number
/// is no retransmission: the 4-tuple was reused by a connection whose SYN we
/// missed, so the stream starts over there.
const STALE_WINDOW: i32 = 1 << 24;
/// Capacity a direction keeps in its pending buffer between messages.
const KEEP_CAPACITY: usize = 4096;
/// What a direction costs besides its buffers: the hash table slot (key,
/// value, control byte, and the table's spare capacity of up to half
/// again), its LRU queue entries (up to two per direction before the
/// queue is compacted) and allocator overhead of its buffers.
const DIRECTION_OVERHEAD: usize = (size_of::<FlowKey>() + size_of::<Direction>() + 1) * 3 / 2
    + 2 * size_of::<(FlowKey, u64, u64)>()
    + 64;

/// A segment waiting for a hole before it to be filled.
struct Held {
    seq: u32,
    /// Capture time it arrived.
    at: u64,
    data: Vec<u8>,
}

/// One direction of a TCP connection.
struct Direction {
    /// Serial number, to match the entry with its place in the LRU queue.
    serial: u64,
    /// Value of the reassembler's clock at the last segment (LRU order).
    touched: u64,
    /// Capture time of the last segment.
    last_seen: u64,
    /// Initial sequence number, if the SYN was seen.
    isn: Option<u32>,
    /// Sequence number of the next byte expected.
    next: u32,
    /// Whether `next` is known to be a message boundary or inside the
    /// message in `pending`; when false, the next segment at or beyond
    /// `next` is taken to start a message.
    synced: bool,
    /// Bytes still to skip of a message too big to buffer.
    discard: usize,
    /// The beginning of a message (length prefix included) whose end has
    /// not arrived yet.
    pending: Vec<u8>,
    /// Segments beyond a hole, by sequence number.
    held: VecDeque<Held>,
    /// Sum of the lengths of `held`.
    held_bytes: usize,
    /// Acknowledgement number of this direction's last segment (if it had
    /// the ACK flag): how far the other direction's receiver has got.
    acked: Option<u32>,
}

/// Whether an LRU queue entry is the current one of a live direction.
#[inline]
fn current(flows: &HashMap<FlowKey, Direction>, key: FlowKey, serial: u64, touched: u64) -> bool {
    flows
        .get(&key)
        .is_some_and(|d| d.serial == serial && d.touched == touched)
}

/// Signed distance from `b` to `a` in sequence space.
#[inline]
fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Total length (prefix included) of the message starting with `a` then `b`.
#[inline]
fn message_len(a: &[u8], b: &[u8]) -> Option<usize> {
    let mut prefix = a.iter().chain(b).copied();
    let hi = prefix.next()?;
    let lo = prefix.next()?;
    Some(2 + usize::from(u16::from_be_bytes([hi, lo])))
}

impl Direction {
    fn new(serial: u64, touched: u64, now: u64, isn: Option<u32>, next: u32) -> Self {
        Direction {
            serial,
            touched,
            last_seen: now,
            isn,
            next,
            synced: true,
            discard: 0,
            pending: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            acked: None,
        }
    }

    /// The bytes of memory this direction holds, as the byte budget counts
    /// them: its buffers' allocated capacity (not just their contents)
    /// plus [`DIRECTION_OVERHEAD`].
    fn footprint(&self) -> usize {
        DIRECTION_OVERHEAD
            + self.pending.capacity()
            + self.held_bytes
            + self.held.capacity() * size_of::<Held>()
    }

    /// Whether data waits behind a hole.
    fn has_hole(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether bytes are buffered that no message has used yet.
    fn has_data(&self) -> bool {
        !self.pending.is_empty() || !self.held.is_empty()
    }

    /// Drops everything and starts a stream at `next`; returns whether
    /// buffered data was lost.
    fn restart(&mut self, isn: Option<u32>, next: u32) -> bool {
        let lost = self.has_data();
        self.isn = isn;
        self.next = next;
        self.synced = true;
        self.discard = 0;
        self.clear_pending();
        self.held.clear();
        self.held_bytes = 0;
        lost
    }

    fn clear_pending(&mut self) {
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
    }

    /// Gives up the message in progress: the next segment in sequence
    /// order starts a message.
    fn desync(&mut self) {
        self.clear_pending();
        self.discard = 0;
        self.synced = false;
    }

    /// Takes in the payload of one segment starting at `seq`.
    fn receive(&mut self, ctx: &mut Ctx<'_>, seq: u32, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = seq.wrapping_add(data.len() as u32);
        if seq_diff(self.next, end) > STALE_WINDOW {
            if self.restart(None, seq) {
                ctx.stats.drop(DropReason::TcpGap);
            }
        } else if !self.synced {
            // Resynchronise at the first segment that is not behind us
            // (`held` is empty whenever we are not in sync).
            if seq_diff(seq, self.next) >= 0 {
                self.next = seq;
                self.synced = true;
            } else {
                if seq_diff(end, self.next) > 0 {
                    self.next = end;
                }
                return;
            }
        }

        let ahead = seq_diff(seq, self.next);
        if ahead <= 0 {
            let skip = ahead.unsigned_abs() as usize;
            if let Some(new) = data.get(skip..).filter(|d| !d.is_empty()) {
                self.deliver(ctx, new);
                self.drain(ctx);
            }
        } else {
            self.hold(ctx, seq, data);
        }
    }

    /// Queues a segment that arrived beyond a hole.
    fn hold(&mut self, ctx: &mut Ctx<'_>, seq: u32, data: &[u8]) {
        let next = self.next;
        let pos = self
            .held
            .partition_point(|h| seq_diff(h.seq, next) < seq_diff(seq, next));
        if self
            .held
            .get(pos)
            .is_some_and(|h| h.seq == seq && h.data.len() >= data.len())
        {
            return; // a retransmission of a segment we hold
        }
        self.held.insert(
            pos,
            Held {
                seq,
                at: ctx.now,
                data: data.to_vec(),
            },
        );
        self.held_bytes += data.len();

        if self.over_bounds(ctx.max_buffer) {
            // The hole held up more than we may buffer: give it up, and
            // keep resynchronising at the next held segment until the rest
            // fits.
            ctx.stats.drop(DropReason::TcpOverflow);
            while self.over_bounds(ctx.max_buffer) && !self.held.is_empty() {
                self.desync();
                self.drain(ctx);
            }
        }
    }

    fn over_bounds(&self, max_buffer: usize) -> bool {
        self.pending.len() + self.held_bytes > max_buffer || self.held.len() > MAX_OUT_OF_ORDER
    }

    /// Delivers held segments that are now in sequence (resynchronising at
    /// the first one if we are out of sync).
    fn drain(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(first) = self.held.front() {
            if !self.synced {
                self.next = first.seq;
                self.synced = true;
            }
            let ahead = seq_diff(first.seq, self.next);
            if ahead > 0 {
                break;
            }
            let Some(seg) = self.held.pop_front() else {
                break;
            };
            self.held_bytes = self.held_bytes.saturating_sub(seg.data.len());
            let skip = ahead.unsigned_abs() as usize;
            if let Some(new) = seg.data.get(skip..).filter(|d| !d.is_empty()) {
                self.deliver(ctx, new);
            }
        }
    }

    /// Gives up holes whose following segment waited too long.
    fn give_up_stale_holes(&mut self, ctx: &mut Ctx<'_>) {
        while self
            .held
            .front()
            .is_some_and(|h| ctx.now.saturating_sub(h.at) >= GAP_WAIT_SECS)
        {
            ctx.stats.drop(DropReason::TcpGap);
            self.desync();
            self.drain(ctx);
        }
    }

    /// The receiver acknowledged everything before `ack`: a hole that ends
    /// at or before it was received but not captured, and will never be.
    /// Give it up (and any further hole `ack` covers).
    fn acked_by_peer(&mut self, ctx: &mut Ctx<'_>, ack: u32) {
        // An ACK far beyond everything we know belongs to another
        // connection, not to this stream.
        while self
            .held
            .front()
            .is_some_and(|h| seq_diff(ack, h.seq) >= 0 && seq_diff(ack, self.next) <= STALE_WINDOW)
        {
            ctx.stats.drop(DropReason::TcpGap);
            self.desync();
            self.drain(ctx);
        }
    }

    /// The direction is closing: give up any hole, emit what can be, and
    /// count what is lost as `lost` (a gap when the stream ended or went
    /// idle, an overflow when a bound evicted it).
    fn flush(&mut self, ctx: &mut Ctx<'_>, lost: DropReason) {
        while !self.held.is_empty() {
            ctx.stats.drop(lost);
            self.desync();
            self.drain(ctx);
        }
        if !self.pending.is_empty() {
            ctx.stats.drop(lost);
            self.clear_pending();
        }
    }

    /// Flushes a direction that is being forgotten.
    fn close(
        mut self,
        max_buffer: usize,
        lost: DropReason,
        stats: &mut DecodeStats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let mut ctx = Ctx {
            now: self.last_seen,
            max_buffer,
            stats,
            emit,
        };
        self.flush(&mut ctx, lost);
    }

    /// Frames in-sequence bytes into messages.
    fn deliver(&mut self, ctx: &mut Ctx<'_>, mut data: &[u8]) {
        self.next = self.next.wrapping_add(data.len() as u32);
        while !data.is_empty() && self.synced {
            if self.discard > 0 {
                let n = self.discard.min(data.len());
                self.discard -= n;
                data = &data[n..];
                continue;
            }
            if self.pending.is_empty() {
                // Fast path: whole messages straight from the segment.
                if let Some(total) = message_len(data, &[])
                    && let Some(message) = data.get(2..total)
                {
                    if !message.is_empty() {
                        (ctx.emit)(message);
                    }
                    data = &data[total..];
                    continue;
                }
            }
            // Copy toward the end of the message (or of its prefix).
            let want = match message_len(&self.pending, &[]) {
                Some(total) => total.saturating_sub(self.pending.len()),
                None => 2 - self.pending.len(),
            };
            let (head, rest) = data.split_at(want.min(data.len()));
            data = rest;
            if !self.buffer(ctx, head) {
                continue;
            }
            if let Some(total) = message_len(&self.pending, &[])
                && self.pending.len() == total
            {
                if total > 2 {
                    (ctx.emit)(&self.pending[2..]);
                }
                self.clear_pending();
            }
        }
    }

    /// Appends to `pending` if the bounds allow; otherwise counts the
    /// overflow and arranges to skip the rest of the message (or, if its
    /// length is not even known, to resynchronise).
    fn buffer(&mut self, ctx: &mut Ctx<'_>, bytes: &[u8]) -> bool {
        let len = self.pending.len() + bytes.len();
        let total = message_len(&self.pending, bytes);
        let fits = len + self.held_bytes <= ctx.max_buffer
            && total.is_none_or(|total| total <= ctx.max_buffer);
        if fits {
            if let Some(total) = total {
                self.pending
                    .reserve_exact(total.saturating_sub(self.pending.len()));
            }
            self.pending.extend_from_slice(bytes);
            return true;
        }
        ctx.stats.drop(DropReason::TcpOverflow);
        match total {
            Some(total) => {
                self.clear_pending();
                self.discard = total.saturating_sub(len);
            }
            None => self.desync(),
        }
        false
    }
}

/// What a direction needs from its reassembler while handling a segment.
struct Ctx<'a> {
    now: u64,
    max_buffer: usize,
    stats: &'a mut DecodeStats,
    emit: &'a mut dyn FnMut(&[u8]),
}

/// Reassembles DNS messages from TCP segments, per flow direction.
pub(super) struct TcpReassembler {
    flows: HashMap<FlowKey, Direction>,
    /// Flow directions from least to most recently used: every segment
    /// queues its direction again with its serial and the new `touched`
    /// value, so an entry is current only if both still match the
    /// direction; stale entries are skipped when they reach the front and
    /// swept out when they outnumber the live ones.
    lru: VecDeque<(FlowKey, u64, u64)>,
    /// Directions in `flows` holding data behind a hole: while there are
    /// none, an ACK needs no look-up of the other direction.
    holed: usize,
    /// Counts segments; orders directions by last use.
    clock: u64,
    next_serial: u64,
    /// Sum of the [`Direction::footprint`]s in `flows`.
    bytes: usize,
    max_flows: usize,
    max_buffer: usize,
    max_bytes: usize,
    idle_secs: u64,
}

impl TcpReassembler {
    /// Tracks at most `max_flows` directions (at least one), buffering at
    /// most `max_buffer` bytes each and holding at most `max_bytes` in all
    /// (raised to what one direction may hold, if below), forgotten after
    /// `idle_secs` of capture time without a segment.
    pub(super) fn new(
        max_flows: usize,
        max_buffer: usize,
        max_bytes: usize,
        idle_secs: u64,
    ) -> Self {
        TcpReassembler {
            flows: HashMap::new(),
            lru: VecDeque::new(),
            holed: 0,
            clock: 0,
            next_serial: 0,
            bytes: 0,
            max_flows: max_flows.max(1),
            max_buffer,
            max_bytes: max_bytes.max(Self::largest_direction(max_buffer)),
            idle_secs,
        }
    }

    /// The most one direction can hold: a full buffer (a pending message
    /// keeps up to [`KEEP_CAPACITY`] beyond it while held segments fill
    /// the rest) and a full queue of held segments.
    fn largest_direction(max_buffer: usize) -> usize {
        DIRECTION_OVERHEAD
            + max_buffer
            + KEEP_CAPACITY
            + (2 * MAX_OUT_OF_ORDER + 2) * size_of::<Held>()
    }

    /// Handles one TCP segment of one direction, calling `emit` once per
    /// complete DNS message (without its length prefix).
    ///
    /// `flags` is the raw TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04,
    /// ACK 0x10); `ack` is the acknowledgement number, used only when the
    /// ACK flag is set. Messages of the other direction that its ACK
    /// releases (see the module documentation) are emitted first.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn segment(
        &mut self,
        now_secs: u64,
        key: FlowKey,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
        stats: &mut DecodeStats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let ack = (flags & ACK != 0).then_some(ack);
        if let Some(ack) = ack
            && self.holed > 0
        {
            self.peer_acked(now_secs, key.reversed(), ack, stats, emit);
        }
        if flags & RST != 0 {
            if let Some(dir) = self.flows.remove(&key) {
                self.holed -= usize::from(dir.has_hole());
                self.bytes -= dir.footprint();
                if dir.has_data() {
                    stats.drop(DropReason::TcpGap);
                }
            }
            return;
        }
        let syn = flags & SYN != 0;
        let fin = flags & FIN != 0;
        // Data on a SYN (TCP Fast Open) starts after the SYN's own number.
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        self.clock += 1;
        let clock = self.clock;

        let mut had_hole = false;
        let mut before = 0;
        let dir = match self.flows.entry(key) {
            Entry::Occupied(entry) => {
                let dir = entry.into_mut();
                had_hole = dir.has_hole();
                before = dir.footprint();
                if syn && dir.isn != Some(seq) && dir.restart(Some(seq), data_seq) {
                    stats.drop(DropReason::TcpGap);
                }
                dir
            }
            Entry::Vacant(entry) => {
                if !syn && payload.is_empty() {
                    return; // a bare ACK or FIN of a stream we do not follow
                }
                let serial = self.next_serial;
                self.next_serial += 1;
                entry.insert(Direction::new(
                    serial,
                    clock,
                    now_secs,
                    syn.then_some(seq),
                    data_seq,
                ))
            }
        };
        dir.touched = clock;
        dir.last_seen = now_secs;
        dir.acked = ack;
        let serial = dir.serial;

        let mut ctx = Ctx {
            now: now_secs,
            max_buffer: self.max_buffer,
            stats,
            emit,
        };
        dir.receive(&mut ctx, data_seq, payload);
        let mut dir = dir;
        if !payload.is_empty() && dir.has_hole() {
            // Slow path: the other side may have acknowledged the hole
            // before we saw the data after it.
            let peer_ack = self.flows.get(&key.reversed()).and_then(|d| d.acked);
            let Some(again) = self.flows.get_mut(&key) else {
                return; // cannot happen: `dir` is this entry
            };
            dir = again;
            if let Some(peer_ack) = peer_ack {
                dir.acked_by_peer(&mut ctx, peer_ack);
            }
        }
        let (has_hole, after) = if fin {
            dir.flush(&mut ctx, DropReason::TcpGap);
            self.flows.remove(&key);
            (false, 0)
        } else {
            dir.give_up_stale_holes(&mut ctx);
            (dir.has_hole(), dir.footprint())
        };
        self.note_hole(had_hole, has_hole);
        self.bytes = self.bytes + after - before;
        if !fin {
            self.lru.push_back((key, serial, clock));
            if self.lru.len() > 2 * self.flows.len() + 64 {
                let flows = &self.flows;
                self.lru
                    .retain(|&(k, serial, touched)| current(flows, k, serial, touched));
            }
        }
    }

    /// Keeps `holed` in step with one direction going from `before` to
    /// `after`.
    fn note_hole(&mut self, before: bool, after: bool) {
        match (before, after) {
            (false, true) => self.holed += 1,
            (true, false) => self.holed -= 1,
            _ => {}
        }
    }

    /// The receiver of direction `key` acknowledged everything before
    /// `ack`: gives up the holes that covers.
    fn peer_acked(
        &mut self,
        now_secs: u64,
        key: FlowKey,
        ack: u32,
        stats: &mut DecodeStats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let Some(dir) = self.flows.get_mut(&key).filter(|d| d.has_hole()) else {
            return;
        };
        let before = dir.footprint();
        let mut ctx = Ctx {
            now: now_secs,
            max_buffer: self.max_buffer,
            stats,
            emit,
        };
        dir.acked_by_peer(&mut ctx, ack);
        let (has_hole, after) = (dir.has_hole(), dir.footprint());
        self.note_hole(true, has_hole);
        self.bytes = self.bytes + after - before;
    }

    /// Removes directions idle for more than `idle_secs` (capture time),
    /// flushing them as a FIN would: holes are given up and the messages
    /// held after them emitted, as `emit(last_seen, message)` with the
    /// capture second of the direction's last segment; a partial message
    /// counts as [`DropReason::TcpGap`].
    pub(super) fn expire(
        &mut self,
        now_secs: u64,
        stats: &mut DecodeStats,
        emit: &mut dyn FnMut(u64, &[u8]),
    ) {
        while let Some(&(key, serial, touched)) = self.lru.front() {
            self.lru.pop_front();
            let Some(dir) = self.flows.get(&key) else {
                continue; // already gone
            };
            if dir.serial != serial || dir.touched != touched {
                continue; // used since: queued again further back
            }
            if now_secs.saturating_sub(dir.last_seen) <= self.idle_secs {
                self.lru.push_front((key, serial, touched));
                break;
            }
            if let Some(dir) = self.flows.remove(&key) {
                self.holed -= usize::from(dir.has_hole());
                self.bytes -= dir.footprint();
                let last_seen = dir.last_seen;
                dir.close(self.max_buffer, DropReason::TcpGap, stats, &mut |m| {
                    emit(last_seen, m)
                });
            }
        }
    }

    /// The input has ended: flushes every direction as a FIN would (holes
    /// given up, the messages held after them emitted, a partial message
    /// counted as [`DropReason::TcpGap`]) and forgets them all.
    pub(super) fn flush_all(&mut self, stats: &mut DecodeStats, emit: &mut dyn FnMut(&[u8])) {
        // In LRU order, so that the output does not depend on hashing.
        for (key, serial, touched) in std::mem::take(&mut self.lru) {
            if current(&self.flows, key, serial, touched)
                && let Some(dir) = self.flows.remove(&key)
            {
                dir.close(self.max_buffer, DropReason::TcpGap, stats, emit);
            }
        }
        // Every live direction is queued; this is only a safety net.
        for (_, dir) in self.flows.drain() {
            dir.close(self.max_buffer, DropReason::TcpGap, stats, emit);
        }
        self.holed = 0;
        self.bytes = 0;
    }

    /// Flow directions tracked.
    pub(super) fn len(&self) -> usize {
        self.flows.len()
    }

    /// Bytes of memory the directions hold (see [`Direction::footprint`]).
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a bound is passed, so that [`shed`](Self::shed) has work.
    #[inline]
    pub(super) fn over_limits(&self) -> bool {
        self.flows.len() > self.max_flows || self.bytes > self.max_bytes
    }

    /// Evicts the least recently used directions until the table is within
    /// `max_flows` directions and `max_bytes` bytes. Each is flushed first:
    /// the complete messages it held are emitted, as `emit(last_seen,
    /// message)`, and what was incomplete counts as
    /// [`DropReason::TcpOverflow`].
    pub(super) fn shed(&mut self, stats: &mut DecodeStats, emit: &mut dyn FnMut(u64, &[u8])) {
        while self.over_limits() {
            let bound = if self.flows.len() > self.max_flows {
                Bound::Entries
            } else {
                Bound::Bytes
            };
            let Some((key, serial, touched)) = self.lru.pop_front() else {
                return;
            };
            if !current(&self.flows, key, serial, touched) {
                continue; // gone, or used since and queued further back
            }
            let Some(dir) = self.flows.remove(&key) else {
                continue;
            };
            self.holed -= usize::from(dir.has_hole());
            self.bytes -= dir.footprint();
            stats.evict(StateTable::Tcp, bound);
            let last_seen = dir.last_seen;
            dir.close(self.max_buffer, DropReason::TcpOverflow, stats, &mut |m| {
                emit(last_seen, m)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(port: u16) -> FlowKey {
        FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53)),
            sport: port,
            dport: 53,
            tunnel: 0,
        }
    }

    /// A message body of `len` bytes, recognisable by `tag`.
    fn msg(tag: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| tag.wrapping_mul(31).wrapping_add(i as u8))
            .collect()
    }

    /// Messages with their length prefixes, back to back.
    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(&(m.len() as u16).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    struct Harness {
        r: TcpReassembler,
        stats: DecodeStats,
        out: Vec<Vec<u8>>,
    }

    impl Harness {
        fn new(max_flows: usize, max_buffer: usize) -> Self {
            Self::with_budget(max_flows, max_buffer, usize::MAX)
        }

        fn with_budget(max_flows: usize, max_buffer: usize, max_bytes: usize) -> Self {
            Harness {
                r: TcpReassembler::new(max_flows, max_buffer, max_bytes, 60),
                stats: DecodeStats::default(),
                out: Vec::new(),
            }
        }

        /// A segment without an acknowledgement number of interest (if
        /// `flags` has ACK, it acknowledges 0).
        fn seg(&mut self, now: u64, key: FlowKey, seq: u32, flags: u8, payload: &[u8]) {
            self.seg_ack(now, key, seq, 0, flags, payload);
        }

        fn seg_ack(
            &mut self,
            now: u64,
            key: FlowKey,
            seq: u32,
            ack: u32,
            flags: u8,
            payload: &[u8],
        ) {
            let out = &mut self.out;
            self.r.segment(
                now,
                key,
                seq,
                ack,
                flags,
                payload,
                &mut self.stats,
                &mut |m| out.push(m.to_vec()),
            );
            // As the decoder does after every frame.
            self.r
                .shed(&mut self.stats, &mut |_, m| out.push(m.to_vec()));
            self.check_bounds();
        }

        fn expire(&mut self, now: u64) {
            let out = &mut self.out;
            self.r
                .expire(now, &mut self.stats, &mut |_, m| out.push(m.to_vec()));
            self.check_bounds();
        }

        fn flush_all(&mut self) {
            let out = &mut self.out;
            self.r
                .flush_all(&mut self.stats, &mut |m| out.push(m.to_vec()));
            self.check_bounds();
            assert_eq!(self.r.len(), 0);
        }

        fn check_bounds(&self) {
            assert!(self.r.len() <= self.r.max_flows);
            assert_eq!(
                self.r.bytes,
                self.r
                    .flows
                    .values()
                    .map(Direction::footprint)
                    .sum::<usize>()
            );
            assert!(self.r.bytes <= self.r.max_bytes);
            for d in self.r.flows.values() {
                assert!(d.pending.len() + d.held_bytes <= self.r.max_buffer.max(1));
                assert!(d.held.len() <= MAX_OUT_OF_ORDER);
                assert_eq!(
                    d.held_bytes,
                    d.held.iter().map(|h| h.data.len()).sum::<usize>()
                );
                assert!(d.synced || d.held.is_empty());
            }
            assert_eq!(
                self.r.holed,
                self.r.flows.values().filter(|d| d.has_hole()).count()
            );
        }

        fn drops(&self, reason: DropReason) -> u64 {
            self.stats.dropped(reason)
        }
    }

    const ISN: u32 = 1000;

    #[test]
    fn whole_messages_are_emitted_without_copying() {
        let (a, b, c) = (msg(1, 28), msg(2, 45), msg(3, 300));
        let stream = framed(&[&a, &b, &c]);
        let mut r = TcpReassembler::new(16, 1 << 17, usize::MAX, 60);
        let mut stats = DecodeStats::default();
        r.segment(1, key(1), ISN, 0, SYN, &[], &mut stats, &mut |_| {
            panic!("no data")
        });
        let range = stream.as_ptr_range();
        let mut got = Vec::new();
        r.segment(1, key(1), ISN + 1, 1, 0x18, &stream, &mut stats, &mut |m| {
            assert!(range.contains(&m.as_ptr()), "message was copied");
            got.push(m.to_vec());
        });
        assert_eq!(got, vec![a, b, c]);
        assert_eq!(r.flows[&key(1)].pending.capacity(), 0);
        assert_eq!(stats, DecodeStats::default());
    }

    #[test]
    fn message_split_anywhere_is_rebuilt() {
        let (a, b) = (msg(1, 28), msg(2, 3));
        let stream = framed(&[&a, &b]);
        for cut in 0..=stream.len() {
            let mut h = Harness::new(16, 1 << 17);
            h.seg(1, key(1), ISN, SYN, &[]);
            h.seg(1, key(1), ISN + 1, 0, &stream[..cut]);
            h.seg(1, key(1), ISN + 1 + cut as u32, 0, &stream[cut..]);
            assert_eq!(h.out, vec![a.clone(), b.clone()], "cut at {cut}");
        }
        // One byte per segment.
        let mut h = Harness::new(16, 1 << 17);
        for (i, byte) in stream.iter().enumerate() {
            h.seg(1, key(1), 77 + i as u32, 0, &[*byte]);
        }
        assert_eq!(h.out, vec![a, b]);
        assert_eq!(h.stats, DecodeStats::default());
    }

    #[test]
    fn retransmissions_and_overlaps_are_skipped() {
        let (a, b, c) = (msg(1, 20), msg(2, 20), msg(3, 20));
        let s = framed(&[&a, &b, &c]);
        let mut h = Harness::new(16, 1 << 17);
        h.seg(1, key(1), ISN, SYN, &[]);
        let at = |i: usize| ISN + 1 + i as u32;
        h.seg(1, key(1), at(0), 0, &s[..30]);
        h.seg(1, key(1), at(0), 0, &s[..30]); // duplicate
        h.seg(1, key(1), at(10), 0, &s[10..50]); // overlaps the first
        h.seg(1, key(1), at(0), 0, &s[..22]); // old entirely
        h.seg(1, key(1), at(44), 0, &s[44..]); // overlaps the second
        h.seg(1, key(1), at(0), 0, &s); // everything again
        assert_eq!(h.out, vec![a, b, c]);
        assert_eq!(h.stats, DecodeStats::default());
    }

    #[test]
    fn out_of_order_segments_wait_for_the_hole() {
        let msgs: Vec<Vec<u8>> = (0..5).map(|i| msg(i, 10 + i as usize * 7)).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let s = framed(&refs);
        let mut h = Harness::new(16, 1 << 17);
        h.seg(1, key(1), ISN, SYN, &[]);
        // Five 20-byte pieces, sent last to first, then one overlapping
        // held data, then the first.
        let pieces: Vec<usize> = (0..s.len()).step_by(20).collect();
        for &p in pieces.iter().skip(1).rev() {
            let end = (p + 20).min(s.len());
            h.seg(1, key(1), ISN + 1 + p as u32, 0, &s[p..end]);
        }
        h.seg(1, key(1), ISN + 1 + 15, 0, &s[15..45]);
        assert!(h.out.is_empty());
        assert_eq!(h.r.flows[&key(1)].held.len(), pieces.len());
        h.seg(1, key(1), ISN + 1, 0, &s[..20]);
        assert_eq!(h.out, msgs);
        assert!(h.r.flows[&key(1)].held.is_empty());
        assert_eq!(h.stats, DecodeStats::default());
    }

    #[test]
    fn data_on_syn_starts_after_the_isn() {
        let (q, a) = (msg(1, 28), msg(2, 50));
        let mut h = Harness::new(16, 1 << 17);
        h.seg(1, key(1), ISN, SYN, &framed(&[&q]));
        h.seg(1, key(1), ISN, SYN, &framed(&[&q])); // SYN retransmitted
        h.seg(1, key(1).reversed(), 9000, SYN | 0x10, &[]);
        h.seg(1, key(1).reversed(), 9001, 0x18, &framed(&[&a]));
        // The client's next query follows the TFO data.
        h.seg(1, key(1), ISN + 1 + 30, 0x18, &framed(&[&q]));
        assert_eq!(h.out, vec![q.clone(), a, q]);
        assert_eq!(h.stats, DecodeStats::default());
    }

    #[test]
    fn mid_stream_capture_starts_at_first_data() {
        let (a, b) = (msg(1, 28), msg(2, 28));
        let mut h = Harness::new(16, 1 << 17);
        h.seg(1, key(1), 5000, 0x10, &[]); // bare ACK: not tracked
        assert_eq!(h.r.len(), 0);
        h.seg(1, key(1), 5000, 0x11, &[]); // bare FIN: not tracked
        assert_eq!(h.r.len(), 0);
        h.seg(1, key(1), 123_456, 0x18, &framed(&[&a]));
        h.seg(1, key(1), 123_456 + 30, 0x18, &framed(&[&b]));
        assert_eq!(h.out, vec![a, b]);
        assert_eq!(h.r.len(), 1);
    }

    #[test]
    fn hole_never_filled_is_given_up_and_resynced() {
        let msgs: Vec<Vec<u8>> = (0..5).map(|i| msg(i, 40)).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let s = framed(&refs); // five 42-byte frames
        let at = |i: usize| ISN + 1 + i as u32;
        let mut h = Harness::new(16, 1 << 17);
        h.seg(10, key(1), ISN, SYN, &[]);
        h.seg(10, key(1), at(0), 0, &s[..42]); // message 0
        h.seg(10, key(1), at(42), 0, &s[42..60]); // half of message 1
        // s[60..84] is never seen.
        h.seg(10, key(1), at(84), 0, &s[84..126]); // message 2
        h.seg(11, key(1), at(126), 0, &s[126..168]); // message 3
        assert_eq!(h.out, msgs[..1]);
        assert_eq!(h.drops(DropReason::TcpGap), 0);
        h.seg(12, key(1), at(168), 0, &s[168..]); // message 4, 2 s later
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert_eq!(
            h.out,
            vec![
                msgs[0].clone(),
                msgs[2].clone(),
                msgs[3].clone(),
                msgs[4].clone()
            ]
        );
        // In sync again.
        h.seg(12, key(1), at(210), 0, &framed(&[&msgs[1]]));
        assert_eq!(h.out.last(), Some(&msgs[1]));
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert!(!h.r.flows[&key(1)].has_data());
    }

    #[test]
    fn zero_length_prefixes_are_skipped() {
        let a = msg(1, 12);
        let mut s = vec![0, 0];
        s.extend(framed(&[&a]));
        s.extend([0, 0, 0, 0]);
        let mut h = Harness::new(16, 1 << 17);
        h.seg(1, key(1), 1, 0, &s);
        // And a zero prefix split across segments.
        h.seg(1, key(1), 1 + s.len() as u32, 0, &[0]);
        h.seg(1, key(1), 2 + s.len() as u32, 0, &[0]);
        h.seg(1, key(1), 3 + s.len() as u32, 0, &framed(&[&a]));
        assert_eq!(h.out, vec![a.clone(), a]);
        assert_eq!(h.stats, DecodeStats::default());
    }

    #[test]
    fn fin_flushes_and_forgets() {
        let (a, b) = (msg(1, 20), msg(2, 20));
        let mut h = Harness::new(16, 1 << 17);
        // Clean close.
        h.seg(1, key(1), ISN, SYN, &[]);
        h.seg(1, key(1), ISN + 1, 0x19, &framed(&[&a])); // data + FIN
        assert_eq!(h.out, vec![a.clone()]);
        assert_eq!(h.r.len(), 0);
        assert_eq!(h.stats, DecodeStats::default());

        // FIN with a hole: the held message is emitted, the hole counted.
        h.out.clear();
        h.seg(1, key(2), ISN, SYN, &[]);
        h.seg(1, key(2), ISN + 1 + 22, 0, &framed(&[&b]));
        h.seg(1, key(2), ISN + 1 + 44, 0x11, &[]);
        assert_eq!(h.out, vec![b]);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert_eq!(h.r.len(), 0);

        // FIN in the middle of a message: the partial message is lost.
        h.out.clear();
        h.seg(1, key(3), 50, 0, &framed(&[&a])[..10]);
        h.seg(1, key(3), 60, 0x11, &[]);
        assert!(h.out.is_empty());
        assert_eq!(h.drops(DropReason::TcpGap), 2);
        assert_eq!(h.r.len(), 0);
    }

    #[test]
    fn rst_drops_partial_data() {
        let a = msg(1, 20);
        let mut h = Harness::new(16, 1 << 17);
        h.seg(1, key(1), 50, 0, &framed(&[&a])[..10]);
        h.seg(1, key(1), 60, RST, &framed(&[&a])[10..]);
        assert!(h.out.is_empty());
        assert_eq!(h.r.len(), 0);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        // RST of an idle, in-sync direction loses nothing.
        h.seg(1, key(2), 50, 0, &framed(&[&a]));
        h.seg(1, key(2), 72, RST, &[]);
        assert_eq!(h.out, vec![a]);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert_eq!(h.r.len(), 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let msgs: Vec<Vec<u8>> = (0..4).map(|i| msg(i, 11)).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let s = framed(&refs); // 52 bytes across the wrap
        let isn = 0xFFFF_FFF0u32;
        let at = |i: usize| isn.wrapping_add(1).wrapping_add(i as u32);
        let mut h = Harness::new(16, 1 << 17);
        h.seg(1, key(1), isn, SYN, &[]);
        h.seg(1, key(1), at(20), 0, &s[20..40]); // after the wrap, early
        h.seg(1, key(1), at(0), 0, &s[..20]); // before the wrap
        h.seg(1, key(1), at(10), 0, &s[10..30]); // retransmission across it
        h.seg(1, key(1), at(40), 0, &s[40..]);
        assert_eq!(h.out, msgs);
        assert_eq!(h.r.flows[&key(1)].next, at(52));
        assert_eq!(h.stats, DecodeStats::default());
    }

    #[test]
    fn tiny_buffer_skips_big_messages_exactly() {
        let (big, small) = (msg(1, 30), msg(2, 5));
        let s = framed(&[&big, &small, &big]);
        let mut h = Harness::new(16, 8);
        // Whole messages in one segment need no buffer.
        h.seg(1, key(1), 1, 0, &s);
        assert_eq!(h.out, vec![big.clone(), small.clone(), big.clone()]);
        // Split: the big message cannot be buffered; it is skipped and the
        // small one after it is still found.
        h.out.clear();
        let base = 1 + s.len() as u32;
        h.seg(1, key(1), base, 0, &s[..10]);
        h.seg(1, key(1), base + 10, 0, &s[10..20]);
        h.seg(1, key(1), base + 20, 0, &s[20..36]);
        h.seg(1, key(1), base + 36, 0, &s[36..]);
        assert_eq!(h.out, vec![small, big]);
        assert_eq!(h.drops(DropReason::TcpOverflow), 1);
        assert_eq!(h.drops(DropReason::TcpGap), 0);
    }

    #[test]
    fn held_segments_beyond_the_buffer_give_up_the_hole() {
        let msgs: Vec<Vec<u8>> = (0..6).map(|i| msg(i, 18)).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let s = framed(&refs); // six 20-byte frames
        let mut h = Harness::new(16, 64);
        h.seg(1, key(1), 1, 0, &s[..30]); // message 0 and half of 1
        // Message 1's tail is missing; 2, 3, 4 are held (10 + 60 > 64).
        for i in 2..5 {
            h.seg(1, key(1), 1 + 20 * i as u32, 0, &s[20 * i..20 * (i + 1)]);
        }
        assert_eq!(h.drops(DropReason::TcpOverflow), 1);
        assert_eq!(
            h.out,
            vec![
                msgs[0].clone(),
                msgs[2].clone(),
                msgs[3].clone(),
                msgs[4].clone()
            ]
        );
        h.seg(1, key(1), 101, 0, &s[100..]);
        assert_eq!(h.out.last(), Some(&msgs[5]));
        // Too many small held segments also gives up.
        let mut h = Harness::new(16, 1 << 20);
        h.seg(1, key(1), 1, 0, &[0]); // half a prefix, then a hole
        for i in 0..=MAX_OUT_OF_ORDER as u32 {
            h.seg(1, key(1), 10 + 20 * i, 0, &framed(&[&msgs[0]]));
        }
        assert_eq!(h.drops(DropReason::TcpOverflow), 1);
        assert_eq!(h.out.len(), MAX_OUT_OF_ORDER + 1);
    }

    #[test]
    fn table_full_evicts_least_recently_used() {
        let a = msg(1, 20);
        let s = framed(&[&a]);
        let mut h = Harness::new(2, 1 << 17);
        h.seg(1, key(1), 1, 0, &s[..5]);
        h.seg(1, key(2), 1, 0, &s[..5]);
        h.seg(2, key(1), 6, 0, &s[5..10]); // key 1 is now the most recent
        h.seg(3, key(3), 1, 0, &s[..5]);
        assert_eq!(h.r.len(), 2);
        assert_eq!(h.drops(DropReason::TcpOverflow), 1);
        assert_eq!(h.stats.evicted(StateTable::Tcp, Bound::Entries), 1);
        assert!(!h.r.flows.contains_key(&key(2)));
        h.seg(3, key(1), 11, 0, &s[10..]);
        assert_eq!(h.out, vec![a]);
        // Many flows through a small table keep the LRU queue small.
        for port in 10..2000 {
            h.seg(4, key(port), 1, 0, &s[..5]);
        }
        assert_eq!(h.r.len(), 2);
        assert!(h.r.lru.len() <= 2 * h.r.len() + 65);
    }

    #[test]
    fn byte_budget_evicts_the_oldest_after_emitting_what_they_held() {
        // A direction whose first message the capture missed: the second
        // one waits behind the hole.
        let (a, b) = (msg(1, 20), msg(2, 30));
        let s = framed(&[&a, &b]);
        let one_big = DIRECTION_OVERHEAD + 60_002;
        let budget = 3 * one_big + 100; // less than the first direction
        let mut r = TcpReassembler::new(100, 1 << 17, budget, 60);
        let mut stats = DecodeStats::default();
        let out = std::cell::RefCell::new(Vec::<(u64, Vec<u8>)>::new());
        let feed = |r: &mut TcpReassembler, now, k, seq, data: &[u8], stats: &mut _| {
            r.segment(now, k, seq, 0, 0, data, stats, &mut |m| {
                out.borrow_mut().push((now, m.to_vec()))
            });
            r.shed(stats, &mut |last_seen, m| {
                out.borrow_mut().push((last_seen, m.to_vec()))
            });
            assert!(r.bytes() <= budget);
            assert_eq!(
                r.bytes,
                r.flows.values().map(Direction::footprint).sum::<usize>()
            );
        };
        feed(&mut r, 7, key(1), ISN, &s[..1], &mut stats);
        feed(&mut r, 8, key(1), ISN + 22, &s[22..], &mut stats);
        assert!(r.flows[&key(1)].has_hole());

        // Then connections that announce a 60 000-byte message and stop.
        let mut prefix = 60_000u16.to_be_bytes().to_vec();
        prefix.extend_from_slice(&[0; 10]);
        for port in 2..7 {
            feed(&mut r, 9, key(port), ISN, &prefix, &mut stats);
        }
        // Three fit: the hole's direction, the least recently used, went
        // first, then the two oldest floods.
        assert_eq!(r.len(), 3);
        assert!(!r.flows.contains_key(&key(1)));
        assert_eq!(stats.evicted(StateTable::Tcp, Bound::Bytes), 3);
        assert_eq!(stats.evicted(StateTable::Tcp, Bound::Entries), 0);
        // The held message came out, with its direction's time; the
        // hole and the floods' partial messages are overflow, not gaps.
        assert_eq!(*out.borrow(), vec![(8, b)]);
        assert_eq!(stats.dropped(DropReason::TcpOverflow), 3);
        assert_eq!(stats.dropped(DropReason::TcpGap), 0);
        assert_eq!(r.holed, 0);

        // A flow that keeps talking is never the oldest: it survives a
        // flood that evicts everything else many times over.
        let c = msg(3, 40);
        let sc = framed(&[&c]);
        let evicted = stats.evicted(StateTable::Tcp, Bound::Bytes);
        for (i, port) in (2000..2000 + sc.len() as u16).enumerate() {
            feed(
                &mut r,
                10,
                key(1000),
                ISN + i as u32,
                &sc[i..=i],
                &mut stats,
            );
            feed(&mut r, 10, key(port), ISN, &prefix, &mut stats);
        }
        assert!(stats.evicted(StateTable::Tcp, Bound::Bytes) >= evicted + sc.len() as u64);
        assert_eq!(out.borrow().last(), Some(&(10, c)));
    }

    #[test]
    fn idle_directions_expire() {
        let a = msg(1, 20);
        let s = framed(&[&a]);
        let mut h = Harness::new(16, 1 << 17);
        h.seg(100, key(1), 1, 0, &s[..5]); // partial: lost at expiry
        h.seg(100, key(2), 1, 0, &s); // nothing pending
        h.seg(100, key(3), 1, 0, &s[..5]);
        h.seg(150, key(3), 6, 0, &s[5..10]); // still active
        h.expire(160);
        assert_eq!(h.r.len(), 3);
        h.expire(161);
        assert_eq!(h.r.len(), 1);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        h.seg(200, key(3), 11, 0, &s[10..]);
        assert_eq!(h.out, vec![a.clone(), a]);
        h.expire(261);
        assert_eq!(h.r.len(), 0);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
    }

    #[test]
    fn new_syn_or_distant_sequence_starts_over() {
        let a = msg(1, 20);
        let s = framed(&[&a]);
        let mut h = Harness::new(16, 1 << 17);
        h.seg(1, key(1), ISN, SYN, &[]);
        h.seg(1, key(1), ISN + 1, 0, &s[..5]);
        // The port is reused: a new SYN.
        h.seg(2, key(1), 77_000, SYN, &[]);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        h.seg(2, key(1), 77_001, 0, &s);
        // Reused again, SYN missed, new sequence far behind.
        let far_behind = 77_001u32.wrapping_sub(1 << 25);
        h.seg(3, key(1), far_behind, 0, &s);
        // An ordinary retransmission of it is still ignored.
        h.seg(3, key(1), far_behind, 0, &s);
        assert_eq!(h.out, vec![a.clone(), a]);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
    }

    /// The server side of a connection whose capture missed `s[60..126]`
    /// (the tail of message 1 and all of message 2); `s` is five 42-byte
    /// frames. Returns the harness after message 0, half of message 1 and
    /// the segment holding message 3.
    fn server_with_hole(msgs: &[Vec<u8>], s: &[u8]) -> Harness {
        let mut h = Harness::new(16, 1 << 17);
        h.seg(10, key(1), ISN, SYN, &[]);
        h.seg(10, key(1), ISN + 1, 0, &s[..42]); // message 0
        h.seg(10, key(1), ISN + 1 + 42, 0, &s[42..60]); // half of message 1
        h.seg(10, key(1), ISN + 1 + 126, 0, &s[126..168]); // message 3
        assert_eq!(h.out, msgs[..1]);
        assert_eq!(h.r.holed, 1);
        h
    }

    fn five_frames() -> (Vec<Vec<u8>>, Vec<u8>) {
        let msgs: Vec<Vec<u8>> = (0..5).map(|i| msg(i, 40)).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let s = framed(&refs);
        (msgs, s)
    }

    #[test]
    fn reverse_ack_after_the_held_data_gives_up_the_hole() {
        let (msgs, s) = five_frames();
        let at = |i: usize| ISN + 1 + i as u32;
        let client = key(1).reversed();
        let mut h = server_with_hole(&msgs, &s);
        // ACKs that do not cover the hole change nothing: ones inside it
        // (byte 125 may still come), one without the ACK flag, one far
        // beyond anything sent (another connection's numbers).
        h.seg_ack(10, client, 7, at(100), 0x10, &[]);
        h.seg_ack(10, client, 7, at(125), 0x10, &[]);
        h.seg_ack(10, client, 7, at(168), 0x08, &framed(&[&[]]));
        h.seg_ack(10, client, 9, at(0).wrapping_add(1 << 30), 0x10, &[]);
        assert_eq!(h.out, msgs[..1]);
        assert_eq!(h.drops(DropReason::TcpGap), 0);
        // The client acknowledges message 3: the hole was received, so it
        // is given up at once, not 2 s later, and message 3 is emitted.
        h.seg_ack(10, client, 9, at(168), 0x10, &[]);
        assert_eq!(h.out, vec![msgs[0].clone(), msgs[3].clone()]);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert_eq!(h.r.holed, 0);
        // In sync again; the repeated ACK gives up nothing more.
        h.seg(10, key(1), at(168), 0, &s[168..]);
        h.seg_ack(10, client, 9, at(210), 0x10, &[]);
        assert_eq!(h.out.last(), Some(&msgs[4]));
        assert_eq!(h.out.len(), 3);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert!(!h.r.flows[&key(1)].has_data());
    }

    #[test]
    fn reverse_ack_before_the_held_data_gives_up_the_hole() {
        let (msgs, s) = five_frames();
        let at = |i: usize| ISN + 1 + i as u32;
        let client = key(1).reversed();
        let mut h = Harness::new(16, 1 << 17);
        h.seg(10, key(1), ISN, SYN, &[]);
        h.seg(10, key(1), at(0), 0, &s[..42]);
        h.seg(10, key(1), at(42), 0, &s[42..60]);
        // The client (which sent a query, so is followed) acknowledges
        // everything up to message 3 before the capture shows message 3.
        h.seg_ack(10, client, 7, at(0), 0x18, &framed(&[&[]]));
        h.seg_ack(10, client, 9, at(126), 0x10, &[]);
        assert_eq!(h.r.holed, 0);
        h.seg(10, key(1), at(126), 0, &s[126..168]);
        assert_eq!(h.out, vec![msgs[0].clone(), msgs[3].clone()]);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert_eq!(h.r.holed, 0);

        // Only the client's last ACK counts: one that stops short of the
        // next hole leaves that hole to wait.
        h.seg(10, key(1), at(168 + 50), 0, &framed(&[&msgs[1]]));
        assert_eq!(h.r.holed, 1);
        h.seg_ack(10, client, 9, at(168 + 49), 0x10, &[]);
        h.seg(10, key(1), at(168 + 92), 0, &framed(&[&msgs[2]]));
        assert_eq!(h.out.len(), 2);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        // A later ACK covering both held segments gives the hole up once.
        h.seg_ack(10, client, 9, at(168 + 134), 0x10, &[]);
        assert_eq!(h.out[2..], [msgs[1].clone(), msgs[2].clone()]);
        assert_eq!(h.drops(DropReason::TcpGap), 2);
        assert_eq!(h.r.holed, 0);
    }

    #[test]
    fn reverse_ack_gives_up_every_hole_it_covers() {
        let (msgs, s) = five_frames();
        let at = |i: usize| ISN + 1 + i as u32;
        let mut h = Harness::new(16, 1 << 17);
        h.seg(10, key(1), ISN, SYN, &[]);
        h.seg(10, key(1), at(0), 0, &s[..42]);
        // Holes at 42..84 and 126..168; messages 2 and 4 held.
        h.seg(10, key(1), at(84), 0, &s[84..126]);
        h.seg(10, key(1), at(168), 0, &s[168..]);
        // An ACK into the second hole releases message 2 only.
        h.seg_ack(10, key(1).reversed(), 1, at(140), 0x10, &[]);
        assert_eq!(h.out, vec![msgs[0].clone(), msgs[2].clone()]);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert_eq!(h.r.holed, 1);
        // One beyond both: message 4 too.
        h.seg_ack(10, key(1).reversed(), 1, at(210), 0x10, &[]);
        assert_eq!(h.out[2..], [msgs[4].clone()]);
        assert_eq!(h.drops(DropReason::TcpGap), 2);
        assert_eq!(h.r.holed, 0);
    }

    /// Whether `m` is a run of `s` made only of bytes in `seen`.
    fn seen_run(s: &[u8], seen: &[bool], m: &[u8]) -> bool {
        (0..=s.len().saturating_sub(m.len()))
            .any(|o| &s[o..o + m.len()] == m && seen[o..o + m.len()].iter().all(|&b| b))
    }

    #[test]
    fn reverse_ack_never_emits_unseen_bytes() {
        let (msgs, s) = five_frames();
        let at = |i: usize| ISN + 1 + i as u32;
        let client = key(1).reversed();

        // Message 0's length prefix is never seen: the stream resyncs at
        // its first body bytes (0, 1), reads them as a length of 1 and
        // emits the junk "message" [2], a byte that was seen; the rest is
        // framed as one 772-byte message, incomplete at the end.
        let mut h = Harness::new(16, 1 << 17);
        h.seg(10, key(1), ISN, SYN, &[]);
        h.seg(10, key(1), at(2), 0, &s[2..100]);
        h.seg(10, key(1), at(100), 0, &s[100..]);
        h.seg_ack(10, client, 1, at(2), 0x10, &[]);
        assert_eq!(h.out, vec![vec![2]]);
        h.flush_all();
        assert_eq!(h.out, vec![vec![2]]);
        assert_eq!(h.drops(DropReason::TcpGap), 2);

        // Message 1 is seen but for its tail: it is not emitted, nor
        // anything holding the missing bytes; the rest is.
        let mut seen = vec![true; s.len()];
        seen[60..84].fill(false);
        let mut h = Harness::new(16, 1 << 17);
        h.seg(10, key(1), ISN, SYN, &[]);
        h.seg(10, key(1), at(0), 0, &s[..60]);
        h.seg(10, key(1), at(84), 0, &s[84..]);
        h.seg_ack(10, client, 1, at(210), 0x10, &[]);
        h.flush_all();
        for m in &h.out {
            assert!(seen_run(&s, &seen, m), "{m:?} holds unseen bytes");
        }
        let mut want = msgs.clone();
        want.remove(1);
        assert_eq!(h.out, want);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
    }

    #[test]
    fn flush_all_emits_held_messages_and_forgets_everything() {
        let (msgs, s) = five_frames();
        let at = |i: usize| ISN + 1 + i as u32;
        let mut h = server_with_hole(&msgs, &s);
        h.seg(10, key(1), at(168), 0, &s[168..]); // message 4, held too
        // Another flow: in sync, with a partial message pending.
        h.seg(10, key(2), 500, 0, &s[..42 + 5]);
        // And one with nothing pending.
        h.seg(10, key(3), 500, 0, &s[..42]);
        assert_eq!(h.out.len(), 3);
        h.flush_all();
        assert_eq!(h.out[3..], [msgs[3].clone(), msgs[4].clone()]);
        // The server's hole and key 2's partial message.
        assert_eq!(h.drops(DropReason::TcpGap), 2);
        assert_eq!(h.r.holed, 0);
        assert!(h.r.lru.is_empty());
        // Usable afterwards.
        h.seg(11, key(1), at(210), 0, &framed(&[&msgs[0]]));
        assert_eq!(h.out.last(), Some(&msgs[0]));
        h.flush_all();
        assert_eq!(h.drops(DropReason::TcpGap), 2);
    }

    #[test]
    fn expiry_emits_held_messages() {
        let (msgs, s) = five_frames();
        let mut h = server_with_hole(&msgs, &s);
        let mut got = Vec::new();
        h.r.expire(70, &mut h.stats, &mut |t, m| got.push((t, m.to_vec())));
        assert!(got.is_empty());
        assert_eq!(h.r.len(), 1);
        // Key 1 is idle (last segment at 10): its hole is given up, message
        // 3 is released with the time of that last segment.
        h.r.expire(71, &mut h.stats, &mut |t, m| got.push((t, m.to_vec())));
        assert_eq!(got, vec![(10, msgs[3].clone())]);
        assert_eq!(h.drops(DropReason::TcpGap), 1);
        assert_eq!(h.r.len(), 0);
        assert_eq!(h.r.holed, 0);
        h.check_bounds();
    }

    proptest! {
        /// However a stream is cut, reordered (within the held-segment
        /// limit) and duplicated, the messages come out once, in order.
        #[test]
        fn any_segmentation_and_order(
            lens in prop::collection::vec(0usize..300, 1..12),
            cuts in prop::collection::vec(1usize..200, 1..40),
            swaps in prop::collection::vec((0usize..64, 0usize..64), 0..30),
            dups in prop::collection::vec(0usize..64, 0..10),
            isn in prop_oneof![Just(0xFFFF_FF00u32), any::<u32>()],
        ) {
            let msgs: Vec<Vec<u8>> =
                lens.iter().enumerate().map(|(i, &l)| msg(i as u8, l)).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
            let s = framed(&refs);
            let mut bounds = vec![0];
            for c in cuts {
                let next = bounds.last().unwrap() + c;
                if next >= s.len() { break; }
                bounds.push(next);
            }
            bounds.push(s.len());
            let mut segs: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            for (i, j) in swaps {
                let n = segs.len();
                segs.swap(i % n, j % n);
            }
            for d in dups {
                let pick = segs[d % segs.len()];
                segs.insert(d % (segs.len() + 1), pick);
            }
            let mut h = Harness::new(4, 1 << 20);
            h.seg(1, key(1), isn, SYN, &[]);
            for (from, to) in segs {
                let seq = isn.wrapping_add(1).wrapping_add(from as u32);
                h.seg(1, key(1), seq, 0, &s[from..to]);
            }
            let want: Vec<Vec<u8>> = msgs.into_iter().filter(|m| !m.is_empty()).collect();
            prop_assert_eq!(h.out, want);
            prop_assert_eq!(h.stats, DecodeStats::default());
        }

        /// Arbitrary segments never panic, keep every bound, and emit only
        /// bytes that were sent.
        #[test]
        fn arbitrary_segments_stay_bounded(
            segs in prop::collection::vec(
                (
                    (0u16..4, any::<bool>()),
                    0u32..400,
                    0u32..500,
                    any::<u8>(),
                    prop::collection::vec(any::<u8>(), 0..80),
                    0u64..3,
                ),
                1..300,
            ),
            base in prop_oneof![Just(0xFFFF_FF80u32), any::<u32>()],
        ) {
            // The byte budget is raised to what one direction may hold.
            let mut h = Harness::with_budget(3, 100, 0);
            let mut now = 0;
            let mut seen = Vec::new();
            for ((port, back), off, ack, flags, data, dt) in segs {
                now += dt;
                seen.extend_from_slice(&data);
                let k = if back { key(port).reversed() } else { key(port) };
                h.seg_ack(now, k, base.wrapping_add(off), base.wrapping_add(ack), flags, &data);
                h.expire(now);
            }
            h.flush_all();
            for m in &h.out {
                prop_assert!(!m.is_empty());
                prop_assert!(m.len() <= seen.len());
            }
        }

        /// A stream cut, reordered and with segments the capture missed,
        /// its receiver's ACKs interleaved: whatever comes out (including
        /// at the end of input) is a run of bytes that were seen. If none
        /// was missed and every ACK covers only bytes already seen in
        /// order, every message comes out once, in order.
        #[test]
        fn holes_and_acks_emit_only_seen_bytes(
            lens in prop::collection::vec(0usize..200, 1..10),
            cuts in prop::collection::vec(1usize..120, 1..30),
            swaps in prop::collection::vec((0usize..64, 0usize..64), 0..10),
            missed in prop::collection::vec(0usize..64, 0..4),
            acks in prop::collection::vec((0usize..64, 0usize..2000, any::<bool>()), 0..20),
            isn in prop_oneof![Just(0xFFFF_FF00u32), any::<u32>()],
        ) {
            let msgs: Vec<Vec<u8>> =
                lens.iter().enumerate().map(|(i, &l)| msg(i as u8 + 1, l)).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
            let s = framed(&refs);
            let mut bounds = vec![0];
            for c in cuts {
                let next = bounds.last().unwrap() + c;
                if next >= s.len() { break; }
                bounds.push(next);
            }
            bounds.push(s.len());
            let mut segs: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
            for (i, j) in swaps {
                let n = segs.len();
                segs.swap(i % n, j % n);
            }
            let n = segs.len();
            let missed: Vec<usize> = missed.iter().map(|m| m % n).collect();
            let at = |i: usize| isn.wrapping_add(1).wrapping_add(i as u32);
            let client = key(1).reversed();
            let mut h = Harness::new(4, 1 << 20);
            h.seg(1, key(1), isn, SYN, &[]);
            // The client is followed (an empty query), so its bare ACKs
            // are remembered.
            h.seg_ack(1, client, 7, at(0), 0x18, &[0, 0]);
            let mut seen = vec![false; s.len()];
            let mut honest = missed.is_empty();
            for (i, &(from, to)) in segs.iter().enumerate() {
                for &(when, how_far, valid) in &acks {
                    if when % n != i {
                        continue;
                    }
                    // A valid ACK covers only the bytes seen in order so
                    // far; others may cover anything.
                    let upto = if valid {
                        seen.iter().position(|&b| !b).unwrap_or(s.len())
                    } else {
                        honest = false;
                        how_far % (s.len() + 1)
                    };
                    h.seg_ack(1, client, 9, at(upto), 0x10, &[]);
                }
                if missed.contains(&i) {
                    continue;
                }
                seen[from..to].fill(true);
                h.seg(1, key(1), at(from), 0, &s[from..to]);
            }
            h.flush_all();
            for m in &h.out {
                prop_assert!(seen_run(&s, &seen, m), "{:?} holds unseen bytes", m);
            }
            if honest {
                let want: Vec<Vec<u8>> = msgs.into_iter().filter(|m| !m.is_empty()).collect();
                prop_assert_eq!(h.out, want);
                prop_assert_eq!(h.stats, DecodeStats::default());
            }
        }
    }
}
