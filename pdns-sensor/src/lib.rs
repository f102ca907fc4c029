//! pdns-sensor: a passive DNS sensor.
//!
//! One pipeline, whatever the source:
//! **source → decode → extract → aggregate → store → serve**.
//!
//! | stage | module | takes | gives |
//! |---|---|---|---|
//! | source | [`capture`] (live rings), [`source`] (pcap files, Zeek logs) | the wire, files | frames; rebuilt responses (Zeek) |
//! | decode | [`decode`] | frames | DNS messages (reassembled where needed) |
//! | extract | [`extract`] | DNS messages, rebuilt responses | observations, by the same rules |
//! | aggregate | [`aggregate`] | observations | bounded batches of per-key values |
//! | store | [`store`] | batches | RocksDB merges; queries |
//! | export | [`export`] (to [`clickhouse`]) | batches the store wrote | the same aggregates, in one history for many sensors |
//! | serve | [`serve`] (HTTP), [`dump`] (CLI) | queries | DNSDB, CIRCL, bro-pdns shapes; tables and COF JSON |
//!
//! The stages speak one vocabulary, [`vocab`], and depend on it rather than
//! on each other: the name encoding, the store keys, the per-key value and
//! its merge, batches, record types and response codes. [`pipeline`] runs
//! the stages — one [`Worker`](pipeline::Worker) per thread, whatever the
//! source — and the private `metrics` module publishes what each stage
//! counts to Prometheus. [`report`] holds what a command did (its
//! `--stats-json`), [`cli`] the commands themselves.

pub mod aggregate;
pub mod capture;
pub mod cli;
pub mod clickhouse;
pub mod decode;
pub mod dump;
pub mod export;
pub mod extract;
#[doc(hidden)]
pub mod fuzzing;
mod hint;
mod metrics;
pub mod pipeline;
pub mod report;
pub mod serve;
pub mod source;
pub mod store;
pub mod vocab;
