//! Zeek's JSON-lines format (`LogAscii::use_json=T`).
//!
//! One object per line, keys named as in `#fields`. Unset fields are
//! omitted (or `null` with `json_include_unset_fields`); containers are
//! arrays. `ts` is epoch seconds by default, but `LogAscii::json_timestamps`
//! can make it integer milliseconds (told apart by size: more than 10^11
//! is taken as milliseconds, i.e. after 1973 in ms) or an ISO 8601 string.
//! Strings use the default `HEX` escape policy: control and invalid bytes
//! appear as the literal text `\xNN`, decoded here; a backslash not
//! followed by `x` and two hex digits (or another backslash) is kept as is.

use std::borrow::Cow;

use serde::Deserialize;

use super::tsv::{qtype_from_name, rcode_from_name};
use super::{LineSkip, LogRecord};

#[derive(Deserialize)]
#[serde(untagged)]
enum Ts<'a> {
    Number(f64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

#[derive(Deserialize)]
struct Line<'a> {
    ts: Option<Ts<'a>>,
    #[serde(borrow)]
    query: Option<Cow<'a, str>>,
    qtype: Option<u16>,
    #[serde(borrow)]
    qtype_name: Option<Cow<'a, str>>,
    rcode: Option<u16>,
    #[serde(borrow)]
    rcode_name: Option<Cow<'a, str>>,
    rejected: Option<bool>,
    opcode: Option<u16>,
    #[serde(borrow)]
    answers: Option<Vec<Cow<'a, str>>>,
    #[serde(rename = "TTLs")]
    ttls: Option<Vec<Option<f64>>>,
}

/// Parses one JSON line into `rec`.
pub(super) fn parse_line(line: &[u8], rec: &mut LogRecord) -> Result<(), LineSkip> {
    let parsed: Line<'_> = serde_json::from_slice(line).map_err(|e| {
        if e.is_data() {
            LineSkip::BadValue
        } else {
            LineSkip::BadJson
        }
    })?;
    rec.clear();
    rec.ts = match parsed.ts.ok_or(LineSkip::BadTs)? {
        Ts::Number(f) if (0.0..1.8e19).contains(&f) => {
            if f > 1e11 {
                (f / 1000.0) as u64
            } else {
                f as u64
            }
        }
        Ts::Number(_) => return Err(LineSkip::BadTs),
        Ts::Text(t) => crate::vocab::time::parse(&t).map_err(|_| LineSkip::BadTs)?,
    };
    if let Some(q) = parsed.query {
        unescape_lenient(q.as_bytes(), &mut rec.query);
        rec.has_query = true;
    }
    rec.qtype = parsed
        .qtype
        .or_else(|| qtype_from_name(parsed.qtype_name.as_deref()?.as_bytes()));
    rec.rcode = parsed
        .rcode
        .or_else(|| rcode_from_name(parsed.rcode_name.as_deref()?.as_bytes()));
    rec.rejected = parsed.rejected.unwrap_or(false);
    rec.opcode = parsed.opcode;
    for a in parsed.answers.iter().flatten() {
        unescape_lenient(a.as_bytes(), &mut rec.answer_bytes);
        rec.end_answer();
    }
    for t in parsed.ttls.iter().flatten() {
        let t = t.ok_or(LineSkip::BadValue)?;
        if !(t.is_finite() && t >= 0.0) {
            return Err(LineSkip::BadValue);
        }
        rec.ttls.push(t.min(f64::from(u32::MAX)) as u32);
    }
    Ok(())
}

/// Decodes the `\xNN` and `\\` of the HEX escape policy; anything else is
/// kept literally.
fn unescape_lenient(src: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    if super::tsv::unescape_into(src, out).is_err() {
        out.truncate(start);
        let mut i = 0;
        while i < src.len() {
            if src[i] == b'\\' {
                if src.get(i + 1) == Some(&b'\\') {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                if src.get(i + 1) == Some(&b'x')
                    && let Some(byte) = src
                        .get(i + 2..i + 4)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
            out.push(src[i]);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_example_parses() {
        let line = br#"{"ts":1774911641.803041,"uid":"CHhAvVGS1DHFjwGM9","id.orig_h":"172.17.0.2","query":"zeek.org","qclass":1,"qtype":1,"qtype_name":"A","rcode":0,"rcode_name":"NOERROR","AA":false,"answers":["192.0.78.150","192.0.78.212"],"TTLs":[60.0,60.0],"rejected":false,"opcode":0}"#;
        let mut rec = LogRecord::default();
        parse_line(line, &mut rec).unwrap();
        assert_eq!(rec.ts, 1774911641);
        assert_eq!(rec.query, b"zeek.org");
        assert_eq!(rec.qtype, Some(1));
        assert_eq!(rec.answer(1), b"192.0.78.212");
        assert_eq!(rec.ttls, vec![60, 60]);
    }

    #[test]
    fn timestamps_and_escapes() {
        let mut rec = LogRecord::default();
        parse_line(
            br#"{"ts":"2019-08-27T21:00:00.058798Z","query":"a\\x00b","answers":["x\\y"]}"#,
            &mut rec,
        )
        .unwrap();
        assert_eq!(rec.ts, 1566939600);
        assert_eq!(rec.query, b"a\x00b");
        assert_eq!(rec.answer(0), b"x\\y");
        parse_line(br#"{"ts":1566939600058,"query":"a"}"#, &mut rec).unwrap();
        assert_eq!(rec.ts, 1566939600);
        assert_eq!(parse_line(b"{", &mut rec), Err(LineSkip::BadJson));
        assert_eq!(
            parse_line(br#"{"ts":"soon","query":"a"}"#, &mut rec),
            Err(LineSkip::BadTs)
        );
        assert_eq!(
            parse_line(br#"{"ts":1,"qtype":"A"}"#, &mut rec),
            Err(LineSkip::BadValue)
        );
    }
}
