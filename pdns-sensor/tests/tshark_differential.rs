//! Differential test against tshark, an independent DNS decoder: for every
//! capture in `testdata/pcap`, the answer-section records of every DNS
//! response tshark decodes on port 53 — over UDP or reassembled TCP,
//! fragmented or not, any link type — must be exactly the records we store,
//! with the same counts (responses carrying them) and the same first/last
//! capture times. Compared for A, AAAA, CNAME, NS, PTR and MX, whose rdata
//! tshark prints in a form we can match exactly.
//!
//! DNS inside the tunnels the decoder opens (VXLAN, Geneve, GRE, ERSPAN,
//! nested) is compared like any other. Frames tshark marks malformed, cut
//! short by the snap length, or reaches only through a tunnel we do not open
//! (Teredo, GTP, GRE in UDP, PPTP's PPP in GRE, an ICMP quote) are out of
//! scope: we reject malformed or truncated messages whole where tshark shows
//! what it could read. A file with such frames is compared only if none of
//! them is a port-53 DNS response.
//! tshark is installed by `cargo xtask setup`; without it this test fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value as Json;

type Key = (String, u16, String);
/// (count, first, last)
type Seen = (u64, u64, u64);

fn as_list(v: &Json) -> Vec<&Json> {
    match v {
        Json::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn field<'a>(obj: &'a Json, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(|v| match v {
        Json::Array(a) => a.first().and_then(Json::as_str),
        v => v.as_str(),
    })
}

fn normalise_name(n: &str) -> String {
    if n == "<Root>" {
        ".".to_string()
    } else {
        format!("{}.", n.to_lowercase().trim_end_matches('.'))
    }
}

/// What tshark decodes from a capture, or `None` if it is out of scope.
fn tshark_records(pcap: &Path) -> Option<BTreeMap<Key, Seen>> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-T", "json", "--no-duplicate-keys", "-Y", "dns.flags.response == 1 && dns.flags.opcode == 0 && (udp.port == 53 || tcp.port == 53)"])
        .output()
        .expect("tshark must be installed (cargo xtask setup installs it)");
    assert!(
        out.status.success() || !out.stdout.is_empty(),
        "tshark failed on {}",
        pcap.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Some(BTreeMap::new());
    }
    let packets: Json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("tshark JSON for {}: {e}", pcap.display()));
    let mut records: BTreeMap<Key, Seen> = BTreeMap::new();
    for packet in packets.as_array().unwrap() {
        let layers = &packet["_source"]["layers"];
        let protocols = field(&layers["frame"], "frame.protocols").unwrap_or("");
        let cut_short =
            field(&layers["frame"], "frame.len") != field(&layers["frame"], "frame.cap_len");
        if !through_opened_tunnels(protocols)
            || cut_short
            || layers.get("_ws.malformed").is_some()
            || protocols.contains("_ws.malformed")
        {
            return None;
        }
        let ts: f64 = field(&layers["frame"], "frame.time_epoch")
            .unwrap()
            .parse()
            .unwrap();
        let ts = ts.floor() as u64;
        for dns in as_list(&layers["dns"]) {
            if dns.get("_ws.expert").is_some() {
                return None;
            }
            let Some(answers) = dns.get("Answers") else {
                continue;
            };
            let mut in_message: Vec<Key> = Vec::new();
            for (_, rr) in answers.as_object().unwrap() {
                for rr in as_list(rr) {
                    let name = normalise_name(field(rr, "dns.resp.name").unwrap());
                    let rtype: u16 = field(rr, "dns.resp.type").unwrap().parse().unwrap();
                    let class = field(rr, "dns.resp.class").unwrap_or("0x0001");
                    if class != "0x0001" {
                        continue;
                    }
                    let data = match rtype {
                        1 => field(rr, "dns.a").map(str::to_string),
                        28 => field(rr, "dns.aaaa").map(str::to_string),
                        5 => field(rr, "dns.cname").map(normalise_name),
                        2 => field(rr, "dns.ns").map(normalise_name),
                        12 => field(rr, "dns.ptr.domain_name").map(normalise_name),
                        15 => Some(format!(
                            "{} {}",
                            field(rr, "dns.mx.preference").unwrap(),
                            normalise_name(field(rr, "dns.mx.mail_exchange").unwrap())
                        )),
                        _ => None,
                    };
                    if let Some(data) = data {
                        let key = (name, rtype, data);
                        if !in_message.contains(&key) {
                            in_message.push(key);
                        }
                    }
                }
            }
            for key in in_message {
                let e = records.entry(key).or_insert((0, u64::MAX, 0));
                e.0 += 1;
                e.1 = e.1.min(ts);
                e.2 = e.2.max(ts);
            }
        }
    }
    Some(records)
}

/// Whether every layer of a frame's protocol chain up to its last IP
/// header is one the decoder goes through: link layers, IP, and the
/// tunnels it opens (VXLAN or Geneve in UDP, GRE, ERSPAN).
fn through_opened_tunnels(protocols: &str) -> bool {
    let layers: Vec<&str> = protocols.split(':').collect();
    let Some(last_ip) = layers.iter().rposition(|p| *p == "ip" || *p == "ipv6") else {
        return false;
    };
    let path = &layers[..last_ip];
    let opened = |p: &&str| {
        matches!(
            *p,
            "eth"
                | "ethertype"
                | "vlan"
                | "sll"
                | "null"
                | "raw"
                | "ip"
                | "ipv6"
                | "gre"
                | "erspan"
                | "vxlan"
                | "geneve"
        ) || *p == "udp"
    };
    // UDP only as the carrier of VXLAN or Geneve (not GRE in UDP, Teredo...).
    let udp_ok = path
        .iter()
        .enumerate()
        .filter(|(_, p)| **p == "udp")
        .all(|(i, _)| matches!(path.get(i + 1), Some(&"vxlan") | Some(&"geneve")));
    path.iter().all(opened) && udp_ok
}

fn our_records(pcap: &Path) -> BTreeMap<Key, Seen> {
    let ingested = common::ingest(&[pcap.to_path_buf()]);
    let store = ingested.store();
    common::all_records(&store)
        .into_iter()
        .filter_map(|(name, rtype, data, count, _ttl, first, last)| {
            let t = pdns_sensor::vocab::render::parse_rtype(&rtype)
                .unwrap()
                .to_int();
            matches!(t, 1 | 28 | 5 | 2 | 12 | 15).then(|| ((name, t, data), (count, first, last)))
        })
        .collect()
}

#[test]
fn every_capture_matches_tshark() {
    let mut compared = 0;
    let mut records = 0;
    let mut out_of_scope = Vec::new();
    let mut failures = Vec::new();
    for pcap in common::all_pcaps() {
        let Some(expected) = tshark_records(&pcap) else {
            out_of_scope.push(pcap.file_name().unwrap().to_string_lossy().into_owned());
            continue;
        };
        let ours = our_records(&pcap);
        let missing: Vec<_> = expected
            .iter()
            .filter(|(k, v)| ours.get(*k) != Some(*v))
            .collect();
        let extra: Vec<_> = ours
            .iter()
            .filter(|(k, _)| !expected.contains_key(*k))
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            failures.push(format!(
                "{}:\n tshark has, we differ: {:?}\n ours: {:?}\n we have, tshark does not: {extra:?}",
                pcap.display(),
                missing,
                missing.iter().map(|(k, _)| ours.get(*k)).collect::<Vec<_>>()
            ));
        }
        compared += 1;
        records += expected.len();
    }
    assert!(
        failures.is_empty(),
        "{} capture(s) differ from tshark:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("compared {compared} captures, {records} records; out of scope: {out_of_scope:?}");
    assert!(compared >= 90, "only {compared} captures compared");
    assert!(records >= 300, "only {records} records compared");
}
