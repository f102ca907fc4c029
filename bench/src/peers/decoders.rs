//! Decoding peers: programs that read the same pcap and decode its DNS
//! messages, timed end to end as the sensor's `ingest` is.
//!
//! - `tshark` (Wireshark's dissectors) printing the answer fields of every
//!   packet — the decoder our differential tests trust;
//! - `dnscap -g` (DNS-OARC), which parses and prints every DNS message;
//! - `passivedns -r` (gamelinux, C), the classic passive DNS sniffer, when a
//!   binary is on `PATH` (it is not packaged in Debian 12).
//!
//! Each run is checked for having decoded what the file holds (tshark's
//! line count equals the packet count; dnscap printed a message per DNS
//! packet; passivedns logged records), so a crashed or misconfigured peer
//! reports a failure instead of a flattering rate.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::child::{Measured, run_measured};
use crate::r#gen::Summary;
use crate::tools::have;

/// A decoding peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    Tshark,
    Dnscap,
    Passivedns,
}

/// What one peer run measured.
#[derive(Clone, Debug)]
pub struct DecodeRun {
    pub measured: Measured,
    /// Units of output the check counted (lines, messages or records).
    pub decoded: u64,
    /// What `decoded` counts, for the report.
    pub decoded_what: &'static str,
    /// Why the output does not look like a full decode, if it does not.
    pub problem: Option<String>,
}

impl Decoder {
    pub const ALL: [Decoder; 3] = [Decoder::Tshark, Decoder::Dnscap, Decoder::Passivedns];

    pub fn name(self) -> &'static str {
        match self {
            Decoder::Tshark => "tshark",
            Decoder::Dnscap => "dnscap",
            Decoder::Passivedns => "passivedns",
        }
    }

    /// `None` when the peer can run here, else why not.
    pub fn missing(self) -> Option<String> {
        if have(self.name()) {
            return None;
        }
        Some(match self {
            Decoder::Tshark => "tshark not on PATH (apt install tshark; cargo xtask setup)".into(),
            Decoder::Dnscap => "dnscap not on PATH (apt install dnscap; cargo xtask setup)".into(),
            Decoder::Passivedns => "no passivedns binary on PATH (gamelinux/passivedns is not \
                 packaged in Debian 12; build it and put it on PATH to compare)"
                .into(),
        })
    }

    /// Decodes `pcap` (generated with ground truth `truth`) once; output
    /// goes to files under `dir`.
    pub fn run(self, pcap: &Path, truth: &Summary, dir: &Path) -> Result<DecodeRun> {
        match self {
            Decoder::Tshark => tshark(pcap, truth.packets, dir),
            Decoder::Dnscap => dnscap(pcap, truth, dir),
            Decoder::Passivedns => passivedns(pcap, dir),
        }
    }
}

fn count_lines(path: &Path, keep: impl Fn(&[u8]) -> bool) -> Result<u64> {
    use std::io::BufRead;
    let f = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut n = 0;
    for line in std::io::BufReader::with_capacity(1 << 20, f).split(b'\n') {
        if keep(&line?) {
            n += 1;
        }
    }
    Ok(n)
}

/// `tshark -n -r FILE -T fields` with the answer fields the sensor stores:
/// every packet is dissected down to its DNS records and one line printed
/// per packet.
fn tshark(pcap: &Path, packets: u64, dir: &Path) -> Result<DecodeRun> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(pcap).args(["-T", "fields"]);
    for field in [
        "dns.qry.name",
        "dns.flags.rcode",
        "dns.resp.name",
        "dns.resp.type",
        "dns.resp.ttl",
        "dns.a",
        "dns.aaaa",
        "dns.cname",
        "dns.ns",
        "dns.ptr.domain_name",
        "dns.mx.mail_exchange",
        "dns.txt",
    ] {
        cmd.args(["-e", field]);
    }
    let measured = run_measured(cmd, dir)?;
    let lines = count_lines(&dir.join("stdout.log"), |_| true)?;
    let problem =
        (lines != packets).then(|| format!("tshark printed {lines} lines for {packets} packets"));
    Ok(DecodeRun {
        measured,
        decoded: lines,
        decoded_what: "lines",
        problem,
    })
}

/// `dnscap -r FILE -g` in layers mode with IPv4/IPv6 defragmentation and
/// TCP (`-T`) with reassembly on (the work the sensor does too): parses
/// each DNS message and prints it to stderr, every message starting a line
/// with `[` (TCP SYN/FIN/RST segments print such a line too). dnscap 2.1.1
/// still skips the fragmented responses of generated files, so the check
/// asks for every unfragmented query and response.
fn dnscap(pcap: &Path, truth: &Summary, dir: &Path) -> Result<DecodeRun> {
    let mut cmd = Command::new("dnscap");
    cmd.arg("-r").arg(pcap).args([
        "-T",
        "-o",
        "use_layers=yes",
        "-o",
        "defrag_ipv4=yes",
        "-o",
        "defrag_ipv6=yes",
        "-o",
        "reassemble_tcp=yes",
        "-g",
    ]);
    let measured = run_measured(cmd, dir)?;
    let messages = count_lines(&dir.join("stderr.log"), |l| l.first() == Some(&b'['))?;
    let expected = (truth.queries + truth.responses).saturating_sub(truth.fragmented_responses);
    let problem = (messages < expected)
        .then(|| format!("dnscap printed {messages} DNS messages, expected at least {expected}"));
    Ok(DecodeRun {
        measured,
        decoded: messages,
        decoded_what: "messages",
        problem,
    })
}

/// `passivedns -r FILE` logging the record types A, AAAA, CNAME, DNAME,
/// NAPTR, PTR, RP, SRV, TXT, MX and NS and NXDOMAIN answers
/// (`-X 46CDNPRSTMnx`), its logs and pid file kept in `dir`.
fn passivedns(pcap: &Path, dir: &Path) -> Result<DecodeRun> {
    let log = dir.join("passivedns.log");
    let nx = dir.join("nxdomain.log");
    let mut cmd = Command::new("passivedns");
    cmd.arg("-r")
        .arg(pcap)
        .arg("-l")
        .arg(&log)
        .arg("-L")
        .arg(&nx)
        .arg("-p")
        .arg(dir.join("passivedns.pid"))
        .args(["-X", "46CDNPRSTMnx"]);
    let measured = run_measured(cmd, dir)?;
    let records = count_lines(&log, |l| !l.is_empty()).unwrap_or(0)
        + count_lines(&nx, |l| !l.is_empty()).unwrap_or(0);
    let problem = (records == 0).then(|| "passivedns logged no record".to_string());
    Ok(DecodeRun {
        measured,
        decoded: records,
        decoded_what: "records",
        problem,
    })
}
