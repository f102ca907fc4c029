//! Export rows: a batch as ClickHouse `RowBinary` inserts, and the spool
//! entry that carries them until they are acknowledged.
//!
//! The entry holds the finished request bodies, not the batch: a retry
//! sends the very same bytes, which is what ClickHouse's block
//! de-duplication (replicated tables) compares, and costs no encoding.
//!
//! Payload layout (all integers big-endian):
//!
//! ```text
//! version (1) | sensor length (u16) | sensor | part count (u8) |
//! part*: table (u8: 0 records, 1 negatives) | rows (u64) | length (u64) | RowBinary body
//! ```
//!
//! Parts already acknowledged are removed from the entry (see
//! [`Payload::without_part`]), so a restart does not send them again.

use super::super::clickhouse::schema;
use crate::store::spool::SpoolEncoder;
use crate::vocab::batch::Batch;
use crate::vocab::{key, name, render};

const VERSION: u8 = 1;

/// Which input table a part goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Records,
    Negatives,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Records => schema::RECORDS_IN,
            Table::Negatives => schema::NEGATIVES_IN,
        }
    }

    fn id(self) -> u8 {
        match self {
            Table::Records => 0,
            Table::Negatives => 1,
        }
    }

    fn from_id(id: u8) -> Option<Table> {
        match id {
            0 => Some(Table::Records),
            1 => Some(Table::Negatives),
            _ => None,
        }
    }
}

/// One insert: rows for one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub table: Table,
    pub rows: u64,
    pub body: Vec<u8>,
}

/// A decoded spool payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The sensor id the rows carry (and the de-duplication token starts
    /// with), as it was when the batch was written.
    pub sensor: String,
    pub parts: Vec<Part>,
}

impl Payload {
    pub fn decode(raw: &[u8]) -> Option<Payload> {
        let mut r = Reader(raw);
        if r.u8()? != VERSION {
            return None;
        }
        let sensor_len = usize::from(u16::from_be_bytes(r.take(2)?.try_into().ok()?));
        let sensor = String::from_utf8(r.take(sensor_len)?.to_vec()).ok()?;
        let count = r.u8()?;
        let mut parts = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let table = Table::from_id(r.u8()?)?;
            let rows = r.u64()?;
            let len = usize::try_from(r.u64()?).ok()?;
            parts.push(Part {
                table,
                rows,
                body: r.take(len)?.to_vec(),
            });
        }
        r.0.is_empty().then_some(Payload { sensor, parts })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let sensor = &self.sensor.as_bytes()[..self.sensor.len().min(u16::MAX as usize)];
        out.push(VERSION);
        out.extend_from_slice(&(sensor.len() as u16).to_be_bytes());
        out.extend_from_slice(sensor);
        out.push(self.parts.len() as u8);
        for part in &self.parts {
            out.push(part.table.id());
            out.extend_from_slice(&part.rows.to_be_bytes());
            out.extend_from_slice(&(part.body.len() as u64).to_be_bytes());
            out.extend_from_slice(&part.body);
        }
    }

    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows).sum()
    }

    /// The payload once the first part is acknowledged.
    pub fn without_first_part(&self) -> Payload {
        Payload {
            sensor: self.sensor.clone(),
            parts: self.parts[1..].to_vec(),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Encodes batches for the ClickHouse input tables.
pub struct RowEncoder {
    pub sensor: String,
}

/// A random identity for a batch, carried in every row (see the schema's
/// `last_batch`): 64 bits from the standard library's randomly keyed
/// hasher over the time and a process-wide counter.
fn batch_identity() -> u64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::collections::hash_map::RandomState::new().hash_one((
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::process::id(),
    ))
}

impl SpoolEncoder for RowEncoder {
    fn encode(&self, batch: &Batch, cutoff: u64, out: &mut Vec<u8>) -> u64 {
        let mut payload = Payload {
            sensor: self.sensor.clone(),
            parts: Vec::with_capacity(2),
        };
        let identity = batch_identity();
        let (rows, body) = records_body(&self.sensor, batch, cutoff, identity);
        if rows > 0 {
            payload.parts.push(Part {
                table: Table::Records,
                rows,
                body,
            });
        }
        let (rows, body) = negatives_body(&self.sensor, batch, cutoff, identity);
        if rows > 0 {
            payload.parts.push(Part {
                table: Table::Negatives,
                rows,
                body,
            });
        }
        let rows = payload.rows();
        if rows > 0 {
            payload.encode(out);
        }
        rows
    }
}

/// RowBinary rows of [`schema::RECORDS_IN_COLUMNS`] for the records of a
/// batch that are not expired at `cutoff`.
fn records_body(sensor: &str, batch: &Batch, cutoff: u64, identity: u64) -> (u64, Vec<u8>) {
    let mut body = Vec::with_capacity(batch.records.len() * 120 + batch.records.key_bytes() * 4);
    let mut rows = 0;
    let mut scratch = Vec::new();
    let mut text = String::new();
    for (k, value) in batch.records.iter() {
        if value.is_expired(cutoff) {
            continue;
        }
        let Some(record) = key::parse_record_key(k) else {
            continue;
        };
        rows += 1;
        string(&mut body, sensor.as_bytes());
        string(&mut body, k);
        scratch.clear();
        key::index_key(&mut scratch, &record);
        string(&mut body, &scratch);
        scratch.clear();
        name::forward(record.owner, &mut scratch);
        string(&mut body, &scratch);
        text.clear();
        name::write_presentation(record.owner, &mut text);
        string(&mut body, text.as_bytes());
        body.extend_from_slice(&record.rtype.to_int().to_le_bytes());
        string(
            &mut body,
            render::rdata(record.rtype, record.rdata).as_bytes(),
        );
        value_columns(&mut body, value);
        body.extend_from_slice(&identity.to_le_bytes());
    }
    (rows, body)
}

/// RowBinary rows of [`schema::NEGATIVES_IN_COLUMNS`].
fn negatives_body(sensor: &str, batch: &Batch, cutoff: u64, identity: u64) -> (u64, Vec<u8>) {
    let mut body = Vec::with_capacity(batch.negatives.len() * 80);
    let mut rows = 0;
    let mut text = String::new();
    for (k, value) in batch.negatives.iter() {
        if value.is_expired(cutoff) {
            continue;
        }
        let Some(negative) = key::parse_negative_key(k) else {
            continue;
        };
        rows += 1;
        string(&mut body, sensor.as_bytes());
        string(&mut body, k);
        text.clear();
        name::write_presentation(negative.qname, &mut text);
        string(&mut body, text.as_bytes());
        body.extend_from_slice(&negative.qtype.to_int().to_le_bytes());
        body.extend_from_slice(&negative.rcode.to_int().to_le_bytes());
        value_columns(&mut body, value);
        body.extend_from_slice(&identity.to_le_bytes());
    }
    (rows, body)
}

/// count, time_first, time_last, ttl, origin (the batch identity
/// follows).
fn value_columns(body: &mut Vec<u8>, value: &crate::vocab::value::Value) {
    body.extend_from_slice(&value.count.to_le_bytes());
    body.extend_from_slice(&datetime(value.first).to_le_bytes());
    body.extend_from_slice(&datetime(value.last).to_le_bytes());
    body.extend_from_slice(&value.ttl.to_le_bytes());
    body.push(value.origin.bits());
}

/// A `DateTime` (u32 seconds): times past 2106 are clamped.
fn datetime(epoch: u64) -> u32 {
    u32::try_from(epoch).unwrap_or(u32::MAX)
}

/// A RowBinary `String`: LEB128 length, then the bytes.
fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut n = bytes.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::vocab::Rtype;
    use crate::vocab::observation::ObservationSink;
    use crate::vocab::value::Origin;

    #[test]
    fn leb128_lengths() {
        let mut out = Vec::new();
        string(&mut out, &[]);
        string(&mut out, &[7; 127]);
        assert_eq!(out[..2], [0, 127]);
        let mut out = Vec::new();
        string(&mut out, &[7; 300]);
        assert_eq!(out[..2], [0xac, 0x02]);
        assert_eq!(out.len(), 302);
    }

    #[test]
    fn payloads_round_trip_and_shed_acknowledged_parts() {
        let mut agg = Aggregator::new(1000, Origin::WIRE);
        let owner = name::encode_presentation("www.example.com").unwrap();
        agg.record(&owner, Rtype::A, &[192, 0, 2, 1], 300, 1_700_000_000);
        agg.record(&owner, Rtype::A, &[192, 0, 2, 1], 60, 1_700_000_100);
        agg.negative(
            &owner,
            Rtype::AAAA,
            crate::vocab::OptRcode::NXDOMAIN,
            1_700_000_050,
        );
        let batch = agg.take();
        let mut raw = Vec::new();
        let rows = RowEncoder {
            sensor: "s1".into(),
        }
        .encode(&batch, 0, &mut raw);
        assert_eq!(rows, 2);
        let payload = Payload::decode(&raw).unwrap();
        assert_eq!(payload.sensor, "s1");
        assert_eq!(payload.parts.len(), 2);
        assert_eq!(payload.parts[0].table, Table::Records);
        let body = &payload.parts[0].body;
        // sensor, then the record key
        assert_eq!(&body[..3], b"\x02s1");
        // count 2, first, last, ttl 60 (the latest), origin wire, batch
        let tail = &body[body.len() - 29..body.len() - 8];
        assert_eq!(tail[..8], 2u64.to_le_bytes());
        assert_eq!(tail[8..12], 1_700_000_000u32.to_le_bytes());
        assert_eq!(tail[12..16], 1_700_000_100u32.to_le_bytes());
        assert_eq!(tail[16..20], 60u32.to_le_bytes());
        let rest = payload.without_first_part();
        assert_eq!(rest.parts.len(), 1);
        assert_eq!(rest.parts[0].table, Table::Negatives);
        let mut again = Vec::new();
        rest.encode(&mut again);
        assert_eq!(Payload::decode(&again), Some(rest));
        // Truncated or trailing bytes are refused, not misread.
        assert_eq!(Payload::decode(&raw[..raw.len() - 1]), None);
        let mut longer = raw.clone();
        longer.push(0);
        assert_eq!(Payload::decode(&longer), None);
    }

    #[test]
    fn expired_rows_are_left_out_like_the_store_does() {
        let mut agg = Aggregator::new(1000, Origin::WIRE);
        let owner = name::encode_presentation("old.example").unwrap();
        agg.record(&owner, Rtype::A, &[192, 0, 2, 1], 300, 100);
        let batch = agg.take();
        let mut raw = Vec::new();
        let encoder = RowEncoder { sensor: "s".into() };
        assert_eq!(encoder.encode(&batch, 101, &mut raw), 0);
        assert!(raw.is_empty());
    }
}
