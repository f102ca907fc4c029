//! balboa (DCSO) with its RocksDB backend as a storage peer.
//!
//! balboa has no capture of its own, so it is fed what the sensor itself
//! extracts from the workload: [`super::gamelinux`] turns the pcap into one
//! passivedns line per positive observation with the sensor's library,
//! before any clock starts. Then, in a private network namespace (balboa's
//! GraphQL frontend binds every interface):
//!
//! 1. `balboa-rocksdb -d DIR -l 127.0.0.1 -p 4242` (the backend, Debian's
//!    defaults otherwise) and `balboa serve -H 127.0.0.1:4242 -f
//!    feeders.yaml -p 8080` with one `socket` feeder in `gamelinux` format;
//! 2. the lines are streamed into the feeder's unix socket as fast as
//!    balboa reads them, and GraphQL is polled until the last fed record
//!    shows its full count — *ingest time* runs from the first byte sent to
//!    that answer;
//! 3. for the owner name with the most lines, every record's count and
//!    first/last time in balboa must equal the fed lines and, when the
//!    whole capture was fed, the sensor's store (`pdns-sensor dump`);
//! 4. every lookup name (up to 1000 owners spread over the feed) is asked
//!    once — none may answer empty, and the caches are as warm as the
//!    sensor's will be — then `wrk -t1 -c1` POSTs GraphQL `entries(rrname:
//!    …)` rotating over them; peak RSS (VmHWM) of both processes; then both
//!    stop (SIGTERM) and the database directory is measured;
//! 5. `pdns-sensor serve` on the sensor's store of the same pcap answers
//!    `GET /dnsdb/v2/lookup/rrset/name/{name}` (every type, like balboa's
//!    query) for the same names: same one-pass check, same wrk.
//!
//! Every process is killed and the namespace deleted on the way out,
//! whatever happens; every wait is bounded.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::gamelinux;
use crate::sensor::serve;
use crate::wrk::{WrkResult, wrk, wrk_post};

/// Backend and frontend ports inside the private namespace.
const BACKEND_PORT: u16 = 4242;
const FRONTEND_PORT: u16 = 8080;
/// Most names the lookup benchmark rotates over.
const LOOKUP_NAMES: usize = 1000;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// From the last line sent until the last record must be queryable.
const INGEST_TIMEOUT: Duration = Duration::from_secs(600);
/// One write into the feeder socket (balboa stopped reading if exceeded).
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// Extra time for the checked name's counts to settle.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `RRType` enum of balboa 2.0.0's GraphQL schema. balboa stores
/// records of any type, but answers an entry of another type (HTTPS,
/// SVCB, `TYPE65280`, ...) with `rrtype: null` and a GraphQL error beside
/// the data (still HTTP 200).
const BALBOA_RRTYPES: [&str; 46] = [
    "A",
    "A6",
    "AAAA",
    "AFSDB",
    "ALIAS",
    "APL",
    "AXFR",
    "CAA",
    "CDNSKEY",
    "CDS",
    "CERT",
    "CNAME",
    "DHCID",
    "DLV",
    "DNAME",
    "DNSKEY",
    "DS",
    "HINFO",
    "HIP",
    "IPSECKEY",
    "IXFR",
    "KEY",
    "KX",
    "LOC",
    "MX",
    "NAPTR",
    "NS",
    "NSEC",
    "NSEC3",
    "NSEC3PARAM",
    "OPENPGPKEY",
    "OPT",
    "PTR",
    "RRSIG",
    "RP",
    "SIG",
    "SOA",
    "SPF",
    "SRV",
    "SSHFP",
    "TA",
    "TKEY",
    "TLSA",
    "TSIG",
    "TXT",
    "URI",
];

/// How a type appears in balboa's answers (`null` for types outside its
/// enum, shown as this marker).
const UNNAMED: &str = "(type unnamed by balboa)";

fn balboa_type(rtype: &str) -> &str {
    if BALBOA_RRTYPES.contains(&rtype) {
        rtype
    } else {
        UNNAMED
    }
}

/// None when balboa can run here; otherwise the reason.
pub fn missing() -> Option<String> {
    for (tool, hint) in [
        ("balboa", "apt install balboa balboa-backend-rocksdb"),
        (
            "balboa-rocksdb",
            "apt install balboa balboa-backend-rocksdb",
        ),
        ("wrk", "apt install wrk"),
        ("ip", "apt install iproute2"),
    ] {
        if !on_path(tool) {
            return Some(format!("{tool} not on PATH ({hint}; cargo xtask setup)"));
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for a private network namespace".into());
    }
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            fs::metadata(d.join(tool)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// Lookup latency as wrk measured it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub requests_per_sec: Option<f64>,
    pub errors: u64,
}

impl From<WrkResult> for Latency {
    fn from(r: WrkResult) -> Self {
        Latency {
            p50_ms: r.p50,
            p90_ms: r.p90,
            p99_ms: r.p99,
            requests_per_sec: r.rps,
            errors: r.errors,
        }
    }
}

/// What one balboa run measured.
#[derive(Clone, Debug, Default)]
pub struct BalboaRun {
    /// gamelinux lines sent.
    pub observations_fed: u64,
    /// First line sent → last fed record queryable via GraphQL.
    pub ingest_secs: f64,
    pub observations_per_sec: f64,
    /// Backend + frontend peak RSS (VmHWM), read just before stopping.
    pub peak_rss_mib: Option<f64>,
    /// balboa's RocksDB directory after a clean stop.
    pub db_dir_bytes: u64,
    pub names_queried: usize,
    /// wrk -t1 -c1 POST GraphQL `entries(rrname)` over the names.
    pub balboa_lookup: Latency,
    /// wrk -t1 -c1 GET /dnsdb/v2/lookup/rrset/name/{name} against
    /// `pdns-sensor serve` with the same names.
    pub sensor_lookup: Latency,
    /// What was verified.
    pub check: String,
}

/// Feeds balboa the positive observations of `pcap` (at most
/// `max_observations`), measures its ingest and lookups, and the sensor's
/// lookups on `our_db` (a store ingested from the same pcap) with the
/// same names. `work_dir` holds the lines, balboa's database and logs.
pub fn run(
    sensor: &Path,
    pcap: &Path,
    our_db: &Path,
    work_dir: &Path,
    max_observations: u64,
    lookup_secs: u64,
) -> Result<BalboaRun> {
    if let Some(why) = missing() {
        bail!("balboa cannot run here: {why}");
    }
    ensure!(max_observations > 0, "max_observations must be positive");
    fs::create_dir_all(work_dir)?;
    let work = tempfile::Builder::new()
        .prefix("balboa-")
        .tempdir_in(work_dir)
        .context("creating balboa work directory")?;
    let dir = work.path();

    // The feed, before any clock.
    let feed_path = dir.join("feed.gamelinux");
    let feed = Feed::write(pcap, &feed_path, max_observations)?;
    ensure!(
        feed.summary.observations > 0,
        "{} holds no positive DNS observations to feed",
        pcap.display()
    );
    let probe = feed.probe()?;
    let checked = feed.frequent()?;
    let names = feed.lookup_names();
    ensure!(!names.is_empty(), "no plain owner names to look up");
    let ours = if feed.summary.complete {
        Some(sensor_records(sensor, our_db, &checked.owner)?)
    } else {
        None
    };

    // balboa, in its own network namespace.
    let ns = Netns::new()?;
    let http = NsHttp::new(&ns.0)?;
    let db_dir = dir.join("rocksdb");
    let backend = Proc::spawn(
        ns.cmd("balboa-rocksdb").arg("-d").arg(&db_dir).args([
            "-l",
            "127.0.0.1",
            "-p",
            &BACKEND_PORT.to_string(),
        ]),
        "balboa-rocksdb",
        dir,
    )?;
    wait_until(READY_TIMEOUT, "balboa-rocksdb to listen", || {
        backend.alive()?;
        Ok(http.connects(BACKEND_PORT))
    })?;
    let socket = dir.join("feed.sock");
    let feeders = dir.join("feeders.yaml");
    fs::write(
        &feeders,
        format!(
            "feeder:\n    - name: bench\n      type: socket\n      path: {}\n      input_format: gamelinux\n",
            socket.display()
        ),
    )?;
    let frontend = Proc::spawn(
        ns.cmd("balboa")
            .args(["serve", "-H", &format!("127.0.0.1:{BACKEND_PORT}"), "-f"])
            .arg(&feeders)
            .arg("-l")
            .arg(dir.join("balboa.log"))
            .args(["-p", &FRONTEND_PORT.to_string()]),
        "balboa",
        dir,
    )?;
    let procs = [&backend, &frontend];
    let alive = || -> Result<()> {
        for p in procs {
            p.alive()?;
        }
        Ok(())
    };
    wait_until(READY_TIMEOUT, "balboa serve to listen", || {
        alive()?;
        Ok(socket.exists() && http.connects(FRONTEND_PORT))
    })?;

    // Ingest: stream the lines, then poll until the last one counts.
    let started = Instant::now();
    {
        let mut conn = UnixStream::connect(&socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        conn.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let mut lines = fs::File::open(&feed_path)?;
        std::io::copy(&mut lines, &mut conn).context("feeding balboa (did it stop reading?)")?;
        conn.flush()?;
    }
    let fed_at = Instant::now();
    wait_until(
        INGEST_TIMEOUT,
        &format!(
            "balboa to count the last fed record ({} {} {}) {} times",
            probe.owner, probe.rtype, probe.rdata, probe.count
        ),
        || {
            alive()?;
            let got = balboa_records(&http, &probe.owner)?;
            Ok(got
                .get(&(probe.rtype.clone(), probe.rdata.clone()))
                .is_some_and(|r| r.count >= probe.count))
        },
    )?;
    let done = Instant::now();
    let ingest_secs = (done - started).as_secs_f64();
    eprintln!(
        "balboa: {} observations sent in {:.1}s, the last one queryable {:.1}s later",
        feed.summary.observations,
        (fed_at - started).as_secs_f64(),
        (done - fed_at).as_secs_f64()
    );

    // The checked name: balboa = fed lines (= ours when all was fed).
    let fed_records = &checked.records;
    let mut balboa_now = HashMap::new();
    let settle = Instant::now();
    let settled = wait_until(CHECK_TIMEOUT, "", || {
        alive()?;
        balboa_now = balboa_records(&http, &checked.owner)?;
        Ok(&balboa_now == fed_records)
    });
    if settled.is_err() {
        bail!(
            "balboa's records for {} differ from the {} lines fed:\n balboa: {:?}\n fed: {:?}",
            checked.owner,
            checked.lines,
            sorted(&balboa_now),
            sorted(fed_records)
        );
    }
    let settle_note = match settle.elapsed().as_secs_f64() {
        s if s > 0.5 => format!(" (after another {s:.1}s)"),
        _ => String::new(),
    };
    let mut check = format!(
        "{}: balboa's {} record(s), counts summing to {}, equal the fed lines (count, first, last){settle_note}",
        checked.owner,
        fed_records.len(),
        checked.lines
    );
    match &ours {
        Some(ours) if ours == fed_records => check.push_str(" and pdns-sensor's store"),
        Some(ours) => bail!(
            "pdns-sensor's records for {} differ from the lines made from the same pcap:\n ours: {:?}\n fed: {:?}",
            checked.owner,
            sorted(ours),
            sorted(fed_records)
        ),
        None => check.push_str(&format!(
            "; not compared with pdns-sensor: feed capped at {} observations",
            feed.summary.observations
        )),
    }
    check.push_str(&format!(
        "; last fed record {} {} {} counted {}",
        probe.owner, probe.rtype, probe.rdata, probe.count
    ));
    if !feed.unnamed.is_empty() {
        let list: Vec<String> = feed
            .unnamed
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        check.push_str(&format!(
            "; fed lines of types balboa's GraphQL cannot name ({}) are stored but answered with rrtype null and an error (HTTP 200)",
            list.join(", ")
        ));
    }

    // Lookups on balboa.
    let bodies: Vec<String> = names.iter().map(|n| graphql_body(n)).collect();
    // Every name once: none answers empty (a latency of empty answers
    // means nothing), and both sides go into wrk with the same warm-up.
    for n in &names {
        ensure!(
            !balboa_records(&http, n)?.is_empty(),
            "balboa has no entries for {n}; its lookup latency would be of empty answers"
        );
    }
    let balboa_lookup = wrk_post(
        FRONTEND_PORT,
        "/query",
        "application/json",
        &bodies,
        lookup_secs,
        dir,
        Some(&ns.0),
    )
    .context("wrk against balboa")?;
    alive()?;
    let rss: Vec<Option<u64>> = procs.iter().map(|p| p.vm_hwm_kib()).collect();
    let peak_rss_mib = rss
        .iter()
        .copied()
        .sum::<Option<u64>>()
        .map(|k| k as f64 / 1024.0);
    drop(http);
    frontend.stop();
    backend.stop();
    drop(ns);
    let db_dir_bytes = dir_bytes(&db_dir);

    // The same names against the sensor.
    let (_server, port) = serve(sensor, our_db)?;
    let paths: Vec<String> = names
        .iter()
        .map(|n| format!("/dnsdb/v2/lookup/rrset/name/{n}"))
        .collect();
    for p in &paths {
        let (status, body) = http_request(port, "GET", p, None)?;
        ensure!(
            status == 200 && body.contains("\"obj\""),
            "pdns-sensor answered {p} with {status} and no record; its lookup latency would be of empty answers"
        );
    }
    let sensor_lookup = wrk(port, &paths, lookup_secs, dir).context("wrk against pdns-sensor")?;
    check.push_str(&format!(
        "; all {} lookup names answer non-empty on both sides",
        names.len()
    ));

    let observations_fed = feed.summary.observations;
    Ok(BalboaRun {
        observations_fed,
        ingest_secs,
        observations_per_sec: observations_fed as f64 / ingest_secs,
        peak_rss_mib,
        db_dir_bytes,
        names_queried: names.len(),
        balboa_lookup: balboa_lookup.into(),
        sensor_lookup: sensor_lookup.into(),
        check,
    })
}

/// A record of one owner as balboa keys it: (rrtype, rdata without the
/// trailing dot) → count, first and last second.
type Records = HashMap<(String, String), Seen>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    count: u64,
    first: u64,
    last: u64,
}

impl Seen {
    fn add(&mut self, ts: u64) {
        self.count += 1;
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
    }
}

fn sorted(r: &Records) -> Vec<(&(String, String), &Seen)> {
    let mut v: Vec<_> = r.iter().collect();
    v.sort();
    v
}

/// balboa strips every trailing dot from rrname and rdata.
fn trim(s: &str) -> &str {
    s.trim_end_matches('.')
}

/// Names both APIs take verbatim in a path or a GraphQL string.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The lines file and what is known about its content.
struct Feed {
    summary: gamelinux::Summary,
    path: PathBuf,
    /// Owner (trimmed) → lines, in first-seen order of owners.
    owners: Vec<String>,
    lines_per_owner: HashMap<String, u64>,
    /// Lines of types outside balboa's GraphQL enum, by type.
    unnamed: std::collections::BTreeMap<String, u64>,
}

/// The record the ingest poll waits for.
struct Probe {
    owner: String,
    rtype: String,
    rdata: String,
    /// Lines of that record in the whole feed.
    count: u64,
}

/// The name whose records are compared.
struct Checked {
    owner: String,
    lines: u64,
    records: Records,
}

impl Feed {
    fn write(pcap: &Path, path: &Path, max: u64) -> Result<Feed> {
        let mut out = BufWriter::new(
            fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        let mut owners = Vec::new();
        let mut lines_per_owner: HashMap<String, u64> = HashMap::new();
        let mut unnamed = std::collections::BTreeMap::new();
        let summary = gamelinux::observations(pcap, max, |o| {
            if balboa_type(o.rtype) == UNNAMED {
                *unnamed.entry(o.rtype.to_string()).or_default() += 1;
            }
            let owner = trim(o.owner);
            match lines_per_owner.get_mut(owner) {
                Some(n) => *n += 1,
                None => {
                    lines_per_owner.insert(owner.to_string(), 1);
                    owners.push(owner.to_string());
                }
            }
            writeln!(out, "{o}")
        })
        .with_context(|| format!("turning {} into gamelinux lines", pcap.display()))?;
        out.flush()?;
        Ok(Feed {
            summary,
            path: path.to_path_buf(),
            owners,
            lines_per_owner,
            unnamed,
        })
    }

    /// Scans the lines file, calling `f(owner, rtype, rdata, secs)` with
    /// balboa's trimmed names and its view of the type.
    fn scan(&self, mut f: impl FnMut(&str, &str, &str, u64)) -> Result<()> {
        let file = BufReader::new(fs::File::open(&self.path)?);
        for line in file.lines() {
            let line = line?;
            let Some(v) = gamelinux::fields(&line) else {
                bail!("malformed feed line {line:?}");
            };
            let secs = v[0].split('.').next().unwrap_or("").parse().unwrap_or(0);
            f(trim(v[4]), balboa_type(v[5]), trim(v[6]), secs);
        }
        Ok(())
    }

    /// The last fed record with a plain owner, and how often it was fed.
    fn probe(&self) -> Result<Probe> {
        let mut last: Option<(String, String, String)> = None;
        self.scan(|o, t, r, _| {
            if plain(o) {
                last = Some((o.to_string(), t.to_string(), r.to_string()));
            }
        })?;
        let (owner, rtype, rdata) = last.context("no fed record has a plain owner name")?;
        let mut count = 0;
        self.scan(|o, t, r, _| {
            count += u64::from(o == owner && t == rtype && r == rdata);
        })?;
        Ok(Probe {
            owner,
            rtype,
            rdata,
            count,
        })
    }

    /// The plain owner with the most lines (the first seen among equals)
    /// and its records as the lines give them.
    fn frequent(&self) -> Result<Checked> {
        let mut best: Option<(&str, u64)> = None;
        for o in self.owners.iter().filter(|o| plain(o)) {
            let n = self.lines_per_owner[o];
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((o, n));
            }
        }
        let (owner, lines) = best.context("no fed record has a plain owner name")?;
        let mut records = Records::new();
        self.scan(|o, t, r, secs| {
            if o == owner {
                records
                    .entry((t.to_string(), r.to_string()))
                    .or_insert(Seen {
                        count: 0,
                        first: u64::MAX,
                        last: 0,
                    })
                    .add(secs);
            }
        })?;
        Ok(Checked {
            owner: owner.to_string(),
            lines,
            records,
        })
    }

    /// Up to [`LOOKUP_NAMES`] plain owners spread evenly over the owners
    /// in first-seen order.
    fn lookup_names(&self) -> Vec<String> {
        let all: Vec<&String> = self.owners.iter().filter(|o| plain(o)).collect();
        let n = all.len().min(LOOKUP_NAMES);
        (0..n).map(|i| all[i * all.len() / n].clone()).collect()
    }
}

/// The sensor's records for `owner`, from `pdns-sensor dump --json`.
fn sensor_records(sensor: &Path, db: &Path, owner: &str) -> Result<Records> {
    let out = Command::new(sensor)
        .args(["dump", "--json", "--db"])
        .arg(db)
        .args(["--name", owner])
        .output()
        .context("running pdns-sensor dump")?;
    ensure!(
        out.status.success(),
        "pdns-sensor dump failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let mut records = Records::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).context("pdns-sensor dump --json line")?;
        let rdata = v["rdata"][0].as_str().context("dump rdata")?;
        let key = (
            balboa_type(v["rrtype"].as_str().context("dump rrtype")?).to_string(),
            trim(rdata).to_string(),
        );
        let u = |k: &str| v[k].as_u64().with_context(|| format!("dump {k}"));
        // Two unnamed types with the same rdata are one key, as in balboa's
        // answer: merge.
        let r = records.entry(key).or_insert(Seen {
            count: 0,
            first: u64::MAX,
            last: 0,
        });
        r.count += u("count")?;
        r.first = r.first.min(u("time_first")?);
        r.last = r.last.max(u("time_last")?);
    }
    Ok(records)
}

/// The POST body of a GraphQL `entries(rrname)` query.
fn graphql_body(rrname: &str) -> String {
    let name = serde_json::to_string(rrname).expect("string serialises");
    serde_json::json!({
        "query": format!(
            "{{ entries(rrname: {name}) {{ rrname rrtype rdata count time_first time_last }} }}"
        )
    })
    .to_string()
}

/// balboa's records for `owner` (every sensor ID).
fn balboa_records(http: &NsHttp, owner: &str) -> Result<Records> {
    let (status, body) =
        http.request(FRONTEND_PORT, "POST", "/query", Some(graphql_body(owner)))?;
    ensure!(status == 200, "balboa GraphQL answered {status}: {body}");
    parse_entries(owner, &body)
}

/// The records of `owner` in a GraphQL `entries` answer.
fn parse_entries(owner: &str, body: &str) -> Result<Records> {
    let v: Value = serde_json::from_str(body).context("balboa GraphQL answer")?;
    // Entries of a type outside balboa's enum come with `rrtype: null`
    // and one error each; any other error is a failure.
    let errors = v["errors"].as_array().map_or(&[][..], Vec::as_slice);
    if let Some(e) = errors.iter().find(|e| {
        !e["message"]
            .as_str()
            .is_some_and(|m| m.contains("Expected type RRType"))
    }) {
        bail!("balboa GraphQL error: {e}");
    }
    let entries = v["data"]["entries"]
        .as_array()
        .with_context(|| format!("no entries in balboa's answer {body}"))?;
    let mut records = Records::new();
    for e in entries {
        if e["rrname"].as_str() != Some(owner) {
            continue;
        }
        let s = |k: &str| {
            e[k].as_str()
                .map(str::to_string)
                .with_context(|| format!("balboa entry without {k}"))
        };
        let u = |k: &str| {
            e[k].as_u64()
                .with_context(|| format!("balboa entry without {k}"))
        };
        let seen = Seen {
            count: u("count")?,
            first: u("time_first")?,
            last: u("time_last")?,
        };
        let rtype = match &e["rrtype"] {
            Value::Null => UNNAMED.to_string(),
            _ => s("rrtype")?,
        };
        let r = records.entry((rtype, s("rdata")?)).or_insert(Seen {
            count: 0,
            first: u64::MAX,
            last: 0,
        });
        r.count += seen.count;
        r.first = r.first.min(seen.first);
        r.last = r.last.max(seen.last);
    }
    Ok(records)
}

/// Polls `ready` every 20 ms until it holds; an error from it ends the
/// wait at once.
fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {}s waiting for {what}", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (so the answer is never
/// chunked): status and body.
fn http_request(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed HTTP answer from port {port}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status from port {port}"))?;
    Ok((status, body.to_string()))
}

/// A named network namespace with loopback up, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Result<Netns> {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "pdns-bench-balboa-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns(name);
        run_ok(ns.cmd("ip").args(["link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// HTTP from a thread that has joined a network namespace (`setns` moves
/// only the calling thread), driven over channels.
struct NsHttp {
    tx: Option<mpsc::Sender<Req>>,
    rx: mpsc::Receiver<Result<(u16, String)>>,
    thread: Option<JoinHandle<()>>,
}

enum Req {
    Connect(u16),
    Http {
        port: u16,
        method: &'static str,
        path: &'static str,
        body: Option<String>,
    },
}

impl NsHttp {
    fn new(netns: &str) -> Result<NsHttp> {
        let file = fs::File::open(format!("/run/netns/{netns}"))
            .with_context(|| format!("opening network namespace {netns}"))?;
        let (tx, requests) = mpsc::channel::<Req>();
        let (answers, rx) = mpsc::channel();
        let (joined_tx, joined) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd; affects this thread only.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            let ok = r == 0;
            let _ = joined_tx.send(if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            });
            if !ok {
                return;
            }
            for req in requests {
                let answer = match req {
                    Req::Connect(port) => TcpStream::connect(("127.0.0.1", port))
                        .map(|_| (0, String::new()))
                        .map_err(anyhow::Error::from),
                    Req::Http {
                        port,
                        method,
                        path,
                        body,
                    } => http_request(port, method, path, body.as_deref()),
                };
                if answers.send(answer).is_err() {
                    return;
                }
            }
        });
        joined
            .recv()
            .context("namespace thread")?
            .context("joining the network namespace (setns)")?;
        Ok(NsHttp {
            tx: Some(tx),
            rx,
            thread: Some(thread),
        })
    }

    fn ask(&self, req: Req) -> Result<(u16, String)> {
        self.tx
            .as_ref()
            .expect("open until dropped")
            .send(req)
            .map_err(|_| anyhow::anyhow!("namespace thread gone"))?;
        self.rx.recv().context("namespace thread gone")?
    }

    fn connects(&self, port: u16) -> bool {
        self.ask(Req::Connect(port)).is_ok()
    }

    fn request(
        &self,
        port: u16,
        method: &'static str,
        path: &'static str,
        body: Option<String>,
    ) -> Result<(u16, String)> {
        self.ask(Req::Http {
            port,
            method,
            path,
            body,
        })
    }
}

impl Drop for NsHttp {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A child process (stdout and stderr to `NAME.out` in the work
/// directory): SIGTERM, then SIGKILL after 10 s, when stopped or dropped.
struct Proc {
    child: std::cell::RefCell<Child>,
    name: &'static str,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, name: &'static str, dir: &Path) -> Result<Proc> {
        let log = dir.join(format!("{name}.out"));
        let out = fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            child: std::cell::RefCell::new(child),
            name,
            log,
        })
    }

    /// An error (with the end of its output) if the process has exited.
    fn alive(&self) -> Result<()> {
        if let Some(status) = self.child.borrow_mut().try_wait()? {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{} exited ({status}): {}", self.name, tail.join("\n"));
        }
        Ok(())
    }

    /// Peak resident set (`VmHWM`), KiB. `ip netns exec` execs the program,
    /// so the child's PID is the program's.
    fn vm_hwm_kib(&self) -> Option<u64> {
        let pid = self.child.borrow().id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    fn stop(&self) {
        let mut child = self.child.borrow_mut();
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: signalling our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_body_is_json_with_a_quoted_name() {
        let b = graphql_body("www.example.com");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(
            v["query"],
            "{ entries(rrname: \"www.example.com\") { rrname rrtype rdata count time_first time_last } }"
        );
    }

    /// An answer of balboa 2.0.0 (captured) for a name with an A, an HTTPS
    /// and a TYPE65280 record.
    #[test]
    fn answers_with_unnamed_types_parse() {
        let body = r#"{"errors":[{"message":"Invalid value HTTPS.\nExpected type RRType, found HTTPS.","path":["entries",1,"rrtype"]},{"message":"Invalid value TYPE65280.\nExpected type RRType, found TYPE65280.","path":["entries",2,"rrtype"]}],"data":{"entries":[{"rrname":"www.example.com","rrtype":"A","rdata":"93.184.216.34","count":2,"time_first":1700000000,"time_last":1700000005},{"rrname":"www.example.com","rrtype":null,"rdata":"1 . alpn=h2","count":1,"time_first":1700000001,"time_last":1700000001},{"rrname":"www.example.com","rrtype":null,"rdata":"\\# 2 dead","count":1,"time_first":1700000001,"time_last":1700000001}]}}"#;
        let r = parse_entries("www.example.com", body).unwrap();
        let key = |t: &str, d: &str| (t.to_string(), d.to_string());
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[&key("A", "93.184.216.34")],
            Seen {
                count: 2,
                first: 1_700_000_000,
                last: 1_700_000_005
            }
        );
        assert_eq!(r[&key(UNNAMED, "1 . alpn=h2")].count, 1);
        assert_eq!(r[&key(UNNAMED, "\\# 2 dead")].count, 1);
        assert_eq!(balboa_type("HTTPS"), UNNAMED);
        assert_eq!(balboa_type("AAAA"), "AAAA");
        // Other errors fail.
        let bad = r#"{"errors":[{"message":"Cannot query field \"x\""}],"data":null}"#;
        assert!(parse_entries("www.example.com", bad).is_err());
        assert!(
            parse_entries("x", r#"{"data":{"entries":[]}}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn plain_names_and_trimming() {
        assert!(plain("www.example-1.com"));
        assert!(plain("_dmarc.example.com"));
        assert!(!plain(""));
        assert!(!plain("a b.com"));
        assert!(!plain("a\\.b.com"));
        assert_eq!(trim("x.cdn.test."), "x.cdn.test");
        assert_eq!(trim("10 mail.example."), "10 mail.example");
        assert_eq!(trim("192.0.2.1"), "192.0.2.1");
    }
}
