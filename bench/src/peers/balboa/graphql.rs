//! What balboa's GraphQL frontend is asked and how its answers are read:
//! the `entries(rrname)` query, the records of one owner as balboa keys
//! them, and the types its schema can name. Kept apart so the parsing of
//! captured answers is tested without a running balboa.

use std::collections::HashMap;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::FRONTEND_PORT;
use super::http::NsHttp;

/// The `RRType` enum of balboa 2.0.0's GraphQL schema. balboa stores
/// records of any type, but answers an entry of another type (HTTPS,
/// SVCB, `TYPE65280`, ...) with `rrtype: null` and a GraphQL error beside
/// the data (still HTTP 200).
const BALBOA_RRTYPES: [&str; 46] = [
    "A",
    "A6",
    "AAAA",
    "AFSDB",
    "ALIAS",
    "APL",
    "AXFR",
    "CAA",
    "CDNSKEY",
    "CDS",
    "CERT",
    "CNAME",
    "DHCID",
    "DLV",
    "DNAME",
    "DNSKEY",
    "DS",
    "HINFO",
    "HIP",
    "IPSECKEY",
    "IXFR",
    "KEY",
    "KX",
    "LOC",
    "MX",
    "NAPTR",
    "NS",
    "NSEC",
    "NSEC3",
    "NSEC3PARAM",
    "OPENPGPKEY",
    "OPT",
    "PTR",
    "RRSIG",
    "RP",
    "SIG",
    "SOA",
    "SPF",
    "SRV",
    "SSHFP",
    "TA",
    "TKEY",
    "TLSA",
    "TSIG",
    "TXT",
    "URI",
];

/// How a type appears in balboa's answers (`null` for types outside its
/// enum, shown as this marker).
pub(super) const UNNAMED: &str = "(type unnamed by balboa)";

pub(super) fn balboa_type(rtype: &str) -> &str {
    if BALBOA_RRTYPES.contains(&rtype) {
        rtype
    } else {
        UNNAMED
    }
}

/// A record of one owner as balboa keys it: (rrtype, rdata without the
/// trailing dot) → count, first and last second.
pub(super) type Records = HashMap<(String, String), Seen>;

/// How often a record was seen, and its first and last second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Seen {
    pub(super) count: u64,
    pub(super) first: u64,
    pub(super) last: u64,
}

impl Seen {
    /// Nothing seen yet: where a record's sum starts.
    pub(super) const NONE: Seen = Seen {
        count: 0,
        first: u64::MAX,
        last: 0,
    };

    /// One more line at second `ts`.
    pub(super) fn add(&mut self, ts: u64) {
        self.merge(Seen {
            count: 1,
            first: ts,
            last: ts,
        });
    }

    /// Folds in another row of the same key.
    pub(super) fn merge(&mut self, other: Seen) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

pub(super) fn sorted(r: &Records) -> Vec<(&(String, String), &Seen)> {
    let mut v: Vec<_> = r.iter().collect();
    v.sort();
    v
}

/// The POST body of a GraphQL `entries(rrname)` query.
pub(super) fn graphql_body(rrname: &str) -> String {
    let name = serde_json::to_string(rrname).expect("string serialises");
    serde_json::json!({
        "query": format!(
            "{{ entries(rrname: {name}) {{ rrname rrtype rdata count time_first time_last }} }}"
        )
    })
    .to_string()
}

/// balboa's records for `owner` (every sensor ID).
pub(super) fn balboa_records(http: &NsHttp, owner: &str) -> Result<Records> {
    let (status, body) =
        http.request(FRONTEND_PORT, "POST", "/query", Some(graphql_body(owner)))?;
    ensure!(status == 200, "balboa GraphQL answered {status}: {body}");
    parse_entries(owner, &body)
}

/// The records of `owner` in a GraphQL `entries` answer.
fn parse_entries(owner: &str, body: &str) -> Result<Records> {
    let v: Value = serde_json::from_str(body).context("balboa GraphQL answer")?;
    // Entries of a type outside balboa's enum come with `rrtype: null`
    // and one error each; any other error is a failure.
    let errors = v["errors"].as_array().map_or(&[][..], Vec::as_slice);
    if let Some(e) = errors.iter().find(|e| {
        !e["message"]
            .as_str()
            .is_some_and(|m| m.contains("Expected type RRType"))
    }) {
        bail!("balboa GraphQL error: {e}");
    }
    let entries = v["data"]["entries"]
        .as_array()
        .with_context(|| format!("no entries in balboa's answer {body}"))?;
    let mut records = Records::new();
    for e in entries {
        if e["rrname"].as_str() != Some(owner) {
            continue;
        }
        let s = |k: &str| {
            e[k].as_str()
                .map(str::to_string)
                .with_context(|| format!("balboa entry without {k}"))
        };
        let u = |k: &str| {
            e[k].as_u64()
                .with_context(|| format!("balboa entry without {k}"))
        };
        let seen = Seen {
            count: u("count")?,
            first: u("time_first")?,
            last: u("time_last")?,
        };
        let rtype = match &e["rrtype"] {
            Value::Null => UNNAMED.to_string(),
            _ => s("rrtype")?,
        };
        records
            .entry((rtype, s("rdata")?))
            .or_insert(Seen::NONE)
            .merge(seen);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_body_is_json_with_a_quoted_name() {
        let b = graphql_body("www.example.com");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(
            v["query"],
            "{ entries(rrname: \"www.example.com\") { rrname rrtype rdata count time_first time_last } }"
        );
    }

    /// An answer of balboa 2.0.0 (captured) for a name with an A, an HTTPS
    /// and a TYPE65280 record.
    #[test]
    fn answers_with_unnamed_types_parse() {
        let body = r#"{"errors":[{"message":"Invalid value HTTPS.\nExpected type RRType, found HTTPS.","path":["entries",1,"rrtype"]},{"message":"Invalid value TYPE65280.\nExpected type RRType, found TYPE65280.","path":["entries",2,"rrtype"]}],"data":{"entries":[{"rrname":"www.example.com","rrtype":"A","rdata":"93.184.216.34","count":2,"time_first":1700000000,"time_last":1700000005},{"rrname":"www.example.com","rrtype":null,"rdata":"1 . alpn=h2","count":1,"time_first":1700000001,"time_last":1700000001},{"rrname":"www.example.com","rrtype":null,"rdata":"\\# 2 dead","count":1,"time_first":1700000001,"time_last":1700000001}]}}"#;
        let r = parse_entries("www.example.com", body).unwrap();
        let key = |t: &str, d: &str| (t.to_string(), d.to_string());
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[&key("A", "93.184.216.34")],
            Seen {
                count: 2,
                first: 1_700_000_000,
                last: 1_700_000_005
            }
        );
        assert_eq!(r[&key(UNNAMED, "1 . alpn=h2")].count, 1);
        assert_eq!(r[&key(UNNAMED, "\\# 2 dead")].count, 1);
        assert_eq!(balboa_type("HTTPS"), UNNAMED);
        let mut s = Seen::NONE;
        s.add(7);
        s.add(5);
        s.merge(r[&key("A", "93.184.216.34")]);
        assert_eq!(
            s,
            Seen {
                count: 4,
                first: 5,
                last: 1_700_000_005
            }
        );
        assert_eq!(balboa_type("AAAA"), "AAAA");
        // Other errors fail.
        let bad = r#"{"errors":[{"message":"Cannot query field \"x\""}],"data":null}"#;
        assert!(parse_entries("www.example.com", bad).is_err());
        assert!(
            parse_entries("x", r#"{"data":{"entries":[]}}"#)
                .unwrap()
                .is_empty()
        );
    }
}
