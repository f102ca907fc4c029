//! Reads a bro-pdns SQLite file (either generation), read-only.
//!
//! SQLite keeps any value in any column, whatever the declared type (the
//! Go version declared `first`/`last` REAL and stored `datetime()` text in
//! them), so every value is taken as it is stored and judged later.

use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::RawRow;
use super::import::{Database, ImportError};
use super::schema::{Generation, ROW_COLUMNS, Tables};
use super::times::Stored;

pub struct SqliteDatabase {
    path: PathBuf,
    conn: Connection,
}

impl SqliteDatabase {
    /// Opens `path` read-only (a missing file is an error, never created).
    pub fn open(path: &Path) -> Result<SqliteDatabase, ImportError> {
        if !path.is_file() {
            return Err(ImportError::Open(format!(
                "{}: no such file (a bro-pdns SQLite database)",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| ImportError::Open(format!("{}: {e}", path.display())))?;
        // Read through a memory map rather than a read call per page (the
        // ordered scan visits the table in index order); 0 where SQLite
        // cannot map.
        let _ = conn.pragma_update(None, "mmap_size", 1i64 << 32);
        Ok(SqliteDatabase {
            path: path.to_path_buf(),
            conn,
        })
    }

    fn err(&self, e: rusqlite::Error) -> ImportError {
        ImportError::Read(format!("{}: {e}", self.path.display()))
    }
}

impl Database for SqliteDatabase {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn source_id(&self) -> String {
        let path = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        format!("sqlite:{}", path.display())
    }

    fn tables(&mut self) -> Result<Tables, ImportError> {
        let mut tables = Tables::new();
        let names: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        for name in names {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM pragma_table_info(?1)")
                .map_err(|e| self.err(e))?;
            let columns = stmt
                .query_map([&name], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            tables.insert(name.to_ascii_lowercase(), lowercase(columns));
        }
        Ok(tables)
    }

    fn naive_zone(
        &mut self,
        generation: Generation,
        asked: Option<&str>,
    ) -> Result<String, ImportError> {
        Ok(match generation {
            // `datetime(ts, 'unixepoch')` is UTC, whatever anyone asks.
            Generation::Go => "UTC".to_string(),
            Generation::Python => asked.unwrap_or("UTC").to_string(),
        })
    }

    fn for_each_row(
        &mut self,
        generation: Generation,
        f: &mut dyn FnMut(RawRow) -> Result<(), ImportError>,
    ) -> Result<(), ImportError> {
        let sql = format!(
            "SELECT {} FROM \"{}\" ORDER BY query, type",
            ROW_COLUMNS.map(|c| format!("\"{c}\"")).join(", "),
            generation.table()
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(ImportError::Read(format!("{}: {e}", self.path.display())));
                }
            };
            let value = |i| row.get_ref(i).unwrap_or(ValueRef::Null);
            f(RawRow {
                query: bytes(value(0)),
                qtype: bytes(value(1)),
                answer: bytes(value(2)),
                count: integer(value(3)),
                ttl: integer(value(4)),
                first: stored(value(5)),
                last: stored(value(6)),
            })?;
        }
    }

    fn individual(&mut self) -> Result<(u64, u64), ImportError> {
        let count = |sql: &str| -> Result<u64, ImportError> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(|e| ImportError::Read(format!("{}: {e}", self.path.display())))
        };
        Ok((
            count("SELECT count(*) FROM individual")?,
            count(super::schema::UNANSWERED_SQL)?,
        ))
    }
}

fn lowercase(columns: Vec<String>) -> std::collections::BTreeSet<String> {
    columns
        .into_iter()
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn bytes(v: ValueRef<'_>) -> Option<Vec<u8>> {
    match v {
        ValueRef::Null => None,
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        ValueRef::Real(f) => Some(f.to_string().into_bytes()),
    }
}

fn integer(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9e18 => Some(f as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn stored(v: ValueRef<'_>) -> Stored {
    match v {
        ValueRef::Null => Stored::Null,
        ValueRef::Integer(n) => Stored::Integer(n),
        ValueRef::Real(f) => Stored::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => Stored::Text(t.to_vec()),
    }
}
