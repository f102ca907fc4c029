//! How the harness talks to the sensor binary: the `ingest` command line,
//! the `--stats-json` file it writes, and `serve` on loopback.
//!
//! A stats file is read as the sensor's own report type
//! ([`pdns_sensor::report`]): a field renamed in the sensor is a compile
//! error here, not a silently missing figure. A file that is missing or
//! does not parse becomes a note in the results.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

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
    serve_from(sensor, &[OsStr::new("--db"), db.as_os_str()])
}

/// Starts `pdns-sensor serve --clickhouse URL` (as [`serve`]).
pub fn serve_clickhouse(sensor: &Path, url: &str) -> Result<(Server, u16)> {
    serve_from(sensor, &[OsStr::new("--clickhouse"), OsStr::new(url)])
}

fn serve_from(sensor: &Path, source: &[&OsStr]) -> Result<(Server, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(sensor)
        .arg("serve")
        .args(source)
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

/// Reads a stats file as the report type `T`; the error says why it could
/// not be used.
pub fn read_report<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("no stats file ({e})"))?;
    serde_json::from_str(&text).map_err(|e| format!("stats file does not parse ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdns_sensor::report::IngestReport;

    #[test]
    fn reports_read_back_or_say_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        let report = IngestReport {
            files: 2,
            db_records: 7,
            ..IngestReport::default()
        };
        std::fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
        let back: IngestReport = read_report(&path).unwrap();
        assert_eq!((back.files, back.db_records), (2, 7));
        std::fs::write(&path, r#"{"packets": 1}"#).unwrap();
        assert!(read_report::<IngestReport>(&path).is_err());
        assert!(read_report::<IngestReport>(&dir.path().join("none")).is_err());
    }
}
