//! Real clients against `pdns-sensor serve`: dnsdbq (Debian) over the
//! DNSDB v2 and CIRCL surfaces, and the Python `dnsdb2` and `pypdns`
//! libraries (PyPI), over a database built from captures in `testdata/pcap`. All are
//! installed by `cargo xtask setup`; a missing one fails the test.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::ServeProcess;

/// `serve` with the test's key file, on a port it binds itself.
fn start(db: &Path, keys: &Path) -> ServeProcess {
    ServeProcess::start(db, &["--api-key-file", keys.to_str().unwrap()])
}

fn fixture() -> (common::Ingested, tempfile::TempDir, ServeProcess) {
    let ingested = common::ingest(&[
        common::pcap("dnscap/dns.pcap"),
        common::pcap("zeek/pcapng-multi-interface.pcapng"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "testkey\nuser:pass\n").unwrap();
    let serve = start(&ingested.db(), &keys);
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

#[test]
fn dnsdbq_dnsdb_v2() {
    let (_i, _d, s) = fixture();
    let server = format!("http://127.0.0.1:{}", s.port);
    let text = run(Command::new("dnsdbq")
        .args(["-r", "www.apple.com"])
        .env("DNSDB_SERVER", &server)
        .env("DNSDB_API_KEY", "testkey"));
    assert!(
        text.contains("www.apple.com.  CNAME  www-apple-com.v.aaplimg.com."),
        "{text}"
    );
    assert!(
        text.contains(";; count: 1; bailiwick: apple.com."),
        "{text}"
    );
    let json = run(Command::new("dnsdbq")
        .args(["-j", "-i", "216.58.218.0/24"])
        .env("DNSDB_SERVER", &server)
        .env("DNSDB_API_KEY", "testkey"));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["rrname"], "google.com.");
    assert_eq!(v["count"], 24);
    // Wrong key: dnsdbq reports the 403 and fails.
    let out = Command::new("dnsdbq")
        .args(["-r", "google.com"])
        .env("DNSDB_SERVER", &server)
        .env("DNSDB_API_KEY", "nope")
        .output()
        .unwrap();
    assert!(!out.status.success() || String::from_utf8_lossy(&out.stderr).contains("403"));
}

#[test]
fn dnsdbq_circl() {
    let (_i, d, s) = fixture();
    let conf = d.path().join("dnsdbq.conf");
    std::fs::write(
        &conf,
        format!(
            "CIRCL_SERVER=http://127.0.0.1:{}/pdns/query\nCIRCL_AUTH=user:pass\n",
            s.port
        ),
    )
    .unwrap();
    let text = run(Command::new("dnsdbq")
        .args(["-u", "circl", "-r", "206.218.58.216.in-addr.arpa"])
        .env("DNSDBQ_CONFIG_FILE", &conf));
    assert!(text.contains("dfw06s47-in-f14.1e100.net"), "{text}");
    assert!(text.contains(";; count: 17"), "{text}");
}

#[test]
fn python_dnsdb2_and_pypdns() {
    let (_i, _d, s) = fixture();
    let script = format!(
        r#"
import json, dnsdb2, pypdns
c = dnsdb2.Client("testkey", server="http://127.0.0.1:{port}")
rrset = list(c.lookup_rrset("www.apple.com"))
ip = list(c.lookup_rdata_ip("216.58.218.0/24"))
summary = list(c.summarize_rrset("google.com"))
p = pypdns.PyPDNS(url="http://127.0.0.1:{port}/pdns/query", basic_auth=("user", "pass"))
q = p.query("www.apple.com")
pages = list(p.iter_query("google.com"))
typed = list(p.rfc_query("google.com", filter_rrtype="A"))
print(json.dumps({{
  "rrset": rrset, "ip": ip, "summary": summary,
  "circl": [{{"rrname": r["rrname"], "rdata": r["rdata"], "count": r["count"], "origin": r["origin"]}} for r in q],
  "pages": len(pages), "typed": [(r.rrname, r.rrtype, r.rdata) for r in typed],
}}))
"#,
        port = s.port
    );
    let out = run(Command::new("python3").arg("-c").arg(script));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["rrset"][0]["rdata"],
        serde_json::json!(["www-apple-com.v.aaplimg.com."])
    );
    assert_eq!(v["ip"][0]["rrname"], "google.com.");
    assert_eq!(v["summary"][0]["num_results"], 11);
    assert_eq!(
        v["circl"],
        serde_json::json!([{"rrname": "www.apple.com", "rdata": "www-apple-com.v.aaplimg.com", "count": 1, "origin": "urn:pdns-sensor"}])
    );
    assert_eq!(v["pages"], 11);
    assert_eq!(v["typed"].as_array().unwrap().len(), 7);
}

#[test]
fn shipped_misp_module_enriches_an_attribute() {
    let (_i, _d, s) = fixture();
    let module_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/misp");
    let script = format!(
        r#"
import json, sys
sys.path.insert(0, {dir:?})
import pdns_sensor_circl as m
q = {{"attribute": {{"type": "domain", "value": "www.apple.com", "uuid": "5f2b1b4e-0000-4000-8000-000000000001"}},
     "config": {{"url": "http://127.0.0.1:{port}/pdns/query", "username": "user", "password": "pass"}}}}
print(json.dumps(m.handler(json.dumps(q))))
bad = dict(q, config=dict(q["config"], password="wrong"))
print(json.dumps(m.handler(json.dumps(bad))))
print(json.dumps(m.version()))
"#,
        dir = module_dir.display().to_string(),
        port = s.port
    );
    let out = run(Command::new("python3").arg("-c").arg(script));
    let mut lines = out.lines();
    let ok: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let objects = ok["results"]["Object"]
        .as_array()
        .expect("passive-dns objects");
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["name"], "passive-dns");
    let attrs: Vec<(String, String)> = objects[0]["Attribute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["object_relation"].as_str().unwrap().to_string(),
                a["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        attrs.contains(&("rdata".into(), "www-apple-com.v.aaplimg.com".into())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("rrtype".into(), "CNAME".into())),
        "{attrs:?}"
    );
    let denied: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(
        denied["error"].as_str().unwrap().contains("failed"),
        "{denied}"
    );
    let version: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        version["config"],
        serde_json::json!(["url", "username", "password"])
    );
}
