//! The `bench run` harness against a stand-in sensor: a shell script,
//! written into a temp dir by the test, that accepts the `ingest` command
//! line and writes a stats.json made from the sensor's own report type.
//! Checks the results files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bench::r#gen::Config;
use bench::report::{Entry, SENSOR};
use bench::scenario::ingest::{Ingest, RAW_READ};
use bench::scenario::{Ctx, Scenario, run_scenarios};
use bench::workload::Workload;
use pdns_sensor::report::IngestReport;

fn stub(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("pdns-sensor");
    let script = format!(
        r#"#!/bin/sh
[ "$1" = ingest ] || exit 2
shift
while [ $# -gt 1 ]; do
  case "$1" in
    --db) db=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    --compact) shift;;
    --stats-json) stats=$2; shift 2;;
    *) echo "unknown flag $1" >&2; exit 2;;
  esac
done
[ -d "$db" ] && [ -f "$1" ] || exit 3
{body}
"#
    );
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn tiny() -> Vec<Workload> {
    ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Workload::new(
                l,
                Config {
                    packets: 2_000,
                    names: 100 * (i as u64 + 1),
                    ..Config::default()
                },
            )
        })
        .collect()
}

fn run(sensor: PathBuf, root: &Path) -> (Vec<Entry>, String) {
    let ctx = Ctx {
        sensor,
        quick: true,
        cache_dir: root.join("cache"),
        results_dir: root.join("results"),
        soak: Default::default(),
    };
    let scenarios: Vec<Box<dyn Scenario>> = vec![Box::new(Ingest {
        workloads: Some(tiny()),
        threads: Some(vec![1, 0]),
        tunnelled: Some(false),
        nod_off: Some(false),
    })];
    let results = root.join("results");
    run_scenarios(&scenarios, &ctx, &results).unwrap();
    let json = fs::read_to_string(results.join("latest.json")).unwrap();
    let md = fs::read_to_string(results.join("latest.md")).unwrap();
    (
        serde_json::from_str(&json).expect("well-formed latest.json"),
        md,
    )
}

#[test]
fn stub_sensor_results_are_complete() {
    let root = tempfile::tempdir().unwrap();
    let mut report = IngestReport {
        files: 1,
        elapsed_secs: 0.01,
        db_bytes: 4096,
        db_records: 512,
        ..IngestReport::default()
    };
    report.totals.packets = 2000;
    report.totals.dns_responses = 990;
    report.totals.observations = 1200;
    report.totals.drops.insert("not_dns_port".into(), 3);
    let json = serde_json::to_string(&report).unwrap();
    let sensor = stub(
        root.path(),
        &format!(
            r#"head -c 4096 /dev/zero > "$db/data.sst"
echo '{json}' > "$stats""#
        ),
    );
    let (entries, md) = run(sensor, root.path());
    // Per workload: one raw-read baseline and one sensor run per thread setting.
    assert_eq!(entries.len(), 6);
    let mut keys: Vec<_> = entries.iter().map(Entry::key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 6, "one entry per scenario+system+workload");
    assert_eq!(entries.iter().filter(|e| e.system == RAW_READ).count(), 2);
    for e in entries.iter().filter(|e| e.system == SENSOR) {
        assert_eq!(e.scenario, "ingest");
        assert!(e.notes.is_empty(), "{:?}", e.notes);
        assert_eq!(e.figure("packets_per_sec"), Some(200_000.0));
        assert_eq!(e.figure("observations_per_sec"), Some(120_000.0));
        assert_eq!(e.figure("bytes_per_record"), Some(8.0));
        assert_eq!(e.figure("db_dir_bytes"), Some(4096.0));
        assert_eq!(e.figure("sensor.drops.not_dns_port"), Some(3.0));
        assert!(e.figure("peak_rss_mib").unwrap() > 0.0);
        assert!(e.ratios.contains_key("packets_per_sec_vs_raw_read"));
        assert!(e.workload.contains_key("threads"));
    }
    assert!(md.contains("| workload |") && md.contains("CPU:"));
    let dated: Vec<_> = fs::read_dir(root.path().join("results"))
        .unwrap()
        .flatten()
        .map(|d| d.file_name().into_string().unwrap())
        .filter(|n| n.ends_with("-ingest.json"))
        .collect();
    assert_eq!(dated.len(), 1);
}

#[test]
fn failing_or_partial_sensor_is_reported_not_fatal() {
    let root = tempfile::tempdir().unwrap();
    let sensor = stub(
        root.path(),
        r#"if [ "$threads" = 0 ]; then echo "ingest not implemented" >&2; exit 1; fi
echo '{"packets": 2000}' > "$stats""#,
    );
    let (entries, md) = run(sensor, root.path());
    let sensor_entries: Vec<_> = entries.iter().filter(|e| e.system == SENSOR).collect();
    assert_eq!(sensor_entries.len(), 4);
    for e in sensor_entries {
        if e.workload["threads"] == 0 {
            assert!(e.failed());
            assert!(e.notes.iter().any(|n| n.contains("not implemented")));
        } else {
            assert!(!e.failed());
            assert!(e.notes.iter().any(|n| n.contains("does not parse")));
            assert_eq!(e.figure("packets"), None);
            assert_eq!(e.figure("packets_per_sec"), None);
            assert!(e.figure("packets_per_sec_wall").is_some());
        }
    }
    assert!(md.contains("FAILED"));
}
