//! IP defragmentation and DNS-over-TCP reassembly against real captures.
//!
//! The unit tests in `decode::defrag` and `decode::tcp` cover the rules with
//! synthetic input; these check that the whole decoder finds every DNS
//! message in captures made by other tools (dnscap, go-dnscollector,
//! tcpdump and Zeek test suites), kept in the repository's `testdata/pcap`.
//!
//! The expected counts were established independently with tshark 4.x
//! (`tshark -r FILE -T fields -e dns.flags.response`, counting every
//! message, several per frame included) and checked against the segment
//! lists (`-e tcp.seq -e tcp.len -e ip.frag_offset ...`). Where this
//! decoder must differ from tshark, the test says why. Counting the frames
//! that hold DNS instead (`tshark -Y dns`) undercounts captures that pack
//! several messages into one segment.

use std::fs::File;
use std::path::{Path, PathBuf};

use pcap_parser::{PcapBlockOwned, PcapError, create_reader};
use pdns_sensor::decode::{DecodeConfig, DecodeStats, Decoder, DropReason};
use pdns_sensor::vocab::packet::{DnsMessage, Frame, LinkType, Timestamp, Transport};

/// What the decoder found in one capture.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    queries: usize,
    responses: usize,
    /// Of those, carried over TCP.
    tcp: usize,
}

/// The repository's `testdata/pcap`. Fails loudly if it is missing: these
/// tests must not pass by finding nothing.
fn testdata() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pcap");
    assert!(dir.is_dir(), "test captures not found at {}", dir.display());
    dir
}

/// Counts one DNS message the decoder found.
fn count(found: &mut Found, dns: DnsMessage<'_>) {
    if dns.data.len() < 12 {
        return;
    }
    if dns.data[2] & 0x80 == 0 {
        found.queries += 1;
    } else {
        found.responses += 1;
    }
    if dns.transport == Transport::Tcp {
        found.tcp += 1;
    }
}

/// Decodes a classic pcap file with a default decoder, then ends the input
/// as the pipeline does ([`Decoder::finish`]). Also returns the TCP flow
/// directions still tracked before that end.
fn decode(name: &str) -> (Found, Decoder, usize) {
    let path = testdata().join(name);
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = create_reader(1 << 16, file).expect("a pcap file");
    let mut decoder = Decoder::new(&DecodeConfig::default());
    let mut found = Found::default();
    let mut link = LinkType::Other(u32::MAX);
    let mut nanos = false;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        link = LinkType::from_pcap(header.network.0 as u32);
                        nanos = header.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(packet) => {
                        let frame = Frame {
                            ts: Timestamp {
                                secs: u64::from(packet.ts_sec),
                                nanos: if nanos {
                                    packet.ts_usec
                                } else {
                                    packet.ts_usec * 1000
                                },
                            },
                            link,
                            data: packet.data,
                        };
                        decoder.decode(&frame, &mut |dns| count(&mut found, dns));
                    }
                    PcapBlockOwned::NG(_) => panic!("{name}: pcapng is not expected here"),
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
            Err(e) => panic!("{name}: {e:?}"),
        }
    }
    let open_flows = decoder.tcp_flows();
    decoder.finish(&mut |dns| count(&mut found, dns));
    assert_eq!(decoder.tcp_flows(), 0, "{name}: flows left after finish");
    (found, decoder, open_flows)
}

fn found(queries: usize, responses: usize, tcp: usize) -> Found {
    Found {
        queries,
        responses,
        tcp,
    }
}

fn drops(stats: &DecodeStats, reasons: &[DropReason]) -> Vec<(DropReason, u64)> {
    reasons
        .iter()
        .map(|&r| (r, stats.dropped(r)))
        .filter(|&(_, n)| n > 0)
        .collect()
}

const TCP_DROPS: [DropReason; 2] = [DropReason::TcpGap, DropReason::TcpOverflow];
const FRAG_DROPS: [DropReason; 3] = [
    DropReason::FragmentInvalid,
    DropReason::FragmentTimeout,
    DropReason::FragmentOverflow,
];

/// Asserts the messages found and that no TCP data was lost.
fn clean_tcp(name: &str, want: Found) {
    let (got, decoder, _) = decode(name);
    assert_eq!(got, want, "{name}");
    assert_eq!(drops(&decoder.stats, &TCP_DROPS), vec![], "{name}");
}

#[test]
fn tcp_one_connection_many_queries() {
    // 41 lookups over one connection; each length prefix in its own segment.
    clean_tcp("dnscap/dnso1tcp.pcap", found(41, 41, 82));
}

#[test]
fn tcp_several_messages_in_one_segment() {
    // One 90-byte segment holds three 28-byte queries (2 frames hold DNS).
    clean_tcp("dnscap/dnsotcp-many1pkt.pcap", found(3, 1, 4));
}

#[test]
fn tcp_messages_across_segment_boundaries() {
    // Two 45-byte segments hold three 30-byte framed queries: the second
    // query straddles them (2 frames hold DNS).
    clean_tcp("dnscap/dnsotcp-manyopkts.pcap", found(3, 0, 3));
}

#[test]
fn tcp_without_handshake() {
    clean_tcp("dnscap/1qtcpnosyn.pcap", found(1, 1, 2));
}

#[test]
fn tcp_with_ethernet_padding() {
    clean_tcp("dnscap/1qtcppadd.pcap", found(1, 1, 2));
}

#[test]
fn tcp_mid_stream_start_without_length_prefix() {
    // The capture starts with a query body whose 2-byte prefix was in an
    // earlier, uncaptured segment: its first bytes (the DNS ID 0xe7af) are
    // read as a length, so that query and the next one are lost, as they
    // are for tshark. Both responses start cleanly.
    let (got, _, _) = decode("dnscap/do1t-nosyn-1nolen.pcap");
    assert_eq!(got, found(0, 2, 2));
}

#[test]
fn tcp_fast_open() {
    // Four connections, each query carried by the SYN.
    clean_tcp("go-dnscollector/dnsdump_tcp_fastopen.pcap", found(4, 4, 8));
}

#[test]
fn tcp_large_answer_with_retransmissions() {
    // TC=1 over UDP, then a 32 829-byte answer in 4344-byte segments, with
    // a retransmitted tail and a spurious retransmission of the start
    // after the answer is complete (neither may produce a second copy).
    clean_tcp(
        "go-dnscollector/dnsdump_udp_truncated+tcp_fragmented.pcap",
        found(2, 2, 2),
    );
}

#[test]
fn tcp_simple_captures() {
    clean_tcp("tcpdump/dns_tcp.pcap", found(1, 1, 2));
    clean_tcp("go-dnscollector/dnsdump_tcp.pcap", found(5, 5, 10));
    clean_tcp("go-dnscollector/dnsdump_udp+tcp.pcap", found(2, 2, 2));
    clean_tcp("zeek/dns-edns-cookie.pcap", found(2, 2, 4));
    clean_tcp("zeek/dns/tkey.pcap", found(1, 1, 2));
}

#[test]
fn tcp_missing_segment_in_the_middle() {
    // Both directions lose one message's segments: client bytes 78..108 (a
    // 30-byte framed query) and server bytes 47..192 (a 145-byte framed
    // answer); the capture ends 0.2 s later, without a FIN. Frame 14 (the
    // server's next answer, seq 192) is held behind its hole; frame 15 (the
    // client's next prefix, seq 108) acknowledges 238, so the server's hole
    // is given up at once and the held answer emitted; frame 15 is itself
    // held behind the client's hole, which frame 14 had already
    // acknowledged (ack 108), so that hole is given up too and the query
    // completed by frame 17 is found. 6 messages, as tshark (frames 6, 8,
    // 12, 14, 17, 19); one gap per direction; nothing is left for the end
    // of the input.
    let (got, decoder, open) = decode("dnscap/dnso1tcp-midmiss.pcap");
    assert_eq!(got, found(3, 3, 6));
    assert_eq!(
        drops(&decoder.stats, &TCP_DROPS),
        vec![(DropReason::TcpGap, 2)]
    );
    assert_eq!(open, 2);
}

#[test]
fn tcp_big_hole_resynchronises() {
    // 79 client and 237 server bytes are missing. Each side acknowledges
    // the other's missing bytes (frames 19 and 20) before or with the
    // first segment after the hole, so both holes are given up as soon as
    // that segment is seen. The server's next segments each hold one whole
    // framed answer, so the stream resynchronises on them and the 36
    // answers after the hole are found (38 in all, as tshark). The
    // client's first segment after its hole is a query body without its
    // prefix, so resynchronising there misframes the rest of its stream:
    // only the 3 queries before the hole are found (as tshark), and no
    // garbage. Gaps: one hole per direction, plus the client's misframed
    // partial "message" still pending at its FIN.
    let (got, decoder, open) = decode("dnscap/dnso1tcp-bighole.pcap");
    assert_eq!(got, found(3, 38, 41));
    assert_eq!(
        drops(&decoder.stats, &TCP_DROPS),
        vec![(DropReason::TcpGap, 3)]
    );
    assert_eq!(open, 0);
}

#[test]
fn tcp_mixed_real_trace() {
    // UDP and TCP, IPv4 and IPv6, TC=1 retries over TCP.
    let (got, decoder, _) = decode("zeek/dns-edns-ecs.pcap");
    assert_eq!((got.queries, got.responses), (20, 65));
    assert_eq!(drops(&decoder.stats, &TCP_DROPS), vec![]);
}

/// Asserts the messages found, the datagrams rebuilt and that no fragment
/// was dropped.
fn clean_frags(name: &str, want: Found, reassembled: u64) {
    let (got, decoder, _) = decode(name);
    assert_eq!(got, want, "{name}");
    assert_eq!(decoder.stats.reassembled_datagrams, reassembled, "{name}");
    assert_eq!(drops(&decoder.stats, &FRAG_DROPS), vec![], "{name}");
    assert_eq!(decoder.pending_fragments(), 0, "{name}");
}

#[test]
fn ipv4_every_packet_fragmented() {
    // Raw IPv4 link type (228); 495 fragments of 82 datagrams, most of
    // them cut into 24-byte pieces.
    clean_frags("dnscap/frags.pcap", found(41, 41, 0), 82);
}

#[test]
fn ipv4_fragmented_udp() {
    clean_frags(
        "go-dnscollector/dnsdump_ip4_fragmented+udp.pcap",
        found(1, 1, 0),
        1,
    );
    clean_frags(
        "go-dnscollector/dnsdump_ip4_fragmented_query.pcap",
        found(2, 0, 0),
        2,
    );
}

#[test]
fn ipv6_fragmented_udp() {
    clean_frags(
        "go-dnscollector/dnsdump_ip6_fragmented+udp.pcap",
        found(1, 1, 0),
        1,
    );
    clean_frags(
        "go-dnscollector/dnsdump_ip6_fragmented_query.pcap",
        found(1, 0, 0),
        1,
    );
}

#[test]
fn ipv6_fragments_with_a_lost_first_fragment() {
    // Datagram 1 arrives as its last fragment only (the rest was not
    // captured): it stays pending until the capture ends (5 s later, before
    // the 30 s timeout), and is then counted as timed out: its fragments
    // will never come. Its query is answered again, as datagram 2, in three
    // fragments.
    let (got, decoder, _) = decode("zeek/ipv6-fragmented-dns.pcap");
    assert_eq!(got, found(3, 2, 0));
    assert_eq!(decoder.stats.reassembled_datagrams, 1);
    assert_eq!(
        drops(&decoder.stats, &FRAG_DROPS),
        vec![(DropReason::FragmentTimeout, 1)]
    );
    assert_eq!(decoder.pending_fragments(), 0);
}
