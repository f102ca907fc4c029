//! Which bro-pdns generation a database holds, from its tables and
//! columns, and the one error a database that is not bro-pdns's gets: the
//! table or column that is missing, by name.
//!
//! The schemas, from bro-pdns's source: the Python version (SQLAlchemy)
//! created `dns(query, type, answer, count, ttl, first, last)`; the Go
//! version creates `tuples` with the same columns (its `query` reversed)
//! and `individual(which, value, count, first, last)`, plus `filenames`,
//! which the import does not need. Extra columns and tables are allowed.

use std::collections::{BTreeMap, BTreeSet};

/// Tables and their columns, lowercase.
pub type Tables = BTreeMap<String, BTreeSet<String>>;

/// The columns every row table has, in the order readers select them.
pub const ROW_COLUMNS: [&str; 7] = ["query", "type", "answer", "count", "ttl", "first", "last"];

/// The columns of Go's `individual` that the import reads.
pub const INDIVIDUAL_COLUMNS: [&str; 2] = ["which", "value"];

/// A bro-pdns generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    /// `dns`, names as logged, naive local times.
    Python,
    /// `tuples` (query reversed) and `individual`.
    Go,
}

impl Generation {
    pub fn table(self) -> &'static str {
        match self {
            Generation::Python => "dns",
            Generation::Go => "tuples",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Python => "python",
            Generation::Go => "go",
        }
    }
}

/// Why a database cannot be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error(
        "not a bro-pdns database: it has no table `dns` (bro-pdns's Python version) nor \
         `tuples` (its Go version); tables found: {found}"
    )]
    NoTable { found: String },
    #[error(
        "not a bro-pdns database: table `{table}` has no column `{column}` (bro-pdns's {generation} \
         version's `{table}` has {expected})"
    )]
    NoColumn {
        table: &'static str,
        column: &'static str,
        generation: &'static str,
        expected: String,
    },
}

/// The generations present (Python first), checked column by column.
pub fn detect(tables: &Tables) -> Result<Vec<Generation>, SchemaError> {
    let mut found = Vec::new();
    for generation in [Generation::Python, Generation::Go] {
        let Some(columns) = tables.get(generation.table()) else {
            continue;
        };
        require(generation, generation.table(), columns, &ROW_COLUMNS)?;
        if generation == Generation::Go {
            let Some(individual) = tables.get("individual") else {
                return Err(SchemaError::NoTable {
                    found: format!(
                        "{} (`tuples` without the Go version's `individual`)",
                        list(tables)
                    ),
                });
            };
            require(generation, "individual", individual, &INDIVIDUAL_COLUMNS)?;
        }
        found.push(generation);
    }
    if found.is_empty() {
        return Err(SchemaError::NoTable {
            found: list(tables),
        });
    }
    Ok(found)
}

fn require(
    generation: Generation,
    table: &'static str,
    columns: &BTreeSet<String>,
    wanted: &[&'static str],
) -> Result<(), SchemaError> {
    for column in wanted {
        if !columns.contains(*column) {
            return Err(SchemaError::NoColumn {
                table,
                column,
                generation: match generation {
                    Generation::Python => "Python",
                    Generation::Go => "Go",
                },
                expected: wanted.join(", "),
            });
        }
    }
    Ok(())
}

fn list(tables: &Tables) -> String {
    if tables.is_empty() {
        "none".to_string()
    } else {
        tables.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Go's `individual`: questions (`which = 'Q'`, value reversed as in
/// `tuples.query`) that never had an answer row.
pub const UNANSWERED_SQL: &str = "SELECT count(*) FROM individual i WHERE i.which = 'Q' \
     AND NOT EXISTS (SELECT 1 FROM tuples t WHERE t.query = i.value)";

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(spec: &[(&str, &[&str])]) -> Tables {
        spec.iter()
            .map(|(t, cols)| (t.to_string(), cols.iter().map(|c| c.to_string()).collect()))
            .collect()
    }

    #[test]
    fn generations_and_missing_pieces_are_named() {
        let py = tables(&[("dns", &ROW_COLUMNS)]);
        assert_eq!(detect(&py), Ok(vec![Generation::Python]));
        let go = tables(&[
            ("tuples", &ROW_COLUMNS),
            ("individual", &["which", "value", "count"]),
            ("filenames", &["filename"]),
        ]);
        assert_eq!(detect(&go), Ok(vec![Generation::Go]));
        let other = tables(&[("users", &["id"])]);
        let e = detect(&other).unwrap_err().to_string();
        assert!(e.contains("no table `dns`") && e.contains("users"), "{e}");
        let no_answer = tables(&[("dns", &["query", "type", "count", "ttl", "first", "last"])]);
        let e = detect(&no_answer).unwrap_err().to_string();
        assert!(e.contains("table `dns` has no column `answer`"), "{e}");
        let no_individual = tables(&[("tuples", &ROW_COLUMNS)]);
        assert!(
            detect(&no_individual)
                .unwrap_err()
                .to_string()
                .contains("individual")
        );
    }
}
