//! Interfaces that come and go under a running `run`: deleted and created
//! again under the same name (a new index), set down and up, or not there
//! yet when the sensor starts. The capture sockets are bound to every
//! device and the kernel filter takes the named interface's packets, so
//! the sensor follows the name without reopening anything (it has dropped
//! the capabilities that would need). Real captures are replayed before
//! and after each change; what the database holds must equal an `ingest`
//! of the same captures, and `pdns_capture_interface_up{interface}` and
//! the log lines must say what happened.

mod live_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use live_support::*;

/// The API of a sensor started by [`Sensor::start`] (its default).
const METRICS_URL: &str = "http://127.0.0.1:8081/metrics";

/// One sample of `/metrics` in `ns`, e.g.
/// `pdns_capture_interface_up{interface="veth-b"}`; None if absent.
fn metric(ns: &Netns, sample: &str) -> Option<f64> {
    let (status, text, _) = output(
        ns.cmd("curl").args(["-sS", "--max-time", "5", METRICS_URL]),
        Duration::from_secs(10),
    );
    if !status.success() {
        return None;
    }
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(sample)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

fn gauge(iface: &str) -> String {
    format!("pdns_capture_interface_up{{interface=\"{iface}\"}}")
}

/// Waits (20 s at most) until the sample has `value`.
fn wait_metric(ns: &Netns, sensor: &Sensor, sample: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = metric(ns, sample);
        if now == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sample} is {now:?}, not {value}:\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (20 s at most) until the sensor has logged a line containing
/// `text`.
fn wait_log(sensor: &Sensor, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sensor.stderr().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no log line with {text:?}:\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the kernel has offered at least `packets` packets to the
/// rings of `iface` (what was replayed is in the rings, whatever happens
/// to the interface next).
fn wait_packets(ns: &Netns, sensor: &Sensor, iface: &str, packets: u64) {
    let sample = format!("pdns_capture_packets_total{{interface=\"{iface}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = metric(ns, &sample).unwrap_or(0.0) as u64;
        if now >= packets {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sample} is {now}, not {packets} yet:\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The index of `iface` in `ns`.
fn ifindex(ns: &Netns, iface: &str) -> u32 {
    ns.run(&["cat", &format!("/sys/class/net/{iface}/ifindex")])
        .trim()
        .parse()
        .unwrap()
}

/// Creates the veth pair `veth-a` (in `a`) / `veth-b` (in `b`) with the
/// MACs [`Link`] gives them, both up.
fn add_veth(a: &Netns, b: &Netns) {
    run(
        Command::new("ip").args([
            "link", "add", "veth-a", "netns", &a.name, "type", "veth", "peer", "name", "veth-b",
            "netns", &b.name,
        ]),
        Duration::from_secs(10),
    );
    a.run(&[
        "ip",
        "link",
        "set",
        "veth-a",
        "address",
        "02:00:00:00:00:0a",
        "up",
    ]);
    b.run(&[
        "ip",
        "link",
        "set",
        "veth-b",
        "address",
        "02:00:00:00:00:0b",
        "up",
    ]);
}

/// Two namespaces without IPv6 (exact packet counts), not linked yet.
fn namespaces(tag: &str) -> (Netns, Netns) {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    for ns in [&a, &b] {
        ns.sysctl("net.ipv6.conf.all.disable_ipv6=1");
        ns.sysctl("net.ipv6.conf.default.disable_ipv6=1");
    }
    (a, b)
}

/// A real capture from testdata, addressed from veth-a to veth-b, written
/// under `dir`; returns the file and how many of its packets the kernel
/// filter keeps (tcpdump's count of port 53: these captures have no
/// fragments).
fn replay_file(dir: &Path, rel: &str) -> (PathBuf, u64) {
    let mut packets = pcap::read(&capture(rel));
    pcap::patch_macs(&mut packets, [2, 0, 0, 0, 0, 0x0a], [2, 0, 0, 0, 0, 0x0b]);
    let file = dir.join(rel.replace('/', "-"));
    pcap::write(&file, &packets);
    let kept = tcpdump_count(&file, "port 53");
    (file, kept)
}

fn replay(a: &Netns, file: &Path) {
    run(
        a.cmd("tcpreplay")
            .args(["-K", "--topspeed", "-i", "veth-a", file.to_str().unwrap()]),
        Duration::from_secs(60),
    );
}

/// What the database of a stopped sensor must hold: an `ingest` of the
/// same captures.
fn assert_recorded(stopped: &Stopped, captures: &[&str]) {
    let files: Vec<PathBuf> = captures.iter().map(|c| capture(c)).collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (_d, reference) = ingest(&refs);
    let expected = counts(&dump(&reference));
    assert!(!expected.is_empty());
    assert_eq!(counts(&dump(&stopped.db)), expected, "{}", stopped.stderr);
}

/// The sensor has dropped every capability (so following the interface
/// needed none).
fn assert_unprivileged(sensor: &Sensor) {
    wait_log(
        sensor,
        "running as nobody (uid 65534, gid 65534), no capabilities",
    );
}

const BEFORE: &str = "dnscap/dns.pcap";
const AFTER: &str = "dnscap/dnso1tcp.pcap";

/// The capture-side veth is deleted and created again (a new index):
/// what was sent before and after is recorded, the gauge goes 1, 0, 1.
fn recreated(filter: &str) {
    require(&["ip", "tcpreplay", "tcpdump", "curl"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = namespaces("lr");
    add_veth(&a, &b);
    let (before, n_before) = replay_file(dir.path(), BEFORE);
    let (after, n_after) = replay_file(dir.path(), AFTER);

    let sensor = Sensor::start(&b, &["-i", "veth-b", "--threads", "2", "--filter", filter]);
    wait_metric(&b, &sensor, &gauge("veth-b"), 1.0);
    replay(&a, &before);
    wait_packets(&b, &sensor, "veth-b", n_before);

    let old = ifindex(&b, "veth-b");
    b.run(&["ip", "link", "del", "veth-b"]);
    wait_metric(&b, &sensor, &gauge("veth-b"), 0.0);
    wait_log(&sensor, "interface veth-b is gone; waiting for it");

    add_veth(&a, &b);
    let new = ifindex(&b, "veth-b");
    assert_ne!(old, new, "the new veth-b has a new index");
    wait_metric(&b, &sensor, &gauge("veth-b"), 1.0);
    wait_log(
        &sensor,
        &format!("interface veth-b is back (index {new}); capturing again"),
    );
    replay(&a, &after);
    wait_packets(&b, &sensor, "veth-b", n_before + n_after);

    let stopped = sensor.stop();
    assert_eq!(stopped.stats["filter"], filter, "{}", stopped.stderr);
    assert!(
        !stopped.stderr.contains("capture socket error"),
        "{}",
        stopped.stderr
    );
    assert_eq!(
        num(&stopped.stats["interfaces"]["veth-b"], &["drops"]),
        0,
        "{}",
        stopped.stderr
    );
    assert_recorded(&stopped, &[BEFORE, AFTER]);
}

#[test]
fn recreated_interface_is_followed_ebpf() {
    recreated("ebpf");
}

#[test]
fn recreated_interface_is_followed_classic() {
    recreated("classic");
}

/// `ip link set down`, then `up`: the gauge follows, and capture goes on
/// on the same index.
#[test]
fn interface_down_and_up() {
    require(&["ip", "tcpreplay", "tcpdump", "curl"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = namespaces("ld");
    add_veth(&a, &b);
    let (before, n_before) = replay_file(dir.path(), BEFORE);
    let (after, n_after) = replay_file(dir.path(), AFTER);

    let sensor = Sensor::start(&b, &["-i", "veth-b", "--threads", "2"]);
    wait_metric(&b, &sensor, &gauge("veth-b"), 1.0);
    replay(&a, &before);
    wait_packets(&b, &sensor, "veth-b", n_before);

    b.run(&["ip", "link", "set", "veth-b", "down"]);
    wait_metric(&b, &sensor, &gauge("veth-b"), 0.0);
    wait_log(
        &sensor,
        "interface veth-b is down; capturing again when it comes up",
    );
    b.run(&["ip", "link", "set", "veth-b", "up"]);
    wait_metric(&b, &sensor, &gauge("veth-b"), 1.0);
    wait_log(&sensor, "interface veth-b is up; capturing again");
    replay(&a, &after);
    wait_packets(&b, &sensor, "veth-b", n_before + n_after);

    let stopped = sensor.stop();
    assert_recorded(&stopped, &[BEFORE, AFTER]);
}

/// `--interface` naming a veth that does not exist yet: the sensor starts,
/// waits (gauge 0), and captures once the veth is created.
#[test]
fn missing_interface_is_waited_for() {
    require(&["ip", "tcpreplay", "tcpdump", "curl"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = namespaces("lw");
    let (file, n) = replay_file(dir.path(), AFTER);

    let sensor = Sensor::start(&b, &["-i", "veth-b", "--threads", "2", "--user", "nobody"]);
    assert_unprivileged(&sensor);
    assert!(
        sensor.stderr().contains("waiting for interface veth-b"),
        "{}",
        sensor.stderr()
    );
    wait_metric(&b, &sensor, &gauge("veth-b"), 0.0);

    add_veth(&a, &b);
    let index = ifindex(&b, "veth-b");
    wait_metric(&b, &sensor, &gauge("veth-b"), 1.0);
    wait_log(
        &sensor,
        &format!("interface veth-b is there (index {index}); capturing"),
    );
    replay(&a, &file);
    wait_packets(&b, &sensor, "veth-b", n);

    let stopped = sensor.stop();
    assert_recorded(&stopped, &[AFTER]);
}

/// With `--require-interface`, a missing interface is an error at startup.
#[test]
fn require_interface_refuses_a_missing_one() {
    require(&["ip"]);
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("lq");
    let db = dir.path().join("db");
    let (status, _, stderr) = output(
        ns.cmd(SENSOR).args([
            "run",
            "--db",
            db.to_str().unwrap(),
            "--no-api",
            "--require-interface",
            "-i",
            "veth-b",
        ]),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("--require-interface: interface veth-b is not there")
            && stderr.contains("no interface named \"veth-b\""),
        "{stderr}"
    );
    assert!(!stderr.contains("capturing DNS on"), "{stderr}");
}

/// Two interfaces, IPv4 fragments on each in turn. Both fanout groups are
/// hooked on every device, so they see each other's fragments: the
/// kernel's reassembly for fanout groups is shared by the network
/// namespace, and a group that reassembled another device's datagram
/// (to drop it in its filter) must not take it from the group it belongs
/// to. What each interface carried is recorded.
#[test]
fn ipv4_fragments_on_either_of_two_interfaces() {
    require(&["ip", "tcpreplay"]);
    let dir = tempfile::tempdir().unwrap();
    let rx = Netns::new("lfr");
    let senders = [Netns::new("lf1"), Netns::new("lf2")];
    for ns in senders.iter().chain([&rx]) {
        ns.sysctl("net.ipv6.conf.all.disable_ipv6=1");
        ns.sysctl("net.ipv6.conf.default.disable_ipv6=1");
    }
    let original = capture("dnscap/frags.pcap");
    let raw = std::fs::read(&original).unwrap();
    let mut files = Vec::new();
    for (i, tx) in senders.iter().enumerate() {
        let peer = format!("veth-{}", i + 1);
        run(
            Command::new("ip").args([
                "link", "add", "veth-a", "netns", &tx.name, "type", "veth", "peer", "name", &peer,
                "netns", &rx.name,
            ]),
            Duration::from_secs(10),
        );
        tx.run(&[
            "ip",
            "link",
            "set",
            "veth-a",
            "address",
            "02:00:00:00:01:0a",
            "up",
        ]);
        let mac = format!("02:00:00:00:0{}:0b", i + 2);
        rx.run(&["ip", "link", "set", &peer, "address", &mac, "up"]);
        let mut packets = pcap::raw_ipv4_as_ethernet(&raw);
        pcap::patch_macs(
            &mut packets,
            [2, 0, 0, 0, 1, 0x0a],
            [2, 0, 0, 0, i as u8 + 2, 0x0b],
        );
        let file = dir.path().join(format!("frags-{i}.pcap"));
        pcap::write(&file, &packets);
        files.push(file);
    }
    let (_d, reference) = ingest(&[&original]);
    let expected = counts(&dump(&reference));
    assert!(!expected.is_empty());
    for (i, tx) in senders.iter().enumerate() {
        let sensor = Sensor::start(
            &rx,
            &["-i", "veth-1", "-i", "veth-2", "--threads", "2", "--no-api"],
        );
        run(
            tx.cmd("tcpreplay").args([
                "-K",
                "--topspeed",
                "-i",
                "veth-a",
                files[i].to_str().unwrap(),
            ]),
            Duration::from_secs(60),
        );
        std::thread::sleep(Duration::from_millis(500));
        let stopped = sensor.stop();
        assert_eq!(
            counts(&dump(&stopped.db)),
            expected,
            "fragments on veth-{}:\n{}",
            i + 1,
            stopped.stderr
        );
    }
}

/// A name that appears as something other than Ethernet (here a TUN
/// device, no link header) is refused with a log line and stays at 0;
/// when it is replaced by a veth, capture starts.
#[test]
fn non_ethernet_interface_is_refused() {
    require(&["ip", "tcpreplay", "tcpdump", "curl"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = namespaces("ln");
    let (file, n) = replay_file(dir.path(), AFTER);

    let sensor = Sensor::start(&b, &["-i", "veth-b", "--threads", "2"]);
    wait_metric(&b, &sensor, &gauge("veth-b"), 0.0);
    b.run(&["ip", "tuntap", "add", "dev", "veth-b", "mode", "tun"]);
    b.run(&["ip", "link", "set", "veth-b", "up"]);
    let tun = ifindex(&b, "veth-b");
    wait_log(
        &sensor,
        &format!(
            "interface veth-b (index {tun}) has link type 65534 (ARPHRD), not Ethernet: not \
             captured; waiting for one that is"
        ),
    );
    assert_eq!(metric(&b, &gauge("veth-b")), Some(0.0));

    b.run(&["ip", "tuntap", "del", "dev", "veth-b", "mode", "tun"]);
    add_veth(&a, &b);
    wait_metric(&b, &sensor, &gauge("veth-b"), 1.0);
    replay(&a, &file);
    wait_packets(&b, &sensor, "veth-b", n);
    let stopped = sensor.stop();
    assert_recorded(&stopped, &[AFTER]);
}
