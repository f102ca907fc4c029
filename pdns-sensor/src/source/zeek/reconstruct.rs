//! From a dns.log line back to records: owner, type and canonical rdata.
//!
//! The rules that tell what one answer string is, and what a name among
//! them is, live in [`crate::source::answers`], shared with the bro-pdns
//! import (which holds the same strings, one per row); this file walks a
//! line's answers in order with them. Zeek logs the answer section as a list of strings under the question
//! name, with neither owner nor type per answer, each type rendered its own
//! way by Zeek's base DNS scripts. What can be rebuilt, and how:
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

use std::ops::Range;

use super::{AnswerSkip, LineSkip, LogRecord, ZeekStats};
use crate::extract::response::{NoData, NoNegative, Outcome, Response};
use crate::source::answers::{
    Kind, NameContext, Role, answers_unlogged, append_data, append_name, classify, is_reverse_name,
    name_role,
};
use crate::vocab::name;
use crate::vocab::{OptRcode, Rtype};

/// Reusable buffers for rebuilding one line after another.
#[derive(Default)]
pub(super) struct Reconstructor {
    kinds: Vec<Kind>,
    response: Response,
    /// A CNAME target being re-encoded as the next owner.
    scratch: Vec<u8>,
}

impl Reconstructor {
    pub(super) fn new() -> Self {
        Reconstructor {
            kinds: Vec::with_capacity(32),
            response: Response::new(),
            scratch: Vec::with_capacity(256),
        }
    }

    /// Rebuilds one parsed line into a response and hands it to `observe`
    /// (which applies the extraction rules, see
    /// [`crate::extract::response`]); counts the line as imported or
    /// skipped (exactly one of the two), its observations, and every
    /// unusable answer.
    pub(super) fn observe(
        &mut self,
        rec: &LogRecord,
        stats: &mut ZeekStats,
        observe: &mut impl FnMut(&mut Response) -> Outcome,
    ) {
        stats.lines += 1;
        let result = self.rebuild(rec, stats).and_then(|()| {
            let outcome = observe(&mut self.response);
            stats.records += outcome.records as u64;
            stats.negatives += u64::from(outcome.negative);
            match outcome.no_negative {
                Some(NoNegative::NoQtype) => Err(LineSkip::NoQtype),
                Some(NoNegative::NotNoData(_)) => Err(LineSkip::AnswersNotLogged),
                Some(NoNegative::NoQuestion) => Err(LineSkip::NoQuery),
                None if outcome.records == 0 && !outcome.negative => Err(LineSkip::NoUsableAnswer),
                None => Ok(()),
            }
        });
        match result {
            Ok(()) => stats.lines_imported += 1,
            Err(reason) => stats.skip_line(reason),
        }
    }

    /// Fills the response from the line, or says why the line is skipped.
    fn rebuild(&mut self, rec: &LogRecord, stats: &mut ZeekStats) -> Result<(), LineSkip> {
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
        let response = &mut self.response;
        response.clear();
        response.ts = rec.ts;
        response.rcode = OptRcode::masked_from_int(rcode);
        response.qtype = rec.qtype.map(Rtype::from_int);
        response.answer_count = rec.answer_count();
        if rec.qtype.is_some_and(answers_unlogged) {
            response.nodata = NoData::NotRecorded;
        }
        let query_start = response.len();
        if !name::encode_dotted(&rec.query, response.buf()) {
            return Err(LineSkip::NoQuery);
        }
        let query = query_start..response.len();
        response.set_qname(query.clone());
        self.classify(rec, stats);
        self.build(rec, query, stats);
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

    /// Walks the answers, adding their records to the response: a CNAME
    /// hop's target becomes the owner of what follows.
    fn build(&mut self, rec: &LogRecord, query: Range<usize>, stats: &mut ZeekStats) {
        let mut owner = query;
        for i in 0..self.kinds.len() {
            let ttl = match rec.ttls.get(i) {
                Some(&t) => t,
                None => {
                    stats.ttl_missing += 1;
                    0
                }
            };
            let answer = rec.answer(i);
            let start = self.response.len();
            let kind = self.kinds[i];
            let rtype = match kind {
                Kind::V4(_) | Kind::V6(_) | Kind::Text(_) => {
                    match append_data(kind, answer, self.response.buf()) {
                        Some(Ok(rtype)) => rtype,
                        Some(Err(reason)) => {
                            stats.skip_answer(reason);
                            continue;
                        }
                        None => continue,
                    }
                }
                Kind::Rrsig(_) | Kind::Skip(_) => continue,
                Kind::Name => {
                    let rtype = match self.role(rec.qtype, answer, i) {
                        Role::Skip(reason) => {
                            stats.skip_answer(reason);
                            continue;
                        }
                        Role::CnameHop => 5,
                        Role::Record(t) => t,
                    };
                    let response = &mut self.response;
                    let rtype = match append_name(rtype, answer, response.buf()) {
                        Ok(rtype) => rtype,
                        Err(reason) => {
                            stats.skip_answer(reason);
                            continue;
                        }
                    };
                    if rtype == Rtype::CNAME {
                        // The target, reversed, becomes the owner of what
                        // follows.
                        let rdata = start..response.len();
                        self.scratch.clear();
                        if !name::encode_wire(response.bytes(rdata.clone()), &mut self.scratch) {
                            response.buf().truncate(start);
                            stats.skip_answer(AnswerSkip::BadName);
                            continue;
                        }
                        let owner_start = response.len();
                        response.buf().extend_from_slice(&self.scratch);
                        let next_owner = owner_start..response.len();
                        response.push(owner, rtype, rdata, ttl);
                        owner = next_owner;
                        continue;
                    }
                    rtype
                }
            };
            let rdata = start..self.response.len();
            self.response.push(owner.clone(), rtype, rdata, ttl);
        }
    }

    /// Decides what name answer `i` is (see the module docs): the reply's
    /// order is known, so what follows the name is its context.
    fn role(&self, qtype: Option<u16>, answer: &[u8], i: usize) -> Role {
        let after = &self.kinds[i + 1..];
        let ctx = NameContext {
            data_may_follow: after.iter().any(|k| k.is_data()),
            reverse_then_name: is_reverse_name(answer) && after.contains(&Kind::Name),
            rrsig_after: match after.iter().find(|k| **k != Kind::Name) {
                Some(Kind::Rrsig(t)) => Some(*t),
                _ => None,
            },
        };
        name_role(qtype, &ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::observation::ObservationSink;

    #[derive(Default)]
    struct Collect {
        records: Vec<(String, u16, Vec<u8>, u32)>,
        negatives: Vec<(String, u16, u16)>,
    }

    impl ObservationSink for Collect {
        fn record(&mut self, owner: &[u8], rtype: Rtype, rdata: &[u8], ttl: u32, _ts: u64) {
            self.records.push((
                name::presentation(owner),
                rtype.to_int(),
                rdata.to_vec(),
                ttl,
            ));
        }
        fn negative(&mut self, qname: &[u8], qtype: Rtype, rcode: OptRcode, _ts: u64) {
            self.negatives
                .push((name::presentation(qname), qtype.to_int(), rcode.to_int()));
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
        Reconstructor::new().observe(rec, &mut stats, &mut |r| r.observe(&mut c));
        (c, stats)
    }

    fn wire(n: &str) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(name::wire_from_dotted(n.as_bytes(), &mut out));
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
        let long = vec!["abcdefghi"; 26].join(".");
        let mut out = Vec::new();
        assert!(!name::encode_dotted(long.as_bytes(), &mut out));
        assert!(name::wire_from_dotted(b"a\x00b.test", &mut out));
        assert_eq!(out, b"\x03a\x00b\x04test\x00");
    }
}
