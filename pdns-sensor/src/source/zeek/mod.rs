//! Zeek `dns.log` as a source: years of history that predate the sensor,
//! and live logs of sites that already run Zeek.
//!
//! Zeek writes one line per DNS transaction, not per record: the answers are
//! flattened into a list of strings under the question name, with neither
//! owner nor type per answer (`reconstruct` says what can be rebuilt from
//! them). This module turns such lines back into the responses the wire
//! path extracts — same owner encoding, same canonical rdata — and hands
//! them to the pipeline's worker, which applies the same extraction rules
//! as to a DNS message: a record seen both on the wire and in a log is one
//! key in the store, and merges.
//!
//! | file | job |
//! |---|---|
//! | [`reader`] | open plain or gzip (by magic bytes), hash the content, split lines with bounded memory |
//! | `tsv` | the header-driven TSV format: `#separator`, `#fields`, escapes |
//! | `json` | the JSON-lines format |
//! | `parser` | picks the format of a file and keeps its header state |
//! | `reconstruct` | a line → a [`Response`](crate::extract::Response): owners, types, canonical rdata, with the answer rules shared with the bro-pdns import ([`crate::source::answers`]) |
//! | [`meta`] | the bookkeeping entries that make imports idempotent and follows restartable |
//! | [`import`] | batch import of files and directories, through a pipeline worker |
//! | [`follow`] | tailing a live log across rotations, through a pipeline worker |
//!
//! Every data line ends up counted exactly once: imported, or skipped under
//! one [`LineSkip`] reason; answers that cannot become records are counted
//! under an [`AnswerSkip`] reason. Nothing here panics on any input.

pub mod follow;
pub mod import;
mod json;
pub mod meta;
mod parser;
pub mod reader;
mod reconstruct;
mod tsv;

/// One dns.log line, reduced to what an import needs. Filled by the TSV and
/// JSON parsers; its buffers are reused line after line.
#[derive(Debug, Default, Clone)]
pub struct LogRecord {
    /// `ts`, whole seconds since the epoch.
    pub ts: u64,
    /// `query`, unescaped; meaningful only when `has_query`.
    pub query: Vec<u8>,
    pub has_query: bool,
    pub qtype: Option<u16>,
    pub rcode: Option<u16>,
    pub rejected: bool,
    /// `opcode` (absent before Zeek 8.1, which logged queries only).
    pub opcode: Option<u16>,
    /// The answers, unescaped, back to back; `answer_ends[i]` ends answer i.
    pub answer_bytes: Vec<u8>,
    pub answer_ends: Vec<usize>,
    /// `TTLs`, whole seconds, paired with answers by position.
    pub ttls: Vec<u32>,
}

impl LogRecord {
    pub fn clear(&mut self) {
        self.ts = 0;
        self.query.clear();
        self.has_query = false;
        self.qtype = None;
        self.rcode = None;
        self.rejected = false;
        self.opcode = None;
        self.answer_bytes.clear();
        self.answer_ends.clear();
        self.ttls.clear();
    }

    pub fn answer_count(&self) -> usize {
        self.answer_ends.len()
    }

    /// Answer `i` (empty if out of range).
    pub fn answer(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.answer_ends.get(i - 1).copied().unwrap_or(0)
        };
        let end = self.answer_ends.get(i).copied().unwrap_or(start);
        self.answer_bytes.get(start..end).unwrap_or(&[])
    }

    /// Closes the answer being appended to `answer_bytes`.
    pub fn end_answer(&mut self) {
        self.answer_ends.push(self.answer_bytes.len());
    }
}

reasons! {
    /// Why a data line did not become any observation.
    LineSkip {
        /// A data line before any usable `#fields` header.
        NoHeader => "no_header",
        /// More or fewer columns than `#fields` names.
        ColumnCount => "column_count",
        /// A backslash escape that is neither `\\` nor `\xNN`.
        BadEscape => "bad_escape",
        /// A JSON line that does not parse as an object.
        BadJson => "bad_json",
        /// `ts` missing or not a time (btest baselines mask it as `XXXXXXXXXX.XXXXXX`).
        BadTs => "bad_ts",
        /// Another needed field is not of its type (qtype, rcode, TTLs, ...).
        BadValue => "bad_value",
        /// A line longer than the reader's bound (binary garbage).
        TooLong => "line_too_long",
        /// Opcode other than QUERY (NOTIFY, UPDATE): not answers.
        Opcode => "opcode_not_query",
        /// No reply was seen (`rcode` unset): a query on its own.
        Unanswered => "unanswered",
        /// Zeek flagged the reply `rejected` (e.g. REFUSED with no records).
        Rejected => "rejected",
        /// `query` unset: there is no name to file anything under.
        NoQuery => "no_query",
        /// A negative answer whose query type is unset.
        NoQtype => "no_qtype",
        /// NOERROR without answers for a type whose answers Zeek never logs
        /// (HINFO, CAA, SVCB, HTTPS, WKS, TKEY, ANY, ...): not NODATA.
        AnswersNotLogged => "answers_not_logged",
        /// Answers were logged but none could be turned into a record.
        NoUsableAnswer => "no_usable_answer",
    }
}

reasons! {
    /// Why one logged answer did not become a record.
    AnswerSkip {
        /// `RRSIG <type> <signer>`: signature, key tag and times are not logged.
        Rrsig => "rrsig",
        /// `DNSKEY <alg>`.
        Dnskey => "dnskey",
        /// `DS <alg> <digest type>`.
        Ds => "ds",
        /// `NSEC <owner> <next>`.
        Nsec => "nsec",
        /// `NSEC3` / `NSEC3PARAM` (the bare word).
        Nsec3 => "nsec3",
        /// `SSHFP: <hex>`: algorithm and fingerprint type are not logged.
        Sshfp => "sshfp",
        /// `LOC:  <size> <hp> <vp>`: the position is not logged.
        Loc => "loc",
        /// `NAPTR ...`: flags and fields are not logged unambiguously.
        Naptr => "naptr",
        /// `BIND9 signing signal` (type 65534).
        Bind9 => "bind9_signal",
        /// `<unknown type=N>`: Zeek has no parser for the type.
        UnknownType => "unknown_type",
        /// A name answering SOA: Zeek logs the primary server only.
        SoaMname => "soa_mname_only",
        /// A name answering SRV: Zeek logs the target only.
        SrvTarget => "srv_target_only",
        /// A name whose record type cannot be told (ANY or unset query type).
        Ambiguous => "ambiguous_name",
        /// A name that is not a valid domain name (empty label, too long).
        BadName => "bad_name",
        /// `TXT`/`SPF` text whose lengths do not add up.
        BadTxt => "bad_txt",
        /// Anything else (dynamic-update strings, unknown renderings).
        Unrecognised => "unrecognised",
    }
}

/// What an import or follow did with the lines it read. Serialised with
/// the skip reasons by name (see [`ZeekCounts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "ZeekCounts", from = "ZeekCounts")]
pub struct ZeekStats {
    /// Data lines read (header and comment lines are not counted).
    pub lines: u64,
    /// Data lines that produced at least one observation.
    pub lines_imported: u64,
    pub line_skips: [u64; LineSkip::ALL.len()],
    pub answer_skips: [u64; AnswerSkip::ALL.len()],
    /// Header lines that could not be used (reported with file:line).
    pub header_errors: u64,
    /// Record and negative-answer observations handed to the aggregator.
    pub records: u64,
    pub negatives: u64,
    /// Answers with no TTL at their position (stored with TTL 0).
    pub ttl_missing: u64,
}

impl ZeekStats {
    #[inline]
    pub fn skip_line(&mut self, reason: LineSkip) {
        self.line_skips[reason as usize] += 1;
    }

    #[inline]
    pub fn skip_answer(&mut self, reason: AnswerSkip) {
        self.answer_skips[reason as usize] += 1;
    }

    pub fn line_skipped(&self, reason: LineSkip) -> u64 {
        self.line_skips[reason as usize]
    }

    pub fn answer_skipped(&self, reason: AnswerSkip) -> u64 {
        self.answer_skips[reason as usize]
    }

    pub fn lines_skipped(&self) -> u64 {
        self.line_skips.iter().sum()
    }

    /// Adds another set of counters to this one.
    pub fn add(&mut self, other: &ZeekStats) {
        self.lines += other.lines;
        self.lines_imported += other.lines_imported;
        for (a, b) in self.line_skips.iter_mut().zip(other.line_skips.iter()) {
            *a += b;
        }
        for (a, b) in self.answer_skips.iter_mut().zip(other.answer_skips.iter()) {
            *a += b;
        }
        self.header_errors += other.header_errors;
        self.records += other.records;
        self.negatives += other.negatives;
        self.ttl_missing += other.ttl_missing;
    }

    /// `self - earlier`, counter by counter (for publishing deltas).
    pub fn since(&self, earlier: &ZeekStats) -> ZeekStats {
        let mut d = self.clone();
        d.lines -= earlier.lines.min(d.lines);
        d.lines_imported -= earlier.lines_imported.min(d.lines_imported);
        for (a, b) in d.line_skips.iter_mut().zip(earlier.line_skips.iter()) {
            *a -= (*b).min(*a);
        }
        for (a, b) in d.answer_skips.iter_mut().zip(earlier.answer_skips.iter()) {
            *a -= (*b).min(*a);
        }
        d.header_errors -= earlier.header_errors.min(d.header_errors);
        d.records -= earlier.records.min(d.records);
        d.negatives -= earlier.negatives.min(d.negatives);
        d.ttl_missing -= earlier.ttl_missing.min(d.ttl_missing);
        d
    }

    /// `skipped lines: a=1 b=2` / `skipped answers: ...` lines for reports
    /// (empty when nothing was skipped).
    pub fn render_skips(&self) -> String {
        let mut s = String::new();
        let lines: Vec<String> = LineSkip::ALL
            .iter()
            .filter(|r| self.line_skipped(**r) > 0)
            .map(|r| format!("{}={}", r.as_str(), self.line_skipped(*r)))
            .collect();
        if !lines.is_empty() {
            s.push_str(&format!("skipped lines: {}\n", lines.join(" ")));
        }
        let answers: Vec<String> = AnswerSkip::ALL
            .iter()
            .filter(|r| self.answer_skipped(**r) > 0)
            .map(|r| format!("{}={}", r.as_str(), self.answer_skipped(*r)))
            .collect();
        if !answers.is_empty() {
            s.push_str(&format!("skipped answers: {}\n", answers.join(" ")));
        }
        let mut notes = Vec::new();
        if self.header_errors > 0 {
            notes.push(format!("bad_header_lines={}", self.header_errors));
        }
        if self.ttl_missing > 0 {
            notes.push(format!("answers_without_ttl={}", self.ttl_missing));
        }
        if !notes.is_empty() {
            s.push_str(&format!("notes: {}\n", notes.join(" ")));
        }
        s
    }
}

/// [`ZeekStats`] as `--stats-json` shows it: skip reasons by name.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ZeekCounts {
    pub lines: u64,
    pub lines_imported: u64,
    pub record_observations: u64,
    pub negative_observations: u64,
    pub header_errors: u64,
    pub answers_without_ttl: u64,
    pub skipped_lines: std::collections::BTreeMap<String, u64>,
    pub skipped_answers: std::collections::BTreeMap<String, u64>,
}

impl From<ZeekStats> for ZeekCounts {
    fn from(s: ZeekStats) -> ZeekCounts {
        ZeekCounts {
            lines: s.lines,
            lines_imported: s.lines_imported,
            record_observations: s.records,
            negative_observations: s.negatives,
            header_errors: s.header_errors,
            answers_without_ttl: s.ttl_missing,
            skipped_lines: LineSkip::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), s.line_skipped(*r)))
                .collect(),
            skipped_answers: AnswerSkip::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), s.answer_skipped(*r)))
                .collect(),
        }
    }
}

impl From<ZeekCounts> for ZeekStats {
    fn from(c: ZeekCounts) -> ZeekStats {
        let mut s = ZeekStats {
            lines: c.lines,
            lines_imported: c.lines_imported,
            records: c.record_observations,
            negatives: c.negative_observations,
            header_errors: c.header_errors,
            ttl_missing: c.answers_without_ttl,
            ..ZeekStats::default()
        };
        for (i, r) in LineSkip::ALL.iter().enumerate() {
            s.line_skips[i] = c.skipped_lines.get(r.as_str()).copied().unwrap_or(0);
        }
        for (i, r) in AnswerSkip::ALL.iter().enumerate() {
            s.answer_skips[i] = c.skipped_answers.get(r.as_str()).copied().unwrap_or(0);
        }
        s
    }
}

/// Parses and rebuilds the lines of one file: format and header state,
/// reused record buffers, the reconstructor.
#[derive(Default)]
pub struct FileParser {
    pub parser: parser::LogParser,
    rec: LogRecord,
    recon: reconstruct::Reconstructor,
}

impl FileParser {
    pub fn new() -> Self {
        FileParser {
            parser: parser::LogParser::new(),
            rec: LogRecord::default(),
            recon: reconstruct::Reconstructor::new(),
        }
    }

    /// Handles line `line_no` of the file: a data line is rebuilt and
    /// handed to `observe`. With `replay_only` the line only updates the
    /// header state (replaying the part of a file that an earlier run
    /// imported) and nothing is counted.
    pub fn handle(
        &mut self,
        line: reader::Line<'_>,
        line_no: u64,
        replay_only: bool,
        stats: &mut ZeekStats,
        observe: &mut impl FnMut(&mut crate::extract::Response) -> crate::extract::Outcome,
        warnings: &mut Warnings,
    ) {
        let text = match line {
            reader::Line::Text(t) if replay_only && !self.parser.needs_for_state(t) => return,
            reader::Line::Text(t) => t,
            reader::Line::TooLong => {
                if !replay_only {
                    stats.lines += 1;
                    stats.skip_line(LineSkip::TooLong);
                    warnings.warn(line_no, || {
                        format!("line longer than {} bytes, skipped", reader::MAX_LINE)
                    });
                }
                return;
            }
        };
        match self.parser.parse(text, &mut self.rec) {
            parser::Outcome::Record => {
                if replay_only {
                    return;
                }
                self.recon.observe(&self.rec, stats, observe);
            }
            parser::Outcome::Meta => {}
            parser::Outcome::Skipped(reason) => {
                if !replay_only {
                    stats.lines += 1;
                    stats.skip_line(reason);
                    warnings.warn(line_no, || describe(reason).to_string());
                }
            }
            parser::Outcome::HeaderError(message) => {
                if !replay_only {
                    stats.header_errors += 1;
                    warnings.warn(line_no, || format!("bad header line: {message}"));
                }
            }
        }
    }
}

/// A sentence for a malformed line (parse-level reasons only).
fn describe(reason: LineSkip) -> &'static str {
    match reason {
        LineSkip::NoHeader => "data line before any usable #fields header, skipped",
        LineSkip::ColumnCount => "wrong number of columns for #fields, skipped",
        LineSkip::BadEscape => "bad escape (only \\\\ and \\xNN exist), skipped",
        LineSkip::BadJson => "not a JSON object, skipped",
        LineSkip::BadTs => "ts is not a time, skipped",
        LineSkip::BadValue => "a field does not hold a value of its type, skipped",
        LineSkip::TooLong => "line too long, skipped",
        _ => "skipped",
    }
}

/// Bounded per-file warnings: the first few problems of a file are logged
/// with file:line, the rest only counted and summed up at the end.
pub struct Warnings {
    label: String,
    shown: usize,
    suppressed: u64,
}

/// Problems logged one by one per file before the rest are only counted.
const WARNINGS_PER_FILE: usize = 10;

impl Warnings {
    pub fn new(label: String) -> Self {
        Warnings {
            label,
            shown: 0,
            suppressed: 0,
        }
    }

    /// Logs `file:line: message`, or counts it once the quota is used.
    pub fn warn(&mut self, line: u64, message: impl FnOnce() -> String) {
        if self.shown < WARNINGS_PER_FILE {
            self.shown += 1;
            tracing::warn!("{}:{}: {}", self.label, line, message());
        } else {
            self.suppressed += 1;
        }
    }

    /// Logs how many problems were not shown.
    pub fn finish(&mut self) {
        if self.suppressed > 0 {
            tracing::warn!(
                "{}: {} more problem line(s) not shown (see the skip counters)",
                self.label,
                self.suppressed
            );
            self.suppressed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::vocab::name;
    use crate::vocab::observation::ObservationSink;
    use crate::vocab::{OptRcode, Rtype};

    struct Count(u64);

    impl ObservationSink for Count {
        fn record(&mut self, owner: &[u8], _: Rtype, rdata: &[u8], _: u32, _: u64) {
            assert!(name::split(owner).is_some_and(|(_, rest)| rest.is_empty()));
            assert!(rdata.len() <= 65535);
            self.0 += 1;
        }
        fn negative(&mut self, qname: &[u8], _: Rtype, _: OptRcode, _: u64) {
            assert!(name::split(qname).is_some());
            self.0 += 1;
        }
    }

    const HEADER: &str = "#separator \\x09\n#set_separator\t,\n#fields\tts\tquery\tqtype\trcode\tanswers\tTTLs\trejected\topcode\n";

    fn run(lines: &[Vec<u8>]) -> ZeekStats {
        let mut text = HEADER.as_bytes().to_vec();
        for l in lines {
            text.extend_from_slice(l);
            text.push(b'\n');
        }
        let mut reader = reader::LineReader::new(&text[..]);
        let mut file = FileParser::new();
        let mut stats = ZeekStats::default();
        let mut sink = Count(0);
        let mut warnings = Warnings::new("test".into());
        let mut n = 0;
        while let Some(line) = reader.next_line(true).unwrap() {
            n += 1;
            file.handle(
                line,
                n,
                false,
                &mut stats,
                &mut |r| r.observe(&mut sink),
                &mut warnings,
            );
        }
        assert_eq!(stats.lines, stats.lines_imported + stats.lines_skipped());
        assert_eq!(sink.0, stats.records + stats.negatives);
        stats
    }

    fn answer() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.-]{0,20}",
            "(TXT|SPF) [0-9]{1,3} [ -~]{0,12}",
            "(RRSIG|DNSKEY|DS|NSEC) [0-9]{1,3}( [a-z.]{0,8})?",
            "[0-9.]{1,15}",
            "[0-9a-f:]{2,20}",
            "[\\\\x,a-z0-9]{0,10}",
            "<unknown type=[0-9]{1,5}>",
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)) {
            run(&lines);
        }

        #[test]
        fn arbitrary_answers_never_panic(
            query in "[a-z0-9.\\\\x-]{0,30}",
            qtype in prop_oneof![Just("-".to_string()), (0u32..70000).prop_map(|n| n.to_string())],
            rcode in prop_oneof![Just("-".to_string()), (0u32..30).prop_map(|n| n.to_string())],
            answers in proptest::collection::vec(answer(), 0..8),
            ttls in proptest::collection::vec(0u64..5_000_000_000, 0..8),
        ) {
            let answers = if answers.is_empty() { "(empty)".to_string() } else { answers.join(",") };
            let ttls: Vec<String> = ttls.iter().map(|t| format!("{t}.000000")).collect();
            let ttls = if ttls.is_empty() { "-".to_string() } else { ttls.join(",") };
            let line = format!("1600000000.5\t{query}\t{qtype}\t{rcode}\t{answers}\t{ttls}\tF\t0");
            run(&[line.into_bytes()]);
        }
    }
}
