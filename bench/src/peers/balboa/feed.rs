//! The feed: the passivedns (gamelinux) lines balboa is given, written
//! from the pcap with the sensor's own extraction before any clock starts,
//! what is known about them (the record the ingest poll waits for, the
//! name whose counts are checked, the names looked up), and streaming
//! them into balboa's feeder socket.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::graphql::{Records, Seen, UNNAMED, balboa_type};
use crate::peers::gamelinux;

/// Most names the lookup benchmark rotates over.
const LOOKUP_NAMES: usize = 1000;
/// One write into the feeder socket (balboa stopped reading if exceeded).
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// balboa strips every trailing dot from rrname and rdata.
pub(super) fn trim(s: &str) -> &str {
    s.trim_end_matches('.')
}

/// Names both APIs take verbatim in a path or a GraphQL string.
pub(super) fn plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The lines file and what is known about its content.
pub(super) struct Feed {
    pub(super) summary: gamelinux::Summary,
    path: PathBuf,
    /// Owner (trimmed) → lines, in first-seen order of owners.
    owners: Vec<String>,
    lines_per_owner: HashMap<String, u64>,
    /// Lines of types outside balboa's GraphQL enum, by type.
    pub(super) unnamed: BTreeMap<String, u64>,
}

/// The record the ingest poll waits for.
pub(super) struct Probe {
    pub(super) owner: String,
    pub(super) rtype: String,
    pub(super) rdata: String,
    /// Lines of that record in the whole feed.
    pub(super) count: u64,
}

/// The name whose records are compared.
pub(super) struct Checked {
    pub(super) owner: String,
    pub(super) lines: u64,
    pub(super) records: Records,
}

impl Feed {
    pub(super) fn write(pcap: &Path, path: &Path, max: u64) -> Result<Feed> {
        let mut out = BufWriter::new(
            fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        let mut owners = Vec::new();
        let mut lines_per_owner: HashMap<String, u64> = HashMap::new();
        let mut unnamed = BTreeMap::new();
        let summary = gamelinux::observations(pcap, max, |o| {
            if balboa_type(o.rtype) == UNNAMED {
                *unnamed.entry(o.rtype.to_string()).or_default() += 1;
            }
            let owner = trim(o.owner);
            match lines_per_owner.get_mut(owner) {
                Some(n) => *n += 1,
                None => {
                    lines_per_owner.insert(owner.to_string(), 1);
                    owners.push(owner.to_string());
                }
            }
            writeln!(out, "{o}")
        })
        .with_context(|| format!("turning {} into gamelinux lines", pcap.display()))?;
        out.flush()?;
        Ok(Feed {
            summary,
            path: path.to_path_buf(),
            owners,
            lines_per_owner,
            unnamed,
        })
    }

    /// Scans the lines file, calling `f(owner, rtype, rdata, secs)` with
    /// balboa's trimmed names and its view of the type.
    fn scan(&self, mut f: impl FnMut(&str, &str, &str, u64)) -> Result<()> {
        let file = BufReader::new(fs::File::open(&self.path)?);
        for line in file.lines() {
            let line = line?;
            let Some(v) = gamelinux::fields(&line) else {
                bail!("malformed feed line {line:?}");
            };
            let secs = v[0].split('.').next().unwrap_or("").parse().unwrap_or(0);
            f(trim(v[4]), balboa_type(v[5]), trim(v[6]), secs);
        }
        Ok(())
    }

    /// The last fed record with a plain owner, and how often it was fed.
    pub(super) fn probe(&self) -> Result<Probe> {
        let mut last: Option<(String, String, String)> = None;
        self.scan(|o, t, r, _| {
            if plain(o) {
                last = Some((o.to_string(), t.to_string(), r.to_string()));
            }
        })?;
        let (owner, rtype, rdata) = last.context("no fed record has a plain owner name")?;
        let mut count = 0;
        self.scan(|o, t, r, _| {
            count += u64::from(o == owner && t == rtype && r == rdata);
        })?;
        Ok(Probe {
            owner,
            rtype,
            rdata,
            count,
        })
    }

    /// The plain owner with the most lines (the first seen among equals)
    /// and its records as the lines give them.
    pub(super) fn frequent(&self) -> Result<Checked> {
        let mut best: Option<(&str, u64)> = None;
        for o in self.owners.iter().filter(|o| plain(o)) {
            let n = self.lines_per_owner[o];
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((o, n));
            }
        }
        let (owner, lines) = best.context("no fed record has a plain owner name")?;
        let mut records = Records::new();
        self.scan(|o, t, r, secs| {
            if o == owner {
                records
                    .entry((t.to_string(), r.to_string()))
                    .or_insert(Seen::NONE)
                    .add(secs);
            }
        })?;
        Ok(Checked {
            owner: owner.to_string(),
            lines,
            records,
        })
    }

    /// Up to [`LOOKUP_NAMES`] plain owners spread evenly over the owners
    /// in first-seen order.
    pub(super) fn lookup_names(&self) -> Vec<String> {
        let all: Vec<&String> = self.owners.iter().filter(|o| plain(o)).collect();
        let n = all.len().min(LOOKUP_NAMES);
        (0..n).map(|i| all[i * all.len() / n].clone()).collect()
    }

    /// Streams the lines into balboa's feeder socket as fast as it reads
    /// them.
    pub(super) fn send(&self, socket: &Path) -> Result<()> {
        let mut conn = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        conn.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let mut lines = fs::File::open(&self.path)?;
        std::io::copy(&mut lines, &mut conn).context("feeding balboa (did it stop reading?)")?;
        conn.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_and_trimming() {
        assert!(plain("www.example-1.com"));
        assert!(plain("_dmarc.example.com"));
        assert!(!plain(""));
        assert!(!plain("a b.com"));
        assert!(!plain("a\\.b.com"));
        assert_eq!(trim("x.cdn.test."), "x.cdn.test");
        assert_eq!(trim("10 mail.example."), "10 mail.example");
        assert_eq!(trim("192.0.2.1"), "192.0.2.1");
    }
}
