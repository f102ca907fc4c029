//! What a client may hold on the API port: a request head must arrive in
//! time, connections are capped, and SIGTERM ends `serve` within its grace
//! period even while clients hold half-sent requests (slowloris).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::process::ServeProcess;
use pdns_sensor::serve::connections::SHUTDOWN_GRACE;

fn store() -> common::Ingested {
    common::ingest(&[common::pcap("zeek/dns-https.pcap")])
}

/// A connection that sends half a request head and then nothing.
fn half_request(addr: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /dnsdb/v2/ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    c
}

/// Whether the server has closed `c` (end of stream, or a reset) by now,
/// reading whatever it sent before without waiting.
fn closed_now(c: &mut TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match c.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    c.set_nonblocking(false).unwrap();
    closed
}

/// Whether the server closes `c` (end of stream, or a reset) within
/// `limit`, whatever it sends before.
fn closed_within(c: &mut TcpStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
        if started.elapsed() > limit {
            return false;
        }
    }
}

/// The value of `pdns_api_connections_total{result="RESULT"}`.
fn connections(addr: SocketAddr, result: &str) -> f64 {
    let metrics = common::get(addr, "/metrics", &[]);
    assert_eq!(metrics.status, 200);
    let series = format!("pdns_api_connections_total{{result=\"{result}\"}} ");
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in {}", metrics.body))
        .trim()
        .parse()
        .unwrap()
}

/// `pdns_api_connections_open` asked over `conn`, which stays open
/// (HTTP/1.1 keep-alive) for the next request.
fn open_connections_over(conn: &mut TcpStream) -> f64 {
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the kept-alive connection");
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    while raw.len() < head_end + length {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the kept-alive connection");
        raw.extend_from_slice(&buf[..n]);
    }
    let body = std::str::from_utf8(&raw[head_end..head_end + length]).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("pdns_api_connections_open "))
        .unwrap_or_else(|| panic!("no pdns_api_connections_open in {body}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn sigterm_ends_serve_while_clients_hold_half_sent_requests() {
    let ingested = store();
    let mut serve = ServeProcess::start(&ingested.db(), &["--header-timeout", "600"]);
    let held: Vec<TcpStream> = (0..8).map(|_| half_request(serve.addr())).collect();
    // The server is serving them (a full request still gets through).
    assert_eq!(common::get(serve.addr(), "/dnsdb/v2/ping", &[]).status, 200);
    let signalled = Instant::now();
    serve.signal(libc::SIGTERM);
    let status = serve
        .wait_exit(SHUTDOWN_GRACE + Duration::from_secs(10))
        .unwrap_or_else(|| panic!("serve still running:\n{}", serve.stderr()));
    assert!(status.success(), "{status}\n{}", serve.stderr());
    assert!(
        signalled.elapsed() < SHUTDOWN_GRACE + Duration::from_secs(3),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(
        serve.stderr().contains("API connection(s) still open"),
        "{}",
        serve.stderr()
    );
    drop(held);
}

#[test]
fn a_request_head_must_arrive_in_time_and_stalled_clients_do_not_block_others() {
    let ingested = store();
    let serve = ServeProcess::start(&ingested.db(), &["--header-timeout", "1"]);
    let mut held: Vec<TcpStream> = (0..32).map(|_| half_request(serve.addr())).collect();
    // Others are served meanwhile.
    assert_eq!(common::get(serve.addr(), "/dnsdb/v2/ping", &[]).status, 200);
    for c in &mut held {
        assert!(
            closed_within(c, Duration::from_secs(10)),
            "a stalled connection was kept open"
        );
    }
    assert!(connections(serve.addr(), "header_timeout") >= 32.0);
    // An idle connection that never sends a byte goes the same way.
    let mut idle = TcpStream::connect(serve.addr()).unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(10)));
}

#[test]
fn connections_beyond_the_cap_are_closed_and_counted() {
    let ingested = store();
    let serve = ServeProcess::start(
        &ingested.db(),
        &["--max-connections", "4", "--header-timeout", "600"],
    );
    // Every other connection (the start-up probe's, and each scrape's
    // own) must be gone first. A scrape over a fresh connection would
    // itself hold a slot for a moment after its answer ends, so ask over
    // one kept-alive connection until it sees only itself open, and keep
    // it: it is the first of the five.
    let mut first = TcpStream::connect(serve.addr()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_connections_over(&mut first) != 1.0 {
        assert!(Instant::now() < deadline, "connections stay open");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Five connections against a cap of four: exactly one of the four new
    // ones is closed at once — whichever the server accepted last, which
    // under load need not be the one opened last.
    let mut held: Vec<TcpStream> = (0..3).map(|_| half_request(serve.addr())).collect();
    held.push(TcpStream::connect(serve.addr()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed = vec![false; held.len()];
    while Instant::now() < deadline && !closed.contains(&true) {
        for (c, closed) in held.iter_mut().zip(&mut closed) {
            *closed = *closed || closed_now(c);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A moment more, so that a second closing would show.
    std::thread::sleep(Duration::from_millis(500));
    for (c, closed) in held.iter_mut().zip(&mut closed) {
        *closed = *closed || closed_now(c);
    }
    assert_eq!(
        closed.iter().filter(|&&c| c).count(),
        1,
        "of five connections against --max-connections 4, the kept-alive one open, these were \
         closed: {closed:?}"
    );
    assert!(
        !closed_now(&mut first),
        "the kept-alive connection was closed"
    );
    drop(held);
    drop(first);
    // Slots come back as the held connections end.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TcpStream::connect(serve.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /dnsdb/v2/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the API never took connections again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(connections(serve.addr(), "refused") >= 1.0);
    assert!(connections(serve.addr(), "accepted") >= 5.0);
}
