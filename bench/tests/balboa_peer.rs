//! balboa as a storage peer, end to end on a small generated workload:
//! the sensor ingests the pcap, balboa is fed the same observations, both
//! answer lookups for the same names. Needs root, balboa and wrk (`cargo
//! xtask setup`) and the sensor binary (`cargo build --release -p
//! pdns-sensor`); fails, never skips, without them.

use std::path::PathBuf;
use std::process::Command;

use bench::r#gen::Config;
use bench::peers::balboa;
use bench::workload::{Workload, prepare};

fn sensor_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("release/pdns-sensor");
    assert!(
        p.exists(),
        "{} missing: cargo build --release -p pdns-sensor",
        p.display()
    );
    p
}

#[test]
fn balboa_counts_what_we_count_and_both_answer_lookups() {
    if let Some(why) = balboa::missing() {
        panic!("balboa peer cannot run: {why}");
    }
    let sensor = sensor_binary();
    let dir = tempfile::tempdir().unwrap();
    let w = Workload::new(
        "balboa-tiny",
        Config {
            packets: 5_000,
            names: 300,
            ..Config::default()
        },
    );
    let p = prepare(&dir.path().join("cache"), &w).unwrap();
    let db = dir.path().join("ours");
    let out = Command::new(&sensor)
        .args(["ingest", "--quiet", "--db"])
        .arg(&db)
        .arg(&p.pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pdns-sensor ingest: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = balboa::run(
        &sensor,
        &p.pcap,
        &db,
        &dir.path().join("work"),
        1_000_000,
        1,
    )
    .unwrap();
    eprintln!("{r:#?}");
    // Every answered (non-NXDOMAIN) response gave at least one line.
    let answered = p.summary.responses - p.summary.nxdomain_responses;
    assert!(
        answered > 0 && r.observations_fed >= answered,
        "{} observations for {answered} answered responses",
        r.observations_fed
    );
    assert!(r.ingest_secs > 0.0 && r.observations_per_sec > 0.0);
    // The checked name's records agree with the sensor's store.
    assert!(r.check.contains("pdns-sensor's store"), "{}", r.check);
    assert!(r.names_queried > 0 && r.names_queried <= 1000);
    for (who, l) in [("balboa", &r.balboa_lookup), ("sensor", &r.sensor_lookup)] {
        assert!(l.p50.is_some_and(|v| v > 0.0), "{who}: {l:?}");
        assert!(l.p99.is_some(), "{who}: {l:?}");
        assert!(l.rps.is_some_and(|v| v > 0.0), "{who}: {l:?}");
        assert_eq!(l.errors, 0, "{who}: {l:?}");
    }
    assert!(
        r.peak_rss_mib.is_some_and(|m| m > 1.0),
        "{:?}",
        r.peak_rss_mib
    );
    assert!(r.db_dir_bytes > 0);
    // Nothing left behind: processes and the namespace are gone.
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let mine = format!("pdns-bench-balboa-{}-", std::process::id());
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&mine),
        "namespace left behind"
    );
    assert!(
        std::fs::read_dir(dir.path().join("work"))
            .unwrap()
            .next()
            .is_none(),
        "work directory left behind"
    );
}
