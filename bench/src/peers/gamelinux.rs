//! gamelinux/passivedns text lines, the input format balboa ingests.
//!
//! `ts||client||server||IN||owner.||TYPE||rdata||ttl||count`, e.g.
//! `1700000000.001000||10.0.0.2||10.0.0.53||IN||www.example.com.||A||93.184.216.34||300||1`.
//!
//! The lines are made from a capture by the sensor's own library — the
//! same pcap reader, decoder (fragments, TCP) and extractor `pdns-sensor
//! ingest` runs, with its defaults (port 53, answer section) — so a peer
//! fed these lines sees exactly the observations the sensor stored: one
//! line per positive record per response (a record repeated within one
//! response counts once, as in the sensor), `count` 1, names lowercased.
//! Negative answers (NXDOMAIN, NODATA, ...) get no line: passivedns writes
//! them to a separate log, and balboa has no place for them.
//!
//! Owner and rdata are in presentation format as `dig` prints them
//! ([`pdns_sensor::render`]): names with their trailing dot (balboa strips
//! it), `10 mail.example.` for MX. Client and server are the destination
//! and source address of the IP header of the frame that completed the
//! response (for DNS over TCP, the segment that finished the message);
//! messages only released at the end of the input get `0.0.0.0`. A record
//! whose owner or rdata contains `||` or a line break cannot be written in
//! this format and is counted in [`Summary::unrepresentable`] instead.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use pdns_sensor::decode::{DecodeConfig, Decoder, link};
use pdns_sensor::extract::{ExtractStats, Extractor, Sections};
use pdns_sensor::source;
use pdns_sensor::vocab::observation::ObservationSink;
use pdns_sensor::vocab::packet::{Frame, Timestamp};
use pdns_sensor::vocab::{OptRcode, Rtype, name, render};

/// One positive observation, ready to print as a gamelinux line.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// Capture time of the response.
    pub ts: Timestamp,
    pub client: IpAddr,
    pub server: IpAddr,
    /// Owner name, presentation format with the trailing dot.
    pub owner: &'a str,
    /// Type mnemonic (`A`, `CNAME`, `TYPE65280`).
    pub rtype: &'a str,
    /// Rdata in presentation format.
    pub rdata: &'a str,
    pub ttl: u32,
}

impl fmt::Display for Observation<'_> {
    /// The line without its newline; `count` is always 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}||{}||{}||IN||{}||{}||{}||{}||1",
            self.ts.secs,
            self.ts.nanos / 1000,
            self.client,
            self.server,
            self.owner,
            self.rtype,
            self.rdata,
            self.ttl
        )
    }
}

/// What converting one capture produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Observations handed out (lines written).
    pub observations: u64,
    /// Every positive observation of the capture was handed out: the
    /// `max` cap was not reached before the input ended.
    pub complete: bool,
    /// Records skipped because `||` or a line break in a field would break
    /// the line format.
    pub unrepresentable: u64,
    /// Frames read (fewer than the file holds when the cap stopped the
    /// reading early).
    pub frames: u64,
    /// DNS responses decoded.
    pub responses: u64,
}

/// Calls `f` for each positive observation in `pcap`, in capture order, at
/// most `max` times; stops reading once the cap is exceeded.
pub fn observations(
    pcap: &Path,
    max: u64,
    mut f: impl FnMut(&Observation<'_>) -> io::Result<()>,
) -> Result<Summary> {
    let file = std::fs::File::open(pcap).with_context(|| format!("opening {}", pcap.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let input = Stoppable {
        inner: file,
        stop: Arc::clone(&stop),
    };
    let mut decoder = Decoder::new(&DecodeConfig::default());
    let mut extractor = Extractor::new(Sections::default());
    let mut stats = ExtractStats::default();
    let mut sink = Sink {
        f: &mut f,
        max,
        ts: Timestamp::default(),
        client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        server: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        owner: String::new(),
        rtype: String::new(),
        rdata: String::new(),
        summary: Summary::default(),
        error: None,
        stop: &stop,
    };
    let read = source::pcap::read(input, &pcap.display().to_string(), |frame| {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let (client, server) = addresses(frame);
        decoder.decode(frame, &mut |payload| {
            sink.ts = payload.ts;
            sink.client = client;
            sink.server = server;
            extractor.extract(&payload, &mut stats, &mut sink);
        });
    })?;
    if !stop.load(Ordering::Relaxed) {
        decoder.finish(&mut |payload| {
            sink.ts = payload.ts;
            sink.client = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            sink.server = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            extractor.extract(&payload, &mut stats, &mut sink);
        });
    }
    if let Some(e) = sink.error {
        return Err(e).context("writing observations");
    }
    let mut summary = sink.summary;
    summary.complete = !stop.load(Ordering::Relaxed);
    summary.frames = read.frames;
    summary.responses = stats.dns_responses;
    Ok(summary)
}

/// Writes one gamelinux line per positive observation in `pcap` to `out`,
/// at most `max` lines.
pub fn write_lines(pcap: &Path, out: &mut impl Write, max: u64) -> Result<Summary> {
    observations(pcap, max, |o| writeln!(out, "{o}"))
}

/// A gamelinux line split into its nine fields.
pub fn fields(line: &str) -> Option<[&str; 9]> {
    let v: Vec<&str> = line.trim_end_matches(['\r', '\n']).split("||").collect();
    v.try_into().ok()
}

/// The addresses of a response frame: (client, server) = (destination,
/// source); unspecified when the frame is not IP.
fn addresses(frame: &Frame<'_>) -> (IpAddr, IpAddr) {
    let unknown = (
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    );
    let Ok(ip) = link::strip(frame.link, frame.data) else {
        return unknown;
    };
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            let a = |o: usize| IpAddr::V4(Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]));
            (a(16), a(12))
        }
        Some(6) if ip.len() >= 40 => {
            let a = |o: usize| {
                let b: [u8; 16] = ip[o..o + 16].try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(b))
            };
            (a(24), a(8))
        }
        _ => unknown,
    }
}

/// Reads `inner` until `stop` is set, then reports end of file.
struct Stoppable<R> {
    inner: R,
    stop: Arc<AtomicBool>,
}

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(0);
        }
        self.inner.read(buf)
    }
}

struct Sink<'a, F> {
    f: &'a mut F,
    max: u64,
    ts: Timestamp,
    client: IpAddr,
    server: IpAddr,
    owner: String,
    rtype: String,
    rdata: String,
    summary: Summary,
    error: Option<io::Error>,
    stop: &'a AtomicBool,
}

fn representable(s: &str) -> bool {
    !s.contains("||") && !s.contains(['\n', '\r'])
}

impl<F: FnMut(&Observation<'_>) -> io::Result<()>> ObservationSink for Sink<'_, F> {
    fn record(&mut self, owner: &[u8], rtype: Rtype, rdata: &[u8], ttl: u32, _ts: u64) {
        if self.error.is_some() || self.stop.load(Ordering::Relaxed) {
            return;
        }
        if self.summary.observations >= self.max {
            // One observation past the cap: the feed is not complete.
            self.stop.store(true, Ordering::Relaxed);
            return;
        }
        self.owner.clear();
        name::write_presentation(owner, &mut self.owner);
        self.rtype = render::rtype_name(rtype);
        self.rdata = render::rdata(rtype, rdata);
        if !representable(&self.owner) || !representable(&self.rdata) {
            self.summary.unrepresentable += 1;
            return;
        }
        let o = Observation {
            ts: self.ts,
            client: self.client,
            server: self.server,
            owner: &self.owner,
            rtype: &self.rtype,
            rdata: &self.rdata,
            ttl,
        };
        match (self.f)(&o) {
            Ok(()) => self.summary.observations += 1,
            Err(e) => {
                self.error = Some(e);
                self.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    fn negative(&mut self, _qname: &[u8], _qtype: Rtype, _rcode: OptRcode, _ts: u64) {}
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::process::Command;

    use serde_json::Value;

    use super::*;

    /// The repository's `testdata/pcap/REL`, which must exist.
    fn testdata(rel: &str) -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/pcap")
            .join(rel);
        assert!(p.exists(), "missing capture {}", p.display());
        p
    }

    fn lines(pcap: &Path, max: u64) -> (Vec<String>, Summary) {
        let mut out = Vec::new();
        let summary = write_lines(pcap, &mut out, max).unwrap();
        let text = String::from_utf8(out).unwrap();
        (text.lines().map(str::to_string).collect(), summary)
    }

    /// Answer records of every DNS response, as tshark (Wireshark's
    /// dissectors, independent of ours) decodes them: one
    /// `client||server||owner.||TYPE||rdata||ttl` per record, counted.
    fn tshark_answers(pcap: &Path) -> BTreeMap<String, u64> {
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(pcap)
            .args([
                "-T",
                "json",
                "--no-duplicate-keys",
                "-Y",
                "dns.flags.response == 1",
            ])
            .output()
            .expect("tshark must be installed (cargo xtask setup installs it)");
        assert!(out.status.success(), "tshark failed");
        let packets: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut seen = BTreeMap::new();
        let s = |v: &Value| v.as_str().unwrap().to_string();
        for p in packets.as_array().unwrap() {
            let layers = &p["_source"]["layers"];
            let ip = &layers["ip"];
            let (src, dst) = (s(&ip["ip.src"]), s(&ip["ip.dst"]));
            // Several DNS messages in one TCP segment: an array of layers.
            let dns = match &layers["dns"] {
                Value::Array(v) => v.iter().collect(),
                one => vec![one],
            };
            for msg in dns {
                let Some(answers) = msg["Answers"].as_object() else {
                    continue;
                };
                // A record repeated within one message counts once (the
                // sensor's rule); tshark merges repeated keys into arrays.
                let mut distinct = std::collections::BTreeSet::new();
                let rrs = answers.values().flat_map(|v| match v {
                    Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                });
                for rr in rrs {
                    let owner = s(&rr["dns.resp.name"]).to_ascii_lowercase();
                    let (rtype, rdata) = match s(&rr["dns.resp.type"]).as_str() {
                        "1" => ("A", s(&rr["dns.a"])),
                        "12" => ("PTR", s(&rr["dns.ptr.domain_name"]) + "."),
                        "5" => ("CNAME", s(&rr["dns.cname"]) + "."),
                        t => panic!("type {t} not expected in this capture"),
                    };
                    distinct.insert(format!(
                        "{dst}||{src}||{owner}.||{rtype}||{}||{}",
                        rdata.to_ascii_lowercase(),
                        s(&rr["dns.resp.ttl"])
                    ));
                }
                for line in distinct {
                    *seen.entry(line).or_default() += 1;
                }
            }
        }
        seen
    }

    /// Every answer record tshark decodes is exactly one of our lines
    /// (same addresses, owner, type, rdata and TTL), and nothing more.
    fn same_as_tshark(rel: &str, responses: u64) {
        let pcap = testdata(rel);
        let (ours, summary) = lines(&pcap, u64::MAX);
        assert!(summary.complete);
        assert_eq!(summary.unrepresentable, 0);
        assert_eq!(summary.observations as usize, ours.len());
        assert_eq!(summary.responses, responses);
        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        for line in &ours {
            let f = fields(line).unwrap_or_else(|| panic!("not 9 fields: {line}"));
            assert_eq!(f[3], "IN");
            assert_eq!(f[8], "1");
            let (secs, frac) = f[0].split_once('.').unwrap();
            assert!(secs.parse::<u64>().unwrap() > 1_000_000_000);
            assert_eq!(frac.len(), 6);
            let key = [f[1], f[2], f[4], f[5], f[6], f[7]].join("||");
            *counted.entry(key).or_default() += 1;
        }
        let theirs = tshark_answers(&pcap);
        assert!(!theirs.is_empty());
        assert_eq!(counted, theirs);
        // Both kinds are in there.
        assert!(ours.iter().any(|l| l.contains("||A||")));
        assert!(ours.iter().any(|l| l.contains("||PTR||")));
    }

    /// dnscap's `dns.pcap`: 41 A and PTR lookups to 8.8.8.8 over UDP.
    #[test]
    fn udp_lines_match_tshark() {
        same_as_tshark("dnscap/dns.pcap", 41);
    }

    /// dnscap's `dnso1tcp.pcap`: 41 lookups over one TCP connection
    /// (several messages per stream, reassembled; some answers repeat a
    /// record).
    #[test]
    fn tcp_lines_match_tshark() {
        same_as_tshark("dnscap/dnso1tcp.pcap", 41);
    }

    #[test]
    fn cap_stops_early_and_says_so() {
        let pcap = testdata("dnscap/dns.pcap");
        let (all, s) = lines(&pcap, u64::MAX);
        assert!(s.complete);
        let (some, s) = lines(&pcap, 5);
        assert_eq!(some.len(), 5);
        assert_eq!(s.observations, 5);
        assert!(!s.complete);
        assert_eq!(some[..], all[..5]);
        let (exact, s) = lines(&pcap, all.len() as u64);
        assert_eq!(exact, all);
        assert!(s.complete, "cap equal to the total is complete");
    }

    #[test]
    fn line_format() {
        let o = Observation {
            ts: Timestamp {
                secs: 1_700_000_000,
                nanos: 1_000_999,
            },
            client: "10.0.0.2".parse().unwrap(),
            server: "2001:db8::53".parse().unwrap(),
            owner: "www.example.com.",
            rtype: "A",
            rdata: "93.184.216.34",
            ttl: 300,
        };
        let line = o.to_string();
        assert_eq!(
            line,
            "1700000000.001000||10.0.0.2||2001:db8::53||IN||www.example.com.||A||93.184.216.34||300||1"
        );
        assert_eq!(fields(&line).unwrap()[4], "www.example.com.");
        assert!(fields("a||b").is_none());
        assert!(!representable("a||b"));
        assert!(!representable("a\nb"));
        assert!(representable("\"a|b\""));
    }
}
