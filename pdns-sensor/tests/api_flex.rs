//! DNSDB Flex search with real clients: the Python `dnsdb2` library's
//! `flex_*` methods and MISP's unmodified `farsight_passivedns` module
//! (misp-modules on PyPI) against `pdns-sensor serve`, and `dump --regex`
//! / `--glob` on the command line, over a database built from captures in
//! `testdata/pcap`. Expected answers are computed independently of the
//! sensor's engine: by Python's `re` and `fnmatch` over `dump --json`, or
//! by plain string tests. All tools are installed by `cargo xtask setup`;
//! a missing one fails the test.

mod common;

use common::process::ServeProcess;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Captures with names in several zones and A, AAAA, CNAME, PTR, SOA, TXT,
/// CAA, HTTPS, URI and DNSSEC records.
fn ingest() -> common::Ingested {
    common::ingest(&[
        common::pcap("dnscap/dns.pcap"),
        common::pcap("zeek/pcapng-multi-interface.pcapng"),
        common::pcap("zeek/dns-edns-ecs.pcap"),
        common::pcap("zeek/ipv6-fragmented-dns.pcap"),
        common::pcap("zeek/dns-caa.pcap"),
        common::pcap("zeek/dns-spf.pcap"),
        common::pcap("zeek/dns-https.pcap"),
        common::pcap("tcpdump/dns-uri.pcap"),
    ])
}

fn fixture() -> (common::Ingested, tempfile::TempDir, ServeProcess) {
    let ingested = ingest();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "testkey\n").unwrap();
    let keys_arg = keys.to_str().unwrap().to_string();
    let serve = ServeProcess::start(&ingested.db(), &["--api-key-file", &keys_arg]);
    (ingested, dir, serve)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start ({e}); run `cargo xtask setup`"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn dump(db: &Path, extra: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_pdns-sensor"))
        .args(["dump", "--json", "--db"])
        .arg(db)
        .args(extra))
}

/// Every search the client makes, with the answer Python computes from
/// `dump --json` on its own (`re.search` ignoring case for regexes,
/// `fnmatch` over the whole name for globs; merged per (name, type) or
/// (rdata, type), counts summed, DNSSEC types left out as `ANY` does).
const DNSDB2_SCRIPT: &str = r#"
import json, re, fnmatch, sys, ipaddress, dnsdb2

port, dump_path = sys.argv[1], sys.argv[2]
records = [json.loads(l) for l in open(dump_path)]
DNSSEC = {"DS", "RRSIG", "NSEC", "DNSKEY", "NSEC3", "NSEC3PARAM", "CDS", "CDNSKEY", "TA", "DLV"}
c = dnsdb2.Client("testkey", server="http://127.0.0.1:" + port)

def matcher(kind, pattern):
    if kind == "regex":
        r = re.compile(pattern, re.I)
        return lambda s: r.search(s) is not None
    return lambda s: fnmatch.fnmatchcase(s.lower(), pattern.lower())

def expected(target, kind, pattern, rrtype=None, exclude=None):
    m = matcher(kind, pattern)
    x = matcher(kind, exclude) if exclude else (lambda s: False)
    merged = {}
    for r in records:
        t = r["rrtype"]
        if rrtype is None and t in DNSSEC:
            continue
        if rrtype == "ANY-DNSSEC" and t not in DNSSEC:
            continue
        if rrtype not in (None, "ANY-DNSSEC") and t != rrtype:
            continue
        subject = r["rrname"] if target == "rrnames" else r["rdata"][0]
        if not m(subject) or x(subject):
            continue
        key = (subject, t)
        e = merged.setdefault(key, {"count": 0, "time_first": r["time_first"], "time_last": r["time_last"]})
        e["count"] += r["count"]
        e["time_first"] = min(e["time_first"], r["time_first"])
        e["time_last"] = max(e["time_last"], r["time_last"])
    field = "rrname" if target == "rrnames" else "rdata"
    return sorted([{field: k[0], "rrtype": k[1], **v} for k, v in merged.items()], key=lambda o: json.dumps(o, sort_keys=True))

def got(target, kind, pattern, rrtype=None, **kw):
    f = getattr(c, "flex_%s_%s" % (target, kind))
    out = list(f(pattern, rrtype=rrtype, **kw))
    for o in out:
        raw = o.pop("raw_rdata", None)
        if target == "rdata":
            assert re.fullmatch("[0-9a-f]*", raw), raw
            if o["rrtype"] == "A":
                assert raw == ipaddress.ip_address(o["rdata"]).packed.hex(), o
            if o["rrtype"] == "AAAA":
                assert raw == ipaddress.ip_address(o["rdata"]).packed.hex(), o
    return sorted(out, key=lambda o: json.dumps(o, sort_keys=True))

cases = [
    ("rrnames", "regex", r"weber", None, None),
    ("rrnames", "regex", r"^ns[0-9]\.", None, None),
    ("rrnames", "regex", r"\.de\.$", None, None),
    ("rrnames", "regex", r"awsdns-[0-9]+\.(com|net)\.$", None, None),
    ("rrnames", "regex", r"ripe", "ANY-DNSSEC", None),
    ("rrnames", "regex", r"ripe", "DNSKEY", None),
    ("rrnames", "regex", r"GOOGLE", "AAAA", None),
    ("rrnames", "regex", r"\.net\.$", None, r"^ns-"),
    ("rrnames", "glob", "*.weberlab.de.", None, None),
    ("rrnames", "glob", "ns-*.awsdns-*", None, None),
    ("rrnames", "glob", "*.de", None, None),
    ("rrnames", "glob", "pdns154.ultradns.*", None, None),
    ("rrnames", "glob", "ns[0-9].*", None, "ns2*"),
    ("rrnames", "glob", "*", None, None),
    ("rdata", "regex", r"weberdns", None, None),
    ("rdata", "regex", r"^142\.251\.", None, None),
    ("rdata", "regex", r"netflix", "CNAME", None),
    ("rdata", "regex", r"txt record", None, None),
    ("rdata", "regex", r"^2a0[0-9]:", "AAAA", None),
    ("rdata", "glob", "*.netflix.com.", None, None),
    ("rdata", "glob", "142.251.181.1[0-9][0-9]", None, None),
    ("rdata", "glob", "*", None, "*.*.*.*"),
]
report = []
for target, kind, pattern, rrtype, exclude in cases:
    kw = {"exclude": exclude} if exclude else {}
    report.append({"case": [target, kind, pattern, rrtype, exclude],
                   "got": got(target, kind, pattern, rrtype, **kw),
                   "want": expected(target, kind, pattern, rrtype, exclude)})

full = list(c.flex_rrnames_regex(r"\.", limit=0))
extra = {
    "terse": list(c.flex_rrnames_regex(r"weber", verbose=False)),
    "terse_rdata": list(c.flex_rdata_glob("*.netflix.com.", verbose=False)),
    "full": full,
    "offset": list(c.flex_rrnames_regex(r"\.", offset=2, limit=0)),
    "limited": list(c.flex_rrnames_regex(r"\.", limit=3, ignore_limited=True)),
    "fenced": list(c.flex_rrnames_regex(r"\.", time_last_after=2000000000)),
    "humantime": list(c.flex_rrnames_glob("*.weberlab.de.", humantime=True)),
}
try:
    list(c.flex_rrnames_regex(r"\.", limit=3))
    extra["raised"] = None
except dnsdb2.QueryLimited as e:
    extra["raised"] = "QueryLimited"
print(json.dumps({"cases": report, "extra": extra}))
"#;

#[test]
fn dnsdb2_flex_methods_agree_with_an_independent_search() {
    let (ingested, dir, s) = fixture();
    let dump_path = dir.path().join("dump.json");
    std::fs::write(&dump_path, dump(&ingested.db(), &[])).unwrap();
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(DNSDB2_SCRIPT)
        .arg(s.port.to_string())
        .arg(&dump_path));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let mut nonempty = 0;
    for case in v["cases"].as_array().unwrap() {
        assert_eq!(case["got"], case["want"], "{}", case["case"]);
        nonempty += usize::from(!case["want"].as_array().unwrap().is_empty());
    }
    // The cases are not vacuous: most find something.
    assert!(nonempty >= 17, "{nonempty} non-empty cases");
    let x = &v["extra"];
    // Globs are anchored and the trailing dot is part of the name.
    let case_of = |p: &str| {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case"][2] == p)
            .unwrap()
            .clone()
    };
    assert_eq!(case_of("*.de")["got"], serde_json::json!([]));
    // verbose=false: the bare Flex objects.
    for o in x["terse"].as_array().unwrap() {
        let keys: BTreeSet<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["rrname", "rrtype"]), "{o}");
    }
    assert!(!x["terse"].as_array().unwrap().is_empty());
    for o in x["terse_rdata"].as_array().unwrap() {
        let keys: BTreeSet<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["rdata", "raw_rdata", "rrtype"]),
            "{o}"
        );
    }
    // offset skips, limit caps and says so.
    let full = x["full"].as_array().unwrap();
    assert!(full.len() > 20);
    assert_eq!(x["offset"].as_array().unwrap()[..], full[2..]);
    assert_eq!(x["limited"].as_array().unwrap()[..], full[..3]);
    assert_eq!(x["raised"], "QueryLimited");
    assert_eq!(x["fenced"], serde_json::json!([]));
    for o in x["humantime"].as_array().unwrap() {
        assert!(o["time_first"].as_str().unwrap().ends_with('Z'), "{o}");
    }
}

#[test]
fn bad_patterns_get_400_with_the_api_error_body() {
    let (_i, _d, s) = fixture();
    let long = "a".repeat(2000);
    for path in [
        "regex/rrnames/(".to_string(),
        "regex/rdata/a%7B5,1%7D".to_string(),
        "glob/rrnames/%5Babc".to_string(),
        format!("regex/rrnames/{long}"),
        "regex/rrnames/x?exclude=(".to_string(),
        "regex/names/x".to_string(),
        "regex/rrnames/x/BOGUS".to_string(),
    ] {
        let r = common::get(
            format!("127.0.0.1:{}", s.port).parse().unwrap(),
            &format!("/dnsdb/v2/{path}"),
            &[("X-API-Key", "testkey")],
        );
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            r.body
        );
    }
    // Same key check as every other DNSDB path.
    let r = common::get(
        format!("127.0.0.1:{}", s.port).parse().unwrap(),
        "/dnsdb/v2/regex/rrnames/x",
        &[("X-API-Key", "wrong")],
    );
    assert_eq!(r.status, 403);
}

/// MISP's `farsight_passivedns`, as published, calls Flex for an email
/// attribute and, with `flex_queries` on, for a domain.
#[test]
fn misp_farsight_module_shows_flex_objects() {
    let (_i, _d, s) = fixture();
    let script = format!(
        r#"
import json
from misp_modules.modules.expansion import farsight_passivedns as m
def ask(attribute, **config):
    q = {{"attribute": dict(attribute, uuid="5f2b1b4e-0000-4000-8000-000000000001"),
         "config": dict(apikey="testkey", server="http://127.0.0.1:{port}", **config)}}
    r = m.handler(json.dumps(q))
    objects = r.get("results", {{}}).get("Object", [])
    return [{{"comment": o["Attribute"][0]["comment"],
              "attrs": {{a["object_relation"]: a["value"] for a in o["Attribute"]}}}} for o in objects]
print(json.dumps({{
    "domain": ask({{"type": "domain", "value": "atlas.ripe.net"}}, flex_queries="true"),
    "email": ask({{"type": "email-src", "value": "webmaster@weberdns.de"}}),
}}))
"#,
        port = s.port
    );
    let out = run(Command::new("python3").arg("-c").arg(script));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let flex = |key: &str, kind: &str| -> Vec<Value> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["comment"].as_str().unwrap().contains(kind))
            .map(|o| o["attrs"].clone())
            .collect()
    };
    let rrnames = flex("domain", "flex_rrnames lookup");
    assert_eq!(rrnames.len(), 1, "{v}");
    assert_eq!(rrnames[0]["rrname"], "atlas.ripe.net.");
    assert_eq!(rrnames[0]["rrtype"], "CNAME");
    assert_eq!(rrnames[0]["count"], "2");
    // The standard lookups still come too.
    assert!(!flex("domain", "rrset lookup").is_empty(), "{v}");
    // The email's dots become "any character": its address is found in
    // the SOA records' rname, both serials.
    let rdata = flex("email", "flex_rdata lookup");
    assert_eq!(rdata.len(), 2, "{v}");
    for o in &rdata {
        assert_eq!(o["rrtype"], "SOA");
        assert!(
            o["rdata"]
                .as_str()
                .unwrap()
                .starts_with("ns1.weberdns.de. webmaster.weberdns.de. 20160518"),
            "{o}"
        );
        assert!(
            o["raw_rdata"].as_str().unwrap().starts_with("036e7331"),
            "{o}"
        );
    }
}

/// `dump --regex` and `--glob` print the records of the matching owners,
/// checked against a plain string filter over `dump --json`.
#[test]
fn dump_regex_and_glob_select_owners() {
    let ingested = ingest();
    let db = ingested.db();
    let all: Vec<Value> = dump(&db, &[])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines = |extra: &[&str]| -> BTreeSet<String> {
        dump(&db, extra).lines().map(String::from).collect()
    };
    let want = |keep: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
        all.iter()
            .filter(|r| keep(r["rrname"].as_str().unwrap()))
            .map(|r| r.to_string())
            .collect()
    };
    let below = want(&|n| n.ends_with(".weberlab.de."));
    assert!(!below.is_empty());
    assert_eq!(lines(&["--glob", "*.weberlab.de."]), below);
    assert_eq!(lines(&["--regex", r"\.weberlab\.de\.$"]), below);
    assert_eq!(lines(&["--regex", "WEBER"]), want(&|n| n.contains("weber")));
    assert_eq!(
        lines(&["--regex", r"^ns[12]\."]),
        want(&|n| n.starts_with("ns1.") || n.starts_with("ns2."))
    );
    assert_eq!(
        lines(&["--glob", "*.de.", "--type", "AAAA"]),
        all.iter()
            .filter(|r| r["rrname"].as_str().unwrap().ends_with(".de.") && r["rrtype"] == "AAAA")
            .map(|r| r.to_string())
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(lines(&["--glob", "*.de.", "--limit", "2"]).len(), 2);
    // A malformed pattern is an error that says why.
    let out = Command::new(env!("CARGO_BIN_EXE_pdns-sensor"))
        .args(["dump", "--db"])
        .arg(&db)
        .args(["--regex", "("])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed regex"));
}
