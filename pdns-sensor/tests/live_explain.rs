//! `run --explain-filter N`: the kernel filter's explaining twin logs one
//! line per packet, with the verdict, its reason and the facts behind it,
//! for exactly the first N packets, and then only counts.
//!
//! The traffic is frames from the test captures with known verdicts,
//! replayed over veth into a namespace with IPv6 off, so the filter sees
//! exactly the replayed frames: DNS over IPv4 (plain and QinQ, whose inner
//! tag the filter walks in band), DNS on port 8053 and SSH (port), ICMP
//! (protocol), ARP (not IP), IPv6 fragments (the first has the ports, the
//! others are kept as fragments) and a truncated frame (malformed).

mod live_support;

use std::time::{Duration, Instant};

use live_support::*;

const BUDGET: u64 = 50;

/// The explain lines in the sensor's stderr: `(n, total, what follows
/// "explain n/total: ")`.
fn explain_lines(stderr: &str) -> Vec<(u64, u64, String)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("explain ")? + "explain ".len()..];
            let (count, what) = rest.split_once(": ")?;
            let (n, total) = count.split_once('/')?;
            Some((n.parse().ok()?, total.parse().ok()?, what.to_string()))
        })
        .collect()
}

/// Waits (10 s at most) until the sensor has logged `count` explain lines.
fn wait_for_lines(sensor: &Sensor, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while explain_lines(&sensor.stderr()).len() < count {
        assert!(
            Instant::now() < deadline,
            "expected {count} explain lines:\n{}",
            sensor.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn frame(file: &str, index: usize) -> pcap::Packet {
    pcap::read(&capture(file)).swap_remove(index)
}

fn qinq(mut p: pcap::Packet) -> pcap::Packet {
    pcap::add_outer_tag(std::slice::from_mut(&mut p), 200);
    p
}

#[test]
fn explains_the_first_n_verdicts_then_only_counts() {
    require(&["ip", "tcpreplay"]);
    let link = Link::new("ex", false);
    let dir = tempfile::tempdir().unwrap();
    let vlan = "dnscap/vlan11.pcap";
    let v6 = "zeek/ipv6-fragmented-dns.pcap";
    let mut truncated = frame("tcpdump/dns_udp_8053.pcap", 0);
    truncated.data.truncate(24);
    // Frame and expected line. The receiving veth strips the outer VLAN tag
    // (802.1Q in vlan11.pcap, 802.1ad after `qinq`) before the filter runs,
    // so the filter sees 4 bytes fewer and walks the inner tag of QinQ.
    let cases: Vec<(pcap::Packet, &str)> = vec![
        (
            qinq(frame(vlan, 0)),
            "accepted: DNS port 53 (destination); IPv4 UDP 53199 -> 53; VLAN tags walked: 1; 74 bytes",
        ),
        (
            qinq(frame(vlan, 1)),
            "accepted: DNS port 53 (source); IPv4 UDP 53 -> 53199; VLAN tags walked: 1; 226 bytes",
        ),
        (
            frame(vlan, 0),
            "accepted: DNS port 53 (destination); IPv4 UDP 53199 -> 53; VLAN tags walked: 0; 70 bytes",
        ),
        (
            qinq(frame(vlan, 2)),
            "rejected: protocol: IPv4 protocol 1 is not UDP or TCP; VLAN tags walked: 1; 102 bytes",
        ),
        (
            qinq(frame(vlan, 9)),
            "rejected: not IP: ethertype 0x806; VLAN tags walked: 1; 46 bytes",
        ),
        (
            frame("tcpdump/dns_udp_8053.pcap", 0),
            "rejected: port: no watched port in IPv4 UDP 43757 -> 8053; VLAN tags walked: 0; 98 bytes",
        ),
        (
            frame("zeek/var-services-std-ports.pcap", 0),
            "rejected: port: no watched port in IPv4 TCP 49656 -> 22; VLAN tags walked: 0; 78 bytes",
        ),
        (
            frame(v6, 5),
            "accepted: DNS port 53 (source); IPv6 UDP 53 -> 51851; VLAN tags walked: 0; 1494 bytes",
        ),
        (
            frame(v6, 6),
            "fragment kept: IPv6 non-first fragment, offset 1432; VLAN tags walked: 0; 1494 bytes",
        ),
        (
            frame(v6, 3),
            "fragment kept: IPv6 non-first fragment, offset 2896; VLAN tags walked: 0; 404 bytes",
        ),
        (
            truncated,
            "rejected: malformed: IPv4 header short at offset 14; VLAN tags walked: 0; 24 bytes",
        ),
    ];
    let mut first: Vec<pcap::Packet> = cases.iter().map(|c| c.0.clone()).collect();
    pcap::patch_macs(&mut first, link.mac_a(), link.mac_b());
    let first_file = dir.path().join("verdicts.pcap");
    pcap::write(&first_file, &first);
    let mut rest = pcap::read(&capture(vlan));
    pcap::patch_macs(&mut rest, link.mac_a(), link.mac_b());
    let rest_file = dir.path().join("more.pcap");
    pcap::write(&rest_file, &rest);
    assert!(cases.len() as u64 + (rest.len() as u64) > BUDGET + 50);

    let sensor = Sensor::start(
        &link.b,
        &[
            "-i",
            link.if_b,
            "--threads",
            "1",
            "--explain-filter",
            &BUDGET.to_string(),
        ],
    );
    assert!(
        sensor.stderr().contains(&format!(
            "explaining the kernel filter's verdicts for the first {BUDGET} packets"
        )),
        "{}",
        sensor.stderr()
    );

    // One line per packet, with the expected verdict, reason and facts.
    link.replay(&first_file, 1);
    wait_for_lines(&sensor, cases.len());
    let lines = explain_lines(&sensor.stderr());
    let mut got: Vec<&str> = lines.iter().map(|l| l.2.as_str()).collect();
    let mut want: Vec<&str> = cases.iter().map(|c| c.1).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{}", sensor.stderr());

    // More packets than the budget has left: lines stop at N.
    link.replay(&rest_file, 1);
    wait_for_lines(&sensor, BUDGET as usize);
    // Give any line beyond the budget time to show up before stopping.
    std::thread::sleep(Duration::from_millis(500));
    let stopped = sensor.stop();
    let lines = explain_lines(&stopped.stderr);
    assert_eq!(lines.len() as u64, BUDGET, "{}", stopped.stderr);
    let mut numbers: Vec<u64> = lines.iter().map(|l| l.0).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=BUDGET).collect::<Vec<_>>());
    assert!(lines.iter().all(|l| l.1 == BUDGET));
    // vlan11.pcap arrives with its only tag out of band: DNS, ICMP and ARP.
    for (_, _, what) in &lines[cases.len()..] {
        assert!(
            what.ends_with("VLAN tags walked: 0; 70 bytes")
                || what.ends_with("VLAN tags walked: 0; 87 bytes")
                || what.ends_with("VLAN tags walked: 0; 222 bytes")
                || what.ends_with("VLAN tags walked: 0; 303 bytes")
                || what.ends_with("VLAN tags walked: 0; 98 bytes")
                || what.ends_with("VLAN tags walked: 0; 42 bytes"),
            "{what}"
        );
        assert!(
            what.starts_with("accepted: DNS port 53 ")
                || what.starts_with("rejected: protocol: IPv4 protocol 1 ")
                || what.starts_with("rejected: not IP: ethertype 0x806;"),
            "{what}"
        );
    }

    // Every packet was still classified and counted: the ones explained and
    // the ones after the budget ran out.
    let s = &stopped.stats;
    assert_eq!(s["filter"], "ebpf");
    let f = &s["filter_stats"];
    let total: u64 = [
        "accepted",
        "accepted_fragments",
        "rejected_port",
        "rejected_protocol",
        "rejected_not_ip",
        "rejected_malformed",
    ]
    .iter()
    .map(|k| num(f, &[k]))
    .sum();
    assert_eq!(total, (cases.len() + rest.len()) as u64, "{s:#}");
    assert_eq!(num(f, &["accepted_fragments"]), 2, "{s:#}");
    assert_eq!(num(f, &["rejected_port"]), 2, "{s:#}");
    assert_eq!(num(f, &["rejected_malformed"]), 1, "{s:#}");
}

/// `--explain-filter` with a filter that cannot explain: a clear error, not
/// a silently ignored option.
#[test]
fn explain_filter_needs_the_ebpf_filter() {
    require(&["ip", "setpriv"]);
    let ns = Netns::new("exc");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let run = |wrapper: &[&str], extra: &[&str]| {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = ns.cmd(program);
                c.args(rest).arg(SENSOR);
                c
            }
            None => ns.cmd(SENSOR),
        };
        cmd.args([
            "run",
            "--no-api",
            "-i",
            "lo",
            "--explain-filter",
            "5",
            "--db",
        ])
        .arg(&db)
        .args(extra)
        .env_remove("PDNS_DB");
        let (status, _, stderr) = output(&mut cmd, Duration::from_secs(30));
        assert!(!status.success(), "{stderr}");
        stderr
    };
    // Asked for the classic filter.
    let stderr = run(&[], &["--filter", "classic"]);
    assert!(
        stderr.contains(
            "--explain-filter needs the eBPF filter: the classic BPF filter cannot explain its verdicts"
        ),
        "{stderr}"
    );
    // `auto` without CAP_BPF would fall back to the classic filter: not
    // when explaining.
    let stderr = run(
        &[
            "setpriv",
            "--bounding-set",
            "-bpf,-sys_admin,-perfmon",
            "--",
        ],
        &[],
    );
    assert!(
        stderr.contains("--explain-filter needs the eBPF filter, and it could not be loaded"),
        "{stderr}"
    );
    assert!(!stderr.contains("falling back"), "{stderr}");
}
