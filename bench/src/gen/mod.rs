//! Deterministic workload generator: realistic recursive-resolver traffic
//! written as a classic pcap.
//!
//! The benchmark and the sensor's end-to-end tests both need traffic whose
//! exact content is known, reproducible from a seed, and fast to produce at
//! tens of millions of packets. `generate` streams packets into any writer
//! in constant memory and returns a [`Summary`] whose counts are the ground
//! truth the sensor's store is compared against.

pub mod clients;
pub mod dns;
mod engine;
pub mod exchange;
pub mod manifest;
pub mod names;
pub mod packet;
pub mod pcap;
pub mod rng;
pub mod template;
pub mod tunnel;
pub mod zipf;

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

pub use manifest::{Counts, Manifest, ManifestFile, Summary};

/// Generation parameters; the same values always give the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub packets: u64,
    pub seed: u64,
    pub names: u64,
    pub zipf: f64,
    pub nxdomain: f64,
    pub tcp_share: f64,
    pub ipv6_share: f64,
    pub clients: u64,
    pub large_share: f64,
    pub water_torture: bool,
    pub start_time: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            packets: 100_000,
            seed: 1,
            names: 10_000,
            zipf: 1.0,
            nxdomain: 0.05,
            tcp_share: 0.0,
            ipv6_share: 0.2,
            clients: 1000,
            large_share: 0.01,
            water_torture: false,
            start_time: 1_700_000_000,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            (1..1 << 24).contains(&self.names),
            "--names must be in 1..16777216"
        );
        ensure!(
            (1..(1 << 24) - 512).contains(&self.clients),
            "--clients must be in 1..16776704"
        );
        ensure!(
            self.zipf >= 0.0 && self.zipf.is_finite(),
            "--zipf must be ≥ 0"
        );
        for (v, n) in [
            (self.nxdomain, "--nxdomain"),
            (self.tcp_share, "--tcp-share"),
            (self.ipv6_share, "--ipv6-share"),
            (self.large_share, "--large-share"),
        ] {
            ensure!((0.0..=1.0).contains(&v), "{n} must be a share in [0, 1]");
        }
        ensure!(
            self.nxdomain + self.large_share <= 1.0,
            "--nxdomain + --large-share exceeds 1"
        );
        Ok(())
    }

    /// Short stable key for caching generated files.
    pub fn cache_key(&self) -> String {
        let json = serde_json::to_string(self).expect("config serialises");
        let h = json.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        format!(
            "{}p-{}n-s{}{}-{h:016x}",
            self.packets,
            self.names,
            self.seed,
            if self.water_torture { "-wt" } else { "" }
        )
    }
}

/// Streams the workload for `cfg` into `sink`; `progress` is called with
/// the packet count every 65 536 packets.
pub fn generate<W: Write>(
    cfg: &Config,
    sink: W,
    progress: &mut dyn FnMut(u64),
) -> Result<(W, Summary)> {
    cfg.validate()?;
    engine::Engine::new(cfg, sink)?.run(progress)
}

/// Generates into `path` (and the manifest into `manifest`, if given).
pub fn generate_file(
    cfg: &Config,
    path: &Path,
    manifest: Option<&Path>,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let (_file, summary) = generate(cfg, file, progress)?;
    if let Some(m) = manifest {
        let doc = Manifest::new(path.display().to_string(), cfg, &summary);
        let json = serde_json::to_string_pretty(&doc)?;
        std::fs::write(m, json + "\n").with_context(|| format!("writing {}", m.display()))?;
    }
    Ok(summary)
}
