//! The Grafana dashboard (`contrib/grafana/pdns-sensor.json`) cannot rot:
//! every metric any panel queries must be in the `/metrics` of a running
//! sensor. `pdns-sensor run` captures replayed DNS traffic in a network
//! namespace, serving the API over TLS with a quota key file; after one
//! keyed query its `/metrics` is scraped and every metric name in every
//! panel's PromQL must be there. The dashboard's shape is checked too: a
//! Prometheus data source variable, an `instance` variable every selector
//! filters on, unique panel ids. The web page's status strip, served by
//! the same `run`, must read what `/metrics` says.

mod common;
mod live_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::tls::TestCa;
use live_support::*;

/// PromQL aggregation operators: followed by `by (...)`/`without (...)`
/// or their argument list, never metric names.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a label list in parentheses.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Binary-operator keywords.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2"];

/// A metric a query selects, with its label matchers (`{...}`, if any).
#[derive(Debug, PartialEq)]
struct Selector {
    metric: String,
    matchers: String,
}

/// Skips a quoted string starting at `i` (the quote); returns the index
/// after it.
fn skip_string(s: &[u8], i: usize) -> usize {
    let quote = s[i];
    let mut j = i + 1;
    while j < s.len() && s[j] != quote {
        if s[j] == b'\\' && quote != b'`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// The index of the bracket closing the one at `i`, strings skipped.
fn closing(s: &[u8], i: usize) -> Result<usize, String> {
    let (open, close) = (
        s[i],
        match s[i] {
            b'(' => b')',
            b'{' => b'}',
            _ => b']',
        },
    );
    let mut depth = 0;
    let mut j = i;
    while j < s.len() {
        match s[j] {
            b'"' | b'\'' | b'`' => {
                j = skip_string(s, j);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            _ => {}
        }
        j += 1;
    }
    Err(format!("unclosed {:?}", open as char))
}

fn next_non_space(s: &[u8], mut i: usize) -> Option<(usize, u8)> {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    s.get(i).map(|&c| (i, c))
}

/// Every metric selector in a PromQL expression: function and aggregation
/// names, label names in matchers and grouping lists, durations, numbers,
/// strings and Grafana variables are not metrics.
fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let s = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if matches!(c, b'"' | b'\'' | b'`') {
            i = skip_string(s, i);
        } else if c == b'[' {
            // A range or subquery duration.
            i = closing(s, i)? + 1;
        } else if c == b'{' {
            return Err(format!("a selector without a metric name at {i}: {expr}"));
        } else if c.is_ascii_digit() || c == b'.' {
            // Numbers and durations (`0.99`, `5m`, `1e3`).
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'.') {
                i += 1;
            }
        } else if c == b'$' {
            i += 1;
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_' || s[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let next = next_non_space(s, i);
            if LABEL_LISTS.contains(&word) {
                if let Some((j, b'(')) = next {
                    i = closing(s, j)? + 1;
                }
            } else if AGGREGATIONS.contains(&word) || KEYWORDS.contains(&word) {
                // Its argument list or grouping follows.
            } else if matches!(next, Some((_, b'('))) {
                // A function call.
            } else {
                let matchers = match next {
                    Some((j, b'{')) => {
                        let end = closing(s, j)?;
                        i = end + 1;
                        expr[j + 1..end].to_string()
                    }
                    _ => String::new(),
                };
                out.push(Selector {
                    metric: word.to_string(),
                    matchers,
                });
            }
        } else {
            // Operators, parentheses, commas.
            i += 1;
        }
    }
    Ok(out)
}

#[test]
fn promql_selectors_are_found_and_nothing_else() {
    let names = |e: &str| -> Vec<String> {
        selectors(e)
            .unwrap()
            .into_iter()
            .map(|s| s.metric)
            .collect()
    };
    assert_eq!(names("rate(x[5m])"), ["x"]);
    assert_eq!(
        names("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))"),
        ["x_bucket"]
    );
    assert_eq!(
        names(
            r#"sum without (job, instance) (rate(a_total{status=~"4..|5..", x="}{"}[$__rate_interval])) / on(instance) group_left(version) b"#
        ),
        ["a_total", "b"]
    );
    assert_eq!(
        names("min(expiry{instance=~\"$instance\"}) - time() > bool 86400 offset 1h"),
        ["expiry"]
    );
    assert_eq!(names("topk(5, up) unless absent(y)"), ["up", "y"]);
    let s = &selectors(r#"rate(m{instance=~"$instance", le="+Inf"}[1m])"#).unwrap()[0];
    assert_eq!(s.matchers, r#"instance=~"$instance", le="+Inf""#);
    assert!(selectors(r#"{__name__="x"}"#).is_err());
    assert!(selectors("sum(rate(x{a=\"b\"[5m]))").is_err());
}

/// Every PromQL expression of the dashboard, with the title of its panel.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    let mut stack: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "panel id {id} twice");
        assert!(
            panel["gridPos"]["w"].as_u64().is_some(),
            "{title}: no gridPos"
        );
        if panel["type"] == "row" {
            stack.extend(panel["panels"].as_array().unwrap());
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: a target without expr"));
            out.push((title.clone(), expr.to_string()));
        }
    }
    out
}

fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/grafana/pdns-sensor.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["uid"], "pdns-sensor");
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(var("instance")["type"], "query");
    assert_eq!(var("instance")["datasource"]["uid"], "${datasource}");
    d
}

/// Every metric the dashboard queries; each selector must filter on the
/// `instance` variable.
fn dashboard_metrics() -> BTreeSet<String> {
    let mut metrics = BTreeSet::new();
    for (title, expr) in queries(&dashboard()) {
        let found = selectors(&expr).unwrap_or_else(|e| panic!("{title}: {e}"));
        assert!(!found.is_empty(), "{title}: no metric in {expr}");
        for s in found {
            assert!(
                s.matchers.contains("instance=~\"$instance\""),
                "{title}: {} does not filter on $instance: {expr}",
                s.metric
            );
            metrics.insert(s.metric);
        }
    }
    metrics
}

#[test]
fn dashboard_is_well_formed() {
    let metrics = dashboard_metrics();
    // Every part of the pipeline is on it.
    for wanted in [
        "pdns_capture_packets_total",
        "pdns_capture_drops_total",
        "pdns_ebpf_rejected_total",
        "pdns_decode_drops_total",
        "pdns_dns_responses_total",
        "pdns_observations_total",
        "pdns_store_write_batches_total",
        "pdns_aggregator_flush_duration_seconds_bucket",
        "pdns_store_writer_wait_seconds_total",
        "pdns_aggregator_entries",
        "pdns_rocksdb_property",
        "pdns_api_requests_total",
        "pdns_api_request_duration_seconds_bucket",
        "pdns_zeek_lines_total",
        "pdns_zeek_lines_skipped_total",
        "pdns_api_quota_refusals_total",
        "pdns_api_tls_certificate_expiry_timestamp_seconds",
    ] {
        assert!(metrics.contains(wanted), "{wanted} is on no panel");
    }
}

/// Sample names in a Prometheus text exposition.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn every_dashboard_metric_is_exposed_by_a_running_sensor() {
    require(&["ip", "tcpreplay", "curl"]);
    let metrics = dashboard_metrics();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write_ca(dir.path());
    let cert = ca.server_cert(dir.path(), "server", 7);
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "dash-key name=dashboard hourly=100 daily=1000\n").unwrap();

    let link = Link::new("graf", false);
    let sensor = Sensor::start(
        &link.b,
        &[
            "-i",
            link.if_b,
            "--flush-interval",
            "1",
            "--listen",
            "127.0.0.1:8443",
            "--tls-cert",
            cert.cert.to_str().unwrap(),
            "--tls-key",
            cert.key.to_str().unwrap(),
            "--api-key-file",
            keys.to_str().unwrap(),
        ],
    );
    let (file, _) = link.traffic_file(dir.path(), 2_000, 200);
    link.replay(&file, 1);

    let curl = |path: &str| -> String {
        run(
            link.b.cmd("curl").args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                ca_file.to_str().unwrap(),
                "-H",
                "X-API-Key: dash-key",
                &format!("https://127.0.0.1:8443{path}"),
            ]),
            Duration::from_secs(20),
        )
    };
    // The sensor has written what it captured (flushes every second).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text;
    loop {
        text = curl("/metrics");
        let written = text
            .lines()
            .any(|l| l.starts_with("pdns_store_write_batches_total ") && !l.ends_with(" 0"));
        if written {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no store write after the replay:\n{text}\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // One keyed query, so the API and quota series have moved.
    let answer = curl("/dnsdb/v2/lookup/rrset/name/n1.example.test/A");
    assert!(answer.contains("\"rdata\":[\"192.0.2.2\"]"), "{answer}");
    let text = curl("/metrics");
    let exposed = exposed(&text);
    let missing: Vec<&String> = metrics.iter().filter(|m| !exposed.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the sensor does not expose: {missing:?}\n{text}"
    );

    // The web page is served on the same listener (over TLS), and its
    // status strip reads the same counters as /metrics.
    assert!(curl("/").contains("<title>pdns-sensor</title>"));
    let sum = |text: &str, name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    // Capture counters are published every second: read once they stand
    // still (the replay is over), then both views must agree.
    let status_now = || -> serde_json::Value { serde_json::from_str(&curl("/ui/status")).unwrap() };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = status_now();
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let again = status_now();
        if again["packets"] == status["packets"] && again["packets"] != 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the counters never settled: {again}"
        );
        status = again;
    }
    let text = curl("/metrics");
    let packets = status["packets"].as_f64().expect("run counts packets");
    assert_eq!(
        packets,
        sum(&text, "pdns_capture_packets_total"),
        "{status}"
    );
    assert_eq!(
        status["drops"].as_f64(),
        Some(sum(&text, "pdns_capture_drops_total")),
        "{status}"
    );
    let last_write = status["last_write"].as_f64().expect("run has written");
    assert!(
        (status["now"].as_f64().unwrap() - last_write).abs() < 60.0,
        "{status}"
    );
    assert!(status["records"].as_f64().unwrap() > 0.0, "{status}");
    sensor.stop();
}
