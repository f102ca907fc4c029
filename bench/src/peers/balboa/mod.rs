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
//!
//! One job per file: [`feed`] writes the lines and streams them into the
//! socket, [`procs`] starts, watches and stops balboa's processes,
//! [`graphql`] asks balboa and reads its answers, [`check`] compares the
//! counts, [`lookup`] runs wrk on both sides, [`http`] carries the
//! requests (from inside the namespace: [`crate::netns`]); this file is
//! the API and the order of the steps.

mod check;
mod feed;
mod graphql;
mod http;
mod lookup;
mod procs;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::child::dir_bytes;
use crate::netns::Netns;
use crate::tools;
use crate::wrk::WrkResult;
use feed::Feed;
use graphql::balboa_records;
use http::NsHttp;
use procs::Balboa;

/// Backend and frontend ports inside the private namespace.
const BACKEND_PORT: u16 = 4242;
const FRONTEND_PORT: u16 = 8080;
/// From the last line sent until the last record must be queryable.
const INGEST_TIMEOUT: Duration = Duration::from_secs(600);

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
        if !tools::have(tool) {
            return Some(format!("{tool} not on PATH ({hint}; cargo xtask setup)"));
        }
    }
    if !tools::is_root() {
        return Some("needs root for a private network namespace".into());
    }
    None
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
    pub balboa_lookup: WrkResult,
    /// wrk -t1 -c1 GET /dnsdb/v2/lookup/rrset/name/{name} against
    /// `pdns-sensor serve` with the same names.
    pub sensor_lookup: WrkResult,
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
    let feed = Feed::write(pcap, &dir.join("feed.gamelinux"), max_observations)?;
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
        Some(check::sensor_records(sensor, our_db, &checked.owner)?)
    } else {
        None
    };

    // balboa, in its own network namespace.
    let ns = Netns::new("balboa")?;
    let http = NsHttp::new(&ns)?;
    let db_dir = dir.join("rocksdb");
    let balboa = Balboa::start(&ns, &http, dir, &db_dir)?;

    // Ingest: stream the lines, then poll until the last one counts.
    let started = Instant::now();
    feed.send(&balboa.socket)?;
    let fed_at = Instant::now();
    wait_until(
        INGEST_TIMEOUT,
        &format!(
            "balboa to count the last fed record ({} {} {}) {} times",
            probe.owner, probe.rtype, probe.rdata, probe.count
        ),
        || {
            balboa.alive()?;
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
    let mut check = check::check(&balboa, &http, &feed, &checked, &probe, ours.as_ref())?;

    // Lookups on balboa, its peak RSS, a clean stop, its database's size.
    let balboa_lookup = lookup::balboa(&ns, &http, &names, lookup_secs, dir)?;
    balboa.alive()?;
    let peak_rss_mib = balboa.peak_rss_mib();
    drop(http);
    balboa.stop();
    drop(ns);
    let db_dir_bytes = dir_bytes(&db_dir);

    // The same names against the sensor.
    let sensor_lookup = lookup::sensor(sensor, our_db, &names, lookup_secs, dir)?;
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
        balboa_lookup,
        sensor_lookup,
        check,
    })
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
