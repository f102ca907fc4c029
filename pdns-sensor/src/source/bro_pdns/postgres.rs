//! Reads a bro-pdns PostgreSQL database (either generation) through a
//! connection URL (`postgres://user:password@host:port/db`, or a unix
//! socket directory as `host`), without TLS.
//!
//! Values are read as text and judged like SQLite's (`first::text`, so a
//! `timestamp` column gives naive text and a `timestamptz` one text with
//! its offset). The session is set to ISO dates and UTC, after reading
//! the server's own `TimeZone`: the Go version wrote
//! `to_timestamp(ts)::timestamp`, a naive time in its session's zone,
//! which is that setting unless the writer changed it.

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};

use super::RawRow;
use super::import::{Database, ImportError};
use super::schema::{Generation, ROW_COLUMNS, Tables};
use super::times::Stored;

pub struct PostgresDatabase {
    source: String,
    client: Client,
    server_zone: String,
}

/// Whether a database argument is a PostgreSQL connection URL.
pub fn is_url(arg: &str) -> bool {
    arg.starts_with("postgres://") || arg.starts_with("postgresql://")
}

impl PostgresDatabase {
    pub fn connect(url: &str) -> Result<PostgresDatabase, ImportError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| ImportError::Open(format!("bad PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            // An unreachable host fails in seconds, not at TCP's pace.
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let source = source_id(&config);
        let mut client = config
            .connect(NoTls)
            .map_err(|e| ImportError::Open(format!("{source}: {}", chain(&e))))?;
        let server_zone = client
            .query_one("SHOW TimeZone", &[])
            .and_then(|r| r.try_get::<_, String>(0))
            .map_err(|e| ImportError::Read(format!("{source}: {}", chain(&e))))?;
        client
            .batch_execute("SET DateStyle TO ISO; SET TimeZone TO 'UTC'")
            .map_err(|e| ImportError::Read(format!("{source}: {}", chain(&e))))?;
        Ok(PostgresDatabase {
            source,
            client,
            server_zone,
        })
    }

    fn err(&self, e: postgres::Error) -> ImportError {
        ImportError::Read(format!("{}: {}", self.source, chain(&e)))
    }
}

/// An error with its causes (`invalid configuration: password missing`,
/// `db error: ERROR: ...`).
fn chain(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// `postgres://host:port/db`: the location without user or password.
fn source_id(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres://{host}:{port}/{db}")
}

impl Database for PostgresDatabase {
    fn describe(&self) -> String {
        self.source.clone()
    }

    fn source_id(&self) -> String {
        self.source.clone()
    }

    fn tables(&mut self) -> Result<Tables, ImportError> {
        let rows = self
            .client
            .query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = ANY (current_schemas(false))",
                &[],
            )
            .map_err(|e| self.err(e))?;
        let mut tables = Tables::new();
        for row in rows {
            let table: String = row.get(0);
            let column: String = row.get(1);
            tables
                .entry(table.to_ascii_lowercase())
                .or_default()
                .insert(column.to_ascii_lowercase());
        }
        Ok(tables)
    }

    fn naive_zone(
        &mut self,
        generation: Generation,
        asked: Option<&str>,
    ) -> Result<String, ImportError> {
        Ok(match (generation, asked) {
            (_, Some(zone)) => zone.to_string(),
            (Generation::Go, None) => self.server_zone.clone(),
            (Generation::Python, None) => "UTC".to_string(),
        })
    }

    fn for_each_row(
        &mut self,
        generation: Generation,
        f: &mut dyn FnMut(RawRow) -> Result<(), ImportError>,
    ) -> Result<(), ImportError> {
        let casts = ["text", "text", "text", "bigint", "bigint", "text", "text"];
        let columns: Vec<String> = ROW_COLUMNS
            .iter()
            .zip(casts)
            .map(|(c, t)| format!("\"{c}\"::{t}"))
            .collect();
        let sql = format!(
            "SELECT {} FROM \"{}\" ORDER BY query, type",
            columns.join(", "),
            generation.table()
        );
        let source = self.source.clone();
        let err = |e: postgres::Error| ImportError::Read(format!("{source}: {}", chain(&e)));
        let mut rows = self
            .client
            .query_raw(sql.as_str(), std::iter::empty::<&str>())
            .map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let text = |i| -> Option<Vec<u8>> {
                row.try_get::<_, Option<String>>(i)
                    .ok()
                    .flatten()
                    .map(String::into_bytes)
            };
            let int = |i| row.try_get::<_, Option<i64>>(i).ok().flatten();
            let time = |i| text(i).map_or(Stored::Null, Stored::Text);
            f(RawRow {
                query: text(0),
                qtype: text(1),
                answer: text(2),
                count: int(3),
                ttl: int(4),
                first: time(5),
                last: time(6),
            })?;
        }
        Ok(())
    }

    fn individual(&mut self) -> Result<(u64, u64), ImportError> {
        let mut count = |sql: &str| -> Result<u64, ImportError> {
            self.client
                .query_one(sql, &[])
                .and_then(|r| r.try_get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(|e| ImportError::Read(format!("{}: {}", self.source, chain(&e))))
        };
        let rows = count("SELECT count(*) FROM individual")?;
        let unanswered = count(super::schema::UNANSWERED_SQL)?;
        Ok((rows, unanswered))
    }
}
