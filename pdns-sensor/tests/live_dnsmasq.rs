//! End to end with a real DNS server: dnsmasq (local records only, no
//! upstream) in one namespace, `dig` in another, `pdns-sensor run` on the
//! server's interface. Queries over UDP and TCP, IPv4 and IPv6, with
//! ping and datagrams to other ports alongside. After SIGTERM, `dump`
//! must show exactly the answers given, with their counts, and the eBPF
//! counters must show that the non-DNS traffic was rejected in the kernel.

mod live_support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use live_support::*;

/// dnsmasq serving only local data on `listen` addresses.
fn dnsmasq(ns: &Netns, listen: &[&str]) -> Proc {
    let mut cmd = ns.cmd("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--conf-file=/dev/null",
        "--pid-file=",
        "--user=root",
        "--bind-interfaces",
        "--local=/example.test/",
        "--local-ttl=300",
        "--host-record=www.example.test,192.0.2.10,2001:db8::10",
        "--txt-record=txt.example.test,hello world",
        "--cname=alias.example.test,www.example.test",
    ]);
    for addr in listen {
        cmd.arg(format!("--listen-address={addr}"));
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc::new(child, "dnsmasq")
}

/// `dig +short` from `ns`; returns the answer lines.
fn dig(ns: &Netns, args: &[&str]) -> String {
    let mut cmd = ns.cmd("dig");
    cmd.args(["+short", "+tries=1", "+time=2"]).args(args);
    run(&mut cmd, Duration::from_secs(10))
}

/// Waits (before the sensor starts) until dnsmasq answers.
fn wait_for_server(client: &Netns, server: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, out, _) = output(
            client.cmd("dig").args([
                "+short",
                "+tries=1",
                "+time=1",
                &format!("@{server}"),
                "www.example.test",
            ]),
            Duration::from_secs(5),
        );
        if status.success() && out.contains("192.0.2.10") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dnsmasq did not answer on {server}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn key(name: &str, t: &str, rdata: &str) -> (String, String, String) {
    (name.to_string(), t.to_string(), rdata.to_string())
}

#[test]
fn dnsmasq_udp_tcp_v4_v6_with_noise() {
    require(&["ip", "dnsmasq", "dig", "ping"]);
    let link = Link::new("e2e", true);
    let (server, client) = (&link.a, &link.b);
    for (ns, ifname, v4, v6) in [
        (server, link.if_a, "192.0.2.1/24", "2001:db8::1/64"),
        (client, link.if_b, "192.0.2.2/24", "2001:db8::2/64"),
    ] {
        ns.run(&["ip", "addr", "add", v4, "dev", ifname]);
        ns.run(&["ip", "addr", "add", v6, "dev", ifname, "nodad"]);
    }
    let _dns = dnsmasq(server, &["192.0.2.1", "2001:db8::1"]);
    wait_for_server(client, "192.0.2.1");
    wait_for_server(client, "2001:db8::1");

    // Capture on the server's interface, as the unprivileged `nobody`.
    let sensor = Sensor::start(
        server,
        &["-i", link.if_a, "--threads", "2", "--user", "nobody"],
    );
    // Every thread: nobody, no capability, and no way back through execve
    // (a setuid or file-capability program): empty bounding and ambient
    // sets, no_new_privs set.
    let tasks = format!("/proc/{}/task", sensor.proc.pid());
    let mut threads = 0;
    for entry in std::fs::read_dir(&tasks).unwrap() {
        let status = std::fs::read_to_string(entry.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {status}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(field("Uid:"), "65534 65534 65534 65534", "{status}");
        for set in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:", "CapBnd:"] {
            assert_eq!(field(set), "0000000000000000", "{set} {status}");
        }
        assert_eq!(field("NoNewPrivs:"), "1", "{status}");
        threads += 1;
    }
    // The main thread, 2 ring threads with their store writers, RocksDB's.
    assert!(threads >= 5, "only {threads} threads");

    // DNS: 6 over UDP, 3 over TCP; IPv4 and IPv6.
    for _ in 0..3 {
        assert_eq!(
            dig(client, &["@192.0.2.1", "www.example.test", "A"]),
            "192.0.2.10\n"
        );
    }
    for _ in 0..2 {
        assert_eq!(
            dig(client, &["@2001:db8::1", "www.example.test", "AAAA"]),
            "2001:db8::10\n"
        );
    }
    assert_eq!(dig(client, &["@192.0.2.1", "nx.example.test", "A"]), "");
    for _ in 0..2 {
        assert_eq!(
            dig(client, &["+tcp", "@192.0.2.1", "txt.example.test", "TXT"]),
            "\"hello world\"\n"
        );
    }
    assert_eq!(
        dig(client, &["+tcp", "@2001:db8::1", "alias.example.test", "A"]),
        "www.example.test.\n192.0.2.10\n"
    );
    // Not DNS: 3 pings each way of IPv4 and IPv6, 5 datagrams to port 9999.
    client.run(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.1"]);
    client.run(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8::1"]);
    for _ in 0..5 {
        client.run(&["bash", "-c", "echo not-dns > /dev/udp/192.0.2.1/9999"]);
    }

    // `run` serves the API itself (127.0.0.1:8081 inside the namespace);
    // observations reach it within the flush interval.
    let deadline = Instant::now() + Duration::from_secs(15);
    let api = loop {
        let (_, body, _) = output(
            server.cmd("bash").args([
                "-c",
                "exec 3<>/dev/tcp/127.0.0.1/8081 && printf 'GET /dnsdb/v2/lookup/rrset/name/www.example.test/A HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3",
            ]),
            Duration::from_secs(5),
        );
        if body.contains("\"count\":4") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        api.contains("\"rdata\":[\"192.0.2.10\"]") && api.contains("\"count\":4"),
        "{api}"
    );
    assert!(api.contains("{\"cond\":\"succeeded\"}"), "{api}");

    let stopped = sensor.stop();
    let s = &stopped.stats;
    assert_eq!(s["filter"], "ebpf", "{}", stopped.stderr);

    // Exactly the answers given, with their counts and TTL.
    let mut expected = BTreeMap::new();
    expected.insert(key("www.example.test.", "A", "192.0.2.10"), (4, 300));
    expected.insert(key("www.example.test.", "AAAA", "2001:db8::10"), (2, 300));
    expected.insert(key("txt.example.test.", "TXT", "\"hello world\""), (2, 300));
    expected.insert(
        key("alias.example.test.", "CNAME", "www.example.test."),
        (1, 300),
    );
    assert_eq!(dump(&stopped.db), expected, "{}", stopped.stderr);
    let negative = dump_negative(&stopped.db);
    assert_eq!(negative.len(), 1, "{negative:?}");
    assert_eq!(negative[&key("nx.example.test.", "A", "NXDOMAIN")], 1);

    assert_eq!(num(s, &["dns_responses"]), 9, "{s:#}");
    assert_eq!(num(s, &["dns_queries"]), 9, "{s:#}");
    // Nothing but DNS reached userspace...
    for reason in ["not_dns_port", "not_udp_tcp", "not_ip"] {
        assert_eq!(num(s, &["drops", reason]), 0, "{reason}: {s:#}");
    }
    let iface = &s["interfaces"][link.if_a];
    assert_eq!(num(iface, &["drops"]), 0);
    assert_eq!(num(iface, &["packets"]), num(iface, &["frames"]), "{s:#}");
    assert_eq!(num(s, &["packets"]), num(iface, &["frames"]));
    // ...because the kernel filter rejected the rest.
    assert_eq!(
        num(s, &["filter_stats", "accepted"]),
        num(iface, &["packets"]),
        "{s:#}"
    );
    assert!(num(s, &["filter_stats", "rejected_port"]) >= 5, "{s:#}");
    assert!(
        num(s, &["filter_stats", "rejected_protocol"]) >= 12,
        "{s:#}"
    );
    assert!(
        stopped.stderr.contains("eBPF filter: kept"),
        "{}",
        stopped.stderr
    );
}

#[test]
fn loopback_sees_each_packet_once() {
    require(&["ip", "dnsmasq", "dig"]);
    let ns = Netns::new("lo");
    let _dns = dnsmasq(&ns, &["127.0.0.1"]);
    wait_for_server(&ns, "127.0.0.1");
    let sensor = Sensor::start(&ns, &["-i", "lo", "--threads", "2"]);
    for _ in 0..5 {
        assert_eq!(
            dig(&ns, &["@127.0.0.1", "www.example.test", "A"]),
            "192.0.2.10\n"
        );
    }
    assert_eq!(
        dig(&ns, &["+tcp", "@127.0.0.1", "txt.example.test", "TXT"]),
        "\"hello world\"\n"
    );
    let stopped = sensor.stop();
    let s = &stopped.stats;
    // Without PACKET_IGNORE_OUTGOING every packet would appear twice.
    assert_eq!(num(s, &["dns_responses"]), 6, "{s:#}");
    assert_eq!(num(s, &["dns_queries"]), 6, "{s:#}");
    let records = counts(&dump(&stopped.db));
    assert_eq!(records[&key("www.example.test.", "A", "192.0.2.10")], 5);
    assert_eq!(
        records[&key("txt.example.test.", "TXT", "\"hello world\"")],
        1
    );
    assert_eq!(records.len(), 2, "{records:?}");
}
