//! Tests of [`write_plots`] over whole sets of entries: every plot kind
//! with realistic data, no data at all, and odd values that must neither
//! panic nor leak `NaN`/`inf` into the SVG. Set `BENCH_PLOT_DIR` to keep
//! the plots for a look.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::write_plots;
use crate::report::Entry;

fn entry(scenario: &str, system: &str, workload: Value, figures: &[(&str, f64)]) -> Entry {
    let mut e = Entry::new(scenario, system);
    if let Value::Object(m) = workload {
        for (k, v) in m {
            e.set_workload(&k, v);
        }
    }
    for (k, v) in figures {
        // Bypass `set_figure` so odd values (NaN) reach the plots too.
        e.figures.insert((*k).into(), *v);
    }
    e
}

fn ingest(system: &str, sweep: &str, x: f64, threads: Option<u32>, pps: f64) -> Entry {
    let mut w = json!({ "label": format!("{x}-{sweep}"), "sweep": sweep, sweep: x });
    if let Some(t) = threads {
        w["threads"] = json!(t);
    }
    entry("ingest", system, w, &[("packets_per_sec", pps)])
}

fn peer(system: &str, sweep: &str, x: f64, figures: &[(&str, f64)]) -> Entry {
    let w = json!({ "label": format!("{x}-{sweep}"), "sweep": sweep, sweep: x });
    entry("peers", system, w, figures)
}

fn live(system: &str, threads: u32, offered: f64, frames: f64, drops: f64) -> Entry {
    live_ring(system, threads, None, offered, frames, drops)
}

/// A live entry with workload `ring_bytes` when given.
fn live_ring(
    system: &str,
    threads: u32,
    ring_bytes: Option<u64>,
    offered: f64,
    frames: f64,
    drops: f64,
) -> Entry {
    let mut w = json!({ "label": "10k-names", "threads": threads });
    if let Some(b) = ring_bytes {
        w["ring_bytes"] = json!(b);
    }
    entry(
        "live",
        system,
        w,
        &[
            ("offered_pps", offered),
            ("captured_frames", frames),
            ("kernel_drops", drops),
        ],
    )
}

fn query(label: &str, p50: f64, p90: f64, p99: f64) -> Entry {
    entry(
        "queries",
        "pdns-sensor",
        json!({ "label": label }),
        &[
            ("p50_ms", p50),
            ("p90_ms", p90),
            ("p99_ms", p99),
            ("target_p99_ms", 10.0),
        ],
    )
}

/// A full set of entries for every plot.
fn all() -> Vec<Entry> {
    let mut v = Vec::new();
    for (i, names) in [1e3, 1e4, 1e5, 1e6].into_iter().enumerate() {
        let f = 1.0 - 0.2 * i as f64;
        v.push(ingest("raw-read", "names", names, None, 4.6e6));
        v.push(ingest("pdns-sensor", "names", names, Some(1), 2.7e6 * f));
        v.push(ingest("pdns-sensor", "names", names, Some(0), 4.1e6 * f));
        v.push(peer(
            "tshark",
            "names",
            names,
            &[("packets_per_sec", 6e4 * f)],
        ));
        v.push(peer(
            "dnscap",
            "names",
            names,
            &[("packets_per_sec", 9e5 * f)],
        ));
        v.push(peer(
            "pdns-sensor",
            "names",
            names,
            &[
                ("packets_per_sec", 2.5e6 * f),
                ("observations_per_sec", 3.5e6 * f),
            ],
        ));
        v.push(peer(
            "balboa",
            "names",
            names,
            &[("observations_per_sec", 3.5e4 * f)],
        ));
    }
    for clients in [100.0, 1e4, 1e6] {
        v.push(ingest("pdns-sensor", "clients", clients, Some(1), 2.5e6));
        v.push(ingest("raw-read", "clients", clients, None, 4.5e6));
        v.push(peer(
            "passivedns",
            "clients",
            clients,
            &[("packets_per_sec", 2e5)],
        ));
    }
    let default_ring = crate::scenario::live::default_ring_bytes();
    for (rate, drops) in [(1e5, 0.0), (5e5, 0.0), (1e6, 2e4), (2e6, 4e5)] {
        v.push(live("pdns-sensor", 1, rate, rate * 2.0, drops));
        v.push(live_ring(
            "ring-read",
            1,
            Some(default_ring),
            rate,
            rate * 2.0,
            drops / 4.0,
        ));
        v.push(live_ring(
            "pdns-sensor",
            1,
            Some(256 << 10),
            rate,
            rate * 2.0,
            drops * 3.0,
        ));
    }
    v.push(query("exact name (DNSDB rrset)", 0.12, 0.3, 1.5));
    v.push(query("*.example.com, 10k children", 2.0, 4.0, 9.0));
    let lookup = [
        ("lookup_p50_ms", 0.1),
        ("lookup_p90_ms", 0.2),
        ("lookup_p99_ms", 0.9),
    ];
    v.push(peer("pdns-sensor", "names", 1e5, &lookup));
    v.push(peer("balboa", "names", 1e5, &lookup));
    v
}

/// Set `BENCH_PLOT_DIR` to keep the test plots for a look.
fn keep_dir() -> Option<PathBuf> {
    std::env::var_os("BENCH_PLOT_DIR").map(PathBuf::from)
}

fn read(path: &Path) -> String {
    let s = fs::read_to_string(path).unwrap();
    assert!(
        s.starts_with("<svg") || s.starts_with("<?xml"),
        "{}",
        path.display()
    );
    assert!(s.trim_end().ends_with("</svg>"), "{}", path.display());
    s
}

fn has_text(svg: &str, text: &str) -> bool {
    let mut escaped = String::new();
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    svg.contains(&format!(">\n{escaped}\n</text>"))
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn plot_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let out = keep_dir().unwrap_or(dir.path().join("plots"));
    let paths = write_plots(&all(), &out, "2026-11-27").unwrap();
    assert_eq!(
        names(&paths),
        [
            "2026-11-27-throughput-names.svg",
            "2026-11-27-throughput-clients.svg",
            "2026-11-27-store-ingest.svg",
            "2026-11-27-live-drops.svg",
            "2026-11-27-query-latency.svg",
        ]
    );
    let expect: [(&str, &[&str]); 5] = [
        (
            "throughput-names",
            &[
                "Throughput vs name cardinality",
                "raw read (no decode)",
                "pdns-sensor (1 core)",
                "pdns-sensor (all cores)",
                "tshark",
                "dnscap",
                "pdns-sensor, peers run",
                "packets/s (log scale)",
                "1M",
            ],
        ),
        (
            "throughput-clients",
            &["pdns-sensor (1 core)", "raw read (no decode)", "passivedns"],
        ),
        (
            "store-ingest",
            &["pdns-sensor", "balboa", "observations/s (log scale)"],
        ),
        (
            "live-drops",
            &[
                "Kernel drops vs offered rate",
                "pdns-sensor (1 core)",
                "ring-read (1 core)",
                "pdns-sensor (256 KiB ring)",
                "0%",
            ],
        ),
        (
            "query-latency",
            &[
                "p50",
                "p90",
                "p99",
                "p99 target",
                "exact name (DNSDB rrset)",
                "*.example.com, 10k children",
                "exact name vs balboa",
                "balboa, 100000-names",
            ],
        ),
    ];
    for (plot, texts) in expect {
        let svg = read(&out.join(format!("2026-11-27-{plot}.svg")));
        for t in texts {
            assert!(has_text(&svg, t), "{plot} lacks text {t:?}");
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{plot}");
    }
    // One line per series, plus one per legend entry.
    for (plot, series) in [
        ("throughput-names", 6),
        ("throughput-clients", 3),
        ("store-ingest", 2),
        ("live-drops", 3),
    ] {
        let svg = read(&out.join(format!("2026-11-27-{plot}.svg")));
        let lines = svg
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
            .count();
        assert_eq!(lines, 2 * series, "{plot}");
    }
    // 4 query rows of 3 bars, plus 3 legend boxes.
    let svg = read(&out.join("2026-11-27-query-latency.svg"));
    assert!(svg.matches("<rect").count() >= 12 + 3);
}

#[test]
fn plot_nothing_for_no_data() {
    let dir = tempfile::tempdir().unwrap();
    assert!(write_plots(&[], dir.path(), "latest").unwrap().is_empty());
    // Entries the plots do not know, or without the figures they need.
    let odd = vec![
        entry(
            "zeek-import",
            "pdns-sensor",
            json!({"label": "20k-names", "names": 20000}),
            &[("lines_per_sec", 1e5)],
        ),
        entry(
            "ingest",
            "pdns-sensor",
            json!({"label": "water-torture", "names": 10000}),
            &[("packets_per_sec", 1e6)],
        ),
        ingest("pdns-sensor", "names", 1e3, Some(1), f64::NAN),
        ingest("pdns-sensor", "names", 0.0, Some(1), 1e6),
        entry(
            "live",
            "pdns-sensor",
            json!({"threads": 1}),
            &[("offered_pps", 1e5)],
        ),
        live("pdns-sensor", 1, 1e5, 0.0, 0.0),
        query("q", f64::NAN, 0.0, -1.0),
    ];
    assert!(write_plots(&odd, dir.path(), "latest").unwrap().is_empty());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn plot_odd_values_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut failed = ingest("pdns-sensor", "names", 1e4, Some(1), 1e6);
    failed.notes.push("failed: exit 1".into());
    let odd = vec![
        // Single points, equal values, infinities, zeros.
        ingest("pdns-sensor", "names", 1e3, Some(1), 1e6),
        ingest("pdns-sensor", "names", 1e4, Some(4), f64::INFINITY),
        ingest("raw-read", "names", 1e4, None, 0.0),
        entry(
            "ingest",
            "pdns-sensor",
            json!({"label": "1k-names", "names": "1000"}),
            &[("packets_per_sec", 2e6)],
        ),
        failed,
        peer("tshark", "clients", 100.0, &[("packets_per_sec", 1e-3)]),
        peer(
            "pdns-sensor",
            "names",
            1e3,
            &[("observations_per_sec", 5e6)],
        ),
        live("pdns-sensor", 1, 1e5, 1e5, 0.0),
        live("pdns-sensor", 0, f64::NAN, 1e5, 0.0),
        live("ring-read", 1, 1e5, 1e5, f64::NAN),
        query("only p99", f64::NAN, 0.0, 3.0),
        query("identical", 1.0, 1.0, 1.0),
    ];
    let out = keep_dir().map_or(dir.path().to_path_buf(), |d| d.join("odd"));
    let paths = write_plots(&odd, &out, "latest").unwrap();
    assert_eq!(
        names(&paths),
        [
            "latest-throughput-names.svg",
            "latest-throughput-clients.svg",
            "latest-store-ingest.svg",
            "latest-live-drops.svg",
            "latest-query-latency.svg",
        ]
    );
    for p in &paths {
        let svg = read(p);
        assert!(
            !svg.contains("NaN") && !svg.contains("inf"),
            "{}",
            p.display()
        );
    }
    // A single store workload is drawn as bars, one per system.
    let svg = read(&out.join("latest-store-ingest.svg"));
    assert!(has_text(&svg, "Store ingest rate") && has_text(&svg, "pdns-sensor"));
    // All-zero drops still give a plot with a 0% tick.
    assert!(has_text(&read(&out.join("latest-live-drops.svg")), "0%"));
}

/// Plots the local `results/latest.json` when there is one.
#[test]
fn plot_latest_results() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/latest.json");
    let Ok(text) = fs::read_to_string(&path) else {
        return;
    };
    let entries: Vec<Entry> = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = std::env::var_os("BENCH_PLOT_DIR").map_or(dir.path().to_path_buf(), PathBuf::from);
    let paths = write_plots(&entries, &out, "latest").unwrap();
    for p in &paths {
        read(p);
    }
}
