//! Zeek's TSV log format, driven by its header.
//!
//! The ASCII writer describes each file in `#` lines: `#separator` (the one
//! header line whose key is followed by a space, value `\xNN`-escaped),
//! `#set_separator`, `#empty_field`, `#unset_field`, then `#fields` and
//! `#types`. Sites redefine all of them and add columns, so columns are
//! found by name from `#fields`, never by position, and a later `#fields`
//! (concatenated files) replaces the earlier one. The per-filter `tsv=T`
//! option writes a single plain line of field names instead; that is
//! accepted too when it names the columns an import needs.
//!
//! Values are split on the separator first, containers on the set
//! separator, and only then unescaped (`\xNN`, `\\`), so an escaped
//! separator inside a value stays inside it. The unset (`-`) and empty
//! (`(empty)`) markers are compared before unescaping: Zeek escapes a value
//! that merely looks like them (`\x2d`).
//!
//! Splitting works on bytes with `memchr` into reused buffers: no
//! allocation per line.

use memchr::memmem;

use super::{LineSkip, LogRecord};

/// The columns an import reads, by position in the current `#fields`.
#[derive(Clone, Debug)]
struct Columns {
    count: usize,
    ts: usize,
    query: usize,
    answers: usize,
    ttls: Option<usize>,
    qtype: Option<usize>,
    qtype_name: Option<usize>,
    rcode: Option<usize>,
    rcode_name: Option<usize>,
    rejected: Option<usize>,
    opcode: Option<usize>,
}

/// Columns without which a line cannot be imported.
const REQUIRED: [&str; 3] = ["ts", "query", "answers"];

/// The header state of one TSV file.
#[derive(Clone, Debug)]
pub(super) struct TsvHeader {
    sep: Vec<u8>,
    set_sep: Vec<u8>,
    empty: Vec<u8>,
    unset: Vec<u8>,
    columns: Option<Columns>,
    /// The names in the current `#fields`.
    fields: Vec<Vec<u8>>,
    /// Field boundaries of the line being parsed (reused).
    ranges: Vec<(usize, usize)>,
}

impl Default for TsvHeader {
    fn default() -> Self {
        TsvHeader {
            sep: b"\t".to_vec(),
            set_sep: b",".to_vec(),
            empty: b"(empty)".to_vec(),
            unset: b"-".to_vec(),
            columns: None,
            fields: Vec::new(),
            ranges: Vec::with_capacity(32),
        }
    }
}

impl TsvHeader {
    /// Whether a usable `#fields` (or plain field-name line) was seen.
    pub(super) fn has_fields(&self) -> bool {
        self.columns.is_some()
    }

    /// Takes one `#` line. `Err` explains a header line that cannot be
    /// used; the previous state is kept for the parts it did not change.
    pub(super) fn header_line(&mut self, line: &[u8]) -> Result<(), String> {
        let body = &line[1..];
        if let Some(value) = body
            .strip_prefix(b"separator ")
            .or_else(|| body.strip_prefix(b"separator\t"))
        {
            let sep = unescape_header(value)?;
            if sep.is_empty() {
                return Err("#separator is empty".into());
            }
            self.sep = sep;
            return Ok(());
        }
        let (key, value) = match memmem::find(body, &self.sep) {
            Some(i) => (&body[..i], &body[i + self.sep.len()..]),
            None => (body, &b""[..]),
        };
        match key {
            b"set_separator" => {
                let v = unescape_header(value)?;
                if v.is_empty() {
                    return Err("#set_separator is empty".into());
                }
                self.set_sep = v;
            }
            b"empty_field" => self.empty = unescape_header(value)?,
            b"unset_field" => self.unset = unescape_header(value)?,
            b"fields" => {
                let names: Vec<&[u8]> = split(value, &self.sep).collect();
                self.columns = None;
                self.fields.clear();
                self.columns = Some(columns(&names)?);
                self.fields = names.iter().map(|n| n.to_vec()).collect();
            }
            b"types" => {
                let n = split(value, &self.sep).count();
                if let Some(c) = &self.columns
                    && n != c.count
                {
                    return Err(format!(
                        "#types lists {n} types but #fields lists {} fields",
                        c.count
                    ));
                }
            }
            _ => {} // #path, #open, #close, comments
        }
        Ok(())
    }

    /// A plain line of field names (`tsv=T` logs, `zeek-cut -c` output)
    /// seen before any `#fields`: `Some(Ok)` if adopted, `Some(Err)` if it is
    /// a field-name line that lacks needed columns, `None` if it is not a
    /// field-name line at all.
    pub(super) fn plain_field_line(&mut self, line: &[u8]) -> Option<Result<(), String>> {
        let names: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        let name_like = |n: &&[u8]| {
            !n.is_empty()
                && n.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
                && !n.iter().all(u8::is_ascii_digit)
        };
        if !names.iter().all(name_like) || !names.contains(&&b"query"[..]) {
            return None;
        }
        *self = TsvHeader::default();
        Some(columns(&names).map(|c| {
            self.columns = Some(c);
            self.fields = names.iter().map(|n| n.to_vec()).collect();
        }))
    }

    /// Header lines that rebuild this state when fed to
    /// [`TsvHeader::header_line`] (every value byte `\xNN`-escaped, so
    /// they round-trip exactly).
    pub(super) fn to_header_lines(&self) -> Vec<Vec<u8>> {
        let escaped = |v: &[u8]| -> Vec<u8> {
            v.iter()
                .flat_map(|b| format!("\\x{b:02x}").into_bytes())
                .collect()
        };
        let line = |key: &str, value: &[u8]| -> Vec<u8> {
            let mut l = format!("#{key}").into_bytes();
            l.extend_from_slice(&self.sep);
            l.extend_from_slice(value);
            l
        };
        let mut out = vec![
            [&b"#separator "[..], &escaped(&self.sep)].concat(),
            line("set_separator", &escaped(&self.set_sep)),
            line("empty_field", &escaped(&self.empty)),
            line("unset_field", &escaped(&self.unset)),
        ];
        if self.columns.is_some() {
            out.push(line("fields", &self.fields.join(&self.sep[..])));
        }
        out
    }

    /// Parses one data line into `rec`.
    pub(super) fn parse_line(&mut self, line: &[u8], rec: &mut LogRecord) -> Result<(), LineSkip> {
        let Some(cols) = &self.columns else {
            return Err(LineSkip::NoHeader);
        };
        self.ranges.clear();
        if self.sep.len() == 1 {
            let mut start = 0;
            for i in memchr::memchr_iter(self.sep[0], line) {
                self.ranges.push((start, i));
                start = i + 1;
            }
            self.ranges.push((start, line.len()));
        } else {
            let mut start = 0;
            for i in memmem::find_iter(line, &self.sep) {
                if i < start {
                    continue; // overlapping match of a repetitive separator
                }
                self.ranges.push((start, i));
                start = i + self.sep.len();
            }
            self.ranges.push((start, line.len()));
        }
        if self.ranges.len() != cols.count {
            return Err(LineSkip::ColumnCount);
        }
        let field = |i: usize| -> &[u8] {
            let (s, e) = self.ranges[i];
            &line[s..e]
        };
        let unset = &self.unset[..];
        let value = |i: Option<usize>| -> Option<&[u8]> {
            let v = field(i?);
            (v != unset).then_some(v)
        };

        rec.clear();
        let ts = value(Some(cols.ts)).ok_or(LineSkip::BadTs)?;
        rec.ts = parse_secs(ts).ok_or(LineSkip::BadTs)?;
        if let Some(q) = value(Some(cols.query)) {
            unescape_into(q, &mut rec.query).map_err(|BadEscape| LineSkip::BadEscape)?;
            rec.has_query = true;
        }
        rec.qtype = match value(cols.qtype) {
            Some(v) => Some(parse_u16(v).ok_or(LineSkip::BadValue)?),
            None => value(cols.qtype_name).and_then(qtype_from_name),
        };
        rec.rcode = match value(cols.rcode) {
            Some(v) => Some(parse_u16(v).ok_or(LineSkip::BadValue)?),
            None => value(cols.rcode_name).and_then(rcode_from_name),
        };
        rec.rejected = match value(cols.rejected) {
            None | Some(b"F") => false,
            Some(b"T") => true,
            Some(_) => return Err(LineSkip::BadValue),
        };
        rec.opcode = match value(cols.opcode) {
            Some(v) => Some(parse_u16(v).ok_or(LineSkip::BadValue)?),
            None => None,
        };
        if let Some(answers) = value(Some(cols.answers))
            && answers != &self.empty[..]
        {
            for element in split(answers, &self.set_sep) {
                unescape_into(element, &mut rec.answer_bytes)
                    .map_err(|BadEscape| LineSkip::BadEscape)?;
                rec.end_answer();
            }
        }
        if let Some(ttls) = value(cols.ttls)
            && ttls != &self.empty[..]
        {
            for element in split(ttls, &self.set_sep) {
                rec.ttls.push(parse_ttl(element).ok_or(LineSkip::BadValue)?);
            }
        }
        Ok(())
    }
}

fn columns(names: &[&[u8]]) -> Result<Columns, String> {
    let find = |name: &str| names.iter().position(|n| *n == name.as_bytes());
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|n| find(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the field list lacks {} (a dns.log needs ts, query and answers; zeek-cut output without them cannot be imported)",
            missing.join(", ")
        ));
    }
    Ok(Columns {
        count: names.len(),
        ts: find("ts").unwrap_or(0),
        query: find("query").unwrap_or(0),
        answers: find("answers").unwrap_or(0),
        ttls: find("TTLs"),
        qtype: find("qtype"),
        qtype_name: find("qtype_name"),
        rcode: find("rcode"),
        rcode_name: find("rcode_name"),
        rejected: find("rejected"),
        opcode: find("opcode"),
    })
}

/// Splits on a (possibly multi-byte) separator.
fn split<'a>(data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        let found = match sep {
            [b] => memchr::memchr(*b, r),
            _ => memmem::find(r, sep),
        };
        match found {
            Some(i) if !sep.is_empty() => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            _ => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// A backslash sequence Zeek never writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BadEscape;

/// Undoes Zeek's TSV escaping (`\\` and `\xNN`), appending to `out`. Any
/// other backslash sequence is an error: Zeek never writes one.
pub(super) fn unescape_into(src: &[u8], out: &mut Vec<u8>) -> Result<(), BadEscape> {
    let Some(first) = memchr::memchr(b'\\', src) else {
        out.extend_from_slice(src);
        return Ok(());
    };
    out.extend_from_slice(&src[..first]);
    let mut i = first;
    while i < src.len() {
        let b = src[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match src.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hi = src.get(i + 2).and_then(|&c| hex(c)).ok_or(BadEscape)?;
                let lo = src.get(i + 3).and_then(|&c| hex(c)).ok_or(BadEscape)?;
                out.push(hi << 4 | lo);
                i += 4;
            }
            _ => return Err(BadEscape),
        }
    }
    Ok(())
}

fn unescape_header(value: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(value.len());
    unescape_into(value, &mut out).map_err(|BadEscape| {
        format!(
            "bad escape in header value {:?}",
            String::from_utf8_lossy(value)
        )
    })?;
    Ok(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whole seconds of a Zeek `time`/`interval` (`%.6f`), truncated.
pub(super) fn parse_secs(v: &[u8]) -> Option<u64> {
    let int_end = v.iter().position(|&b| b == b'.').unwrap_or(v.len());
    let (int, frac) = v.split_at(int_end);
    let digits_only = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if !int.is_empty() && int.len() <= 19 && digits_only(int) && digits_only(frac.get(1..)?) {
        return int.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
    }
    // Anything else Rust's float parser takes (exponents), if sane.
    let f: f64 = std::str::from_utf8(v).ok()?.parse().ok()?;
    (0.0..1.8e19).contains(&f).then_some(f as u64)
}

/// A TTL: seconds, truncated and clamped to u32.
pub(super) fn parse_ttl(v: &[u8]) -> Option<u32> {
    parse_secs(v).map(|s| s.min(u64::from(u32::MAX)) as u32)
}

pub(super) fn parse_u16(v: &[u8]) -> Option<u16> {
    if v.is_empty() || v.len() > 5 {
        return None;
    }
    let mut n: u32 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    u16::try_from(n).ok()
}

/// A query type from Zeek's `qtype_name` (used when `qtype` is absent).
pub(super) fn qtype_from_name(name: &[u8]) -> Option<u16> {
    if name == b"*" {
        return Some(255);
    }
    if let Some(n) = name.strip_prefix(b"query-") {
        return parse_u16(n);
    }
    crate::vocab::render::parse_rtype(std::str::from_utf8(name).ok()?).map(|t| t.to_int())
}

/// An RCODE from Zeek's `rcode_name` (used when `rcode` is absent).
pub(super) fn rcode_from_name(name: &[u8]) -> Option<u16> {
    if let Some(n) = name.strip_prefix(b"rcode-") {
        return parse_u16(n);
    }
    let text = std::str::from_utf8(name).ok()?;
    if text.eq_ignore_ascii_case("NOERROR") {
        return Some(0);
    }
    crate::vocab::rcode::parse_negative(text)
        .map(|r| r.to_int())
        .filter(|&r| r != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(lines: &[&str]) -> TsvHeader {
        let mut h = TsvHeader::default();
        for l in lines {
            h.header_line(l.as_bytes()).unwrap();
        }
        h
    }

    #[test]
    fn unescape_decodes_hex_and_backslash() {
        let mut out = Vec::new();
        unescape_into(br"a\x2cb\\c\x00", &mut out).unwrap();
        assert_eq!(out, b"a,b\\c\x00");
        out.clear();
        assert!(unescape_into(br"a\q", &mut out).is_err());
        assert!(unescape_into(br"a\x4", &mut out).is_err());
        assert!(unescape_into(b"a\\", &mut out).is_err());
    }

    #[test]
    fn custom_separators_and_markers() {
        let mut h = header(&[
            r"#separator \x7c\x7c",
            "#set_separator||;",
            "#empty_field||EMPTY",
            "#unset_field||NONE",
            "#fields||query||extra||answers||ts||TTLs||rcode",
        ]);
        let mut rec = LogRecord::default();
        h.parse_line(b"a.test||x||1.2.3.4;b\\x3bc||17.5||5.0;6.9||0", &mut rec)
            .unwrap();
        assert_eq!(rec.query, b"a.test");
        assert_eq!(rec.ts, 17);
        assert_eq!(rec.answer(0), b"1.2.3.4");
        assert_eq!(rec.answer(1), b"b;c");
        assert_eq!(rec.ttls, vec![5, 6]);
        assert_eq!(rec.rcode, Some(0));
        h.parse_line(b"NONE||x||EMPTY||1.0||EMPTY||NONE", &mut rec)
            .unwrap();
        assert!(!rec.has_query);
        assert_eq!(rec.answer_count(), 0);
        assert_eq!(rec.rcode, None);
        assert_eq!(
            h.parse_line(b"a||b||c||1.0||2.0", &mut rec),
            Err(LineSkip::ColumnCount)
        );
    }

    #[test]
    fn escaped_markers_are_values() {
        let mut h = header(&["#fields\tts\tquery\tanswers"]);
        let mut rec = LogRecord::default();
        h.parse_line(b"1.0\t\\x2d\t\\x28empty)", &mut rec).unwrap();
        assert_eq!(rec.query, b"-");
        assert_eq!(rec.answer(0), b"(empty)");
    }

    #[test]
    fn fields_without_required_columns_are_refused() {
        let mut h = TsvHeader::default();
        assert!(h.header_line(b"#fields\tuid\tquery").is_err());
        assert!(!h.has_fields());
        let mut rec = LogRecord::default();
        assert_eq!(h.parse_line(b"x\ty", &mut rec), Err(LineSkip::NoHeader));
        assert!(h.plain_field_line(b"uid\tquery").unwrap().is_err());
        assert!(h.plain_field_line(b"CHhAv\t1.2.3.4").is_none());
        assert!(h.plain_field_line(b"ts\tquery\tanswers").unwrap().is_ok());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_secs(b"1591367999.305988"), Some(1591367999));
        assert_eq!(parse_secs(b"4294967295.000000"), Some(4294967295));
        assert_eq!(parse_secs(b"XXXXXXXXXX.XXXXXX"), None);
        assert_eq!(parse_secs(b"1e3"), Some(1000));
        assert_eq!(parse_secs(b"-1.0"), None);
        assert_eq!(parse_secs(b""), None);
        assert_eq!(parse_ttl(b"99999999999.0"), Some(u32::MAX));
        assert_eq!(parse_u16(b"65535"), Some(65535));
        assert_eq!(parse_u16(b"65536"), None);
        assert_eq!(qtype_from_name(b"query-65534"), Some(65534));
        assert_eq!(qtype_from_name(b"AAAA"), Some(28));
        assert_eq!(qtype_from_name(b"*"), Some(255));
        assert_eq!(rcode_from_name(b"NXDOMAIN"), Some(3));
        assert_eq!(rcode_from_name(b"NOERROR"), Some(0));
        assert_eq!(rcode_from_name(b"rcode-23"), Some(23));
    }
}
