//! pdns-sensor: a passive DNS sensor.
//!
//! One pipeline, whatever the source:
//! **capture → decode → extract → aggregate → store → serve**.
//!
//! | stage | module | takes | gives |
//! |---|---|---|---|
//! | capture | [`source`], [`capture`] | pcap/pcapng files; live AF_PACKET rings | [`decode::Frame`]s |
//! | decode | [`decode`] | frames | DNS messages (`&[u8]`, reassembled where needed) |
//! | extract | [`extract`] | DNS messages | observations (owner, type, rdata, TTL, time) |
//! | aggregate | [`aggregate`] | observations | per-key [`store::Value`]s, bounded |
//! | store | [`store`] | aggregates | RocksDB merges; queries |
//! | serve | [`serve`] (HTTP), [`dump`] (CLI) | queries | DNSDB, CIRCL, bro-pdns shapes; tables and COF JSON |
//!
//! [`pipeline`] wires the stages into threads; [`metrics`] counts
//! everything; [`name`] and [`render`] hold the name encoding and the
//! presentation format shared by several stages.

pub mod aggregate;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod dump;
pub mod extract;
pub mod metrics;
pub mod name;
pub mod pipeline;
pub mod render;
pub mod serve;
pub mod source;
pub mod store;
pub mod time;
