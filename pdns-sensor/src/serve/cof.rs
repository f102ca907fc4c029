//! COF objects (DNSDB's Common Output Format), written straight into a
//! response line.
//!
//! A wildcard or address-block answer is thousands of these, and rendering
//! them was most of such an answer's work: serialized through a derived
//! `Serialize` struct, every object built four or five `String`s (owner,
//! rdata, bailiwick, type) and escaped its seven keys as well as its
//! values — with the 32 KiB chunks' allocation, 40 % of the CPU of a
//! 10 000-record answer, against 16 % for reading the records from
//! RocksDB (profile of 2026-12-06). Here the keys are constants, the
//! values are rendered into buffers kept from one object to the next, and
//! each value is written as serde_json writes it (its integer formatting;
//! its escaping, skipped for the strings that need none, see [`string`]),
//! so the bytes are exactly those serde_json writes for the same object —
//! which the tests check against a `serde_json::Value` of it.
//!
//! Only DNSDB's own keys, in its (alphabetical) order: MISP's module
//! rejects any other. The value writers below serve Flex's objects too.

use crate::store::StoredRecord;
use crate::vocab::name;
use crate::vocab::render;
use crate::vocab::time::format_rfc3339;

/// Which COF an answer wants.
#[derive(Clone, Copy, Debug)]
pub(super) struct Form {
    /// An RRset answer: with `bailiwick` (the registrable domain of the
    /// owner), as DNSDB gives for RRsets.
    pub rrset: bool,
    /// Times as RFC 3339 strings instead of epoch seconds.
    pub humantime: bool,
    /// `rdata` as an array of one (v2, and v1 RRsets) instead of a string.
    pub rdata_array: bool,
    /// Wrapped as `{"obj": …}` (v2's SAF framing).
    pub in_obj: bool,
}

/// Writes COF objects, keeping its rendering buffers between them.
#[derive(Default)]
pub(super) struct CofWriter {
    owner: String,
    rdata: String,
    scratch: String,
}

impl CofWriter {
    /// Appends `r` as one COF object in `form` (no newline).
    pub(super) fn write(&mut self, out: &mut Vec<u8>, r: &StoredRecord, form: Form) {
        self.owner.clear();
        name::write_presentation(&r.owner, &mut self.owner);
        self.rdata.clear();
        render::write_rdata(r.rtype, &r.rdata, &mut self.rdata);
        if form.in_obj {
            out.extend_from_slice(b"{\"obj\":");
        }
        out.push(b'{');
        if form.rrset
            && let Some(domain) = psl::domain_str(self.owner.trim_end_matches('.'))
        {
            self.scratch.clear();
            self.scratch.push_str(domain);
            self.scratch.push('.');
            out.extend_from_slice(b"\"bailiwick\":");
            string(out, &self.scratch);
            out.push(b',');
        }
        out.extend_from_slice(b"\"count\":");
        number(out, r.value.count);
        out.extend_from_slice(b",\"rdata\":");
        if form.rdata_array {
            out.push(b'[');
            string(out, &self.rdata);
            out.push(b']');
        } else {
            string(out, &self.rdata);
        }
        out.extend_from_slice(b",\"rrname\":");
        string(out, &self.owner);
        out.extend_from_slice(b",\"rrtype\":");
        self.scratch.clear();
        render::write_rtype_name(r.rtype, &mut self.scratch);
        string(out, &self.scratch);
        out.extend_from_slice(b",\"time_first\":");
        time(out, r.value.first, form.humantime);
        out.extend_from_slice(b",\"time_last\":");
        time(out, r.value.last, form.humantime);
        out.push(b'}');
        if form.in_obj {
            out.push(b'}');
        }
    }
}

/// A JSON string, escaped as serde_json escapes it.
///
/// Names and rdata rarely hold a byte JSON escapes (a quote, a backslash,
/// a control character: serde_json leaves everything else, DEL and UTF-8
/// included, as it is), so such a string is copied between its quotes in
/// one go, and only the others go through serde_json's escaping, which
/// writes a string in pieces and was the largest single cost of rendering
/// a wildcard answer.
pub(super) fn string(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing JSON into memory cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Whether serde_json escapes any byte of `s`: a quote, a backslash or a
/// control character. Every byte is looked at, without stopping at the
/// first such byte, so that the compiler checks many bytes at a time
/// (the early-exit form went byte by byte).
fn needs_escape(s: &[u8]) -> bool {
    s.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// A JSON number, formatted by serde_json.
pub(super) fn number(out: &mut Vec<u8>, n: u64) {
    let _ = serde_json::to_writer(&mut *out, &n);
}

/// A time as DNSDB writes it: epoch seconds, or RFC 3339 with `humantime`.
pub(super) fn time(out: &mut Vec<u8>, t: u64, human: bool) {
    if human {
        string(out, &format_rfc3339(t));
    } else {
        number(out, t);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::vocab::Rtype;
    use crate::vocab::value::{Origin, Value as Aggregate};

    /// The object as a `serde_json::Value`, built key by key from the same
    /// record: what the API wrote before the writer, and what it must
    /// still write.
    fn expected(r: &StoredRecord, form: Form) -> String {
        let owner = name::presentation(&r.owner);
        let rdata = render::rdata(r.rtype, &r.rdata);
        let time = |t: u64| {
            if form.humantime {
                Value::String(format_rfc3339(t))
            } else {
                Value::from(t)
            }
        };
        let mut obj = Map::new();
        if form.rrset
            && let Some(domain) = psl::domain_str(owner.trim_end_matches('.'))
        {
            obj.insert("bailiwick".into(), json!(format!("{domain}.")));
        }
        obj.insert("count".into(), json!(r.value.count));
        obj.insert(
            "rdata".into(),
            if form.rdata_array {
                json!([rdata])
            } else {
                json!(rdata)
            },
        );
        obj.insert("rrname".into(), json!(owner));
        obj.insert("rrtype".into(), json!(render::rtype_name(r.rtype)));
        obj.insert("time_first".into(), time(r.value.first));
        obj.insert("time_last".into(), time(r.value.last));
        let obj = Value::Object(obj);
        if form.in_obj {
            json!({ "obj": obj }).to_string()
        } else {
            obj.to_string()
        }
    }

    /// The stored (reversed) encoding of a wire name of `labels`, each 1
    /// to 63 bytes of anything.
    pub(in crate::serve) fn owner(labels: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for label in labels {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        let mut owner = Vec::new();
        assert!(
            name::encode_wire(&wire, &mut owner),
            "labels of 1 to 63 bytes"
        );
        owner
    }

    fn forms() -> impl Iterator<Item = Form> {
        (0..16).map(|bits| Form {
            rrset: bits & 1 != 0,
            humantime: bits & 2 != 0,
            rdata_array: bits & 4 != 0,
            in_obj: bits & 8 != 0,
        })
    }

    fn record(owner: &str, rtype: Rtype, rdata: Vec<u8>, count: u64) -> StoredRecord {
        StoredRecord {
            owner: name::encode_presentation(owner).unwrap(),
            rtype,
            rdata,
            value: Aggregate {
                count,
                first: 1_700_000_000,
                last: 1_700_086_400,
                ttl: 300,
                origin: Origin::WIRE,
            },
        }
    }

    /// Every form, for records whose text needs escaping (a quote, a
    /// backslash and control bytes in TXT; odd bytes in the owner, which
    /// presentation form writes as `\ddd`), a name without a registrable
    /// domain, and one buffer reused across all of them.
    #[test]
    fn writes_what_serde_json_writes() {
        let records = [
            record("www.example.co.uk.", Rtype::A, vec![192, 0, 2, 1], 7),
            record(
                "a\\\"b\\092c\\000.example.com.",
                Rtype::TXT,
                b"\x0cq\"u\\o\x01t\x7f\xc3\xa9e".to_vec(),
                u64::MAX,
            ),
            record(
                "com.",
                Rtype::NS,
                b"\x01a\x0cgtld-servers\x03net\x00".to_vec(),
                1,
            ),
            record("example.", Rtype::from_int(65280), vec![1, 2, 3], 0),
        ];
        let mut writer = CofWriter::default();
        let mut out = Vec::new();
        for r in &records {
            for form in forms() {
                out.clear();
                writer.write(&mut out, r, form);
                assert_eq!(String::from_utf8(out.clone()).unwrap(), expected(r, form));
            }
        }
    }

    proptest! {
        /// Any string, quotes, backslashes and control characters among
        /// its characters, is written exactly as serde_json writes it.
        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(
            s in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}é€😀]){0,24}",
        ) {
            let mut out = b"[".to_vec();
            string(&mut out, &s);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("[{}", serde_json::to_string(&s).unwrap())
            );
        }

        /// Arbitrary owners (any bytes in up to four labels) and rdata (of
        /// types rendered by hand and by `domain`, well-formed or not).
        #[test]
        fn any_record_writes_what_serde_json_writes(
            labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..12), 0..4),
            rtype in prop::sample::select(vec![1u16, 2, 5, 15, 16, 28, 33, 43, 65, 99, 257, 65280]),
            rdata in proptest::collection::vec(any::<u8>(), 0..40),
            count in any::<u64>(),
            first in 0u64..4_000_000_000,
            bits in 0u8..16,
        ) {
            let owner = owner(&labels);
            let r = StoredRecord {
                owner,
                rtype: Rtype::from_int(rtype),
                rdata,
                value: Aggregate { count, first, last: first + 1, ttl: 0, origin: Origin::WIRE },
            };
            let form = Form {
                rrset: bits & 1 != 0,
                humantime: bits & 2 != 0,
                rdata_array: bits & 4 != 0,
                in_obj: bits & 8 != 0,
            };
            let mut out = b"left as it was,".to_vec();
            CofWriter::default().write(&mut out, &r, form);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("left as it was,{}", expected(&r, form))
            );
        }
    }
}
