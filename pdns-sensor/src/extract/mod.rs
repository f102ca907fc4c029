//! Extract: from a DNS message to observations.
//!
//! A response (QR=1, opcode QUERY) yields one observation per resource
//! record in the answer section — and, when asked, the authority and
//! additional sections — keyed by the record's *own* owner, type and rdata,
//! so a CNAME chain is stored hop by hop. A response without answers yields
//! a negative observation keyed by (qname, qtype, rcode): NXDOMAIN, NODATA,
//! SERVFAIL, REFUSED and the other error codes.
//!
//! The work is split in two: [`Extractor`] parses a message into a
//! [`Response`] (this file), and [`Response::observe`] applies the rules
//! that make observations of it ([`response`]). Sources that do not see
//! DNS messages — Zeek logs — fill a [`Response`] their own way and share
//! the rules.
//!
//! Names are lowercased (owner and names inside rdata) and rdata is kept in
//! canonical wire form: names uncompressed, so the same record seen in
//! differently compressed messages is one record. Pseudo-records (OPT,
//! TSIG, TKEY) and meta types are never stored, nor is any client address.
//!
//! A section is used only if it parses to the end: records from a message
//! that turns malformed halfway are not trusted, and the message is counted
//! as [`DropReason::DnsMalformed`]. A single record whose rdata does not fit
//! its type is skipped and counted as [`DropReason::RecordMalformed`].
//! The counters are the extractor's own ([`ExtractStats`]).

use domain::base::iana::{Class, Opcode};
use domain::base::name::ParsedName;
use domain::base::rdata::ComposeRecordData;
use domain::base::wire::ParseError;
use domain::base::{Message, ParsedRecord, RecordSection};
use domain::rdata::AllRecordData;

pub mod response;
mod stats;

pub use response::{NoData, Outcome, Response};
pub use stats::{DropReason, ExtractStats, Extraction};

use crate::vocab::name;
use crate::vocab::observation::ObservationSink;
use crate::vocab::packet::{DnsMessage, Transport};
use crate::vocab::{OptRcode, Rtype};

/// Which sections of a response become observations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sections {
    pub answer: bool,
    pub authority: bool,
    pub additional: bool,
}

impl Default for Sections {
    fn default() -> Self {
        Sections {
            answer: true,
            authority: false,
            additional: false,
        }
    }
}

impl std::str::FromStr for Sections {
    type Err = String;

    /// Parses `answer,authority,additional` (any subset, comma-separated).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut sections = Sections {
            answer: false,
            authority: false,
            additional: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "answer" | "an" => sections.answer = true,
                "authority" | "ns" => sections.authority = true,
                "additional" | "ar" => sections.additional = true,
                other => {
                    return Err(format!(
                        "unknown section {other:?} (expected answer, authority, additional)"
                    ));
                }
            }
        }
        if sections
            == (Sections {
                answer: false,
                authority: false,
                additional: false,
            })
        {
            return Err("no section given".into());
        }
        Ok(sections)
    }
}

/// Record data as `domain` parses it straight from the message.
type Rdata<'a> = AllRecordData<&'a [u8], ParsedName<&'a [u8]>>;

/// Reusable buffers for extracting from one message after another.
#[derive(Default)]
pub struct Extractor {
    sections: Sections,
    /// The response being read (its buffers are reused: a fresh vector per
    /// message was a tenth of decoding's allocations).
    response: Response,
}

impl Extractor {
    pub fn new(sections: Sections) -> Self {
        Extractor {
            sections,
            response: Response::new(),
        }
    }

    /// Extracts the observations of one DNS message into `sink`.
    pub fn extract(
        &mut self,
        message: &DnsMessage<'_>,
        stats: &mut ExtractStats,
        sink: &mut impl ObservationSink,
    ) {
        self.extract_response(message, stats, sink);
    }

    /// [`extract`](Extractor::extract), returning what a response that
    /// parsed counted, so the same message seen again can be counted alike
    /// without being parsed ([`Extraction::count`]). `None` for a query, an
    /// opcode other than QUERY and a malformed message.
    pub fn extract_response(
        &mut self,
        message: &DnsMessage<'_>,
        stats: &mut ExtractStats,
        sink: &mut impl ObservationSink,
    ) -> Option<Extraction> {
        let Ok(msg) = Message::from_octets(message.data) else {
            stats.drop(DropReason::DnsMalformed);
            return None;
        };
        let header = msg.header();
        let tcp = message.transport == Transport::Tcp;
        if !header.qr() {
            stats.dns_queries += 1;
            stats.tcp_queries += u64::from(tcp);
            return None;
        }
        stats.dns_responses += 1;
        stats.tcp_responses += u64::from(tcp);
        if header.opcode() != Opcode::QUERY {
            stats.drop(DropReason::DnsOpcodeIgnored);
            return None;
        }
        let ignored = stats.dropped(DropReason::RecordIgnored);
        let malformed = stats.dropped(DropReason::RecordMalformed);
        self.response.clear();
        self.response.ts = message.ts.secs;
        if self.read_response(&msg, stats).is_err() {
            stats.drop(DropReason::DnsMalformed);
            return None;
        }
        let outcome = self.response.observe(sink);
        stats.observations += outcome.records as u64;
        stats.negatives += u64::from(outcome.negative);
        Some(Extraction {
            rcode: self.response.rcode,
            records: outcome.records as u32,
            negative: outcome.negative,
            ignored: (stats.dropped(DropReason::RecordIgnored) - ignored) as u32,
            malformed: (stats.dropped(DropReason::RecordMalformed) - malformed) as u32,
        })
    }

    /// Fills `self.response` from a parsed message; an error leaves it
    /// unusable (the message is malformed).
    fn read_response(
        &mut self,
        msg: &Message<&[u8]>,
        stats: &mut ExtractStats,
    ) -> Result<(), ParseError> {
        let counts = msg.header_counts();
        let response = &mut self.response;
        // The question: the key of a negative answer.
        let mut question = msg.question();
        if counts.qdcount() > 0 {
            let q = question.next().ok_or(ParseError::ShortInput)??;
            let start = response.len();
            name::encode(q.qname(), response.buf());
            response.set_qname(start..response.len());
            response.qtype = Some(q.qtype());
        }
        // Skip any further questions (they must still parse).
        for q in question.by_ref() {
            q?;
        }

        // The extended RCODE lives in the OPT record; only look for it when
        // it can matter (no answers: a negative observation).
        response.rcode = if counts.ancount() == 0 && counts.arcount() > 0 {
            msg.opt_rcode()
        } else {
            OptRcode::from_rcode(msg.header().rcode())
        };
        response.answer_count = usize::from(counts.ancount());
        stats.response_rcode(response.rcode);

        let answer = question.answer()?;
        self.collect(answer, stats)?;
        self.response.end_answers();
        if self.sections.authority || self.sections.additional {
            let authority = answer.next_section()?.ok_or(ParseError::ShortInput)?;
            if self.sections.authority {
                self.collect(authority, stats)?;
            }
            if self.sections.additional {
                let additional = authority.next_section()?.ok_or(ParseError::ShortInput)?;
                self.collect(additional, stats)?;
            }
        }
        // Whether an empty NOERROR answer is NODATA: not when truncated,
        // not for a referral.
        let response = &mut self.response;
        if counts.ancount() == 0 && response.rcode == OptRcode::NOERROR {
            if msg.header().tc() {
                response.nodata = NoData::Truncated;
            } else if is_referral(answer)? {
                response.nodata = NoData::Referral;
            }
        }
        Ok(())
    }

    /// Appends a whole section to the response; nothing of it is kept if
    /// any record fails to parse.
    fn collect(
        &mut self,
        section: RecordSection<'_, &[u8]>,
        stats: &mut ExtractStats,
    ) -> Result<(), ParseError> {
        let mark = self.response.mark();
        for record in section {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    self.response.rollback(mark);
                    return Err(e);
                }
            };
            match canonical(&mut self.response, &record) {
                Ok(true) => {}
                Ok(false) => stats.drop(DropReason::RecordIgnored),
                Err(()) => stats.drop(DropReason::RecordMalformed),
            }
        }
        Ok(())
    }
}

/// Lowercases the owner and puts the rdata into canonical form, both
/// appended to the response, and adds the record. `Ok(false)` for records
/// we never store.
fn canonical(response: &mut Response, record: &ParsedRecord<'_, &[u8]>) -> Result<bool, ()> {
    let rtype = record.rtype();
    let class = record.class().to_int() & 0x7fff; // mDNS cache-flush bit
    if class != Class::IN.to_int() || is_meta(rtype) {
        return Ok(false);
    }
    let mark = response.mark();
    let owner_start = response.len();
    name::encode(&record.owner(), response.buf());
    let rdata_start = response.len();
    match record.to_record::<Rdata<'_>>() {
        Ok(Some(rec)) => {
            if rec.data().compose_canonical_rdata(response.buf()).is_err() {
                response.rollback(mark);
                return Err(());
            }
        }
        Ok(None) | Err(_) => {
            response.rollback(mark);
            return Err(());
        }
    }
    lowercase_uncanonical_names(rtype, &mut response.buf()[rdata_start..]);
    let end = response.len();
    response.push(
        owner_start..rdata_start,
        rtype,
        rdata_start..end,
        record.ttl().as_secs(),
    );
    Ok(true)
}

/// Whether an answerless NOERROR response is a referral (NS records and no
/// SOA in the authority section) rather than NODATA.
fn is_referral(answer: RecordSection<'_, &[u8]>) -> Result<bool, ParseError> {
    let Some(authority) = answer.next_section()? else {
        return Ok(false);
    };
    let mut has_ns = false;
    for record in authority {
        match record?.rtype() {
            Rtype::SOA => return Ok(false),
            Rtype::NS => has_ns = true,
            _ => {}
        }
    }
    Ok(has_ns)
}

/// Types that never describe data: pseudo-records and query-only types.
fn is_meta(rtype: Rtype) -> bool {
    matches!(rtype.to_int(), 41 | 249 | 250 | 251 | 252 | 253 | 254 | 255)
}

/// RFC 4034 canonical form leaves some embedded names in their original
/// case (SVCB/HTTPS targets, the NSEC next name, an IPSECKEY gateway). We
/// store every name in rdata lowercase, so fix those up in place. (The
/// repeated-response shortcut relies on it too: a name read through a
/// compression pointer into the question must not keep the question's
/// case.)
fn lowercase_uncanonical_names(rtype: Rtype, rdata: &mut [u8]) {
    let offset = match rtype.to_int() {
        47 => 0,      // NSEC next domain name
        64 | 65 => 2, // SVCB/HTTPS target after the priority
        // IPSECKEY: precedence, gateway type, algorithm, then the gateway,
        // a name when its type is 3.
        45 if rdata.get(1) == Some(&3) => 3,
        _ => return,
    };
    let mut pos = offset;
    while let Some(&len) = rdata.get(pos) {
        if len == 0 || len > 63 {
            return;
        }
        let end = (pos + 1 + len as usize).min(rdata.len());
        rdata[pos + 1..end].make_ascii_lowercase();
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::packet::Timestamp;

    #[derive(Default)]
    struct Records(Vec<(Rtype, Vec<u8>)>);

    impl ObservationSink for Records {
        fn record(&mut self, _: &[u8], rtype: Rtype, rdata: &[u8], _: u32, _: u64) {
            self.0.push((rtype, rdata.to_vec()));
        }
        fn negative(&mut self, _: &[u8], _: Rtype, _: OptRcode, _: u64) {}
    }

    #[test]
    fn an_ipseckey_gateway_name_is_lowercased_even_through_a_pointer() {
        // Question `GW.Example.` IPSECKEY; the answer's gateway (type 3)
        // is a compression pointer to the question name, which DNS 0x20
        // wrote in mixed case.
        let mut m = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x02GW\x07Example\x00\x00\x2d\x00\x01");
        let rdata: &[u8] = &[10, 3, 2, 0xc0, 0x0c, 0xab, 0xcd];
        m.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x2d, 0x00, 0x01, 0, 0, 0, 60, 0, 7]);
        m.extend_from_slice(rdata);
        let mut sink = Records::default();
        let mut stats = ExtractStats::default();
        Extractor::new(Sections::default()).extract(
            &DnsMessage {
                ts: Timestamp::from_secs(1),
                transport: Transport::Udp,
                data: &m,
            },
            &mut stats,
            &mut sink,
        );
        assert_eq!(stats.observations, 1, "{stats:?}");
        let (rtype, rdata) = &sink.0[0];
        assert_eq!(*rtype, Rtype::IPSECKEY);
        assert_eq!(&rdata[..3], &[10, 3, 2]);
        assert_eq!(&rdata[3..15], b"\x02gw\x07example\x00");
        assert_eq!(&rdata[15..], &[0xab, 0xcd]);
    }
}
