//! Live capture scenario: a generated capture replayed with `tcpreplay` over
//! a veth pair between two private network namespaces, at fixed rates and
//! at top speed, into `pdns-sensor run` (eBPF filter, TPACKET_V3 rings,
//! full decode and store) and into a bare ring reader.
//!
//! **Systems.** `pdns-sensor` with one ring (`--threads 1`) and one ring
//! per core (`--threads 0`), and `ring-read` with the same thread
//! settings, all with the default ring (the sensor library's
//! `RingConfig::default()`: 64 blocks of 1 MiB per ring): `bench
//! ring-read` ([`crate::ringread`]) opens the very same rings, fanout group
//! and kernel filter through the sensor library, but only counts frames.
//! It is what the machine can move into userspace, so every sensor figure
//! reads as a fraction of it.
//!
//! **The starved ring.** One more configuration: `pdns-sensor` with one
//! ring of only 4 blocks of 64 KiB (256 KiB instead of 64 MiB). At every
//! rate one tcpreplay sender reaches on a small machine (about 350k pps on
//! a 2-core VM) the default rings never fill, so their series are flat at
//! zero and show nothing of where drops begin or whether they are counted.
//! The small ring holds about 1 000 frames of this workload (10 ms at 100k
//! pps): it keeps up at 50k and 100k pps but overflows whenever the decoder
//! thread is briefly kept off the CPU at higher rates. Its series shows the drop share rising
//! with the rate, and that drops are seen (`PACKET_STATISTICS`) and
//! reported: its frames plus drops equal the frames the default rings
//! capture at the same rate. It demonstrates the accounting; it is not a
//! setting anyone should run.
//!
//! **Runs.** The 100 000-packet `10k-names` workload, with its MAC
//! addresses rewritten to the receiving veth end, is preloaded by
//! `tcpreplay -K` and looped up to `--limit` packets, at `--pps=N` for each
//! fixed rate and at `--topspeed`. Full mode: 50k, 100k, 200k and 300k pps
//! for about 5 s each (N × 5 packets) and top speed for 2 000 000 packets,
//! for both systems at both thread settings and for the starved ring.
//! Quick mode: 100 000 packets at 100k pps and at top speed, one ring only,
//! and the starved ring at top speed only. What counts is the rate
//! tcpreplay *achieved* (`offered_pps`), which can fall short of the one
//! requested; top speed is whatever the sender core manages while it also
//! runs the receive softirq (the BPF filter and the copy into the ring).
//!
//! **Entries** (scenario `live`). One per run: workload `label`,
//! `packets` (sent), `threads` (0 = all cores), `ring_bytes` (bytes per
//! ring: blocks × block size), `rate` (requested pps or `"topspeed"`);
//! figures `offered_pps`, `offered_packets`, `replay_secs`,
//! `captured_frames` (frames read from the rings; IPv4 fragments arrive
//! reassembled, so slightly fewer than the packets sent even without
//! loss), `captured_pps` (frames / replay seconds), `kernel_drops` (ring
//! full, from `PACKET_STATISTICS`), `dns_responses` (sensor only),
//! `sensor_cpu_secs` (user + system CPU of the capturing process, for
//! either system); ratio `captured_pps_vs_ring_read` on sensor entries (the
//! ring reader at the same rate and thread setting). The drop share of a
//! run is `kernel_drops / (captured_frames + kernel_drops)`.
//!
//! **Highest drop-free rate.** One more entry per (system, threads, ring),
//! with workload `label` = `"summary"`, `threads` and `ring_bytes`: figure
//! `highest_drop_free_pps` is the highest `offered_pps` of that
//! configuration's runs that reported 0 kernel drops (absent when every run
//! dropped), `highest_offered_pps` the highest rate offered at all; when
//! the two are equal nothing dropped, and the sender, not the capture, was
//! the limit. A note on the entry and a table row say the same in words.
//! For the starved ring the drop-free rate lies below the highest offered.
//!
//! Needs root, `ip` and `tcpreplay` (installed by `cargo xtask setup`);
//! without them the entries say "not run: …" instead of faking figures.
//! Nothing leaves the namespaces, and the namespaces, processes and
//! temporary files are removed by drop guards, whatever happens; every
//! wait is bounded.

pub(crate) mod capture;
mod replay;
pub(crate) mod veth;

use std::path::PathBuf;

use anyhow::Result;

use super::{Ctx, Outcome, Scenario};
use crate::r#gen::Config;
use crate::report::Entry;
use crate::table::{Table, num};
use crate::tools;
use crate::workload::{Workload, prepare};
pub use capture::binary_size;
use capture::{Capture, Captured, Programs, RingSize, System};
use replay::{Rate, Replayed};
use veth::VethPair;

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
/// The starved ring: about 1 000 frames of this workload, 10 ms at 100k
/// pps. Tried on a 2-core VM, since decoders hand their batches to a store
/// writer thread: no drops at 50k and 100k pps, 0.01–0.3 % from 200k pps
/// on; 2 × 64 KiB drops at 50k already, 8 × 64 KiB (which dropped from
/// 100k pps while decoders wrote to RocksDB themselves) no longer drops.
const SMALL_RING: RingSize = RingSize {
    blocks: 4,
    block_size: 64 << 10,
};

#[derive(Clone, Debug, Default)]
pub struct Live;

/// The bytes per ring of the default ring (workload `ring_bytes`).
pub fn default_ring_bytes() -> u64 {
    RingSize::default_ring().bytes()
}

/// One capture configuration: what captures, with how many rings (0 = one
/// per core), of which size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Setup {
    system: System,
    threads: u32,
    ring: RingSize,
}

/// One planned run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spec {
    setup: Setup,
    rate: Rate,
    packets: u64,
}

/// The configurations of a mode: per thread setting the ring reader, then
/// the sensor, all with the default ring; then the starved ring.
fn configs(quick: bool) -> Vec<Setup> {
    let threads: &[u32] = if quick { &[1] } else { &[1, 0] };
    let ring = RingSize::default_ring();
    threads
        .iter()
        .flat_map(|&threads| {
            [System::RingRead, System::Sensor].map(|system| Setup {
                system,
                threads,
                ring,
            })
        })
        .chain([Setup {
            system: System::Sensor,
            threads: 1,
            ring: SMALL_RING,
        }])
        .collect()
}

/// Whether `setup` runs at `rate`: everything at every rate, except the
/// starved ring in quick mode (top speed only).
fn runs_at(setup: &Setup, rate: Rate, quick: bool) -> bool {
    !quick || setup.ring.is_default() || rate == Rate::Top
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
                .filter(move |setup| runs_at(setup, rate, quick))
                .map(move |setup| Spec {
                    setup,
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
    let Setup {
        system,
        threads,
        ring,
    } = spec.setup;
    let capture = Capture::start(&pair.rx, programs, system, threads, ring)?;
    let replayed = replay::replay(&pair.tx, pcap, PCAP_PACKETS, spec.packets, spec.rate)?;
    // Let the last partly filled blocks retire (10 ms) and be read.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let captured = capture.stop()?;
    Ok((replayed, captured))
}

fn threads_label(t: u32) -> String {
    if t == 0 { "all".into() } else { t.to_string() }
}

/// `pdns-sensor threads 1`, with `, ring 4 × 64 KiB` when not the default.
fn setup_label(s: &Setup) -> String {
    let ring = if s.ring.is_default() {
        String::new()
    } else {
        format!(", ring {}", s.ring)
    };
    format!(
        "{} threads {}{ring}",
        s.system.name(),
        threads_label(s.threads)
    )
}

fn entry(setup: &Setup, label: &str) -> Entry {
    let mut e = Entry::new(NAME, setup.system.name());
    e.set_workload("label", label);
    e.set_workload("threads", setup.threads);
    e.set_workload("ring_bytes", setup.ring.bytes());
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
                "ring",
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
            for setup in &configs {
                if systems.contains(&setup.system) {
                    let mut e = entry(setup, &w.label);
                    e.notes.push(format!("not run: {why}"));
                    out.entries.push(e);
                }
            }
        };
        let both = [System::Sensor, System::RingRead];
        let missing: Vec<&str> = ["ip", "tcpreplay"]
            .into_iter()
            .filter(|t| !tools::have(t))
            .collect();
        if !tools::is_root() {
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
                for setup in &configs {
                    let mut e = entry(setup, &w.label);
                    e.notes
                        .push(format!("failed: setting up the veth pair: {err:#}"));
                    out.entries.push(e);
                }
                return Ok(out);
            }
        };
        let runs: Vec<Spec> = plan(ctx.quick)
            .into_iter()
            .filter(|s| s.setup.system == System::Sensor || programs.bench.is_some())
            .collect();
        let mut done: Vec<Done> = Vec::new();
        for spec in runs {
            eprint!(
                "live: {} at {} ({} packets) ... ",
                setup_label(&spec.setup),
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
            let mut e = entry(&s.setup, &w.label);
            e.set_workload("packets", s.packets);
            e.set_workload("rate", s.rate.value());
            let reference = done.iter().find(|o| {
                o.spec.setup.system == System::RingRead
                    && o.spec.setup.threads == s.setup.threads
                    && o.spec.rate == s.rate
            });
            let vs_ring = match (s.setup.system, reference) {
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
                        s.setup.system.name().into(),
                        threads_label(s.setup.threads),
                        s.setup.ring.to_string(),
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

        for setup in configs {
            let mine: Vec<&Done> = done.iter().filter(|d| d.spec.setup == setup).collect();
            // No summary without a single successful run: the failures
            // are in the run entries.
            if !mine.iter().any(|d| d.ok().is_some()) {
                continue;
            }
            let max = |v: Vec<f64>| v.into_iter().reduce(f64::max);
            let best = max(mine.iter().filter_map(|d| d.drop_free_pps()).collect());
            let offered = max(mine.iter().filter_map(|d| d.ok()?.0.pps).collect());
            let mut e = entry(&setup, "summary");
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
            e.notes.push(format!("{}: {words}", setup_label(&setup)));
            out.table.row(vec![
                setup.system.name().into(),
                threads_label(setup.threads),
                setup.ring.to_string(),
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
        assert_eq!(quick.len(), 5);
        assert!(
            quick
                .iter()
                .all(|s| s.setup.threads == 1 && s.packets == 100_000)
        );
        assert_eq!(quick[0].setup.system, System::RingRead);
        assert_eq!(quick[3].rate, Rate::Top);
        // The starved ring: top speed only, and last.
        let small: Vec<&Spec> = quick
            .iter()
            .filter(|s| !s.setup.ring.is_default())
            .collect();
        assert_eq!(small.len(), 1);
        assert_eq!(small[0].rate, Rate::Top);
        assert_eq!(small[0].setup.system, System::Sensor);
        assert_eq!(quick[4], *small[0]);
        let full = plan(false);
        assert_eq!(full.len(), 5 * 5);
        assert!(
            full.iter()
                .any(|s| s.setup.threads == 0 && s.setup.system == System::RingRead)
        );
        let small = full.iter().filter(|s| s.setup.ring == SMALL_RING);
        assert_eq!(small.clone().count(), 5);
        assert!(small.clone().all(|s| s.setup.threads == 1));
        assert!(SMALL_RING.bytes() < default_ring_bytes());
        assert_eq!(
            setup_label(&full[4].setup),
            "pdns-sensor threads 1, ring 4 × 64 KiB"
        );
        assert_eq!(setup_label(&full[3].setup), "pdns-sensor threads all");
        let e = entry(&full[4].setup, "summary");
        assert_eq!(e.workload["ring_bytes"], serde_json::json!(262_144));
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
                    report: None,
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
