//! Reading the central history: the store's queries, answered by
//! ClickHouse.
//!
//! Every selector is one key range of one table ([`KeySpan`], shared with
//! the RocksDB store), so a query here is one range read of the table
//! mirroring that column family, merged per key (`GROUP BY key` with the
//! `-Merge` combinators: correct whether or not ClickHouse has merged its
//! parts), in key order. Each row is then taken apart by the same code as
//! a RocksDB entry ([`KeySpan::record`]): the API cannot tell the
//! backends apart, and a differential test holds them to it.
//!
//! Answers stream as `RowBinary` and are parsed as they arrive, so a
//! client's limit or the query deadline stops reading early (ClickHouse
//! is told the deadline too: `max_execution_time`).

use std::io::{BufReader, Read};
use std::time::Duration;

use super::client::{ClickHouseError, Client};
use super::schema;
use crate::store::{CF_NEGATIVE, CF_RDATA};
use crate::store::{Filter, KeySpan, NegativeRecord, Selector, StoredRecord, names_range};
use crate::vocab::name;
use crate::vocab::value::{Origin, Value};

/// A failed read: the server's error, or an answer that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error("ClickHouse answer: {0}")]
    Answer(String),
}

/// The central history, read through ClickHouse.
#[derive(Clone, Debug)]
pub struct Reader {
    client: Client,
    /// Bound on one query, for ClickHouse's own accounting.
    timeout: Duration,
}

/// The history tables and their key columns, as `serve --clickhouse`
/// reads them.
pub const READ_TABLES: &[(&str, &[(&str, &str)])] = &[
    (schema::RECORDS, &[("key", "String")]),
    (schema::RDATA, &[("index_key", "String")]),
    (schema::NAMES, &[("names_key", "String")]),
    (schema::NEGATIVES, &[("key", "String")]),
];

impl Reader {
    pub fn new(client: Client, timeout: Duration) -> Reader {
        Reader { client, timeout }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Checks that the history tables are there.
    pub fn check(&self) -> Result<(), anyhow::Error> {
        match schema::check_tables(&self.client, READ_TABLES)? {
            Ok(()) => Ok(()),
            Err(m) => Err(anyhow::anyhow!(
                "ClickHouse at {}: {m}",
                self.client.target().display()
            )),
        }
    }

    /// Streams merged `(key, value)` rows of `table` whose `column` is in
    /// the span's range, in key order.
    fn rows(
        &self,
        table: &str,
        column: &str,
        range: &crate::store::KeyRange,
        filter: &Filter,
    ) -> Result<Rows, ReadError> {
        let mut conditions = vec![format!("{column} >= {}", literal(&range.start))];
        if let Some(end) = &range.end {
            conditions.push(format!("{column} < {}", literal(end)));
        }
        // Time fences cut what crosses the wire; the caller applies the
        // whole filter again, so these only need to be no stricter.
        let mut having = Vec::new();
        for (bound, merged, op) in [
            (filter.first_after, "minMerge(first_seen)", ">="),
            (filter.first_before, "minMerge(first_seen)", "<="),
            (filter.last_after, "maxMerge(last_seen)", ">="),
            (filter.last_before, "maxMerge(last_seen)", "<="),
        ] {
            if let Some(t) = bound {
                having.push(format!(
                    "toUInt64({merged}) {op} {}",
                    t.min(u64::from(u32::MAX))
                ));
            }
        }
        let sql = format!(
            "SELECT {column}, sumMerge(cnt), toUInt32(minMerge(first_seen)), \
             toUInt32(maxMerge(last_seen)), argMaxMerge(ttl_last), groupBitOrMerge(origin_bits) \
             FROM {db}.{table} WHERE {where_} GROUP BY {column}{having} ORDER BY {column} \
             FORMAT RowBinary",
            db = self.client.target().database,
            where_ = conditions.join(" AND "),
            having = if having.is_empty() {
                String::new()
            } else {
                format!(" HAVING {}", having.join(" AND "))
            },
        );
        let seconds = self.timeout.as_secs().max(1).to_string();
        let body = self
            .client
            .query_stream(&sql, &[("max_execution_time", &seconds)])?;
        Ok(Rows {
            input: BufReader::with_capacity(64 << 10, Box::new(body)),
            done: false,
        })
    }

    /// The records a selector and filter match, in key order (as
    /// [`crate::store::Store::records`]).
    pub fn records<'a>(
        &'a self,
        selector: &Selector,
        filter: &'a Filter,
    ) -> impl Iterator<Item = Result<StoredRecord, ReadError>> + 'a {
        let span = selector.span();
        let (table, column) = if span.cf == CF_RDATA {
            (schema::RDATA, "index_key")
        } else {
            (schema::RECORDS, "key")
        };
        self.stream(table, column, span, filter, |span, k, v, f| {
            span.record(k, v, 0, f)
        })
    }

    /// The negative answers a selector and filter match (as
    /// [`crate::store::Store::negatives`]).
    pub fn negatives<'a>(
        &'a self,
        selector: &Selector,
        filter: &'a Filter,
    ) -> impl Iterator<Item = Result<NegativeRecord, ReadError>> + 'a {
        let span = selector.negative_span();
        debug_assert_eq!(span.cf, CF_NEGATIVE);
        self.stream(schema::NEGATIVES, "key", span, filter, |span, k, v, f| {
            span.negative(k, v, 0, f)
        })
    }

    fn stream<'a, T: 'a>(
        &'a self,
        table: &'static str,
        column: &'static str,
        span: KeySpan,
        filter: &'a Filter,
        take: impl Fn(&KeySpan, &[u8], Value, &Filter) -> Option<T> + 'a,
    ) -> impl Iterator<Item = Result<T, ReadError>> + 'a {
        let mut rows = match self.rows(table, column, &span.range, filter) {
            Ok(rows) => Ok(rows),
            Err(e) => Err(Some(e)),
        };
        std::iter::from_fn(move || {
            loop {
                let source = match &mut rows {
                    Ok(r) => r,
                    Err(e) => return e.take().map(Err),
                };
                match source.next()? {
                    Ok((key, value)) => {
                        if let Some(item) = take(&span, &key, value, filter) {
                            return Some(Ok(item));
                        }
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
        })
    }

    /// Owner names (reversed encoding) whose forward encoding starts with
    /// `prefix` (as [`crate::store::Store::owners_forward`]).
    pub fn owners_forward<'a>(
        &'a self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<Vec<u8>, ReadError>> + 'a {
        let range = names_range(prefix);
        let mut rows = match self.rows(schema::NAMES, "names_key", &range, &Filter::default()) {
            Ok(rows) => Ok(rows),
            Err(e) => Err(Some(e)),
        };
        std::iter::from_fn(move || {
            let source = match &mut rows {
                Ok(r) => r,
                Err(e) => return e.take().map(Err),
            };
            Some(source.next()?.map(|(forward, _)| {
                let mut reversed = Vec::with_capacity(forward.len());
                name::from_forward(&forward, &mut reversed);
                reversed
            }))
        })
    }
}

/// A byte string as a ClickHouse literal: `unhex('…')`, whatever the bytes.
fn literal(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(9 + bytes.len() * 2);
    s.push_str("unhex('");
    for b in bytes {
        s.push_str(&format!("{b:02X}"));
    }
    s.push_str("')");
    s
}

/// Rows of a `RowBinary` answer: key, count, first, last, ttl, origin.
struct Rows {
    input: BufReader<Box<dyn Read>>,
    done: bool,
}

impl Rows {
    fn next(&mut self) -> Option<Result<(Vec<u8>, Value), ReadError>> {
        if self.done {
            return None;
        }
        match self.read_row() {
            Ok(row) => row.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn read_row(&mut self) -> Result<Option<(Vec<u8>, Value)>, ReadError> {
        let Some(len) = self.varint()? else {
            self.done = true;
            return Ok(None);
        };
        if len > 1 << 20 {
            return Err(ReadError::Answer(format!("a key of {len} bytes")));
        }
        let mut key = vec![0; len as usize];
        self.exact(&mut key)?;
        let mut fixed = [0u8; 8 + 4 + 4 + 4 + 1];
        self.exact(&mut fixed)?;
        let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().expect("4 bytes"));
        let value = Value {
            count: u64::from_le_bytes(fixed[..8].try_into().expect("8 bytes")),
            first: u64::from(u32_at(8)),
            last: u64::from(u32_at(12)),
            ttl: u32_at(16),
            origin: Origin::from_bits(fixed[20]),
        };
        Ok(Some((key, value)))
    }

    /// A LEB128 length, or `None` at the clean end of the answer.
    fn varint(&mut self) -> Result<Option<u64>, ReadError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let mut byte = [0u8];
            match self.input.read(&mut byte) {
                Ok(0) if shift == 0 => return Ok(None),
                Ok(0) => return Err(ReadError::Answer("cut short".into())),
                Ok(_) => {}
                Err(e) => return Err(ReadError::Answer(format!("reading: {e}"))),
            }
            n |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return Ok(Some(n));
            }
        }
        Err(ReadError::Answer("a length that does not end".into()))
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), ReadError> {
        self.input.read_exact(buf).map_err(|e| {
            ReadError::Answer(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "cut short".into()
            } else {
                format!("reading: {e}")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_carry_any_bytes() {
        assert_eq!(literal(b""), "unhex('')");
        assert_eq!(literal(&[0, 0x27, 0xff]), "unhex('0027FF')");
    }

    fn rows(bytes: Vec<u8>) -> Rows {
        Rows {
            input: BufReader::new(Box::new(std::io::Cursor::new(bytes))),
            done: false,
        }
    }

    #[test]
    fn rowbinary_rows_parse_and_a_cut_answer_is_an_error() {
        let mut answer = vec![3, b'a', b'b', b'c'];
        answer.extend_from_slice(&7u64.to_le_bytes());
        answer.extend_from_slice(&100u32.to_le_bytes());
        answer.extend_from_slice(&200u32.to_le_bytes());
        answer.extend_from_slice(&60u32.to_le_bytes());
        answer.push(1);
        let mut r = rows(answer.clone());
        let (key, value) = r.next().unwrap().unwrap();
        assert_eq!(key, b"abc");
        assert_eq!(
            (value.count, value.first, value.last, value.ttl),
            (7, 100, 200, 60)
        );
        assert!(r.next().is_none());
        let mut cut = rows(answer[..answer.len() - 3].to_vec());
        assert!(matches!(cut.next(), Some(Err(ReadError::Answer(_)))));
        assert!(cut.next().is_none());
    }
}
