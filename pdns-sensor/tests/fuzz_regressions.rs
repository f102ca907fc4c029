//! Replays the fuzz targets' inputs on stable: every committed seed
//! (`fuzz/seeds/<target>/`) and every minimised crash
//! (`fuzz/regressions/<target>/`) goes through the same
//! `pdns_sensor::fuzzing` function the fuzzer ran, so a fixed crash that
//! comes back fails plain `cargo test` (no nightly, no libFuzzer).
//!
//! `PDNS_FUZZ_CORPUS=DIR` replays a whole corpus as well (`DIR/<target>/`,
//! e.g. `target/fuzz-corpus` after `cargo xtask fuzz`).

use std::path::{Path, PathBuf};

/// A target's entry point.
type Target = fn(&[u8]);

/// The targets, by the name of their directory.
const TARGETS: [(&str, Target); 6] = [
    ("decode_frames", pdns_sensor::fuzzing::decode_frames),
    ("extract_message", pdns_sensor::fuzzing::extract_message),
    ("pcap_reader", pdns_sensor::fuzzing::pcap_reader),
    ("zeek_log", pdns_sensor::fuzzing::zeek_log),
    ("dnstap_stream", pdns_sensor::fuzzing::dnstap_stream),
    ("api_params", pdns_sensor::fuzzing::api_params),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs every file of `root/<target>/` through its target; returns how
/// many ran.
fn replay(root: &Path) -> usize {
    let mut ran = 0;
    for (target, run) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", path.display());
            ran += 1;
        }
    }
    ran
}

#[test]
fn seeds_pass() {
    assert!(replay(&fuzz_dir().join("seeds")) > 0, "no seeds committed");
}

#[test]
fn regressions_stay_fixed() {
    replay(&fuzz_dir().join("regressions"));
}

#[test]
fn corpus_passes() {
    if let Some(dir) = std::env::var_os("PDNS_FUZZ_CORPUS") {
        replay(Path::new(&dir));
    }
}
