//! The ClickHouse schema: the store's merge operator, written in SQL.
//!
//! Sensors insert *deltas* — one row per key and flush, the same
//! aggregates a flush writes to RocksDB as merge operands — into `Null`
//! input tables. Materialised views fold them into
//! `AggregatingMergeTree` tables with `sumState` (count), `minState`
//! (first seen), `maxState` (last seen), `argMaxState` (TTL of the latest
//! sighting) and `groupBitOrState` (origins): the same commutative,
//! associative merge as [`crate::vocab::value::Value::combine`], so the
//! central tables converge whatever the order, number or size of the
//! deltas, before and after ClickHouse merges its parts.
//!
//! The tables are keyed by the store's own keys ([`crate::vocab::key`]):
//! `pdns_records` by the record key (reversed owner name, type, rdata),
//! `pdns_rdata` by the inverse-index key (binary address or reversed rdata
//! name first), `pdns_names` by the forward owner name, `pdns_negative` by
//! the negative key. So every lookup the API makes is one key range in
//! one table, exactly as in RocksDB, and answers come back in the same
//! order. Readable columns (`rrname`, `rdata` in presentation format,
//! `rrtype`) sit beside the keys for people querying with SQL.
//!
//! The SQL runs on Debian 12's ClickHouse 18.16 (no
//! `SimpleAggregateFunction`, no IP types, no `{database}` macro) and on
//! current releases. Its traps, each met on 18.16: a view's output column
//! must not be named like an input column another aggregate reads; a view
//! over a subquery breaks every later insert; `SummingMergeTree` keeps
//! arbitrary first/last times.
//!
//! Clusters: the same tables with a `_local` suffix on every node
//! (`ON CLUSTER`), `Replicated*` engines if asked, and `Distributed`
//! tables under the plain names — inputs sharded by owner name, so a
//! record and its index and name entries land on one shard and merge
//! there. Sensors and the API use the plain names whatever the layout.

use super::client::{ClickHouseError, Client};

/// Input table for records.
pub const RECORDS_IN: &str = "pdns_in";
/// Input table for negative answers.
pub const NEGATIVES_IN: &str = "pdns_negative_in";
pub const RECORDS: &str = "pdns_records";
pub const RDATA: &str = "pdns_rdata";
pub const NAMES: &str = "pdns_names";
pub const NEGATIVES: &str = "pdns_negative";

/// Columns of the records input table, in RowBinary order.
pub const RECORDS_IN_COLUMNS: &[(&str, &str)] = &[
    ("sensor", "String"),
    ("key", "String"),
    ("index_key", "String"),
    ("names_key", "String"),
    ("rrname", "String"),
    ("rrtype", "UInt16"),
    ("rdata", "String"),
    ("count", "UInt64"),
    ("time_first", "DateTime"),
    ("time_last", "DateTime"),
    ("ttl", "UInt32"),
    ("origin", "UInt8"),
    ("batch", "UInt64"),
];

/// Columns of the negative-answer input table, in RowBinary order.
pub const NEGATIVES_IN_COLUMNS: &[(&str, &str)] = &[
    ("sensor", "String"),
    ("key", "String"),
    ("qname", "String"),
    ("qtype", "UInt16"),
    ("rcode", "UInt16"),
    ("count", "UInt64"),
    ("time_first", "DateTime"),
    ("time_last", "DateTime"),
    ("ttl", "UInt32"),
    ("origin", "UInt8"),
    ("batch", "UInt64"),
];

/// The aggregate columns every history table has, as created and as
/// filled from an input table. The TTL is that of the latest sighting,
/// ties going to the larger TTL (as in `Value::combine`): the argument
/// of `argMax` is `(time_last, ttl)` packed into one number.
///
/// `last_batch` is no answer anyone asks for: it makes the block every
/// batch produces distinct. Replicated tables drop a block identical to
/// one they already hold — that is what makes a retry count once — and
/// two *different* batches can aggregate to identical blocks (the same
/// traffic replayed, a quiet resolver answering the same names in the
/// same second); with the batch's random identity in every row they never
/// do.
const AGGREGATES: &str = "cnt AggregateFunction(sum, UInt64),
  first_seen AggregateFunction(min, DateTime),
  last_seen AggregateFunction(max, DateTime),
  ttl_last AggregateFunction(argMax, UInt32, UInt64),
  origin_bits AggregateFunction(groupBitOr, UInt8),
  last_batch AggregateFunction(max, UInt64)";
const AGGREGATE_STATES: &str = "sumState(count) AS cnt,
  minState(time_first) AS first_seen,
  maxState(time_last) AS last_seen,
  argMaxState(ttl, toUInt64(time_last) * 4294967296 + ttl) AS ttl_last,
  groupBitOrState(origin) AS origin_bits,
  maxState(batch) AS last_batch";
/// What a query reads back, in this order.
pub const AGGREGATE_MERGES: &str = "sumMerge(cnt), minMerge(first_seen), maxMerge(last_seen), \
     argMaxMerge(ttl_last), groupBitOrMerge(origin_bits)";

/// How the schema is laid out.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// The database the tables go in (created if missing).
    pub database: String,
    /// `ON CLUSTER` this cluster, `_local` tables and `Distributed` ones.
    pub cluster: Option<String>,
    /// `Replicated*` engines (ZooKeeper): also what makes a retried insert
    /// count once on servers without de-duplication tokens.
    pub replicated: bool,
    /// ZooKeeper path prefix of replicated tables (default
    /// `/clickhouse/tables/{shard}/DATABASE`).
    pub zookeeper_path: Option<String>,
    /// `non_replicated_deduplication_window` for non-replicated tables
    /// (ClickHouse 21.3 and later; 0: not set).
    pub dedup_window: u64,
}

impl Layout {
    fn on_cluster(&self) -> String {
        self.cluster
            .as_ref()
            .map(|c| format!(" ON CLUSTER {c}"))
            .unwrap_or_default()
    }

    /// The name of the table holding the data on a node.
    fn local(&self, table: &str) -> String {
        if self.cluster.is_some() {
            format!("{table}_local")
        } else {
            table.to_string()
        }
    }

    fn engine(&self, table: &str) -> String {
        let mut engine = if self.replicated {
            let prefix = self
                .zookeeper_path
                .clone()
                .unwrap_or_else(|| format!("/clickhouse/tables/{{shard}}/{}", self.database));
            format!(
                "ReplicatedAggregatingMergeTree('{prefix}/{}', '{{replica}}')",
                self.local(table)
            )
        } else {
            "AggregatingMergeTree()".to_string()
        };
        // The readable columns depend on the key alone, so ordering by
        // them too changes no order; current ClickHouse refuses columns of
        // an AggregatingMergeTree that are neither aggregates nor in the
        // sorting key. The primary index stays the key.
        let order = match table {
            RECORDS => "PRIMARY KEY key ORDER BY (key, rrname, rrtype, rdata)",
            RDATA => "ORDER BY index_key",
            NAMES => "ORDER BY names_key",
            _ => "PRIMARY KEY key ORDER BY (key, qname, qtype, rcode)",
        };
        engine.push(' ');
        engine.push_str(order);
        if !self.replicated && self.dedup_window > 0 {
            engine.push_str(&format!(
                " SETTINGS non_replicated_deduplication_window = {}",
                self.dedup_window
            ));
        }
        engine
    }

    /// The statements, in the order they must run.
    pub fn statements(&self) -> Vec<String> {
        let db = &self.database;
        let on = self.on_cluster();
        let columns = |cols: &[(&str, &str)]| {
            cols.iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rin = self.local(RECORDS_IN);
        let nin = self.local(NEGATIVES_IN);
        let mut out = vec![
            format!("CREATE DATABASE IF NOT EXISTS {db}{on}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{rin}{on} ({}) ENGINE = Null",
                columns(RECORDS_IN_COLUMNS)
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{nin}{on} ({}) ENGINE = Null",
                columns(NEGATIVES_IN_COLUMNS)
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{t}{on} (key String, rrname String, rrtype UInt16, \
                 rdata String,\n  {AGGREGATES})\nENGINE = {e}",
                t = self.local(RECORDS),
                e = self.engine(RECORDS)
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{t}_mv{on} TO {db}.{t} AS\nSELECT key, \
                 rrname, rrtype, rdata,\n  {AGGREGATE_STATES}\nFROM {db}.{rin}\nGROUP BY key, \
                 rrname, rrtype, rdata",
                t = self.local(RECORDS)
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{t}{on} (index_key String,\n  {AGGREGATES})\nENGINE = {e}",
                t = self.local(RDATA),
                e = self.engine(RDATA)
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{t}_mv{on} TO {db}.{t} AS\nSELECT index_key,\n  \
                 {AGGREGATE_STATES}\nFROM {db}.{rin}\nWHERE index_key != ''\nGROUP BY index_key",
                t = self.local(RDATA)
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{t}{on} (names_key String,\n  {AGGREGATES})\nENGINE = {e}",
                t = self.local(NAMES),
                e = self.engine(NAMES)
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{t}_mv{on} TO {db}.{t} AS\nSELECT names_key,\n  \
                 {AGGREGATE_STATES}\nFROM {db}.{rin}\nGROUP BY names_key",
                t = self.local(NAMES)
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{t}{on} (key String, qname String, qtype UInt16, \
                 rcode UInt16,\n  {AGGREGATES})\nENGINE = {e}",
                t = self.local(NEGATIVES),
                e = self.engine(NEGATIVES)
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{t}_mv{on} TO {db}.{t} AS\nSELECT key, \
                 qname, qtype, rcode,\n  {AGGREGATE_STATES}\nFROM {db}.{nin}\nGROUP BY key, qname, \
                 qtype, rcode",
                t = self.local(NEGATIVES)
            ),
        ];
        if let Some(cluster) = &self.cluster {
            for (table, shard_by) in [
                (RECORDS_IN, Some("cityHash64(rrname)")),
                (NEGATIVES_IN, Some("cityHash64(qname)")),
                (RECORDS, None),
                (RDATA, None),
                (NAMES, None),
                (NEGATIVES, None),
            ] {
                let sharding = shard_by.map(|s| format!(", {s}")).unwrap_or_default();
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{table}{on} AS {db}.{local}\nENGINE = \
                     Distributed({cluster}, {db}, {local}{sharding})",
                    local = self.local(table)
                ));
            }
        }
        out
    }

    /// The statements as a script (`;` after each).
    pub fn script(&self) -> String {
        let mut out = String::from(
            "-- pdns-sensor ClickHouse schema (see `pdns-sensor clickhouse-schema --help`)\n",
        );
        for s in self.statements() {
            out.push_str(&s);
            out.push_str(";\n\n");
        }
        out
    }
}

/// Runs the layout's statements on a server.
pub fn apply(client: &Client, layout: &Layout) -> Result<(), ClickHouseError> {
    for statement in layout.statements() {
        client.query(&statement)?;
    }
    Ok(())
}

/// What is wrong with the tables a sensor would write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaMismatch(pub Vec<String>);

impl std::fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (create or fix it with `pdns-sensor clickhouse-schema --apply URL`)",
            self.0.join("; ")
        )
    }
}

/// Checks that `tables` exist in the target database with (at least) the
/// given columns and types. `Ok(Err(..))` says what does not match.
pub fn check_tables(
    client: &Client,
    tables: &[(&str, &[(&str, &str)])],
) -> Result<Result<(), SchemaMismatch>, ClickHouseError> {
    let db = &client.target().database;
    let names: Vec<String> = tables.iter().map(|(t, _)| format!("'{t}'")).collect();
    let sql = format!(
        "SELECT table, name, type FROM system.columns WHERE database = '{db}' AND table IN ({}) \
         FORMAT TabSeparated",
        names.join(", ")
    );
    let text = match client.query(&sql) {
        Ok(text) => text,
        Err(ClickHouseError::Server { code: Some(81), .. }) => {
            return Ok(Err(SchemaMismatch(vec![format!(
                "database {db} does not exist"
            )])));
        }
        Err(e) => return Err(e),
    };
    let found: Vec<(&str, &str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            Some((parts.next()?, parts.next()?, parts.next()?))
        })
        .collect();
    let mut problems = Vec::new();
    for (table, columns) in tables {
        if !found.iter().any(|(t, _, _)| t == table) {
            problems.push(format!("table {db}.{table} does not exist"));
            continue;
        }
        for (name, ty) in *columns {
            match found.iter().find(|(t, n, _)| t == table && n == name) {
                None => problems.push(format!("{db}.{table} has no column {name} ({ty})")),
                Some((_, _, actual)) if actual != ty => problems.push(format!(
                    "column {db}.{table}.{name} is {actual}, expected {ty}"
                )),
                Some(_) => {}
            }
        }
    }
    Ok(if problems.is_empty() {
        Ok(())
    } else {
        Err(SchemaMismatch(problems))
    })
}

/// How a retried insert is kept from counting twice on this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dedup {
    /// `insert_deduplication_token` (ClickHouse 22.2 and later): a retry
    /// carries the token of its first attempt.
    Token,
    /// Replicated tables de-duplicate identical blocks (every version);
    /// a retry resends the same bytes.
    Blocks,
    /// Neither: a retry after an ambiguous failure (the server died
    /// between storing a batch and answering) counts that batch twice.
    None,
}

/// Finds out how retries are de-duplicated on the target.
pub fn dedup(client: &Client) -> Result<Dedup, ClickHouseError> {
    if client.knows_setting("insert_deduplication_token")? {
        return Ok(Dedup::Token);
    }
    let db = &client.target().database;
    // The history tables on this node: plain names, or `_local` ones in a
    // cluster (the node the sensor talks to holds a shard, as in every
    // layout `clickhouse-schema` makes).
    let sql = format!(
        "SELECT count() FROM system.tables WHERE database = '{db}' AND name IN ('{RECORDS}', \
         '{RECORDS}_local') AND engine LIKE 'Replicated%'"
    );
    Ok(if client.query(&sql)?.trim() != "0" {
        Dedup::Blocks
    } else {
        Dedup::None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_layout_has_no_cluster_words() {
        let layout = Layout {
            database: "pdns".into(),
            ..Default::default()
        };
        let script = layout.script();
        assert!(!script.contains("ON CLUSTER"));
        assert!(!script.contains("Distributed"));
        assert!(!script.contains("_local"));
        assert!(!script.contains("SimpleAggregateFunction"));
        assert_eq!(layout.statements().len(), 11);
        // Pitfall of 18.16: no view output named like an input another
        // aggregate reads.
        for input in ["count", "time_first", "time_last", "ttl", "origin", "batch"] {
            assert!(!script.contains(&format!(") AS {input},")), "{input}");
        }
    }

    #[test]
    fn a_cluster_layout_shards_inputs_by_name_and_replicates() {
        let layout = Layout {
            database: "pdns".into(),
            cluster: Some("sensors".into()),
            replicated: true,
            ..Default::default()
        };
        let s = layout.statements();
        assert!(s.iter().all(|s| s.contains("ON CLUSTER sensors")));
        assert!(s.iter().any(|s| s.contains(
            "pdns.pdns_in ON CLUSTER sensors AS pdns.pdns_in_local\nENGINE = \
             Distributed(sensors, pdns, pdns_in_local, cityHash64(rrname))"
        )));
        assert!(s.iter().any(|s| s.contains(
            "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/pdns/pdns_records_local', \
             '{replica}')"
        )));
    }

    #[test]
    fn a_dedup_window_only_for_unreplicated_tables() {
        let mut layout = Layout {
            database: "d".into(),
            dedup_window: 1000,
            ..Default::default()
        };
        assert!(
            layout
                .script()
                .contains("non_replicated_deduplication_window = 1000")
        );
        layout.replicated = true;
        assert!(!layout.script().contains("non_replicated"));
    }
}
