//! Newly observed domains (NOD): the first time the database ever sees a
//! registrable domain, it records `{domain, first_seen, rrname, rrtype}`.
//!
//! **Where.** The `nod` column family (layouts in [`crate::vocab::key`]):
//! per domain a `d` entry (is it known, since when: its first-seen time,
//! eight bytes) and a `t` entry (the feed in first-seen order, holding the
//! [`NodEntry`](crate::vocab::nod::NodEntry)). They are plain puts, not
//! merges, and no compaction filter runs: entries never expire with
//! retention. "First ever seen" is history, and a domain whose records
//! expired and that comes back is not new; it costs one pair of small
//! entries per registrable domain.
//!
//! **What counts.** The registrable domain (public suffix list) of every
//! record owner a batch writes (expired ones are not written, so not
//! counted), and with `--nod-rdata` of every name inside rdata that the
//! rdata index holds (CNAME/DNAME/NS/PTR targets, MX/KX exchanges, SRV and
//! SVCB/HTTPS targets). Negative answers do not: a name that does not exist
//! is not a domain seen. First-seen is the record's observation time (the
//! capture's clock, the Zeek log's `ts`), never the wall clock.
//!
//! **Exactly once.** Every worker has its own writer thread, so several
//! threads write at once. [`Store::write`] decides what is new under one
//! mutex and commits, still holding it, the NOD entries *in the same
//! RocksDB write batch* as the records that caused them: two threads seeing
//! a domain in the same flush cannot both find it unknown, and a crash
//! leaves both the records and their NOD entry or neither. The mutex is
//! taken only by batches that hold a candidate the database does not know
//! (checked before, without the lock, against a bounded cache and the `d`
//! keys, which a bloom filter makes cheap to miss): once the database is
//! warm, nearly no batch takes it. Under the lock the `d` keys are read
//! again only if another commit wrote NOD entries since the first read (a
//! generation counter says so).
//!
//! **Backfills and re-imports.** An entry moves only to an *earlier*
//! first-seen: importing the same data again finds every domain known at
//! the same time and changes nothing; importing an older capture later
//! moves the domains it saw earlier back to their true first sighting (with
//! that sighting's rrname and rrtype, in the same atomic write that deletes
//! the old `t` entry). Files can then be ingested in any order and give the
//! same first-seen times, like the records themselves. A move is not counted
//! as a new domain, and a feed reader who already paged past the domain does
//! not get it again (it moved behind the cursor). Sightings at the same
//! second keep the first one recorded.
//!
//! **Warm-up.** A fresh database calls everything new, so the first
//! `warmup` seconds of *observation* time are the warm-up: entries first
//! seen before `start + warmup` carry `warmup: true`. `start` is the
//! earliest first-seen of the first batch that recorded anything, kept in
//! `meta/nod/start` and never moved: a pcap backfill of old traffic warms up
//! in its own time, and a domain backfilled from before `start` is a
//! warm-up entry too (the database knew nothing then).

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::RandomState;
use rocksdb::{ColumnFamily, DBCompressionType, Direction, IteratorMode, Options};

use super::{META_PREFIX, SEAL_KEY, Store, StoreError};
use crate::vocab::Rtype;
use crate::vocab::key::{self, RecordKey};
use crate::vocab::name;
use crate::vocab::nod::{NodEntry, registrable_len};

pub const CF_NOD: &str = "nod";
/// Bookkeeping key of the warm-up start (8 bytes, big-endian).
const START_KEY: &[u8] = b"nod/start";
/// Default warm-up: a day of observation time.
pub const DEFAULT_WARMUP_SECS: u64 = 86_400;
/// Known domains remembered in memory (domain → recorded first-seen);
/// past it the cache starts over. About 70 bytes each.
const CACHE_MAX: usize = 1 << 17;

/// How a writer records newly observed domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodConfig {
    pub enabled: bool,
    /// Also the domains of names inside rdata.
    pub rdata: bool,
    /// Seconds of observation time after the first one during which
    /// domains are marked `warmup` (0: none).
    pub warmup_secs: u64,
}

impl Default for NodConfig {
    fn default() -> Self {
        NodConfig {
            enabled: true,
            rdata: false,
            warmup_secs: DEFAULT_WARMUP_SECS,
        }
    }
}

/// A NOD entry as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodRecord {
    /// The registrable domain (reversed encoding).
    pub domain: Vec<u8>,
    pub entry: NodEntry,
}

impl NodRecord {
    /// The position just past this entry in the feed: an opaque cursor
    /// (hex of its time-index key's tail).
    pub fn cursor(&self) -> String {
        let mut k = Vec::with_capacity(9 + self.domain.len());
        key::nod_time_key(&mut k, self.entry.first_seen, &self.domain);
        k[1..].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A position just before everything first seen at or after `since`
    /// (the root name sorts first), for a cursor.
    pub fn before(since: u64) -> NodRecord {
        NodRecord {
            domain: vec![0],
            entry: NodEntry {
                first_seen: since,
                rrname: vec![0],
                rrtype: Rtype::A,
                warmup: false,
                in_rdata: false,
            },
        }
    }

    /// The entry as the API and `dump --json` give it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "domain": name::presentation(&self.domain),
            "first_seen": self.entry.first_seen,
            "rrname": name::presentation(&self.entry.rrname),
            "rrtype": crate::vocab::render::rtype_name(self.entry.rrtype),
            "warmup": self.entry.warmup,
            "seen_in": if self.entry.in_rdata { "rdata" } else { "rrname" },
        })
    }
}

/// Parses a cursor from [`NodRecord::cursor`] back into its time-index key.
pub fn parse_cursor(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if !t.len().is_multiple_of(2) || t.len() > 600 {
        return None;
    }
    let mut k = vec![key::NOD_TIME];
    for i in (0..t.len()).step_by(2) {
        k.push(u8::from_str_radix(t.get(i..i + 2)?, 16).ok()?);
    }
    key::parse_nod_time_key(&k)?;
    Some(k)
}

/// Column family options: point lookups of mostly absent keys (a bloom
/// filter), no merge operator, no compaction filter (nothing expires).
pub(super) fn cf_options() -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    opts.set_write_buffer_size(8 << 20);
    opts.set_target_file_size_base(super::TARGET_FILE_BYTES);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.set_block_based_table_factory(&super::table_options(true));
    opts
}

/// The earliest sighting of a domain in one batch, borrowing the batch's
/// keys (no allocation per record or per domain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Candidate<'a> {
    /// The domain's labels, without the root byte.
    pub domain: Cow<'a, [u8]>,
    pub first_seen: u64,
    /// The owner of the record it was seen in.
    pub rrname: &'a [u8],
    pub rrtype: Rtype,
    pub in_rdata: bool,
}

impl Candidate<'_> {
    /// Whether this sighting comes before `other`'s: earlier, or as early
    /// and in the owner name rather than in rdata.
    fn before(&self, other: &Candidate<'_>) -> bool {
        (self.first_seen, self.in_rdata) < (other.first_seen, other.in_rdata)
    }

    /// The domain's reversed encoding, root byte included.
    fn encoded_domain(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(self.domain.len() + 1);
        d.extend_from_slice(&self.domain);
        d.push(0);
        d
    }
}

/// Gathers a batch's candidates while the store builds its write, from the
/// records in key order: the records of one owner are adjacent, so the
/// suffix list is searched once per owner, and the owners of one domain
/// mostly are, so a run of them makes one candidate.
pub(super) struct Collector<'a> {
    config: NodConfig,
    /// The last owner seen and its registrable domain's length.
    owner: &'a [u8],
    domain_len: Option<usize>,
    found: Vec<Candidate<'a>>,
    scratch: Vec<u8>,
}

impl<'a> Collector<'a> {
    pub(super) fn new(config: NodConfig) -> Self {
        Collector {
            config,
            owner: &[],
            domain_len: None,
            found: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// A record the batch writes, first seen (in this batch) at `first`.
    #[inline]
    pub(super) fn record(&mut self, record: &RecordKey<'a>, first: u64) {
        if !self.config.enabled {
            return;
        }
        let same_owner = record.owner == self.owner;
        if !same_owner {
            self.owner = record.owner;
            self.domain_len = registrable_len(record.owner);
        }
        if let Some(len) = self.domain_len {
            let c = Candidate {
                domain: Cow::Borrowed(&record.owner[..len]),
                first_seen: first,
                rrname: record.owner,
                rrtype: record.rtype,
                in_rdata: false,
            };
            match self.found.last_mut() {
                Some(run) if !run.in_rdata && (same_owner || run.domain == c.domain) => {
                    if c.before(run) {
                        *run = c;
                    }
                }
                _ => self.found.push(c),
            }
        }
        if self.config.rdata {
            self.rdata(record, first);
        }
    }

    fn rdata(&mut self, record: &RecordKey<'a>, first: u64) {
        let Some(offset) = key::rdata_name_offset(record.rtype) else {
            return;
        };
        let Some(wire) = record.rdata.get(offset..) else {
            return;
        };
        self.scratch.clear();
        if !name::encode_wire(wire, &mut self.scratch) {
            return;
        }
        let Some(len) = registrable_len(&self.scratch) else {
            return;
        };
        self.found.push(Candidate {
            domain: Cow::Owned(self.scratch[..len].to_vec()),
            first_seen: first,
            rrname: record.owner,
            rrtype: record.rtype,
            in_rdata: true,
        });
    }

    /// The candidates, one per domain (its earliest sighting), in key
    /// order.
    pub(super) fn finish(mut self) -> Vec<Candidate<'a>> {
        // Nearly sorted already (runs come in owner order): cheap to sort.
        self.found.sort_by(|a, b| {
            a.domain
                .cmp(&b.domain)
                .then((a.first_seen, a.in_rdata).cmp(&(b.first_seen, b.in_rdata)))
        });
        self.found
            .dedup_by(|later, kept| later.domain == kept.domain);
        self.found
    }
}

/// A writer's NOD state.
pub(super) struct NodState {
    pub(super) config: NodConfig,
    /// Held from deciding what is new until it is committed.
    lock: Mutex<()>,
    /// Warm-up start (observation time); `u64::MAX` until the first entry.
    start: AtomicU64,
    /// Commits that wrote NOD entries (under `lock`): what a candidate's
    /// recorded time, read before the lock, is still valid against.
    generation: AtomicU64,
    /// Domains known to be recorded, with their recorded first-seen (which
    /// only ever moves earlier, so a cached time is an upper bound).
    cache: Mutex<hashbrown::HashMap<Box<[u8]>, u64, RandomState>>,
}

impl NodState {
    pub(super) fn new(config: NodConfig) -> Self {
        NodState {
            config,
            lock: Mutex::new(()),
            start: AtomicU64::new(u64::MAX),
            generation: AtomicU64::new(0),
            cache: Mutex::new(Default::default()),
        }
    }

    fn remember(&self, known: impl IntoIterator<Item = (Box<[u8]>, u64)>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for (domain, first) in known {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(domain, first);
        }
    }
}

/// Candidates the database does not have as early, with what it has
/// (read at `generation`).
pub(super) struct Unknown<'a> {
    candidates: Vec<Candidate<'a>>,
    recorded: Vec<Option<u64>>,
    generation: u64,
}

impl Unknown<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }
}

/// What a batch's NOD part did.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NodChanges {
    pub new: usize,
    pub new_warmup: usize,
    pub moved: usize,
}

impl Store {
    /// The `nod` column family (a reader of a database no NOD-aware writer
    /// opened yet has none).
    pub(super) fn nod_cf(&self) -> Option<&ColumnFamily> {
        self.db.cf_handle(CF_NOD)
    }

    /// Reads the recorded warm-up start (a writer, at open).
    pub(super) fn load_nod(&self) -> Result<(), StoreError> {
        if let Some(raw) = self.meta_get(START_KEY)?
            && let Ok(bytes) = <[u8; 8]>::try_from(raw.as_slice())
        {
            self.nod
                .start
                .store(u64::from_be_bytes(bytes), Ordering::Relaxed);
        }
        Ok(())
    }

    /// The warm-up start recorded in the database, if anything was recorded.
    pub fn nod_warmup_start(&self) -> Option<u64> {
        let raw = self.meta_get(START_KEY).ok()??;
        Some(u64::from_be_bytes(raw.try_into().ok()?))
    }

    /// The recorded first-seen times of `candidates`' domains (`None`:
    /// unknown).
    fn nod_recorded(&self, candidates: &[Candidate<'_>]) -> Result<Vec<Option<u64>>, StoreError> {
        let Some(cf) = self.nod_cf() else {
            return Ok(vec![None; candidates.len()]);
        };
        let keys: Vec<Vec<u8>> = candidates
            .iter()
            .map(|c| {
                let mut k = Vec::with_capacity(2 + c.domain.len());
                key::nod_domain_key(&mut k, &c.domain);
                k.push(0);
                k
            })
            .collect();
        self.db
            .batched_multi_get_cf(cf, &keys, true)
            .into_iter()
            .map(|r| {
                r.map(|v| v.and_then(|v| Some(u64::from_be_bytes(v.as_ref().try_into().ok()?))))
                    .map_err(self.error("reading newly observed domains"))
            })
            .collect()
    }

    /// Drops the candidates the database already has as early or earlier,
    /// without the lock (the cache first, then the `d` keys).
    pub(super) fn nod_unknown<'a>(
        &self,
        candidates: Vec<Candidate<'a>>,
    ) -> Result<Unknown<'a>, StoreError> {
        let generation = self.nod.generation.load(Ordering::Acquire);
        let none = |generation| Unknown {
            candidates: Vec::new(),
            recorded: Vec::new(),
            generation,
        };
        if candidates.is_empty() {
            return Ok(none(generation));
        }
        let candidates: Vec<Candidate<'a>> = {
            let cache = self.nod.cache.lock().unwrap_or_else(|e| e.into_inner());
            candidates
                .into_iter()
                .filter(|c| cache.get(&c.domain[..]).is_none_or(|&t| c.first_seen < t))
                .collect()
        };
        if candidates.is_empty() {
            return Ok(none(generation));
        }
        let recorded = self.nod_recorded(&candidates)?;
        let mut known = Vec::new();
        let mut out = none(generation);
        for (c, r) in candidates.into_iter().zip(recorded) {
            match r {
                Some(r) if r <= c.first_seen => {
                    known.push((Box::from(&c.domain[..]), r));
                }
                _ => {
                    out.candidates.push(c);
                    out.recorded.push(r);
                }
            }
        }
        self.nod.remember(known);
        Ok(out)
    }

    /// Commits `write` with the NOD entries of the candidates that are still
    /// new (or earlier) once the lock is held: decided and written under one
    /// lock, in one write batch. What was read before the lock is read
    /// again only if another commit wrote NOD entries since.
    pub(super) fn nod_commit(
        &self,
        unknown: Unknown<'_>,
        mut write: rocksdb::WriteBatch,
        commit: impl FnOnce(rocksdb::WriteBatch) -> Result<(), StoreError>,
    ) -> Result<NodChanges, StoreError> {
        let mut changes = NodChanges::default();
        let Some(cf) = self.nod_cf() else {
            commit(write)?;
            return Ok(changes);
        };
        let _held = self.nod.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Unknown {
            candidates,
            mut recorded,
            generation,
        } = unknown;
        if self.nod.generation.load(Ordering::Acquire) != generation {
            recorded = self.nod_recorded(&candidates)?;
        }
        let mut start = self.nod.start.load(Ordering::Relaxed);
        let new_start = start == u64::MAX;
        if new_start {
            start = candidates
                .iter()
                .map(|c| c.first_seen)
                .min()
                .unwrap_or(u64::MAX);
        }
        let warmup_end = start.saturating_add(self.nod.config.warmup_secs);
        let mut written = Vec::new();
        let mut buf = Vec::new();
        let mut value = Vec::new();
        for (c, r) in candidates.into_iter().zip(recorded) {
            let domain = c.encoded_domain();
            match r {
                Some(r) if r <= c.first_seen => {
                    written.push((Box::from(&c.domain[..]), r));
                    continue;
                }
                Some(r) => {
                    buf.clear();
                    key::nod_time_key(&mut buf, r, &domain);
                    write.delete_cf(cf, &buf);
                    changes.moved += 1;
                }
                None => {
                    changes.new += 1;
                }
            }
            let entry = NodEntry {
                first_seen: c.first_seen,
                rrname: c.rrname.to_vec(),
                rrtype: c.rrtype,
                warmup: self.nod.config.warmup_secs > 0 && c.first_seen < warmup_end,
                in_rdata: c.in_rdata,
            };
            if r.is_none() && entry.warmup {
                changes.new_warmup += 1;
            }
            buf.clear();
            key::nod_domain_key(&mut buf, &domain);
            write.put_cf(cf, &buf, entry.first_seen.to_be_bytes());
            value.clear();
            entry.encode(&mut value);
            buf.clear();
            key::nod_time_key(&mut buf, entry.first_seen, &domain);
            write.put_cf(cf, &buf, &value);
            written.push((Box::from(&c.domain[..]), entry.first_seen));
        }
        let wrote = changes.new + changes.moved > 0;
        if !wrote {
            write.delete_cf(cf, SEAL_KEY);
        }
        if wrote && new_start {
            write.put([META_PREFIX, START_KEY].concat(), start.to_be_bytes());
        }
        commit(write)?;
        if wrote {
            self.nod.generation.fetch_add(1, Ordering::Release);
        }
        if wrote && new_start {
            self.nod.start.store(start, Ordering::Relaxed);
        }
        self.nod.remember(written);
        Ok(changes)
    }

    /// Newly observed domains first seen at or after `since`, in first-seen
    /// order, starting after `cursor` (a key from [`parse_cursor`]) if
    /// given.
    pub fn new_domains(
        &self,
        since: u64,
        cursor: Option<Vec<u8>>,
    ) -> Box<dyn Iterator<Item = Result<NodRecord, StoreError>> + '_> {
        let Some(cf) = self.nod_cf() else {
            return Box::new(std::iter::empty());
        };
        let mut from = Vec::with_capacity(9);
        from.push(key::NOD_TIME);
        from.extend_from_slice(&since.to_be_bytes());
        let skip = match cursor {
            Some(c) if c > from => {
                from = c.clone();
                Some(c)
            }
            _ => None,
        };
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Forward));
        Box::new(
            iter.map_while(move |item| {
                let (k, v) = match item {
                    Ok(kv) => kv,
                    Err(e) => return Some(Err(self.error("reading newly observed domains")(e))),
                };
                if k.first() != Some(&key::NOD_TIME) {
                    return None;
                }
                Some(Ok((k, v)))
            })
            .filter(move |item| match (item, &skip) {
                (Ok((k, _)), Some(s)) => &k[..] != s.as_slice(),
                _ => true,
            })
            .map(|item| {
                let (k, v) = item?;
                let (_, domain) = key::parse_nod_time_key(&k).ok_or(StoreError::Corrupt {
                    path: self.path.clone(),
                    what: "a newly observed domain key",
                })?;
                let entry = NodEntry::decode(&v).ok_or(StoreError::Corrupt {
                    path: self.path.clone(),
                    what: "a newly observed domain entry",
                })?;
                Ok(NodRecord {
                    domain: domain.to_vec(),
                    entry,
                })
            }),
        )
    }

    /// The recorded entry of a domain (reversed encoding), if any.
    pub fn new_domain(&self, domain: &[u8]) -> Result<Option<NodEntry>, StoreError> {
        let Some(cf) = self.nod_cf() else {
            return Ok(None);
        };
        let mut k = Vec::new();
        key::nod_domain_key(&mut k, domain);
        let read = |k: &[u8]| {
            self.db
                .get_cf(cf, k)
                .map_err(self.error("reading newly observed domains"))
        };
        let Some(first) = read(&k)?.and_then(|v| Some(u64::from_be_bytes(v.try_into().ok()?)))
        else {
            return Ok(None);
        };
        k.clear();
        key::nod_time_key(&mut k, first, domain);
        Ok(read(&k)?.and_then(|v| NodEntry::decode(&v)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::aggregate::Aggregator;
    use crate::store::StoreOptions;
    use crate::store::retention::{Clock, Retention};
    use crate::vocab::Rtype;
    use crate::vocab::batch::Batch;
    use crate::vocab::observation::ObservationSink;
    use crate::vocab::value::Origin;

    fn enc(s: &str) -> Vec<u8> {
        name::encode_presentation(s).unwrap()
    }

    fn open(path: &std::path::Path, nod: NodConfig) -> Store {
        Store::open_with(
            path,
            &StoreOptions {
                nod,
                ..StoreOptions::default()
            },
        )
        .unwrap()
    }

    /// A batch of A records `(owner, ts)`.
    fn batch(records: &[(&str, u64)]) -> Batch {
        let mut agg = Aggregator::new(1 << 20, Origin::WIRE);
        for (i, (owner, ts)) in records.iter().enumerate() {
            agg.record(&enc(owner), Rtype::A, &(i as u32).to_be_bytes(), 60, *ts);
        }
        agg.take()
    }

    /// Every entry: presentation domain → entry, read through both keys.
    fn entries(store: &Store) -> Vec<(String, NodEntry)> {
        let all: Vec<NodRecord> = store.new_domains(0, None).map(Result::unwrap).collect();
        for r in &all {
            assert_eq!(
                store.new_domain(&r.domain).unwrap().as_ref(),
                Some(&r.entry)
            );
        }
        let cf = store.nod_cf().unwrap();
        let d_keys = store
            .db
            .prefix_iterator_cf(cf, [key::NOD_DOMAIN])
            .map(Result::unwrap)
            .take_while(|(k, _)| k[0] == key::NOD_DOMAIN)
            .count();
        assert_eq!(d_keys, all.len(), "one time entry per domain entry");
        all.into_iter()
            .map(|r| (name::presentation(&r.domain), r.entry))
            .collect()
    }

    fn domains(store: &Store) -> Vec<(String, u64)> {
        entries(store)
            .into_iter()
            .map(|(d, e)| (d, e.first_seen))
            .collect()
    }

    #[test]
    fn first_sightings_are_recorded_once_per_registrable_domain() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"), NodConfig::default());
        let stats = store
            .write(&batch(&[
                ("www.example.com", 1_000),
                ("api.example.com", 990),
                ("example.com", 995),
                ("a.b.example.co.uk", 2_000),
                ("com", 5),
                ("x.foo.s3.amazonaws.com", 3_000),
            ]))
            .unwrap();
        assert_eq!(stats.new_domains, 3);
        let all = entries(&store);
        assert_eq!(
            all.iter()
                .map(|(d, e)| (d.as_str(), e.first_seen))
                .collect::<Vec<_>>(),
            [
                ("example.com.", 990),
                ("example.co.uk.", 2_000),
                ("foo.s3.amazonaws.com.", 3_000)
            ]
        );
        assert_eq!(all[0].1.rrname, enc("api.example.com"));
        assert_eq!(all[0].1.rrtype, Rtype::A);
        assert!(!all[0].1.in_rdata);
        // Seen again, later: nothing changes.
        let again = store
            .write(&batch(&[
                ("mail.example.com", 5_000),
                ("example.co.uk", 2_000),
            ]))
            .unwrap();
        assert_eq!((again.new_domains, again.nod_moved), (0, 0));
        assert_eq!(entries(&store), all);
    }

    #[test]
    fn two_writer_threads_record_each_domain_exactly_once() {
        for round in 0..40u64 {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(open(&dir.path().join("db"), NodConfig::default()));
            let threads = 2;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads as u64)
                .map(|t| {
                    let store = Arc::clone(&store);
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        let mut new = 0;
                        let mut moved = 0;
                        // The same 300 domains in both threads, the same
                        // quarter of them in each of four simultaneous
                        // flushes, at times differing by thread and round.
                        for part in 0..4u64 {
                            let names: Vec<(String, u64)> = (0..300u64)
                                .filter(|i| i % 4 == part)
                                .map(|i| (format!("h{t}.d{i}.com"), 10_000 + i + (t + round) % 3))
                                .collect();
                            let refs: Vec<(&str, u64)> =
                                names.iter().map(|(n, ts)| (n.as_str(), *ts)).collect();
                            let b = batch(&refs);
                            barrier.wait();
                            let stats = store.write(&b).unwrap();
                            new += stats.new_domains;
                            moved += stats.nod_moved;
                        }
                        (new, moved)
                    })
                })
                .collect();
            let totals: Vec<(usize, usize)> =
                handles.into_iter().map(|h| h.join().unwrap()).collect();
            let new: usize = totals.iter().map(|t| t.0).sum();
            assert_eq!(new, 300, "round {round}: every domain counted new once");
            let all = domains(&store);
            assert_eq!(all.len(), 300);
            for (d, first) in all {
                let i: u64 = d[1..d.find('.').unwrap()].parse().unwrap();
                let earliest = (0..2u64)
                    .map(|t| 10_000 + i + (t + round) % 3)
                    .min()
                    .unwrap();
                assert_eq!(first, earliest, "{d}: the earliest sighting wins");
            }
        }
    }

    #[test]
    fn restarts_and_reimports_do_not_announce_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let data = [("www.a.test", 100), ("b.test", 200), ("x.y.c.test", 300)];
        let before = {
            let store = open(&path, NodConfig::default());
            assert_eq!(store.write(&batch(&data)).unwrap().new_domains, 3);
            let all = entries(&store);
            store.flush().unwrap();
            all
        };
        let store = open(&path, NodConfig::default());
        for _ in 0..2 {
            let s = store.write(&batch(&data)).unwrap();
            assert_eq!((s.new_domains, s.nod_moved), (0, 0));
        }
        assert_eq!(entries(&store), before);
        // A reader sees the same.
        store.flush().unwrap();
        let reader = Store::open_reader(&path).unwrap();
        assert_eq!(entries(&reader), before);
    }

    #[test]
    fn an_older_capture_moves_a_domain_to_its_first_sighting() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"), NodConfig::default());
        store.write(&batch(&[("www.a.test", 5_000)])).unwrap();
        let s = store.write(&batch(&[("old.a.test", 4_000)])).unwrap();
        assert_eq!((s.new_domains, s.nod_moved), (0, 1));
        let all = entries(&store);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.first_seen, 4_000);
        assert_eq!(all[0].1.rrname, enc("old.a.test"));
        // The same second again keeps the first recorded.
        let s = store.write(&batch(&[("other.a.test", 4_000)])).unwrap();
        assert_eq!((s.new_domains, s.nod_moved), (0, 0));
        assert_eq!(entries(&store), all);
        // The feed from after the old time no longer has it.
        assert_eq!(store.new_domains(4_001, None).count(), 0);
    }

    #[test]
    fn warm_up_is_observation_time_from_the_first_sighting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let config = NodConfig {
            warmup_secs: 3_600,
            ..NodConfig::default()
        };
        {
            let store = open(&path, config);
            let s = store
                .write(&batch(&[("a.test", 10_000), ("b.test", 13_599)]))
                .unwrap();
            assert_eq!((s.new_domains, s.new_domains_warmup), (2, 2));
            assert_eq!(store.nod_warmup_start(), Some(10_000));
        }
        // The start survives a restart; the end is start + warm-up.
        let store = open(&path, config);
        let s = store
            .write(&batch(&[("c.test", 13_600), ("d.test", 5_000)]))
            .unwrap();
        assert_eq!((s.new_domains, s.new_domains_warmup), (2, 1));
        let warm: Vec<(String, bool)> = entries(&store)
            .into_iter()
            .map(|(d, e)| (d, e.warmup))
            .collect();
        assert_eq!(
            warm,
            [
                ("d.test.".to_string(), true),
                ("a.test.".to_string(), true),
                ("b.test.".to_string(), true),
                ("c.test.".to_string(), false)
            ]
        );
        // No warm-up at all.
        let dir = tempfile::tempdir().unwrap();
        let store = open(
            &dir.path().join("db"),
            NodConfig {
                warmup_secs: 0,
                ..NodConfig::default()
            },
        );
        let s = store.write(&batch(&[("a.test", 10_000)])).unwrap();
        assert_eq!((s.new_domains, s.new_domains_warmup), (1, 0));
    }

    #[test]
    fn rdata_names_count_only_when_asked() {
        let mut agg = Aggregator::new(1000, Origin::WIRE);
        agg.record(
            &enc("www.a.test"),
            Rtype::CNAME,
            b"\x03cdn\x07example\x03net\x00",
            60,
            700,
        );
        agg.record(
            &enc("b.test"),
            Rtype::MX,
            b"\x00\x0a\x04mail\x01c\x04test\x00",
            60,
            800,
        );
        let b = agg.take();
        for (rdata, expected) in [
            (false, vec!["a.test.", "b.test."]),
            // At the same second, in key order (`net` before `test`).
            (true, vec!["example.net.", "a.test.", "b.test.", "c.test."]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = open(
                &dir.path().join("db"),
                NodConfig {
                    rdata,
                    ..NodConfig::default()
                },
            );
            store.write(&b).unwrap();
            let all = entries(&store);
            assert_eq!(
                all.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>(),
                expected
            );
            if rdata {
                let (_, net) = &all[0];
                assert!(net.in_rdata);
                assert_eq!(net.rrname, enc("www.a.test"));
                assert_eq!(net.rrtype, Rtype::CNAME);
            }
        }
    }

    #[test]
    fn disabled_or_expired_records_record_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(
            &dir.path().join("db"),
            NodConfig {
                enabled: false,
                ..NodConfig::default()
            },
        );
        assert_eq!(
            store.write(&batch(&[("a.test", 1)])).unwrap().new_domains,
            0
        );
        assert!(entries(&store).is_empty());

        let dir = tempfile::tempdir().unwrap();
        let now = 100 * 86_400;
        let store = Store::open_with(
            &dir.path().join("db"),
            &StoreOptions {
                retention: Some(Retention::Days(10)),
                clock: Clock::fixed(now),
                nod: NodConfig::default(),
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let s = store
            .write(&batch(&[
                ("old.test", now - 20 * 86_400),
                ("new.test", now),
            ]))
            .unwrap();
        assert_eq!(s.new_domains, 1);
        assert_eq!(domains(&store), [("new.test.".to_string(), now)]);
    }

    #[test]
    fn cursors_page_through_the_feed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"), NodConfig::default());
        let names: Vec<(String, u64)> = (0..50u64)
            .map(|i| (format!("d{i}.test"), 1_000 + i / 3))
            .collect();
        let refs: Vec<(&str, u64)> = names.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        store.write(&batch(&refs)).unwrap();
        let whole: Vec<NodRecord> = store.new_domains(1_005, None).map(Result::unwrap).collect();
        assert_eq!(whole.len(), 50 - 15);
        let mut paged = Vec::new();
        let mut cursor = Some(NodRecord::before(1_005).cursor());
        loop {
            let page: Vec<NodRecord> = store
                .new_domains(1_005, cursor.as_deref().map(|c| parse_cursor(c).unwrap()))
                .take(4)
                .map(Result::unwrap)
                .collect();
            let Some(last) = page.last() else { break };
            cursor = Some(last.cursor());
            paged.extend(page);
        }
        assert_eq!(paged, whole);
        assert_eq!(parse_cursor("zz"), None);
        assert_eq!(parse_cursor("00"), None);
    }
}
