//! Reading the configuration file: TOML, every value with its line.
//!
//! The file is not deserialised into structs of its own: which keys exist,
//! and what their values must look like, is the clap definition's business
//! (see [`super::layer`]), so an option added to a command is accepted here
//! without a line of this module changing. This module only parses the
//! TOML (with the toml crate's spanned document), turns every value into
//! the text clap would have been given on the command line, and remembers
//! the line of each key for the errors.

use std::io::Read;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// A table of the file: `[serve]`, `[common]`, or the document itself.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) entries: Vec<Entry>,
}

/// One `key = value` of a table.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: String,
    /// 1-based line of the key.
    pub(super) line: usize,
    pub(super) value: Value,
}

/// A value, reduced to what clap needs.
#[derive(Debug)]
pub(super) enum Value {
    Bool(bool),
    /// A string, number or date-time, as the text clap parses; `kind` says
    /// which (for errors).
    Scalar {
        text: String,
        kind: &'static str,
    },
    Array(Vec<Value>),
    Table(Table),
}

impl Value {
    /// "a string", "an array", ... (for errors).
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Scalar { kind, .. } => kind,
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Parses a configuration file's text.
pub(super) fn parse(text: &str) -> Result<Table, ConfigError> {
    let document = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        ConfigError {
            line,
            message: format!("not valid TOML: {}", e.message().trim_end()),
        }
    })?;
    Ok(table(text, document.get_ref()))
}

/// The largest configuration file read: far more than every option of
/// every command needs, and a bound when `--config` names something that
/// never ends (`/dev/zero`).
const MAX_SIZE: u64 = 1 << 20;

/// Reads and parses a configuration file.
pub(super) fn read(path: &Path) -> Result<Table, ConfigError> {
    let cannot = |e: std::io::Error| ConfigError {
        line: None,
        message: format!("cannot read it: {e}"),
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SIZE + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(ConfigError {
            line: None,
            message: format!(
                "larger than {} KiB: not a configuration file",
                MAX_SIZE >> 10
            ),
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| ConfigError {
        line: Some(line_of_bytes(e.as_bytes(), e.utf8_error().valid_up_to())),
        message: "not UTF-8 text".to_string(),
    })?;
    parse(&text)
}

fn table(text: &str, t: &DeTable<'_>) -> Table {
    let mut entries: Vec<Entry> = t
        .iter()
        .map(|(key, value)| Entry {
            key: key.get_ref().to_string(),
            line: line_of(text, key.span().start),
            value: self::value(text, value.get_ref()),
        })
        .collect();
    // The toml map is sorted by key; errors read best in file order.
    entries.sort_by_key(|e| e.line);
    Table { entries }
}

fn value(text: &str, v: &DeValue<'_>) -> Value {
    match v {
        DeValue::String(s) => Value::Scalar {
            text: s.to_string(),
            kind: "a string",
        },
        DeValue::Integer(i) => Value::Scalar {
            // Decimal whatever the radix the file wrote (0x1f, 0o17, 0b1).
            text: i128::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                .map(|n| n.to_string())
                .unwrap_or_else(|_| i.to_string()),
            kind: "an integer",
        },
        DeValue::Float(f) => Value::Scalar {
            text: f.as_str().to_string(),
            kind: "a float",
        },
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::Scalar {
            text: d.to_string(),
            kind: "a date-time",
        },
        DeValue::Array(a) => Value::Array(a.iter().map(|v| value(text, v.get_ref())).collect()),
        DeValue::Table(t) => Value::Table(table(text, t)),
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    line_of_bytes(text.as_bytes(), offset)
}

fn line_of_bytes(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_command_line_text_with_their_lines() {
        let t = parse(
            "# comment\n[serve]\nlisten = \"127.0.0.1:80\"\nresults-max = 0x10\n\
             quiet = true\nport = [53,\n  5353]\nfirst-after = 2024-01-02T03:04:05Z\n\
             rate = 1.5\nbig = 1_000\n",
        )
        .unwrap();
        let serve = match &t.entries[0].value {
            Value::Table(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(t.entries[0].line, 2);
        let got: Vec<(String, usize, String)> = serve
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.line, format!("{:?}", e.value)))
            .collect();
        let expect = [
            (
                "listen",
                3,
                r#"Scalar { text: "127.0.0.1:80", kind: "a string" }"#,
            ),
            (
                "results-max",
                4,
                r#"Scalar { text: "16", kind: "an integer" }"#,
            ),
            ("quiet", 5, "Bool(true)"),
            (
                "port",
                6,
                r#"Array([Scalar { text: "53", kind: "an integer" }, Scalar { text: "5353", kind: "an integer" }])"#,
            ),
            (
                "first-after",
                8,
                r#"Scalar { text: "2024-01-02T03:04:05Z", kind: "a date-time" }"#,
            ),
            ("rate", 9, r#"Scalar { text: "1.5", kind: "a float" }"#),
            ("big", 10, r#"Scalar { text: "1000", kind: "an integer" }"#),
        ];
        for ((k, l, v), (ek, el, ev)) in got.iter().zip(expect) {
            assert_eq!((k.as_str(), *l, v.as_str()), (ek, el, ev));
        }
        assert_eq!(got.len(), expect.len());
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let e = parse("[serve]\nlisten = \"a\"\nlisten = \"b\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e:?}");
        assert!(e.message.contains("duplicate key"), "{e:?}");
        let e = parse("[serve]\n\nlisten = 127.0.0.1:80\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e:?}");
        assert!(e.message.starts_with("not valid TOML"), "{e:?}");
    }
}
