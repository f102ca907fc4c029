//! Prometheus metrics: one registry for the whole process, and the one
//! place that publishes to it.
//!
//! The stages never touch the registry. Each counts in its own plain
//! structure — the decoder in [`DecodeStats`], the extractor in
//! [`ExtractStats`], the Zeek reader in [`ZeekStats`], a capture ring in
//! [`RingCounters`](crate::capture::stats::RingCounters), the store in its
//! [`WriteStats`] — so a packet costs no atomic operation. The layer that
//! runs the stages hands those counters to the `publish_*` functions here:
//! the pipeline's worker and writer at every flush, `run`'s control loop
//! once a second for capture, the Zeek driver at its flushes, the API for
//! its requests. [`render`] produces the text format served at `/metrics`.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus::{
    Counter, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::capture::stats::RingTotals;
use crate::decode::{self, DecodeStats};
use crate::extract::{self, ExtractStats};
use crate::source::bro_pdns::{BroPdnsStats, RowSkip};
use crate::source::dnstap::DnstapStats;
use crate::source::dnstap::message as dnstap_message;
use crate::source::zeek::{AnswerSkip, LineSkip, ZeekStats};
use crate::store::{Store, WriteStats};

/// All metrics of the process.
struct Metrics {
    registry: Registry,
    frames: IntCounter,
    frame_bytes: IntCounter,
    drops: IntCounterVec,
    dns_messages: IntCounterVec,
    dns_responses_by_rcode: IntCounterVec,
    reassembled_datagrams: IntCounter,
    repeated_responses: IntCounter,
    decapsulated: IntCounterVec,
    decode_evictions: IntCounterVec,
    decode_state_bytes: IntGaugeVec,
    observations: IntCounterVec,
    aggregator_entries: IntGaugeVec,
    aggregator_flushes: IntCounter,
    flush_seconds: Histogram,
    store_batches: IntCounter,
    new_domains: IntCounterVec,
    nod_moved: IntCounter,
    store_batch_bytes: IntCounter,
    store_last_write: IntGauge,
    store_write_blocked: IntGauge,
    store_write_failures: IntCounter,
    store_wait_seconds: Counter,
    store_corrupt_values: IntCounter,
    zeek_lines: IntCounterVec,
    zeek_lines_skipped: IntCounterVec,
    zeek_answers_skipped: IntCounterVec,
    bro_pdns_rows: IntCounterVec,
    bro_pdns_rows_skipped: IntCounterVec,
    api_requests: IntCounterVec,
    api_reads: IntCounterVec,
    api_seconds: HistogramVec,
    rocksdb: IntGaugeVec,
    allocator: IntGaugeVec,
    retention_expired: IntCounterVec,
    retention_days: IntGauge,
    capture_packets: IntCounterVec,
    capture_drops: IntCounterVec,
    capture_freezes: IntCounterVec,
    capture_vlan_tagged: IntCounterVec,
    capture_interface_up: IntGaugeVec,
    capture_socket_errors: IntCounterVec,
    filter_accepted: IntCounterVec,
    filter_rejected: IntCounterVec,
    api_key_requests: IntCounterVec,
    api_quota_refusals: IntCounterVec,
    api_quota_limit: IntGaugeVec,
    api_quota_remaining: IntGaugeVec,
    api_tls_handshakes: IntCounterVec,
    api_connections: IntCounterVec,
    api_connections_open: IntGauge,
    api_tls_reloads: IntCounterVec,
    api_catch_up_failures: IntCounter,
    api_tls_expiry: IntGauge,
    export_rows: IntCounterVec,
    export_inserts: IntCounterVec,
    export_bytes: IntCounterVec,
    export_insert_seconds: Histogram,
    export_failures: IntCounterVec,
    export_up: IntGauge,
    export_backlog: IntGaugeVec,
    export_backlog_age: IntGauge,
    export_skipped: IntCounterVec,
    export_damaged_rows: IntCounter,
    dnstap_frames: IntCounterVec,
    dnstap_bytes: IntCounter,
    dnstap_messages: IntCounterVec,
    dnstap_recorded: IntCounter,
    dnstap_discarded: IntCounterVec,
    dnstap_connections: IntCounterVec,
    dnstap_connections_ended: IntCounterVec,
    dnstap_handshake_failures: IntCounter,
    dnstap_connections_open: IntGauge,
    dnstap_backlog: IntGauge,
    dnstap_backpressure_seconds: Counter,
    flex_queries: IntCounterVec,
    flex_scanned: IntCounterVec,
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

/// `c` with the series of each of `values` (of its one label) made at
/// zero: they show in every process, before their first increment, so
/// rates and dashboards have them whichever command runs.
fn with_values(c: IntCounterVec, values: impl IntoIterator<Item = &'static str>) -> IntCounterVec {
    for value in values {
        c.with_label_values(&[value]);
    }
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
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
        for reason in decode::DropReason::ALL {
            drops.with_label_values(&[reason.as_str()]);
        }
        for reason in extract::DropReason::ALL {
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
            // From 25 µs (a name answered from the block cache takes
            // less than 0.1 ms, the lowest bucket there was) to 13 s.
            .buckets(prometheus::exponential_buckets(0.000_025, 2.0, 20).expect("valid buckets")),
            &["surface"],
        )
        .expect("valid metric");
        r.register(Box::new(api_seconds.clone()))
            .expect("unique metric");
        let rocksdb = IntGaugeVec::new(
            Opts::new(
                "pdns_rocksdb_property",
                "RocksDB properties per column family: estimate_num_keys, live_data_bytes, sst_bytes, \
                 pending_compaction_bytes, memtable_bytes, table_readers_bytes (table file \
                 readers outside the block cache); and of the database as a whole \
                 (cf=\"all\"): block_cache_bytes, block_cache_pinned_bytes (the block cache all \
                 column families share).",
            ),
            &["cf", "property"],
        )
        .expect("valid metric");
        r.register(Box::new(rocksdb.clone()))
            .expect("unique metric");
        let allocator = IntGaugeVec::new(
            Opts::new(
                "pdns_allocator_bytes",
                "What the memory allocator (jemalloc) holds, by kind: allocated (bytes in use by \
                 the program, RocksDB included), active (their pages), resident (in RAM: active, \
                 metadata, freed pages not yet returned), mapped, retained (mapped, returned to \
                 the kernel), metadata. Absent where the process runs on another allocator.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        r.register(Box::new(allocator.clone()))
            .expect("unique metric");
        let retention_expired = counter_vec(
            r,
            "pdns_retention_expired_total",
            "Entries dropped for being last seen before the retention cutoff, by column family \
             and where: at=write (never stored), at=compaction (deleted). The database's totals \
             as its writers recorded them.",
            &["cf", "at"],
        );
        let retention_days = IntGauge::new(
            "pdns_retention_days",
            "Retention in force, in days (0: off, everything is kept).",
        )
        .expect("valid metric");
        r.register(Box::new(retention_days.clone()))
            .expect("unique metric");

        let store_last_write = IntGauge::new(
            "pdns_store_last_write_timestamp_seconds",
            "When this process last committed a write batch (Unix time; 0: not yet).",
        )
        .expect("valid metric");
        r.register(Box::new(store_last_write.clone()))
            .expect("unique metric");

        Metrics {
            retention_expired,
            retention_days,
            api_requests: counter_vec(
                r,
                "pdns_api_requests_total",
                "HTTP API requests, by surface and status code.",
                &["surface", "status"],
            ),
            api_reads: with_values(
                counter_vec(
                    r,
                    "pdns_api_reads_total",
                    "Lookups of the local store tried on the request's own thread: answered \
                     there (inline), or larger or slower than its budget (1 ms, 64 KiB) and run \
                     again on the blocking pool (handed_off).",
                    &["where"],
                ),
                ["inline", "handed_off"],
            ),
            api_seconds,
            rocksdb,
            allocator,
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
            repeated_responses: counter(
                r,
                "pdns_dns_repeated_responses_total",
                "DNS responses counted as the repeat of one extracted before in the same \
                 batch (bytes after the ID equal, question name case aside), without being \
                 parsed again; included in pdns_dns_responses_total.",
            ),
            reassembled_datagrams: counter(
                r,
                "pdns_ip_reassembled_datagrams_total",
                "IP datagrams rebuilt from fragments.",
            ),
            decapsulated: with_values(
                counter_vec(
                    r,
                    "pdns_decapsulated_total",
                    "Tunnelled packets opened by the decoder, by encapsulation: vxlan, geneve, \
                     gre_ip (IP in GRE), gre_teb (Ethernet in GRE), erspan1, erspan2, erspan3.",
                    &["encap"],
                ),
                decode::Encap::ALL.iter().map(|e| e.as_str()),
            ),
            decode_evictions: {
                let c = counter_vec(
                    r,
                    "pdns_decode_evictions_total",
                    "Entries evicted from the decoders' state tables (table: tcp flow directions, \
                     fragments of incomplete IP datagrams) to keep a bound (bound: entries, the \
                     table's most entries; bytes, the decoder thread's byte budget for the \
                     table). What an eviction lost is also counted in pdns_decode_drops_total \
                     (tcp_overflow, fragment_overflow).",
                    &["table", "bound"],
                );
                for table in decode::StateTable::ALL {
                    for bound in decode::Bound::ALL {
                        c.with_label_values(&[table.as_str(), bound.as_str()]);
                    }
                }
                c
            },
            decode_state_bytes: {
                let g = gauge_vec(
                    r,
                    "pdns_decode_state_bytes",
                    "Bytes of memory the decoders' state tables hold, summed over decoder \
                     threads, by table (tcp, fragments); as of each thread's last flush.",
                    &["table"],
                );
                for table in decode::StateTable::ALL {
                    g.with_label_values(&[table.as_str()]);
                }
                g
            },
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
            new_domains: with_values(
                counter_vec(
                    r,
                    "pdns_new_domains_total",
                    "Registrable domains seen for the first time (newly observed domains); \
                     warmup=\"true\": during the database's warm-up.",
                    &["warmup"],
                ),
                ["false", "true"],
            ),
            nod_moved: counter(
                r,
                "pdns_new_domains_moved_total",
                "Newly observed domains moved to an earlier first sighting (a backfill of \
                 older traffic).",
            ),
            store_batch_bytes: counter(
                r,
                "pdns_store_write_batch_bytes_total",
                "Bytes of write batches committed to RocksDB.",
            ),
            store_last_write,
            store_write_blocked: {
                let g = IntGauge::new(
                    "pdns_store_write_blocked",
                    "Store writers holding a batch they could not write (a full disk) and \
                     trying it again; capture drops meanwhile what it cannot hold.",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            store_write_failures: counter(
                r,
                "pdns_store_write_failures_total",
                "Store writes that failed with an I/O error (a full disk) and were tried again.",
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
            zeek_lines: with_values(
                counter_vec(
                    r,
                    "pdns_zeek_lines_total",
                    "Zeek dns.log data lines, by result (read, imported).",
                    &["result"],
                ),
                ["read", "imported"],
            ),
            zeek_lines_skipped: with_values(
                counter_vec(
                    r,
                    "pdns_zeek_lines_skipped_total",
                    "Zeek dns.log data lines that gave no observation, by reason.",
                    &["reason"],
                ),
                LineSkip::ALL.iter().map(|r| r.as_str()),
            ),
            zeek_answers_skipped: with_values(
                counter_vec(
                    r,
                    "pdns_zeek_answers_skipped_total",
                    "Zeek dns.log answers that could not be turned into records, by reason.",
                    &["reason"],
                ),
                AnswerSkip::ALL.iter().map(|r| r.as_str()),
            ),
            // No series until an import runs: only `import-bro-pdns` moves
            // them.
            bro_pdns_rows: counter_vec(
                r,
                "pdns_bro_pdns_rows_total",
                "bro-pdns database rows, by result (read, imported, unchanged: an earlier \
                 import added them).",
                &["result"],
            ),
            bro_pdns_rows_skipped: counter_vec(
                r,
                "pdns_bro_pdns_rows_skipped_total",
                "bro-pdns database rows that gave no record, by reason.",
                &["reason"],
            ),
            capture_packets: counter_vec(
                r,
                "pdns_capture_packets_total",
                "Packets the kernel offered to the capture rings after filtering (drops included), by interface.",
                &["interface"],
            ),
            capture_drops: counter_vec(
                r,
                "pdns_capture_drops_total",
                "Packets the kernel dropped because a capture ring was full, by interface.",
                &["interface"],
            ),
            capture_freezes: counter_vec(
                r,
                "pdns_capture_freezes_total",
                "Times a capture ring was frozen (every block full), by interface.",
                &["interface"],
            ),
            capture_vlan_tagged: counter_vec(
                r,
                "pdns_capture_vlan_tagged_frames_total",
                "Frames whose outer VLAN tag the kernel stripped and reported out of band, by interface.",
                &["interface"],
            ),
            capture_interface_up: gauge_vec(
                r,
                "pdns_capture_interface_up",
                "1 while a captured interface exists, is up and is captured on; 0 while it is \
                 absent (deleted, not created yet), down, or refused (not Ethernet), by interface.",
                &["interface"],
            ),
            capture_socket_errors: counter_vec(
                r,
                "pdns_capture_socket_errors_total",
                "Errors reading a capture socket (not expected), by interface.",
                &["interface"],
            ),
            filter_accepted: counter_vec(
                r,
                "pdns_ebpf_accepted_total",
                "Packets the eBPF filter kept: DNS port, or non-first IP fragment.",
                &["kind"],
            ),
            filter_rejected: counter_vec(
                r,
                "pdns_ebpf_rejected_total",
                "Packets the eBPF filter dropped in the kernel, by reason.",
                &["reason"],
            ),
            api_key_requests: counter_vec(
                r,
                "pdns_api_key_requests_total",
                "API requests counted against a key's quota, by key label (a name from the key \
                 file, never the key).",
                &["key"],
            ),
            api_quota_refusals: counter_vec(
                r,
                "pdns_api_quota_refusals_total",
                "API requests refused with 429 because a key's quota was used up, by key label \
                 and window (hourly/daily).",
                &["key", "window"],
            ),
            api_quota_limit: gauge_vec(
                r,
                "pdns_api_quota_limit",
                "Requests a key may make per window, by key label and window (keys with a limit).",
                &["key", "window"],
            ),
            api_quota_remaining: gauge_vec(
                r,
                "pdns_api_quota_remaining",
                "Requests a key has left in the current window, by key label and window.",
                &["key", "window"],
            ),
            api_connections: counter_vec(
                r,
                "pdns_api_connections_total",
                "API connections, by result (accepted; refused: --max-connections were \
                 open; header_timeout: closed for not sending a request head within \
                 --header-timeout).",
                &["result"],
            ),
            api_connections_open: {
                let g = IntGauge::new("pdns_api_connections_open", "API connections open now.")
                    .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            api_tls_handshakes: counter_vec(
                r,
                "pdns_api_tls_handshakes_total",
                "TLS handshakes on the API port, by result (ok, failed, timeout, plain_http, \
                 closed: connected and closed without a byte).",
                &["result"],
            ),
            api_tls_reloads: counter_vec(
                r,
                "pdns_api_tls_reloads_total",
                "TLS certificate reloads (SIGHUP), by result (ok, failed: the previous \
                 certificate stays).",
                &["result"],
            ),
            api_catch_up_failures: counter(
                r,
                "pdns_api_store_catch_up_failures_total",
                "Times `serve --db` failed to catch up with the database's writer (once a \
                 second); the API keeps serving what it read last.",
            ),
            api_tls_expiry: {
                let g = IntGauge::new(
                    "pdns_api_tls_certificate_expiry_timestamp_seconds",
                    "When the API's TLS certificate expires (notAfter, epoch seconds).",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            export_rows: with_values(
                counter_vec(
                    r,
                    "pdns_export_rows_total",
                    "Rows ClickHouse acknowledged, by input table (pdns_in, pdns_negative_in).",
                    &["table"],
                ),
                ["pdns_in", "pdns_negative_in"],
            ),
            export_inserts: with_values(
                counter_vec(
                    r,
                    "pdns_export_inserts_total",
                    "Inserts ClickHouse acknowledged, by input table.",
                    &["table"],
                ),
                ["pdns_in", "pdns_negative_in"],
            ),
            export_bytes: with_values(
                counter_vec(
                    r,
                    "pdns_export_bytes_total",
                    "Bytes of RowBinary inserts ClickHouse acknowledged, by input table.",
                    &["table"],
                ),
                ["pdns_in", "pdns_negative_in"],
            ),
            export_insert_seconds: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "pdns_export_insert_seconds",
                        "Time from sending an insert to ClickHouse's acknowledgement.",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ]),
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            export_failures: with_values(
                counter_vec(
                    r,
                    "pdns_export_failures_total",
                    "Failed export attempts (each retried), by kind: unreachable, credentials, \
                     schema, overloaded, server, refused, spool.",
                    &["kind"],
                ),
                [
                    "unreachable",
                    "credentials",
                    "schema",
                    "overloaded",
                    "server",
                    "refused",
                    "spool",
                ],
            ),
            export_up: IntGauge::new(
                "pdns_export_up",
                "1 if the last export attempt succeeded (or nothing waited), 0 while ClickHouse \
                 fails; absent without --export-clickhouse.",
            )
            .expect("valid metric"),
            export_backlog: {
                let g = gauge_vec(
                    r,
                    "pdns_export_backlog",
                    "What the export spool holds, by unit (batches, rows, bytes).",
                    &["unit"],
                );
                for unit in ["batches", "rows", "bytes"] {
                    g.with_label_values(&[unit]);
                }
                g
            },
            export_backlog_age: {
                let g = IntGauge::new(
                    "pdns_export_backlog_age_seconds",
                    "Age of the oldest batch waiting in the export spool (0: none waits).",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            export_skipped: with_values(
                counter_vec(
                    r,
                    "pdns_export_skipped_total",
                    "Batches and rows stored locally but not exported because the export spool \
                     was full (--export-spool-max), by unit (batches, rows); counted over the \
                     database's life.",
                    &["unit"],
                ),
                ["batches", "rows"],
            ),
            export_damaged_rows: counter(
                r,
                "pdns_export_damaged_rows_total",
                "Rows of damaged spool entries that could not be exported (they are in the \
                 local store).",
            ),
            dnstap_frames: counter_vec(
                r,
                "pdns_dnstap_frames_total",
                "dnstap data frames received, by the sender's identity (\"\" when it sends none; \
                 at most 32 identities, then \"other\").",
                &["identity"],
            ),
            dnstap_bytes: counter(
                r,
                "pdns_dnstap_bytes_total",
                "Bytes of dnstap data frames received.",
            ),
            dnstap_messages: with_values(
                counter_vec(
                    r,
                    "pdns_dnstap_messages_total",
                    "dnstap messages decoded, by dnstap message type.",
                    &["type"],
                ),
                (0..dnstap_message::TYPE_SLOTS).map(dnstap_message::type_label),
            ),
            dnstap_recorded: counter(
                r,
                "pdns_dnstap_recorded_total",
                "dnstap responses handed to extraction (recorded).",
            ),
            dnstap_discarded: with_values(
                counter_vec(
                    r,
                    "pdns_dnstap_discarded_total",
                    "dnstap frames not recorded, by reason: query (no answers), type_not_selected \
                     (--dnstap-types), policy (rewritten by RPZ or local data), frame_too_large \
                     (--dnstap-max-frame), truncated_frame (sender gone mid-frame), protobuf, \
                     not_message, unknown_type, no_response, no_time.",
                    &["reason"],
                ),
                dnstap_message::Discard::ALL.iter().map(|d| d.as_str()),
            ),
            dnstap_connections: with_values(
                counter_vec(
                    r,
                    "pdns_dnstap_connections_total",
                    "dnstap sender connections: accepted, or refused (over \
                     --dnstap-max-connections).",
                    &["result"],
                ),
                ["accepted", "refused"],
            ),
            dnstap_connections_ended: with_values(
                counter_vec(
                    r,
                    "pdns_dnstap_connections_ended_total",
                    "dnstap sender connections ended, by how: finished (STOP), closed (no STOP), \
                     truncated (mid-frame), protocol_error, io_error, shutdown.",
                    &["how"],
                ),
                [
                    "finished",
                    "closed",
                    "truncated",
                    "protocol_error",
                    "io_error",
                    "shutdown",
                ],
            ),
            dnstap_handshake_failures: counter(
                r,
                "pdns_dnstap_handshake_failures_total",
                "dnstap connections that failed the Frame Streams handshake (garbage, wrong content \
                 type, data before START).",
            ),
            dnstap_connections_open: {
                let g = IntGauge::new(
                    "pdns_dnstap_connections_open",
                    "dnstap sender connections open now.",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            dnstap_backlog: {
                let g = IntGauge::new(
                    "pdns_dnstap_backlog_batches",
                    "Batches of dnstap responses waiting for the workers (bounded: when full, \
                     reading from senders pauses).",
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            dnstap_backpressure_seconds: {
                let c = Counter::new(
                    "pdns_dnstap_backpressure_seconds_total",
                    "Time dnstap connections waited for the workers (the queue was full), summed \
                     over connections.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            flex_queries: counter_vec(
                r,
                "pdns_flex_queries_total",
                "DNSDB Flex searches, by kind (regex/glob), target (rrnames/rdata) and outcome \
                 (complete, limited, timeout, failed, disconnected, unsupported).",
                &["kind", "target", "outcome"],
            ),
            flex_scanned: with_values(
                counter_vec(
                    r,
                    "pdns_flex_scanned_total",
                    "What Flex searches read: owner names matched against a pattern (names) and \
                     records read (records).",
                    &["what"],
                ),
                ["names", "records"],
            ),
            registry,
        }
    }
}

/// The process-wide metrics.
static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Publishes a decoder's counters (a delta since its last call).
pub(crate) fn publish_decode(d: &DecodeStats) {
    let m = &*METRICS;
    m.frames.inc_by(d.frames);
    m.frame_bytes.inc_by(d.bytes);
    m.reassembled_datagrams.inc_by(d.reassembled_datagrams);
    for encap in decode::Encap::ALL {
        let n = d.decapsulated[encap as usize];
        if n > 0 {
            m.decapsulated
                .with_label_values(&[encap.as_str()])
                .inc_by(n);
        }
    }
    for reason in decode::DropReason::ALL {
        let n = d.dropped(reason);
        if n > 0 {
            m.drops.with_label_values(&[reason.as_str()]).inc_by(n);
        }
    }
    for table in decode::StateTable::ALL {
        for bound in decode::Bound::ALL {
            let n = d.evicted(table, bound);
            if n > 0 {
                m.decode_evictions
                    .with_label_values(&[table.as_str(), bound.as_str()])
                    .inc_by(n);
            }
        }
        let change = d.held_bytes_change[table as usize];
        if change != 0 {
            m.decode_state_bytes
                .with_label_values(&[table.as_str()])
                .add(change);
        }
    }
}

/// Publishes an extractor's counters (a delta since its last call).
pub(crate) fn publish_extract(e: &ExtractStats) {
    let m = &*METRICS;
    for reason in extract::DropReason::ALL {
        let n = e.dropped(reason);
        if n > 0 {
            m.drops.with_label_values(&[reason.as_str()]).inc_by(n);
        }
    }
    let udp_q = e.dns_queries - e.tcp_queries.min(e.dns_queries);
    let udp_r = e.dns_responses - e.tcp_responses.min(e.dns_responses);
    for (dir, transport, n) in [
        ("query", "udp", udp_q),
        ("query", "tcp", e.tcp_queries),
        ("response", "udp", udp_r),
        ("response", "tcp", e.tcp_responses),
    ] {
        if n > 0 {
            m.dns_messages
                .with_label_values(&[dir, transport])
                .inc_by(n);
        }
    }
    m.repeated_responses.inc_by(e.repeated_responses);
    for (label, n) in e.rcodes() {
        if n > 0 {
            m.dns_responses_by_rcode
                .with_label_values(&[label])
                .inc_by(n);
        }
    }
    if e.observations > 0 {
        m.observations
            .with_label_values(&["records"])
            .inc_by(e.observations);
    }
    if e.negatives > 0 {
        m.observations
            .with_label_values(&["negative"])
            .inc_by(e.negatives);
    }
}

/// Moves the shared aggregator-entries gauge from a worker's sizes
/// (records, negatives) when it last reported to its sizes `now`.
pub(crate) fn publish_aggregator_entries(now: (usize, usize), before: (usize, usize)) {
    let gauge = &METRICS.aggregator_entries;
    gauge
        .with_label_values(&["records"])
        .add(now.0 as i64 - before.0 as i64);
    gauge
        .with_label_values(&["negative"])
        .add(now.1 as i64 - before.1 as i64);
}

/// Publishes one committed write batch and how long it took.
pub(crate) fn publish_store_write(written: &WriteStats, took: Duration) {
    let m = &*METRICS;
    m.store_batches.inc();
    let warmup = written.new_domains_warmup.min(written.new_domains);
    if written.new_domains > warmup {
        m.new_domains
            .with_label_values(&["false"])
            .inc_by((written.new_domains - warmup) as u64);
    }
    if warmup > 0 {
        m.new_domains
            .with_label_values(&["true"])
            .inc_by(warmup as u64);
    }
    m.nod_moved.inc_by(written.nod_moved as u64);
    m.store_batch_bytes.inc_by(written.bytes as u64);
    m.store_last_write.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    );
    m.aggregator_flushes.inc();
    m.flush_seconds.observe(took.as_secs_f64());
}

/// Publishes time a worker waited for its store writer to take a batch.
/// A store writer starts (`true`) or stops (`false`) holding a batch it
/// could not write.
pub(crate) fn set_store_write_blocked(blocked: bool) {
    if blocked {
        METRICS.store_write_blocked.inc();
    } else {
        METRICS.store_write_blocked.dec();
    }
}

/// A store write failed with an I/O error and will be tried again.
pub(crate) fn store_write_failed() {
    METRICS.store_write_failures.inc();
}

pub(crate) fn publish_writer_wait(waited: Duration) {
    METRICS.store_wait_seconds.inc_by(waited.as_secs_f64());
}

/// Publishes Zeek import counters (a delta since the last call). Its
/// observations are counted by the pipeline, like every source's.
pub(crate) fn publish_zeek(z: &ZeekStats) {
    let m = &*METRICS;
    m.zeek_lines.with_label_values(&["read"]).inc_by(z.lines);
    m.zeek_lines
        .with_label_values(&["imported"])
        .inc_by(z.lines_imported);
    for reason in LineSkip::ALL {
        let n = z.line_skipped(*reason);
        if n > 0 {
            m.zeek_lines_skipped
                .with_label_values(&[reason.as_str()])
                .inc_by(n);
        }
    }
    for reason in AnswerSkip::ALL {
        let n = z.answer_skipped(*reason);
        if n > 0 {
            m.zeek_answers_skipped
                .with_label_values(&[reason.as_str()])
                .inc_by(n);
        }
    }
}

/// Publishes bro-pdns import counters (a delta since the last call).
pub(crate) fn publish_bro_pdns(b: &BroPdnsStats) {
    let m = &*METRICS;
    for (result, n) in [
        ("read", b.rows),
        ("imported", b.rows_imported),
        ("unchanged", b.rows_unchanged),
    ] {
        if n > 0 {
            m.bro_pdns_rows.with_label_values(&[result]).inc_by(n);
        }
    }
    let rows = RowSkip::ALL.iter().map(|r| (r.as_str(), b.row_skipped(*r)));
    let answers = AnswerSkip::ALL
        .iter()
        .map(|r| (r.as_str(), b.answer_skipped(*r)));
    for (reason, n) in rows.chain(answers) {
        if n > 0 {
            m.bro_pdns_rows_skipped
                .with_label_values(&[reason])
                .inc_by(n);
        }
    }
}

/// Counts one API request, by surface and status, and its latency.
pub(crate) fn publish_api_request(surface: &str, status: &str, took: Duration) {
    METRICS
        .api_requests
        .with_label_values(&[surface, status])
        .inc();
    METRICS
        .api_seconds
        .with_label_values(&[surface])
        .observe(took.as_secs_f64());
}

/// Counts one lookup tried on the request's thread, by where it ended.
pub(crate) fn publish_api_read(place: &'static str) {
    METRICS.api_reads.with_label_values(&[place]).inc();
}

/// Makes the per-key series of one API credential exist from the start
/// (at zero), so rates and dashboards see it before its first request.
pub(crate) fn publish_api_key(label: &str, limited: &[&str]) {
    let m = &*METRICS;
    m.api_key_requests.with_label_values(&[label]);
    for window in limited {
        m.api_quota_refusals.with_label_values(&[label, window]);
    }
}

/// Counts one Flex search and what it read.
pub(crate) fn publish_flex_query(
    kind: &str,
    target: &str,
    outcome: &str,
    scanned: crate::store::flex::ScanStats,
) {
    let m = &*METRICS;
    m.flex_queries
        .with_label_values(&[kind, target, outcome])
        .inc();
    m.flex_scanned
        .with_label_values(&["names"])
        .inc_by(scanned.names);
    m.flex_scanned
        .with_label_values(&["records"])
        .inc_by(scanned.records);
}

/// Counts one request admitted under a key's quota.
pub(crate) fn publish_api_key_request(label: &str) {
    METRICS.api_key_requests.with_label_values(&[label]).inc();
}

/// Counts one request refused because a key's `window` quota is used up.
pub(crate) fn publish_api_quota_refusal(label: &str, window: &str) {
    METRICS
        .api_quota_refusals
        .with_label_values(&[label, window])
        .inc();
}

/// Publishes where a key stands in a quota window (on scrape).
pub(crate) fn publish_api_quota(label: &str, window: &str, limit: u64, remaining: u64) {
    let m = &*METRICS;
    m.api_quota_limit
        .with_label_values(&[label, window])
        .set(limit.min(i64::MAX as u64) as i64);
    m.api_quota_remaining
        .with_label_values(&[label, window])
        .set(remaining.min(i64::MAX as u64) as i64);
}

/// Counts one API connection by result.
pub(crate) fn publish_api_connection(result: &str) {
    METRICS.api_connections.with_label_values(&[result]).inc();
}

/// Makes the API connection series exist from the start, at zero.
pub(crate) fn publish_api_listening() {
    for result in ["accepted", "refused", "header_timeout"] {
        METRICS.api_connections.with_label_values(&[result]);
    }
}

/// An open API connection, counted in `pdns_api_connections_open` for as
/// long as it lives.
pub(crate) struct ApiConnectionOpen(());

impl ApiConnectionOpen {
    pub(crate) fn new() -> Self {
        METRICS.api_connections_open.inc();
        ApiConnectionOpen(())
    }
}

impl Drop for ApiConnectionOpen {
    fn drop(&mut self) {
        METRICS.api_connections_open.dec();
    }
}

/// Counts one TLS handshake by result.
pub(crate) fn publish_tls_handshake(result: &str) {
    METRICS
        .api_tls_handshakes
        .with_label_values(&[result])
        .inc();
}

/// Makes the TLS series exist from the start, at zero.
pub(crate) fn publish_tls_enabled() {
    let m = &*METRICS;
    for result in ["ok", "failed", "timeout", "plain_http", "closed"] {
        m.api_tls_handshakes.with_label_values(&[result]);
    }
    for result in ["ok", "failed"] {
        m.api_tls_reloads.with_label_values(&[result]);
    }
}

/// Counts one failed catch-up of `serve`'s reader with the writer.
pub(crate) fn publish_catch_up_failure() {
    METRICS.api_catch_up_failures.inc();
}

/// Counts one certificate reload.
pub(crate) fn publish_tls_reload(ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    METRICS.api_tls_reloads.with_label_values(&[result]).inc();
}

/// Publishes the expiry (notAfter) of the certificate being served.
pub(crate) fn publish_tls_certificate(not_after: i64) {
    METRICS.api_tls_expiry.set(not_after);
}

/// Publishes whether a captured interface is there, up and captured on.
pub(crate) fn publish_interface_up(interface: &str, up: bool) {
    METRICS
        .capture_interface_up
        .with_label_values(&[interface])
        .set(up as i64);
}

/// Publishes the increase of capture counters: rings' totals, which only
/// grow, and the eBPF filter's cumulative verdicts. Keeps what it last
/// published, one per ring.
#[derive(Debug, Default)]
pub(crate) struct CapturePublisher {
    rings: Vec<RingTotals>,
    filter: pdns_common::FilterStats,
}

impl CapturePublisher {
    /// Publishes the rings' current totals, each as `(interface, totals)`,
    /// always passed in the same order.
    pub(crate) fn rings<'a>(&mut self, rings: impl IntoIterator<Item = (&'a str, RingTotals)>) {
        let m = &*METRICS;
        for (i, (interface, now)) in rings.into_iter().enumerate() {
            if self.rings.len() <= i {
                self.rings.resize(i + 1, RingTotals::default());
            }
            let d = now.since(&self.rings[i]);
            self.rings[i] = now;
            let labels = [interface];
            m.capture_packets
                .with_label_values(&labels)
                .inc_by(d.packets);
            m.capture_drops.with_label_values(&labels).inc_by(d.drops);
            m.capture_freezes
                .with_label_values(&labels)
                .inc_by(d.freezes);
            if d.socket_errors > 0 {
                m.capture_socket_errors
                    .with_label_values(&labels)
                    .inc_by(d.socket_errors);
            }
            if d.vlan_tagged > 0 {
                m.capture_vlan_tagged
                    .with_label_values(&labels)
                    .inc_by(d.vlan_tagged);
            }
        }
    }

    /// Publishes the eBPF filter's (cumulative) verdict counters.
    pub(crate) fn filter(&mut self, now: pdns_common::FilterStats) {
        let m = &*METRICS;
        let d = |new: u64, old: u64| new.saturating_sub(old);
        let l = &self.filter;
        for (kind, n) in [
            ("port", d(now.accepted, l.accepted)),
            ("fragment", d(now.accepted_fragments, l.accepted_fragments)),
            ("tunnel_port", d(now.accepted_tunnel, l.accepted_tunnel)),
            (
                "tunnel_fragment",
                d(now.accepted_tunnel_fragments, l.accepted_tunnel_fragments),
            ),
        ] {
            m.filter_accepted.with_label_values(&[kind]).inc_by(n);
        }
        for (reason, n) in [
            ("port", d(now.rejected_port, l.rejected_port)),
            ("protocol", d(now.rejected_protocol, l.rejected_protocol)),
            ("not_ip", d(now.rejected_not_ip, l.rejected_not_ip)),
            ("malformed", d(now.rejected_malformed, l.rejected_malformed)),
            (
                "tunnel_port",
                d(now.rejected_tunnel_port, l.rejected_tunnel_port),
            ),
            (
                "tunnel_protocol",
                d(now.rejected_tunnel_protocol, l.rejected_tunnel_protocol),
            ),
            (
                "tunnel_malformed",
                d(now.rejected_tunnel_malformed, l.rejected_tunnel_malformed),
            ),
            ("interface", d(now.rejected_interface, l.rejected_interface)),
        ] {
            m.filter_rejected.with_label_values(&[reason]).inc_by(n);
        }
        self.filter = now;
    }
}

/// The export thread is running: `pdns_export_up` appears (it is absent
/// in a process that does not export, rather than a misleading 0).
pub(crate) fn publish_export_up(up: bool) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        let _ = METRICS
            .registry
            .register(Box::new(METRICS.export_up.clone()));
    });
    METRICS.export_up.set(i64::from(up));
}

/// An insert ClickHouse acknowledged.
pub(crate) fn publish_export_insert(table: &str, rows: u64, bytes: u64, took: Duration) {
    let m = &*METRICS;
    m.export_rows.with_label_values(&[table]).inc_by(rows);
    m.export_bytes.with_label_values(&[table]).inc_by(bytes);
    m.export_inserts.with_label_values(&[table]).inc();
    m.export_insert_seconds.observe(took.as_secs_f64());
}

/// A failed export attempt.
pub(crate) fn publish_export_failure(kind: &str) {
    METRICS.export_failures.with_label_values(&[kind]).inc();
}

/// Rows of a damaged spool entry, dropped from export.
pub(crate) fn publish_export_damaged(rows: u64) {
    METRICS.export_damaged_rows.inc_by(rows);
}

/// When the oldest waiting batch was spooled (epoch seconds).
pub(crate) fn publish_export_oldest(created: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    METRICS
        .export_backlog_age
        .set(now.saturating_sub(created) as i64);
}

/// Skipped counts already published (the spool counts over the
/// database's life).
static SKIPPED_PUBLISHED: Mutex<(u64, u64)> = Mutex::new((0, 0));

/// What the export spool holds and has refused.
pub(crate) fn publish_export_backlog(spool: &crate::store::spool::SpoolStats) {
    let m = &*METRICS;
    m.export_backlog
        .with_label_values(&["batches"])
        .set(spool.entries as i64);
    m.export_backlog
        .with_label_values(&["rows"])
        .set(spool.rows as i64);
    m.export_backlog
        .with_label_values(&["bytes"])
        .set(spool.bytes as i64);
    if spool.entries == 0 {
        m.export_backlog_age.set(0);
    }
    let mut published = SKIPPED_PUBLISHED.lock().unwrap_or_else(|e| e.into_inner());
    m.export_skipped
        .with_label_values(&["batches"])
        .inc_by(spool.skipped_batches.saturating_sub(published.0));
    m.export_skipped
        .with_label_values(&["rows"])
        .inc_by(spool.skipped_rows.saturating_sub(published.1));
    *published = (
        spool.skipped_batches.max(published.0),
        spool.skipped_rows.max(published.1),
    );
}

/// Corrupt values already published (the store counts process-wide).
static CORRUPT_PUBLISHED: Mutex<u64> = Mutex::new(0);

/// Refreshes what is read from a store rather than counted as it happens:
/// RocksDB properties, the corrupt-value count, the retention setting and
/// what it expired (called on scrape).
pub(crate) fn publish_store(store: &Store) {
    for (cf, property, value) in store.properties() {
        METRICS
            .rocksdb
            .with_label_values(&[cf, property])
            .set(value as i64);
    }
    let expired = store.expired_unpublished();
    for (cf, e) in expired.by_cf() {
        for (at, n) in [("write", e.write), ("compaction", e.compaction)] {
            METRICS
                .retention_expired
                .with_label_values(&[cf, at])
                .inc_by(n);
        }
    }
    METRICS
        .retention_days
        .set(store.retention().days().map_or(0, i64::from));
    if store.spooling() {
        publish_export_backlog(&store.spool_stats());
    }
    let now = crate::store::corrupt_values();
    let mut published = CORRUPT_PUBLISHED.lock().unwrap_or_else(|e| e.into_inner());
    METRICS
        .store_corrupt_values
        .inc_by(now.saturating_sub(*published));
    *published = now.max(*published);
}

/// The number of DNS responses decoded so far (for `run`'s status line).
pub(crate) fn dns_responses() -> u64 {
    ["udp", "tcp"]
        .iter()
        .map(|t| {
            METRICS
                .dns_messages
                .with_label_values(&["response", t])
                .get()
        })
        .sum()
}

/// Every metric family as it stands (the web page's status strip reads
/// the same counters as `/metrics`).
pub(crate) fn gather() -> Vec<prometheus::proto::MetricFamily> {
    METRICS.registry.gather()
}

/// Renders every metric in the Prometheus text format.
pub(crate) fn render() -> String {
    publish_allocator();
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// Refreshes the allocator's byte counts, if the binary registered how to
/// read them (called on scrape).
fn publish_allocator() {
    if let Some(stats) = crate::store::memory::allocator_stats() {
        for (kind, bytes) in stats.kinds() {
            METRICS
                .allocator
                .with_label_values(&[kind])
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
}

/// Identity labels of `pdns_dnstap_frames_total` made so far (bounded).
static DNSTAP_IDENTITIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Distinct sender identities labelled; the rest count as "other".
const MAX_DNSTAP_IDENTITIES: usize = 32;

/// The label of a sender identity: printable, at most 64 characters, one
/// of at most [`MAX_DNSTAP_IDENTITIES`].
fn identity_label(identity: Option<&[u8]>) -> String {
    let text: String = String::from_utf8_lossy(identity.unwrap_or_default())
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let mut known = DNSTAP_IDENTITIES.lock().unwrap_or_else(|e| e.into_inner());
    if known.contains(&text) {
        text
    } else if known.len() < MAX_DNSTAP_IDENTITIES {
        known.push(text.clone());
        text
    } else {
        "other".to_string()
    }
}

/// Publishes a dnstap connection's counters (a delta since its last call).
pub(crate) fn publish_dnstap(d: &DnstapStats) {
    let m = &*METRICS;
    m.dnstap_bytes.inc_by(d.bytes);
    m.dnstap_recorded.inc_by(d.recorded);
    for (identity, n) in &d.identities {
        m.dnstap_frames
            .with_label_values(&[identity_label(identity.as_deref()).as_str()])
            .inc_by(*n);
    }
    for (slot, n) in d.types.iter().enumerate() {
        if *n > 0 {
            m.dnstap_messages
                .with_label_values(&[dnstap_message::type_label(slot)])
                .inc_by(*n);
        }
    }
    for reason in dnstap_message::Discard::ALL {
        let n = d.discarded(reason);
        if n > 0 {
            m.dnstap_discarded
                .with_label_values(&[reason.as_str()])
                .inc_by(n);
        }
    }
}

/// A dnstap connection accepted or refused.
pub(crate) fn publish_dnstap_connection(result: &str) {
    METRICS
        .dnstap_connections
        .with_label_values(&[result])
        .inc();
}

/// A dnstap connection ended (`how`: see the metric's help).
pub(crate) fn publish_dnstap_ended(how: &str, handshake_failed: bool) {
    let m = &*METRICS;
    m.dnstap_connections_ended.with_label_values(&[how]).inc();
    if handshake_failed {
        m.dnstap_handshake_failures.inc();
    }
}

/// Open dnstap connections went up or down by `delta`.
pub(crate) fn publish_dnstap_open(delta: i64) {
    METRICS.dnstap_connections_open.add(delta);
}

/// Batches waiting for the dnstap workers.
pub(crate) fn publish_dnstap_backlog(batches: usize) {
    METRICS.dnstap_backlog.set(batches as i64);
}

/// A dnstap connection waited `waited` for room in the queue.
pub(crate) fn publish_dnstap_backpressure(waited: Duration) {
    METRICS
        .dnstap_backpressure_seconds
        .inc_by(waited.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_counters_reach_prometheus_as_increases() {
        let mut publisher = CapturePublisher::default();
        let mut ring = RingTotals {
            packets: 10,
            drops: 3,
            freezes: 1,
            frames: 7,
            vlan_tagged: 2,
            ..RingTotals::default()
        };
        publisher.rings([("test-if0", ring)]);
        ring.packets = 20;
        ring.drops = 6;
        ring.freezes = 2;
        publisher.rings([("test-if0", ring)]);

        let mut f = pdns_common::FilterStats {
            accepted: 5,
            rejected_port: 7,
            ..Default::default()
        };
        publisher.filter(f);
        f.accepted = 8;
        publisher.filter(f);

        let text = render();
        for line in [
            "pdns_capture_packets_total{interface=\"test-if0\"} 20",
            "pdns_capture_drops_total{interface=\"test-if0\"} 6",
            "pdns_capture_freezes_total{interface=\"test-if0\"} 2",
            "pdns_capture_vlan_tagged_frames_total{interface=\"test-if0\"} 2",
            "pdns_ebpf_accepted_total{kind=\"port\"} 8",
            "pdns_ebpf_rejected_total{reason=\"port\"} 7",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn allocator_bytes_come_from_the_registered_probe() {
        use crate::store::memory::{AllocatorStats, set_allocator_stats};
        fn probe() -> Option<AllocatorStats> {
            Some(AllocatorStats {
                allocated: 100,
                resident: 300,
                ..AllocatorStats::default()
            })
        }
        set_allocator_stats(probe);
        let text = render();
        for line in [
            "pdns_allocator_bytes{kind=\"allocated\"} 100",
            "pdns_allocator_bytes{kind=\"resident\"} 300",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
