//! Retention: dropping what was last seen longer ago than a number of days.
//!
//! A passive DNS store that is never trimmed grows without end. With a
//! retention of D days, a record (or negative answer, or index entry) whose
//! *last* sighting — observation time, the capture's clock, not the time it
//! was written — is older than "now minus D days" is expired: it is not
//! written, readers do not show it, and compaction deletes it. A record is
//! an aggregate, so it lives or dies as a whole: one sighting inside the
//! window keeps its whole history.
//!
//! Why it takes four mechanisms:
//!
//! * **Compaction filters** (`ExpiryFilterFactory`, one per data column
//!   family) delete expired entries as RocksDB rewrites files, and
//!   *periodic compaction* makes RocksDB rewrite files that no write would
//!   otherwise touch (cold data is exactly what expires).
//! * **The merge operator** applies the cutoff too ([`value::merge`]):
//!   compaction filters never see merge operands, so an expired base value
//!   with a fresh operand on top would otherwise merge into "old count plus
//!   new"; instead the fresh sightings start a new record.
//! * **Readers hide expired rows** (in `query.rs`, the one read path every
//!   surface uses): the records, their `rdata` index entries and their
//!   `names` entries live in different column families, compacted at
//!   different times, so until compaction has visited all of them a query
//!   would otherwise see some and not others.
//! * **Writes skip expired observations** (a backfilled capture older than
//!   the window is counted, not stored).
//!
//! The setting is recorded in the database (`meta/retention`, in days) by
//! the writer that was given `--retention`, so readers (`dump`, `serve`)
//! and later writers apply it without being told: a writer started without
//! the option keeps the recorded setting, one given another number records
//! the new one (with a warning: shortening it expires data for good), and
//! `--retention off` removes it.
//!
//! "Now" is the wall clock, or a fixed time for tests ([`Clock::fixed`],
//! or the environment variable [`TEST_NOW_ENV`], which exists only so
//! tests can move time in a child process).

use std::ffi::CStr;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rocksdb::CompactionDecision;
use rocksdb::compaction_filter::CompactionFilter;
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use serde::{Deserialize, Serialize};

use crate::vocab::value;

/// Seconds in a day.
pub const DAY: u64 = 86_400;
/// The longest retention accepted: a hundred years.
pub const MAX_DAYS: u32 = 36_500;
/// Bookkeeping key of the setting (under the store's `meta/` prefix).
pub(super) const SETTING_KEY: &[u8] = b"retention";
/// Bookkeeping key of the expired counts.
pub(super) const EXPIRED_KEY: &[u8] = b"retention/expired";
/// The environment variable that fixes "now" (RFC 3339 or epoch seconds)
/// for retention. For tests only: it lets a test move time in a child
/// process without waiting for days.
pub const TEST_NOW_ENV: &str = "PDNS_SENSOR_TEST_NOW";

/// A retention setting, as given with `--retention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Expire what was last seen more than this many days ago.
    Days(u32),
    /// Keep everything (and remove a recorded setting).
    Off,
}

impl Retention {
    /// Days, or `None` for off.
    pub fn days(self) -> Option<u32> {
        match self {
            Retention::Days(d) => Some(d),
            Retention::Off => None,
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Days(1) => f.write_str("1 day"),
            Retention::Days(d) => write!(f, "{d} days"),
            Retention::Off => f.write_str("off"),
        }
    }
}

impl FromStr for Retention {
    type Err = String;

    /// `off`, or a number of days from 1 to [`MAX_DAYS`].
    fn from_str(text: &str) -> Result<Retention, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(Retention::Off);
        }
        if t.starts_with('-') && t[1..].bytes().all(|b| b.is_ascii_digit()) && t.len() > 1 {
            return Err(format!(
                "{t} is negative: give a number of days (1 to {MAX_DAYS}) or `off`"
            ));
        }
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{t:?} is not a number of days (1 to {MAX_DAYS}) or `off`"
            ));
        }
        match t.parse::<u64>() {
            Ok(0) => Err(
                "0 days would expire everything as soon as it is written; give a number of days \
                 (1 to 36500), or `off` to keep everything"
                    .to_string(),
            ),
            Ok(d) if d <= u64::from(MAX_DAYS) => Ok(Retention::Days(d as u32)),
            _ => Err(format!(
                "{t} days is more than a hundred years: at most {MAX_DAYS}, or `off` to keep everything"
            )),
        }
    }
}

/// The time retention is judged by: the wall clock, or a fixed time a
/// test sets and moves.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that says `secs` (epoch seconds) until [`Clock::set`].
    pub fn fixed(secs: u64) -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(secs))))
    }

    /// The wall clock, or the time [`TEST_NOW_ENV`] fixes.
    pub fn from_env() -> Result<Clock, String> {
        match std::env::var(TEST_NOW_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Clock::system()),
            Err(e) => Err(format!("{TEST_NOW_ENV}: {e}")),
            Ok(text) => {
                let secs = crate::vocab::time::parse(&text)
                    .map_err(|e| format!("{TEST_NOW_ENV}={text:?}: {e}"))?;
                tracing::warn!(
                    "retention judged at {} ({TEST_NOW_ENV}; for tests only)",
                    crate::vocab::time::format_rfc3339(secs)
                );
                Ok(Clock::fixed(secs))
            }
        }
    }

    /// Moves a fixed clock (a test advancing time); the wall clock cannot
    /// be moved and ignores it.
    pub fn set(&self, secs: u64) {
        if let Some(t) = &self.0 {
            t.store(secs, Ordering::Relaxed);
        }
    }

    /// Epoch seconds now.
    pub fn now(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::Relaxed),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// How often RocksDB rewrites a file no write touched, so the compaction
/// filter visits it: an eighth of the retention (expired data then takes
/// at most an eighth more room than the window), between one day and 30
/// days. Every period rewrites the whole store once.
pub fn periodic_compaction_secs(days: u32) -> u64 {
    (u64::from(days) * DAY / 8).clamp(DAY, 30 * DAY)
}

/// Entries expired in one column family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    /// Observations older than the cutoff when written: never stored.
    pub write: u64,
    /// Entries deleted by compaction.
    pub compaction: u64,
}

/// Entries expired per data column family: in the whole database's life
/// as its writers recorded them (see [`super::Store::expired`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredCounts {
    pub records: Expired,
    pub rdata: Expired,
    pub negative: Expired,
    pub names: Expired,
}

impl ExpiredCounts {
    /// Each column family's name and counts: records, rdata, negative,
    /// names.
    pub fn by_cf(&self) -> [(&'static str, Expired); 4] {
        [
            (super::CF_RECORDS, self.records),
            (super::CF_RDATA, self.rdata),
            (super::CF_NEGATIVE, self.negative),
            (super::CF_NAMES, self.names),
        ]
    }

    fn from_cfs(cfs: [Expired; 4]) -> ExpiredCounts {
        let [records, rdata, negative, names] = cfs;
        ExpiredCounts {
            records,
            rdata,
            negative,
            names,
        }
    }

    /// The increase from `before` to this (both cumulative).
    pub fn since(&self, before: &ExpiredCounts) -> ExpiredCounts {
        let (now, then) = (self.by_cf(), before.by_cf());
        ExpiredCounts::from_cfs(std::array::from_fn(|i| Expired {
            write: now[i].1.write.saturating_sub(then[i].1.write),
            compaction: now[i].1.compaction.saturating_sub(then[i].1.compaction),
        }))
    }

    fn plus(&self, other: &ExpiredCounts) -> ExpiredCounts {
        let (a, b) = (self.by_cf(), other.by_cf());
        ExpiredCounts::from_cfs(std::array::from_fn(|i| Expired {
            write: a[i].1.write + b[i].1.write,
            compaction: a[i].1.compaction + b[i].1.compaction,
        }))
    }
}

/// Where an expired entry was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum At {
    Write = 0,
    Compaction = 1,
}

/// Retention state shared by a store, its merge operators and its
/// compaction filters (which run on RocksDB's threads).
#[derive(Debug)]
pub(super) struct RetentionState {
    /// 0: off.
    days: AtomicU32,
    clock: Clock,
    /// Dropped by this process, per column family and [`At`].
    counted: [[AtomicU64; 2]; 4],
    /// What the database had recorded when opened (writer) or last caught
    /// up (reader).
    recorded: Mutex<ExpiredCounts>,
    /// What this writer last wrote to the database.
    persisted: Mutex<ExpiredCounts>,
    /// What was last published to Prometheus.
    published: Mutex<ExpiredCounts>,
    /// Merges whose result was expired as a whole. Compaction filters never
    /// see a merge's result, so a compaction that made one leaves an
    /// expired value for the next compaction to delete.
    pub(super) expired_merges: AtomicU64,
}

impl RetentionState {
    pub(super) fn new(clock: Clock) -> RetentionState {
        RetentionState {
            days: AtomicU32::new(0),
            clock,
            counted: Default::default(),
            recorded: Mutex::default(),
            persisted: Mutex::default(),
            published: Mutex::default(),
            expired_merges: AtomicU64::new(0),
        }
    }

    pub(super) fn set(&self, retention: Retention) {
        self.days
            .store(retention.days().unwrap_or(0), Ordering::Relaxed);
    }

    pub(super) fn setting(&self) -> Retention {
        match self.days.load(Ordering::Relaxed) {
            0 => Retention::Off,
            d => Retention::Days(d),
        }
    }

    /// Epoch seconds before which a last sighting is expired; 0 when
    /// nothing expires.
    pub(super) fn cutoff(&self) -> u64 {
        match self.days.load(Ordering::Relaxed) {
            0 => 0,
            d => self.clock.now().saturating_sub(u64::from(d) * DAY),
        }
    }

    pub(super) fn count(&self, cf: usize, at: At, n: u64) {
        if n > 0 {
            self.counted[cf][at as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counted by this store.
    pub(super) fn counted(&self) -> ExpiredCounts {
        ExpiredCounts::from_cfs(std::array::from_fn(|cf| Expired {
            write: self.counted[cf][At::Write as usize].load(Ordering::Relaxed),
            compaction: self.counted[cf][At::Compaction as usize].load(Ordering::Relaxed),
        }))
    }

    pub(super) fn set_recorded(&self, counts: ExpiredCounts) {
        *lock(&self.recorded) = counts;
    }

    /// The database's totals: recorded plus counted here.
    pub(super) fn totals(&self) -> ExpiredCounts {
        lock(&self.recorded).plus(&self.counted())
    }

    /// The totals, if they changed since last persisted (and marks them
    /// persisted): the bookkeeping value to write.
    pub(super) fn to_persist(&self) -> Option<Vec<u8>> {
        let totals = self.totals();
        let mut persisted = lock(&self.persisted);
        if *persisted == totals {
            return None;
        }
        *persisted = totals;
        serde_json::to_vec(&totals).ok()
    }

    /// The increase since the last call (for Prometheus).
    pub(super) fn unpublished(&self) -> ExpiredCounts {
        let totals = self.totals();
        let mut published = lock(&self.published);
        let delta = totals.since(&published);
        *published = totals;
        delta
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses a recorded setting (days as decimal text).
pub(super) fn parse_recorded(raw: &[u8]) -> Option<Retention> {
    let days: u32 = std::str::from_utf8(raw).ok()?.trim().parse().ok()?;
    (1..=MAX_DAYS)
        .contains(&days)
        .then_some(Retention::Days(days))
}

/// The merge operator: [`value::merge`] at the current cutoff, noting
/// results that come out expired (see [`RetentionState::expired_merges`]).
pub(super) fn merge_operator(
    state: Arc<RetentionState>,
) -> impl Fn(&[u8], Option<&[u8]>, &rocksdb::MergeOperands) -> Option<Vec<u8>> + Clone {
    move |_key, existing, operands| {
        let cutoff = state.cutoff();
        match value::fold(existing, operands.iter(), cutoff, super::count_corrupt) {
            Some(v) => {
                if v.is_expired(cutoff) {
                    state.expired_merges.fetch_add(1, Ordering::Relaxed);
                }
                Some(v.to_vec())
            }
            None => existing.map(<[u8]>::to_vec),
        }
    }
}

/// The `names` column family's merge operator: [`value::merge_last_seen`],
/// noting results that come out expired like [`merge_operator`].
pub(super) fn last_seen_merge_operator(
    state: Arc<RetentionState>,
) -> impl Fn(&[u8], Option<&[u8]>, &rocksdb::MergeOperands) -> Option<Vec<u8>> + Clone {
    move |_key, existing, operands| match value::fold_last_seen(
        existing,
        operands.iter(),
        super::count_corrupt,
    ) {
        Some(last) => {
            if last < state.cutoff() {
                state.expired_merges.fetch_add(1, Ordering::Relaxed);
            }
            Some(value::last_seen_to_vec(last))
        }
        None => existing.map(<[u8]>::to_vec),
    }
}

/// Makes one [`ExpiryFilter`] per compaction of a column family, with the
/// cutoff at its start.
pub(super) struct ExpiryFilterFactory {
    pub(super) state: Arc<RetentionState>,
    /// Index in [`super::DATA_CFS`].
    pub(super) cf: usize,
}

impl CompactionFilterFactory for ExpiryFilterFactory {
    type Filter = ExpiryFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> ExpiryFilter {
        ExpiryFilter {
            cutoff: self.state.cutoff(),
            state: Arc::clone(&self.state),
            cf: self.cf,
        }
    }

    fn name(&self) -> &CStr {
        c"pdns_retention"
    }
}

/// Deletes entries whose value was last seen before the cutoff (a
/// [`value::Value`] or, in `names`, a last sighting alone). Values that do not
/// decode (an owner in `names` written before retention existed has none)
/// are kept.
pub(super) struct ExpiryFilter {
    cutoff: u64,
    state: Arc<RetentionState>,
    cf: usize,
}

impl CompactionFilter for ExpiryFilter {
    fn filter(&mut self, _level: u32, _key: &[u8], value: &[u8]) -> CompactionDecision {
        if self.cutoff == 0 {
            return CompactionDecision::Keep;
        }
        match value::last_seen(value) {
            Some(last) if last < self.cutoff => {
                self.state.count(self.cf, At::Compaction, 1);
                CompactionDecision::Remove
            }
            _ => CompactionDecision::Keep,
        }
    }

    fn name(&self) -> &CStr {
        c"pdns_retention"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_or_say_what_is_wrong() {
        assert_eq!("365".parse(), Ok(Retention::Days(365)));
        assert_eq!(" 1 ".parse(), Ok(Retention::Days(1)));
        assert_eq!("OFF".parse(), Ok(Retention::Off));
        assert_eq!("36500".parse(), Ok(Retention::Days(36_500)));
        for (bad, says) in [
            ("0", "0 days would expire everything"),
            ("-3", "-3 is negative"),
            ("ten", "\"ten\" is not a number of days"),
            ("1.5", "\"1.5\" is not a number of days"),
            ("", "\"\" is not a number of days"),
            ("36501", "more than a hundred years"),
            ("99999999999999999999999", "more than a hundred years"),
        ] {
            let err = bad.parse::<Retention>().unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn cutoff_follows_the_clock() {
        let clock = Clock::fixed(100 * DAY);
        let state = RetentionState::new(clock.clone());
        assert_eq!(state.cutoff(), 0, "off: nothing expires");
        state.set(Retention::Days(30));
        assert_eq!(state.cutoff(), 70 * DAY);
        clock.set(101 * DAY);
        assert_eq!(state.cutoff(), 71 * DAY);
        // Before the epoch plus the window, nothing can be expired.
        clock.set(DAY);
        assert_eq!(state.cutoff(), 0);
        state.set(Retention::Off);
        assert_eq!(state.setting(), Retention::Off);
    }

    #[test]
    fn periodic_compaction_is_an_eighth_within_bounds() {
        assert_eq!(periodic_compaction_secs(1), DAY);
        assert_eq!(periodic_compaction_secs(80), 10 * DAY);
        assert_eq!(periodic_compaction_secs(3650), 30 * DAY);
    }

    #[test]
    fn totals_persist_and_publish_once() {
        let state = RetentionState::new(Clock::fixed(0));
        state.set_recorded(ExpiredCounts {
            rdata: Expired {
                write: 0,
                compaction: 5,
            },
            ..Default::default()
        });
        state.count(0, At::Write, 3);
        state.count(1, At::Compaction, 2);
        let t = state.totals();
        assert_eq!((t.records.write, t.rdata.compaction), (3, 7));
        let persisted: ExpiredCounts =
            serde_json::from_slice(&state.to_persist().unwrap()).unwrap();
        assert_eq!(persisted, t);
        assert_eq!(state.to_persist(), None, "unchanged: nothing to write");
        assert_eq!(state.unpublished(), t);
        state.count(2, At::Compaction, 1);
        let delta = state.unpublished();
        assert_eq!(delta.negative.compaction, 1);
        assert_eq!(delta.rdata, Expired::default());
    }

    #[test]
    fn recorded_settings_are_days() {
        assert_eq!(parse_recorded(b"30"), Some(Retention::Days(30)));
        assert_eq!(parse_recorded(b"0"), None);
        assert_eq!(parse_recorded(b"x"), None);
    }
}
