//! `serve --clickhouse` against `serve --db`: two sensors export into a
//! real ClickHouse, a third database holds the union of what they saw,
//! and every surface (DNSDB v1 and v2 lookups and summaries, wildcards on
//! both sides, rdata by address, CIDR and name, fences, limits, offsets;
//! CIRCL; bro-pdns; negative answers) must answer byte for byte the same
//! from both, for queries taken from the data itself.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::clickhouse::ClickHouse;
use common::process::ServeProcess;
use pdns_sensor::store::Store;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sensor(args: &[&str]) -> Output {
    common::sensor_command().args(args).output().unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ingest(db: &Path, files: &[PathBuf], extra: &[&str]) {
    let mut args = vec!["ingest", "--db", s(db), "--quiet"];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(|f| s(f)));
    ok(&sensor(&args));
}

/// The queries to ask: built from what the union store holds.
fn queries(store: &Store) -> Vec<String> {
    let records = common::all_records(store);
    let negatives = common::negatives(store);
    let owners: BTreeSet<&str> = records.iter().map(|r| r.0.as_str()).collect();
    let owners: Vec<&str> = owners.into_iter().collect();
    let step = (owners.len() / 25).max(1);
    let mut q = Vec::new();
    let times: Vec<u64> = records.iter().map(|r| r.5).collect();
    let middle = {
        let mut t = times.clone();
        t.sort_unstable();
        t[t.len() / 2]
    };
    for owner in owners.iter().step_by(step) {
        let bare = owner.trim_end_matches('.');
        let labels: Vec<&str> = bare.split('.').collect();
        let parent = labels[1..].join(".");
        q.push(format!("/dnsdb/v2/lookup/rrset/name/{bare}"));
        q.push(format!("/dnsdb/v2/lookup/rrset/name/{bare}/A"));
        q.push(format!("/dnsdb/v2/summarize/rrset/name/{bare}"));
        q.push(format!("/lookup/rrset/name/{bare}"));
        q.push(format!("/pdns/query/{bare}"));
        q.push(format!("/dns/{bare}"));
        q.push(format!("/negative/{bare}"));
        if !parent.is_empty() {
            q.push(format!("/dnsdb/v2/lookup/rrset/name/*.{parent}"));
            q.push(format!("/dnsdb/v2/lookup/rrset/name/*.{parent}?limit=3"));
            q.push(format!(
                "/dnsdb/v2/lookup/rrset/name/*.{parent}?offset=2&limit=2"
            ));
            q.push(format!(
                "/dnsdb/v2/lookup/rrset/name/*.{parent}?time_last_after={middle}"
            ));
            q.push(format!(
                "/dnsdb/v2/lookup/rrset/name/*.{parent}?time_first_before={middle}"
            ));
            q.push(format!("/dnsdb/v2/summarize/rrset/name/*.{parent}"));
            q.push(format!("/dns/like/tuples/{parent}"));
            q.push(format!("/negative/*.{parent}"));
        }
        if labels.len() > 1 {
            let left = labels[..labels.len() - 1].join(".");
            q.push(format!("/dnsdb/v2/lookup/rrset/name/{left}.*"));
        }
    }
    let addresses: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.1 == "A" || r.1 == "AAAA")
        .map(|r| r.2.as_str())
        .collect();
    let step = (addresses.len() / 15).max(1);
    for address in addresses.iter().step_by(step) {
        q.push(format!("/dnsdb/v2/lookup/rdata/ip/{address}"));
        q.push(format!("/pdns/query/{address}"));
        if let Ok(v4) = address.parse::<std::net::Ipv4Addr>() {
            let o = v4.octets();
            q.push(format!(
                "/dnsdb/v2/lookup/rdata/ip/{}.{}.{}.0,24",
                o[0], o[1], o[2]
            ));
            q.push(format!(
                "/dnsdb/v2/summarize/rdata/ip/{}.{}.0.0,16",
                o[0], o[1]
            ));
        }
    }
    let targets: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.1 == "CNAME" || r.1 == "NS")
        .map(|r| r.2.as_str())
        .collect();
    let step = (targets.len() / 10).max(1);
    for target in targets.iter().step_by(step) {
        let bare = target.trim_end_matches('.');
        q.push(format!("/dnsdb/v2/lookup/rdata/name/{bare}"));
        if let Some((_, parent)) = bare.split_once('.') {
            q.push(format!("/dnsdb/v2/lookup/rdata/name/*.{parent}"));
        }
    }
    for n in negatives.iter().step_by((negatives.len() / 10).max(1)) {
        q.push(format!("/negative/{}", n.0.trim_end_matches('.')));
    }
    q.push("/negative/*.arpa?limit=0".into());
    q.push("/dnsdb/v2/lookup/rrset/name/*.com?limit=0".into());
    q.push("/dnsdb/v2/lookup/rrset/name/*.nosuch-tld".into());
    q
}

#[test]
fn every_surface_answers_the_same_from_clickhouse_as_from_the_union_store() {
    let ch = ClickHouse::start();
    ok(&sensor(&[
        "clickhouse-schema",
        "--apply",
        &format!("http://127.0.0.1:{}/pdns", ch.http_port),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let pcaps = common::all_pcaps();
    let halves: [Vec<PathBuf>; 2] = [
        pcaps.iter().step_by(2).cloned().collect(),
        pcaps.iter().skip(1).step_by(2).cloned().collect(),
    ];
    for (i, half) in halves.iter().enumerate() {
        ingest(
            &dir.path().join(format!("sensor-{i}")),
            half,
            &[
                "--export-clickhouse",
                &ch.url("pdns"),
                "--sensor-id",
                &format!("sensor-{i}"),
                "--aggregate-entries",
                "64",
            ],
        );
    }
    // The union: both halves into one database, one run each as the
    // sensors did (a single run over all files would join TCP streams
    // and fragments that recur across files, and count differently).
    let union = dir.path().join("union");
    for half in &halves {
        ingest(&union, half, &[]);
    }

    let local = ServeProcess::start(&union, &[]);
    let central = ServeProcess::start(
        &dir.path().join("unused"),
        &[
            "--clickhouse",
            &format!("http://pdns:s3cret@127.0.0.1:{}/pdns", ch.http_port),
        ],
    );
    let store = Store::open_reader(&union).unwrap();
    let queries = queries(&store);
    assert!(queries.len() > 200, "{}", queries.len());
    let mut answered = 0;
    for q in &queries {
        let a = common::get(local.addr(), q, &[]);
        let b = common::get(central.addr(), q, &[]);
        assert_eq!(
            a.status, b.status,
            "{q}\nlocal: {}\ncentral: {}",
            a.body, b.body
        );
        assert_eq!(a.body, b.body, "{q}");
        if a.status == 200 && a.body.len() > 50 {
            answered += 1;
        }
    }
    // Most queries found something: the comparison is not of empty pages.
    assert!(
        answered * 2 > queries.len(),
        "{answered} of {}",
        queries.len()
    );
    // Flex search reads a local store only; the central API says so in a
    // well-formed stream that clients take as incomplete.
    let flex = common::get(central.addr(), "/dnsdb/v2/regex/rrnames/google", &[]);
    assert_eq!(flex.status, 200);
    assert_eq!(
        flex.body,
        "{\"cond\":\"begin\"}\n{\"cond\":\"limited\",\"msg\":\"Flex search is not available on the ClickHouse backend\"}\n"
    );
    assert!(
        common::get(local.addr(), "/dnsdb/v2/regex/rrnames/google", &[])
            .body
            .contains("\"obj\"")
    );
}

#[test]
fn serve_says_what_is_missing_in_clickhouse() {
    let ch = ClickHouse::start();
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = common::process::serve_failure(
        &dir.path().join("unused"),
        &[
            "--clickhouse",
            &format!("http://127.0.0.1:{}/default", ch.http_port),
        ],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("table default.pdns_records does not exist"),
        "{stderr}"
    );
}
