//! `pdns-sensor run` serves its API over TLS too, and SIGHUP reloads the
//! certificate without stopping the capture: the serial curl sees changes,
//! the run goes on capturing and exits cleanly on SIGTERM.

mod common;
mod live_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::tls::TestCa;
use live_support::*;

/// The serial numbers (hex, leaf first) of the chain the API serves, as
/// curl shows them.
fn served_serials(ns: &Netns, ca: &std::path::Path) -> String {
    let out = run(
        ns.cmd("curl").args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            ca.to_str().unwrap(),
            "-o",
            "/dev/null",
            "-w",
            "%{certs}",
            "https://127.0.0.1:8443/dnsdb/v2/ping",
        ]),
        Duration::from_secs(20),
    );
    out.lines()
        .filter_map(|l| l.strip_prefix("Serial Number:"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn run_reloads_its_certificate_on_sighup_and_keeps_capturing() {
    require(&["ip", "dig", "dnsmasq", "curl"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write_ca(dir.path());
    let cert = ca.server_cert(dir.path(), "server", 0x1001);
    let ns = Netns::new("tls");
    let sensor = Sensor::start(
        &ns,
        &[
            "-i",
            "lo",
            "--listen",
            "127.0.0.1:8443",
            "--tls-cert",
            cert.cert.to_str().unwrap(),
            "--tls-key",
            cert.key.to_str().unwrap(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let before = loop {
        let (status, _, _) = output(
            ns.cmd("curl")
                .args(["-sS", "-k", "https://127.0.0.1:8443/dnsdb/v2/ping"]),
            Duration::from_secs(10),
        );
        if status.success() {
            break served_serials(&ns, &ca_file);
        }
        assert!(Instant::now() < deadline, "no API:\n{}", sensor.stderr());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(before.starts_with("1001,"), "{before}");

    let next = ca.server_cert(dir.path(), "next", 0x2002);
    std::fs::copy(&next.cert, &cert.cert).unwrap();
    std::fs::copy(&next.key, &cert.key).unwrap();
    sensor.proc.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sensor.stderr().contains("TLS certificate reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload after SIGHUP:\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = served_serials(&ns, &ca_file);
    assert!(after.starts_with("2002,"), "{after}");

    // Still capturing: a DNS exchange on lo after the reload is recorded.
    let dnsmasq = ns
        .cmd("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--user=root",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--host-record=after.reload.test,192.0.2.77",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _dnsmasq = Proc::new(dnsmasq, "dnsmasq");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, answer, _) = output(
            ns.cmd("dig").args([
                "+short",
                "+tries=1",
                "+time=1",
                "@127.0.0.1",
                "after.reload.test",
            ]),
            Duration::from_secs(5),
        );
        if answer.trim() == "192.0.2.77" {
            break;
        }
        assert!(Instant::now() < deadline, "dnsmasq did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = sensor.stop();
    assert!(stopped.status.success());
    let records = dump(&stopped.db);
    assert!(
        records.contains_key(&(
            "after.reload.test.".to_string(),
            "A".to_string(),
            "192.0.2.77".to_string()
        )),
        "{records:?}\n{}",
        stopped.stderr
    );
}
