//! Extract: from a DNS message to observations.
//!
//! A response (QR=1, opcode QUERY) yields one observation per resource
//! record in the answer section — and, when asked, the authority and
//! additional sections — keyed by the record's *own* owner, type and rdata,
//! so a CNAME chain is stored hop by hop. A response without answers yields
//! a negative observation keyed by (qname, qtype, rcode): NXDOMAIN, NODATA,
//! SERVFAIL, REFUSED and the other error codes.
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

use domain::base::iana::{Class, Opcode, Rtype};
use domain::base::name::ParsedName;
use domain::base::rdata::ComposeRecordData;
use domain::base::wire::ParseError;
use domain::base::{Message, ParsedRecord, RecordSection};
use domain::rdata::AllRecordData;
use foldhash::HashSet;

use crate::decode::stats::RCODE_SLOTS;
use crate::decode::{DecodeStats, DnsPayload, DropReason, Transport};
use crate::name;

/// Receives what the extractor finds. Implemented by the pre-aggregator.
pub trait ObservationSink {
    /// A record: `owner` in reversed encoding, `rdata` canonical wire form,
    /// `ts` capture time in seconds.
    fn record(&mut self, owner: &[u8], rtype: u16, rdata: &[u8], ttl: u32, ts: u64);
    /// A negative answer; `rcode` 0 means NODATA.
    fn negative(&mut self, qname: &[u8], qtype: u16, rcode: u16, ts: u64);
}

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
    /// Owners and rdata of the section being read, held until it parsed to
    /// the end.
    bytes: Vec<u8>,
    pending: Vec<Pending>,
    /// The question name of the message being read (reused, like `bytes`:
    /// a fresh vector per message was a tenth of decoding's allocations).
    qname: Vec<u8>,
}

struct Pending {
    owner: std::ops::Range<usize>,
    rdata: std::ops::Range<usize>,
    rtype: u16,
    ttl: u32,
}

impl Extractor {
    pub fn new(sections: Sections) -> Self {
        Extractor {
            sections,
            bytes: Vec::with_capacity(4096),
            pending: Vec::with_capacity(64),
            qname: Vec::with_capacity(256),
        }
    }

    /// Extracts the observations of one DNS message into `sink`.
    pub fn extract(
        &mut self,
        payload: &DnsPayload<'_>,
        stats: &mut DecodeStats,
        sink: &mut impl ObservationSink,
    ) {
        let Ok(msg) = Message::from_octets(payload.data) else {
            return stats.drop(DropReason::DnsMalformed);
        };
        let header = msg.header();
        let tcp = payload.transport == Transport::Tcp;
        if !header.qr() {
            stats.dns_queries += 1;
            stats.tcp_queries += u64::from(tcp);
            return;
        }
        stats.dns_responses += 1;
        stats.tcp_responses += u64::from(tcp);
        if header.opcode() != Opcode::QUERY {
            return stats.drop(DropReason::DnsOpcodeIgnored);
        }
        let ts = payload.ts.secs;
        let mut qname = std::mem::take(&mut self.qname);
        qname.clear();
        if self
            .extract_response(&msg, ts, &mut qname, stats, sink)
            .is_err()
        {
            stats.drop(DropReason::DnsMalformed);
        }
        self.qname = qname;
    }

    fn extract_response(
        &mut self,
        msg: &Message<&[u8]>,
        ts: u64,
        qname: &mut Vec<u8>,
        stats: &mut DecodeStats,
        sink: &mut impl ObservationSink,
    ) -> Result<(), ParseError> {
        let counts = msg.header_counts();
        // The question: the key of a negative answer.
        let mut question = msg.question();
        let mut qname_read = false;
        let mut qtype = 0u16;
        if counts.qdcount() > 0 {
            let q = question.next().ok_or(ParseError::ShortInput)??;
            name::encode(q.qname(), qname);
            qname_read = true;
            qtype = q.qtype().to_int();
        }
        // Skip any further questions (they must still parse).
        for q in question.by_ref() {
            q?;
        }

        // The extended RCODE lives in the OPT record; only look for it when
        // it can matter (no answers: a negative observation).
        let rcode = if counts.ancount() == 0 && counts.arcount() > 0 {
            msg.opt_rcode().to_int()
        } else {
            u16::from(msg.header().rcode().to_int())
        };
        stats.rcodes[usize::from(rcode).min(RCODE_SLOTS - 1)] += 1;

        let answer = question.answer()?;
        self.bytes.clear();
        self.pending.clear();
        self.collect(answer, stats)?;
        // NXDOMAIN after a CNAME chain: the name that does not exist is the
        // end of the chain, not the question.
        let chain_end = if counts.ancount() > 0 && rcode == 3 {
            self.cname_chain_end()
        } else {
            None
        };
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
        self.emit(ts, stats, sink);

        // A truncated (TC=1) answerless NOERROR only says "retry over
        // TCP": it is not NODATA.
        if counts.ancount() == 0 && qname_read {
            if rcode != 0 || !(msg.header().tc() || is_referral(answer)?) {
                sink.negative(qname, qtype, rcode, ts);
                stats.negatives += 1;
            }
        } else if let Some(end) = chain_end {
            sink.negative(&end, qtype, rcode, ts);
            stats.negatives += 1;
        }
        Ok(())
    }

    /// Appends a whole section to `pending`; nothing of it is kept if any
    /// record fails to parse.
    fn collect(
        &mut self,
        section: RecordSection<'_, &[u8]>,
        stats: &mut DecodeStats,
    ) -> Result<(), ParseError> {
        let (bytes_mark, pending_mark) = (self.bytes.len(), self.pending.len());
        for record in section {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    self.bytes.truncate(bytes_mark);
                    self.pending.truncate(pending_mark);
                    return Err(e);
                }
            };
            match self.canonical(&record) {
                Ok(Some(p)) => self.pending.push(p),
                Ok(None) => stats.drop(DropReason::RecordIgnored),
                Err(()) => stats.drop(DropReason::RecordMalformed),
            }
        }
        Ok(())
    }

    /// Lowercases the owner and puts the rdata into canonical form, both
    /// appended to `bytes`. `Ok(None)` for records we never store.
    fn canonical(&mut self, record: &ParsedRecord<'_, &[u8]>) -> Result<Option<Pending>, ()> {
        let rtype = record.rtype();
        let class = record.class().to_int() & 0x7fff; // mDNS cache-flush bit
        if class != Class::IN.to_int() || is_meta(rtype) {
            return Ok(None);
        }
        let owner_start = self.bytes.len();
        name::encode(&record.owner(), &mut self.bytes);
        let rdata_start = self.bytes.len();
        let fail = |bytes: &mut Vec<u8>| {
            bytes.truncate(owner_start);
            Err(())
        };
        match record.to_record::<Rdata<'_>>() {
            Ok(Some(rec)) => {
                if rec.data().compose_canonical_rdata(&mut self.bytes).is_err() {
                    return fail(&mut self.bytes);
                }
            }
            Ok(None) | Err(_) => return fail(&mut self.bytes),
        }
        lowercase_uncanonical_names(rtype, &mut self.bytes[rdata_start..]);
        Ok(Some(Pending {
            owner: owner_start..rdata_start,
            rdata: rdata_start..self.bytes.len(),
            rtype: rtype.to_int(),
            ttl: record.ttl().as_secs(),
        }))
    }

    /// The target of the last CNAME among the pending records, reversed.
    fn cname_chain_end(&self) -> Option<Vec<u8>> {
        let last = self
            .pending
            .iter()
            .rev()
            .find(|p| p.rtype == Rtype::CNAME.to_int())?;
        let mut out = Vec::new();
        crate::store::keys::wire_name_reversed(&self.bytes[last.rdata.clone()], &mut out)
            .then_some(out)
    }

    /// Hands the pending records to the sink, each distinct record once per
    /// message: the count is of responses carrying a record, so a record
    /// repeated within one message (or in two sections) counts once.
    fn emit(&mut self, ts: u64, stats: &mut DecodeStats, sink: &mut impl ObservationSink) {
        let bytes = &self.bytes;
        let identity = |p: &Pending| (p.rtype, &bytes[p.owner.clone()], &bytes[p.rdata.clone()]);
        let mut seen: HashSet<(u16, &[u8], &[u8])> = HashSet::default();
        for (i, p) in self.pending.iter().enumerate() {
            let id = identity(p);
            let duplicate = if self.pending.len() <= 16 {
                self.pending[..i].iter().any(|q| identity(q) == id)
            } else {
                !seen.insert(id)
            };
            if duplicate {
                continue;
            }
            sink.record(id.1, p.rtype, id.2, p.ttl, ts);
            stats.observations += 1;
        }
        self.pending.clear();
    }
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
/// case (SVCB/HTTPS targets, the NSEC next name). We store every name in
/// rdata lowercase, so fix those up in place.
fn lowercase_uncanonical_names(rtype: Rtype, rdata: &mut [u8]) {
    let offset = match rtype.to_int() {
        47 => 0,      // NSEC next domain name
        64 | 65 => 2, // SVCB/HTTPS target after the priority
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

/// The mnemonic of an RCODE as used in metrics (`NODATA` is ours: a
/// NOERROR response without answers, only in the negative table).
pub fn rcode_label(rcode: u16) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => "OTHER",
    }
}

/// The name of a negative-table rcode: `NODATA` for 0, else as
/// [`rcode_label`] (numeric `RCODE<n>` when unassigned).
pub fn negative_rcode_name(rcode: u16) -> String {
    match (rcode, rcode_label(rcode)) {
        (0, _) => "NODATA".to_string(),
        (n, "OTHER") => format!("RCODE{n}"),
        (_, label) => label.to_string(),
    }
}

/// Parses a negative-table rcode name (as printed, or a number).
pub fn parse_negative_rcode(s: &str) -> Option<u16> {
    let upper = s.trim().to_ascii_uppercase();
    if upper == "NODATA" {
        return Some(0);
    }
    if let Some(n) = upper.strip_prefix("RCODE").and_then(|n| n.parse().ok()) {
        return Some(n);
    }
    if let Ok(n) = upper.parse::<u16>() {
        return Some(n);
    }
    (1..4096).find(|&n| rcode_label(n) == upper)
}
