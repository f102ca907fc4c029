//! Repeated responses: a response seen before in the same batch is counted
//! without being parsed again.
//!
//! A resolver answers the same popular names over and over, and within one
//! flush window most of its responses are byte for byte a response it sent
//! before, the 16-bit ID aside. Parsing such a response again, building its
//! keys and looking them up in the aggregator's tables gives exactly the
//! updates the first one gave. So the first time a response is extracted,
//! the aggregator records which of its entries it updated
//! ([`Observed`] handles) and the extractor what it counted
//! ([`Extraction`]); both are kept here under the message's bytes. The next
//! time the same bytes arrive, the handles are replayed with the new
//! capture time and the counts added — the store and every counter end
//! exactly as on the slow path, which `tests/repeats.rs` checks over real
//! and mutated captures.
//!
//! **What makes two responses the same.** Everything after the ID, except
//! that ASCII letters of the question name are compared without case: DNS
//! 0x20 (RFC draft-vixie-dnsext-dns0x20) randomises that case per query, and
//! extraction lowercases every name it reads, whether it reads it in the
//! question or through a compression pointer into it (names are the only
//! thing a pointer can reach). Any other byte, a TTL counting down in a
//! resolver's cache included, makes a different response; that costs speed,
//! never correctness.
//!
//! A pointer can also land inside a label of the question name, and then a
//! byte of it from `C0` up reads as another pointer, the letter after it as
//! that pointer's offset: the same message with that letter in the other
//! case names another place. So a question name holding such a byte is
//! not folded. Read as a label length, a letter is invalid in either case.
//!
//! The ID does not matter — unless a compression pointer points into it,
//! which makes a name of its two bytes (the fuzzer found one). Such a
//! pointer is the byte pair `C0 00` or `C0 01`; a response holding that
//! pair anywhere after its header (a pointer, or just an address in
//! 192.0.0.0/15) is never remembered.
//!
//! **Bounds.** Only responses of QUERY opcode up to [`MAX_MESSAGE`] bytes
//! are kept, and only as many as the worker's [`Capacity`] allows, which
//! follows the aggregator's bound: what is remembered is forgotten when the
//! aggregator hands its batch over, so a larger batch is worth more room.
//! With the default bound, 131 072 responses in 20 MiB for one thread
//! (about 22 MiB with the index and the messages held back, see
//! *Lookahead* on [`Repeats`]), 65 536 in 10 MiB each for two. When that
//! is full, nothing more is remembered until the batch is handed over:
//! popular responses are the ones seen early in a window, so room for half
//! as many responses as the batch has keys took 83 % of the responses at
//! 100 k names as repeats, where remembering every distinct one would have
//! taken 83.5 %. Everything is forgotten when the aggregator hands its
//! batch over (its [`generation`](Aggregator::generation) changes): the
//! handles point into that batch.
//!
//! **When nothing repeats.** Remembering costs a copy and an insert per
//! response, about 6 % of a random-subdomain flood's time, for nothing.
//! So the hits are counted: after [`PROBE_MISSES`] misses with fewer than
//! one hit in [`MIN_HIT_SHARE`], the next [`BYPASS`] responses go straight
//! to the slow path, and then the shortcut looks again.
//!
//! **Order.** The shortcut may extract a message after later ones (see
//! *Lookahead*). Nothing in a batch depends on the order of its updates
//! (counts add up, first and last sightings are minimums and maximums,
//! the TTL kept is the latest sighting's), and the worker drains what is
//! held back before it hands a batch over, so each batch holds exactly
//! the messages that came before it.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use crate::aggregate::{Aggregator, Observed};
use crate::extract::{ExtractStats, Extraction, Extractor};
use crate::hint;
use crate::vocab::OptRcode;
use crate::vocab::packet::{DnsMessage, Timestamp, Transport};

/// Largest response (in bytes) remembered. Large responses are few but
/// carry the most records, so theirs is the dearest parse to skip: on the
/// bench's traffic at 10 k names the 1 % of responses over 3 000 bytes
/// (big RRsets of up to a few hundred records) cost a quarter of ingest's
/// CPU while only responses up to 2 048 bytes were remembered.
/// 16 KiB keeps any one entry under 3 % of the smallest [`Capacity`].
pub const MAX_MESSAGE: usize = 16 << 10;

/// How much one worker remembers: at most `entries` responses (the
/// index's own bound, a power of two) in `bytes` of messages, headers
/// and handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    entries: usize,
    bytes: usize,
}

impl Capacity {
    /// Fewest responses remembered, however small the aggregator.
    const MIN_ENTRIES: usize = 4_096;
    /// Most responses remembered, however large the aggregator: 20 MiB,
    /// and an index of 2 MiB.
    const MAX_ENTRIES: usize = 131_072;
    /// Bytes per response remembered: the bench's responses take 100–140
    /// with their header and handles (with 128, as before the headers
    /// moved out of the table, 1 % fewer repeats were taken at 10 k and
    /// 1 M names than with 160).
    const BYTES_PER_ENTRY: usize = 160;

    /// The capacity for an aggregator that holds `keys` keys: room for
    /// `keys / 2` responses, rounded up to a power of two. Measured at
    /// 100 k names, one thread: 32 768 responses for 100 000 keys took 71 %
    /// of the responses; 65 536, 75 %; 131 072 for 200 000 keys, 83 %
    /// (every distinct response of the capture but 1 %).
    pub fn for_keys(keys: usize) -> Capacity {
        let entries = (keys / 2)
            .next_power_of_two()
            .clamp(Capacity::MIN_ENTRIES, Capacity::MAX_ENTRIES);
        Capacity {
            entries,
            bytes: entries * Capacity::BYTES_PER_ENTRY,
        }
    }

    /// Responses remembered at most.
    pub fn entries(self) -> usize {
        self.entries
    }

    /// Bytes of remembered responses at most.
    pub fn bytes(self) -> usize {
        self.bytes
    }
}

/// Misses after which the share of hits is judged.
const PROBE_MISSES: u32 = 16_384;

/// Below one hit per this many misses, the shortcut is not worth it.
const MIN_HIT_SHARE: u32 = 16;

/// Responses that skip the shortcut once it was not worth it.
const BYPASS: u32 = 262_144;

/// One remembered response, in `arena`: a [`Header`] of [`HEADER`] bytes,
/// its updates ([`Observed::to_bytes`]), then its fingerprint (the message
/// after its ID, question name folded) — next to each other, so the lines
/// a hit reads are one run, and the header shares its line with the first
/// updates (which the lookahead reads before the fingerprint). [`Slots`]
/// hold only where each record starts and part of its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    hash: u64,
    /// Fingerprint bytes.
    len: u32,
    /// Updates after the header.
    updates: u32,
    extraction: Extraction,
}

/// Bytes of an encoded [`Header`].
const HEADER: usize = 32;

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        let e = &self.extraction;
        let start = out.len();
        out.extend_from_slice(&self.hash.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.updates.to_le_bytes());
        out.extend_from_slice(&e.rcode.to_int().to_le_bytes());
        out.push(u8::from(e.negative));
        out.push(0);
        out.extend_from_slice(&e.records.to_le_bytes());
        out.extend_from_slice(&e.ignored.to_le_bytes());
        out.extend_from_slice(&e.malformed.to_le_bytes());
        debug_assert_eq!(out.len() - start, HEADER);
    }

    /// The hash of the record at `at` (all a lookup needs before comparing
    /// bytes).
    #[inline]
    fn hash_at(arena: &[u8], at: u32) -> u64 {
        u64::from_le_bytes(field(arena, at as usize))
    }

    #[inline]
    fn read(arena: &[u8], at: u32) -> Header {
        let at = at as usize;
        let u32_at = |offset| u32::from_le_bytes(field(arena, at + offset));
        Header {
            hash: u64::from_le_bytes(field(arena, at)),
            len: u32_at(8),
            updates: u32_at(12),
            extraction: Extraction {
                rcode: OptRcode::masked_from_int(u16::from_le_bytes(field(arena, at + 16))),
                negative: arena[at + 18] != 0,
                records: u32_at(20),
                ignored: u32_at(24),
                malformed: u32_at(28),
            },
        }
    }

    /// Where the updates of the record at `at` lie in the arena.
    #[inline]
    fn updates_range(&self, at: u32) -> std::ops::Range<usize> {
        let start = at as usize + HEADER;
        start..start + self.updates as usize * Observed::BYTES
    }

    /// Where the fingerprint of the record at `at` lies in the arena.
    #[inline]
    fn fingerprint_range(&self, at: u32) -> std::ops::Range<usize> {
        let start = self.updates_range(at).end;
        start..start + self.len as usize
    }
}

/// `N` bytes of `arena` at `at`.
#[inline]
fn field<const N: usize>(arena: &[u8], at: usize) -> [u8; N] {
    arena[at..at + N].try_into().expect("N bytes")
}

/// The updates in `bytes` (a whole number of [`Observed::BYTES`]).
#[inline]
fn updates(bytes: &[u8]) -> impl Iterator<Item = Observed> + '_ {
    bytes
        .chunks_exact(Observed::BYTES)
        .map(|b| Observed::from_bytes(b.try_into().expect("chunks of BYTES")))
}

/// The index of the remembered responses: open addressing with linear
/// probing over twice as many 8-byte slots as [`Capacity::entries`] (so
/// that probes stay short), each holding the upper half of a
/// response's hash and where the response starts in the arena, plus one
/// (0 is an empty slot). 1 MiB for 65 536 responses.
///
/// Hand-written rather than a `hashbrown` table for the one thing
/// hashbrown does not offer: the address a lookup will read, known from the
/// hash alone, so that it can be asked for a few messages ahead (see
/// *Lookahead* on [`Repeats`]). Entries are only inserted, and all cleared
/// at once; at most [`Capacity::entries`] fill half the slots, so an empty slot
/// always ends a probe.
struct Slots {
    slots: Box<[u64]>,
    len: usize,
}

impl Slots {
    /// An index for `entries` responses (a power of two).
    fn new(entries: usize) -> Slots {
        debug_assert!(entries.is_power_of_two());
        Slots {
            slots: vec![0; 2 * entries].into_boxed_slice(),
            len: 0,
        }
    }

    /// Slots − 1: their number is a power of two.
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot where the probe for `hash` starts (its lower bits).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// The part of `hash` a slot keeps (its upper bits).
    #[inline]
    fn tag(hash: u64) -> u64 {
        hash >> 32
    }

    /// Asks for the slot where the probe for `hash` starts.
    #[inline]
    fn prefetch(&self, hash: u64) {
        hint::prefetch(&self.slots[self.home(hash)]);
    }

    /// Where the responses whose hash has the upper half of `hash` start,
    /// in probe order.
    #[inline]
    fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let tag = Slots::tag(hash);
        let mut i = self.home(hash);
        std::iter::from_fn(move || {
            loop {
                let slot = self.slots[i];
                if slot == 0 {
                    return None;
                }
                i = (i + 1) & self.mask();
                if slot >> 32 == tag {
                    return Some(slot as u32 - 1);
                }
            }
        })
    }

    /// Adds the response at `at` (below 4 GiB − 1) with `hash`.
    ///
    /// # Panics
    /// In debug builds, if half the slots are taken already.
    fn insert(&mut self, hash: u64, at: u32) {
        debug_assert!(self.len < self.slots.len() / 2);
        let mut i = self.home(hash);
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = (Slots::tag(hash) << 32) | u64::from(at + 1);
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(0);
            self.len = 0;
        }
    }
}

/// Remembered bytes from which the shortcut works ahead: below, what it
/// reads stays in a core's caches, and holding messages back costs more
/// than it saves (held back from the first response, the bench's 1 k
/// names lost 6 %).
pub const LOOKAHEAD_FROM: usize = 1 << 20;

/// Messages held back at most (see *Lookahead* on [`Repeats`]), plus one.
const RING: usize = 4;

/// A message held back, copied.
struct Waiting {
    data: Vec<u8>,
    ts: Timestamp,
    transport: Transport,
    /// Its fingerprint's hash. The question name of `data` is folded
    /// already, so its fingerprint is `data[2..]`.
    hash: u64,
    /// The first remembered response whose hash has the same upper half:
    /// the likely match, asked for ahead.
    candidate: Option<u32>,
}

impl Default for Waiting {
    fn default() -> Self {
        Waiting {
            data: Vec::new(),
            ts: Timestamp::default(),
            transport: Transport::Udp,
            hash: 0,
            candidate: None,
        }
    }
}

/// The responses one worker has seen in the current batch.
///
/// **Lookahead.** On a hit, the time goes to three cache misses in a row:
/// the index slot, the remembered response it points to, and the
/// aggregator entries the response updates (at the bench's 10 k names,
/// about three quarters of the shortcut's own time). Each address is
/// known only once the load before it is done. So once the remembered
/// responses outgrow a core's caches ([`LOOKAHEAD_FROM`]), a response the
/// shortcut may take is copied and waits while up to `RING - 1` more
/// arrive. When it comes, its slot is asked for; one response later, the
/// remembered response the slot points to; one more, its updates'
/// aggregator entries and its fingerprint; then it is extracted, from the
/// caches. These are hints only: the lookup made when it is extracted is
/// the ordinary one, against the index as it is then. Its question name is
/// folded in the copy (extraction lowercases every name anyway), so the
/// fingerprint is not rebuilt.
///
/// Everything else (queries, messages the shortcut does not take) is
/// extracted at once, ahead of the responses waiting (see *Order* in the
/// module docs). [`Repeats::drain`] extracts all that wait; the worker
/// calls it before every flush, so no message waits longer than the
/// aggregates do. 10 k names, one core: 4.23 → 4.56 M packets/s.
pub struct Repeats {
    capacity: Capacity,
    /// Where each remembered response starts in `arena`.
    slots: Slots,
    arena: Vec<u8>,
    /// The incoming message's fingerprint is built here.
    scratch: Vec<u8>,
    hasher: RandomState,
    /// The aggregator generation the entries belong to.
    generation: u64,
    /// Hits and misses since the share of hits was last judged.
    hits: u32,
    misses: u32,
    /// Responses still to send straight to the slow path.
    bypass: u32,
    /// Remembered bytes from which messages are held back.
    lookahead_from: usize,
    /// Messages held back: `waiting` of them, the oldest at `first`.
    ring: [Waiting; RING],
    first: usize,
    waiting: usize,
}

impl Repeats {
    /// A shortcut remembering at most `capacity`.
    pub fn new(capacity: Capacity) -> Repeats {
        Repeats {
            capacity,
            slots: Slots::new(capacity.entries),
            arena: Vec::new(),
            scratch: Vec::with_capacity(MAX_MESSAGE),
            hasher: RandomState::default(),
            generation: 0,
            hits: 0,
            misses: 0,
            bypass: 0,
            lookahead_from: LOOKAHEAD_FROM,
            ring: Default::default(),
            first: 0,
            waiting: 0,
        }
    }

    /// A shortcut that works ahead once it remembers `bytes` (the default
    /// is [`LOOKAHEAD_FROM`]; 0 always, `usize::MAX` never), for tests and
    /// measurements.
    pub fn with_lookahead_from(self, bytes: usize) -> Repeats {
        Repeats {
            lookahead_from: bytes,
            ..self
        }
    }

    /// Extracts `message` into `aggregator` like [`Extractor::extract`]
    /// does — the same updates, the same counts in `stats` — taking the
    /// shortcut if the same response was extracted before in this batch.
    ///
    /// The message may be held back and extracted by a later call (see
    /// *Lookahead*): [`Repeats::drain`] extracts everything still held.
    #[inline]
    pub fn push(
        &mut self,
        message: &DnsMessage<'_>,
        extractor: &mut Extractor,
        stats: &mut ExtractStats,
        aggregator: &mut Aggregator,
    ) {
        if self.bypass > 0 || !is_candidate(message.data) {
            // Extracted now, ahead of the messages waiting: the batch the
            // worker hands over is the same (it drains first) and nothing
            // in it depends on the order of its updates.
            self.extract(message, None, extractor, stats, aggregator);
            return;
        }
        if self.waiting == 0 {
            // In a new batch (nothing of the last one waits), the
            // threshold is judged afresh.
            self.follow(aggregator);
        }
        if self.arena.len() < self.lookahead_from {
            self.drain(extractor, stats, aggregator);
            self.extract(message, None, extractor, stats, aggregator);
            return;
        }
        let last = &mut self.ring[(self.first + self.waiting) % RING];
        last.data.clear();
        last.data.extend_from_slice(message.data);
        fold_question_name(&mut last.data);
        let hash = self.hasher.hash_one(&last.data[2..]);
        self.slots.prefetch(hash);
        last.ts = message.ts;
        last.transport = message.transport;
        last.hash = hash;
        last.candidate = None;
        self.waiting += 1;
        self.look_ahead(aggregator);
        if self.waiting == RING {
            self.extract_first(extractor, stats, aggregator);
        }
    }

    /// Extracts every message held back.
    pub fn drain(
        &mut self,
        extractor: &mut Extractor,
        stats: &mut ExtractStats,
        aggregator: &mut Aggregator,
    ) {
        while self.waiting > 0 {
            self.extract_first(extractor, stats, aggregator);
        }
    }

    /// Asks for the next load of the messages waiting (see *Lookahead*).
    #[inline]
    fn look_ahead(&mut self, aggregator: &Aggregator) {
        // The message before the newest: its slot was asked for when it
        // came.
        if self.waiting >= 2 {
            let w = &mut self.ring[(self.first + self.waiting - 2) % RING];
            w.candidate = self.slots.candidates(w.hash).next();
            if let Some(at) = w.candidate {
                let header = self.arena.as_ptr().wrapping_add(at as usize);
                hint::prefetch(header);
                hint::prefetch(header.wrapping_add(64));
            }
        }
        // The one before that: its header is at hand. The slot may be
        // stale (the arena was cleared since), so everything is checked.
        if self.waiting >= 3 && aggregator.generation() == self.generation {
            let w = &self.ring[(self.first + self.waiting - 3) % RING];
            let (hash, Some(at)) = (w.hash, w.candidate) else {
                return;
            };
            if at as usize + HEADER > self.arena.len() || Header::hash_at(&self.arena, at) != hash {
                return;
            }
            let header = Header::read(&self.arena, at);
            let Some(bytes) = self.arena.get(header.updates_range(at)) else {
                return;
            };
            for update in updates(bytes) {
                aggregator.prefetch(update);
            }
            let fingerprint = header.fingerprint_range(at);
            for line in fingerprint.step_by(64).take(4) {
                hint::prefetch(self.arena.as_ptr().wrapping_add(line));
            }
        }
    }

    /// Extracts the oldest message waiting.
    fn extract_first(
        &mut self,
        extractor: &mut Extractor,
        stats: &mut ExtractStats,
        aggregator: &mut Aggregator,
    ) {
        let at = self.first;
        let waiting = std::mem::take(&mut self.ring[at]);
        self.first = (at + 1) % RING;
        self.waiting -= 1;
        let message = DnsMessage {
            ts: waiting.ts,
            transport: waiting.transport,
            data: &waiting.data,
        };
        self.extract(&message, Some(waiting.hash), extractor, stats, aggregator);
        // Its buffer goes back where the next message will be copied.
        self.ring[at] = waiting;
    }

    /// Extracts one message now. `folded`: the hash of its fingerprint,
    /// if its question name is folded already (a message that waited), so
    /// that the fingerprint is the message after its ID.
    #[inline]
    fn extract(
        &mut self,
        message: &DnsMessage<'_>,
        folded: Option<u64>,
        extractor: &mut Extractor,
        stats: &mut ExtractStats,
        aggregator: &mut Aggregator,
    ) {
        let data = message.data;
        if !is_candidate(data) {
            extractor.extract(message, stats, aggregator);
            return;
        }
        if self.bypass > 0 {
            self.bypass -= 1;
            extractor.extract(message, stats, aggregator);
            return;
        }
        self.follow(aggregator);
        // From here on `self.scratch` is borrowed (by `fingerprint`): the
        // other fields are reached one by one.
        let (fingerprint, hash) = match folded {
            Some(hash) => (&data[2..], hash),
            None => {
                let fingerprint = fingerprint(data, &mut self.scratch);
                (fingerprint, self.hasher.hash_one(fingerprint))
            }
        };
        let arena = &self.arena;
        let found = self.slots.candidates(hash).find_map(|at| {
            if Header::hash_at(arena, at) != hash {
                return None;
            }
            let header = Header::read(arena, at);
            (arena[header.fingerprint_range(at)] == *fingerprint).then_some((at, header))
        });
        if let Some((at, header)) = found {
            aggregator.replay(updates(&arena[header.updates_range(at)]), message.ts.secs);
            header
                .extraction
                .count(stats, message.transport == Transport::Tcp);
            stats.repeated_responses += 1;
            self.hits += 1;
            return;
        }
        self.misses += 1;
        if self.misses >= PROBE_MISSES {
            if self.hits < self.misses / MIN_HIT_SHARE {
                self.bypass = BYPASS;
                self.slots.clear();
                self.arena.clear();
            }
            self.hits = 0;
            self.misses = 0;
        }

        aggregator.start_recording();
        let extraction = extractor.extract_response(message, stats, aggregator);
        let recorded = aggregator.stop_recording();
        let Some(extraction) = extraction else {
            return;
        };
        if may_point_into_id(data) {
            return;
        }
        let cost = HEADER + fingerprint.len() + recorded.len() * Observed::BYTES;
        if self.slots.len() >= self.capacity.entries
            || self.arena.len() + cost > self.capacity.bytes
        {
            return;
        }
        let at = self.arena.len() as u32;
        Header {
            hash,
            len: fingerprint.len() as u32,
            updates: recorded.len() as u32,
            extraction,
        }
        .write(&mut self.arena);
        for u in recorded {
            self.arena.extend_from_slice(&u.to_bytes());
        }
        self.arena.extend_from_slice(fingerprint);
        self.slots.insert(hash, at);
    }

    /// Forgets every response if the aggregator handed its batch over
    /// since: their handles point into that batch.
    #[inline]
    fn follow(&mut self, aggregator: &Aggregator) {
        if aggregator.generation() != self.generation {
            self.forget();
            self.generation = aggregator.generation();
        }
    }

    /// Forgets every response (keeping the allocations).
    fn forget(&mut self) {
        self.slots.clear();
        self.arena.clear();
    }
}

/// Whether a response whose extraction succeeded is one the shortcut
/// remembers (and so takes its repeats): a QUERY response up to
/// [`MAX_MESSAGE`] bytes with no possible pointer into its ID, while the
/// table has room and the shortcut is not bypassed.
pub fn rememberable(data: &[u8]) -> bool {
    is_candidate(data) && !may_point_into_id(data)
}

/// Whether a message is of the kind the shortcut remembers: a QUERY
/// response up to [`MAX_MESSAGE`] bytes.
#[inline]
fn is_candidate(data: &[u8]) -> bool {
    data.len() <= MAX_MESSAGE && is_query_response(data)
}

/// Whether a compression pointer in `data` may point into its ID (offset
/// 0 or 1): the pair `C0 00` or `C0 01` after the header.
#[inline]
fn may_point_into_id(data: &[u8]) -> bool {
    data.get(12..)
        .is_some_and(|rest| rest.windows(2).any(|w| w[0] == 0xc0 && w[1] < 2))
}

/// Whether a message is a response (QR=1) of opcode QUERY with a whole
/// header: the only messages worth remembering.
#[inline]
fn is_query_response(data: &[u8]) -> bool {
    data.len() >= 12 && data[2] & 0x80 != 0 && (data[2] >> 3) & 0x0f == 0
}

/// The bytes that make two responses the same: the message after its ID,
/// with the ASCII letters of the question name lowercased. That is `data`
/// itself (after the ID) unless the question name holds an uppercase
/// letter (DNS 0x20); only then is it copied into `scratch` and folded
/// there. A question name that does not walk cleanly (a pointer, a label
/// past the end) is left as it is: such messages then only match
/// themselves byte for byte.
#[inline]
fn fingerprint<'a>(data: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let body = &data[2..];
    match question_name(body) {
        // Length bytes are at most 63, so A–Z is never one of them.
        Some(name) if body[name.clone()].iter().any(u8::is_ascii_uppercase) => {
            scratch.clear();
            scratch.extend_from_slice(body);
            scratch[name].make_ascii_lowercase();
            scratch
        }
        _ => body,
    }
}

/// Lowercases the ASCII letters of the question name of `data` (a whole
/// message) in place, if it walks to its root: then `data[2..]` is its
/// fingerprint (see [`fingerprint`]).
#[inline]
fn fold_question_name(data: &mut [u8]) {
    if let Some(name) = question_name(&data[2..]) {
        data[2..][name].make_ascii_lowercase();
    }
}

/// Where the question name's labels lie in `body` (a message after its
/// ID), if the message has a question, its name walks to the root within
/// `body`, and none of its label bytes is from `C0` up (see the module
/// docs: folding it could change where a pointer leads).
#[inline]
fn question_name(body: &[u8]) -> Option<std::ops::Range<usize>> {
    let qdcount = u16::from_be_bytes([body[2], body[3]]);
    if qdcount == 0 {
        return None;
    }
    // The question name starts right after the 12-byte header, which is
    // `body[10..]`. The walk reads only the length bytes; the bytes of
    // the whole name are checked at once after it (a length byte is below
    // 64, so it never trips that check): one pass without an early exit,
    // which the compiler vectorises, instead of a short loop per label.
    let mut pos = 10;
    loop {
        let len = *body.get(pos)?;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        pos += 1 + usize::from(len);
    }
    let name = body.get(10..pos)?;
    let high = name.iter().fold(false, |high, &b| high | (b >= 0xc0));
    (!high).then_some(10..pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(qname: &[u8]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(qname);
        m.extend_from_slice(&[0, 1, 0, 1]);
        m
    }

    #[test]
    fn fingerprint_folds_the_question_name_only() {
        let a = fp(&message(b"\x07ExAmPlE\x03COM\x00"));
        let b = fp(&message(b"\x07example\x03com\x00"));
        assert_eq!(a, b);
        assert_eq!(&a[..2], &[0x81, 0x80]);

        // The type after the name keeps its bytes: 0x41 is not 0x61.
        let mut upper = message(b"\x01a\x00");
        let n = upper.len();
        upper[n - 3] = 0x41;
        let mut lower = upper.clone();
        lower[n - 3] = 0x61;
        assert_ne!(fp(&upper), fp(&lower));
        // And so does an uppercase name that needs folding.
        upper[13] = b'A';
        lower[13] = b'A';
        assert_ne!(fp(&upper), fp(&lower));
    }

    #[test]
    fn a_question_name_a_pointer_could_read_into_is_not_folded() {
        // A label holding `C0 4A`: a pointer landing on its `C0` goes to
        // offset 0x4a; folded, it would go to 0x6a.
        let upper = message(b"\x04x\xc0Jy\x00");
        let lower = message(b"\x04x\xc0jy\x00");
        assert_ne!(fp(&upper), fp(&lower));
        let mut folded = upper.clone();
        fold_question_name(&mut folded);
        assert_eq!(folded, upper);
        // Any other byte leaves the name folded.
        assert_eq!(
            fp(&message(b"\x04x\xbfJy\x00")),
            fp(&message(b"\x04x\xbfjy\x00"))
        );
    }

    /// A response whose CNAME target points at a `C0` inside its question
    /// name's labels, which points on (backwards, as pointers must) with
    /// the letter after it: to offset 0x4a, where the labels hold
    /// `upper.test`, or 0x6a, where they hold `lower.test`.
    fn pointing_into_the_question(letter: u8) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        // The question name: a label of 60 bytes (13..73), one of 50
        // (74..124), the root at 124.
        m.push(60);
        m.resize(73, b'x');
        m.push(50);
        m.resize(124, b'x');
        m[0x4a..0x4a + 12].copy_from_slice(b"\x05upper\x04test\x00");
        m[0x6a..0x6a + 12].copy_from_slice(b"\x05lower\x04test\x00");
        m[120] = 0xc0;
        m[121] = letter;
        m.push(0);
        m.extend_from_slice(&[0, 5, 0, 1]); // CNAME IN
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0x0e, 0x10, 0, 2]);
        m.extend_from_slice(&[0xc0, 120]); // the target: the C0 at 120
        m
    }

    #[test]
    fn a_letter_a_pointer_reads_as_an_offset_keeps_its_case() {
        let (upper, lower) = (
            pointing_into_the_question(b'J'),
            pointing_into_the_question(b'j'),
        );
        let slow = |data: &[u8]| {
            let mut ex = Extractor::new(Default::default());
            let mut agg = Aggregator::new(usize::MAX, crate::vocab::value::Origin::WIRE);
            let mut stats = ExtractStats::default();
            let m = DnsMessage {
                ts: Timestamp::from_secs(1),
                transport: Transport::Udp,
                data,
            };
            assert!(ex.extract_response(&m, &mut stats, &mut agg).is_some());
            format!("{:?}", agg.take().sorted_entries())
        };
        // The premise: the two are different responses.
        assert_ne!(slow(&upper), slow(&lower));
        let mut h = Harness::new();
        assert!(!h.feed(&upper));
        assert!(h.feed(&upper));
        assert!(!h.feed(&lower), "taken as a repeat of the other case");
    }

    #[test]
    fn a_lowercase_name_is_fingerprinted_in_place() {
        let m = message(b"\x07example\x03com\x00");
        let mut scratch = Vec::new();
        let f = fingerprint(&m, &mut scratch);
        assert_eq!(f, &m[2..]);
        assert_eq!(f.as_ptr(), m[2..].as_ptr(), "no copy");
        assert!(scratch.is_empty());
    }

    #[test]
    fn a_name_that_does_not_walk_is_not_folded() {
        // A label running past the end.
        assert_ne!(fp(&message(b"\x3fAB")), fp(&message(b"\x3fab")));
        // A pointer.
        assert_ne!(
            fp(&message(b"\x01A\xc0\x0c")),
            fp(&message(b"\x01a\xc0\x0c"))
        );
    }

    fn fp(data: &[u8]) -> Vec<u8> {
        fingerprint(data, &mut Vec::new()).to_vec()
    }

    /// An NXDOMAIN response for `n.test`.
    fn nxdomain(n: u32) -> Vec<u8> {
        let label = format!("{n:08x}");
        let mut qname = vec![8];
        qname.extend_from_slice(label.as_bytes());
        qname.extend_from_slice(b"\x04test\x00");
        let mut m = message(&qname);
        m[3] = 0x83; // RA, NXDOMAIN
        m
    }

    /// A shortcut with its extractor and aggregator, fed at one time.
    struct Harness {
        repeats: Repeats,
        extractor: Extractor,
        aggregator: Aggregator,
        stats: ExtractStats,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                repeats: Repeats::new(Capacity::for_keys(100_000)),
                extractor: Extractor::new(Default::default()),
                aggregator: Aggregator::new(usize::MAX, crate::vocab::value::Origin::WIRE),
                stats: ExtractStats::default(),
            }
        }

        /// Extracts one message; returns whether it was taken as a repeat.
        fn feed(&mut self, data: &[u8]) -> bool {
            let before = self.stats.repeated_responses;
            let m = DnsMessage {
                ts: Timestamp::from_secs(1),
                transport: Transport::Udp,
                data,
            };
            self.repeats.push(
                &m,
                &mut self.extractor,
                &mut self.stats,
                &mut self.aggregator,
            );
            self.repeats
                .drain(&mut self.extractor, &mut self.stats, &mut self.aggregator);
            self.stats.repeated_responses > before
        }
    }

    #[test]
    fn a_flood_without_repeats_bypasses_the_shortcut_for_a_while() {
        let mut h = Harness::new();
        // Repeats are taken while some responses repeat ...
        assert!(!h.feed(&nxdomain(0)));
        assert!(h.feed(&nxdomain(0)));
        // ... until a whole probe of misses brings less than one hit in 16.
        for n in 1..PROBE_MISSES {
            assert!(!h.feed(&nxdomain(n)));
        }
        assert_eq!(h.repeats.bypass, BYPASS);
        assert!(h.repeats.slots.len() <= 1);
        for _ in 0..BYPASS {
            assert!(!h.feed(&nxdomain(1)));
        }
        // Then it looks again.
        assert_eq!(h.repeats.bypass, 0);
        assert!(!h.feed(&nxdomain(2)));
        assert!(h.feed(&nxdomain(2)));
        assert_eq!(
            h.stats.dns_responses,
            2 + u64::from(PROBE_MISSES) - 1 + u64::from(BYPASS) + 2
        );
        assert_eq!(h.stats.negatives, h.stats.dns_responses);
    }

    #[test]
    fn when_full_nothing_more_is_remembered_until_the_batch_is_taken() {
        let mut h = Harness::new();
        let extra = 1_000;
        let capacity = h.repeats.capacity;
        assert_eq!(capacity.entries(), 65_536);
        for n in 0..capacity.entries() as u32 + extra {
            let first = h.feed(&nxdomain(n));
            let again = h.feed(&nxdomain(n));
            assert!(!first);
            assert_eq!(again, (n as usize) < capacity.entries(), "response {n}");
        }
        assert_eq!(h.repeats.slots.len(), capacity.entries());
        assert!(h.repeats.arena.len() <= capacity.bytes());
        // A new batch: room again.
        let _ = h.aggregator.take();
        let n = capacity.entries() as u32 + extra;
        assert!(!h.feed(&nxdomain(n)));
        assert!(h.feed(&nxdomain(n)));
        assert_eq!(h.repeats.slots.len(), 1);
    }

    #[test]
    fn working_ahead_holds_responses_back_until_drained() {
        let mut h = Harness::new();
        h.repeats = Repeats::new(Capacity::for_keys(100_000)).with_lookahead_from(0);
        let mut slow = (
            Extractor::new(Default::default()),
            Aggregator::new(usize::MAX, crate::vocab::value::Origin::WIRE),
            ExtractStats::default(),
        );
        let query = {
            let mut q = nxdomain(7);
            q[2] = 0x01; // a query
            q
        };
        let inputs = [nxdomain(1), nxdomain(2), nxdomain(1), query, nxdomain(2)];
        for (i, data) in inputs.iter().enumerate() {
            let m = DnsMessage {
                ts: Timestamp::from_secs(10 + i as u64),
                transport: Transport::Udp,
                data,
            };
            h.repeats
                .push(&m, &mut h.extractor, &mut h.stats, &mut h.aggregator);
            slow.0.extract(&m, &mut slow.2, &mut slow.1);
        }
        // Four responses came: the first was extracted when the fourth
        // made the ring full; the query went through at once.
        assert_eq!(h.repeats.waiting, RING - 1);
        assert_eq!(h.stats.dns_responses, 1);
        assert_eq!(h.stats.dns_queries, 1);
        h.repeats
            .drain(&mut h.extractor, &mut h.stats, &mut h.aggregator);
        assert_eq!(h.repeats.waiting, 0);
        assert_eq!(h.stats.repeated_responses, 2);
        h.stats.repeated_responses = 0;
        assert_eq!(h.stats, slow.2);
        assert_eq!(
            h.aggregator.take().sorted_entries(),
            slow.1.take().sorted_entries()
        );
    }

    #[test]
    fn below_the_threshold_nothing_waits() {
        let mut h = Harness::new();
        h.repeats = Repeats::new(Capacity::for_keys(100_000)).with_lookahead_from(1 << 10);
        let m = |n| nxdomain(n);
        let push = |h: &mut Harness, data: &[u8]| {
            let m = DnsMessage {
                ts: Timestamp::from_secs(1),
                transport: Transport::Udp,
                data,
            };
            h.repeats
                .push(&m, &mut h.extractor, &mut h.stats, &mut h.aggregator);
        };
        let mut n = 0;
        while h.repeats.arena.len() < 1 << 10 {
            push(&mut h, &m(n));
            assert_eq!(h.repeats.waiting, 0);
            n += 1;
        }
        // Past it, responses wait.
        push(&mut h, &m(n));
        assert_eq!(h.repeats.waiting, 1);
        // Below it again (the threshold lowered here), what waits is
        // extracted first.
        h.repeats.lookahead_from = usize::MAX;
        push(&mut h, &m(n + 1));
        assert_eq!(h.repeats.waiting, 0);
        assert_eq!(h.stats.dns_responses, u64::from(n) + 2);
        // A new batch (taken as the worker does, after a drain) starts
        // below it.
        h.repeats.lookahead_from = 1 << 10;
        push(&mut h, &m(n + 2));
        assert_eq!(h.repeats.waiting, 1);
        h.repeats
            .drain(&mut h.extractor, &mut h.stats, &mut h.aggregator);
        let _ = h.aggregator.take();
        push(&mut h, &m(n + 3));
        assert_eq!(h.repeats.waiting, 0);
        assert_eq!(h.repeats.slots.len(), 1);
        assert_eq!(h.stats.dns_responses, u64::from(n) + 4);
    }

    #[test]
    fn the_capacity_follows_the_aggregator_within_bounds() {
        let entries = |keys| Capacity::for_keys(keys).entries();
        assert_eq!(entries(100_000), 65_536);
        assert_eq!(entries(200_000), 131_072);
        assert_eq!(entries(50_000), 32_768);
        // However small or large the aggregator.
        assert_eq!(entries(0), 4_096);
        assert_eq!(entries(1), 4_096);
        assert_eq!(entries(usize::MAX), 131_072);
        for keys in [0, 1, 8_191, 8_193, 100_000, 1 << 40] {
            let c = Capacity::for_keys(keys);
            assert!(c.entries().is_power_of_two());
            assert_eq!(c.bytes(), c.entries() * 160);
        }
    }

    #[test]
    fn the_index_finds_what_it_holds_in_probe_order() {
        let mut slots = Slots::new(1 << 10);
        let hash = |home: usize, tag: u64| (tag << 32) | home as u64;
        // Two with the same tag and home, one with another tag, probing
        // past the end of the table back to its start.
        let last = slots.mask();
        slots.insert(hash(last, 7), 100);
        slots.insert(hash(last, 9), 200);
        slots.insert(hash(last, 7), 300);
        assert_eq!(slots.len(), 3);
        assert_eq!(
            slots.candidates(hash(last, 7)).collect::<Vec<_>>(),
            [100, 300]
        );
        assert_eq!(slots.candidates(hash(last, 9)).collect::<Vec<_>>(), [200]);
        assert_eq!(slots.candidates(hash(last, 8)).count(), 0);
        // Found from a home inside the run too, and not from past it.
        assert_eq!(slots.candidates(hash(0, 7)).collect::<Vec<_>>(), [300]);
        assert_eq!(slots.candidates(hash(2, 7)).count(), 0);
        // Offset 0 is a value like any other.
        slots.insert(hash(5, 1), 0);
        assert_eq!(slots.candidates(hash(5, 1)).collect::<Vec<_>>(), [0]);
        slots.clear();
        assert_eq!(slots.len(), 0);
        assert_eq!(slots.candidates(hash(last, 7)).count(), 0);
    }

    #[test]
    fn a_header_reads_back_as_written() {
        let header = Header {
            hash: 0x0123_4567_89ab_cdef,
            len: 0xdead_beef,
            updates: 7,
            extraction: Extraction {
                rcode: OptRcode::masked_from_int(0xfff),
                records: u32::MAX,
                negative: true,
                ignored: 3,
                malformed: 0x0102_0304,
            },
        };
        let mut arena = vec![0xaa; 5];
        header.write(&mut arena);
        assert_eq!(arena.len(), 5 + HEADER);
        assert_eq!(Header::read(&arena, 5), header);
        assert_eq!(Header::hash_at(&arena, 5), header.hash);
        assert_eq!(
            header.updates_range(5),
            5 + HEADER..5 + HEADER + 7 * Observed::BYTES
        );
        assert_eq!(
            header.fingerprint_range(5),
            5 + HEADER + 7 * Observed::BYTES..5 + HEADER + 7 * Observed::BYTES + 0xdead_beef
        );
    }

    #[test]
    fn a_pointer_into_the_id_is_seen() {
        let mut m = message(b"\x01a\x00");
        assert!(!may_point_into_id(&m));
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(!may_point_into_id(&m));
        for target in [0, 1] {
            let mut p = m.clone();
            p.extend_from_slice(&[0xc0, target]);
            assert!(may_point_into_id(&p));
        }
        // In the header it is no pointer (ID 0xc000).
        let mut h = m.clone();
        h[0] = 0xc0;
        h[1] = 0x00;
        assert!(!may_point_into_id(&h));
    }

    #[test]
    fn only_query_responses_are_remembered() {
        let mut m = message(b"\x01a\x00");
        assert!(is_query_response(&m));
        m[2] = 0x01; // a query
        assert!(!is_query_response(&m));
        m[2] = 0x80 | (5 << 3); // UPDATE response
        assert!(!is_query_response(&m));
        assert!(!is_query_response(&m[..11]));
    }
}
