//! dnstap from real senders equals the wire: Unbound, PowerDNS Recursor
//! and BIND resolve a known set of names through an NSD in another
//! namespace and log dnstap to the sensor (a Unix socket, TCP, or a file
//! the sensor ingests later), while tcpdump captures the same resolver's
//! upstream link. The RESOLVER_RESPONSE messages are the responses on that
//! link, so the records and counts stored from dnstap must equal the ones
//! the sensor stores from the capture (its wire decoder is the oracle),
//! and for files also the answers `dnstap-ldns` (an independent decoder)
//! finds in them. The senders log every message type; the sensor keeps
//! RESOLVER_RESPONSE only unless told otherwise: client responses, which
//! include cache hits, would make the counts differ.
//!
//! Two more message types from two more senders: dnsdist's
//! CLIENT_RESPONSE (cache hits included) must be what dig was told, and
//! NSD's AUTH_RESPONSE what a capture of NSD's interface holds.
//!
//! See `dnstap_support` for the setup and what it took to get each sender
//! to log promptly and completely.

mod dnstap_support;
mod live_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use dnstap_support::*;
use live_support::num;

const RESOLVER_RESPONSE: [(&str, &str); 1] = [("type", "resolver_response")];
const CLIENT_RESPONSE: [(&str, &str); 1] = [("type", "client_response")];

/// A group's id, from `getent group`.
fn gid(group: &str) -> u32 {
    let line = live_support::run(
        std::process::Command::new("getent").args(["group", group]),
        Duration::from_secs(10),
    );
    line.split(':').nth(2).unwrap().trim().parse().unwrap()
}

fn rr(name: &str, rtype: &str, rdata: &str) -> Rr {
    (name.to_string(), rtype.to_string(), rdata.to_string())
}

/// The store of the upstream capture (by the wire decoder) and the number
/// of DNS responses in it.
struct Upstream {
    wire: Ingested,
    responses: u64,
}

impl Upstream {
    fn of(pcap: &Path) -> Upstream {
        let wire = ingest(&[pcap]);
        let responses = num(&wire.stats, &["dns_responses"]);
        // Every query of the list but the cache hits went upstream.
        assert!(
            responses >= 15,
            "only {responses} upstream responses captured: {:#}",
            wire.stats
        );
        Upstream { wire, responses }
    }
}

/// The checks every comparison makes: the dnstap store `tap` equals the
/// wire store `wire` record for record and count for count (negative
/// answers too), is not trivial, holds the expected records, and each
/// side has its own origin.
fn assert_tap_equals_wire(tap: &Stored, wire: &Stored, what: &str) {
    assert_same_counts(
        what,
        &tap.record_counts(),
        "the upstream capture",
        &wire.record_counts(),
    );
    assert_same_counts(
        &format!("{what} (negative answers)"),
        &tap.negative_counts(),
        "the upstream capture (negative answers)",
        &wire.negative_counts(),
    );
    assert!(
        tap.records.len() >= 20,
        "too few records to mean anything: {:#?}",
        tap.records
    );
    let counts = tap.record_counts();
    for key in [
        rr("www.example.test.", "A", "192.0.2.80"),
        rr("www.example.test.", "A", "192.0.2.81"),
        rr("alias2.example.test.", "CNAME", "alias.example.test."),
        rr("ext.example.test.", "CNAME", "www.other.test."),
        rr("www.other.test.", "AAAA", "2001:db8:1::180"),
        rr("txt.example.test.", "TXT", "\"first\" \"second\" \"third\""),
        rr("example.test.", "MX", "20 mx.other.test."),
        rr("80.2.0.192.in-addr.arpa.", "PTR", "www.example.test."),
        rr("cdn.other.test.", "CNAME", "www.other.test."),
    ] {
        assert!(
            counts.contains_key(&key),
            "{what}: no {key:?} in {counts:#?}"
        );
    }
    assert_eq!(
        tap.negative_counts()
            .get(&rr("nx.example.test.", "A", "NXDOMAIN")),
        Some(&1),
        "{what}: {:#?}",
        tap.negatives
    );
    tap.assert_origin(&["dnstap"]);
    wire.assert_origin(&["wire"]);
}

/// A counter or gauge of `/metrics` text as an integer (0 if absent).
fn counter(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metric(metrics, name, labels).unwrap_or(0.0) as u64
}

/// The non-zero dnstap samples of `/metrics` text (for failure messages).
fn dnstap_metrics(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| l.starts_with("pdns_dnstap") && !l.ends_with(" 0"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How a sender's connections ended (`pdns_dnstap_connections_ended_total`).
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// With a STOP frame (Unbound, BIND, fstrm_replay). Unbound closes
    /// right after its STOP without reading the FINISH: writing the FINISH
    /// may fail (EPIPE on a Unix socket), and the connection still ended
    /// properly, with everything sent.
    Stop,
    /// Closed without STOP (PowerDNS Recursor).
    Close,
}

/// The dnstap counters once the sender is gone: every frame decoded, each
/// message type counted, exactly `responses` recorded and the rest
/// discarded for the right reason (queries; responses of a type not
/// selected, i.e. `not_selected`), `connections` accepted and ended as
/// `ending` says, none open.
fn assert_counters(
    metrics: &str,
    responses: u64,
    not_selected: u64,
    connections: u64,
    ending: Ending,
) {
    let m = |name: &str, labels: &[(&str, &str)]| counter(metrics, name, labels);
    let dnstap = dnstap_metrics(metrics);
    let messages = |t: &str| m("pdns_dnstap_messages_total", &[("type", t)]);
    let discarded = |r: &str| m("pdns_dnstap_discarded_total", &[("reason", r)]);
    let queries: u64 = [
        "resolver_query",
        "client_query",
        "forwarder_query",
        "auth_query",
    ]
    .iter()
    .map(|t| messages(t))
    .sum();
    assert_eq!(m("pdns_dnstap_recorded_total", &[]), responses, "{dnstap}");
    assert_eq!(discarded("query"), queries, "{dnstap}");
    assert_eq!(discarded("type_not_selected"), not_selected, "{dnstap}");
    let frames = metric_sum(metrics, "pdns_dnstap_frames_total");
    let decoded = metric_sum(metrics, "pdns_dnstap_messages_total");
    assert_eq!(frames, decoded, "every frame a message:\n{dnstap}");
    assert_eq!(
        frames as u64,
        responses + queries + not_selected,
        "recorded or discarded, each frame once:\n{dnstap}"
    );
    for reason in [
        "protobuf",
        "frame_too_large",
        "truncated_frame",
        "no_response",
        "no_time",
    ] {
        assert_eq!(discarded(reason), 0, "{reason}:\n{dnstap}");
    }
    assert_eq!(
        m("pdns_dnstap_connections_total", &[("result", "accepted")]),
        connections,
        "{dnstap}"
    );
    assert_eq!(
        m("pdns_dnstap_connections_total", &[("result", "refused")]),
        0,
        "{dnstap}"
    );
    let how = match ending {
        Ending::Stop => "finished",
        Ending::Close => "closed",
    };
    assert_eq!(
        m("pdns_dnstap_connections_ended_total", &[("how", how)]),
        connections,
        "connections ended {how}:\n{dnstap}"
    );
    assert_eq!(m("pdns_dnstap_connections_open", &[]), 0, "{dnstap}");
    assert_eq!(
        m("pdns_dnstap_handshake_failures_total", &[]),
        0,
        "{dnstap}"
    );
}

/// Unbound's counters: it logged a RESOLVER_QUERY and a RESOLVER_RESPONSE
/// per upstream exchange and a CLIENT_QUERY and a CLIENT_RESPONSE per
/// client query, over one connection ended with STOP.
fn assert_unbound_counters(metrics: &str, responses: u64) {
    let clients = QUERIES.len() as u64;
    let messages = |t: &str| counter(metrics, "pdns_dnstap_messages_total", &[("type", t)]);
    let dnstap = dnstap_metrics(metrics);
    assert_eq!(messages("resolver_response"), responses, "{dnstap}");
    assert_eq!(messages("resolver_query"), responses, "{dnstap}");
    assert_eq!(messages("client_query"), clients, "{dnstap}");
    assert_eq!(messages("client_response"), clients, "{dnstap}");
    assert_counters(metrics, responses, clients, 1, Ending::Stop);
}

/// Queried twice but fetched once: the second answer came from the
/// resolver's cache, which neither the upstream link nor RESOLVER_RESPONSE
/// sees (a sensor storing CLIENT_RESPONSE would count 2).
fn assert_cache_hits_not_counted(tap: &Stored) {
    let counts = tap.record_counts();
    for key in [
        rr("txt.example.test.", "TXT", "\"hello world\""),
        rr("www.example.test.", "AAAA", "2001:db8::80"),
    ] {
        assert_eq!(counts.get(&key), Some(&1), "{key:?}: {counts:#?}");
    }
}

#[test]
fn unbound_unix_equals_upstream_capture() {
    require_senders();
    let lab = Lab::new("tapu");
    let _nsd = Nsd::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dnstap.sock");
    // A stale socket file, as a killed sensor leaves it: replaced at start.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(is_socket(&socket));

    let mut sensor = DnstapSensor::start(
        lab.res(),
        &[DnstapTarget::Unix(socket.clone())],
        &[
            "--dnstap-socket-mode",
            "0620",
            "--dnstap-socket-group",
            "nogroup",
        ],
    );
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o620, "{meta:?}");
    assert_eq!(meta.gid(), gid("nogroup"), "{meta:?}");
    let capture = Tcpdump::start(
        lab.res(),
        lab.upstream_if(),
        UPSTREAM_FILTER,
        &dir.path().join("upstream.pcap"),
    );
    let unbound = Unbound::start(
        &lab,
        &UnboundSetup::tapping(DnstapTarget::Unix(socket.clone())),
    );
    sensor.wait_metric(
        "pdns_dnstap_connections_open",
        &[],
        1.0,
        Duration::from_secs(20),
    );

    run_queries(&lab);
    let upstream = Upstream::of(&capture.stop());
    // Unbound sends about a second after the query and drops what it has
    // not sent when stopped: wait for everything first.
    sensor.wait_metric(
        "pdns_dnstap_messages_total",
        &RESOLVER_RESPONSE,
        upstream.responses as f64,
        Duration::from_secs(30),
    );
    unbound.stop();
    sensor.wait_metric_eq(
        "pdns_dnstap_connections_open",
        &[],
        0.0,
        Duration::from_secs(20),
    );
    let metrics = sensor.metrics();
    let stopped = sensor.stop();

    // Exactly the responses of the capture, out of a stream that also held
    // resolver queries and client queries and responses.
    assert_unbound_counters(&metrics, upstream.responses);

    let tap = Stored::read(&stopped.db);
    let wire = Stored::read(&upstream.wire.db);
    assert_tap_equals_wire(&tap, &wire, "dnstap from Unbound (unix)");
    assert_cache_hits_not_counted(&tap);
}

#[test]
fn unbound_tcp() {
    require_senders();
    let lab = Lab::new("tapt");
    let _nsd = Nsd::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    // 127.0.0.1 of RES: the sensor runs there, next to Unbound.
    let target = DnstapTarget::Tcp("127.0.0.1:6000".parse().unwrap());
    let mut sensor = DnstapSensor::start(lab.res(), std::slice::from_ref(&target), &[]);
    let idle = sensor.metrics();
    assert_eq!(
        counter(
            &idle,
            "pdns_dnstap_connections_total",
            &[("result", "accepted")]
        ),
        0,
        "{}",
        dnstap_metrics(&idle)
    );
    let capture = Tcpdump::start(
        lab.res(),
        lab.upstream_if(),
        UPSTREAM_FILTER,
        &dir.path().join("upstream.pcap"),
    );
    // Upstream over TCP too: one connection reused for many queries, on
    // the wire and in the socket_protocol of the messages.
    // At verbosity 3 Unbound logs every upstream exchange: once (in a
    // loaded suite run) it reported 12 of the 21 on the wire over dnstap,
    // and a failure here prints what it did.
    let unbound = Unbound::start(
        &lab,
        &UnboundSetup {
            tcp_upstream: true,
            verbosity: 3,
            ..UnboundSetup::tapping(target.clone())
        },
    );
    sensor.wait_metric(
        "pdns_dnstap_connections_open",
        &[],
        1.0,
        Duration::from_secs(20),
    );

    run_queries(&lab);
    let upstream = Upstream::of(&capture.stop());
    wait_for(Duration::from_secs(30), || {
        let metrics = sensor.metrics();
        let got = counter(&metrics, "pdns_dnstap_messages_total", &RESOLVER_RESPONSE);
        if got >= upstream.responses {
            Ok(())
        } else {
            Err(format!(
                "{got} RESOLVER_RESPONSE messages of the {} responses on the upstream link:\n\
                 {}\nUnbound's log:\n{}",
                upstream.responses,
                dnstap_metrics(&metrics),
                unbound.log()
            ))
        }
    });
    let running = sensor.metrics();
    assert_eq!(
        metric(&running, "pdns_dnstap_connections_open", &[]),
        Some(1.0),
        "{}",
        dnstap_metrics(&running)
    );
    unbound.stop();
    sensor.wait_metric_eq(
        "pdns_dnstap_connections_open",
        &[],
        0.0,
        Duration::from_secs(20),
    );
    let metrics = sensor.metrics();
    let stopped = sensor.stop();

    assert_unbound_counters(&metrics, upstream.responses);
    let tap = Stored::read(&stopped.db);
    let wire = Stored::read(&upstream.wire.db);
    assert_tap_equals_wire(&tap, &wire, "dnstap from Unbound (tcp)");
    assert_cache_hits_not_counted(&tap);
}

#[test]
fn fstrm_capture_file_ingest_equals_live() {
    require_senders();
    live_support::require(&["fstrm_replay"]);
    let lab = Lab::new("tapf");
    let _nsd = Nsd::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("capture.sock");
    let file = dir.path().join("unbound.fstrm");
    let receiver = FstrmCapture::start(lab.res(), &DnstapTarget::Unix(socket.clone()), &file);
    let capture = Tcpdump::start(
        lab.res(),
        lab.upstream_if(),
        UPSTREAM_FILTER,
        &dir.path().join("upstream.pcap"),
    );
    let unbound = Unbound::start(&lab, &UnboundSetup::tapping(DnstapTarget::Unix(socket)));
    run_queries(&lab);
    let last_query = Instant::now();
    let upstream = Upstream::of(&capture.stop());
    // fstrm_capture writes its file only at the end: wait until it has
    // read nothing new for 1.5 s, and Unbound's 1 s send timer has fired
    // at least twice since the last query.
    let mut read = receiver.bytes_read();
    let mut changed = Instant::now();
    wait_for(Duration::from_secs(30), || {
        let now = receiver.bytes_read();
        if now != read {
            (read, changed) = (now, Instant::now());
        }
        if last_query.elapsed() >= Duration::from_millis(2500)
            && changed.elapsed() >= Duration::from_millis(1500)
        {
            Ok(())
        } else {
            Err(format!("fstrm_capture still reading ({read} bytes)"))
        }
    });
    unbound.stop();
    let summary = receiver.stop();

    // The reference is sound: the file holds every upstream response, and
    // ldns finds in them what the wire decoder found on the link.
    let messages = ldns_messages(&file);
    let kinds = kinds(&messages);
    let client = QUERIES.len() as u64;
    for (kind, n) in [
        ("RESOLVER_RESPONSE", upstream.responses),
        ("RESOLVER_QUERY", upstream.responses),
        ("CLIENT_QUERY", client),
        ("CLIENT_RESPONSE", client),
    ] {
        assert_eq!(
            kinds.get(kind),
            Some(&n),
            "{kind} in the file (Unbound lost messages?): {kinds:?}\n{summary:?}"
        );
    }
    let wire = Stored::read(&upstream.wire.db);
    assert_same_counts(
        "dnstap-ldns (answers of RESOLVER_RESPONSE)",
        &answer_counts(&messages, "RESOLVER_RESPONSE"),
        "the upstream capture",
        &wire.normalised_counts(),
    );
    assert_same_counts(
        "dnstap-ldns (negative RESOLVER_RESPONSE)",
        &negative_counts(&messages, "RESOLVER_RESPONSE"),
        "the upstream capture",
        &wire.negative_counts(),
    );

    // The file, ingested.
    let ingested = ingest(&[&file]);
    let from_file = Stored::read(&ingested.db);
    assert_tap_equals_wire(&from_file, &wire, "the fstrm_capture file (ingest)");
    assert_cache_hits_not_counted(&from_file);
    assert_same_counts(
        "the fstrm_capture file (ingest)",
        &from_file.normalised_counts(),
        "dnstap-ldns",
        &answer_counts(&messages, "RESOLVER_RESPONSE"),
    );
    // The ingest report's per-type message counts are ldns's.
    let report = &ingested.stats["dnstap"];
    let reported: std::collections::BTreeMap<String, u64> = report["messages"]
        .as_object()
        .unwrap_or_else(|| panic!("no dnstap report: {:#}", ingested.stats))
        .iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(reported, kinds, "{report:#}");
    assert_eq!(
        report["recorded"].as_u64(),
        Some(upstream.responses),
        "{report:#}"
    );

    // The same file replayed into a live sensor stores the same.
    let live_socket = dir.path().join("sensor.sock");
    let mut sensor =
        DnstapSensor::start(lab.res(), &[DnstapTarget::Unix(live_socket.clone())], &[]);
    live_support::run(
        lab.res()
            .cmd("fstrm_replay")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(&live_socket)
            .arg("-r")
            .arg(&file),
        Duration::from_secs(30),
    );
    sensor.wait_metric(
        "pdns_dnstap_messages_total",
        &RESOLVER_RESPONSE,
        upstream.responses as f64,
        Duration::from_secs(30),
    );
    sensor.wait_metric_eq(
        "pdns_dnstap_connections_open",
        &[],
        0.0,
        Duration::from_secs(20),
    );
    let metrics = sensor.metrics();
    let stopped = sensor.stop();
    assert_unbound_counters(&metrics, upstream.responses);
    let live = Stored::read(&stopped.db);
    assert_same_counts(
        "the fstrm_capture file (live, replayed)",
        &live.record_counts(),
        "the fstrm_capture file (ingest)",
        &from_file.record_counts(),
    );
    assert_same_counts(
        "the fstrm_capture file (live, replayed; negative answers)",
        &live.negative_counts(),
        "the fstrm_capture file (ingest; negative answers)",
        &from_file.negative_counts(),
    );
    live.assert_origin(&["dnstap"]);
}

#[test]
fn powerdns_recursor_many_connections() {
    require_senders();
    let lab = Lab::new("tapr");
    let _nsd = Nsd::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dnstap.sock");
    let mut sensor = DnstapSensor::start(lab.res(), &[DnstapTarget::Unix(socket.clone())], &[]);
    let capture = Tcpdump::start(
        lab.res(),
        lab.upstream_if(),
        UPSTREAM_FILTER,
        &dir.path().join("upstream.pcap"),
    );
    // Every thread of the recursor (two workers, distributor, handler,
    // ...) opens a connection of its own.
    let recursor = Recursor::start(&lab, &socket, 2);
    let open = sensor.wait_metric(
        "pdns_dnstap_connections_open",
        &[],
        2.0,
        Duration::from_secs(20),
    );

    run_queries(&lab);
    let upstream = Upstream::of(&capture.stop());
    // The recursor flushes once a second and loses what it has not
    // flushed when stopped.
    sensor.wait_metric(
        "pdns_dnstap_messages_total",
        &RESOLVER_RESPONSE,
        upstream.responses as f64,
        Duration::from_secs(30),
    );
    let running = sensor.metrics();
    assert!(
        counter(&running, "pdns_dnstap_connections_open", &[]) >= 2,
        "{}",
        dnstap_metrics(&running)
    );
    // No STOP frame: the recursor just closes its connections.
    recursor.stop();
    sensor.wait_metric_eq(
        "pdns_dnstap_connections_open",
        &[],
        0.0,
        Duration::from_secs(20),
    );
    let metrics = sensor.metrics();
    let stopped = sensor.stop();

    // Queries and responses logged, nothing else; every connection
    // (those without traffic too) ended without STOP.
    let accepted = counter(
        &metrics,
        "pdns_dnstap_connections_total",
        &[("result", "accepted")],
    );
    assert!(accepted as f64 >= open, "{}", dnstap_metrics(&metrics));
    let messages = |t: &str| counter(&metrics, "pdns_dnstap_messages_total", &[("type", t)]);
    assert_eq!(
        messages("resolver_response"),
        upstream.responses,
        "{}",
        dnstap_metrics(&metrics)
    );
    assert_eq!(
        messages("resolver_query"),
        upstream.responses,
        "{}",
        dnstap_metrics(&metrics)
    );
    assert_counters(&metrics, upstream.responses, 0, accepted, Ending::Close);
    let tap = Stored::read(&stopped.db);
    let wire = Stored::read(&upstream.wire.db);
    assert_tap_equals_wire(&tap, &wire, "dnstap from PowerDNS Recursor");
    assert_cache_hits_not_counted(&tap);
}

#[test]
fn bind_file_ingest() {
    require_senders();
    let lab = Lab::new("tapb");
    let _nsd = Nsd::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("named.dnstap");
    let capture = Tcpdump::start(
        lab.res(),
        lab.upstream_if(),
        UPSTREAM_FILTER,
        &dir.path().join("upstream.pcap"),
    );
    let bind = Bind::start(&lab, &BindOutput::File(file.clone()));
    run_queries(&lab);
    let upstream = Upstream::of(&capture.stop());
    // named completes the file when it exits.
    bind.stop();

    let messages = ldns_messages(&file);
    let kinds = kinds(&messages);
    assert_eq!(
        kinds.get("RESOLVER_RESPONSE"),
        Some(&upstream.responses),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.get("CLIENT_RESPONSE"),
        Some(&(QUERIES.len() as u64)),
        "{kinds:?}"
    );

    // The reference is sound: ldns finds in the file what the wire decoder
    // found on the link.
    let wire = Stored::read(&upstream.wire.db);
    assert_same_counts(
        "dnstap-ldns (BIND's RESOLVER_RESPONSE answers)",
        &answer_counts(&messages, "RESOLVER_RESPONSE"),
        "the upstream capture",
        &wire.normalised_counts(),
    );

    let ingested = ingest(&[&file]);
    let tap = Stored::read(&ingested.db);
    assert_tap_equals_wire(&tap, &wire, "BIND's dnstap file");
    assert_cache_hits_not_counted(&tap);
    let report = &ingested.stats["dnstap"];
    assert_eq!(
        report["recorded"].as_u64(),
        Some(upstream.responses),
        "{report:#}"
    );
    assert_eq!(
        report["messages"]["client_response"].as_u64(),
        Some(QUERIES.len() as u64),
        "{report:#}"
    );
}

/// Asked for client responses instead, the sensor stores exactly what the
/// clients were told, cache hits included (dig is the oracle), and nothing
/// of the resolver's own traffic.
#[test]
fn unbound_client_responses_when_asked() {
    require_senders();
    let lab = Lab::new("tapc");
    let _nsd = Nsd::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dnstap.sock");
    let mut sensor = DnstapSensor::start(
        lab.res(),
        &[DnstapTarget::Unix(socket.clone())],
        &["--dnstap-types", "client-response"],
    );
    let unbound = Unbound::start(&lab, &UnboundSetup::tapping(DnstapTarget::Unix(socket)));
    let answers = run_queries(&lab);
    sensor.wait_metric(
        "pdns_dnstap_messages_total",
        &CLIENT_RESPONSE,
        QUERIES.len() as f64,
        Duration::from_secs(30),
    );
    unbound.stop();
    sensor.wait_metric_eq(
        "pdns_dnstap_connections_open",
        &[],
        0.0,
        Duration::from_secs(20),
    );
    let metrics = sensor.metrics();
    let stopped = sensor.stop();
    // Now the resolver responses are the ones not selected.
    let resolver = counter(&metrics, "pdns_dnstap_messages_total", &RESOLVER_RESPONSE);
    assert!(resolver >= 15, "{}", dnstap_metrics(&metrics));
    assert_counters(&metrics, QUERIES.len() as u64, resolver, 1, Ending::Stop);

    let mut told = std::collections::BTreeMap::new();
    for answer in &answers {
        for record in &answer.answers {
            *told.entry(normalise(record)).or_insert(0u64) += 1;
        }
    }
    let tap = Stored::read(&stopped.db);
    assert_same_counts(
        "client responses stored",
        &tap.normalised_counts(),
        "dig's answers",
        &told,
    );
    // Asked twice, stored twice: the cache hit is a client response.
    assert_eq!(
        tap.record_counts()
            .get(&rr("txt.example.test.", "TXT", "\"hello world\"")),
        Some(&2)
    );
    tap.assert_origin(&["dnstap"]);
}

/// dnsdist in front of Unbound (which logs nothing) with a packet cache:
/// every answer dnsdist sends is a CLIENT_RESPONSE, the backend's and the
/// cache's alike, so the sensor asked for client responses stores exactly
/// what dig was told, each answer once per query. A capture of the
/// dnsdist-backend exchanges on loopback shows that some answers did come
/// from the cache.
#[test]
fn dnsdist_client_responses() {
    require_senders();
    let lab = Lab::new("tapd");
    let _nsd = Nsd::start(&lab);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dnstap.sock");
    let mut sensor = DnstapSensor::start(
        lab.res(),
        &[DnstapTarget::Unix(socket.clone())],
        &["--dnstap-types", "client-response"],
    );
    let backend_capture = Tcpdump::start(
        lab.res(),
        "lo",
        &format!("host {BACKEND} and port 53"),
        &dir.path().join("backend.pcap"),
    );
    let _unbound = Unbound::start(
        &lab,
        &UnboundSetup {
            dnstap: None,
            tcp_upstream: false,
            interface: BACKEND,
            verbosity: 1,
        },
    );
    let dnsdist = Dnsdist::start(&lab, BACKEND, &DnstapTarget::Unix(socket));
    sensor.wait_metric(
        "pdns_dnstap_connections_open",
        &[],
        1.0,
        Duration::from_secs(20),
    );

    let answers = run_queries(&lab);
    let clients = QUERIES.len() as u64;
    let backend = ingest(&[&backend_capture.stop()]);
    let misses = num(&backend.stats, &["dns_responses"]);
    // www A and www AAAA are asked twice over UDP: the repeats are cache
    // hits. (txt TXT is asked again over TCP: dnsdist 1.7 caches UDP and
    // TCP answers apart, so that one goes to the backend.)
    assert!(
        misses + 2 <= clients,
        "{misses} of {clients} queries went to the backend: {:#}",
        backend.stats
    );
    // dnsdist flushes once a second and loses what it has not flushed
    // when stopped: wait for every answer first.
    sensor.wait_metric(
        "pdns_dnstap_messages_total",
        &CLIENT_RESPONSE,
        clients as f64,
        Duration::from_secs(30),
    );
    dnsdist.stop();
    sensor.wait_metric_eq(
        "pdns_dnstap_connections_open",
        &[],
        0.0,
        Duration::from_secs(20),
    );
    let metrics = sensor.metrics();
    let stopped = sensor.stop();

    // One connection, CLIENT_RESPONSE only, one per query, each recorded;
    // the connection ended without STOP (dnsdist exits at once).
    let messages = |t: &str| counter(&metrics, "pdns_dnstap_messages_total", &[("type", t)]);
    assert_eq!(
        messages("client_response"),
        clients,
        "{}",
        dnstap_metrics(&metrics)
    );
    assert_counters(&metrics, clients, 0, 1, Ending::Close);
    assert_eq!(
        counter(
            &metrics,
            "pdns_dnstap_frames_total",
            &[("identity", "dnsdist")]
        ),
        clients,
        "{}",
        dnstap_metrics(&metrics)
    );

    let tap = Stored::read(&stopped.db);
    assert_same_counts(
        "client responses stored",
        &tap.normalised_counts(),
        "dig's answers",
        &told(&answers),
    );
    // Asked twice, told twice (once from the cache), stored twice.
    assert_eq!(
        tap.record_counts()
            .get(&rr("www.example.test.", "AAAA", "2001:db8::80")),
        Some(&2),
        "{:#?}",
        tap.records
    );
    assert_eq!(
        tap.negative_counts()
            .get(&rr("nx.example.test.", "A", "NXDOMAIN")),
        Some(&1),
        "{:#?}",
        tap.negatives
    );
    tap.assert_origin(&["dnstap"]);
}

/// NSD logs AUTH_RESPONSE (and AUTH_QUERY) to the sensor, which stores
/// auth responses by default; dig asks NSD directly over the link, and a
/// capture of NSD's interface is the oracle: the tap's records and
/// negative answers equal the wire's, and both equal what dig was told.
#[test]
fn nsd_auth_responses() {
    require_senders();
    let lab = Lab::new("tapn");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dnstap.sock");
    // The sensor runs next to NSD; it could be anywhere the socket is.
    let mut sensor = DnstapSensor::start(lab.auth(), &[DnstapTarget::Unix(socket.clone())], &[]);
    let capture = Tcpdump::start(
        lab.auth(),
        lab.auth_if(),
        "port 53",
        &dir.path().join("auth.pcap"),
    );
    let nsd = Nsd::start_dnstap(&lab, &socket);
    sensor.wait_metric(
        "pdns_dnstap_connections_open",
        &[],
        1.0,
        Duration::from_secs(20),
    );

    let answers = run_auth_queries(&lab);
    let clients = QUERIES.len() as u64;
    let wire = ingest(&[&capture.stop()]);
    assert_eq!(
        num(&wire.stats, &["dns_responses"]),
        clients,
        "{:#}",
        wire.stats
    );
    // NSD's collector flushes about once a second; on SIGTERM it flushes
    // the rest and ends with STOP (nothing lost), but wait anyway so the
    // counters are complete while the connection is open.
    sensor.wait_metric(
        "pdns_dnstap_messages_total",
        &[("type", "auth_response")],
        clients as f64,
        Duration::from_secs(30),
    );
    nsd.stop();
    sensor.wait_metric_eq(
        "pdns_dnstap_connections_open",
        &[],
        0.0,
        Duration::from_secs(20),
    );
    let metrics = sensor.metrics();
    let stopped = sensor.stop();

    let messages = |t: &str| counter(&metrics, "pdns_dnstap_messages_total", &[("type", t)]);
    let dnstap = dnstap_metrics(&metrics);
    assert_eq!(messages("auth_response"), clients, "{dnstap}");
    assert_eq!(messages("auth_query"), clients, "{dnstap}");
    assert_counters(&metrics, clients, 0, 1, Ending::Stop);
    assert_eq!(
        counter(
            &metrics,
            "pdns_dnstap_frames_total",
            &[("identity", "nsd-test")]
        ),
        2 * clients,
        "{dnstap}"
    );

    let tap = Stored::read(&stopped.db);
    let wire = Stored::read(&wire.db);
    assert_same_counts(
        "dnstap from NSD",
        &tap.record_counts(),
        "the capture of NSD's interface",
        &wire.record_counts(),
    );
    assert_same_counts(
        "dnstap from NSD (negative answers)",
        &tap.negative_counts(),
        "the capture of NSD's interface (negative answers)",
        &wire.negative_counts(),
    );
    assert_same_counts(
        "dnstap from NSD",
        &tap.normalised_counts(),
        "dig's answers",
        &told(&answers),
    );
    for (key, n) in [
        (rr("nx.example.test.", "A", "NXDOMAIN"), 1),
        (rr("nodata.example.test.", "AAAA", "NODATA"), 1),
    ] {
        assert_eq!(
            tap.negative_counts().get(&key),
            Some(&n),
            "{key:?}: {:#?}",
            tap.negatives
        );
    }
    let counts = tap.record_counts();
    for (key, n) in [
        // Asked twice, answered twice: an authoritative server has no cache.
        (rr("www.example.test.", "AAAA", "2001:db8::80"), 2),
        // NSD follows ext's CNAME into other.test, which it serves too.
        (rr("ext.example.test.", "CNAME", "www.other.test."), 1),
        (rr("www.other.test.", "AAAA", "2001:db8:1::180"), 2),
        (
            rr("80.2.0.192.in-addr.arpa.", "PTR", "www.example.test."),
            1,
        ),
    ] {
        assert_eq!(counts.get(&key), Some(&n), "{key:?}: {counts:#?}");
    }
    tap.assert_origin(&["dnstap"]);
    wire.assert_origin(&["wire"]);
}
