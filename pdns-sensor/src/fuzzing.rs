//! Fuzzing entry points: one function per target of `pdns-sensor/fuzz/`.
//!
//! Every parser fed from outside (frames off the wire, DNS messages, capture
//! files, Zeek logs, Frame Streams/dnstap, API paths and parameters) has
//! one `pub fn` here taking the fuzzer's bytes. The invariants live here, as
//! `assert!`s, rather than in the fuzz crate, for two reasons: the targets
//! reach private parsers without widening their visibility, and plain
//! `cargo test` on stable (`tests/fuzz_regressions.rs`) replays every seed
//! and every minimised crash through exactly the checks the fuzzer ran.
//!
//! A panic in one of these functions is a finding, whether it is an
//! invariant below or a panic inside the parser.

use bytes::{Bytes, BytesMut};

use crate::aggregate::Aggregator;
use crate::decode::{DecodeConfig, Decoder, StateTable};
use crate::extract::{ExtractStats, Extractor, Sections};
use crate::pipeline::{Capacity, Repeats};
use crate::source::dnstap::frame_streams::{self, FrameDecoder, Session};
use crate::source::dnstap::message;
use crate::source::zeek::{FileParser, Warnings, ZeekStats, reader};
use crate::vocab::observation::ObservationSink;
use crate::vocab::packet::{DnsMessage, Frame, LinkType, Timestamp, Transport};
use crate::vocab::value::Origin;
use crate::vocab::{OptRcode, Rtype, key, name, render};

/// The largest DNS message there is (the TCP length prefix is 16 bits).
const MAX_DNS_MESSAGE: usize = 65_535;

/// Link types a frame sequence may carry, picked by a record's first byte.
const LINKS: [u32; 10] = [1, 0, 101, 108, 113, 228, 229, 276, 105, 127];

/// The decoder's limits under fuzzing: small tables and byte budgets, so
/// that eviction and expiry run within a few frames; the per-direction TCP
/// buffer stays as shipped (it must hold a whole 64 KiB message). The
/// budgets are above what one TCP direction or one datagram may hold (the
/// decoder would raise them to that).
fn fuzz_decode_config() -> DecodeConfig {
    DecodeConfig {
        max_fragment_datagrams: 4,
        max_fragment_bytes: 160 << 10,
        fragment_timeout_secs: 30,
        max_tcp_flows: 4,
        max_tcp_bytes: 256 << 10,
        tcp_idle_secs: 120,
        ..DecodeConfig::default()
    }
}

/// Splits the structured input of [`decode_frames`] into frames: records
/// of `[link selector][seconds to advance][length: u16 BE][bytes]`, the
/// last one taking what is left if it is short.
pub fn frame_records(data: &[u8]) -> Vec<(Timestamp, LinkType, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut secs = 1_700_000_000u64;
    while rest.len() >= 4 {
        let link = LinkType::from_pcap(LINKS[usize::from(rest[0]) % LINKS.len()]);
        secs += u64::from(rest[1]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let body = &rest[4..];
        let (frame, next) = body.split_at(len.min(body.len()));
        out.push((Timestamp { secs, nanos: 0 }, link, frame));
        rest = next;
    }
    out
}

/// Appends one record of [`frame_records`]'s format (the seed generator's
/// and the tests' way to build inputs).
pub fn push_frame_record(out: &mut Vec<u8>, link: u32, advance: u8, frame: &[u8]) {
    let selector = LINKS.iter().position(|&l| l == link).unwrap_or(0);
    let len = frame.len().min(usize::from(u16::MAX));
    out.push(selector as u8);
    out.push(advance);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&frame[..len]);
}

/// Frame decode (link, IP with defragmentation, UDP, TCP with reassembly)
/// over a *sequence* of frames, then every message it emits through
/// extraction. Invariants: no emitted DNS message exceeds 65 535 bytes; the
/// fragment and TCP flow tables never exceed their configured caps.
pub fn decode_frames(data: &[u8]) {
    let config = fuzz_decode_config();
    let mut decoder = Decoder::new(&config);
    let mut check = Checker::new();
    let mut emit = |m: DnsMessage<'_>| {
        assert!(
            m.data.len() <= MAX_DNS_MESSAGE,
            "emitted a DNS message of {} bytes",
            m.data.len()
        );
        check.message(&m);
    };
    for (ts, link, frame) in frame_records(data) {
        decoder.decode(
            &Frame {
                ts,
                link,
                data: frame,
            },
            &mut emit,
        );
        assert!(decoder.pending_fragments() <= config.max_fragment_datagrams);
        assert!(decoder.tcp_flows() <= config.max_tcp_flows);
        assert!(decoder.held_bytes(StateTable::Fragments) <= config.max_fragment_bytes);
        assert!(decoder.held_bytes(StateTable::Tcp) <= config.max_tcp_bytes);
    }
    decoder.finish(&mut emit);
    assert_eq!(decoder.pending_fragments(), 0);
    assert_eq!(decoder.tcp_flows(), 0);
    assert_eq!(decoder.held_bytes(StateTable::Fragments), 0);
    assert_eq!(decoder.held_bytes(StateTable::Tcp), 0);
}

/// DNS message extraction, all three sections. Invariants: every record
/// and negative key decodes back to what was observed, and owner, type and
/// rdata render as text on one line; the repeated-response shortcut
/// (`pipeline::repeats`) leaves the same aggregates and counters as the
/// slow path for the message, then again under a new ID, then with its
/// question name in flipped case — and takes both as repeats when the
/// message was a response it kept (the flipped one unless its question
/// name holds a byte from `C0` up, which keeps it byte for byte); working
/// ahead (extracting folded copies) and not.
pub fn extract_message(data: &[u8]) {
    let transport = if data.first().is_some_and(|b| b & 1 == 1) {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let message = DnsMessage {
        ts: Timestamp::from_secs(1_700_000_000),
        transport,
        data,
    };
    Checker::new().message(&message);
    repeats_agree(&message, usize::MAX);
    repeats_agree(&message, 0);
}

/// See [`extract_message`].
fn repeats_agree(message: &DnsMessage<'_>, lookahead_from: usize) {
    let sections = Sections {
        answer: true,
        authority: true,
        additional: true,
    };
    let (mut slow_ex, mut fast_ex) = (Extractor::new(sections), Extractor::new(sections));
    let mut slow = Aggregator::new(1 << 20, Origin::WIRE);
    let mut fast = Aggregator::new(1 << 20, Origin::WIRE);
    let (mut slow_stats, mut fast_stats) = (ExtractStats::default(), ExtractStats::default());
    let mut repeats = Repeats::new(Capacity::for_keys(1 << 20)).with_lookahead_from(lookahead_from);

    let mut new_id = message.data.to_vec();
    if new_id.len() >= 2 {
        new_id[0] ^= 0x5a;
    }
    // The question name in flipped case, if there is a question and its
    // name walks to its root label (the shortcut folds nothing else).
    let mut flipped = message.data.to_vec();
    let has_question = flipped.len() >= 12 && flipped[4..6] != [0, 0];
    let mut pos = if has_question { 12 } else { usize::MAX };
    let mut letters = Vec::new();
    // A byte from C0 up in the name: it is compared byte for byte then, so
    // the flipped case is another response (see `pipeline::repeats`).
    let mut unfoldable = false;
    while let Some(&len) = flipped.get(pos) {
        if len == 0 {
            for &i in &letters {
                flipped[i] ^= 0x20;
            }
            break;
        }
        if len & 0xc0 != 0 || pos + 1 + usize::from(len) > flipped.len() {
            break;
        }
        let label = pos + 1..pos + 1 + usize::from(len);
        unfoldable |= flipped[label.clone()].iter().any(|&b| b >= 0xc0);
        letters.extend(label.filter(|&i| flipped[i].is_ascii_alphabetic()));
        pos += 1 + usize::from(len);
    }
    let mut kept = false;
    for (i, data) in [message.data, &new_id, &flipped].into_iter().enumerate() {
        let m = DnsMessage {
            ts: Timestamp::from_secs(message.ts.secs + i as u64),
            transport: message.transport,
            data,
        };
        if i == 0 {
            kept = slow_ex
                .extract_response(&m, &mut slow_stats, &mut slow)
                .is_some()
                && crate::pipeline::repeats::rememberable(data);
        } else {
            slow_ex.extract(&m, &mut slow_stats, &mut slow);
        }
        repeats.push(&m, &mut fast_ex, &mut fast_stats, &mut fast);
    }
    repeats.drain(&mut fast_ex, &mut fast_stats, &mut fast);
    let flipped_repeats = flipped == message.data || !unfoldable;
    let expected = if kept {
        1 + u64::from(flipped_repeats)
    } else {
        0
    };
    assert_eq!(fast_stats.repeated_responses, expected, "repeats taken");
    fast_stats.repeated_responses = 0;
    assert_eq!(slow_stats, fast_stats, "counters");
    let (slow, fast) = (slow.take(), fast.take());
    assert_eq!(slow.sorted_entries(), fast.sorted_entries(), "aggregates");
}

/// The pcap/pcapng readers. Invariants: the summary counts the frames
/// delivered; timestamps are normalised (nanoseconds below a second); the
/// reader over a byte stream and the one over bytes in memory (what a
/// mapped file is read with) deliver the same frames and the same summary,
/// or fail alike.
pub fn pcap_reader(data: &[u8]) {
    type Frames = Vec<(Timestamp, LinkType, Vec<u8>)>;
    let read = |in_place: bool| {
        let mut frames: Frames = Vec::new();
        let mut keep = |frame: &Frame<'_>| {
            assert!(frame.ts.nanos < 1_000_000_000, "timestamp {:?}", frame.ts);
            frames.push((frame.ts, frame.link, frame.data.to_vec()));
        };
        let result = if in_place {
            crate::source::pcap::read_slice(data, "fuzz", &mut keep)
        } else {
            crate::source::pcap::read(data, "fuzz", &mut keep)
        };
        if let Ok(summary) = &result {
            assert_eq!(summary.frames, frames.len() as u64);
        }
        (result.map_err(|e| e.to_string()), frames)
    };
    let (streamed, streamed_frames) = read(false);
    let (in_place, in_place_frames) = read(true);
    assert_eq!(streamed, in_place, "summaries");
    assert!(streamed_frames == in_place_frames, "frames differ");
}

/// Zeek dns.log lines, TSV or JSON, headers included, rebuilt into
/// responses and observed. Invariants: as [`extract_message`] for every
/// observation.
pub fn zeek_log(data: &[u8]) {
    let mut parser = FileParser::new();
    let mut stats = ZeekStats::default();
    let mut warnings = Warnings::new("fuzz".into());
    let mut sink = CheckingSink::default();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = if line.len() > reader::MAX_LINE {
            reader::Line::TooLong
        } else {
            reader::Line::Text(line)
        };
        parser.handle(
            line,
            i as u64 + 1,
            false,
            &mut stats,
            &mut |response| response.observe(&mut sink),
            &mut warnings,
        );
    }
}

/// A Frame Streams byte stream (the receiver's handshake included), every
/// data frame decoded as dnstap and its DNS message extracted. Invariants:
/// each decoded frame consumes input (no endless loop); an oversized frame
/// is over the limit; a DNS message handed on fits in 65 535 bytes.
pub fn dnstap_stream(data: &[u8]) {
    const MAX_FRAME: usize = 16 * 1024;
    let mut buf = BytesMut::from(data);
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    let mut session = Session::new();
    let mut reply = Vec::new();
    let mut check = Checker::new();
    loop {
        let before = buf.len();
        let frame = match decoder.next(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        assert!(buf.len() < before, "a frame consumed no input");
        match frame {
            frame_streams::Frame::Data(payload) => {
                if session.data().is_err() {
                    break;
                }
                let decoded = message::decode(payload, message::Selection::default());
                if let Ok(response) = decoded.verdict {
                    assert!(response.dns.len() <= MAX_DNS_MESSAGE);
                    check.message(&DnsMessage {
                        ts: response.ts,
                        transport: response.transport,
                        data: &response.dns,
                    });
                }
            }
            frame_streams::Frame::Control(control) => {
                if session.control(&control, &mut reply).is_err() {
                    break;
                }
            }
            frame_streams::Frame::TooLarge(len) => assert!(len > MAX_FRAME as u64),
        }
    }
    // A data frame on its own, as a dnstap file's frames are.
    let decoded = message::decode(Bytes::copy_from_slice(data), Default::default());
    if let Ok(response) = decoded.verdict {
        check.message(&DnsMessage {
            ts: response.ts,
            transport: response.transport,
            data: &response.dns,
        });
    }
}

/// API paths, query strings, name and address patterns, type filters and
/// the web page's search box. The input is text: the first line is a path
/// with its query string, each further line one value for every parser.
pub fn api_params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    crate::serve::fuzz_parse(text);
}

/// Seeds: the inputs of every target that a capture file yields (frame
/// sequences of `window` frames, the DNS messages decoded from them, and a
/// Frame Streams stream of those messages as dnstap), for the seed
/// generator (`examples/fuzz_seeds.rs`) and the tests.
pub struct CaptureSeeds {
    pub frames: Vec<Vec<u8>>,
    pub messages: Vec<Vec<u8>>,
    pub dnstap: Vec<u8>,
}

/// Builds [`CaptureSeeds`] from a pcap or pcapng file's bytes.
pub fn capture_seeds(capture: &[u8], window: usize) -> CaptureSeeds {
    use prost::Message as _;

    let mut frames: Vec<(Timestamp, LinkType, Vec<u8>)> = Vec::new();
    let _ = crate::source::pcap::read(capture, "seed", |f| {
        frames.push((f.ts, f.link, f.data.to_vec()))
    });
    let mut seeds = CaptureSeeds {
        frames: Vec::new(),
        messages: Vec::new(),
        dnstap: frame_streams::encode_control(
            frame_streams::ControlType::Start,
            Some(frame_streams::CONTENT_TYPE),
        ),
    };
    for chunk in frames.chunks(window.max(1)) {
        let mut seed = Vec::new();
        let mut last = chunk[0].0.secs;
        for (ts, link, data) in chunk {
            let advance = ts.secs.saturating_sub(last).min(255) as u8;
            last = last.max(ts.secs);
            push_frame_record(&mut seed, link_number(*link), advance, data);
        }
        seeds.frames.push(seed);
    }
    let mut decoder = Decoder::new(&DecodeConfig::default());
    let mut messages = Vec::new();
    let mut emit = |m: DnsMessage<'_>| messages.push((m.transport, m.data.to_vec()));
    for (ts, link, data) in &frames {
        let frame = Frame {
            ts: *ts,
            link: *link,
            data,
        };
        decoder.decode(&frame, &mut emit);
    }
    decoder.finish(&mut emit);
    for (transport, dns) in messages {
        let message = crate::source::dnstap::proto::Message {
            r#type: crate::source::dnstap::proto::message::Type::ResolverResponse as i32,
            socket_protocol: Some(match transport {
                Transport::Udp => crate::source::dnstap::proto::SocketProtocol::Udp as i32,
                Transport::Tcp => crate::source::dnstap::proto::SocketProtocol::Tcp as i32,
            }),
            response_time_sec: Some(1_700_000_000),
            response_message: Some(Bytes::copy_from_slice(&dns)),
            ..Default::default()
        };
        let dnstap = crate::source::dnstap::proto::Dnstap {
            r#type: crate::source::dnstap::proto::dnstap::Type::Message as i32,
            message: Some(message),
            ..Default::default()
        };
        frame_streams::encode_data(&dnstap.encode_to_vec(), &mut seeds.dnstap);
        seeds.messages.push(dns);
    }
    seeds.dnstap.extend(frame_streams::encode_control(
        frame_streams::ControlType::Stop,
        None,
    ));
    seeds
}

/// The pcap number of a link type (the inverse of `LinkType::from_pcap`).
fn link_number(link: LinkType) -> u32 {
    match link {
        LinkType::Null => 0,
        LinkType::Ethernet => 1,
        LinkType::Raw => 101,
        LinkType::Loop => 108,
        LinkType::LinuxSll => 113,
        LinkType::Ipv4 => 228,
        LinkType::Ipv6 => 229,
        LinkType::LinuxSll2 => 276,
        LinkType::Ieee80211 => 105,
        LinkType::Radiotap => 127,
        LinkType::Other(n) => n,
    }
}

/// Extracts a message and checks what comes out (one per target, reusing
/// the extractor's buffers).
struct Checker {
    extractor: Extractor,
    stats: ExtractStats,
    sink: CheckingSink,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            extractor: Extractor::new(Sections {
                answer: true,
                authority: true,
                additional: true,
            }),
            stats: Default::default(),
            sink: CheckingSink::default(),
        }
    }

    fn message(&mut self, message: &DnsMessage<'_>) {
        self.extractor
            .extract(message, &mut self.stats, &mut self.sink);
    }
}

/// An observation sink that checks every key round trip and rendering.
#[derive(Default)]
struct CheckingSink {
    key: Vec<u8>,
    text: String,
}

impl CheckingSink {
    /// An encoded name renders as one line of text and parses back.
    fn check_name(&mut self, encoded: &[u8]) {
        self.text.clear();
        name::write_presentation(encoded, &mut self.text);
        assert_one_line(&self.text);
    }
}

/// Rendered text is for one table cell or one line of output.
fn assert_one_line(text: &str) {
    assert!(
        !text.contains(['\n', '\r']),
        "rendered text spans lines: {text:?}"
    );
}

impl ObservationSink for CheckingSink {
    fn record(&mut self, owner: &[u8], rtype: Rtype, rdata: &[u8], _ttl: u32, _ts: u64) {
        self.key.clear();
        key::record_key(&mut self.key, owner, rtype, rdata);
        let parsed = key::parse_record_key(&self.key).expect("a record key parses back");
        assert_eq!(
            parsed,
            key::RecordKey {
                owner,
                rtype,
                rdata
            }
        );
        self.check_name(owner);
        let text = render::rdata(rtype, rdata);
        assert_one_line(&text);
        assert_one_line(&render::rtype_name(rtype));
    }

    fn negative(&mut self, qname: &[u8], qtype: Rtype, rcode: OptRcode, _ts: u64) {
        self.key.clear();
        key::negative_key(&mut self.key, qname, qtype, rcode);
        let parsed = key::parse_negative_key(&self.key).expect("a negative key parses back");
        assert_eq!(
            parsed,
            key::NegativeKey {
                qname,
                qtype,
                rcode
            }
        );
        self.check_name(qname);
    }
}
