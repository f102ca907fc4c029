//! One file's parser: decides TSV or JSON from the first line and keeps the
//! header state of a TSV file.
//!
//! The first non-blank line decides: `{` is JSON lines (no header exists),
//! anything else is TSV (`#` header lines, or a plain field-name line as
//! `tsv=T` writes). In TSV every `#` line is header or comment — Zeek
//! escapes a data value starting with `#` as `\x23` — so a header may come
//! again mid-file (concatenated logs) and replaces the previous one.
//!
//! The header state can be written back out as header lines
//! ([`LogParser::header_lines`]) so a follower can persist it with its read
//! position and rebuild the same state after a restart.

use super::tsv::TsvHeader;
use super::{LineSkip, LogRecord, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tsv,
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Tsv => "tsv",
            Format::Json => "json",
        }
    }
}

/// What one line was.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A data line, parsed into the record.
    Record,
    /// A header, comment or blank line.
    Meta,
    /// A data line that cannot be used.
    Skipped(LineSkip),
    /// A header line that cannot be used, with the reason.
    HeaderError(String),
}

/// Parser state for one file.
#[derive(Clone, Debug, Default)]
pub struct LogParser {
    format: Option<Format>,
    tsv: TsvHeader,
}

impl LogParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// Whether replaying `line` (without importing it) can change the
    /// parser state: data lines after a usable header cannot, so a replay
    /// skips them without parsing.
    pub fn needs_for_state(&self, line: &[u8]) -> bool {
        match self.format {
            None => true,
            Some(Format::Json) => false,
            Some(Format::Tsv) => line.first() == Some(&b'#') || !self.tsv.has_fields(),
        }
    }

    /// Header lines that rebuild the current state (to persist).
    pub fn header_lines(&self) -> Vec<Vec<u8>> {
        match self.format {
            Some(Format::Tsv) => self.tsv.to_header_lines(),
            _ => Vec::new(),
        }
    }

    /// Rebuilds a parser from persisted header lines.
    pub fn restore(format: Option<Format>, header_lines: &[Vec<u8>]) -> Self {
        let mut p = LogParser {
            format,
            ..LogParser::default()
        };
        let mut rec = LogRecord::default();
        for line in header_lines {
            let _ = p.parse(line, &mut rec);
        }
        p
    }

    /// Parses one line (without its line terminator).
    pub fn parse(&mut self, line: &[u8], rec: &mut LogRecord) -> Outcome {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Outcome::Meta;
        }
        let format = *self.format.get_or_insert_with(|| {
            if line.first() == Some(&b'{') {
                Format::Json
            } else {
                Format::Tsv
            }
        });
        match format {
            Format::Json => {
                if line.first() == Some(&b'#') {
                    return Outcome::Meta;
                }
                match json::parse_line(line, rec) {
                    Ok(()) => Outcome::Record,
                    Err(r) => Outcome::Skipped(r),
                }
            }
            Format::Tsv => self.parse_tsv(line, rec),
        }
    }

    fn parse_tsv(&mut self, line: &[u8], rec: &mut LogRecord) -> Outcome {
        if line[0] == b'#' {
            if line.starts_with(b"###") {
                return Outcome::Meta; // btest banner, comments
            }
            return match self.tsv.header_line(line) {
                Ok(()) => Outcome::Meta,
                Err(e) => Outcome::HeaderError(e),
            };
        }
        if !self.tsv.has_fields() {
            match self.tsv.plain_field_line(line) {
                Some(Ok(())) => return Outcome::Meta,
                Some(Err(e)) => {
                    return Outcome::HeaderError(e);
                }
                None => {}
            }
        }
        match self.tsv.parse_line(line, rec) {
            Ok(()) => Outcome::Record,
            Err(r) => Outcome::Skipped(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_rebuilds_header_state() {
        let mut p = LogParser::new();
        let mut rec = LogRecord::default();
        for l in [
            "#separator \\x09",
            "#set_separator\t;",
            "#fields\tts\tquery\tanswers",
        ] {
            assert_eq!(p.parse(l.as_bytes(), &mut rec), Outcome::Meta);
        }
        assert_eq!(p.parse(b"1.0\ta\tx;y", &mut rec), Outcome::Record);
        let mut q = LogParser::restore(p.format(), &p.header_lines());
        assert_eq!(q.parse(b"2.0\tb\tx;y", &mut rec), Outcome::Record);
        assert_eq!(rec.answer_count(), 2);
        // Custom separators survive the round trip too.
        let mut p = LogParser::new();
        for l in [
            "#separator \\x7c",
            "#unset_field|NIL",
            "#fields|ts|query|answers",
        ] {
            assert_eq!(p.parse(l.as_bytes(), &mut rec), Outcome::Meta);
        }
        let mut q = LogParser::restore(p.format(), &p.header_lines());
        assert_eq!(q.parse(b"3.0|NIL|x", &mut rec), Outcome::Record);
        assert!(!rec.has_query);
    }

    #[test]
    fn formats_are_told_apart() {
        let mut rec = LogRecord::default();
        let mut p = LogParser::new();
        assert_eq!(p.parse(b"", &mut rec), Outcome::Meta);
        assert_eq!(
            p.parse(br#"{"ts":1,"query":"a"}"#, &mut rec),
            Outcome::Record
        );
        assert_eq!(p.format(), Some(Format::Json));
        let mut p = LogParser::new();
        assert_eq!(
            p.parse(b"1.0\ta\tb", &mut rec),
            Outcome::Skipped(LineSkip::NoHeader)
        );
        let mut p = LogParser::new();
        assert_eq!(p.parse(b"ts\tquery\tanswers", &mut rec), Outcome::Meta);
        assert_eq!(p.parse(b"1.0\ta\t-", &mut rec), Outcome::Record);
        let mut p = LogParser::new();
        assert!(matches!(
            p.parse(b"uid\tid.orig_h\tquery", &mut rec),
            Outcome::HeaderError(_)
        ));
    }
}
