//! 802.1Q and QinQ frames injected over veth with tcpreplay are decoded.
//!
//! The source is `testdata/pcap/dnscap/vlan11.pcap` (DNS, ICMP and ARP in
//! VLAN 11); the QinQ variant adds an outer 802.1ad tag (VLAN 200). On receive
//! the kernel strips the outer tag and reports it out of band, so the
//! single-tagged frames reach the filter untagged and the QinQ frames with
//! one tag left in band: both paths of the filter and the ring are used.
//! The reference is the file decoder: `ingest` of the same capture.

mod live_support;

use live_support::*;

fn replay_and_compare(tag: &str, qinq: bool, extra: &[&str]) -> serde_json::Value {
    replay_and_compare_wrapped(tag, qinq, &[], extra).0
}

/// Returns the stats and the sensor's stderr.
fn replay_and_compare_wrapped(
    tag: &str,
    qinq: bool,
    wrapper: &[&str],
    extra: &[&str],
) -> (serde_json::Value, String) {
    require(&["ip", "tcpreplay", "tcpdump", "setpriv"]);
    let original = capture("dnscap/vlan11.pcap");
    let link = Link::new(tag, false);
    let dir = tempfile::tempdir().unwrap();
    let mut packets = pcap::read(&original);
    pcap::patch_macs(&mut packets, link.mac_a(), link.mac_b());
    if qinq {
        pcap::add_outer_tag(&mut packets, 200);
    }
    let file = dir.path().join("replay.pcap");
    pcap::write(&file, &packets);

    let mut args = vec!["-i", link.if_b, "--threads", "1"];
    args.extend_from_slice(extra);
    let sensor = Sensor::start_wrapped(&link.b, wrapper, &args);
    link.replay(&file, 1);
    let stopped = sensor.stop();
    let s = stopped.stats.clone();

    // The same records, with the same counts, as the file decoder finds.
    let (_ref_dir, reference) = ingest(&[&original]);
    let expected = counts(&dump(&reference));
    assert!(!expected.is_empty());
    assert_eq!(counts(&dump(&stopped.db)), expected, "{}", stopped.stderr);

    // Every frame arrived with its outer tag out of band.
    let iface = &s["interfaces"][link.if_b];
    let dns = tcpdump_count(
        &file,
        if qinq {
            "vlan and vlan and (udp port 53 or tcp port 53)"
        } else {
            "vlan and (udp port 53 or tcp port 53)"
        },
    );
    assert!(dns > 0);
    assert_eq!(num(iface, &["frames"]), dns, "{s:#}");
    assert_eq!(num(iface, &["vlan_tagged"]), dns, "{s:#}");
    assert_eq!(num(iface, &["drops"]), 0);
    assert_eq!(num(&s, &["drops", "not_dns_port"]), 0, "{s:#}");
    assert_eq!(num(&s, &["drops", "not_udp_tcp"]), 0, "{s:#}");
    assert_eq!(num(&s, &["drops", "not_ip"]), 0, "{s:#}");
    (s, stopped.stderr)
}

fn check_ebpf_counters(s: &serde_json::Value, total: u64) {
    assert_eq!(s["filter"], "ebpf");
    let f = &s["filter_stats"];
    let accepted = num(f, &["accepted"]) + num(f, &["accepted_fragments"]);
    let rejected: u64 = [
        "rejected_port",
        "rejected_protocol",
        "rejected_not_ip",
        "rejected_malformed",
    ]
    .iter()
    .map(|k| num(f, &[k]))
    .sum();
    // IPv6 is off in the namespaces: the filter saw exactly the replay.
    assert_eq!(accepted + rejected, total, "{s:#}");
    assert!(num(f, &["rejected_protocol"]) > 0, "ICMP: {s:#}");
    assert!(num(f, &["rejected_not_ip"]) > 0, "ARP: {s:#}");
    assert_eq!(num(f, &["rejected_malformed"]), 0);
}

#[test]
fn single_tagged_frames_are_decoded() {
    let s = replay_and_compare("vlan", false, &[]);
    let total = pcap::read(&capture("dnscap/vlan11.pcap")).len() as u64;
    check_ebpf_counters(&s, total);
}

#[test]
fn qinq_frames_are_decoded() {
    let s = replay_and_compare("qinq", true, &[]);
    let total = pcap::read(&capture("dnscap/vlan11.pcap")).len() as u64;
    check_ebpf_counters(&s, total);
}

/// The classic BPF fallback keeps the same frames (it has no counters).
#[test]
fn classic_filter_keeps_the_same_frames() {
    for qinq in [false, true] {
        let s = replay_and_compare(
            if qinq { "cq" } else { "cv" },
            qinq,
            &["--filter", "classic"],
        );
        assert_eq!(s["filter"], "classic");
        assert!(s["filter_stats"].is_null());
    }
}

/// Without CAP_BPF (and CAP_SYS_ADMIN) the eBPF program cannot be loaded:
/// the sensor says so and falls back to the classic filter by itself.
#[test]
fn falls_back_to_classic_without_cap_bpf() {
    let (s, stderr) = replay_and_compare_wrapped(
        "fb",
        true,
        &[
            "setpriv",
            "--bounding-set",
            "-bpf,-sys_admin,-perfmon",
            "--",
        ],
        &[],
    );
    assert_eq!(s["filter"], "classic", "{stderr}");
    assert!(
        stderr.contains("eBPF filter unavailable")
            && stderr.contains("falling back to a classic BPF filter"),
        "{stderr}"
    );
}
