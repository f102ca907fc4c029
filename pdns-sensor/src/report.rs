//! What a command did: the types behind `--stats-json` and the summary
//! printed at the end.
//!
//! `ingest`, `run` and `import-zeek` return these reports and serialise
//! them as they are; the benchmark harness deserialises the same types, so
//! a renamed field is a compile error there rather than a silently missing
//! figure. Key names are part of the interface: scripts read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capture::stats::RingTotals;
use crate::decode;
use crate::extract;
use crate::pipeline::Summary;
use crate::source::zeek::follow::FollowReport;
use crate::source::zeek::import::ImportReport;
use crate::store::Store;
use crate::store::retention::{Expired, ExpiredCounts};
use crate::store::spool::SpoolStats;

/// The pipeline's totals, as every packet command reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineTotals {
    /// Frames handed to the decoders.
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    pub dns_queries: u64,
    pub dns_responses: u64,
    /// Of those, counted as the repeat of a response extracted before in
    /// the same batch, without being parsed again.
    #[serde(default)]
    pub repeated_responses: u64,
    /// Record and negative-answer observations together.
    pub observations: u64,
    pub record_observations: u64,
    pub negative_observations: u64,
    /// Keys written to the store after pre-aggregation, per table.
    pub records_written: u64,
    pub negatives_written: u64,
    /// Batches handed to the store.
    pub flushes: u64,
    /// Seconds the decoder threads waited for their store writers,
    /// summed over threads: where it nears the run's time, the store is
    /// what limits the rate.
    #[serde(default)]
    pub writer_wait_secs: f64,
    /// Every drop reason (decoding and extraction), zeros included.
    pub drops: BTreeMap<String, u64>,
    /// Tunnelled packets opened, by encapsulation (`vxlan`, `geneve`,
    /// `gre_ip`, `gre_teb`, `erspan1`, `erspan2`, `erspan3`), zeros included.
    #[serde(default)]
    pub decapsulated: BTreeMap<String, u64>,
    /// Entries evicted from the decoders' state tables, as `table.bound`
    /// (`tcp.entries`, `tcp.bytes`, `fragments.entries`,
    /// `fragments.bytes`), zeros included.
    #[serde(default)]
    pub evictions: BTreeMap<String, u64>,
}

impl PipelineTotals {
    pub fn from_summary(s: &Summary) -> PipelineTotals {
        let (d, e) = (&s.decode, &s.extract);
        let drops = decode::DropReason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), d.dropped(*r)))
            .chain(
                extract::DropReason::ALL
                    .iter()
                    .map(|r| (r.as_str().to_string(), e.dropped(*r))),
            )
            .collect();
        PipelineTotals {
            packets: d.frames,
            bytes: d.bytes,
            dns_queries: e.dns_queries,
            dns_responses: e.dns_responses,
            repeated_responses: e.repeated_responses,
            observations: e.observations + e.negatives,
            record_observations: e.observations,
            negative_observations: e.negatives,
            records_written: s.records_written,
            negatives_written: s.negatives_written,
            flushes: s.flushes,
            writer_wait_secs: s.writer_wait_secs,
            drops,
            decapsulated: decode::Encap::ALL
                .iter()
                .map(|e| (e.as_str().to_string(), d.decapsulated[*e as usize]))
                .collect(),
            evictions: decode::StateTable::ALL
                .iter()
                .flat_map(|t| {
                    decode::Bound::ALL
                        .iter()
                        .map(move |b| (format!("{}.{}", t.as_str(), b.as_str()), d.evicted(*t, *b)))
                })
                .collect(),
        }
    }

    /// The non-zero drop counts as `reason=count` words, e.g.
    /// `dns_malformed=3 not_dns_port=120` (empty when nothing was dropped),
    /// in the order of the reasons.
    pub fn drops_summary(&self) -> String {
        decode::DropReason::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(extract::DropReason::ALL.iter().map(|r| r.as_str()))
            .filter_map(|r| {
                let n = self.drops.get(r).copied().unwrap_or(0);
                (n > 0).then(|| format!("{r}={n}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What `ingest` did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IngestReport {
    /// Files read (to their end or to a cut).
    pub files: usize,
    pub files_failed: usize,
    pub files_truncated: usize,
    #[serde(flatten)]
    pub totals: PipelineTotals,
    pub elapsed_secs: f64,
    /// SST bytes of the database at the end.
    pub db_bytes: u64,
    /// Records in the database: counted exactly after `--compact`, else
    /// RocksDB's estimate.
    pub db_records: u64,
    #[serde(default)]
    pub retention: RetentionSummary,
    /// What was exported to ClickHouse, and what waits (with
    /// `--export-clickhouse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSummary>,
    /// What the Frame Streams (dnstap) files among the inputs held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnstap: Option<DnstapReport>,
    /// Every counter of every stage (not serialised).
    #[serde(skip)]
    pub summary: Summary,
}

/// What dnstap input brought: frames, messages by type, what was
/// discarded and why, and (for `run`) the sender connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnstapReport {
    /// Data frames read.
    pub frames: u64,
    /// Bytes of data frames.
    pub bytes: u64,
    /// Responses handed to extraction.
    pub recorded: u64,
    /// Decoded messages by dnstap type (`resolver_response`, …).
    pub messages: BTreeMap<String, u64>,
    /// Frames not recorded, by reason (`query`, `policy`, …).
    pub discarded: BTreeMap<String, u64>,
    /// Sender connections (`run` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<DnstapConnections>,
}

impl DnstapReport {
    pub fn from_stats(
        stats: &crate::source::dnstap::DnstapStats,
        connections: Option<DnstapConnections>,
    ) -> DnstapReport {
        use crate::source::dnstap::message::{Discard, type_label};
        DnstapReport {
            frames: stats.frames,
            bytes: stats.bytes,
            recorded: stats.recorded,
            messages: stats
                .types
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (type_label(i).to_string(), *n))
                .collect(),
            discarded: Discard::ALL
                .iter()
                .map(|d| (d.as_str().to_string(), stats.discarded(*d)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            connections,
        }
    }

    /// One line for the summaries on stderr.
    pub fn render(&self) -> String {
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "  dnstap: {} frames, {} responses recorded; messages: {}",
            self.frames,
            self.recorded,
            if self.messages.is_empty() {
                "none".to_string()
            } else {
                list(&self.messages)
            }
        );
        if !self.discarded.is_empty() {
            s.push_str(&format!("; not recorded: {}", list(&self.discarded)));
        }
        s.push('\n');
        if let Some(c) = &self.connections {
            s.push_str(&format!(
                "  dnstap senders: {} connected ({} refused), {} stopped, {} disconnected, \
                 {} cut mid-frame, {} protocol errors ({} in the handshake), {} I/O errors\n",
                c.accepted,
                c.refused,
                c.finished,
                c.closed,
                c.truncated,
                c.protocol_errors,
                c.handshake_failures,
                c.io_errors
            ));
        }
        s
    }
}

/// dnstap sender connections, by how they went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnstapConnections {
    pub accepted: u64,
    /// Over `--dnstap-max-connections`.
    pub refused: u64,
    /// Ended by the sender's STOP.
    pub finished: u64,
    /// Closed between frames without STOP.
    pub closed: u64,
    /// Closed in the middle of a frame.
    pub truncated: u64,
    /// Ended for breaking the protocol (garbage, wrong content type…).
    pub protocol_errors: u64,
    /// Of those, before the stream was accepted.
    pub handshake_failures: u64,
    pub io_errors: u64,
    /// Open when the sensor stopped.
    pub shutdown: u64,
}

/// The eBPF filter's verdicts (see `pdns_common::FilterStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterVerdicts {
    pub accepted: u64,
    pub accepted_fragments: u64,
    pub rejected_port: u64,
    pub rejected_protocol: u64,
    pub rejected_not_ip: u64,
    pub rejected_malformed: u64,
    /// Tunnelled packets (see `pdns_common::FilterStats`); absent in
    /// reports written before tunnels were looked into.
    #[serde(default)]
    pub accepted_tunnel: u64,
    #[serde(default)]
    pub accepted_tunnel_fragments: u64,
    #[serde(default)]
    pub rejected_tunnel_port: u64,
    #[serde(default)]
    pub rejected_tunnel_protocol: u64,
    #[serde(default)]
    pub rejected_tunnel_malformed: u64,
    /// Packets of other devices, or of any while the interface was absent
    /// (the capture sockets are bound to every device).
    #[serde(default)]
    pub rejected_interface: u64,
}

impl From<pdns_common::FilterStats> for FilterVerdicts {
    fn from(f: pdns_common::FilterStats) -> Self {
        FilterVerdicts {
            accepted: f.accepted,
            accepted_fragments: f.accepted_fragments,
            rejected_port: f.rejected_port,
            rejected_protocol: f.rejected_protocol,
            rejected_not_ip: f.rejected_not_ip,
            rejected_malformed: f.rejected_malformed,
            accepted_tunnel: f.accepted_tunnel,
            accepted_tunnel_fragments: f.accepted_tunnel_fragments,
            rejected_tunnel_port: f.rejected_tunnel_port,
            rejected_tunnel_protocol: f.rejected_tunnel_protocol,
            rejected_tunnel_malformed: f.rejected_tunnel_malformed,
            rejected_interface: f.rejected_interface,
        }
    }
}

impl FilterVerdicts {
    /// Packets kept.
    pub fn kept(&self) -> u64 {
        self.accepted
            + self.accepted_fragments
            + self.accepted_tunnel
            + self.accepted_tunnel_fragments
    }

    /// Packets dropped in the kernel.
    pub fn rejected(&self) -> u64 {
        self.rejected_port
            + self.rejected_protocol
            + self.rejected_not_ip
            + self.rejected_malformed
            + self.rejected_tunnel_port
            + self.rejected_tunnel_protocol
            + self.rejected_tunnel_malformed
            + self.rejected_interface
    }
}

/// One capture ring's totals and its interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingReport {
    pub interface: String,
    #[serde(flatten)]
    pub totals: RingTotals,
}

/// What `run` did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// `ebpf` or `classic`.
    pub filter: String,
    /// The eBPF verdicts (`null` with the classic filter).
    pub filter_stats: Option<FilterVerdicts>,
    /// Per interface: the sum of its rings.
    pub interfaces: BTreeMap<String, RingTotals>,
    /// Per ring (how fanout spread the load).
    pub rings: Vec<RingReport>,
    #[serde(flatten)]
    pub totals: PipelineTotals,
    pub elapsed_secs: f64,
    /// SST bytes of the database at the end.
    pub db_bytes: u64,
    #[serde(default)]
    pub retention: RetentionSummary,
    /// What was exported to ClickHouse, and what waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSummary>,
    /// What dnstap senders sent (with `--dnstap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnstap: Option<DnstapReport>,
    /// Every counter of every stage (not serialised).
    #[serde(skip)]
    pub summary: Summary,
}

/// What `import-zeek` did: the file import, and the follow if asked for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImportZeekReport {
    #[serde(flatten)]
    pub import: ImportReport,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub follow: Option<FollowReport>,
    #[serde(default)]
    pub retention: RetentionSummary,
    /// What was exported to ClickHouse, and what waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSummary>,
}

/// What `import-bro-pdns` did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImportBroPdnsReport {
    #[serde(flatten)]
    pub import: crate::source::bro_pdns::import::ImportReport,
    #[serde(default)]
    pub retention: RetentionSummary,
    /// What was exported to ClickHouse, and what waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSummary>,
}

/// The retention a writing command ran with, and what it expired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSummary {
    /// `null`: off.
    pub days: Option<u32>,
    /// Dropped while the command ran, per column family.
    pub expired: ExpiredCounts,
}

impl RetentionSummary {
    /// The store's retention, and what it expired since it was opened.
    pub fn of(store: &Store) -> RetentionSummary {
        RetentionSummary {
            days: store.retention().days(),
            expired: store.expired_here(),
        }
    }

    /// A line for the human summary (empty without retention).
    pub fn render(&self) -> String {
        let Some(days) = self.days else {
            return String::new();
        };
        let e = &self.expired;
        let deleted: u64 = e.by_cf().iter().map(|(_, x)| x.compaction).sum();
        format!(
            "retention {days} day(s): of these, {} records and {} negative answers were last seen \
             before the cutoff and not stored; compaction deleted {deleted} expired entries\n",
            e.records.write, e.negative.write,
        )
    }
}

/// What `dump --stats` shows about a database.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DbStats {
    pub path: String,
    /// The store format (see `store::FORMAT_VERSION`).
    #[serde(default)]
    pub format_version: u32,
    /// `null`: retention off.
    pub retention_days: Option<u32>,
    /// Epoch seconds before which a last sighting is expired (`null`: off).
    pub retention_cutoff: Option<u64>,
    /// How often RocksDB rewrites untouched files so expired entries go
    /// (0: never).
    pub periodic_compaction_secs: u64,
    pub column_families: Vec<CfStats>,
}

/// One column family in [`DbStats`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CfStats {
    pub name: String,
    /// RocksDB's estimate (merge operands and expired entries not yet
    /// compacted away count too).
    pub estimated_keys: u64,
    pub sst_bytes: u64,
    pub live_data_bytes: u64,
    /// Expired in the database's life, as its writers recorded it.
    pub expired: Expired,
}

impl DbStats {
    /// Reads a store's statistics (RocksDB properties: no scan).
    pub fn read(store: &Store) -> DbStats {
        let props = store.properties();
        let prop = |cf: &str, name: &str| {
            props
                .iter()
                .find(|(c, p, _)| *c == cf && *p == name)
                .map_or(0, |(_, _, v)| *v)
        };
        let retention = store.retention();
        DbStats {
            path: store.path().display().to_string(),
            format_version: store.format_version(),
            retention_days: retention.days(),
            retention_cutoff: retention.days().map(|_| store.retention_cutoff()),
            periodic_compaction_secs: retention
                .days()
                .map_or(0, crate::store::retention::periodic_compaction_secs),
            column_families: store
                .expired()
                .by_cf()
                .into_iter()
                // Newly observed domains never expire.
                .chain(
                    props
                        .iter()
                        .any(|(c, _, _)| *c == crate::store::nod::CF_NOD)
                        .then_some((crate::store::nod::CF_NOD, Default::default())),
                )
                .map(|(cf, expired)| CfStats {
                    name: cf.to_string(),
                    estimated_keys: prop(cf, "estimate_num_keys"),
                    sst_bytes: prop(cf, "sst_bytes"),
                    live_data_bytes: prop(cf, "live_data_bytes"),
                    expired,
                })
                .collect(),
        }
    }

    /// The table `dump --stats` prints.
    pub fn render(&self) -> String {
        use crate::vocab::time::format_utc;
        let mut s = format!(
            "database {} (store format {})\n",
            self.path, self.format_version
        );
        match (self.retention_days, self.retention_cutoff) {
            (Some(days), Some(cutoff)) => s.push_str(&format!(
                "retention {days} day(s): records last seen before {cutoff} UTC are expired \
                 (hidden now, deleted by compaction; untouched files are rewritten every {:.1} days)\n",
                self.periodic_compaction_secs as f64 / 86_400.0,
                cutoff = format_utc(cutoff),
            )),
            _ => s.push_str("retention off: everything is kept\n"),
        }
        s.push_str(&format!(
            "{:<10} {:>14} {:>14} {:>14} {:>16} {:>20}\n",
            "CF",
            "KEYS (EST.)",
            "SST BYTES",
            "LIVE BYTES",
            "EXPIRED AT WRITE",
            "EXPIRED BY COMPACTION"
        ));
        for cf in &self.column_families {
            s.push_str(&format!(
                "{:<10} {:>14} {:>14} {:>14} {:>16} {:>20}\n",
                cf.name,
                cf.estimated_keys,
                cf.sst_bytes,
                cf.live_data_bytes,
                cf.expired.write,
                cf.expired.compaction
            ));
        }
        s
    }
}

/// What an exporter left behind when it stopped.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportSummary {
    /// Spool entries (batches) acknowledged by ClickHouse in this run.
    pub sent_batches: u64,
    pub sent_rows: u64,
    pub sent_bytes: u64,
    /// Failed attempts (each retried).
    pub failures: u64,
    /// What the spool still holds, to be sent by the next run on this
    /// database or by `pdns-sensor export`.
    pub remaining: SpoolStats,
    /// Why something remains (the last error), if it does.
    pub reason: Option<String>,
}

impl ExportSummary {
    /// One line for the human summary of a command.
    pub fn render(&self) -> String {
        let mut s = format!(
            "exported {} rows in {} batches to ClickHouse",
            self.sent_rows, self.sent_batches
        );
        if self.failures > 0 {
            s.push_str(&format!(" ({} failed attempts retried)", self.failures));
        }
        if self.remaining.entries > 0 {
            s.push_str(&format!(
                "; {} batches ({} rows) wait in the spool",
                self.remaining.entries, self.remaining.rows
            ));
            if let Some(reason) = &self.reason {
                s.push_str(&format!(": {reason}"));
            }
        }
        if self.remaining.skipped_rows > 0 {
            s.push_str(&format!(
                "; {} rows were never exported because the spool was full",
                self.remaining.skipped_rows
            ));
        }
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_report_keeps_its_keys() {
        let mut summary = Summary::default();
        summary.decode.frames = 10;
        summary.decode.drop(decode::DropReason::NotDnsPort);
        summary.extract.observations = 3;
        summary.extract.negatives = 1;
        let report = IngestReport {
            files: 1,
            totals: PipelineTotals::from_summary(&summary),
            ..IngestReport::default()
        };
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "files",
            "files_failed",
            "files_truncated",
            "packets",
            "bytes",
            "dns_queries",
            "dns_responses",
            "observations",
            "record_observations",
            "negative_observations",
            "records_written",
            "negatives_written",
            "flushes",
            "elapsed_secs",
            "db_bytes",
            "db_records",
            "drops",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert_eq!(json["observations"], 4);
        assert_eq!(json["drops"]["not_dns_port"], 1);
        assert_eq!(json["drops"]["dns_malformed"], 0);
        assert_eq!(
            json["drops"].as_object().unwrap().len(),
            decode::DropReason::ALL.len() + extract::DropReason::ALL.len()
        );
        let back: IngestReport = serde_json::from_value(json).unwrap();
        assert_eq!(back.totals, report.totals);
        assert_eq!(report.totals.drops_summary(), "not_dns_port=1");
    }
}
