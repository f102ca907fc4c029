//! The `pdns-sensor` binary as a user runs it: COF output, error messages
//! for bad input, truncated and non-capture files, and a summary that
//! counts what was skipped.

mod common;

use std::process::{Command, Output};

fn sensor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdns-sensor"))
        .args(args)
        .env_remove("PDNS_DB")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ingest_then_dump_cof_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let out = sensor(&[
        "ingest",
        "--db",
        db,
        common::pcap("dnscap/dns.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("41 DNS responses"),
        "{}",
        text(&out.stderr)
    );

    let out = sensor(&["dump", "--db", db, "--json", "--type", "A"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let cof = &lines[0];
    assert_eq!(cof["rrname"], "google.com.");
    assert_eq!(cof["rrtype"], "A");
    assert_eq!(cof["rdata"], serde_json::json!(["216.58.218.206"]));
    assert_eq!(cof["count"], 24);
    assert_eq!(cof["time_first"], 1476976981);
    assert_eq!(cof["time_last"], 1476977066);
    assert!(cof["ttl"].is_u64());
    assert_eq!(cof["origin"], serde_json::json!(["wire"]));

    let out = sensor(&[
        "dump",
        "--db",
        db,
        "--name",
        "206.218.58.216.in-addr.arpa",
        "--limit",
        "1",
    ]);
    let table = text(&out.stdout);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.starts_with("NAME"));
    assert!(table.contains("2016-10-20 15:23:01"), "{table}");
}

#[test]
fn bad_queries_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    assert!(
        sensor(&[
            "ingest",
            "--db",
            db,
            common::pcap("dnscap/dns6.pcap").to_str().unwrap()
        ])
        .status
        .success()
    );
    for (args, expect) in [
        (vec!["--rdata", "10.0.0.0/33"], "not a valid address"),
        (vec!["--name", "a..b"], "not a valid domain name"),
        (vec!["--type", "BOGUS"], "unknown record type"),
        (vec!["--first-after", "last tuesday"], "not a time"),
    ] {
        let mut full = vec!["dump", "--db", db];
        full.extend(args.iter().copied());
        let out = sensor(&full);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            text(&out.stderr).contains(expect),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"));
    }
    let missing = dir.path().join("missing");
    let out = sensor(&["dump", "--db", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no pdns-sensor database"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn truncated_capture_keeps_what_came_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(common::pcap("dnscap/dns.pcap")).unwrap();
    // Cut in the middle of a packet record, about two thirds in.
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &original[..original.len() * 2 / 3 + 7]).unwrap();
    let db = dir.path().join("db");
    let out = sensor(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        cut.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("truncated"), "{err}");
    let out = sensor(&["dump", "--db", db.to_str().unwrap(), "--json"]);
    let counts: u64 = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    // dns.pcap holds 41 responses with 58 answer records in all; a
    // two-thirds cut keeps most, not all.
    assert!((20..58).contains(&counts), "{counts}");
}

#[test]
fn non_captures_are_errors_and_other_files_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture at all, just text\n").unwrap();
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let db = dir.path().join("db");
    let good = common::pcap("dnscap/dns6.pcap");
    let out = sensor(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        junk.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not a pcap or pcapng file"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("1 unreadable"),
        "{}",
        text(&out.stderr)
    );
    // Nothing readable at all is a failure.
    let out = sensor(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
}

#[test]
fn summary_counts_skipped_traffic_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let stats = dir.path().join("stats.json");
    let out = sensor(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
        "--compact",
        common::pcap("dnscap/icmp.pcap").to_str().unwrap(),
        common::pcap("tcpdump/dns_udp_8053.pcap").to_str().unwrap(),
        common::pcap("tcpdump/dns-zlip-1.pcap").to_str().unwrap(),
        common::pcap("tcpdump/dns_udp_2.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(s["drops"]["not_udp_tcp"], 2, "{s}"); // two ICMP errors
    assert_eq!(s["drops"]["not_dns_port"], 2, "{s}"); // port 8053 both ways
    assert_eq!(s["drops"]["dns_malformed"], 1, "{s}"); // the zlip loop
    assert_eq!(s["drops"]["snap_truncated"], 1, "{s}"); // a 98-byte snap of a 266-byte answer
    assert_eq!(s["db_records"], 0);
    // Port 8053 is DNS when asked for.
    let out = sensor(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        "--port",
        "8053",
        common::pcap("tcpdump/dns_udp_8053.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let out = sensor(&["dump", "--db", db.to_str().unwrap(), "--json"]);
    assert!(
        text(&out.stdout).contains("www.tcpdump.org."),
        "{}",
        text(&out.stdout)
    );
}

/// Runs the sensor under a pseudo-terminal (util-linux `script`), so its
/// stderr is a terminal; returns everything it printed.
fn sensor_on_a_terminal(args: &[&str], no_color: Option<&str>) -> String {
    let command = std::iter::once(env!("CARGO_BIN_EXE_pdns-sensor"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("PDNS_DB")
        .env_remove("NO_COLOR");
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let out = script.output().expect("script (util-linux) is needed");
    text(&out.stdout)
}

#[test]
fn log_lines_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(common::pcap("dnscap/dns.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &original[..original.len() / 2 + 5]).unwrap();
    let db = dir.path().join("db");
    let args = [
        "ingest",
        "--db",
        db.to_str().unwrap(),
        cut.to_str().unwrap(),
    ];
    const ESC: char = '\u{1b}';

    // A pipe (journald, CI logs, a file): plain text.
    let out = sensor(&args);
    let err = text(&out.stderr);
    assert!(err.contains("WARN") && err.contains("truncated"), "{err}");
    assert!(!err.contains(ESC), "colour codes on a pipe: {err:?}");

    // A terminal: coloured, unless NO_COLOR is set to anything.
    let tty = sensor_on_a_terminal(&args, None);
    assert!(tty.contains("truncated"), "{tty}");
    assert!(tty.contains(ESC), "no colour on a terminal: {tty:?}");
    let tty = sensor_on_a_terminal(&args, Some("1"));
    assert!(tty.contains("truncated"), "{tty}");
    assert!(!tty.contains(ESC), "colour despite NO_COLOR: {tty:?}");
}
