//! Many sensors, one history, through faults: a ClickHouse cluster of two
//! shards of two replicas (Debian's 18.16 and ZooKeeper, started here),
//! three sensors exporting at once while one node is killed and restarted
//! and one sensor is killed mid-run. In the end the central totals equal
//! the sum of the sensors' local stores exactly — nothing lost, nothing
//! counted twice — and `serve --clickhouse` answers dnsdbq.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::clickhouse::{Cluster, Totals, central, merge};
use pdns_sensor::store::{Filter, Selector, Store};
use pdns_sensor::vocab::key;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// Records and negative answers of a local store, by store key.
fn local(db: &Path) -> (Totals, Totals) {
    let store = Store::open_reader(db).unwrap();
    let filter = Filter::default();
    let mut records = Totals::new();
    for r in store.records(&Selector::All, &filter) {
        let r = r.unwrap();
        let mut k = Vec::new();
        key::record_key(&mut k, &r.owner, r.rtype, &r.rdata);
        records.insert(k, r.value);
    }
    let mut negatives = Totals::new();
    for n in store.negatives(&Selector::All, &filter) {
        let n = n.unwrap();
        let mut k = Vec::new();
        key::negative_key(&mut k, &n.qname, n.qtype, n.rcode);
        negatives.insert(k, n.value);
    }
    (records, negatives)
}

/// Equal, or a panic that says how they differ.
fn assert_same(central: &Totals, local: &Totals, what: &str) {
    if central == local {
        return;
    }
    let sum = |t: &Totals| t.values().map(|v| v.count).sum::<u64>();
    let differing: Vec<String> = local
        .iter()
        .filter(|(k, v)| central.get(*k) != Some(v))
        .take(5)
        .map(|(k, v)| format!("{k:?}: local {v:?}, central {:?}", central.get(k)))
        .collect();
    panic!(
        "{what}: {} keys / {} sightings centrally, {} / {} locally; {} only centrally; e.g.\n{}",
        central.len(),
        sum(central),
        local.len(),
        sum(local),
        central.keys().filter(|k| !local.contains_key(*k)).count(),
        differing.join("\n")
    );
}

/// Packets of the Ethernet captures in `testdata/pcap` (classic pcap,
/// microseconds, little-endian): `(ts_sec, ts_usec, data)`.
fn packets() -> Vec<(u32, u32, Vec<u8>)> {
    let mut out = Vec::new();
    for file in common::all_pcaps() {
        let bytes = std::fs::read(&file).unwrap();
        if bytes.len() < 24
            || bytes[..4] != [0xd4, 0xc3, 0xb2, 0xa1]
            || bytes[20..24] != [1, 0, 0, 0]
        {
            continue;
        }
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let u = |i: usize| u32::from_le_bytes(bytes[at + i..at + i + 4].try_into().unwrap());
            let (sec, usec, len) = (u(0), u(4), u(8) as usize);
            if at + 16 + len > bytes.len() {
                break;
            }
            out.push((sec, usec, bytes[at + 16..at + 16 + len].to_vec()));
            at += 16 + len;
        }
    }
    assert!(out.len() > 1000, "{} packets", out.len());
    out
}

/// Writes `rounds` copies of the packets into a FIFO as one pcap stream,
/// each round an hour later than the one before, pausing between rounds;
/// stops quietly when the reader goes away.
fn feed(fifo: PathBuf, packets: Vec<(u32, u32, Vec<u8>)>, rounds: u32, shift: u32) {
    let Ok(mut out) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
        return;
    };
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    if out.write_all(&header).is_err() {
        return;
    }
    for round in 0..rounds {
        let mut chunk = Vec::new();
        for (sec, usec, data) in &packets {
            chunk.extend_from_slice(&(sec + shift + round * 3600).to_le_bytes());
            chunk.extend_from_slice(&usec.to_le_bytes());
            chunk.extend_from_slice(&(data.len() as u32).to_le_bytes());
            chunk.extend_from_slice(&(data.len() as u32).to_le_bytes());
            chunk.extend_from_slice(data);
        }
        if out.write_all(&chunk).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(80));
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo(3) only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

struct Sensor {
    fifo: PathBuf,
    child: Child,
    feeder: std::thread::JoinHandle<()>,
}

/// Starts `ingest` of a fed FIFO into `db` (files of the run in `dir`).
impl Sensor {
    /// A sensor killed before it opened its FIFO leaves the feeder blocked
    /// in `open`: open the reading end once, so it gets through and finds
    /// no reader.
    fn unblock_feeder(&self) {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.fifo);
    }
}

fn start_sensor(
    dir: &Path,
    db: &Path,
    id: usize,
    url: &str,
    packets: &[(u32, u32, Vec<u8>)],
) -> Sensor {
    let fifo = dir.join(format!("feed-{id}.pcap"));
    mkfifo(&fifo);
    let db = db.to_path_buf();
    let child = common::sensor_command()
        .args(["ingest", "--quiet", "--db"])
        .arg(&db)
        .args([
            "--export-clickhouse",
            url,
            "--sensor-id",
            &format!("sensor-{id}"),
            "--flush-interval",
            "1",
            "--aggregate-entries",
            "300",
            "--export-drain-timeout",
            "120",
            "--stats-json",
        ])
        .arg(dir.join(format!("sensor-{id}.json")))
        .arg(&fifo)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("sensor-{id}.log"))).unwrap())
        .spawn()
        .unwrap();
    let packets = packets.to_vec();
    let path = fifo.clone();
    let feeder = std::thread::spawn(move || feed(path, packets, 30, 86_400 * 30 * id as u32));
    Sensor {
        fifo,
        child,
        feeder,
    }
}

#[test]
fn three_sensors_through_node_and_sensor_crashes_add_up_exactly() {
    let mut cluster = Cluster::start();
    let url = |node: usize| {
        format!(
            "http://pdns:s3cret@127.0.0.1:{}/pdns",
            cluster.nodes[node].http_port
        )
    };
    let schema = common::sensor_command()
        .args([
            "clickhouse-schema",
            "--cluster",
            "pdns",
            "--replicated",
            "--apply",
            &url(0),
        ])
        .output()
        .unwrap();
    assert!(
        schema.status.success(),
        "{}\nnode 0: {}\nzookeeper: {}",
        text(&schema.stderr),
        cluster.nodes[0].logs(),
        cluster.zookeeper.log()
    );
    let dir = tempfile::tempdir().unwrap();
    let packets = packets();
    let urls: Vec<String> = (0..3).map(url).collect();
    let mut sensors: Vec<Sensor> = (0..3)
        .map(|i| {
            let db = dir.path().join(format!("sensor-{i}"));
            start_sensor(dir.path(), &db, i, &urls[i], &packets)
        })
        .collect();

    // Node 1 (shard 1, replica 2; sensor 1 exports through it) dies
    // mid-run and comes back.
    std::thread::sleep(Duration::from_millis(1200));
    cluster.nodes[1].kill();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.nodes[1].resume();
    // Sensor 2 dies mid-run; what it stored is in its spool.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(sensors[2].child.id() as i32, libc::SIGKILL) };

    let deadline = Instant::now() + Duration::from_secs(180);
    for (i, s) in sensors.iter_mut().enumerate() {
        loop {
            if let Some(status) = s.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.path().join(format!("sensor-{i}.log")))
                    .unwrap_or_default();
                assert!(i == 2 || status.success(), "sensor {i}: {status}\n{log}");
                break;
            }
            assert!(Instant::now() < deadline, "sensor {i} did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for s in sensors {
        s.unblock_feeder();
        let _ = s.feeder.join();
    }
    // Sensor 1 met the dead node, and retried until it came back.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sensor-1.json")).unwrap())
            .unwrap();
    assert!(
        report["export"]["failures"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["export"]["remaining"]["entries"], 0, "{report}");
    // The killed sensor's spool goes out with `export`.
    let killed = dir.path().join("sensor-2");
    let summary = dir.path().join("export.json");
    ok(&common::sensor_command()
        .args(["export", "--db"])
        .arg(&killed)
        .args(["--export-clickhouse", &urls[2], "--stats-json"])
        .arg(&summary)
        .output()
        .unwrap());
    let sent: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert!(sent["sent_batches"].as_u64().unwrap() > 0, "{sent}");

    let (mut records, mut negatives) = (Totals::new(), Totals::new());
    for i in 0..3 {
        let (r, n) = local(&dir.path().join(format!("sensor-{i}")));
        assert!(!r.is_empty(), "sensor {i} stored nothing");
        merge(&mut records, &r);
        merge(&mut negatives, &n);
    }
    // Replication is asynchronous: every replica converges to the sum.
    for node in 0..4 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = central(&cluster.nodes[node], "pdns_records", "key");
            if got == records {
                break;
            }
            let summed: u64 = got.values().map(|v| v.count).sum();
            let want: u64 = records.values().map(|v| v.count).sum();
            assert!(
                summed <= want,
                "node {node}: {summed} sightings centrally, {want} locally: counted twice"
            );
            assert!(
                Instant::now() < deadline,
                "node {node}: {} of {} keys, {summed} of {want} sightings",
                got.len(),
                records.len()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(
            central(&cluster.nodes[node], "pdns_negative", "key"),
            negatives,
            "node {node}"
        );
    }

    // Analysts ask the cluster with their usual tool.
    let serve = common::process::ServeProcess::start(
        &dir.path().join("unused"),
        &["--clickhouse", &urls[1]],
    );
    let (k, v) = records
        .iter()
        .max_by_key(|(_, v)| v.count)
        .expect("records");
    let record = key::parse_record_key(k).unwrap();
    let owner = pdns_sensor::vocab::name::presentation(record.owner);
    let out = Command::new("dnsdbq")
        .args(["-j", "-r", &format!("{owner}/{}", record.rtype)])
        .env("DNSDB_SERVER", format!("http://127.0.0.1:{}", serve.port))
        .env("DNSDB_API_KEY", "unused")
        .output()
        .unwrap();
    let stdout = ok(&out).clone() + &text(&out.stdout);
    let rdata = pdns_sensor::vocab::render::rdata(record.rtype, record.rdata);
    let line = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|j| {
            j["rdata"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == rdata.as_str()))
        })
        .unwrap_or_else(|| panic!("{owner} {rdata} not in\n{stdout}"));
    assert_eq!(line["count"], v.count, "{line}");
}

#[test]
fn a_sensor_killed_at_any_moment_loses_nothing_and_counts_nothing_twice() {
    // One node with replicated tables: what de-duplicates a retried batch
    // on 18.16.
    let cluster = Cluster::with(1, 1);
    let url = format!(
        "http://pdns:s3cret@127.0.0.1:{}/pdns",
        cluster.nodes[0].http_port
    );
    ok(&common::sensor_command()
        .args(["clickhouse-schema", "--replicated", "--apply", &url])
        .output()
        .unwrap());
    let dir = tempfile::tempdir().unwrap();
    let packets = packets();
    let db = dir.path().join("sensor-0");
    // Killed at a different moment each time (opening, reading, flushing,
    // exporting, draining); the next run resumes the spool and adds more.
    for (round, delay_ms) in [150u64, 400, 700, 1000, 1300, 1700, 250, 900]
        .into_iter()
        .enumerate()
    {
        let run_dir = dir.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut sensor = start_sensor(&run_dir, &db, 0, &url, &packets);
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(sensor.child.id() as i32, libc::SIGKILL) };
        let _ = sensor.child.wait();
        sensor.unblock_feeder();
        let _ = sensor.feeder.join();
    }
    ok(&common::sensor_command()
        .args(["export", "--db"])
        .arg(&db)
        .args(["--export-clickhouse", &url])
        .output()
        .unwrap());
    let (records, negatives) = local(&db);
    assert!(!records.is_empty());
    assert_same(
        &central(&cluster.nodes[0], "pdns_records", "key"),
        &records,
        "records",
    );
    assert_same(
        &central(&cluster.nodes[0], "pdns_negative", "key"),
        &negatives,
        "negatives",
    );
}
