//! How the harness talks to the sensor binary: the `ingest` command line,
//! the `--stats-json` file it writes, and `serve` on loopback.
//!
//! The sensor is developed alongside this harness, so every stats key is
//! optional: a missing key becomes a missing figure and a note, never an
//! error. Unknown numeric keys are kept too, so new sensor counters show up
//! in results without a harness change.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Keys the harness derives its figures from.
pub const KNOWN_KEYS: [&str; 6] = [
    "packets",
    "dns_responses",
    "observations",
    "elapsed_secs",
    "db_bytes",
    "db_records",
];

/// `pdns-sensor ingest --db DB --threads T [--compact] --stats-json STATS
/// PCAP`. With `compact` the store is fully compacted before the sensor's
/// clock stops (on-disk size per record); without, the clock stops once
/// everything is flushed and queryable.
pub fn ingest_command(
    sensor: &Path,
    db: &Path,
    threads: u32,
    compact: bool,
    stats: &Path,
    pcap: &Path,
) -> Command {
    let mut c = Command::new(sensor);
    c.arg("ingest")
        .arg("--db")
        .arg(db)
        .arg("--threads")
        .arg(threads.to_string());
    if compact {
        c.arg("--compact");
    }
    c.arg("--stats-json").arg(stats).arg(pcap);
    c
}

/// A running `pdns-sensor serve`, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `pdns-sensor serve --db DB` on a free loopback port and waits
/// (up to 60 s) until it accepts connections.
pub fn serve(sensor: &Path, db: &Path) -> Result<(Server, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(sensor)
        .args(["serve", "--db"])
        .arg(db)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--results-max",
            "100000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting pdns-sensor serve")?;
    let mut server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.0.try_wait()? {
            bail!("pdns-sensor serve exited ({status}) before listening");
        }
        if Instant::now() > deadline {
            bail!("pdns-sensor serve did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((server, port))
}

/// The sensor's stats file, leniently parsed.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Every numeric value, by key; members of nested objects (one level)
    /// appear as `outer.inner`.
    pub values: BTreeMap<String, f64>,
    /// Why the file could not be used, if it could not.
    pub problem: Option<String>,
}

impl Stats {
    pub fn read(path: &Path) -> Stats {
        match std::fs::read_to_string(path) {
            Ok(s) => Self::parse(&s),
            Err(e) => Stats {
                problem: Some(format!("no stats file ({e})")),
                ..Stats::default()
            },
        }
    }

    pub fn parse(text: &str) -> Stats {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => {
                let mut values = BTreeMap::new();
                for (k, v) in &map {
                    if let Value::Object(inner) = v {
                        for (k2, v2) in inner {
                            if let Some(f) = v2.as_f64() {
                                values.insert(format!("{k}.{k2}"), f);
                            }
                        }
                    } else if let Some(f) = v.as_f64() {
                        values.insert(k.clone(), f);
                    }
                }
                Stats {
                    values,
                    problem: None,
                }
            }
            Ok(_) => Stats {
                problem: Some("stats file is not a JSON object".into()),
                ..Stats::default()
            },
            Err(e) => Stats {
                problem: Some(format!("stats file is not JSON ({e})")),
                ..Stats::default()
            },
        }
    }

    pub fn get(&self, k: &str) -> Option<f64> {
        self.values.get(k).copied()
    }

    /// Known keys the sensor did not report.
    pub fn missing(&self) -> Vec<&'static str> {
        KNOWN_KEYS
            .iter()
            .copied()
            .filter(|k| !self.values.contains_key(*k))
            .collect()
    }

    /// Numeric keys beyond the known ones.
    pub fn extra(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.values
            .iter()
            .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parsing() {
        let s = Stats::parse(
            r#"{"packets": 10, "elapsed_secs": 0.5, "name": "x", "dropped": 2, "drops": {"short": 1, "why": "x"}}"#,
        );
        assert_eq!(s.get("packets"), Some(10.0));
        assert_eq!(s.get("observations"), None);
        assert!(s.missing().contains(&"db_bytes"));
        assert_eq!(
            s.extra().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["dropped", "drops.short"]
        );
        assert!(Stats::parse("[1]").problem.is_some());
        assert!(Stats::parse("{").problem.is_some());
        assert!(
            Stats::read(Path::new("/nonexistent/stats.json"))
                .problem
                .is_some()
        );
    }
}
