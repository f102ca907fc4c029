//! Tunnels in the kernel: the eBPF filter looks through VXLAN, Geneve, GRE
//! and ERSPAN and keeps only the DNS inside, and the eBPF fanout program
//! sends both directions of an inner flow to one ring.
//!
//! 1. Real kernel tunnels (`ip link add ... type vxlan|geneve|gretap|
//!    ip6gretap|gre|erspan`) between two namespaces over a veth pair,
//!    dnsmasq answering inside every tunnel, `dig` over UDP and TCP through
//!    each, ping and other datagrams through them as noise; the sensor
//!    captures the underlay veth with two rings. The store must hold
//!    exactly the answers given, and the eBPF counters must show the
//!    tunnelled DNS kept and the tunnelled noise rejected in the kernel.
//! 2. The explaining twin says which tunnel a verdict was reached in.
//! 3. Fanout: TCP DNS inside VXLAN whose two directions come from
//!    different outer addresses and UDP ports (a mirror), replayed into two
//!    rings. Two inner address pairs are chosen to hash to different rings
//!    under the fanout program's hash, so each ring must read exactly the
//!    frames of its pair — in both directions — and every TCP message is
//!    reassembled. With the kernel's `PACKET_FANOUT_HASH` (outer addresses
//!    and ports, which change per packet here) the frames of a flow would
//!    spread over both rings and the per-ring counts could not match.

mod live_support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use live_support::*;

fn key(name: &str, t: &str, rdata: &str) -> (String, String, String) {
    (name.to_string(), t.to_string(), rdata.to_string())
}

/// A kernel tunnel: its device name, how `ip link add` makes it (with
/// `{L4}`/`{R4}`/`{L6}`/`{R6}` for the local and remote underlay
/// addresses) and the second octet of its inner 10.N.0.0/24.
struct Tunnel {
    dev: &'static str,
    args: &'static str,
    net: u8,
}

/// The kernel tunnels the test machine can make. Only VXLAN: its kernel
/// (a Firecracker VM, no modules) has no geneve, gre, gretap, ip6gretap
/// or erspan driver; those are covered by crafted frames in
/// `crafted_tunnels_and_bad_input_get_exact_verdicts`.
const TUNNELS: &[Tunnel] = &[
    Tunnel {
        dev: "vx42",
        args: "type vxlan id 42 local {L4} remote {R4} dstport 4789 dev veth-X",
        net: 42,
    },
    Tunnel {
        dev: "vx43",
        args: "type vxlan id 43 local {L6} remote {R6} dstport 4789 dev veth-X",
        net: 43,
    },
    // On a port that is not VXLAN's by default: `--vxlan-port 8472`.
    Tunnel {
        dev: "vx44",
        args: "type vxlan id 44 local {L4} remote {R4} dstport 8472 dev veth-X",
        net: 44,
    },
];

/// The name dnsmasq answers inside a tunnel, and its address.
fn record(t: &Tunnel) -> (String, String) {
    (
        format!("{}.example.test", t.dev),
        format!("192.0.2.{}", t.net),
    )
}

/// Two namespaces over veth (`a` serves, `b` asks), with the tunnels in
/// `tunnels` between them and dnsmasq in `a` answering inside each.
struct Setup {
    link: Link,
    _dns: Proc,
}

fn setup(tag: &str, tunnels: &[&Tunnel]) -> Setup {
    let link = Link::new(tag, true);
    let (a, b) = (&link.a, &link.b);
    for (ns, ifname, v4, v6) in [
        (a, link.if_a, "192.0.2.1/24", "2001:db8::1/64"),
        (b, link.if_b, "192.0.2.2/24", "2001:db8::2/64"),
    ] {
        ns.run(&["ip", "addr", "add", v4, "dev", ifname]);
        ns.run(&["ip", "addr", "add", v6, "dev", ifname, "nodad"]);
    }
    for (ns, veth, l4, r4, l6, r6, host) in [
        (
            a,
            link.if_a,
            "192.0.2.1",
            "192.0.2.2",
            "2001:db8::1",
            "2001:db8::2",
            1,
        ),
        (
            b,
            link.if_b,
            "192.0.2.2",
            "192.0.2.1",
            "2001:db8::2",
            "2001:db8::1",
            2,
        ),
    ] {
        for t in tunnels {
            let args = t
                .args
                .replace("{L4}", l4)
                .replace("{R4}", r4)
                .replace("{L6}", l6)
                .replace("{R6}", r6)
                .replace("veth-X", veth);
            let mut argv = vec!["ip", "link", "add", t.dev];
            argv.extend(args.split_whitespace());
            ns.run(&argv);
            ns.run(&["ip", "link", "set", t.dev, "up"]);
            let addr = format!("10.{}.0.{host}/24", t.net);
            ns.run(&["ip", "addr", "add", &addr, "dev", t.dev]);
        }
    }
    let mut cmd = a.cmd("dnsmasq");
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
    ]);
    for t in tunnels {
        let (name, addr) = record(t);
        cmd.arg(format!("--host-record={name},{addr}"));
        cmd.arg(format!("--listen-address=10.{}.0.1", t.net));
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dns = Proc::new(child, "dnsmasq");
    // Every tunnel answers (and has resolved its neighbours) before the
    // sensor starts.
    for t in tunnels {
        let (name, addr) = record(t);
        let server = format!("@10.{}.0.1", t.net);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, out, _) = output(
                b.cmd("dig")
                    .args(["+short", "+tries=1", "+time=1", &server, &name]),
                Duration::from_secs(5),
            );
            if status.success() && out.trim() == addr {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not answer through {}",
                t.dev
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Setup { link, _dns: dns }
}

fn dig(ns: &Netns, args: &[&str]) -> String {
    let mut cmd = ns.cmd("dig");
    cmd.args(["+short", "+tries=1", "+time=2"]).args(args);
    run(&mut cmd, Duration::from_secs(10))
}

#[test]
fn dns_inside_kernel_tunnels_is_kept_and_the_rest_rejected_in_the_kernel() {
    require(&["ip", "dnsmasq", "dig", "ping"]);
    let tunnels: Vec<&Tunnel> = TUNNELS.iter().collect();
    let s = setup("tu", &tunnels);
    let (server, client) = (&s.link.a, &s.link.b);
    let sensor = Sensor::start(
        server,
        &[
            "-i",
            s.link.if_a,
            "--threads",
            "2",
            "--vxlan-port",
            "4789",
            "--vxlan-port",
            "8472",
        ],
    );

    let mut expected = BTreeMap::new();
    for t in &tunnels {
        let (name, addr) = record(t);
        let at = format!("@10.{}.0.1", t.net);
        for _ in 0..2 {
            assert_eq!(dig(client, &[&at, &name, "A"]), format!("{addr}\n"));
        }
        assert_eq!(
            dig(client, &["+tcp", &at, &name, "A"]),
            format!("{addr}\n"),
            "TCP through {}",
            t.dev
        );
        expected.insert(key(&format!("{name}."), "A", &addr), (3, 300));
    }
    // Not DNS, through the tunnels: ping (both ways), datagrams to 9999.
    for t in &tunnels {
        let to = format!("10.{}.0.1", t.net);
        client.run(&["ping", "-c", "2", "-i", "0.2", "-W", "2", &to]);
        client.run(&["bash", "-c", &format!("echo not-dns > /dev/udp/{to}/9999")]);
    }
    // And on the underlay, untunnelled.
    client.run(&["bash", "-c", "echo not-dns > /dev/udp/192.0.2.1/9999"]);

    let stopped = sensor.stop();
    let st = &stopped.stats;
    assert_eq!(st["filter"], "ebpf", "{}", stopped.stderr);
    assert_eq!(dump(&stopped.db), expected, "{}", stopped.stderr);
    let n = 3 * tunnels.len() as u64;
    assert_eq!(num(st, &["dns_responses"]), n, "{st:#}");
    assert_eq!(num(st, &["dns_queries"]), n, "{st:#}");
    // Nothing but DNS reached userspace...
    for reason in ["not_dns_port", "not_udp_tcp", "not_ip"] {
        assert_eq!(num(st, &["drops", reason]), 0, "{reason}: {st:#}");
    }
    let iface = &st["interfaces"][s.link.if_a];
    assert_eq!(num(iface, &["drops"]), 0);
    let f = |k: &str| num(st, &["filter_stats", k]);
    // ...all of it through tunnels...
    assert_eq!(f("accepted"), 0, "{st:#}");
    assert!(f("accepted_tunnel") >= 2 * n, "{st:#}");
    assert_eq!(
        f("accepted_tunnel") + f("accepted_tunnel_fragments") + f("accepted_fragments"),
        num(iface, &["packets"]),
        "{st:#}"
    );
    // ...because the kernel rejected the rest: 2 pings each way and an
    // ICMP port unreachable per tunnel (protocol), the datagrams (port).
    let t = tunnels.len() as u64;
    assert!(f("rejected_tunnel_protocol") >= 5 * t, "{st:#}");
    assert!(f("rejected_tunnel_port") >= t, "{st:#}");
    assert_eq!(f("rejected_tunnel_malformed"), 0, "{st:#}");
    assert!(f("rejected_port") >= 1, "{st:#}");
    assert!(stopped.stderr.contains("eBPF fanout"), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("tunnelled DNS port"),
        "{}",
        stopped.stderr
    );
    eprintln!("filter counters: {:#}", st["filter_stats"]);
}

#[test]
fn explains_verdicts_reached_inside_tunnels() {
    require(&["ip", "dnsmasq", "dig", "ping"]);
    let tunnels = [&TUNNELS[0], &TUNNELS[1]];
    let s = setup("tx", &tunnels);
    let (server, client) = (&s.link.a, &s.link.b);
    let sensor = Sensor::start(
        server,
        &[
            "-i",
            s.link.if_a,
            "--threads",
            "1",
            "--explain-filter",
            "500",
        ],
    );
    assert_eq!(
        dig(client, &["@10.42.0.1", "vx42.example.test", "A"]),
        "192.0.2.42\n"
    );
    client.run(&["ping", "-c", "1", "-W", "2", "10.43.0.1"]);
    client.run(&["bash", "-c", "echo x > /dev/udp/10.43.0.1/9999"]);
    let wanted = [
        "accepted: DNS port; IPv4 protocol 17 ports ",
        " -> 53, ethertype 0x800, offset 0, value 0x0; tunnel 1 (1 VXLAN, 2 Geneve, 3 GRE, 4-6 ERSPAN I-III), 1 opened;",
        "rejected: protocol: not UDP or TCP; IPv4 protocol 1 ports 0 -> 0, ethertype 0x800, offset 0, value 0x0; tunnel 1 (1 VXLAN, 2 Geneve, 3 GRE, 4-6 ERSPAN I-III), 1 opened;",
        "rejected: port: no watched port; IPv4 protocol 17 ports ",
        " -> 9999, ethertype 0x800, offset 0, value 0x0; tunnel 1 (1 VXLAN, 2 Geneve, 3 GRE, 4-6 ERSPAN I-III), 1 opened;",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = sensor.stderr();
        let found = |w: &str| text.lines().any(|l| l.contains(w));
        if wanted.iter().all(|w| found(w)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing explain lines {:?} in\n{text}",
            wanted.iter().filter(|w| !found(w)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = sensor.stop();
    assert!(
        num(&stopped.stats, &["filter_stats", "accepted_tunnel"]) >= 2,
        "{:#}",
        stopped.stats
    );
}

// ---- fanout over two rings ----

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = pcap::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

fn tcp(
    src: [u8; 4],
    dst: [u8; 4],
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&ports.0.to_be_bytes());
    t.extend_from_slice(&ports.1.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(data);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(t.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&t);
    let c = pcap::checksum(&pseudo);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 6, &t)
}

/// An Ethernet frame carrying `inner` (an IPv4 packet) in VXLAN (VNI 7)
/// from `outer_src`:`sport` to 198.51.100.200:4789.
fn vxlan(outer_src: [u8; 4], sport: u16, inner: &[u8]) -> Vec<u8> {
    let mut inner_frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    inner_frame.extend_from_slice(inner);
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&4789u16.to_be_bytes());
    udp.extend_from_slice(&((8 + 8 + inner_frame.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 7, 0]);
    udp.extend_from_slice(&inner_frame);
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ipv4(outer_src, [198, 51, 100, 200], 17, &udp));
    f
}

const FLOW_FRAMES: usize = 9;

/// One TCP DNS exchange between `client`:`port` and `server`:53, each
/// frame in VXLAN, the two directions from different outer addresses and
/// ports that also change from frame to frame: handshake, the query, the
/// response in two segments (the length prefix and half the message, then
/// the rest), FIN both ways. `FLOW_FRAMES` frames.
fn tcp_dns_flow(
    client: [u8; 4],
    server: [u8; 4],
    port: u16,
    id: u16,
    name: &str,
    addr: [u8; 4],
    n: usize,
) -> Vec<Vec<u8>> {
    let (c_isn, s_isn) = (1000 + n as u32 * 7919, 50_000 + n as u32 * 104_729);
    let q = pcap::dns_query(id, name);
    let mut query = (q.len() as u16).to_be_bytes().to_vec();
    query.extend_from_slice(&q);
    let r = pcap::dns_response(id, name, addr);
    let mut response = (r.len() as u16).to_be_bytes().to_vec();
    response.extend_from_slice(&r);
    let half = response.len() / 2;
    let (r1, r2) = response.split_at(half);
    let (syn, ack, psh, fin) = (0x02, 0x10, 0x18, 0x11);
    let cs = (port, 53);
    let sc = (53, port);
    let c1 = c_isn + 1;
    let s1 = s_isn + 1;
    let qe = c1 + query.len() as u32;
    let re = s1 + response.len() as u32;
    let segments: Vec<(bool, Vec<u8>)> = vec![
        (true, tcp(client, server, cs, c_isn, 0, syn, &[])),
        (false, tcp(server, client, sc, s_isn, c1, syn | ack, &[])),
        (true, tcp(client, server, cs, c1, s1, ack, &[])),
        (true, tcp(client, server, cs, c1, s1, psh, &query)),
        (false, tcp(server, client, sc, s1, qe, psh, r1)),
        (
            false,
            tcp(server, client, sc, s1 + half as u32, qe, psh, r2),
        ),
        (true, tcp(client, server, cs, qe, re, fin, &[])),
        (false, tcp(server, client, sc, re, qe + 1, fin, &[])),
        (true, tcp(client, server, cs, qe + 1, re + 1, ack, &[])),
    ];
    assert_eq!(segments.len(), FLOW_FRAMES);
    segments
        .into_iter()
        .enumerate()
        .map(|(i, (to_server, inner))| {
            // The mirror: requests from one set of sources, responses from
            // another, each frame from another UDP source port.
            let k = (n * FLOW_FRAMES + i) as u16;
            if to_server {
                vxlan([198, 51, 100, 10 + (k % 7) as u8], 40_000 + k, &inner)
            } else {
                vxlan([198, 51, 100, 100 + (k % 5) as u8], 50_000 + k, &inner)
            }
        })
        .collect()
}

#[test]
fn both_directions_of_a_tunnelled_flow_meet_in_one_ring() {
    require(&["ip", "tcpreplay"]);
    let server = [10, 0, 0, 1];
    // One client address that hashes to ring 0, one to ring 1.
    let mut clients = [None, None];
    for last in 2..=254u8 {
        let c = [10, 0, 1, last];
        let r = ring_of_addresses(c, server, 2) as usize;
        clients[r].get_or_insert(c);
    }
    let clients = [clients[0].unwrap(), clients[1].unwrap()];
    // Different numbers of flows per pair, so the rings' counts differ.
    let flows = [30usize, 50];
    let mut packets = Vec::new();
    let mut expected = BTreeMap::new();
    let mut n = 0;
    for (ring, &count) in flows.iter().enumerate() {
        for i in 0..count {
            let name = format!("t{n}.example.test");
            let addr = [192, 0, 2, (n % 250 + 1) as u8];
            for frame in tcp_dns_flow(
                clients[ring],
                server,
                20_000 + i as u16,
                n as u16,
                &name,
                addr,
                n,
            ) {
                packets.push(pcap::Packet {
                    ts_usec: 1_700_000_000_000_000 + packets.len() as u64 * 100,
                    data: frame,
                });
            }
            expected.insert(
                key(
                    &format!("{name}."),
                    "A",
                    &format!("192.0.2.{}", n % 250 + 1),
                ),
                (1, 300),
            );
            n += 1;
        }
    }
    let link = Link::new("tf", false);
    pcap::patch_macs(&mut packets, link.mac_a(), link.mac_b());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.pcap");
    pcap::write(&file, &packets);
    let sensor = Sensor::start(&link.b, &["-i", link.if_b, "--threads", "2"]);
    link.replay(&file, 1);
    let stopped = sensor.stop();
    let st = &stopped.stats;
    assert!(stopped.stderr.contains("eBPF fanout"), "{}", stopped.stderr);
    // Every TCP message reassembled.
    assert_eq!(dump(&stopped.db), expected, "{}", stopped.stderr);
    assert_eq!(num(st, &["dns_responses"]), n as u64, "{st:#}");
    assert_eq!(num(st, &["dns_queries"]), n as u64, "{st:#}");
    assert_eq!(num(st, &["drops", "tcp_gap"]), 0, "{st:#}");
    assert_eq!(
        num(st, &["filter_stats", "accepted_tunnel"]),
        packets.len() as u64,
        "{st:#}"
    );
    // Each ring read exactly the frames of its address pair, both
    // directions: the fanout program hashed the inner addresses, not the
    // outer ones that differ per direction and per frame.
    let rings = st["rings"].as_array().unwrap();
    assert_eq!(rings.len(), 2);
    let frames: Vec<u64> = rings.iter().map(|r| num(r, &["frames"])).collect();
    let want: Vec<u64> = flows.iter().map(|f| (f * FLOW_FRAMES) as u64).collect();
    assert_eq!(frames, want, "{st:#}");
    eprintln!(
        "frames per ring: {frames:?}; filter counters: {:#}",
        st["filter_stats"]
    );
}

// ---- crafted tunnels and bad input ----

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 0x0b, 2, 0, 0, 0, 0, 0x0a];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv6(src: u8, dst: u8, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    for last in [src, dst] {
        h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        h.extend_from_slice(&[0; 11]);
        h.push(last);
    }
    h.extend_from_slice(payload);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An inner IPv4 DNS response `name` A 192.0.2.`k` (server 10.9.0.1).
fn inner_dns(k: u8, name: &str) -> Vec<u8> {
    ipv4(
        [10, 9, 0, 1],
        [10, 9, 0, 2],
        17,
        &udp(
            53,
            33_000 + k as u16,
            &pcap::dns_response(k as u16, name, [192, 0, 2, k]),
        ),
    )
}

/// The outer frame: IPv4 from 198.51.100.1 to .2 carrying `proto`.
fn outer4(proto: u8, payload: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4([198, 51, 100, 1], [198, 51, 100, 2], proto, payload),
    )
}

fn vxlan_payload(inner_eth: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0, 0, 0, 9, 0];
    v.extend_from_slice(inner_eth);
    v
}

/// `inner_eth` in `levels` VXLAN tunnels, one inside the other.
fn nested_vxlan(levels: usize, inner_eth: Vec<u8>) -> Vec<u8> {
    let mut frame = inner_eth;
    for _ in 0..levels {
        frame = outer4(17, &udp(50_000, 4789, &vxlan_payload(&frame)));
    }
    frame
}

fn geneve(opt_words: u8, proto: u16, inner: &[u8]) -> Vec<u8> {
    let mut g = vec![opt_words & 0x3f, 0];
    g.extend_from_slice(&proto.to_be_bytes());
    g.extend_from_slice(&[0, 0, 5, 0]);
    g.extend(std::iter::repeat_n(0xaa, opt_words as usize * 4));
    g.extend_from_slice(inner);
    outer4(17, &udp(50_001, 6081, &g))
}

fn gre(flags: u16, proto: u16, extra: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut g = flags.to_be_bytes().to_vec();
    g.extend_from_slice(&proto.to_be_bytes());
    g.extend_from_slice(extra);
    g.extend_from_slice(inner);
    g
}

#[test]
fn crafted_tunnels_and_bad_input_get_exact_verdicts() {
    require(&["ip", "tcpreplay"]);
    // (frame, what the eBPF filter must decide, the record it carries)
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum V {
        Accept,
        Port,
        Protocol,
        Malformed,
    }
    let mut cases: Vec<(Vec<u8>, V, Option<u8>)> = Vec::new();
    let dns = |k: u8| inner_dns(k, &format!("c{k}.example.test"));
    let dns_eth = |k: u8| eth(0x0800, &dns(k));
    let not_dns = ipv4(
        [10, 9, 0, 1],
        [10, 9, 0, 2],
        17,
        &udp(9999, 9998, b"not dns"),
    );
    let icmp = ipv4([10, 9, 0, 1], [10, 9, 0, 2], 1, &[8, 0, 0, 0, 0, 1, 0, 1]);
    // Geneve: Ethernet inside, with two words of options, IPv4 straight inside.
    cases.push((geneve(0, 0x6558, &dns_eth(1)), V::Accept, Some(1)));
    cases.push((geneve(2, 0x6558, &dns_eth(2)), V::Accept, Some(2)));
    cases.push((geneve(0, 0x0800, &dns(3)), V::Accept, Some(3)));
    // GRE: IP with checksum, key and sequence; Ethernet with a key.
    let csum_key_seq = [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1];
    cases.push((
        outer4(47, &gre(0xb000, 0x0800, &csum_key_seq, &dns(4))),
        V::Accept,
        Some(4),
    ));
    cases.push((
        outer4(47, &gre(0x2000, 0x6558, &[0, 0, 0, 8], &dns_eth(5))),
        V::Accept,
        Some(5),
    ));
    // ERSPAN I (no sequence number), II (8-byte header, version 1), III
    // (12-byte header, version 2, with the 8-byte subheader).
    cases.push((
        outer4(47, &gre(0, 0x88be, &[], &dns_eth(6))),
        V::Accept,
        Some(6),
    ));
    let mut e2 = vec![0x10, 0x64, 0x01, 0x23, 0, 0, 0, 0];
    e2.extend_from_slice(&dns_eth(7));
    cases.push((
        outer4(47, &gre(0x1000, 0x88be, &[0, 0, 0, 1], &e2)),
        V::Accept,
        Some(7),
    ));
    let mut e3 = vec![0x20, 0x64, 0x01, 0x23, 0, 0, 0, 0, 0, 0, 0, 0x01];
    e3.extend_from_slice(&[0; 8]);
    e3.extend_from_slice(&dns_eth(8));
    cases.push((
        outer4(47, &gre(0x1000, 0x22eb, &[0, 0, 0, 1], &e3)),
        V::Accept,
        Some(8),
    ));
    // GRE over IPv6, IPv4 inside.
    cases.push((
        eth(0x86dd, &ipv6(1, 2, 47, &gre(0, 0x0800, &[], &dns(9)))),
        V::Accept,
        Some(9),
    ));
    // Nested: 2 and 4 levels of VXLAN are opened.
    cases.push((nested_vxlan(2, dns_eth(10)), V::Accept, Some(10)));
    cases.push((nested_vxlan(4, dns_eth(11)), V::Accept, Some(11)));
    // Not DNS inside.
    cases.push((outer4(47, &gre(0, 0x0800, &[], &not_dns)), V::Port, None));
    cases.push((geneve(0, 0x0800, &icmp), V::Protocol, None));
    cases.push((nested_vxlan(1, eth(0x0806, &[0; 28])), V::Protocol, None));
    // Not looked into: unknown GRE protocol (PPP), GRE version 1 (PPTP),
    // a Geneve protocol other than Ethernet or IP, ERSPAN III not carrying
    // Ethernet.
    cases.push((
        outer4(47, &gre(0, 0x880b, &[], &dns(20))),
        V::Protocol,
        None,
    ));
    cases.push((
        outer4(47, &gre(0x3001, 0x880b, &[0; 8], &dns(21))),
        V::Protocol,
        None,
    ));
    cases.push((geneve(0, 0x1234, &dns(22)), V::Protocol, None));
    let mut e3_ip = e3.clone();
    e3_ip[10] = 2 << 2;
    cases.push((
        outer4(47, &gre(0x1000, 0x22eb, &[0, 0, 0, 1], &e3_ip)),
        V::Protocol,
        None,
    ));
    // Truncated or lying: VXLAN without its I flag, VXLAN cut short,
    // Geneve options running past the packet, ERSPAN II of the wrong
    // version, an inner IPv4 header claiming options it lacks, a GRE key
    // flagged but missing, and a loop: 5 and 6 levels deep.
    let mut no_i = vxlan_payload(&dns_eth(23));
    no_i[0] = 0;
    cases.push((outer4(17, &udp(50_000, 4789, &no_i)), V::Malformed, None));
    cases.push((
        outer4(17, &udp(50_000, 4789, &[0x08, 0, 0])),
        V::Malformed,
        None,
    ));
    let mut lying = geneve(63, 0x6558, &dns_eth(24));
    lying.truncate(lying.len().min(14 + 20 + 8 + 8 + 100));
    cases.push((lying, V::Malformed, None));
    let mut e2_bad = e2.clone();
    e2_bad[0] = 0x30;
    cases.push((
        outer4(47, &gre(0x1000, 0x88be, &[0, 0, 0, 1], &e2_bad)),
        V::Malformed,
        None,
    ));
    let mut short_ip = eth(0x0800, &dns(25));
    short_ip[14] = 0x4f;
    short_ip.truncate(14 + 40);
    cases.push((nested_vxlan(1, short_ip), V::Malformed, None));
    cases.push((
        outer4(47, &gre(0x2000, 0x0800, &[], &[])),
        V::Malformed,
        None,
    ));
    cases.push((nested_vxlan(5, dns_eth(26)), V::Malformed, None));
    cases.push((nested_vxlan(6, dns_eth(27)), V::Malformed, None));

    let count = |v: V| cases.iter().filter(|c| c.1 == v).count() as u64;
    let mut packets: Vec<pcap::Packet> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| pcap::Packet {
            ts_usec: 1_700_000_000_000_000 + i as u64 * 1000,
            data: c.0.clone(),
        })
        .collect();
    let link = Link::new("tc", false);
    pcap::patch_macs(&mut packets, link.mac_a(), link.mac_b());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crafted.pcap");
    pcap::write(&file, &packets);
    let sensor = Sensor::start(&link.b, &["-i", link.if_b, "--threads", "2"]);
    link.replay(&file, 1);
    let stopped = sensor.stop();
    let st = &stopped.stats;
    let f = |k: &str| num(st, &["filter_stats", k]);
    let got = [
        f("accepted_tunnel"),
        f("rejected_tunnel_port"),
        f("rejected_tunnel_protocol"),
        f("rejected_tunnel_malformed"),
    ];
    let want = [
        count(V::Accept),
        count(V::Port),
        count(V::Protocol),
        count(V::Malformed),
    ];
    assert_eq!(got, want, "{st:#}");
    for k in [
        "accepted",
        "accepted_fragments",
        "accepted_tunnel_fragments",
        "rejected_port",
        "rejected_protocol",
        "rejected_not_ip",
        "rejected_malformed",
    ] {
        assert_eq!(f(k), 0, "{k}: {st:#}");
    }
    // The answers inside, each once, nothing else.
    let expected: BTreeMap<_, _> = cases
        .iter()
        .filter_map(|c| c.2)
        .map(|k| {
            (
                key(&format!("c{k}.example.test."), "A", &format!("192.0.2.{k}")),
                (1, 300),
            )
        })
        .collect();
    assert_eq!(dump(&stopped.db), expected, "{}", stopped.stderr);
    eprintln!("filter counters: {:#}", st["filter_stats"]);
}
