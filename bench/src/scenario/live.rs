//! Live capture scenario: a generated capture replayed with `tcpreplay
//! --topspeed` over a veth pair between two private network namespaces into
//! `pdns-sensor run` (eBPF filter, TPACKET_V3 ring, full decode and store).
//! Reports offered packets/s (what tcpreplay managed), captured frames,
//! kernel drops and the sensor's CPU time, for 1 ring and for all cores.
//!
//! Needs root, `ip` and `tcpreplay` (installed by `cargo xtask setup`);
//! without them the entries say why instead of faking figures. Nothing
//! leaves the namespaces: frames go from one veth end to the other.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Ctx, Outcome, Scenario};
use crate::r#gen::Config;
use crate::report::{Entry, SENSOR};
use crate::table::{Table, num};
use crate::workload::{Workload, prepare};

pub const NAME: &str = "live";

#[derive(Clone, Debug, Default)]
pub struct Live;

const RX_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];
const TX_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Result<Netns> {
        let name = format!("pdns-bench-{}-{tag}", std::process::id());
        sh(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns(name);
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        for s in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            ns.run(&["sysctl", "-qw", s])?;
        }
        Ok(ns)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }

    fn run(&self, argv: &[&str]) -> Result<String> {
        sh(self.cmd(argv[0]).args(&argv[1..]))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A copy of a classic pcap with every frame addressed to the receiving
/// veth end (so the frames are PACKET_HOST there, as on a real resolver).
fn retarget(src: &Path, dst: &Path) -> Result<()> {
    let mut data = std::fs::read(src)?;
    let mut pos = 24;
    while pos + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[pos + 8..pos + 12].try_into()?) as usize;
        let frame = pos + 16;
        if frame + 12 <= data.len() && caplen >= 12 {
            data[frame..frame + 6].copy_from_slice(&RX_MAC);
            data[frame + 6..frame + 12].copy_from_slice(&TX_MAC);
        }
        pos = frame + caplen;
    }
    std::fs::write(dst, data)?;
    Ok(())
}

/// `Actual: N packets (B bytes) sent in S seconds` and `Rated: ... X pps`.
fn parse_tcpreplay(out: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    let mut packets = None;
    let mut secs = None;
    let mut pps = None;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"Actual:") {
            packets = words.get(1).and_then(|w| w.parse().ok());
            secs = words
                .iter()
                .position(|w| *w == "in")
                .and_then(|i| words.get(i + 1))
                .and_then(|w| w.parse().ok());
        }
        if words.first() == Some(&"Rated:") {
            pps = words
                .iter()
                .position(|w| *w == "pps")
                .and_then(|i| words.get(i - 1))
                .and_then(|w| w.parse().ok());
        }
    }
    (packets, secs, pps)
}

struct Run {
    offered_packets: Option<f64>,
    replay_secs: Option<f64>,
    offered_pps: Option<f64>,
    stats: serde_json::Value,
    cpu_secs: f64,
}

fn one_run(sensor: &Path, pcap: &Path, threads: u32) -> Result<Run> {
    let tx = Netns::new("tx")?;
    let rx = Netns::new("rx")?;
    sh(Command::new("ip").args([
        "link", "add", "veth-a", "netns", &tx.0, "type", "veth", "peer", "name", "veth-b", "netns",
        &rx.0,
    ]))?;
    tx.run(&[
        "ip",
        "link",
        "set",
        "veth-a",
        "address",
        "02:00:00:00:00:0a",
        "up",
    ])?;
    rx.run(&[
        "ip",
        "link",
        "set",
        "veth-b",
        "address",
        "02:00:00:00:00:0b",
        "up",
    ])?;
    let dir = tempfile::tempdir()?;
    let stats = dir.path().join("stats.json");
    let mut child = rx
        .cmd(sensor.to_str().context("sensor path")?)
        .args([
            "run",
            "-i",
            "veth-b",
            "--no-api",
            "--status-interval",
            "3600",
            "--threads",
            &threads.to_string(),
        ])
        .arg("--db")
        .arg(dir.path().join("db"))
        .arg("--stats-json")
        .arg(&stats)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pdns-sensor run")?;
    // Ready once it logs that capture started.
    let stderr = child.stderr.take().context("stderr")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("capturing DNS on") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "pdns-sensor run did not start: {}",
            reader.join().unwrap_or_default()
        );
    }
    let out = tx.run(&[
        "tcpreplay",
        "-K",
        "--topspeed",
        "-i",
        "veth-a",
        pcap.to_str().context("pcap path")?,
    ])?;
    let (offered_packets, replay_secs, offered_pps) = parse_tcpreplay(&out);
    std::thread::sleep(Duration::from_millis(500));
    sh(Command::new("kill").args(["-TERM", &child.id().to_string()]))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // SAFETY: `pid` is our own child; the pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("pdns-sensor run did not stop within 120 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = reader.join().unwrap_or_default();
    let text = std::fs::read_to_string(&stats)
        .with_context(|| format!("no stats JSON; sensor said:\n{log}"))?;
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        offered_packets,
        replay_secs,
        offered_pps,
        stats: serde_json::from_str(&text)?,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Scenario for Live {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Live capture (tcpreplay --topspeed over veth → run)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let packets = if ctx.quick { 100_000 } else { 2_000_000 };
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&[
                "threads",
                "offered pkts",
                "offered pps",
                "frames",
                "drops",
                "DNS responses",
                "sensor CPU s",
            ]),
        };
        let w = Workload::new(
            "10k-names",
            Config {
                packets,
                names: 10_000,
                ..Config::default()
            },
        );
        let missing: Vec<&str> = ["ip", "tcpreplay"]
            .into_iter()
            .filter(|t| !have(t))
            .collect();
        if !is_root() || !missing.is_empty() {
            let mut e = Entry::new(NAME, SENSOR);
            e.set_workload("label", w.label.as_str());
            e.notes.push(format!(
                "not run: needs root and {missing:?} (cargo xtask setup)"
            ));
            out.entries.push(e);
            return Ok(out);
        }
        let p = prepare(&ctx.cache_dir, &w)?;
        let pcap: PathBuf = ctx.cache_dir.join(format!("live-{packets}.pcap"));
        retarget(&p.pcap, &pcap)?;
        for threads in [1u32, 0] {
            eprintln!("live: --threads {threads}");
            let mut e = Entry::new(NAME, SENSOR);
            e.set_workload("label", w.label.as_str());
            e.set_workload("packets", packets);
            e.set_workload("threads", threads);
            match one_run(&ctx.sensor, &pcap, threads) {
                Ok(r) => {
                    let s = &r.stats;
                    let get = |k: &str| s.get(k).and_then(|v| v.as_f64());
                    let iface = &s["interfaces"]["veth-b"];
                    let drops = iface.get("drops").and_then(|v| v.as_f64());
                    let frames = iface.get("frames").and_then(|v| v.as_f64());
                    e.set_figure("offered_packets", r.offered_packets);
                    e.set_figure("offered_pps", r.offered_pps);
                    e.set_figure("replay_secs", r.replay_secs);
                    e.set_figure("captured_frames", frames);
                    e.set_figure(
                        "captured_pps",
                        frames.zip(r.replay_secs).map(|(f, t)| f / t.max(1e-9)),
                    );
                    e.set_figure("kernel_drops", drops);
                    e.set_figure("dns_responses", get("dns_responses"));
                    e.set_figure("sensor_cpu_secs", Some(r.cpu_secs));
                    out.table.row(vec![
                        threads.to_string(),
                        num(r.offered_packets, 0),
                        num(r.offered_pps, 0),
                        num(frames, 0),
                        num(drops, 0),
                        num(get("dns_responses"), 0),
                        num(Some(r.cpu_secs), 2),
                    ]);
                }
                Err(err) => e.notes.push(format!("failed: {err:#}")),
            }
            out.entries.push(e);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpreplay_output_parses() {
        let text = "Actual: 100000 packets (15061006 bytes) sent in 0.32 seconds\nRated: 47068768.7 Bps, 376.55 Mbps, 312500.00 pps\n";
        assert_eq!(
            parse_tcpreplay(text),
            (Some(100000.0), Some(0.32), Some(312500.0))
        );
    }
}
