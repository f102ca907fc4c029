//! A response reduced to what passive DNS keeps, and the rules that turn it
//! into observations — written once, for every source.
//!
//! A DNS message parsed off the wire ([`super::Extractor`]) and a Zeek log
//! line rebuilt into records (`source::zeek::reconstruct`) both end as a
//! [`Response`]: the question, the RCODE, the records with their owners and
//! canonical rdata, and whether an empty answer may mean NODATA.
//! [`Response::observe`] then applies the same rules to both:
//!
//! * **Each distinct record once.** The count of a record is the number of
//!   responses that carried it, so a record repeated within one response
//!   (or present in two of its sections) is observed once.
//! * **Negative answers.** A response whose answer section is empty is a
//!   negative answer for (qname, qtype, rcode) — unless it is NOERROR and
//!   cannot be NODATA: a truncated (TC=1) reply only says "retry over TCP",
//!   a referral hands the question to other servers, and Zeek logs no
//!   answers at all for some types.
//! * **NXDOMAIN at the end of a CNAME chain.** When the answers hold a CNAME
//!   chain and the RCODE is NXDOMAIN, the name that does not exist is the
//!   chain's end — the target of the last CNAME — not the question.

use std::ops::Range;

use foldhash::HashSet;

use crate::vocab::name;
use crate::vocab::observation::ObservationSink;
use crate::vocab::{OptRcode, Rtype};

/// Why an empty NOERROR answer is not NODATA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoData {
    /// It may be: nothing says otherwise.
    #[default]
    Possible,
    /// TC=1: the answer did not fit, the client retries over TCP.
    Truncated,
    /// NS records and no SOA in the authority section.
    Referral,
    /// The source never records answers of this type (Zeek and HINFO,
    /// CAA, SVCB, HTTPS, ...): an empty list says nothing.
    NotRecorded,
}

/// Why a response with an empty answer gave no negative observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoNegative {
    /// There was no question to file it under.
    NoQuestion,
    /// The question's type is not known.
    NoQtype,
    /// NOERROR that is not NODATA.
    NotNoData(NoData),
}

/// What [`Response::observe`] handed to the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Distinct records observed.
    pub records: usize,
    /// Whether a negative answer was observed.
    pub negative: bool,
    /// For an empty answer section without a negative observation: why.
    pub no_negative: Option<NoNegative>,
}

/// A position in a [`Response`] being filled, to roll back to.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    bytes: usize,
    records: usize,
}

struct Span {
    owner: Range<usize>,
    rdata: Range<usize>,
    rtype: Rtype,
    ttl: u32,
}

/// One response's question, RCODE and records, in reusable buffers.
pub struct Response {
    /// Capture time, seconds since the epoch.
    pub ts: u64,
    /// The response's RCODE, extended by its OPT record where that matters.
    pub rcode: OptRcode,
    /// The question's type, if known.
    pub qtype: Option<Rtype>,
    /// Records the answer section held as sent (or logged), usable or not:
    /// a non-empty answer section rules out a negative answer for the
    /// question.
    pub answer_count: usize,
    /// Whether an empty NOERROR answer may be NODATA.
    pub nodata: NoData,
    /// Owners (reversed encoding) and rdata (canonical wire form), back to
    /// back.
    bytes: Vec<u8>,
    qname: Option<Range<usize>>,
    records: Vec<Span>,
    /// Records before this index came from the answer section (all of them
    /// when unset).
    answers_end: Option<usize>,
    /// The end of a CNAME chain, reversed (for NXDOMAIN).
    chain_end: Vec<u8>,
}

impl Default for Response {
    fn default() -> Self {
        Response::new()
    }
}

impl Response {
    pub fn new() -> Response {
        Response {
            ts: 0,
            rcode: OptRcode::NOERROR,
            qtype: None,
            answer_count: 0,
            nodata: NoData::Possible,
            bytes: Vec::with_capacity(4096),
            qname: None,
            records: Vec::with_capacity(64),
            answers_end: None,
            chain_end: Vec::with_capacity(256),
        }
    }

    /// Empties the response for the next one, keeping its buffers.
    #[inline]
    pub fn clear(&mut self) {
        self.ts = 0;
        self.rcode = OptRcode::NOERROR;
        self.qtype = None;
        self.answer_count = 0;
        self.nodata = NoData::Possible;
        self.bytes.clear();
        self.qname = None;
        self.records.clear();
        self.answers_end = None;
    }

    /// The buffer owners and rdata are appended to; what is appended is
    /// referred to by the ranges given to [`Response::push`].
    #[inline]
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Bytes held so far: the start of whatever is appended next.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no byte and no record is held yet.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.records.is_empty()
    }

    /// The bytes at `range` (an owner or rdata appended earlier).
    #[inline]
    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.bytes[range]
    }

    /// Records the question name: the bytes at `range`, in the reversed
    /// encoding.
    #[inline]
    pub fn set_qname(&mut self, range: Range<usize>) {
        self.qname = Some(range);
    }

    /// The question name, if one was set.
    pub fn qname(&self) -> Option<&[u8]> {
        self.qname.clone().map(|r| &self.bytes[r])
    }

    /// Adds a record whose owner (reversed encoding) and rdata (canonical
    /// wire form) were appended at these ranges.
    #[inline]
    pub fn push(&mut self, owner: Range<usize>, rtype: Rtype, rdata: Range<usize>, ttl: u32) {
        self.records.push(Span {
            owner,
            rdata,
            rtype,
            ttl,
        });
    }

    /// Records held so far.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Says that the records pushed so far are the answer section's; those
    /// pushed later (authority, additional) are not searched for a CNAME
    /// chain.
    #[inline]
    pub fn end_answers(&mut self) {
        self.answers_end = Some(self.records.len());
    }

    /// The current position, to [`rollback`](Response::rollback) to.
    #[inline]
    pub fn mark(&self) -> Mark {
        Mark {
            bytes: self.bytes.len(),
            records: self.records.len(),
        }
    }

    /// Forgets everything appended and pushed since `mark`.
    #[inline]
    pub fn rollback(&mut self, mark: Mark) {
        self.bytes.truncate(mark.bytes);
        self.records.truncate(mark.records);
    }

    /// Applies the rules (see the module docs) and hands the observations
    /// to `sink`.
    pub fn observe(&mut self, sink: &mut impl ObservationSink) -> Outcome {
        let mut outcome = Outcome {
            records: self.emit_records(sink),
            ..Outcome::default()
        };
        let ts = self.ts;
        if self.answer_count == 0 {
            let reason = match (self.qname(), self.qtype) {
                (None, _) => Some(NoNegative::NoQuestion),
                (Some(_), None) => Some(NoNegative::NoQtype),
                (Some(_), Some(_))
                    if self.rcode == OptRcode::NOERROR && self.nodata != NoData::Possible =>
                {
                    Some(NoNegative::NotNoData(self.nodata))
                }
                (Some(qname), Some(qtype)) => {
                    sink.negative(qname, qtype, self.rcode, ts);
                    outcome.negative = true;
                    None
                }
            };
            outcome.no_negative = reason;
        } else if self.rcode == OptRcode::NXDOMAIN
            && let Some(qtype) = self.qtype
            && self.find_chain_end()
        {
            sink.negative(&self.chain_end, qtype, OptRcode::NXDOMAIN, ts);
            outcome.negative = true;
        }
        outcome
    }

    /// Hands every distinct record to the sink once; returns how many.
    #[inline]
    fn emit_records(&self, sink: &mut impl ObservationSink) -> usize {
        let bytes = &self.bytes;
        let identity = |s: &Span| (s.rtype, &bytes[s.owner.clone()], &bytes[s.rdata.clone()]);
        let mut seen: HashSet<(Rtype, &[u8], &[u8])> = HashSet::default();
        let mut emitted = 0;
        for (i, span) in self.records.iter().enumerate() {
            let id = identity(span);
            // Most responses hold a handful of records: a linear scan
            // beats hashing them.
            let duplicate = if self.records.len() <= 16 {
                self.records[..i]
                    .iter()
                    .any(|earlier| identity(earlier) == id)
            } else {
                !seen.insert(id)
            };
            if duplicate {
                continue;
            }
            sink.record(id.1, span.rtype, id.2, span.ttl, self.ts);
            emitted += 1;
        }
        emitted
    }

    /// Puts the target of the last CNAME among the answers into
    /// `chain_end`; false if there is none (or it is not a valid name).
    fn find_chain_end(&mut self) -> bool {
        let answers = &self.records[..self.answers_end.unwrap_or(self.records.len())];
        let Some(last) = answers.iter().rev().find(|s| s.rtype == Rtype::CNAME) else {
            return false;
        };
        self.chain_end.clear();
        name::encode_wire(&self.bytes[last.rdata.clone()], &mut self.chain_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        records: Vec<(String, Rtype, Vec<u8>, u32)>,
        negatives: Vec<(String, Rtype, OptRcode)>,
    }

    impl ObservationSink for Collect {
        fn record(&mut self, owner: &[u8], rtype: Rtype, rdata: &[u8], ttl: u32, _: u64) {
            self.records
                .push((name::presentation(owner), rtype, rdata.to_vec(), ttl));
        }
        fn negative(&mut self, qname: &[u8], qtype: Rtype, rcode: OptRcode, _: u64) {
            self.negatives
                .push((name::presentation(qname), qtype, rcode));
        }
    }

    fn append(r: &mut Response, f: impl FnOnce(&mut Vec<u8>) -> bool) -> Range<usize> {
        let start = r.len();
        assert!(f(r.buf()));
        start..r.len()
    }

    fn owner(r: &mut Response, text: &str) -> Range<usize> {
        append(r, |b| {
            b.extend(name::encode_presentation(text).unwrap());
            true
        })
    }

    fn wire(r: &mut Response, text: &str) -> Range<usize> {
        append(r, |b| name::wire_from_dotted(text.as_bytes(), b))
    }

    fn question(r: &mut Response, qname: &str, qtype: Rtype) {
        let q = owner(r, qname);
        r.set_qname(q);
        r.qtype = Some(qtype);
    }

    #[test]
    fn repeated_records_are_observed_once() {
        let mut r = Response::new();
        question(&mut r, "a.test", Rtype::A);
        for _ in 0..3 {
            let o = owner(&mut r, "a.test");
            let d = append(&mut r, |b| {
                b.extend([192, 0, 2, 1]);
                true
            });
            r.push(o, Rtype::A, d, 60);
        }
        r.answer_count = 3;
        let mut sink = Collect::default();
        let outcome = r.observe(&mut sink);
        assert_eq!(outcome.records, 1);
        assert_eq!(sink.records.len(), 1);
        assert!(sink.negatives.is_empty());
    }

    #[test]
    fn empty_answers_are_negative_unless_they_cannot_be_nodata() {
        for (rcode, nodata, negative) in [
            (OptRcode::NOERROR, NoData::Possible, true),
            (OptRcode::NOERROR, NoData::Truncated, false),
            (OptRcode::NOERROR, NoData::Referral, false),
            (OptRcode::NOERROR, NoData::NotRecorded, false),
            (OptRcode::NXDOMAIN, NoData::Truncated, true),
            (OptRcode::SERVFAIL, NoData::Referral, true),
        ] {
            let mut r = Response::new();
            question(&mut r, "q.test", Rtype::AAAA);
            r.rcode = rcode;
            r.nodata = nodata;
            let mut sink = Collect::default();
            let outcome = r.observe(&mut sink);
            assert_eq!(outcome.negative, negative, "{rcode} {nodata:?}");
            if negative {
                assert_eq!(sink.negatives, [("q.test.".into(), Rtype::AAAA, rcode)]);
            } else {
                assert_eq!(outcome.no_negative, Some(NoNegative::NotNoData(nodata)));
            }
        }
        let mut r = Response::new();
        assert_eq!(
            r.observe(&mut Collect::default()).no_negative,
            Some(NoNegative::NoQuestion)
        );
        let q = owner(&mut r, "q.test");
        r.set_qname(q);
        assert_eq!(
            r.observe(&mut Collect::default()).no_negative,
            Some(NoNegative::NoQtype)
        );
    }

    #[test]
    fn nxdomain_is_filed_under_the_end_of_the_answers_cname_chain() {
        let mut r = Response::new();
        question(&mut r, "www.a.test", Rtype::A);
        r.rcode = OptRcode::NXDOMAIN;
        for (from, to) in [("www.a.test", "cdn.b.test"), ("cdn.b.test", "gone.c.test")] {
            let o = owner(&mut r, from);
            let d = wire(&mut r, to);
            r.push(o, Rtype::CNAME, d, 60);
        }
        r.end_answers();
        // A CNAME in the authority section is not part of the chain.
        let o = owner(&mut r, "x.test");
        let d = wire(&mut r, "elsewhere.test");
        r.push(o, Rtype::CNAME, d, 60);
        r.answer_count = 2;
        let mut sink = Collect::default();
        let outcome = r.observe(&mut sink);
        assert_eq!(outcome.records, 3);
        assert_eq!(
            sink.negatives,
            [("gone.c.test.".into(), Rtype::A, OptRcode::NXDOMAIN)]
        );
    }

    #[test]
    fn rollback_forgets_a_section() {
        let mut r = Response::new();
        question(&mut r, "a.test", Rtype::A);
        let mark = r.mark();
        let o = owner(&mut r, "a.test");
        r.push(o.clone(), Rtype::A, o, 1);
        r.rollback(mark);
        assert_eq!(r.record_count(), 0);
        assert_eq!(
            r.qname(),
            Some(&name::encode_presentation("a.test").unwrap()[..])
        );
    }
}
