//! `/metrics` parses as Prometheus text format and its counters move with
//! traffic; queries stay consistent while an ingest writes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pdns_sensor::aggregate::Aggregator;
use pdns_sensor::serve::ServeConfig;
use pdns_sensor::store::Store;
use pdns_sensor::vocab::Rtype;
use pdns_sensor::vocab::name;
use pdns_sensor::vocab::observation::ObservationSink;
use pdns_sensor::vocab::value::Origin;

fn scrape(addr: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let r = common::get(addr, "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let lines = r.body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let server = common::serve(Arc::clone(&store), ServeConfig::default());
    let before = scrape(server.addr);
    // Everything below runs in this process, so the registry is shared.
    common::ingest(&[
        common::pcap("dnscap/dns.pcap"),
        common::pcap("tcpdump/dns-zlip-1.pcap"),
    ]);
    let _ = common::get(server.addr, "/dnsdb/v2/ping", &[]);
    let _ = common::get(
        server.addr,
        "/dnsdb/v2/lookup/rrset/name/www.example.com/A",
        &[],
    );
    let after = scrape(server.addr);
    // The lookup was tried on the request's thread: answered there, or
    // (on a machine too busy to finish it within the budget) handed off.
    let tried = |s: &prometheus_parse::Scrape| {
        value(s, "pdns_api_reads_total", &[("where", "inline")])
            + value(s, "pdns_api_reads_total", &[("where", "handed_off")])
    };
    assert!(tried(&after) - tried(&before) >= 1.0);
    for (metric, labels, at_least) in [
        ("pdns_frames_total", vec![], 134.0),
        (
            "pdns_dns_messages_total",
            vec![("direction", "response")],
            41.0,
        ),
        ("pdns_dns_responses_total", vec![("rcode", "NOERROR")], 41.0),
        (
            "pdns_decode_drops_total",
            vec![("reason", "dns_malformed")],
            1.0,
        ),
        ("pdns_observations_total", vec![("table", "records")], 58.0),
        ("pdns_store_write_batches_total", vec![], 1.0),
        (
            "pdns_api_requests_total",
            vec![("surface", "dnsdb_v2"), ("status", "200")],
            1.0,
        ),
    ] {
        let delta = value(&after, metric, &labels) - value(&before, metric, &labels);
        assert!(
            delta >= at_least,
            "{metric}{labels:?} moved by {delta}, expected at least {at_least}"
        );
    }
    assert!(
        value(
            &after,
            "pdns_rocksdb_property",
            &[("cf", "records"), ("property", "estimate_num_keys")]
        ) >= 0.0
    );
    assert!(after.samples.iter().any(|s| s.metric == "pdns_build_info"));
    // Present (and never negative) whether or not the writer made anyone wait.
    assert!(value(&after, "pdns_store_writer_wait_seconds_total", &[]) >= 0.0);
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "pdns_store_writer_wait_seconds_total")
    );
    assert!(after.samples.iter().any(|s| {
        s.metric
            .starts_with("pdns_aggregator_flush_duration_seconds")
    }));
    // The DNSDB requests above are timed, in buckets from 25 µs up: a
    // lookup answered in well under 0.1 ms is told apart from a slow one.
    let timed = after
        .samples
        .iter()
        .find_map(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets)
                if s.metric == "pdns_api_request_duration_seconds"
                    && s.labels.get("surface") == Some("dnsdb_v2") =>
            {
                Some(buckets.clone())
            }
            _ => None,
        })
        .expect("the DNSDB surface's latency histogram");
    assert_eq!(timed.first().map(|b| b.less_than), Some(0.000_025));
    assert!(
        timed
            .windows(2)
            .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count)
    );
    assert!(
        timed
            .last()
            .is_some_and(|b| b.less_than.is_infinite() && b.count >= 2.0)
    );
}

#[test]
fn queries_stay_consistent_while_an_ingest_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let writer = Arc::new(Store::open(&db).unwrap());
    let reader = Arc::new(Store::open_reader(&db).unwrap());
    let server = common::serve(Arc::clone(&reader), ServeConfig::default());
    let owners: Vec<Vec<u8>> = (0..50)
        .map(|i| name::encode_presentation(&format!("h{i}.concurrent.test")).unwrap())
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let w = {
        let (writer, owners, stop) = (Arc::clone(&writer), owners.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && round < 2000 {
                round += 1;
                let mut agg = Aggregator::new(1000, Origin::WIRE);
                // Every round sees every owner once: counts stay equal.
                for o in &owners {
                    agg.record(o, Rtype::A, &[192, 0, 2, 7], 60, 1_700_000_000 + round);
                }
                writer.write(&agg.take()).unwrap();
            }
            round
        })
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last_total = 0;
    let mut checks = 0;
    while Instant::now() < deadline {
        reader.catch_up().unwrap();
        let r = common::get(
            server.addr,
            "/dnsdb/v2/lookup/rrset/name/*.concurrent.test/A?limit=0",
            &[],
        );
        assert_eq!(r.status, 200);
        let lines = r.lines();
        assert_eq!(lines.last().unwrap()["cond"], "succeeded", "{}", r.body);
        let counts: Vec<u64> = lines[1..lines.len() - 1]
            .iter()
            .map(|l| l["obj"]["count"].as_u64().unwrap())
            .collect();
        if !counts.is_empty() {
            // One batch is atomic: a reader sees all owners at one round.
            assert_eq!(counts.len(), 50);
            assert!(
                counts.iter().all(|&c| c == counts[0]),
                "torn read: {counts:?}"
            );
            assert!(counts[0] >= last_total, "count went back");
            last_total = counts[0];
        }
        checks += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = w.join().unwrap();
    assert!(
        checks > 10 && rounds > 10,
        "checks {checks}, rounds {rounds}"
    );
}
