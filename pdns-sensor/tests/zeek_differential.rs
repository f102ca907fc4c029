//! Differential test against Zeek: for every pcap ↔ dns.log pair in
//! `testdata/pairs.tsv` where Zeek and we record the same thing, every
//! answer Zeek logged for a response is in our store, reachable from the
//! logged query through the CNAME chain we stored hop by hop, with the count
//! Zeek implies (the number of log lines carrying it) and the TTL Zeek
//! paired with it. NXDOMAIN and no-data lines must appear in our negative
//! table.
//!
//! Zeek logs neither owner nor type per answer and renders each type its own
//! way; `zeek_string` reproduces that rendering from our stored wire rdata.
//! Pairs left out, and why:
//! - the tunnel pairs: their answers travel in tunnels the decoder does not
//!   open (GRE in UDP, PPTP, GTP) or they hold queries only (GRE, triple
//!   VXLAN); DNS in the tunnels it opens is compared with tshark and in
//!   `tunnels.rs`;
//! - the two `dnssec/*.log` baselines: not stock Zeek output (a test script
//!   rewrites `answers`);
//! - lines with opcode UPDATE/NOTIFY: those sections are not answers, and we
//!   deliberately store nothing from them (asserted below).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use pdns_sensor::store::{Filter, Selector, Store, StoredRecord};
use pdns_sensor::vocab::name;

/// One dns.log line, reduced to what we compare.
#[derive(Debug, Default)]
struct LogLine {
    query: Option<String>,
    qtype_name: Option<String>,
    rcode_name: Option<String>,
    opcode: Option<u64>,
    answers: Vec<String>,
    ttls: Vec<f64>,
}

/// Undoes Zeek's TSV escaping (`\xNN`, `\\`) after splitting.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_tsv(text: &str) -> Vec<LogLine> {
    let mut fields: Vec<String> = Vec::new();
    let (mut unset, mut empty, mut set_sep) =
        ("-".to_string(), "(empty)".to_string(), ",".to_string());
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.splitn(2, '\t');
            let key = parts.next().unwrap_or("");
            let value = parts.next().unwrap_or("");
            match key {
                "fields" => fields = value.split('\t').map(str::to_string).collect(),
                "unset_field" => unset = value.to_string(),
                "empty_field" => empty = value.to_string(),
                "set_separator" => set_sep = value.to_string(),
                _ => {}
            }
            continue;
        }
        assert!(!fields.is_empty(), "data line before #fields");
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), fields.len(), "column count in {line:?}");
        let get = |name: &str| -> Option<&str> {
            let i = fields.iter().position(|f| f == name)?;
            let v = cols[i];
            (v != unset).then_some(v)
        };
        let list = |v: Option<&str>| -> Vec<String> {
            match v {
                None => vec![],
                Some(v) if v == empty => vec![],
                Some(v) => v.split(set_sep.as_str()).map(unescape).collect(),
            }
        };
        out.push(LogLine {
            query: get("query").map(unescape),
            qtype_name: get("qtype_name").map(str::to_string),
            rcode_name: get("rcode_name").map(str::to_string),
            opcode: get("opcode").and_then(|v| v.parse().ok()),
            answers: list(get("answers")),
            ttls: list(get("TTLs"))
                .iter()
                .map(|t| t.parse().unwrap())
                .collect(),
        });
    }
    out
}

fn parse_json(text: &str) -> Vec<LogLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            LogLine {
                query: s("query"),
                qtype_name: s("qtype_name"),
                rcode_name: s("rcode_name"),
                opcode: v.get("opcode").and_then(|x| x.as_u64()),
                answers: v
                    .get("answers")
                    .and_then(|a| a.as_array())
                    .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default(),
                ttls: v
                    .get("TTLs")
                    .and_then(|a| a.as_array())
                    .map(|a| a.iter().map(|x| x.as_f64().unwrap()).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// A wire-format name as Zeek prints it: lowercase, no trailing dot.
fn wire_name(wire: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(&wire[pos + 1..pos + 1 + len as usize]).to_lowercase());
        pos += 1 + len as usize;
    }
    labels.join(".")
}

fn char_strings(wire: &[u8], tag: &str) -> String {
    let mut parts = Vec::new();
    let mut pos = 0;
    while pos < wire.len() {
        let len = wire[pos] as usize;
        let s = String::from_utf8_lossy(&wire[pos + 1..pos + 1 + len]);
        parts.push(format!("{tag} {len} {s}"));
        pos += 1 + len;
    }
    parts.join(" ")
}

/// Our record rendered the way Zeek's base scripts put it in `answers`
/// (`None` for types Zeek does not log).
fn zeek_string(r: &StoredRecord) -> Option<String> {
    let w = &r.rdata[..];
    Some(match r.rtype.to_int() {
        1 => Ipv4Addr::from(<[u8; 4]>::try_from(w).ok()?).to_string(),
        28 => Ipv6Addr::from(<[u8; 16]>::try_from(w).ok()?).to_string(),
        2 | 5 | 12 | 6 => wire_name(w),
        15 => wire_name(&w[2..]),
        33 => wire_name(&w[6..]),
        16 => char_strings(w, "TXT"),
        99 => char_strings(w, "SPF"),
        46 => {
            let signer = wire_name(&w[18..]);
            format!(
                "RRSIG {} {}",
                u16::from_be_bytes([w[0], w[1]]),
                if signer.is_empty() {
                    "<Root>".to_string()
                } else {
                    signer
                }
            )
        }
        48 => format!("DNSKEY {}", w[3]),
        43 => format!("DS {} {}", w[2], w[3]),
        47 => format!(
            "NSEC {} {}",
            name::presentation(&r.owner).trim_end_matches('.'),
            wire_name(w)
        ),
        50 => "NSEC3".to_string(),
        51 => "NSEC3PARAM".to_string(),
        44 => format!(
            "SSHFP: {}",
            w[2..]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        29 => format!("LOC:  {} {} {}", w[1], w[2], w[3]),
        65534 => "BIND9 signing signal".to_string(),
        13 | 257 | 64 | 65 | 11 => return None,
        n => format!("<unknown type={n}>"),
    })
}

fn owner_key(name: &str) -> Vec<u8> {
    name::encode_presentation(if name.is_empty() { "." } else { name }).unwrap()
}

/// Our records owned by `query` or by any name its stored CNAMEs lead to.
fn chain_records(store: &Store, query: &str) -> Vec<StoredRecord> {
    let filter = Filter::default();
    let mut names = vec![owner_key(query)];
    let mut out: Vec<StoredRecord> = Vec::new();
    let mut i = 0;
    while i < names.len() && i < 16 {
        let sel = Selector::Owner {
            name: names[i].clone(),
            wildcard: false,
        };
        for r in store.records(&sel, &filter) {
            let r = r.unwrap();
            if r.rtype == pdns_sensor::vocab::Rtype::CNAME {
                let target = owner_key(&wire_name(&r.rdata));
                if !names.contains(&target) {
                    names.push(target);
                }
            }
            out.push(r);
        }
        i += 1;
    }
    out
}

/// (owner, type, rdata) of a stored record.
type RecordId = (Vec<u8>, u16, Vec<u8>);
/// (sightings Zeek implies, our count, TTLs Zeek paired with it).
type Expectation = (u64, u64, Vec<u32>);

fn check_pair(log: &Path, pcap: &Path, ports: &[u16]) -> usize {
    let text = std::fs::read_to_string(log).unwrap();
    let lines = if log.to_string_lossy().ends_with(".json.log") {
        parse_json(&text)
    } else {
        parse_tsv(&text)
    };
    let ingested =
        common::ingest_with(&[pcap.to_path_buf()], |a| a.pipeline.ports = ports.to_vec());
    let store = ingested.store();
    let label = log.display().to_string();

    // record identity -> (expected count, our count, ttl pairings)
    let mut expected: HashMap<RecordId, Expectation> = HashMap::new();
    let mut expected_negative: BTreeMap<(String, Option<String>, String), u64> = BTreeMap::new();
    let mut checked = 0;
    for line in &lines {
        if line.opcode.is_some_and(|o| o != 0) || line.rcode_name.is_none() {
            continue;
        }
        let Some(query) = line.query.as_deref() else {
            continue;
        };
        if line.answers.is_empty() {
            let rcode = line.rcode_name.clone().unwrap();
            // Zeek logs no answer text for some types: an empty `answers`
            // then does not mean the answer section was empty.
            let unlogged = [
                "TKEY", "TSIG", "HINFO", "CAA", "SVCB", "HTTPS", "WKS", "OPT", "ANY", "*",
            ];
            if rcode == "NOERROR"
                && line
                    .qtype_name
                    .as_deref()
                    .is_none_or(|t| unlogged.contains(&t))
            {
                continue;
            }
            let rcode = if rcode == "NOERROR" {
                "NODATA".to_string()
            } else {
                rcode
            };
            *expected_negative
                .entry((query.to_lowercase(), line.qtype_name.clone(), rcode))
                .or_default() += 1;
            continue;
        }
        let ours = chain_records(&store, query);
        let mut wanted: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (i, a) in line.answers.iter().enumerate() {
            wanted
                .entry(a.as_str())
                .or_default()
                .push(line.ttls.get(i).map_or(u32::MAX, |t| *t as u32));
        }
        for (answer, ttls) in wanted {
            let candidates: Vec<&StoredRecord> = ours
                .iter()
                .filter(|r| zeek_string(r).as_deref() == Some(answer))
                .collect();
            assert!(
                candidates.len() >= ttls.len(),
                "{label}: query {query}: Zeek logged answer {answer:?} x{} but we stored {} such record(s); ours: {:#?}",
                ttls.len(),
                candidates.len(),
                ours.iter()
                    .map(|r| (name::presentation(&r.owner), r.rtype, zeek_string(r)))
                    .collect::<Vec<_>>()
            );
            checked += 1;
            if candidates.len() == ttls.len() {
                for (r, ttl) in candidates.iter().zip(ttls) {
                    let e = expected
                        .entry((r.owner.clone(), r.rtype.to_int(), r.rdata.clone()))
                        .or_insert((0, r.value.count, Vec::new()));
                    e.0 += 1;
                    e.2.push(ttl);
                    let _ = r;
                }
            }
        }
    }
    for ((owner, rtype, _), (want, got, ttls)) in &expected {
        assert_eq!(
            want,
            got,
            "{label}: {} type {rtype}: Zeek implies {want} sightings, we counted {got}",
            name::presentation(owner)
        );
        let _ = ttls;
    }
    // TTLs: where a record was seen once, its TTL is the one Zeek paired.
    for ((owner, rtype, rdata), (want, _, ttls)) in &expected {
        if *want == 1 && ttls[0] != u32::MAX {
            let sel = Selector::Owner {
                name: owner.clone(),
                wildcard: false,
            };
            let r = store
                .records(&sel, &Filter::default())
                .map(Result::unwrap)
                .find(|r| r.rtype.to_int() == *rtype && &r.rdata == rdata)
                .unwrap();
            assert_eq!(
                r.value.ttl,
                ttls[0],
                "{label}: TTL of {} type {rtype}",
                name::presentation(owner)
            );
        }
    }
    let negatives = common::negatives(&store);
    for ((query, qtype, rcode), want) in &expected_negative {
        let q = name::presentation(&owner_key(query));
        let got: u64 = negatives
            .iter()
            .filter(|(n, t, rc, _)| {
                *n == q && qtype.as_ref().is_none_or(|qt| qt == t) && rc == rcode
            })
            .map(|n| n.3)
            .sum();
        assert_eq!(
            got, *want,
            "{label}: negative answer {q} {qtype:?} {rcode}: ours {negatives:?}"
        );
        checked += 1;
    }
    checked
}

#[test]
fn stores_every_answer_zeek_logged() {
    let data = common::testdata();
    let pairs = std::fs::read_to_string(data.join("pairs.tsv")).unwrap();
    let mut compared = 0;
    let mut total_checks = 0;
    for row in pairs.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (log, pcap) = (cols[0], cols[1]);
        let skip = log == "-"
            || pcap.contains("/tunnels/")
            || log.contains("dns.dnssec/")
            || log.ends_with(".cut");
        if skip {
            continue;
        }
        let ports: &[u16] = if pcap.contains("mdns") {
            &[53, 5353]
        } else {
            &[53]
        };
        total_checks += check_pair(&data.join(log), &data.join(pcap), ports);
        compared += 1;
    }
    eprintln!("compared {compared} pairs, {total_checks} answers and negative answers");
    assert!(compared >= 20, "compared only {compared} pairs");
    assert!(total_checks >= 40, "only {total_checks} answers compared");
}

#[test]
fn update_and_notify_messages_store_nothing() {
    for pcap in [
        "zeek/dns/dynamic-update.pcap",
        "zeek/dns/dns_notify2.pcap",
        "zeek/dns-inverse-query.pcap",
    ] {
        let ingested = common::ingest(&[common::pcap(pcap)]);
        let store = ingested.store();
        let records = common::all_records(&store);
        // dns_notify2 also carries one ordinary REFUSED query exchange.
        assert!(records.is_empty(), "{pcap}: {records:?}");
    }
}
