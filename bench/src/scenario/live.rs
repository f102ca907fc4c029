//! Live capture scenario: a generated capture replayed with `tcpreplay` over
//! a veth pair between two private network namespaces, at fixed rates and
//! at top speed, into `pdns-sensor run` (eBPF filter, TPACKET_V3 rings,
//! full decode and store) and into a bare ring reader.
//!
//! **Systems.** `pdns-sensor` with one ring (`--threads 1`) and one ring
//! per core (`--threads 0`), and `ring-read` with the same thread
//! settings: `bench ring-read` ([`crate::ringread`]) opens the very same
//! rings, fanout group and kernel filter through the sensor library, but
//! only counts frames. It is what the machine can move into userspace, so
//! every sensor figure reads as a fraction of it.
//!
//! **Runs.** The 100 000-packet `10k-names` workload, with its MAC
//! addresses rewritten to the receiving veth end, is preloaded by
//! `tcpreplay -K` and looped up to `--limit` packets, at `--pps=N` for each
//! fixed rate and at `--topspeed`. Full mode: 50k, 100k, 200k and 300k pps
//! for about 5 s each (N × 5 packets) and top speed for 2 000 000 packets,
//! for both systems at both thread settings. Quick mode: 100 000 packets
//! at 100k pps and at top speed, one ring only. What counts is the rate
//! tcpreplay *achieved* (`offered_pps`), which can fall short of the one
//! requested; top speed is whatever the sender core manages while it also
//! runs the receive softirq (the BPF filter and the copy into the ring).
//!
//! **Entries** (scenario `live`). One per run: workload `label`,
//! `packets` (sent), `threads` (0 = all cores), `rate` (requested pps or
//! `"topspeed"`); figures `offered_pps`, `offered_packets`, `replay_secs`,
//! `captured_frames` (frames read from the rings; IPv4 fragments arrive
//! reassembled, so slightly fewer than the packets sent even without
//! loss), `captured_pps` (frames / replay seconds), `kernel_drops` (ring
//! full, from `PACKET_STATISTICS`), `dns_responses` (sensor only),
//! `sensor_cpu_secs` (user + system CPU of the capturing process, for
//! either system); ratio `captured_pps_vs_ring_read` on sensor entries (the
//! ring reader at the same rate and thread setting). The drop share of a
//! run is `kernel_drops / (captured_frames + kernel_drops)`.
//!
//! **Highest drop-free rate.** One more entry per (system, threads), with
//! workload `label` = `"summary"` and `threads`: figure
//! `highest_drop_free_pps` is the highest `offered_pps` of that
//! configuration's runs that reported 0 kernel drops (absent when every run
//! dropped), `highest_offered_pps` the highest rate offered at all; when
//! the two are equal nothing dropped, and the sender, not the capture, was
//! the limit. A note on the entry and a table row say the same in words.
//!
//! Needs root, `ip` and `tcpreplay` (installed by `cargo xtask setup`);
//! without them the entries say "not run: …" instead of faking figures.
//! Nothing leaves the namespaces, and the namespaces, processes and
//! temporary files are removed by drop guards, whatever happens; every
//! wait is bounded.

mod capture;
mod netns;
mod replay;

use std::path::PathBuf;

use anyhow::Result;

use super::{Ctx, Outcome, Scenario};
use crate::r#gen::Config;
use crate::report::Entry;
use crate::table::{Table, num};
use crate::workload::{Workload, prepare};
use capture::{Capture, Captured, Programs, System};
use netns::VethPair;
use replay::{Rate, Replayed};

pub const NAME: &str = "live";

/// Packets in the replayed workload (looped as needed).
const PCAP_PACKETS: u64 = 100_000;
/// Seconds each fixed rate runs in full mode.
const SECS_PER_RATE: u64 = 5;
/// Packets sent at top speed in full mode (about 5 s).
const TOP_PACKETS: u64 = 2_000_000;
/// Fixed rates of full mode, packets per second.
const FULL_RATES: [u64; 4] = [50_000, 100_000, 200_000, 300_000];
/// The fixed rate of quick mode.
const QUICK_RATE: u64 = 100_000;

#[derive(Clone, Debug, Default)]
pub struct Live;

/// One planned run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spec {
    system: System,
    threads: u32,
    rate: Rate,
    packets: u64,
}

/// The (system, threads) configurations of a mode, ring reader first.
fn configs(quick: bool) -> Vec<(System, u32)> {
    let threads: &[u32] = if quick { &[1] } else { &[1, 0] };
    threads
        .iter()
        .flat_map(|&t| [(System::RingRead, t), (System::Sensor, t)])
        .collect()
}

/// Every run of a mode, rate by rate (so drifting conditions affect all
/// systems at a rate alike).
fn plan(quick: bool) -> Vec<Spec> {
    let rates: Vec<(Rate, u64)> = if quick {
        vec![
            (Rate::Pps(QUICK_RATE), PCAP_PACKETS),
            (Rate::Top, PCAP_PACKETS),
        ]
    } else {
        FULL_RATES
            .iter()
            .map(|&n| (Rate::Pps(n), n * SECS_PER_RATE))
            .chain([(Rate::Top, TOP_PACKETS)])
            .collect()
    };
    rates
        .into_iter()
        .flat_map(|(rate, packets)| {
            configs(quick)
                .into_iter()
                .map(move |(system, threads)| Spec {
                    system,
                    threads,
                    rate,
                    packets,
                })
        })
        .collect()
}

/// A finished run.
struct Done {
    spec: Spec,
    outcome: Result<(Replayed, Captured), String>,
}

impl Done {
    fn ok(&self) -> Option<&(Replayed, Captured)> {
        self.outcome.as_ref().ok()
    }

    fn captured_pps(&self) -> Option<f64> {
        let (r, c) = self.ok()?;
        Some(c.frames? / r.secs?.max(1e-9))
    }

    /// Offered rate of a run with no kernel drops.
    fn drop_free_pps(&self) -> Option<f64> {
        let (r, c) = self.ok()?;
        (c.drops? == 0.0).then_some(r.pps?)
    }
}

fn one_run(
    pair: &VethPair,
    programs: &Programs,
    pcap: &std::path::Path,
    spec: &Spec,
) -> Result<(Replayed, Captured)> {
    let capture = Capture::start(&pair.rx, programs, spec.system, spec.threads)?;
    let replayed = replay::replay(&pair.tx, pcap, PCAP_PACKETS, spec.packets, spec.rate)?;
    // Let the last partly filled blocks retire (10 ms) and be read.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let captured = capture.stop()?;
    Ok((replayed, captured))
}

fn threads_label(t: u32) -> String {
    if t == 0 { "all".into() } else { t.to_string() }
}

fn entry(system: System, threads: u32, label: &str) -> Entry {
    let mut e = Entry::new(NAME, system.name());
    e.set_workload("label", label);
    e.set_workload("threads", threads);
    e
}

impl Scenario for Live {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Live capture (tcpreplay over veth at fixed rates and top speed → run / bare ring reader)"
    }

    fn run(&self, ctx: &Ctx) -> Result<Outcome> {
        let mut out = Outcome {
            entries: Vec::new(),
            table: Table::new(&[
                "system",
                "threads",
                "rate",
                "offered pkts",
                "offered pps",
                "frames",
                "captured pps",
                "drops",
                "drop %",
                "DNS responses",
                "CPU s",
                "vs ring-read",
            ]),
        };
        let w = Workload::new(
            "10k-names",
            Config {
                packets: PCAP_PACKETS,
                names: 10_000,
                ..Config::default()
            },
        );
        let configs = configs(ctx.quick);
        let not_run = |out: &mut Outcome, systems: &[System], why: &str| {
            for &(system, threads) in &configs {
                if systems.contains(&system) {
                    let mut e = entry(system, threads, &w.label);
                    e.notes.push(format!("not run: {why}"));
                    out.entries.push(e);
                }
            }
        };
        let both = [System::Sensor, System::RingRead];
        let missing: Vec<&str> = ["ip", "tcpreplay"]
            .into_iter()
            .filter(|t| !netns::have(t))
            .collect();
        if !netns::is_root() {
            not_run(
                &mut out,
                &both,
                "needs root (network namespaces, AF_PACKET, eBPF)",
            );
            return Ok(out);
        }
        if !missing.is_empty() {
            not_run(
                &mut out,
                &both,
                &format!(
                    "{} not installed (cargo xtask setup)",
                    missing.join(" and ")
                ),
            );
            return Ok(out);
        }
        let programs = Programs::new(&ctx.sensor);
        if programs.bench.is_none() {
            not_run(
                &mut out,
                &[System::RingRead],
                "no bench binary to run `bench ring-read` from",
            );
        }
        let p = prepare(&ctx.cache_dir, &w)?;
        let pcap: PathBuf = ctx.cache_dir.join(format!("live-{PCAP_PACKETS}.pcap"));
        replay::retarget(&p.pcap, &pcap)?;
        let pair = match VethPair::new() {
            Ok(p) => p,
            Err(err) => {
                for &(system, threads) in &configs {
                    let mut e = entry(system, threads, &w.label);
                    e.notes
                        .push(format!("failed: setting up the veth pair: {err:#}"));
                    out.entries.push(e);
                }
                return Ok(out);
            }
        };
        let runs: Vec<Spec> = plan(ctx.quick)
            .into_iter()
            .filter(|s| s.system == System::Sensor || programs.bench.is_some())
            .collect();
        let mut done: Vec<Done> = Vec::new();
        for spec in runs {
            eprint!(
                "live: {} threads {} at {} ({} packets) ... ",
                spec.system.name(),
                threads_label(spec.threads),
                spec.rate,
                spec.packets
            );
            let outcome = one_run(&pair, &programs, &pcap, &spec).map_err(|e| format!("{e:#}"));
            match &outcome {
                Ok((r, c)) => eprintln!(
                    "offered {} pps, {} frames, {} drops",
                    num(r.pps, 0),
                    num(c.frames, 0),
                    num(c.drops, 0)
                ),
                Err(e) => eprintln!("failed: {e}"),
            }
            done.push(Done { spec, outcome });
        }
        drop(pair);

        for d in &done {
            let s = &d.spec;
            let mut e = entry(s.system, s.threads, &w.label);
            e.set_workload("packets", s.packets);
            e.set_workload("rate", s.rate.value());
            let reference = done.iter().find(|o| {
                o.spec.system == System::RingRead
                    && o.spec.threads == s.threads
                    && o.spec.rate == s.rate
            });
            let vs_ring = match (s.system, reference) {
                (System::Sensor, Some(r)) => d
                    .captured_pps()
                    .zip(r.captured_pps())
                    .map(|(a, b)| a / b.max(1e-9)),
                _ => None,
            };
            match &d.outcome {
                Ok((r, c)) => {
                    e.set_figure("offered_packets", r.packets);
                    e.set_figure("offered_pps", r.pps);
                    e.set_figure("replay_secs", r.secs);
                    e.set_figure("captured_frames", c.frames);
                    e.set_figure("captured_pps", d.captured_pps());
                    e.set_figure("kernel_drops", c.drops);
                    e.set_figure("dns_responses", c.dns_responses);
                    e.set_figure("sensor_cpu_secs", Some(c.cpu_secs));
                    if let Some(v) = vs_ring.filter(|v| v.is_finite()) {
                        e.ratios.insert("captured_pps_vs_ring_read".into(), v);
                    }
                    let drop_pct = c
                        .frames
                        .zip(c.drops)
                        .map(|(f, d)| 100.0 * d / (f + d).max(1.0));
                    out.table.row(vec![
                        s.system.name().into(),
                        threads_label(s.threads),
                        s.rate.to_string(),
                        num(r.packets, 0),
                        num(r.pps, 0),
                        num(c.frames, 0),
                        num(d.captured_pps(), 0),
                        num(c.drops, 0),
                        num(drop_pct, 2),
                        num(c.dns_responses, 0),
                        num(Some(c.cpu_secs), 2),
                        num(vs_ring, 3),
                    ]);
                }
                Err(err) => e.notes.push(format!("failed: {err}")),
            }
            out.entries.push(e);
        }

        for (system, threads) in configs {
            let mine: Vec<&Done> = done
                .iter()
                .filter(|d| d.spec.system == system && d.spec.threads == threads)
                .collect();
            // No summary without a single successful run: the failures
            // are in the run entries.
            if !mine.iter().any(|d| d.ok().is_some()) {
                continue;
            }
            let max = |v: Vec<f64>| v.into_iter().reduce(f64::max);
            let best = max(mine.iter().filter_map(|d| d.drop_free_pps()).collect());
            let offered = max(mine.iter().filter_map(|d| d.ok()?.0.pps).collect());
            let mut e = entry(system, threads, "summary");
            e.set_figure("highest_drop_free_pps", best);
            e.set_figure("highest_offered_pps", offered);
            let words = match (best, offered) {
                (Some(b), Some(o)) if b >= o => format!(
                    "highest drop-free rate {} pps: no kernel drops at any rate offered \
                     (the sender, not the capture, is the limit)",
                    num(Some(b), 0)
                ),
                (Some(b), Some(o)) => format!(
                    "highest drop-free rate {} pps; kernel drops at higher rates (up to {} pps offered)",
                    num(Some(b), 0),
                    num(Some(o), 0)
                ),
                (None, _) => "kernel drops at every rate offered".into(),
                (Some(b), None) => format!("highest drop-free rate {} pps", num(Some(b), 0)),
            };
            e.notes.push(format!(
                "{} threads {}: {words}",
                system.name(),
                threads_label(threads)
            ));
            out.table.row(vec![
                system.name().into(),
                threads_label(threads),
                "highest drop-free".into(),
                "-".into(),
                num(best, 0),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
            out.entries.push(e);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let quick = plan(true);
        assert_eq!(quick.len(), 4);
        assert!(quick.iter().all(|s| s.threads == 1 && s.packets == 100_000));
        assert_eq!(quick[0].system, System::RingRead);
        assert_eq!(quick[3].rate, Rate::Top);
        let full = plan(false);
        assert_eq!(full.len(), 5 * 4);
        assert!(
            full.iter()
                .any(|s| s.threads == 0 && s.system == System::RingRead)
        );
        let at = |n| {
            full.iter()
                .find(|s| s.rate == Rate::Pps(n))
                .unwrap()
                .packets
        };
        assert_eq!(at(300_000), 1_500_000);
        assert_eq!(at(50_000), 250_000);
    }

    #[test]
    fn drop_free_needs_zero_drops() {
        let spec = plan(true)[0];
        let run = |drops: Option<f64>| Done {
            spec,
            outcome: Ok((
                Replayed {
                    packets: Some(1000.0),
                    secs: Some(0.5),
                    pps: Some(2000.0),
                },
                Captured {
                    frames: Some(990.0),
                    drops,
                    dns_responses: None,
                    cpu_secs: 0.1,
                },
            )),
        };
        assert_eq!(run(Some(0.0)).drop_free_pps(), Some(2000.0));
        assert_eq!(run(Some(3.0)).drop_free_pps(), None);
        assert_eq!(run(None).drop_free_pps(), None);
        assert_eq!(run(Some(0.0)).captured_pps(), Some(1980.0));
        let failed = Done {
            spec,
            outcome: Err("x".into()),
        };
        assert_eq!(failed.drop_free_pps(), None);
    }
}
