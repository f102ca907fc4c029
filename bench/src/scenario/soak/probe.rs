//! What the soak samples, and how: the sensor process's RSS
//! (`/proc/PID/status` `VmRSS`) and open files (`/proc/PID/fd`), its
//! Prometheus text at `/metrics`, and timed API lookups over plain HTTP/1.1
//! (one connection per request, as a script or a MISP module would make
//! them). The HTTP parts run on a thread inside the rx namespace, where the
//! sensor's API listens on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `VmRSS` of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&text)
}

fn parse_vmrss(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Open file descriptors of `pid`.
pub fn open_files(pid: u32) -> Option<f64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64)
}

/// One HTTP GET: status code and body.
pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    // Chunked bodies keep their chunk-size lines; only `contains` checks
    // and line counts are made on them.
    Ok((status, body.to_string()))
}

/// A timed lookup: milliseconds, and whether the name was found.
pub fn timed_lookup(addr: SocketAddr, path: &str, name: &str) -> Result<(f64, bool)> {
    let t = Instant::now();
    let (status, body) = get(addr, path)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    match status {
        200 => Ok((ms, body.contains(name))),
        404 => Ok((ms, false)),
        s => bail!(
            "HTTP {s} for {path}: {}",
            body.chars().take(200).collect::<String>()
        ),
    }
}

/// One series of a Prometheus text exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// `k="v",...` as written (without braces).
    pub labels: String,
    pub value: f64,
}

impl Series {
    pub fn label(&self, key: &str) -> Option<&str> {
        let pat = format!("{key}=\"");
        let at = self
            .labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix(&pat))?;
        at.strip_suffix('"')
    }
}

/// Parses the text format (comments and odd lines skipped; label values
/// with commas are not expected from the sensor).
pub fn parse_metrics(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match key.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (key, ""),
        };
        out.push(Series {
            name: name.to_string(),
            labels: labels.to_string(),
            value,
        });
    }
    out
}

/// Sum of every series named `name` whose labels pass `keep`.
pub fn sum(m: &[Series], name: &str, keep: impl Fn(&Series) -> bool) -> Option<f64> {
    let v: Vec<f64> = m
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| s.value)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// The `q` quantile (0..=1) of `v` by nearest rank.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[rank - 1])
}

/// Least-squares slope of `points` (x, y); `None` under 3 points.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_metrics_parse() {
        let status = "Name:\tpdns-sensor\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\n";
        assert_eq!(parse_vmrss(status), Some(123456.0 * 1024.0));
        assert_eq!(parse_vmrss("nothing"), None);
        let text = "# HELP x y\n# TYPE x counter\n\
            pdns_rocksdb_property{cf=\"records\",property=\"pending_compaction_bytes\"} 100\n\
            pdns_rocksdb_property{cf=\"names\",property=\"pending_compaction_bytes\"} 23\n\
            pdns_rocksdb_property{cf=\"names\",property=\"sst_bytes\"} 7\n\
            pdns_frames_total 5e3\n\
            garbage\n";
        let m = parse_metrics(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].label("cf"), Some("records"));
        assert_eq!(m[0].label("property"), Some("pending_compaction_bytes"));
        let pending = sum(&m, "pdns_rocksdb_property", |s| {
            s.label("property") == Some("pending_compaction_bytes")
        });
        assert_eq!(pending, Some(123.0));
        assert_eq!(sum(&m, "pdns_frames_total", |_| true), Some(5000.0));
        assert_eq!(sum(&m, "absent", |_| true), None);
    }

    #[test]
    fn quantiles_and_slopes() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&[3.0], 0.99), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 2.0 * i as f64 + 1.0)).collect();
        assert!((slope(&line).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(slope(&line[..2]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]), None);
    }
}
