//! Per-key quotas from the API key file: requests per hour and per day
//! refused with 429 (each surface in its own error shape, with
//! `Retry-After`) and reset with their UTC windows (on a clock the test
//! sets: no waiting an hour); `rate_limit` counting down in DNSDB's v2 and
//! v1 shapes; the per-key result cap on every surface; the Prometheus
//! counters per key label; real clients (dnsdbq, dnsdb2, PyPDNS, the
//! shipped MISP module) seeing the 429; key-file errors at start-up.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pdns_sensor::serve::ServeConfig;
use pdns_sensor::serve::auth::ApiKeys;
use pdns_sensor::serve::quota::Clock;

use common::process::{ServeProcess, client, serve_failure};

/// 2024-03-01T10:00:00Z.
const T0: u64 = 1_709_287_200;
/// The midnight after T0.
const MIDNIGHT: u64 = T0 + 14 * 3600;

fn fixture() -> common::Ingested {
    common::ingest(&[
        common::pcap("dnscap/dns.pcap"),
        common::pcap("zeek/pcapng-multi-interface.pcapng"),
        common::pcap("go-dnscollector/dnsdump_udp.pcap"),
    ])
}

fn server(ingested: &common::Ingested, keys: &str, clock: &Clock) -> common::Server {
    let config = ServeConfig {
        keys: Some(ApiKeys::parse(keys).unwrap()),
        clock: clock.clone(),
        ..ServeConfig::default()
    };
    common::serve(Arc::new(ingested.store()), config)
}

fn key(k: &str) -> [(&str, &str); 1] {
    [("X-API-Key", k)]
}

fn rate(server: &common::Server, k: &str) -> serde_json::Value {
    let r = common::get(server.addr, "/dnsdb/v2/rate_limit", &key(k));
    assert_eq!(r.status, 200, "{}", r.body);
    r.lines().remove(0)["rate"].clone()
}

/// A sample of the server's `/metrics`, 0 when absent.
fn metric(server: &common::Server, series: &str) -> f64 {
    let text = common::get(server.addr, "/metrics", &[]).body;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn quotas_count_down_refuse_with_429_and_reset_with_their_windows() {
    let ingested = fixture();
    // 10:20:00, so the hour has 2400 s left.
    let clock = Clock::fixed(T0 + 1200);
    let s = server(
        &ingested,
        "alice-key name=alice hourly=3 daily=5\nfree-key name=free\nalice:pw name=alice-basic hourly=1\n",
        &clock,
    );
    let lookup = "/dnsdb/v2/lookup/rrset/name/www.apple.com";

    // Daily as limit/remaining/reset, hourly as the burst rate.
    let r = rate(&s, "alice-key");
    assert_eq!(
        r,
        serde_json::json!({"limit": 5, "remaining": 5, "reset": MIDNIGHT,
            "burst_size": 3, "burst_window": 3600,
            "results_max": 1_000_000, "offset_max": 3_000_000}),
    );
    for remaining in [4, 3, 2] {
        assert_eq!(common::get(s.addr, lookup, &key("alice-key")).status, 200);
        // ping and rate_limit cost nothing.
        assert_eq!(
            common::get(s.addr, "/dnsdb/v2/ping", &key("alice-key")).status,
            200
        );
        assert_eq!(rate(&s, "alice-key")["remaining"], remaining);
    }

    // The hour is used up: every surface says so in its own shape.
    let r = common::get(s.addr, lookup, &key("alice-key"));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2400"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.lines()[0],
        serde_json::json!({"error": "quota exceeded: 3 requests per hour; resets at 2024-03-01T11:00:00Z"})
    );
    for (path, headers) in [
        ("/lookup/rrset/name/www.apple.com", key("alice-key")),
        (
            "/pdns/query/www.apple.com",
            [("Authorization", "alice-key")],
        ),
        ("/dns/www.apple.com", key("alice-key")),
        ("/dns/like/tuples/apple.com", key("alice-key")),
        ("/negative/*.arpa", key("alice-key")),
        (
            "/dnsdb/v2/summarize/rrset/name/google.com",
            key("alice-key"),
        ),
    ] {
        let r = common::get(s.addr, path, &headers);
        assert_eq!(r.status, 429, "{path}: {}", r.body);
        assert_eq!(r.header("retry-after"), Some("2400"), "{path}");
        assert!(
            r.lines()[0]["error"]
                .as_str()
                .unwrap()
                .starts_with("quota exceeded"),
            "{path}: {}",
            r.body
        );
    }
    // Refusals cost nothing; other keys are not affected.
    assert_eq!(rate(&s, "alice-key")["remaining"], 2);
    assert_eq!(common::get(s.addr, lookup, &key("free-key")).status, 200);
    assert_eq!(
        rate(&s, "free-key"),
        serde_json::json!({"limit": "unlimited", "remaining": "n/a", "reset": "n/a",
            "results_max": 1_000_000, "offset_max": 3_000_000}),
    );
    // v1 reports the same, pretty-printed as v1 did.
    let v1 = common::get(s.addr, "/lookup/rate_limit", &key("alice-key"));
    assert_eq!(v1.status, 200);
    let v1: serde_json::Value = serde_json::from_str(&v1.body).unwrap();
    assert_eq!(v1["rate"]["remaining"], 2);

    // A key with only an hourly limit reports it as limit/remaining/reset,
    // and Basic credentials count on the CIRCL surface.
    let basic = [("Authorization", "Basic YWxpY2U6cHc=")];
    assert_eq!(
        common::get(s.addr, "/pdns/query/www.apple.com", &basic).status,
        200
    );
    let r = common::get(s.addr, "/pdns/query/www.apple.com", &basic);
    assert_eq!(r.status, 429);
    assert!(r.body.contains("1 request per hour"), "{}", r.body);

    // The next hour: admitted again, until the day is used up.
    clock.set(T0 + 3600);
    let r = rate(&s, "alice-key");
    assert_eq!(
        (r["remaining"].as_u64(), r["reset"].as_u64()),
        (Some(2), Some(MIDNIGHT))
    );
    for _ in 0..2 {
        assert_eq!(common::get(s.addr, lookup, &key("alice-key")).status, 200);
    }
    let r = common::get(s.addr, lookup, &key("alice-key"));
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("retry-after"),
        Some((MIDNIGHT - T0 - 3600).to_string().as_str())
    );
    assert!(r.body.contains("5 requests per day"), "{}", r.body);
    // Still refused in a fresh hour of the same day.
    clock.set(T0 + 5 * 3600);
    assert_eq!(common::get(s.addr, lookup, &key("alice-key")).status, 429);
    // A new day: the full quota again.
    clock.set(MIDNIGHT + 1);
    assert_eq!(common::get(s.addr, lookup, &key("alice-key")).status, 200);
    let r = rate(&s, "alice-key");
    assert_eq!(
        (r["remaining"].as_u64(), r["reset"].as_u64()),
        (Some(4), Some(MIDNIGHT + 86_400))
    );

    // Counted per key label; the keys themselves never appear.
    assert_eq!(
        metric(&s, "pdns_api_key_requests_total{key=\"alice\"}"),
        6.0
    );
    assert_eq!(
        metric(
            &s,
            "pdns_api_quota_refusals_total{key=\"alice\",window=\"hourly\"}"
        ),
        7.0
    );
    assert_eq!(
        metric(
            &s,
            "pdns_api_quota_refusals_total{key=\"alice\",window=\"daily\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &s,
            "pdns_api_quota_remaining{key=\"alice\",window=\"daily\"}"
        ),
        4.0
    );
    assert_eq!(
        metric(&s, "pdns_api_quota_limit{key=\"alice\",window=\"hourly\"}"),
        3.0
    );
    assert!(
        metric(
            &s,
            "pdns_api_requests_total{status=\"429\",surface=\"circl\"}"
        ) >= 2.0
    );
    let text = common::get(s.addr, "/metrics", &[]).body;
    assert!(!text.contains("alice-key") && !text.contains("free-key"));
}

#[test]
fn results_cap_per_key_on_every_surface() {
    let ingested = fixture();
    let clock = Clock::fixed(T0);
    let s = server(
        &ingested,
        "small name=cap-small results=2\ntiny name=cap-tiny results=1\nbig name=cap-big\n",
        &clock,
    );
    let objects =
        |r: &common::Response| r.lines().iter().filter(|l| l.get("obj").is_some()).count();
    let q = "/dnsdb/v2/lookup/rrset/name/google.com";
    let big = common::get(s.addr, &format!("{q}?limit=0"), &key("big"));
    assert_eq!(objects(&big), 11, "{}", big.body);
    for limit in ["", "?limit=0", "?limit=5"] {
        let r = common::get(s.addr, &format!("{q}{limit}"), &key("small"));
        assert_eq!(objects(&r), 2, "{limit}: {}", r.body);
        assert_eq!(r.lines().last().unwrap()["cond"], "limited", "{}", r.body);
    }
    assert_eq!(rate(&s, "small")["results_max"], 2);
    // Below the cap, the client's limit stands.
    let r = common::get(s.addr, &format!("{q}?limit=1"), &key("small"));
    assert_eq!(objects(&r), 1);

    let v1 = common::get(s.addr, "/lookup/rrset/name/google.com", &key("small"));
    assert_eq!(v1.body.lines().count(), 2, "{}", v1.body);
    let circl = common::get(
        s.addr,
        "/pdns/query/google.com",
        &[("Authorization", "small")],
    );
    assert_eq!(circl.body.lines().count(), 2, "{}", circl.body);
    assert!(
        circl.header("x-dribble-errors").unwrap().contains("maxset"),
        "{:?}",
        circl.headers
    );
    let bro: serde_json::Value =
        serde_json::from_str(&common::get(s.addr, "/dns/google.com", &key("small")).body).unwrap();
    assert_eq!(bro["records"].as_array().unwrap().len(), 2, "{bro}");
    let go: serde_json::Value = serde_json::from_str(
        &common::get(s.addr, "/dns/find/tuples/google.com", &key("small")).body,
    )
    .unwrap();
    assert_eq!(go.as_array().unwrap().len(), 2, "{go}");

    let negative = |k: &str| {
        common::get(s.addr, "/negative/*.arpa?limit=0", &key(k))
            .body
            .lines()
            .count()
    };
    assert_eq!(negative("big"), 2);
    assert_eq!(negative("tiny"), 1);
}

/// Waits until at least `margin` is left in the current UTC hour, so a
/// test on the system clock does not see its window reset.
fn away_from_the_hour(margin: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let left = 3600 - now % 3600;
    if left < margin {
        std::thread::sleep(Duration::from_secs(left + 1));
    }
}

#[test]
fn real_clients_see_the_quota() {
    let ingested = fixture();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "# analysts\nanalyst-key name=analyst hourly=2  # two an hour\nuser:pass hourly=1\n",
    )
    .unwrap();
    away_from_the_hour(30);
    let serve = ServeProcess::start(&ingested.db(), &["--api-key-file", keys.to_str().unwrap()]);
    let server = format!("http://127.0.0.1:{}", serve.port);
    let dnsdbq = |args: &[&str]| {
        client(
            std::process::Command::new("dnsdbq")
                .args(args)
                .env("DNSDB_SERVER", &server)
                .env("DNSDB_API_KEY", "analyst-key"),
        )
    };
    let (ok, out, err) = dnsdbq(&["-I"]);
    assert!(ok, "{err}");
    assert!(out.contains("\tlimit: 2\n\tremaining: 2\n"), "{out}");
    for _ in 0..2 {
        let (ok, out, err) = dnsdbq(&["-r", "www.apple.com"]);
        assert!(
            ok && out.contains("www-apple-com.v.aaplimg.com."),
            "{out}{err}"
        );
    }
    let (_, out, _) = dnsdbq(&["-I"]);
    assert!(out.contains("\tremaining: 0\n"), "{out}");
    // The third: dnsdbq reports the 429 and the server's reason.
    let (_, out, err) = dnsdbq(&["-r", "www.apple.com"]);
    assert!(!out.contains("aaplimg"), "{out}");
    assert!(err.contains("libcurl 429"), "{err}");
    assert!(err.contains("quota exceeded: 2 requests per hour"), "{err}");

    let module_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/misp");
    let script = format!(
        r#"
import json, sys, dnsdb2, pypdns
sys.path.insert(0, {module_dir:?})
import pdns_sensor_circl as misp
c = dnsdb2.Client("analyst-key", server="{server}")
try:
    list(c.lookup_rrset("www.apple.com"))
    dnsdb2_error = None
except dnsdb2.QuotaExceeded as e:
    dnsdb2_error = str(e)
rate = c.rate_limit()["rate"]
p = pypdns.PyPDNS(url="{server}/pdns/query", basic_auth=("user", "pass"))
first = len(p.query("www.apple.com"))
try:
    p.query("www.apple.com")
    pypdns_error = None
except pypdns.RateLimitError as e:
    pypdns_error = str(e)
q = {{"attribute": {{"type": "domain", "value": "www.apple.com", "uuid": "5f2b1b4e-0000-4000-8000-000000000001"}},
     "config": {{"url": "{server}/pdns/query", "username": "user", "password": "pass"}}}}
misp_error = misp.handler(json.dumps(q)).get("error")
print(json.dumps({{"dnsdb2": dnsdb2_error, "rate": rate, "first": first, "pypdns": pypdns_error, "misp": misp_error}}))
"#,
        module_dir = module_dir.display().to_string()
    );
    let (ok, out, err) = client(std::process::Command::new("python3").arg("-c").arg(script));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        v["dnsdb2"]
            .as_str()
            .is_some_and(|e| e.contains("quota exceeded")),
        "{v}"
    );
    assert_eq!(v["rate"]["remaining"], 0, "{v}");
    assert_eq!(v["rate"]["limit"], 2, "{v}");
    assert_eq!(v["first"], 1, "{v}");
    assert_eq!(v["pypdns"], "Quota exhausted", "{v}");
    // The shipped MISP module turns it into a failed enrichment.
    assert_eq!(
        v["misp"], "pdns-sensor query failed: Quota exhausted",
        "{v}"
    );
}

#[test]
fn key_file_errors_stop_start_up_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    pdns_sensor::store::Store::open(&db).unwrap();
    for (text, wants) in [
        (
            "good\nbad hourly=lots\n",
            "line 2: hourly=lots: not a count",
        ),
        ("k weekly=5\n", "line 1: unknown option \"weekly\""),
        ("k daily=0\n", "line 1: daily=0: a limit is at least 1"),
        (
            "a name=ops\n\nb name=ops\n",
            "line 3: name=ops is already used on line 1",
        ),
    ] {
        let keys = dir.path().join("keys");
        std::fs::write(&keys, text).unwrap();
        let (status, stderr) = serve_failure(&db, &["--api-key-file", keys.to_str().unwrap()]);
        assert!(!status.success(), "{text:?}");
        let wants = format!("API key file {}, {wants}", keys.display());
        assert!(stderr.contains(&wants), "wanted {wants:?} in:\n{stderr}");
    }
}
