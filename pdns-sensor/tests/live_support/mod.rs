//! Helpers for the live-capture tests (`live_*.rs`).
//!
//! Every test is hermetic: it makes its own network namespaces (unique
//! names), veth pairs between them and addresses from 192.0.2.0/24 and
//! 2001:db8::/32 (documentation ranges) or loopback inside them, so no
//! packet leaves the machine. Everything it starts or creates is held by a
//! guard whose `Drop` kills or deletes it, so a failing assertion still
//! cleans up. Every wait is bounded.
//!
//! These tests need root and Debian tools (`ip`, `tcpreplay`, `dnsmasq`,
//! `dig`, `ping`, `tcpdump`; `cargo xtask setup` installs them). Without
//! them they fail loudly: a skipped capture test would hide a broken
//! sensor.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub(crate) mod pcap;

pub(crate) const SENSOR: &str = env!("CARGO_BIN_EXE_pdns-sensor");

/// Fails the test unless it runs as root with every tool it needs.
pub(crate) fn require(tools: &[&str]) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap();
    assert_eq!(
        euid, "0",
        "live-capture tests need root (network namespaces, AF_PACKET, eBPF); run them as root"
    );
    for tool in tools {
        assert!(
            which(tool).is_some(),
            "live-capture tests need `{tool}`: run `cargo xtask setup` (installs dnsmasq-base, dnsutils, \
             tcpreplay, tcpdump, iproute2, iputils-ping)"
        );
    }
}

pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Runs a command to completion within `timeout`, failing the test if it
/// fails or hangs. Returns stdout.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> String {
    let out = output(cmd, timeout);
    assert!(
        out.0.success(),
        "{cmd:?} failed ({}): {}{}",
        out.0,
        out.1,
        out.2
    );
    out.1
}

/// Runs a command within `timeout`; returns (status, stdout, stderr).
pub(crate) fn output(cmd: &mut Command, timeout: Duration) -> (ExitStatus, String, String) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let mut guard = Proc::new(child, &format!("{cmd:?}"));
    let mut stdout = guard.child.stdout.take().unwrap();
    let mut stderr = guard.child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let status = guard
        .wait_timeout(timeout)
        .unwrap_or_else(|| panic!("{cmd:?} did not finish within {timeout:?}"));
    (
        status,
        out_reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

/// A child process killed (SIGKILL) and reaped on drop.
pub(crate) struct Proc {
    pub child: Child,
    what: String,
    done: bool,
}

impl Proc {
    pub(crate) fn new(child: Child, what: &str) -> Proc {
        Proc {
            child,
            what: what.to_string(),
            done: false,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits at most `timeout` for the process to exit.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.done = true;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "signalling {}", self.what);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted on drop.
pub(crate) struct Netns {
    pub name: String,
}

impl Netns {
    pub(crate) fn new(tag: &str) -> Netns {
        let name = format!(
            "pdns-t{}-{}-{tag}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run(
            Command::new("ip").args(["netns", "add", &name]),
            Duration::from_secs(10),
        );
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command run inside the namespace.
    pub(crate) fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs a command inside the namespace (10 s at most); returns stdout.
    pub(crate) fn run(&self, argv: &[&str]) -> String {
        run(self.cmd(argv[0]).args(&argv[1..]), Duration::from_secs(10))
    }

    pub(crate) fn sysctl(&self, setting: &str) {
        self.run(&["sysctl", "-qw", setting]);
    }

    /// The MAC address of an interface inside the namespace.
    pub(crate) fn mac(&self, ifname: &str) -> [u8; 6] {
        let text = self.run(&["cat", &format!("/sys/class/net/{ifname}/address")]);
        let mut mac = [0u8; 6];
        for (i, part) in text.trim().split(':').enumerate() {
            mac[i] = u8::from_str_radix(part, 16).unwrap();
        }
        mac
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Two namespaces joined by a veth pair: `a`/`if_a` and `b`/`if_b`.
pub(crate) struct Link {
    pub a: Netns,
    pub b: Netns,
    pub if_a: &'static str,
    pub if_b: &'static str,
}

impl Link {
    /// A veth pair between two fresh namespaces. With `ipv6 = false` IPv6 is
    /// disabled in both, so no neighbour discovery or MLD traffic appears
    /// and packet counts are exact.
    pub(crate) fn new(tag: &str, ipv6: bool) -> Link {
        let a = Netns::new(&format!("{tag}a"));
        let b = Netns::new(&format!("{tag}b"));
        if !ipv6 {
            for ns in [&a, &b] {
                ns.sysctl("net.ipv6.conf.all.disable_ipv6=1");
                ns.sysctl("net.ipv6.conf.default.disable_ipv6=1");
            }
        }
        let (if_a, if_b) = ("veth-a", "veth-b");
        run(
            Command::new("ip").args([
                "link", "add", if_a, "netns", &a.name, "type", "veth", "peer", "name", if_b,
                "netns", &b.name,
            ]),
            Duration::from_secs(10),
        );
        a.run(&[
            "ip",
            "link",
            "set",
            if_a,
            "address",
            "02:00:00:00:00:0a",
            "up",
        ]);
        b.run(&[
            "ip",
            "link",
            "set",
            if_b,
            "address",
            "02:00:00:00:00:0b",
            "up",
        ]);
        Link { a, b, if_a, if_b }
    }

    pub(crate) fn mac_a(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 0x0a]
    }

    pub(crate) fn mac_b(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 0x0b]
    }

    /// Generated DNS traffic (`pairs` query/response pairs over `names`
    /// names, see [`pcap::dns_traffic`]) addressed from `a` to `b`, written
    /// to `dir/replay.pcap`; returns the file and the expected counts.
    pub(crate) fn traffic_file(
        &self,
        dir: &Path,
        pairs: usize,
        names: usize,
    ) -> (PathBuf, Vec<(String, u64)>) {
        let (mut packets, expected) = pcap::dns_traffic(pairs, names);
        pcap::patch_macs(&mut packets, self.mac_a(), self.mac_b());
        let file = dir.join("replay.pcap");
        pcap::write(&file, &packets);
        (file, expected)
    }

    /// Replays a pcap from `a` into `b` at top speed (`tcpreplay -K -t`);
    /// returns tcpreplay's output.
    pub(crate) fn replay(&self, file: &Path, loops: u32) -> String {
        let (status, out, err) = output(
            self.a.cmd("tcpreplay").args([
                "-K",
                "--topspeed",
                "-l",
                &loops.to_string(),
                "-i",
                self.if_a,
                file.to_str().unwrap(),
            ]),
            Duration::from_secs(120),
        );
        assert!(status.success(), "tcpreplay failed: {out}{err}");
        out + &err
    }
}

/// A running `pdns-sensor run` and its stderr.
pub(crate) struct Sensor {
    pub proc: Proc,
    lines: Arc<Mutex<Vec<String>>>,
    ready: mpsc::Receiver<()>,
    pub db: PathBuf,
    pub stats: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a stopped sensor left behind.
pub(crate) struct Stopped {
    pub status: ExitStatus,
    pub stderr: String,
    pub stats: serde_json::Value,
    pub db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sensor {
    /// Starts `pdns-sensor run --db D --stats-json S ARGS` in `ns` and
    /// waits until it captures.
    pub(crate) fn start(ns: &Netns, args: &[&str]) -> Sensor {
        Sensor::start_wrapped(ns, &[], args)
    }

    /// Like [`Sensor::start`], with the sensor run through a wrapper
    /// command (e.g. `setpriv` to withhold capabilities).
    pub(crate) fn start_wrapped(ns: &Netns, wrapper: &[&str], args: &[&str]) -> Sensor {
        Sensor::start_owned(ns, None, wrapper, args)
    }

    /// Like [`Sensor::start_wrapped`], for a sensor the wrapper starts as
    /// an unprivileged user: its directory (database, stats) belongs to
    /// `owner` (uid, gid).
    pub(crate) fn start_owned(
        ns: &Netns,
        owner: Option<(u32, u32)>,
        wrapper: &[&str],
        args: &[&str],
    ) -> Sensor {
        Sensor::launch(ns, owner, wrapper, args, None)
    }

    /// Like [`Sensor::start`], over the database at `db` (which outlives
    /// the sensor: a restart after a crash opens it again).
    pub(crate) fn start_at(ns: &Netns, db: &Path, args: &[&str]) -> Sensor {
        Sensor::launch(ns, None, &[], args, Some(db.to_path_buf()))
    }

    fn launch(
        ns: &Netns,
        owner: Option<(u32, u32)>,
        wrapper: &[&str],
        args: &[&str],
        db: Option<PathBuf>,
    ) -> Sensor {
        let dir = tempfile::tempdir().unwrap();
        // Traversable by an unprivileged --user.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let db = db.unwrap_or_else(|| dir.path().join("db"));
        let stats = dir.path().join("stats.json");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = ns.cmd(program);
                c.args(rest).arg(SENSOR);
                c
            }
            None => ns.cmd(SENSOR),
        };
        let child = cmd
            .arg("run")
            .arg("--db")
            .arg(&db)
            .arg("--stats-json")
            .arg(&stats)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("PDNS_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut proc = Proc::new(child, "pdns-sensor run");
        let stderr = proc.child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, ready) = mpsc::channel();
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("capturing DNS on") {
                        let _ = tx.send(());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let sensor = Sensor {
            proc,
            lines,
            ready,
            db,
            stats,
            _dir: dir,
        };
        if sensor.ready.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("pdns-sensor did not start capturing:\n{}", sensor.stderr());
        }
        sensor
    }

    pub(crate) fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits (30 s at most) for a clean exit.
    pub(crate) fn stop(mut self) -> Stopped {
        self.proc.signal(libc::SIGTERM);
        let status = self
            .proc
            .wait_timeout(Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!("pdns-sensor did not exit after SIGTERM:\n{}", self.stderr())
            });
        // Let the reader thread see EOF.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !self.stderr().contains("captured for") {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stderr = self.stderr();
        assert!(status.success(), "pdns-sensor failed ({status}):\n{stderr}");
        let stats = serde_json::from_str(
            &std::fs::read_to_string(&self.stats)
                .unwrap_or_else(|e| panic!("no stats JSON ({e}):\n{stderr}")),
        )
        .unwrap();
        Stopped {
            status,
            stderr,
            stats,
            db: self.db.clone(),
            _dir: self._dir,
        }
    }
}

/// `(rrname, rrtype, rdata) -> (count, ttl)` for every stored record.
pub(crate) type Records = BTreeMap<(String, String, String), (u64, u64)>;

/// Reads every record with `pdns-sensor dump --json`.
pub(crate) fn dump(db: &Path) -> Records {
    let text = run(
        Command::new(SENSOR).args(["dump", "--json", "--db", db.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                (
                    v["rrname"].as_str().unwrap().to_string(),
                    v["rrtype"].as_str().unwrap().to_string(),
                    v["rdata"][0].as_str().unwrap().to_string(),
                ),
                (v["count"].as_u64().unwrap(), v["ttl"].as_u64().unwrap()),
            )
        })
        .collect()
}

/// `(qname, qtype, rcode) -> count` from `dump --negative --json`.
pub(crate) fn dump_negative(db: &Path) -> BTreeMap<(String, String, String), u64> {
    let text = run(
        Command::new(SENSOR).args(["dump", "--negative", "--json", "--db", db.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                (
                    v["rrname"].as_str().unwrap().to_string(),
                    v["rrtype"].as_str().unwrap().to_string(),
                    v["rcode"].as_str().unwrap().to_string(),
                ),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Counts only (TTL differences aside).
pub(crate) fn counts(r: &Records) -> BTreeMap<(String, String, String), u64> {
    r.iter().map(|(k, v)| (k.clone(), v.0)).collect()
}

/// Ingests files into a fresh database (the file decoder as reference).
pub(crate) fn ingest(files: &[&Path]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut cmd = Command::new(SENSOR);
    cmd.args([
        "ingest",
        "--quiet",
        "--threads",
        "1",
        "--db",
        db.to_str().unwrap(),
    ]);
    cmd.args(files);
    run(&mut cmd, Duration::from_secs(120));
    (dir, db)
}

/// `tcpdump -r FILE EXPR | wc -l`: an independent count of matching packets.
pub(crate) fn tcpdump_count(file: &Path, expr: &str) -> u64 {
    let out = run(
        Command::new("tcpdump").args(["-nn", "-r", file.to_str().unwrap(), expr]),
        Duration::from_secs(60),
    );
    out.lines().count() as u64
}

/// A number in the stats JSON.
pub(crate) fn num(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v:#}"))
}

/// The repository's `testdata/pcap/REL`, which must exist.
pub(crate) fn capture(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/pcap")
        .join(rel);
    assert!(p.exists(), "missing capture {}", p.display());
    p
}

/// The fanout program's hash of an IPv4 address pair
/// (`pdns_common::fanout::address_pair_hash`, which the program calls), and
/// so the ring of `rings` a flow between `a` and `b` goes to when it goes by
/// addresses.
pub(crate) fn ring_of_addresses(a: [u8; 4], b: [u8; 4], rings: u32) -> u32 {
    pdns_common::fanout::address_pair_hash(u32::from_be_bytes(a), u32::from_be_bytes(b)) % rings
}
