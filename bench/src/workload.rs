//! Named workloads and the on-disk cache of their generated pcaps.
//!
//! Large workloads take seconds to generate and gigabytes to store, so each
//! is generated once into the cache directory under a key derived from all
//! of its parameters, and reused (with its manifest) on later runs.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::r#gen::{Config, ManifestFile, Summary, generate_file};
use crate::progress;

/// A workload: generation parameters plus a short human label.
#[derive(Clone, Debug)]
pub struct Workload {
    pub label: String,
    pub cfg: Config,
    /// The sweep of the benchmark this workload is a point of ("names",
    /// "clients", …), if any; not part of the cache key.
    pub sweep: Option<&'static str>,
}

impl Workload {
    pub fn new(label: &str, cfg: Config) -> Self {
        Workload {
            label: label.into(),
            cfg,
            sweep: None,
        }
    }
}

/// A generated workload file and its ground truth.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub workload: Workload,
    pub pcap: PathBuf,
    pub summary: Summary,
}

/// Returns the cached pcap for `w`, generating it first if needed.
pub fn prepare(cache_dir: &Path, w: &Workload) -> Result<Prepared> {
    fs::create_dir_all(cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
    let key = w.cfg.cache_key();
    let pcap = cache_dir.join(format!("{key}.pcap"));
    let manifest = cache_dir.join(format!("{key}.json"));
    if let Some(summary) = cached(&pcap, &manifest, &w.cfg) {
        return Ok(Prepared {
            workload: w.clone(),
            pcap,
            summary,
        });
    }
    let tmp = cache_dir.join(format!("{key}.pcap.tmp"));
    let tmp_manifest = cache_dir.join(format!("{key}.json.tmp"));
    eprintln!(
        "generating workload {} ({} packets) into {}",
        w.label,
        w.cfg.packets,
        pcap.display()
    );
    let bar = progress::packet_bar(w.cfg.packets, &w.label);
    let summary = generate_file(
        &w.cfg,
        &tmp,
        Some(&tmp_manifest),
        &mut progress::callback(&bar),
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    fs::rename(&tmp, &pcap)?;
    fs::rename(&tmp_manifest, &manifest)?;
    Ok(Prepared {
        workload: w.clone(),
        pcap,
        summary,
    })
}

/// The cached summary when both files exist and agree with `cfg`.
fn cached(pcap: &Path, manifest: &Path, cfg: &Config) -> Option<Summary> {
    let m: ManifestFile = serde_json::from_str(&fs::read_to_string(manifest).ok()?).ok()?;
    let len = fs::metadata(pcap).ok()?.len();
    (m.params == *cfg && m.summary.bytes == len).then_some(m.summary)
}

/// Removes the cached files for `w` (used by tests).
pub fn evict(cache_dir: &Path, w: &Workload) -> Result<()> {
    let key = w.cfg.cache_key();
    for ext in ["pcap", "json"] {
        let p = cache_dir.join(format!("{key}.{ext}"));
        if p.exists() {
            fs::remove_file(&p)?;
        }
    }
    ensure!(!cache_dir.join(format!("{key}.pcap")).exists());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let w = Workload::new(
            "tiny",
            Config {
                packets: 1000,
                ..Config::default()
            },
        );
        let a = prepare(dir.path(), &w).unwrap();
        let mtime = fs::metadata(&a.pcap).unwrap().modified().unwrap();
        let b = prepare(dir.path(), &w).unwrap();
        assert_eq!(a.pcap, b.pcap);
        assert_eq!(a.summary, b.summary);
        assert_eq!(fs::metadata(&b.pcap).unwrap().modified().unwrap(), mtime);
        let other = Workload::new(
            "tiny",
            Config {
                seed: 9,
                ..w.cfg.clone()
            },
        );
        assert_ne!(prepare(dir.path(), &other).unwrap().pcap, a.pcap);
        evict(dir.path(), &w).unwrap();
        assert!(!a.pcap.exists());
    }
}
