//! From a dns.log line back to records: owner, type and canonical rdata.
//!
//! Zeek logs the answer section as a list of strings under the question
//! name, with neither owner nor type per answer (`zeek-dnslog.md` §1.7).
//! What can be rebuilt, and how:
//!
//! * an IPv4 address is an `A` record, an IPv6 address `AAAA`;
//! * `TXT <len> <text> ...` / `SPF <len> <text> ...` are TXT / SPF records,
//!   character-strings cut by their logged byte lengths (so `TXT` inside a
//!   text does not confuse them);
//! * a name is a **CNAME hop** from the current owner, and becomes the
//!   current owner: the chain runs query → first name → ..., so records
//!   after a name belong to the last name. This is the rule for every
//!   query type except the name-typed ones below;
//! * for a query of type NS, PTR or MX, a name is a record *of that type*
//!   owned by the current owner — unless an address or text follows it
//!   later in the list (then the name was a CNAME hop: NS/PTR/MX answers
//!   never carry addresses), or, for PTR, it is itself a reverse name
//!   (`*.in-addr.arpa`, `*.ip6.arpa`) followed by another name (classless
//!   reverse delegation, RFC 2317). **MX: Zeek drops the preference; the
//!   record is stored with preference 0**, so it does not merge with the
//!   wire observation of the same exchange (a known limit);
//! * for SOA and SRV queries Zeek logs only the primary server / target:
//!   such a name cannot be rebuilt and is skipped (counted), unless it is a
//!   CNAME hop by the address rule;
//! * when the query type is unknown (the query was not seen) names followed
//!   by an address or text are CNAME hops; for ANY, names are records of a
//!   type Zeek does not say. In both cases an `RRSIG <type>` right after the
//!   names names their type (5 → CNAME, 2/12/15 → NS/PTR/MX); otherwise the
//!   name is skipped as ambiguous;
//! * `RRSIG`, `DNSKEY`, `DS`, `NSEC*`, `SSHFP`, `LOC`, `NAPTR`, the BIND9
//!   signal and `<unknown type=N>` keep only a summary of the rdata: they
//!   are counted per kind and never stored.
//!
//! TTLs pair with answers by position. Each distinct record is observed
//! once per line, as the wire path counts each once per response.
//!
//! Negative answers follow the wire path: NXDOMAIN after a CNAME chain is
//! filed under the end of the chain; a line without answers is a negative
//! answer for (query, qtype, rcode), where NOERROR counts as NODATA only
//! for query types whose answers Zeek logs (an empty list for HINFO, CAA,
//! SVCB, HTTPS, WKS, TKEY, ANY... says nothing). Limits: Zeek does not tell
//! a referral or a truncated (TC=1) reply from NODATA (the wire path
//! does), nor a CNAME chain Zeek flattened from a DNAME it logged as
//! `<unknown type=39>` from an ordinary one (the synthesized CNAME is what
//! is stored, as on the wire).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{AnswerSkip, LineSkip, LogRecord, ZeekStats};
use crate::extract::ObservationSink;

/// Longest name in wire form.
const MAX_WIRE_NAME: usize = 255;

/// What one answer string is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    V4([u8; 4]),
    V6([u8; 16]),
    /// TXT (16) or SPF (99).
    Text(u16),
    Name,
    /// `RRSIG <type covered> ...`.
    Rrsig(u16),
    Skip(AnswerSkip),
}

impl Kind {
    /// Data that can only be the final RRset of a chain.
    fn is_data(self) -> bool {
        matches!(self, Kind::V4(_) | Kind::V6(_) | Kind::Text(_))
    }
}

/// What a name answer is, once the context has been looked at.
enum Role {
    CnameHop,
    Record(u16),
    Skip(AnswerSkip),
}

/// A record waiting to be emitted (ranges into `bytes`).
struct Pending {
    owner: std::ops::Range<usize>,
    rtype: u16,
    rdata: std::ops::Range<usize>,
    ttl: u32,
}

/// Query types whose answers Zeek never puts in `answers`: an empty list
/// for them is not NODATA.
fn answers_unlogged(qtype: u16) -> bool {
    matches!(
        qtype,
        11 | 13 | 41 | 64 | 65 | 249 | 250 | 251 | 252 | 253 | 254 | 255 | 257
    )
}

/// Reusable buffers for rebuilding one line after another.
#[derive(Default)]
pub struct Reconstructor {
    kinds: Vec<Kind>,
    /// Owners and rdata of the line's records.
    bytes: Vec<u8>,
    pending: Vec<Pending>,
    /// End of the CNAME chain for NXDOMAIN (reversed encoding).
    chain_end: Vec<u8>,
    scratch: Vec<u8>,
}

impl Reconstructor {
    pub fn new() -> Self {
        Reconstructor {
            kinds: Vec::with_capacity(32),
            bytes: Vec::with_capacity(2048),
            pending: Vec::with_capacity(32),
            chain_end: Vec::with_capacity(256),
            scratch: Vec::with_capacity(256),
        }
    }

    /// Turns one parsed line into observations; counts the line as imported
    /// or skipped (exactly one of the two) and every unusable answer.
    pub fn observe(
        &mut self,
        rec: &LogRecord,
        stats: &mut ZeekStats,
        sink: &mut impl ObservationSink,
    ) {
        stats.lines += 1;
        match self.observe_inner(rec, stats, sink) {
            Ok(()) => stats.lines_imported += 1,
            Err(reason) => stats.skip_line(reason),
        }
    }

    fn observe_inner(
        &mut self,
        rec: &LogRecord,
        stats: &mut ZeekStats,
        sink: &mut impl ObservationSink,
    ) -> Result<(), LineSkip> {
        if rec.opcode.is_some_and(|o| o != 0) {
            return Err(LineSkip::Opcode);
        }
        let Some(rcode) = rec.rcode else {
            return Err(LineSkip::Unanswered);
        };
        if rec.rejected {
            return Err(LineSkip::Rejected);
        }
        if !rec.has_query {
            return Err(LineSkip::NoQuery);
        }
        self.bytes.clear();
        self.pending.clear();
        let query_start = self.bytes.len();
        if !encode_reversed(&rec.query, &mut self.bytes) {
            return Err(LineSkip::NoQuery);
        }
        let query = query_start..self.bytes.len();

        if rec.answer_count() == 0 {
            let Some(qtype) = rec.qtype else {
                return Err(LineSkip::NoQtype);
            };
            if rcode == 0 && answers_unlogged(qtype) {
                return Err(LineSkip::AnswersNotLogged);
            }
            sink.negative(&self.bytes[query], qtype, rcode, rec.ts);
            stats.negatives += 1;
            return Ok(());
        }

        self.classify(rec, stats);
        let chain_end = self.build(rec, query, stats);
        let emitted = self.emit(rec.ts, stats, sink);
        // NXDOMAIN after a CNAME chain: the name that does not exist is the
        // end of the chain (as the wire path files it).
        let mut negative = false;
        if rcode == 3
            && let (Some(end), Some(qtype)) = (chain_end, rec.qtype)
        {
            self.chain_end.clear();
            if crate::store::keys::wire_name_reversed(&self.bytes[end], &mut self.chain_end) {
                sink.negative(&self.chain_end, qtype, rcode, rec.ts);
                stats.negatives += 1;
                negative = true;
            }
        }
        if emitted == 0 && !negative {
            return Err(LineSkip::NoUsableAnswer);
        }
        Ok(())
    }

    fn classify(&mut self, rec: &LogRecord, stats: &mut ZeekStats) {
        self.kinds.clear();
        for i in 0..rec.answer_count() {
            let kind = classify(rec.answer(i));
            match kind {
                Kind::Skip(reason) => stats.skip_answer(reason),
                Kind::Rrsig(_) => stats.skip_answer(AnswerSkip::Rrsig),
                _ => {}
            }
            self.kinds.push(kind);
        }
    }

    /// Walks the answers, appending records to `pending`. Returns the rdata
    /// range of the last CNAME hop (the chain end), if any.
    fn build(
        &mut self,
        rec: &LogRecord,
        query: std::ops::Range<usize>,
        stats: &mut ZeekStats,
    ) -> Option<std::ops::Range<usize>> {
        let mut owner = query;
        let mut last_hop = None;
        for i in 0..self.kinds.len() {
            let ttl = match rec.ttls.get(i) {
                Some(&t) => t,
                None => {
                    stats.ttl_missing += 1;
                    0
                }
            };
            let answer = rec.answer(i);
            let (rtype, rdata) = match self.kinds[i] {
                Kind::V4(a) => (1, self.push(&a)),
                Kind::V6(a) => (28, self.push(&a)),
                Kind::Text(rtype) => {
                    let start = self.bytes.len();
                    if !text_rdata(rtype, answer, &mut self.bytes) {
                        self.bytes.truncate(start);
                        stats.skip_answer(AnswerSkip::BadTxt);
                        continue;
                    }
                    (rtype, start..self.bytes.len())
                }
                Kind::Rrsig(_) | Kind::Skip(_) => continue,
                Kind::Name => {
                    let role = self.role(rec.qtype, answer, i);
                    let start = self.bytes.len();
                    let rtype = match role {
                        Role::Skip(reason) => {
                            stats.skip_answer(reason);
                            continue;
                        }
                        Role::CnameHop => 5,
                        Role::Record(15) => {
                            self.bytes.extend_from_slice(&[0, 0]); // preference unknown
                            15
                        }
                        Role::Record(t) => t,
                    };
                    let name_start = self.bytes.len();
                    if !encode_wire(answer, &mut self.bytes) {
                        self.bytes.truncate(start);
                        stats.skip_answer(AnswerSkip::BadName);
                        continue;
                    }
                    let rdata = start..self.bytes.len();
                    if rtype == 5 {
                        // The target becomes the owner of what follows.
                        self.scratch.clear();
                        if !crate::store::keys::wire_name_reversed(
                            &self.bytes[name_start..],
                            &mut self.scratch,
                        ) {
                            self.bytes.truncate(start);
                            stats.skip_answer(AnswerSkip::BadName);
                            continue;
                        }
                        let owner_start = self.bytes.len();
                        self.bytes.extend_from_slice(&self.scratch);
                        self.pending.push(Pending {
                            owner: owner.clone(),
                            rtype,
                            rdata: rdata.clone(),
                            ttl,
                        });
                        owner = owner_start..self.bytes.len();
                        last_hop = Some(rdata);
                        continue;
                    }
                    (rtype, rdata)
                }
            };
            self.pending.push(Pending {
                owner: owner.clone(),
                rtype,
                rdata,
                ttl,
            });
        }
        last_hop
    }

    fn push(&mut self, data: &[u8]) -> std::ops::Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        start..self.bytes.len()
    }

    /// Decides what name answer `i` is (see the module docs).
    fn role(&self, qtype: Option<u16>, answer: &[u8], i: usize) -> Role {
        let data_after = || self.kinds[i + 1..].iter().any(|k| k.is_data());
        match qtype {
            Some(5) => Role::CnameHop,
            Some(t @ (2 | 12 | 15)) => {
                if data_after() {
                    return Role::CnameHop;
                }
                if t == 12 && is_reverse_name(answer) && self.kinds[i + 1..].contains(&Kind::Name) {
                    return Role::CnameHop;
                }
                Role::Record(t)
            }
            Some(t @ (6 | 33)) => {
                if data_after() {
                    Role::CnameHop
                } else if t == 6 {
                    Role::Skip(AnswerSkip::SoaMname)
                } else {
                    Role::Skip(AnswerSkip::SrvTarget)
                }
            }
            None | Some(255) => {
                if qtype.is_none() && data_after() {
                    return Role::CnameHop;
                }
                // An RRSIG right after the run of names tells their type.
                let next = self.kinds[i + 1..].iter().find(|k| **k != Kind::Name);
                match next {
                    Some(Kind::Rrsig(5)) => Role::CnameHop,
                    Some(Kind::Rrsig(t @ (2 | 12 | 15))) => Role::Record(*t),
                    _ => Role::Skip(AnswerSkip::Ambiguous),
                }
            }
            Some(_) => Role::CnameHop,
        }
    }

    /// Hands the pending records to the sink, each distinct one once.
    fn emit(&mut self, ts: u64, stats: &mut ZeekStats, sink: &mut impl ObservationSink) -> usize {
        let bytes = &self.bytes;
        let id = |p: &Pending| (p.rtype, &bytes[p.owner.clone()], &bytes[p.rdata.clone()]);
        let mut emitted = 0;
        for (i, p) in self.pending.iter().enumerate() {
            let this = id(p);
            // Lines hold a handful of answers: a linear scan beats hashing.
            if self.pending[..i].iter().any(|q| id(q) == this) {
                continue;
            }
            sink.record(this.1, p.rtype, this.2, p.ttl, ts);
            emitted += 1;
        }
        stats.records += emitted as u64;
        self.pending.clear();
        emitted
    }
}

/// What an answer string is, from its shape alone.
fn classify(a: &[u8]) -> Kind {
    if a.is_empty() {
        return Kind::Skip(AnswerSkip::Unrecognised);
    }
    let first = a[0];
    if first.is_ascii_digit() && a.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        if let Some(ip) = parse_ip::<Ipv4Addr>(a) {
            return Kind::V4(ip.octets());
        }
    } else if a.contains(&b':')
        && a.iter().all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
        && let Some(ip) = parse_ip::<Ipv6Addr>(a)
    {
        return Kind::V6(ip.octets());
    }
    // Zeek lowercases every name it logs, so an upper-case ASCII letter
    // means one of its renderings.
    if first.is_ascii_uppercase() || first == b'<' {
        let starts = |p: &[u8]| a.starts_with(p);
        let digit_after =
            |p: &[u8]| a.starts_with(p) && a.get(p.len()).is_some_and(u8::is_ascii_digit);
        return if digit_after(b"TXT ") {
            Kind::Text(16)
        } else if digit_after(b"SPF ") {
            Kind::Text(99)
        } else if digit_after(b"RRSIG ") {
            let digits = &a[6..];
            let end = digits
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(digits.len());
            Kind::Rrsig(super::tsv::parse_u16(&digits[..end]).unwrap_or(0))
        } else if starts(b"DNSKEY ") {
            Kind::Skip(AnswerSkip::Dnskey)
        } else if starts(b"DS ") {
            Kind::Skip(AnswerSkip::Ds)
        } else if starts(b"NSEC3") {
            Kind::Skip(AnswerSkip::Nsec3)
        } else if starts(b"NSEC ") {
            Kind::Skip(AnswerSkip::Nsec)
        } else if starts(b"SSHFP") {
            Kind::Skip(AnswerSkip::Sshfp)
        } else if starts(b"LOC:") {
            Kind::Skip(AnswerSkip::Loc)
        } else if starts(b"NAPTR ") {
            Kind::Skip(AnswerSkip::Naptr)
        } else if a == b"BIND9 signing signal" {
            Kind::Skip(AnswerSkip::Bind9)
        } else if starts(b"<unknown type=") {
            Kind::Skip(AnswerSkip::UnknownType)
        } else {
            Kind::Skip(AnswerSkip::Unrecognised)
        };
    }
    if a.iter().any(u8::is_ascii_uppercase) {
        return Kind::Skip(AnswerSkip::Unrecognised);
    }
    Kind::Name
}

fn parse_ip<T: std::str::FromStr>(a: &[u8]) -> Option<T> {
    std::str::from_utf8(a).ok()?.parse().ok()
}

fn is_reverse_name(name: &[u8]) -> bool {
    name.ends_with(b".in-addr.arpa") || name.ends_with(b".ip6.arpa")
}

/// A dotted name as Zeek logs it (raw label bytes, no trailing dot; one is
/// tolerated), checked: `None` if a label is empty or longer than 63
/// bytes, or the name longer than 255 bytes in wire form. Returns the name
/// without a trailing dot; empty is the root.
fn checked(name: &[u8]) -> Option<&[u8]> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() {
        return Some(name);
    }
    let mut wire_len = 1;
    for label in name.split(is_dot) {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        wire_len += 1 + label.len();
    }
    (wire_len <= MAX_WIRE_NAME).then_some(name)
}

fn is_dot(b: &u8) -> bool {
    *b == b'.'
}

/// Appends a dotted name in the store's reversed owner encoding (the same
/// bytes [`crate::name::encode`] gives for the wire name).
pub fn encode_reversed(name: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(name) = checked(name) else {
        return false;
    };
    if !name.is_empty() {
        for label in name.rsplit(is_dot) {
            out.push(label.len() as u8);
            out.extend(label.iter().map(u8::to_ascii_lowercase));
        }
    }
    out.push(0);
    true
}

/// Appends a dotted name in canonical wire form (lowercase, uncompressed),
/// as names inside rdata are stored.
pub fn encode_wire(name: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(name) = checked(name) else {
        return false;
    };
    if name.is_empty() {
        return false; // Zeek drops empty (root) targets; never one here
    }
    for label in name.split(is_dot) {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    true
}

/// Appends TXT/SPF rdata from Zeek's `TXT <len> <text> TXT <len> <text>`
/// rendering (each length in bytes, strings joined by a space).
fn text_rdata(rtype: u16, answer: &[u8], out: &mut Vec<u8>) -> bool {
    let tag: &[u8] = if rtype == 99 { b"SPF " } else { b"TXT " };
    let mut rest = answer;
    loop {
        let Some(r) = rest.strip_prefix(tag) else {
            return false;
        };
        let digits = r
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(r.len());
        let Some(len) = super::tsv::parse_u16(&r[..digits]).filter(|&l| l <= 255) else {
            return false;
        };
        let len = usize::from(len);
        let Some(r) = r[digits..].strip_prefix(b" ") else {
            return false;
        };
        let Some(text) = r.get(..len) else {
            return false;
        };
        out.push(len as u8);
        out.extend_from_slice(text);
        rest = &r[len..];
        if rest.is_empty() {
            return true;
        }
        let Some(r) = rest.strip_prefix(b" ") else {
            return false;
        };
        rest = r;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name;

    #[derive(Default)]
    struct Collect {
        records: Vec<(String, u16, Vec<u8>, u32)>,
        negatives: Vec<(String, u16, u16)>,
    }

    impl ObservationSink for Collect {
        fn record(&mut self, owner: &[u8], rtype: u16, rdata: &[u8], ttl: u32, _ts: u64) {
            self.records
                .push((name::presentation(owner), rtype, rdata.to_vec(), ttl));
        }
        fn negative(&mut self, qname: &[u8], qtype: u16, rcode: u16, _ts: u64) {
            self.negatives
                .push((name::presentation(qname), qtype, rcode));
        }
    }

    fn line(
        query: &str,
        qtype: Option<u16>,
        rcode: u16,
        answers: &[&str],
        ttls: &[u32],
    ) -> LogRecord {
        let mut rec = LogRecord {
            ts: 100,
            query: query.as_bytes().to_vec(),
            has_query: true,
            qtype,
            rcode: Some(rcode),
            ..LogRecord::default()
        };
        for a in answers {
            rec.answer_bytes.extend_from_slice(a.as_bytes());
            rec.end_answer();
        }
        rec.ttls = ttls.to_vec();
        rec
    }

    fn run(rec: &LogRecord) -> (Collect, ZeekStats) {
        let mut c = Collect::default();
        let mut stats = ZeekStats::default();
        Reconstructor::new().observe(rec, &mut stats, &mut c);
        (c, stats)
    }

    fn wire(n: &str) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(encode_wire(n.as_bytes(), &mut out));
        out
    }

    #[test]
    fn cname_chain_then_addresses() {
        let rec = line(
            "www.cmu.edu",
            Some(1),
            0,
            &[
                "www-cmu.andrew.cmu.edu",
                "RRSIG 5 cmu.edu",
                "www-cmu-2.andrew.cmu.edu",
                "128.2.10.163",
            ],
            &[86400, 86400, 5, 21600],
        );
        let (c, stats) = run(&rec);
        assert_eq!(
            c.records,
            vec![
                (
                    "www.cmu.edu.".into(),
                    5,
                    wire("www-cmu.andrew.cmu.edu"),
                    86400
                ),
                (
                    "www-cmu.andrew.cmu.edu.".into(),
                    5,
                    wire("www-cmu-2.andrew.cmu.edu"),
                    5
                ),
                (
                    "www-cmu-2.andrew.cmu.edu.".into(),
                    1,
                    vec![128, 2, 10, 163],
                    21600
                ),
            ]
        );
        assert_eq!(stats.answer_skipped(AnswerSkip::Rrsig), 1);
        assert_eq!(stats.lines_imported, 1);
    }

    #[test]
    fn name_typed_queries() {
        let (c, _) = run(&line(
            "example.com",
            Some(2),
            0,
            &["ns1.example.com", "ns2.example.com"],
            &[60, 60],
        ));
        assert_eq!(c.records.iter().filter(|r| r.1 == 2).count(), 2);
        assert!(c.records.iter().all(|r| r.0 == "example.com."));
        let (c, _) = run(&line(
            "example.com",
            Some(15),
            0,
            &["mx.example.com"],
            &[60],
        ));
        assert_eq!(c.records[0].1, 15);
        assert_eq!(
            c.records[0].2,
            [&[0u8, 0][..], &wire("mx.example.com")].concat()
        );
        // Classless reverse delegation: CNAME then PTR.
        let (c, _) = run(&line(
            "5.2.0.192.in-addr.arpa",
            Some(12),
            0,
            &["5.0-25.2.0.192.in-addr.arpa", "host.example"],
            &[1, 2],
        ));
        assert_eq!(c.records[0].1, 5);
        assert_eq!(
            c.records[1],
            (
                "5.0-25.2.0.192.in-addr.arpa.".into(),
                12,
                wire("host.example"),
                2
            )
        );
        // SOA: mname only, skipped.
        let (c, stats) = run(&line(
            "example.com",
            Some(6),
            0,
            &["ns1.example.com"],
            &[60],
        ));
        assert!(c.records.is_empty());
        assert_eq!(stats.answer_skipped(AnswerSkip::SoaMname), 1);
        assert_eq!(stats.line_skipped(LineSkip::NoUsableAnswer), 1);
    }

    #[test]
    fn unknown_qtype_and_any() {
        let (c, _) = run(&line("a.test", None, 0, &["b.test", "192.0.2.1"], &[1, 2]));
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[1].0, "b.test.");
        let (c, stats) = run(&line(
            "a.test",
            Some(255),
            0,
            &["ns.test", "192.0.2.1"],
            &[1, 2],
        ));
        assert_eq!(
            c.records,
            vec![("a.test.".into(), 1, vec![192, 0, 2, 1], 2)]
        );
        assert_eq!(stats.answer_skipped(AnswerSkip::Ambiguous), 1);
        let (c, _) = run(&line(
            "a.test",
            None,
            0,
            &["b.test", "RRSIG 5 test"],
            &[1, 2],
        ));
        assert_eq!(c.records[0].1, 5);
    }

    #[test]
    fn text_records() {
        let (c, _) = run(&line(
            "t.test",
            Some(16),
            0,
            &["TXT 33 This TXT record should be ignored TXT 0  TXT 3 a,b"],
            &[5],
        ));
        let mut want = vec![33u8];
        want.extend_from_slice(b"This TXT record should be ignored");
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(b"a,b");
        assert_eq!(c.records, vec![("t.test.".into(), 16, want, 5)]);
        let (c, stats) = run(&line(
            "t.test",
            None,
            0,
            &["SPF 4 ab", "TXT 2 abc"],
            &[5, 5],
        ));
        assert!(c.records.is_empty());
        assert_eq!(stats.answer_skipped(AnswerSkip::BadTxt), 2);
    }

    #[test]
    fn negatives() {
        let (c, _) = run(&line("nx.test", Some(1), 3, &[], &[]));
        assert_eq!(c.negatives, vec![("nx.test.".into(), 1, 3)]);
        let (c, _) = run(&line("nd.test", Some(28), 0, &[], &[]));
        assert_eq!(c.negatives, vec![("nd.test.".into(), 28, 0)]);
        let (c, stats) = run(&line("h.test", Some(13), 0, &[], &[]));
        assert!(c.negatives.is_empty());
        assert_eq!(stats.line_skipped(LineSkip::AnswersNotLogged), 1);
        let (c, _) = run(&line("a.test", Some(1), 3, &["b.test"], &[9]));
        assert_eq!(c.records.len(), 1);
        assert_eq!(c.negatives, vec![("b.test.".into(), 1, 3)]);
        let mut rec = line("a.test", Some(1), 0, &[], &[]);
        rec.rcode = None;
        assert_eq!(run(&rec).1.line_skipped(LineSkip::Unanswered), 1);
        rec.rcode = Some(5);
        rec.rejected = true;
        assert_eq!(run(&rec).1.line_skipped(LineSkip::Rejected), 1);
    }

    #[test]
    fn duplicates_and_missing_ttls() {
        let (c, stats) = run(&line(
            "a.test",
            Some(1),
            0,
            &["192.0.2.1", "192.0.2.1", "192.0.2.2"],
            &[5],
        ));
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[1].3, 0);
        assert_eq!(stats.ttl_missing, 2);
        assert_eq!(stats.records, 2);
    }

    #[test]
    fn names_encode_like_the_wire_path() {
        let mut out = Vec::new();
        assert!(encode_reversed(b"WWW.Example.com", &mut out));
        assert_eq!(out, name::encode_str("www.example.com").unwrap());
        out.clear();
        assert!(encode_reversed(b"", &mut out));
        assert_eq!(out, vec![0]);
        out.clear();
        assert!(!encode_reversed(b"a..b", &mut out));
        assert!(!encode_reversed(&[b'a'; 64], &mut out));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(!encode_reversed(long.as_bytes(), &mut out));
        out.clear();
        assert!(encode_wire(b"a\x00b.test", &mut out));
        assert_eq!(out, b"\x03a\x00b\x04test\x00");
    }

    #[test]
    fn renderings_are_classified() {
        for (a, k) in [
            ("DNSKEY 5", Kind::Skip(AnswerSkip::Dnskey)),
            ("DS 5 2", Kind::Skip(AnswerSkip::Ds)),
            ("NSEC3PARAM", Kind::Skip(AnswerSkip::Nsec3)),
            ("NSEC a b", Kind::Skip(AnswerSkip::Nsec)),
            ("SSHFP: 00", Kind::Skip(AnswerSkip::Sshfp)),
            ("LOC:  18 21 19", Kind::Skip(AnswerSkip::Loc)),
            ("<unknown type=39>", Kind::Skip(AnswerSkip::UnknownType)),
            ("BIND9 signing signal", Kind::Skip(AnswerSkip::Bind9)),
            ("add: A x 1.2.3.4", Kind::Skip(AnswerSkip::Unrecognised)),
            ("my printer._ipp._tcp.local", Kind::Name),
            ("pre: NoRRSet CNAME x", Kind::Skip(AnswerSkip::Unrecognised)),
            ("RRSIG 48 paypal.com", Kind::Rrsig(48)),
            (
                "::ffff:1.2.3.4",
                Kind::V6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]),
            ),
            ("1.2.3", Kind::Name),
        ] {
            assert_eq!(classify(a.as_bytes()), k, "{a}");
        }
    }
}
