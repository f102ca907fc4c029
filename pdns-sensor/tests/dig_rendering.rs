//! Rdata text equals dig's, record for record, for answers from a real
//! authoritative server.
//!
//! NSD (Debian) serves `testdata/zones/rendering.zone`: every type BIND
//! 9.18 has a text form for, with awkward values (escapes, empty strings,
//! a full 255-byte TXT string, raw UTF-8, IDN labels, mixed case, generic
//! `\#` data for types NSD cannot parse). The test reads the (owner, type) pairs of the
//! zone file, then asks `dig` for every (owner, type) through a small UDP relay
//! in this process that records the server's answers into a pcap. The
//! sensor ingests that pcap, and for every record dig printed the sensor's
//! text must be the same bytes, on `dump --json` and on the DNSDB API.
//!
//! Owner names are compared without case (the sensor stores names
//! lowercased) and so is the one CNAME target written in mixed case (rdata
//! names are stored in canonical, lowercased form); everything else must
//! match exactly, TXT case included.
//!
//! Needs `nsd` and `dig` (installed by `cargo xtask setup`); fails loudly
//! without them.

mod common;
#[path = "live_support/pcap.rs"]
#[allow(dead_code)]
mod pcap;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ZONE: &str = "render.test";

/// A server in the foreground on loopback, killed (with the processes it
/// forks) when dropped.
struct Daemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // NSD forks xfrd and a server child into its process group.
        unsafe {
            // SAFETY: plain kill(2) of the process group we made NSD lead.
            libc::kill(-(self.child.id() as i32), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe {
            // SAFETY: as above.
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Starts `program args…` in its own process group and waits until it
/// answers `probe` (a name and type) with something containing `expect`.
fn spawn(
    program: &str,
    args: &[&str],
    dir: tempfile::TempDir,
    port: u16,
    probe: [&str; 2],
    expect: &str,
) -> Daemon {
    use std::os::unix::process::CommandExt;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (`cargo xtask setup` installs it)"));
    let mut daemon = Daemon { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if dig(port, &[probe[0], probe[1], "+short"]).contains(expect) {
            return daemon;
        }
        let log = std::fs::read_to_string(daemon.dir.path().join("log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline && daemon.child.try_wait().unwrap().is_none(),
            "{program} did not start: {log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// NSD serving the rendering zone.
fn start_nsd() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let zone = common::testdata().join("zones/rendering.zone");
    std::fs::copy(&zone, dir.path().join("zone")).unwrap();
    let port = common::free_port();
    let d = dir.path().display();
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
         zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
         zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/log\"\n  verbosity: 1\n  server-count: 1\n\
         remote-control:\n  control-enable: no\n\
         zone:\n  name: {ZONE}\n  zonefile: zone\n"
    );
    let conf_path = dir.path().join("nsd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let conf_path = conf_path.display().to_string();
    spawn(
        "nsd",
        &["-d", "-c", &conf_path],
        dir,
        port,
        [ZONE, "SOA"],
        "2024010101",
    )
}

/// Records NSD cannot answer for, served as Unbound local data: NSEC3
/// (NSD keeps NSEC3 records in a tree of their own, so their owners do not
/// exist for queries) and a CNAME target in mixed case (NSD lowercases
/// names in rdata). Owners of NSEC3 records must look like hashes, or dig
/// refuses the answer.
const LOCAL_DATA: &[&str] = &[
    "2vptu5timamqttgl4luu9kg21e0aor3s.render.test. 300 IN NSEC3 1 1 10 AABBCCDD 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG",
    "2vptu5timamqttgl4luu9kg21e0aor3s.render.test. 300 IN NSEC3 1 0 0 - 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom",
    "b4um86eghhds6nea196smvmlo4ors995.render.test. 300 IN NSEC3 1 0 65535 FFFF b4um86eghhds6nea196smvmlo4ors995 NS SOA RRSIG DNSKEY NSEC3PARAM TYPE65534",
    "upper.render.test. 300 IN CNAME Target.MiXeD.Test.",
];

/// Unbound answering [`LOCAL_DATA`] from a static local zone.
fn start_unbound() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let d = dir.path().display();
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
         directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"{d}/log\"\n  \
         do-daemonize: no\n  access-control: 127.0.0.0/8 allow\n  local-zone: \"{ZONE}.\" static\n"
    );
    for data in LOCAL_DATA {
        conf.push_str(&format!("  local-data: \"{data}\"\n"));
    }
    conf.push_str("remote-control:\n  control-enable: no\n");
    let conf_path = dir.path().join("unbound.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let conf_path = conf_path.display().to_string();
    spawn(
        "unbound",
        &["-d", "-c", &conf_path],
        dir,
        port,
        ["upper.render.test", "CNAME"],
        "Target",
    )
}

fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .args(["+time=5", "+tries=2", "+norecurse", "+nocookie"])
        .args(args)
        .output()
        .expect("dig (Debian package bind9-dnsutils)");
    let text = String::from_utf8(out.stdout).expect("dig prints UTF-8");
    // dig parses the whole answer: a record it refuses would silently
    // leave the comparison short.
    assert!(
        !text.contains("bad packet") && !text.contains("malformed"),
        "dig {args:?} refused the answer:\n{text}"
    );
    text
}

/// `+noall +answer +nottlid +noclass` lines: owner, type, rdata. The rdata
/// is everything after the type and the blank that follows it.
fn answer_lines(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(|l| {
            let (owner, rest) = l.split_once(['\t', ' ']).unwrap();
            let rest = rest.trim_start_matches(['\t', ' ']);
            let (rtype, rdata) = rest.split_once(['\t', ' ']).unwrap_or((rest, ""));
            let rdata = rdata.trim_start_matches(['\t', ' ']);
            (owner.to_string(), rtype.to_string(), rdata.to_string())
        })
        .collect()
}

/// A UDP relay between dig and NSD that keeps every answer as an
/// Ethernet/IPv4/UDP frame.
struct Relay {
    port: u16,
    frames: Arc<Mutex<Vec<pcap::Packet>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(server: u16) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = front.local_addr().unwrap().port();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (frames.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let back = UdpSocket::bind("127.0.0.1:0").unwrap();
            back.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            back.connect(("127.0.0.1", server)).unwrap();
            let mut buf = vec![0u8; 65536];
            let mut ts = 1_700_000_000_000_000u64;
            while !s.load(Ordering::Relaxed) {
                let Ok((n, client)) = front.recv_from(&mut buf) else {
                    continue;
                };
                back.send(&buf[..n]).unwrap();
                let Ok(m) = back.recv(&mut buf) else {
                    continue;
                };
                ts += 1000;
                let SocketAddr::V4(c) = client else {
                    unreachable!()
                };
                f.lock().unwrap().push(pcap::Packet {
                    ts_usec: ts,
                    data: pcap::udp4([127, 0, 0, 1], c.ip().octets(), 53, c.port(), &buf[..m]),
                });
                front.send_to(&buf[..m], client).unwrap();
            }
        });
        Relay {
            port,
            frames,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<pcap::Packet> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.frames.lock().unwrap())
    }
}

/// Names the sensor stores in rdata in canonical (lowercase) form that the
/// zone writes in mixed case.
const FOLDED: &[(&str, &str)] = &[("upper.render.test.", "CNAME")];

/// The (owner, type) pairs of the rendering zone.
fn zone_rrsets() -> BTreeSet<(String, String)> {
    // (An AXFR would list them too, but dig checks owner names in
    // transfers and refuses this zone's odd ones.)
    let zone = std::fs::read_to_string(common::testdata().join("zones/rendering.zone")).unwrap();
    zone.lines()
        .filter(|l| !l.is_empty() && !l.starts_with([';', '$', ' ', '\t']))
        .map(|l| {
            let mut fields = l.split_whitespace();
            let owner = match fields.next().unwrap() {
                "@" => format!("{ZONE}."),
                o => format!("{o}.{ZONE}."),
            };
            (owner, fields.next().unwrap().to_string())
        })
        .collect()
}

/// Asks `server` for each RRset through a relay, as an analyst would, and
/// returns dig's records (owner lowercased) and the recorded answers.
fn ask(
    server: &Daemon,
    rrsets: &BTreeSet<(String, String)>,
) -> (BTreeSet<(String, String, String)>, Vec<pcap::Packet>) {
    let relay = Relay::start(server.port);
    let mut records = BTreeSet::new();
    let mut unanswered = Vec::new();
    for (owner, rtype) in rrsets {
        let lines = answer_lines(&dig(
            relay.port,
            &[
                "-q",
                owner,
                "-t",
                rtype,
                "+noall",
                "+answer",
                "+nottlid",
                "+noclass",
                "+bufsize=4096",
            ],
        ));
        if lines.is_empty() {
            unanswered.push(format!("{owner} {rtype}"));
        }
        for (o, t, d) in lines {
            // (The type may be written TYPEnnn in the zone and known to dig
            // by name.)
            assert_eq!(o.to_lowercase(), owner.to_lowercase());
            let folded = FOLDED.contains(&(o.to_lowercase().as_str(), t.as_str()));
            let d = if folded { d.to_lowercase() } else { d };
            records.insert((o.to_lowercase(), t, d));
        }
    }
    assert!(unanswered.is_empty(), "no answer for {unanswered:?}");
    let frames = relay.finish();
    assert_eq!(frames.len(), rrsets.len(), "one answer per question");
    (records, frames)
}

#[test]
fn every_rdata_renders_as_dig_prints_it() {
    let rrsets = zone_rrsets();
    assert!(
        rrsets.len() >= 110,
        "the zone lists only {} RRsets",
        rrsets.len()
    );
    let (mut expected, mut frames) = ask(&start_nsd(), &rrsets);
    let local: BTreeSet<(String, String)> = LOCAL_DATA
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[3].to_string())
        })
        .collect();
    let (more, more_frames) = ask(&start_unbound(), &local);
    assert!(more.iter().any(|(_, t, _)| t == "NSEC3"));
    expected.extend(more);
    assert!(
        expected.len() >= 130,
        "only {} records compared",
        expected.len()
    );
    frames.extend(more_frames);
    for (i, f) in frames.iter_mut().enumerate() {
        f.ts_usec = 1_700_000_000_000_000 + i as u64 * 1000;
    }
    let tmp = tempfile::tempdir().unwrap();
    let capture = tmp.path().join("answers.pcap");
    pcap::write(&capture, &frames);

    // The sensor, from the same answers.
    let db = tmp.path().join("db");
    common::process::client_ok(
        common::sensor_command()
            .arg("ingest")
            .arg("--db")
            .arg(&db)
            .arg(&capture),
    );
    let dumped = common::process::client_ok(
        common::sensor_command()
            .arg("dump")
            .arg("--db")
            .arg(&db)
            .arg("--json"),
    );
    let mut got: BTreeSet<(String, String, String)> = BTreeSet::new();
    for line in dumped.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let owner = v["rrname"].as_str().unwrap().to_string();
        let rtype = v["rrtype"].as_str().unwrap().to_string();
        for d in v["rdata"].as_array().unwrap() {
            got.insert((
                owner.clone(),
                rtype.clone(),
                d.as_str().unwrap().to_string(),
            ));
        }
    }
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "rendering differs from dig's\n  dig only ({}):\n    {}\n  sensor only ({}):\n    {}",
        missing.len(),
        missing
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join("\n    "),
        extra.len(),
        extra
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join("\n    ")
    );

    // A legal name beginning with `-` is a value, not a flag.
    let dash = common::process::client_ok(
        common::sensor_command()
            .args(["dump", "--json", "--db"])
            .arg(&db)
            .args(["--name", "-dash.render.test."]),
    );
    assert!(dash.contains("\"192.0.2.11\""), "{dash}");

    // The same text on the DNSDB surface: every RRset below the zone.
    let store = Arc::new(pdns_sensor::store::Store::open_reader(&db).unwrap());
    let server = common::serve(store, Default::default());
    let mut by_api: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rtype in ["ANY", "ANY-DNSSEC"] {
        let resp = common::get(
            server.addr,
            &format!("/dnsdb/v2/lookup/rrset/name/*.{ZONE}/{rtype}?limit=0"),
            &[("Accept", "application/x-ndjson")],
        );
        assert_eq!(resp.status, 200, "{}", resp.body);
        for line in resp.lines() {
            let Some(obj) = line.get("obj") else { continue };
            let key = (
                obj["rrname"].as_str().unwrap().to_string(),
                obj["rrtype"].as_str().unwrap().to_string(),
            );
            let set = by_api.entry(key).or_default();
            for d in obj["rdata"].as_array().unwrap() {
                set.insert(d.as_str().unwrap().to_string());
            }
        }
    }
    let mut by_dump: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (o, t, d) in &got {
        by_dump
            .entry((o.clone(), t.clone()))
            .or_default()
            .insert(d.clone());
    }
    assert_eq!(by_api, by_dump, "DNSDB and dump disagree");
}
