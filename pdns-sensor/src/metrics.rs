//! Prometheus metrics: one registry for the whole process.
//!
//! Hot paths never touch these directly. Decoder threads count in plain
//! integers ([`DecodeStats`]) and publish the difference when they flush,
//! so a packet costs no atomic operation. The registry is rendered in text
//! format by [`render`] (served at `/metrics` by the API).

use std::sync::LazyLock;

use prometheus::{
    Counter, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::decode::{DecodeStats, DropReason};

/// All metrics of the process.
pub struct Metrics {
    pub registry: Registry,
    pub frames: IntCounter,
    pub frame_bytes: IntCounter,
    pub drops: IntCounterVec,
    pub dns_messages: IntCounterVec,
    pub dns_responses_by_rcode: IntCounterVec,
    pub reassembled_datagrams: IntCounter,
    pub observations: IntCounterVec,
    pub aggregator_entries: IntGaugeVec,
    pub aggregator_flushes: IntCounter,
    pub flush_seconds: Histogram,
    pub store_batches: IntCounter,
    pub store_batch_bytes: IntCounter,
    pub store_wait_seconds: Counter,
    pub store_corrupt_values: IntCounter,
    pub zeek_lines: IntCounterVec,
    pub zeek_lines_skipped: IntCounterVec,
    pub zeek_answers_skipped: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub api_requests: IntCounterVec,
    pub api_seconds: HistogramVec,
    pub rocksdb: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let drops = counter_vec(
            r,
            "pdns_decode_drops_total",
            "Frames, fragments, segments or DNS messages not used, by reason.",
            &["reason"],
        );
        for reason in DropReason::ALL {
            drops.with_label_values(&[reason.as_str()]);
        }
        let aggregator_entries = IntGaugeVec::new(
            Opts::new(
                "pdns_aggregator_entries",
                "Entries held in pre-aggregation maps, by table.",
            ),
            &["table"],
        )
        .expect("valid metric");
        r.register(Box::new(aggregator_entries.clone()))
            .expect("unique metric");
        let flush_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "pdns_aggregator_flush_duration_seconds",
                "Time to write one pre-aggregation flush to the store.",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets")),
        )
        .expect("valid metric");
        r.register(Box::new(flush_seconds.clone()))
            .expect("unique metric");
        let build_info = IntGaugeVec::new(
            Opts::new("pdns_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        r.register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let api_seconds = HistogramVec::new(
            HistogramOpts::new(
                "pdns_api_request_duration_seconds",
                "HTTP API request latency, by surface.",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 18).expect("valid buckets")),
            &["surface"],
        )
        .expect("valid metric");
        r.register(Box::new(api_seconds.clone()))
            .expect("unique metric");
        let rocksdb = IntGaugeVec::new(
            Opts::new(
                "pdns_rocksdb_property",
                "RocksDB properties per column family: estimate_num_keys, live_data_bytes, sst_bytes, \
                 pending_compaction_bytes, memtable_bytes.",
            ),
            &["cf", "property"],
        )
        .expect("valid metric");
        r.register(Box::new(rocksdb.clone()))
            .expect("unique metric");

        Metrics {
            api_requests: counter_vec(
                r,
                "pdns_api_requests_total",
                "HTTP API requests, by surface and status code.",
                &["surface", "status"],
            ),
            api_seconds,
            rocksdb,
            frames: counter(r, "pdns_frames_total", "Frames handed to the decoders."),
            frame_bytes: counter(
                r,
                "pdns_frame_bytes_total",
                "Bytes of frames handed to the decoders.",
            ),
            drops,
            dns_messages: counter_vec(
                r,
                "pdns_dns_messages_total",
                "DNS messages decoded, by direction (query/response) and transport.",
                &["direction", "transport"],
            ),
            dns_responses_by_rcode: counter_vec(
                r,
                "pdns_dns_responses_total",
                "DNS responses decoded, by RCODE.",
                &["rcode"],
            ),
            reassembled_datagrams: counter(
                r,
                "pdns_ip_reassembled_datagrams_total",
                "IP datagrams rebuilt from fragments.",
            ),
            observations: counter_vec(
                r,
                "pdns_observations_total",
                "Observations extracted from responses, by table (records/negative).",
                &["table"],
            ),
            aggregator_entries,
            aggregator_flushes: counter(
                r,
                "pdns_aggregator_flushes_total",
                "Pre-aggregation flushes written.",
            ),
            flush_seconds,
            store_batches: counter(
                r,
                "pdns_store_write_batches_total",
                "Write batches committed to RocksDB.",
            ),
            store_batch_bytes: counter(
                r,
                "pdns_store_write_batch_bytes_total",
                "Bytes of write batches committed to RocksDB.",
            ),
            store_wait_seconds: {
                let c = Counter::new(
                    "pdns_store_writer_wait_seconds_total",
                    "Time decoder threads waited for their store writer to take a batch: \
                     non-zero means the store is slower than the traffic.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            store_corrupt_values: counter(
                r,
                "pdns_store_corrupt_values_total",
                "Stored values or merge operands that did not decode and were skipped.",
            ),
            zeek_lines: counter_vec(
                r,
                "pdns_zeek_lines_total",
                "Zeek dns.log data lines, by result (read, imported).",
                &["result"],
            ),
            zeek_lines_skipped: counter_vec(
                r,
                "pdns_zeek_lines_skipped_total",
                "Zeek dns.log data lines that gave no observation, by reason.",
                &["reason"],
            ),
            zeek_answers_skipped: counter_vec(
                r,
                "pdns_zeek_answers_skipped_total",
                "Zeek dns.log answers that could not be turned into records, by reason.",
                &["reason"],
            ),
            build_info,
            registry,
        }
    }

    /// Publishes a decoder thread's counters (a delta since its last call).
    pub fn add_decode(&self, d: &DecodeStats) {
        self.frames.inc_by(d.frames);
        self.frame_bytes.inc_by(d.bytes);
        self.reassembled_datagrams.inc_by(d.reassembled_datagrams);
        for reason in DropReason::ALL {
            let n = d.dropped(reason);
            if n > 0 {
                self.drops.with_label_values(&[reason.as_str()]).inc_by(n);
            }
        }
        let udp_q = d.dns_queries - d.tcp_queries.min(d.dns_queries);
        let udp_r = d.dns_responses - d.tcp_responses.min(d.dns_responses);
        for (dir, transport, n) in [
            ("query", "udp", udp_q),
            ("query", "tcp", d.tcp_queries),
            ("response", "udp", udp_r),
            ("response", "tcp", d.tcp_responses),
        ] {
            if n > 0 {
                self.dns_messages
                    .with_label_values(&[dir, transport])
                    .inc_by(n);
            }
        }
        for (rcode, &n) in d.rcodes.iter().enumerate() {
            if n > 0 {
                self.dns_responses_by_rcode
                    .with_label_values(&[crate::extract::rcode_label(rcode as u16)])
                    .inc_by(n);
            }
        }
        if d.observations > 0 {
            self.observations
                .with_label_values(&["records"])
                .inc_by(d.observations);
        }
        if d.negatives > 0 {
            self.observations
                .with_label_values(&["negative"])
                .inc_by(d.negatives);
        }
    }
}

impl Metrics {
    /// Publishes Zeek import counters (a delta since the last call).
    pub fn add_zeek(&self, z: &crate::source::zeek::ZeekStats) {
        use crate::source::zeek::{AnswerSkip, LineSkip};
        self.zeek_lines.with_label_values(&["read"]).inc_by(z.lines);
        self.zeek_lines
            .with_label_values(&["imported"])
            .inc_by(z.lines_imported);
        for reason in LineSkip::ALL {
            let n = z.line_skipped(*reason);
            if n > 0 {
                self.zeek_lines_skipped
                    .with_label_values(&[reason.as_str()])
                    .inc_by(n);
            }
        }
        for reason in AnswerSkip::ALL {
            let n = z.answer_skipped(*reason);
            if n > 0 {
                self.zeek_answers_skipped
                    .with_label_values(&[reason.as_str()])
                    .inc_by(n);
            }
        }
        if z.records > 0 {
            self.observations
                .with_label_values(&["records"])
                .inc_by(z.records);
        }
        if z.negatives > 0 {
            self.observations
                .with_label_values(&["negative"])
                .inc_by(z.negatives);
        }
    }
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Refreshes the RocksDB gauges from a store (called on scrape).
pub fn update_store_gauges(store: &crate::store::Store) {
    for (cf, property, value) in store.properties() {
        METRICS
            .rocksdb
            .with_label_values(&[cf, property])
            .set(value as i64);
    }
}

/// Counts a stored value that did not decode (called from the merge
/// operator, which has no other way to report).
pub fn corrupt_value() {
    METRICS.store_corrupt_values.inc();
}

/// Renders every metric in the Prometheus text format.
pub fn render() -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}
