//! Observations: what extraction hands to aggregation.
//!
//! An observation is one sighting, at one capture second, of a resource
//! record or of a negative answer. Every source ends in the same
//! [`ObservationSink`] calls, whether the sighting was parsed from a DNS
//! message on the wire or rebuilt from a Zeek log line, so that a record
//! seen both ways is one key in the store.

use domain::base::iana::{OptRcode, Rtype};

/// Receives observations. Implemented by the aggregator.
pub trait ObservationSink {
    /// A record: `owner` in the reversed name encoding (see
    /// [`super::name`]), `rdata` in canonical wire form (names uncompressed
    /// and lowercased), `ts` capture time in seconds.
    fn record(&mut self, owner: &[u8], rtype: Rtype, rdata: &[u8], ttl: u32, ts: u64);

    /// A negative answer for (`qname`, `qtype`): `rcode` NOERROR means
    /// NODATA (no answer for that type), anything else is the response's
    /// (extended) RCODE.
    fn negative(&mut self, qname: &[u8], qtype: Rtype, rcode: OptRcode, ts: u64);
}
