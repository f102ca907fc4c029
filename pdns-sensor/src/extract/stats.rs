//! Per-thread extraction counters.
//!
//! Counted in plain integers on the decoder thread, like the decoder's own
//! [`crate::decode::DecodeStats`], and taken by the pipeline at every
//! flush. A DNS message that yields nothing, and a record that is not
//! stored, is counted under exactly one [`DropReason`].

use crate::vocab::OptRcode;
use crate::vocab::rcode;

/// Why a DNS message, or one of its records, was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// The DNS message does not parse (bad header, bad name, compression
    /// loop, record running past the end, ...).
    DnsMalformed,
    /// A DNS message whose opcode is not QUERY (UPDATE, NOTIFY, IQUERY...):
    /// its sections do not hold answers.
    DnsOpcodeIgnored,
    /// One resource record whose RDATA does not parse for its type (the
    /// rest of the message is still used).
    RecordMalformed,
    /// A record of a class other than IN, or a meta type (ANY, AXFR...) in
    /// a section that should hold data.
    RecordIgnored,
}

impl DropReason {
    /// Every reason, in a stable order (used for metrics and reports).
    pub const ALL: [DropReason; 4] = [
        DropReason::DnsMalformed,
        DropReason::DnsOpcodeIgnored,
        DropReason::RecordMalformed,
        DropReason::RecordIgnored,
    ];

    /// The label used in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::DnsMalformed => "dns_malformed",
            DropReason::DnsOpcodeIgnored => "dns_opcode_ignored",
            DropReason::RecordMalformed => "dns_record_malformed",
            DropReason::RecordIgnored => "dns_record_ignored",
        }
    }
}

/// Responses counted per RCODE: 0..=23 one by one (every code assigned
/// so far), the last slot for everything above.
pub(super) const RCODE_SLOTS: usize = 25;

/// What the extraction of one response counted, beyond the response
/// itself: enough to count the same message again, seen later, exactly as
/// if it had been parsed again (the pipeline's repeated-response shortcut).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extraction {
    /// The response's (extended) RCODE.
    pub rcode: OptRcode,
    /// Record observations and whether a negative one was made.
    pub records: u32,
    pub negative: bool,
    /// Records dropped as [`DropReason::RecordIgnored`] and
    /// [`DropReason::RecordMalformed`].
    pub ignored: u32,
    pub malformed: u32,
}

impl Extraction {
    /// Counts one more response that gave exactly this, over TCP or not.
    #[inline]
    pub fn count(&self, stats: &mut ExtractStats, tcp: bool) {
        stats.dns_responses += 1;
        stats.tcp_responses += u64::from(tcp);
        stats.response_rcode(self.rcode);
        stats.observations += u64::from(self.records);
        stats.negatives += u64::from(self.negative);
        stats.drops[DropReason::RecordIgnored as usize] += u64::from(self.ignored);
        stats.drops[DropReason::RecordMalformed as usize] += u64::from(self.malformed);
    }
}

/// Counters one extractor keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// DNS messages read, split by QR bit.
    pub dns_queries: u64,
    pub dns_responses: u64,
    /// Of those, carried over TCP.
    pub tcp_queries: u64,
    pub tcp_responses: u64,
    /// Responses by RCODE (extended RCODEs included), see `RCODE_SLOTS`.
    pub rcodes: [u64; RCODE_SLOTS],
    /// Record observations and negative-answer observations produced (by
    /// every source: rebuilt log lines count here too).
    pub observations: u64,
    pub negatives: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::ALL.len()],
    /// Of `dns_responses`, those counted as the repeat of one extracted
    /// before in the same batch, without being parsed again.
    pub repeated_responses: u64,
}

impl ExtractStats {
    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// The count for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Counts a response with this RCODE.
    #[inline]
    pub fn response_rcode(&mut self, rcode: OptRcode) {
        self.rcodes[usize::from(rcode.to_int()).min(RCODE_SLOTS - 1)] += 1;
    }

    /// The responses counted per RCODE, as `(label, count)`, the last slot
    /// labelled `OTHER`.
    pub fn rcodes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.rcodes.iter().enumerate().map(|(slot, &n)| {
            let label = if slot == RCODE_SLOTS - 1 {
                "OTHER"
            } else {
                rcode::label(OptRcode::masked_from_int(slot as u16))
            };
            (label, n)
        })
    }

    /// Adds another thread's counters to these.
    pub fn add(&mut self, other: &ExtractStats) {
        self.dns_queries += other.dns_queries;
        self.dns_responses += other.dns_responses;
        self.tcp_queries += other.tcp_queries;
        self.tcp_responses += other.tcp_responses;
        self.observations += other.observations;
        self.negatives += other.negatives;
        self.repeated_responses += other.repeated_responses;
        for (a, b) in self.rcodes.iter_mut().zip(other.rcodes.iter()) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
    }

    /// Returns the counters and resets them to zero.
    pub fn take(&mut self) -> ExtractStats {
        std::mem::take(self)
    }
}
