//! The repeated-response shortcut (`pipeline::repeats`) against the slow
//! path, on the DNS messages of every real capture in `testdata/pcap`:
//! whatever mix of repeats, new IDs, 0x20 case, mutated bytes and flushes
//! they arrive in, extracting through the shortcut must leave the
//! aggregator's batches and every extraction counter exactly as extracting
//! each message from scratch does — with the shortcut working ahead
//! (holding responses back) and without.

mod common;

use std::path::Path;
use std::sync::Arc;

use pdns_sensor::aggregate::Aggregator;
use pdns_sensor::decode::{DecodeConfig, Decoder};
use pdns_sensor::extract::{ExtractStats, Extractor, Sections};
use pdns_sensor::pipeline::{Capacity, Pipeline, PipelineConfig, Repeats};
use pdns_sensor::store::{Filter, Selector, Store};
use pdns_sensor::vocab::packet::{DnsMessage, Timestamp, Transport};
use pdns_sensor::vocab::value::Origin;
use proptest::prelude::*;

/// An owned DNS message as the decoder hands it over.
#[derive(Clone, Debug)]
struct Message {
    transport: Transport,
    data: Vec<u8>,
}

fn pcaps(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            pcaps(&p, out);
        } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
            out.push(p);
        }
    }
}

/// Every DNS message (queries too) the decoder finds in the captures.
fn messages() -> Vec<Message> {
    let mut files = Vec::new();
    pcaps(&common::testdata().join("pcap"), &mut files);
    assert!(files.len() > 40, "only {} captures found", files.len());
    let mut out = Vec::new();
    let config = DecodeConfig {
        ports: vec![53, 8053],
        ..DecodeConfig::default()
    };
    for file in &files {
        let mut decoder = Decoder::new(&config);
        let mut keep = |m: DnsMessage<'_>| {
            out.push(Message {
                transport: m.transport,
                data: m.data.to_vec(),
            })
        };
        pdns_sensor::source::pcap::read_file(file, |frame| decoder.decode(frame, &mut keep))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        decoder.finish(&mut keep);
    }
    out
}

/// The slow path and the shortcut side by side.
struct Both {
    slow: (Extractor, Aggregator, ExtractStats),
    fast: (Extractor, Aggregator, ExtractStats, Repeats),
    batches: usize,
}

impl Both {
    /// `lookahead_from`: see [`Repeats::with_lookahead_from`].
    fn new(lookahead_from: usize) -> Both {
        let sections = Sections {
            answer: true,
            authority: true,
            additional: true,
        };
        Both {
            slow: (
                Extractor::new(sections),
                Aggregator::new(1_000_000, Origin::WIRE),
                ExtractStats::default(),
            ),
            fast: (
                Extractor::new(sections),
                Aggregator::new(1_000_000, Origin::WIRE),
                ExtractStats::default(),
                Repeats::new(Capacity::for_keys(1_000_000)).with_lookahead_from(lookahead_from),
            ),
            batches: 0,
        }
    }

    /// Extracts one message both ways; returns whether the shortcut took
    /// it as a repeat (known at once only if it does not work ahead).
    fn feed(&mut self, transport: Transport, data: &[u8], ts: u64) -> bool {
        let message = DnsMessage {
            ts: Timestamp::from_secs(ts),
            transport,
            data,
        };
        let (ex, agg, stats) = &mut self.slow;
        ex.extract(&message, stats, agg);
        let (ex, agg, stats, repeats) = &mut self.fast;
        let before = stats.repeated_responses;
        repeats.push(&message, ex, stats, agg);
        stats.repeated_responses > before
    }

    /// Feeds `m` three times, as in every test over all captures: as it
    /// came, under a new ID (3 s later) and with its question name in
    /// mixed 0x20 case (1 s later). Returns whether the last two were
    /// taken as repeats, and the mixed-case message.
    fn feed_three(&mut self, m: &Message, ts: u64) -> (bool, bool, Vec<u8>) {
        self.feed(m.transport, &m.data, ts);
        let new_id = self.feed(m.transport, &with_id(&m.data, 0xbeef), ts + 3);
        let mixed = mix_case(&m.data, 0x5555_5555_5555_5555, question_name_len(&m.data));
        let mixed_case = self.feed(m.transport, &mixed, ts + 1);
        (new_id, mixed_case, mixed)
    }

    /// Takes both batches (the shortcut's after extracting what it holds
    /// back, as the worker does) and checks they are equal.
    fn flush(&mut self) -> Result<(), TestCaseError> {
        let (ex, agg, stats, repeats) = &mut self.fast;
        repeats.drain(ex, stats, agg);
        let (slow, fast) = (self.slow.1.take(), self.fast.1.take());
        let (slow, fast) = (slow.sorted_entries(), fast.sorted_entries());
        prop_assert_eq!(slow.len(), fast.len(), "batch {}", self.batches);
        for (s, f) in slow.iter().zip(&fast) {
            prop_assert_eq!(s, f, "batch {}", self.batches);
        }
        self.batches += 1;
        Ok(())
    }

    /// Flushes and checks that the counters agree; returns the responses
    /// the shortcut counted.
    fn finish(mut self) -> Result<u64, TestCaseError> {
        self.flush()?;
        let mut fast = self.fast.2.clone();
        let repeated = fast.repeated_responses;
        fast.repeated_responses = 0;
        prop_assert_eq!(&self.slow.2, &fast);
        Ok(repeated)
    }
}

/// Sets a new ID.
fn with_id(data: &[u8], id: u16) -> Vec<u8> {
    let mut d = data.to_vec();
    if d.len() >= 2 {
        d[..2].copy_from_slice(&id.to_be_bytes());
    }
    d
}

/// Flips the case of the ASCII letters in the first `span` bytes after the
/// header whose bit in `bits` is set — the question name, as a 0x20
/// resolver does, and beyond it whatever lies there when `span` is long.
fn mix_case(data: &[u8], bits: u64, span: usize) -> Vec<u8> {
    let mut d = data.to_vec();
    for (i, b) in d.iter_mut().skip(12).take(span).enumerate() {
        if bits >> (i % 64) & 1 == 1 && b.is_ascii_alphabetic() {
            *b ^= 0x20;
        }
    }
    d
}

#[test]
fn every_response_three_times_counts_alike() {
    let messages = messages();
    // Never ahead: whether each message was taken is known at once.
    let mut both = Both::new(usize::MAX);
    let (mut responses, mut repeats) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let (new_id, mixed_case, mixed) = both.feed_three(m, 1_700_000_000 + i as u64);
        // Whether the slow path made something of it: then the same
        // response under a new ID, and with its question's case mixed as
        // DNS 0x20 does, must both be taken as repeats.
        let repeatable = {
            let mut ex = Extractor::new(Sections::default());
            let mut agg = Aggregator::new(10, Origin::WIRE);
            let mut stats = ExtractStats::default();
            let msg = DnsMessage {
                ts: Timestamp::from_secs(1),
                transport: m.transport,
                data: &m.data,
            };
            ex.extract_response(&msg, &mut stats, &mut agg).is_some()
                && pdns_sensor::pipeline::repeats::rememberable(&m.data)
        };
        assert_eq!(new_id, repeatable, "message {i} under a new ID");
        assert_eq!(mixed_case, repeatable, "message {i} in 0x20 case");
        responses += usize::from(repeatable);
        repeats += usize::from(repeatable && mixed != m.data);
        if i % 97 == 96 {
            both.flush().unwrap();
        }
    }
    both.finish().unwrap();
    assert!(responses > 400, "only {responses} repeatable responses");
    assert!(
        repeats > 300,
        "the case of only {repeats} questions was mixed"
    );
}

/// Working ahead changes when a response is extracted, never whether it is
/// taken as a repeat: over every capture (each response also under a new ID
/// and in 0x20 case, flushed every 97), holding responses back from the
/// first one takes the same repeats, and leaves the same batches and
/// counters as the slow path.
#[test]
fn working_ahead_takes_the_same_repeats() {
    let messages = messages_cached();
    let run = |lookahead_from| {
        let mut both = Both::new(lookahead_from);
        for (i, m) in messages.iter().enumerate() {
            both.feed_three(m, 1_700_000_000 + i as u64);
            if i % 97 == 96 {
                both.flush().unwrap();
            }
        }
        both.finish().unwrap()
    };
    let never = run(usize::MAX);
    assert!(never > 800, "only {never} repeats");
    assert_eq!(run(0), never);
}

/// A worker drains what its shortcut holds back before every flush and at
/// the end: a pipeline working ahead from the first response writes the
/// same store and counts the same (but for repeats) as one that never
/// does, over every capture read twice (so responses repeat), in batches
/// of about 8 keys (so there are many flushes).
#[test]
fn a_pipeline_working_ahead_writes_the_same_store() {
    let mut files = Vec::new();
    pcaps(&common::testdata().join("pcap"), &mut files);
    let run = |lookahead_from| {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let config = PipelineConfig {
            threads: 1,
            max_entries: 8,
            lookahead_from,
            decode: DecodeConfig {
                ports: vec![53, 8053],
                ..DecodeConfig::default()
            },
            ..PipelineConfig::default()
        };
        let mut pipeline = Pipeline::new(&config, Arc::clone(&store)).unwrap();
        for file in files.iter().chain(&files) {
            pdns_sensor::source::pcap::read_file(file, |frame| {
                pipeline.push(frame).expect("pipeline running");
            })
            .unwrap();
        }
        let summary = pipeline.finish().unwrap();
        let all = Filter::default();
        let records: Vec<_> = store
            .records(&Selector::All, &all)
            .map(Result::unwrap)
            .collect();
        let negatives: Vec<_> = store
            .negatives(&Selector::All, &all)
            .map(Result::unwrap)
            .collect();
        (summary.extract, summary.flushes, records, negatives)
    };
    let never = run(usize::MAX);
    let ahead = run(0);
    assert!(never.2.len() > 1000, "only {} records", never.2.len());
    assert!(never.1 > 20, "only {} flushes", never.1);
    assert!(
        never.0.repeated_responses > 200,
        "only {} repeats",
        never.0.repeated_responses
    );
    // Responses held back count towards a full aggregator only once
    // extracted, so batches end a few responses later, and which responses
    // repeat within one can differ; that counter aside, all is equal.
    assert!(ahead.0.repeated_responses > 200);
    let without_repeats = |stats: &ExtractStats| ExtractStats {
        repeated_responses: 0,
        ..stats.clone()
    };
    assert_eq!(
        without_repeats(&ahead.0),
        without_repeats(&never.0),
        "counters"
    );
    assert_eq!(ahead.2, never.2, "records");
    assert_eq!(ahead.3, never.3, "negative answers");
}

/// The length of the question name's labels after the header (up to the
/// root label or the first pointer).
fn question_name_len(data: &[u8]) -> usize {
    let mut pos = 12;
    while let Some(&len) = data.get(pos) {
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        pos += 1 + usize::from(len);
    }
    pos.min(data.len()).saturating_sub(12)
}

#[derive(Clone, Debug)]
enum Variant {
    Same,
    NewId(u16),
    /// 0x20 case over the first bytes after the header (up to 255: past
    /// the question name too, where case matters).
    Case(u64, u8),
    Flip {
        at: usize,
        bit: u8,
    },
    Truncate {
        at: usize,
    },
    /// A byte rewritten (a TTL counting down, a changed count).
    Byte {
        at: usize,
        value: u8,
    },
}

fn variant() -> impl Strategy<Value = Variant> {
    prop_oneof![
        3 => Just(Variant::Same),
        3 => any::<u16>().prop_map(Variant::NewId),
        3 => (any::<u64>(), any::<u8>()).prop_map(|(b, s)| Variant::Case(b, s)),
        1 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Variant::Flip { at, bit }),
        1 => any::<usize>().prop_map(|at| Variant::Truncate { at }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Variant::Byte { at, value }),
    ]
}

fn apply(data: &[u8], v: &Variant) -> Vec<u8> {
    match v {
        Variant::Same => data.to_vec(),
        Variant::NewId(id) => with_id(data, *id),
        Variant::Case(bits, span) => mix_case(data, *bits, usize::from(*span)),
        _ if data.is_empty() => Vec::new(),
        Variant::Flip { at, bit } => {
            let mut d = data.to_vec();
            d[at % data.len()] ^= 1 << bit;
            d
        }
        Variant::Truncate { at } => data[..at % data.len()].to_vec(),
        Variant::Byte { at, value } => {
            let mut d = data.to_vec();
            d[at % data.len()] = *value;
            d
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Messages picked from a small pool (so they repeat), each possibly
    /// changed, at times going back and forth, with flushes in between;
    /// the shortcut working ahead from the first response or never.
    #[test]
    fn the_shortcut_matches_the_slow_path(
        ahead in any::<bool>(),
        pool_start in any::<usize>(),
        steps in proptest::collection::vec(
            (0usize..24, variant(), 0u64..40, proptest::bool::weighted(0.02)),
            1..600,
        ),
    ) {
        let messages = messages_cached();
        let start = pool_start % messages.len();
        let pool: Vec<&Message> = messages.iter().cycle().skip(start).take(24).collect();
        let mut both = Both::new(if ahead { 0 } else { usize::MAX });
        for (pick, v, dt, flush) in &steps {
            let m = pool[*pick];
            both.feed(m.transport, &apply(&m.data, v), 1_700_000_000 + dt);
            if *flush {
                both.flush()?;
            }
        }
        both.finish()?;
    }
}

/// The messages, read once for all proptest cases.
fn messages_cached() -> &'static [Message] {
    static MESSAGES: std::sync::OnceLock<Vec<Message>> = std::sync::OnceLock::new();
    MESSAGES.get_or_init(messages)
}
