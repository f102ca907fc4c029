//! ClickHouse: where many sensors' histories meet.
//!
//! One RocksDB per sensor is the embedded default; an operator with many
//! resolvers wants one place to ask. That place is an existing distributed
//! engine, not a home-made one: ClickHouse, whose `AggregatingMergeTree`
//! merges partial aggregates exactly as the store's merge operator does.
//!
//! - [`client`]: the HTTP interface — URL and credentials, queries,
//!   RowBinary inserts, errors that say what failed and whether a retry
//!   can help;
//! - [`schema`]: the tables and views (`clickhouse-schema` prints or
//!   applies them), and the start-up check of what a sensor writes to.
//!
//! [`crate::export`] sends flushed batches here.

pub mod client;
pub mod reader;
pub mod schema;
