//! bro-pdns databases as a source: the history of sites that ran
//! bro-pdns, the Zeek-fed passive DNS tool this sensor replaces, after the
//! dns.logs that filled it are gone.
//!
//! bro-pdns kept one row per (question name, question type, answer
//! string), with a count, first and last seen and the latest TTL. Two
//! generations wrote two schemas (read from its source):
//!
//! | generation | table | names | times |
//! |---|---|---|---|
//! | Python (SQLAlchemy) | `dns` | as logged | naive **local** times of the host that ran it (`datetime.fromtimestamp`): `--timezone` |
//! | Go | `tuples` (+ `individual`) | `query` stored **character-reversed** | SQLite: UTC text (`datetime(ts, 'unixepoch')`); PostgreSQL: `to_timestamp(ts)::timestamp`, naive in the session's `TimeZone` (the server's setting unless `--timezone` says otherwise) |
//!
//! Go's `individual` table holds per-name and per-answer totals that
//! repeat `tuples`; only its questions that never had an answer are
//! counted (they cannot become negative answers: no response code was
//! kept).
//!
//! ## What is rebuilt, what is not
//!
//! Each row holds one of Zeek's answer strings filed under the *question*
//! with the question's type: a CNAME chain was flattened, and the order of
//! the reply, which the Zeek import uses to follow a chain, is lost. The
//! rules that tell what an answer string is are the Zeek import's
//! ([`super::answers`]); what an unordered row adds is that the owner of a
//! record is known only when no name filed under the same question can be
//! a CNAME hop. Rows are therefore read grouped by (question, type):
//!
//! * an address (`A`/`AAAA`) or text (`TXT`/`SPF`) is a record of the
//!   question name if no name answer was ever filed under the same
//!   question and type; otherwise it may sit at the end of a chain and is
//!   skipped (`owner_behind_cname`);
//! * a name under an NS, PTR or MX question is a record of that type of
//!   the question name, by the Zeek import's rule (MX with preference 0);
//! * a name under a CNAME question is the question's CNAME (a resolver
//!   does not follow the chain for that type) unless addresses or text
//!   were filed there too;
//! * a name under any other question is a CNAME hop, but from which owner
//!   cannot be told from a row (the first hop is the question's, the next
//!   one a hop's): skipped (`cname_owner_unknown`). So are the names the
//!   Zeek import skips (SOA and SRV answers, ANY without an RRSIG to tell),
//!   and everything that made a name a possible hop makes the other rows
//!   of its question `owner_behind_cname`;
//! * the renderings Zeek keeps a summary of (RRSIG, DNSKEY, DS, NSEC*, ...)
//!   are skipped and counted as in the Zeek import.
//!
//! A row skipped for an impossible count or time still tells what its
//! question's replies held, so its answer counts in these decisions.
//!
//! Not rebuildable at all: negative answers (no response code was kept),
//! the MX preference, records behind CNAME chains, the question's class.
//! Counts are bro-pdns's own: one per answer occurrence (an answer logged
//! twice in one reply counts twice, where the Zeek import counts it once
//! per reply). **The Python version's counts and first-seen are its
//! own**: it inserted a row with the count of the first file and first =
//! last = the *last* sighting in that file, and then added 1 per later
//! file whatever the file held. They are imported as stored; no guess
//! corrects them.
//!
//! ## Importing again
//!
//! The rows keep totals, so importing the same database twice must not
//! add them twice. For each source (see [`ledger`]) the import remembers,
//! per row, the count, first and last it contributed; a later import adds
//! only the growth (`count - contributed`), and a row that did not change
//! adds nothing. The ledger entries are written in the same atomic batch
//! as the records they account for, so a crash never leaves one without
//! the other.
//!
//! | file | job |
//! |---|---|
//! | [`schema`] | which generation a database is, from its tables and columns |
//! | [`sqlite`] | reads a SQLite file |
//! | [`postgres`] | reads a PostgreSQL database |
//! | [`times`] | stored times to epoch seconds, in a time zone |
//! | [`rebuild`] | a question's rows to records |
//! | [`ledger`] | what each source already contributed |
//! | [`import`] | drives the above into the store |
//!
//! Every row read is counted exactly once: imported, unchanged since an
//! earlier import, or skipped under one reason. Nothing here panics on
//! any input.

pub mod import;
pub mod ledger;
pub mod postgres;
pub mod rebuild;
pub mod schema;
pub mod sqlite;
pub mod times;

use super::zeek::AnswerSkip;

/// One row of `dns` or `tuples`, as stored (the Go version's `query`
/// still reversed). Byte strings: SQLite does not promise UTF-8.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawRow {
    pub query: Option<Vec<u8>>,
    pub qtype: Option<Vec<u8>>,
    pub answer: Option<Vec<u8>>,
    pub count: Option<i64>,
    pub ttl: Option<i64>,
    pub first: times::Stored,
    pub last: times::Stored,
}

reasons! {
    /// Why a row did not become a record (besides the answer reasons it
    /// shares with the Zeek import, [`AnswerSkip`]).
    RowSkip {
        /// `query` NULL, empty or Zeek's unset marker `-`.
        NoQuery => "no_query",
        /// `query` is not a domain name (empty label, over 63/255 bytes).
        BadQuery => "bad_query",
        /// `answer` NULL, empty, or Zeek's `-` / `(empty)` (the Python
        /// version stored a row for replies without answers).
        NoAnswer => "no_answer",
        /// `count` NULL, zero or negative.
        BadCount => "bad_count",
        /// `first` or `last` NULL or not a time.
        BadTime => "bad_time",
        /// `first` later than `last`.
        FirstAfterLast => "first_after_last",
        /// A local time that never existed in `--timezone` (a daylight
        /// saving gap): the zone is probably not the one that wrote it.
        NonexistentLocalTime => "nonexistent_local_time",
        /// `ttl` negative or beyond 2^31 - 1.
        BadTtl => "bad_ttl",
        /// An address or text filed under a question that also held a name
        /// that may be a CNAME hop: its owner may be the chain's end.
        OwnerBehindCname => "owner_behind_cname",
        /// A name that is a CNAME hop whose owner the row cannot tell.
        CnameOwnerUnknown => "cname_owner_unknown",
    }
}

/// What an import did with the rows it read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BroPdnsStats {
    /// Rows of `dns` / `tuples` read.
    pub rows: u64,
    /// Rows that added to a record (first import, or grown since).
    pub rows_imported: u64,
    /// Of those, rows an earlier import had contributed to: only the
    /// growth was added.
    pub rows_grown: u64,
    /// Rows an earlier import contributed and that did not grow.
    pub rows_unchanged: u64,
    /// Rows whose count is lower than what an earlier import contributed
    /// (the database was pruned or rebuilt): nothing subtracted.
    pub rows_shrunk: u64,
    pub row_skips: [u64; RowSkip::ALL.len()],
    pub answer_skips: [u64; AnswerSkip::ALL.len()],
    /// Sightings added to the store (the sum of counts or their growth).
    pub sightings: u64,
    /// Rows without a TTL (stored with TTL 0).
    pub ttl_missing: u64,
    /// Local times that occurred twice (daylight saving's end): first seen
    /// took the earlier instant, last seen the later.
    pub ambiguous_local_times: u64,
    /// Go's `individual` table: rows, and questions that never had an
    /// answer (not importable: no response code was kept).
    pub individual_rows: u64,
    pub unanswered_questions: u64,
}

impl BroPdnsStats {
    #[inline]
    pub fn skip_row(&mut self, reason: RowSkip) {
        self.row_skips[reason as usize] += 1;
    }

    #[inline]
    pub fn skip_answer(&mut self, reason: AnswerSkip) {
        self.answer_skips[reason as usize] += 1;
    }

    pub fn row_skipped(&self, reason: RowSkip) -> u64 {
        self.row_skips[reason as usize]
    }

    pub fn answer_skipped(&self, reason: AnswerSkip) -> u64 {
        self.answer_skips[reason as usize]
    }

    /// Rows skipped for any reason.
    pub fn rows_skipped(&self) -> u64 {
        self.row_skips.iter().sum::<u64>() + self.answer_skips.iter().sum::<u64>()
    }

    /// `self - earlier`, counter by counter (for publishing deltas).
    pub fn since(&self, earlier: &BroPdnsStats) -> BroPdnsStats {
        let sub = |a: u64, b: u64| a.saturating_sub(b);
        let mut d = self.clone();
        d.rows = sub(self.rows, earlier.rows);
        d.rows_imported = sub(self.rows_imported, earlier.rows_imported);
        d.rows_grown = sub(self.rows_grown, earlier.rows_grown);
        d.rows_unchanged = sub(self.rows_unchanged, earlier.rows_unchanged);
        d.rows_shrunk = sub(self.rows_shrunk, earlier.rows_shrunk);
        for (a, b) in d.row_skips.iter_mut().zip(earlier.row_skips.iter()) {
            *a = sub(*a, *b);
        }
        for (a, b) in d.answer_skips.iter_mut().zip(earlier.answer_skips.iter()) {
            *a = sub(*a, *b);
        }
        d.sightings = sub(self.sightings, earlier.sightings);
        d.ttl_missing = sub(self.ttl_missing, earlier.ttl_missing);
        d.ambiguous_local_times = sub(self.ambiguous_local_times, earlier.ambiguous_local_times);
        d
    }
}

/// [`BroPdnsStats`] as `--stats-json` shows it: skip reasons by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BroPdnsCounts {
    pub rows: u64,
    pub rows_imported: u64,
    pub rows_grown: u64,
    pub rows_unchanged: u64,
    pub rows_shrunk: u64,
    pub sightings: u64,
    pub rows_without_ttl: u64,
    pub ambiguous_local_times: u64,
    pub individual_rows: u64,
    pub unanswered_questions: u64,
    pub skipped_rows: std::collections::BTreeMap<String, u64>,
    pub skipped_answers: std::collections::BTreeMap<String, u64>,
}

impl From<&BroPdnsStats> for BroPdnsCounts {
    fn from(s: &BroPdnsStats) -> BroPdnsCounts {
        BroPdnsCounts {
            rows: s.rows,
            rows_imported: s.rows_imported,
            rows_grown: s.rows_grown,
            rows_unchanged: s.rows_unchanged,
            rows_shrunk: s.rows_shrunk,
            sightings: s.sightings,
            rows_without_ttl: s.ttl_missing,
            ambiguous_local_times: s.ambiguous_local_times,
            individual_rows: s.individual_rows,
            unanswered_questions: s.unanswered_questions,
            skipped_rows: RowSkip::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), s.row_skipped(*r)))
                .collect(),
            skipped_answers: AnswerSkip::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), s.answer_skipped(*r)))
                .collect(),
        }
    }
}

impl BroPdnsCounts {
    /// A skip counter by its label (rows or answers), 0 if unknown.
    pub fn skipped(&self, label: &str) -> u64 {
        self.skipped_rows
            .get(label)
            .or_else(|| self.skipped_answers.get(label))
            .copied()
            .unwrap_or(0)
    }
}
