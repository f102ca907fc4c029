//! Output of stored records for people (aligned table) and tools (COF JSON
//! lines, as the Common Output Format of passive DNS defines it, which MISP
//! imports as is).
//!
//! Output streams: the table is aligned over blocks of rows so memory stays
//! bounded however many records match.

use std::io::{self, Write};

use serde_json::json;

use crate::store::{NegativeRecord, StoredRecord};
use crate::vocab::name;
use crate::vocab::rcode;
use crate::vocab::render;
use crate::vocab::time::format_utc;
use crate::vocab::value::Value;

/// Rows aligned together in table output.
const TABLE_BLOCK: usize = 1000;

/// A record rendered to text fields.
pub struct Row {
    pub name: String,
    pub rtype: String,
    pub data: String,
    pub value: Value,
}

impl Row {
    pub fn record(r: &StoredRecord) -> Row {
        Row {
            name: name::presentation(&r.owner),
            rtype: render::rtype_name(r.rtype),
            data: render::rdata(r.rtype, &r.rdata),
            value: r.value,
        }
    }

    pub fn negative(r: &NegativeRecord) -> Row {
        Row {
            name: name::presentation(&r.qname),
            rtype: render::rtype_name(r.qtype),
            data: rcode::negative_name(r.rcode),
            value: r.value,
        }
    }
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// Writes rows in the chosen format; `negative` switches the JSON shape and
/// table headings to the negative-answer table.
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    negative: bool,
    block: Vec<Row>,
    header_done: bool,
    pub rows: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, format: Format, negative: bool) -> Self {
        Writer {
            out,
            format,
            negative,
            block: Vec::new(),
            header_done: false,
            rows: 0,
        }
    }

    pub fn push(&mut self, row: Row) -> io::Result<()> {
        self.rows += 1;
        match self.format {
            Format::Json => {
                let line = if self.negative {
                    json!({
                        "rrname": row.name,
                        "rrtype": row.rtype,
                        "rcode": row.data,
                        "count": row.value.count,
                        "time_first": row.value.first,
                        "time_last": row.value.last,
                        "origin": row.value.origin.names(),
                    })
                } else {
                    json!({
                        "rrname": row.name,
                        "rrtype": row.rtype,
                        "rdata": [row.data],
                        "count": row.value.count,
                        "time_first": row.value.first,
                        "time_last": row.value.last,
                        "ttl": row.value.ttl,
                        "origin": row.value.origin.names(),
                    })
                };
                writeln!(self.out, "{line}")
            }
            Format::Table => {
                self.block.push(row);
                if self.block.len() >= TABLE_BLOCK {
                    self.write_block()?;
                }
                Ok(())
            }
        }
    }

    fn write_block(&mut self) -> io::Result<()> {
        let third = if self.negative { "RCODE" } else { "RDATA" };
        let headings = [
            "NAME",
            "TYPE",
            third,
            "COUNT",
            "TTL",
            "FIRST SEEN (UTC)",
            "LAST SEEN (UTC)",
            "ORIGIN",
        ];
        let cells: Vec<[String; 8]> = self
            .block
            .drain(..)
            .map(|r| {
                [
                    r.name,
                    r.rtype,
                    r.data,
                    r.value.count.to_string(),
                    if self.negative {
                        "-".to_string()
                    } else {
                        r.value.ttl.to_string()
                    },
                    format_utc(r.value.first),
                    format_utc(r.value.last),
                    r.value.origin.names().join(","),
                ]
            })
            .collect();
        let mut widths = headings.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        let write_row = |out: &mut W, row: &[&str]| -> io::Result<()> {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths.iter()).enumerate() {
                if i == 3 || i == 4 {
                    line.push_str(&format!("{cell:>w$}  "));
                } else if i == 7 {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            writeln!(out, "{}", line.trim_end())
        };
        if !self.header_done {
            write_row(&mut self.out, &headings)?;
            self.header_done = true;
        }
        for row in &cells {
            let refs: Vec<&str> = row.iter().map(String::as_str).collect();
            write_row(&mut self.out, &refs)?;
        }
        Ok(())
    }

    /// Writes what is buffered and flushes.
    pub fn finish(mut self) -> io::Result<u64> {
        if !self.block.is_empty() {
            self.write_block()?;
        }
        self.out.flush()?;
        Ok(self.rows)
    }
}
