//! Writes the fuzz targets' seed corpora from the test data:
//! `fuzz_seeds TESTDATA OUT` fills `OUT/<target>/` (one file per input,
//! named by a hash of its content) from the captures under
//! `TESTDATA/pcap` and the Zeek logs under `TESTDATA/zeek-dnslog`.
//!
//! `cargo xtask fuzz` runs it into `target/fuzz-corpus/` before fuzzing:
//! the corpora are derived, not committed (a handful of them are, under
//! `pdns-sensor/fuzz/seeds/`, for `tests/fuzz_regressions.rs`).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pdns_sensor::fuzzing::capture_seeds;

/// Frames per `decode_frames` seed: enough for a TCP exchange or a
/// fragment train, few enough for the fuzzer to mutate them meaningfully.
const WINDOW: usize = 8;
/// Capture files larger than this are cut for `pcap_reader` (the reader's
/// every path shows within the first blocks).
const MAX_PCAP_SEED: usize = 64 * 1024;

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [testdata, out] = args.as_slice() else {
        anyhow::bail!("usage: fuzz_seeds TESTDATA OUT");
    };
    let mut written = 0;
    for path in files(&testdata.join("pcap"))? {
        let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
        let seeds = capture_seeds(&bytes, WINDOW);
        for frames in &seeds.frames {
            written += write(out, "decode_frames", frames)?;
        }
        for message in &seeds.messages {
            written += write(out, "extract_message", message)?;
        }
        written += write(out, "dnstap_stream", &seeds.dnstap)?;
        written += write(out, "pcap_reader", &bytes[..bytes.len().min(MAX_PCAP_SEED)])?;
    }
    for path in files(&testdata.join("zeek-dnslog"))? {
        let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
        written += write(out, "zeek_log", &bytes)?;
    }
    println!("{written} seeds in {}", out.display());
    Ok(())
}

/// Every file below `dir`, sorted.
fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(files(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Writes one seed unless an identical one exists; returns how many it
/// wrote.
fn write(out: &Path, target: &str, data: &[u8]) -> Result<usize> {
    let mut hasher = DefaultHasher::new();
    data.hash(&mut hasher);
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{:016x}", hasher.finish()));
    if path.exists() {
        return Ok(0);
    }
    std::fs::write(&path, data).with_context(|| path.display().to_string())?;
    Ok(1)
}
