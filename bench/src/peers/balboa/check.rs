//! The count check: for the owner name with the most lines, balboa's
//! records (count, first and last second) must equal the lines fed and,
//! when the whole capture was fed, the sensor's store of the same pcap.
//! Without it a fast ingest figure could be one of records lost or merged.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::feed::{Checked, Feed, Probe, trim};
use super::graphql::{Records, Seen, balboa_records, balboa_type, sorted};
use super::http::NsHttp;
use super::procs::Balboa;
use super::wait_until;

/// Extra time for the checked name's counts to settle.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits (up to [`CHECK_TIMEOUT`]) until balboa's records for the checked
/// name equal the fed lines, compares them with `ours` (the sensor's, when
/// the whole capture was fed) and says in words what was verified.
pub(super) fn check(
    balboa: &Balboa,
    http: &NsHttp,
    feed: &Feed,
    checked: &Checked,
    probe: &Probe,
    ours: Option<&Records>,
) -> Result<String> {
    let fed_records = &checked.records;
    let mut balboa_now = HashMap::new();
    let settle = Instant::now();
    let settled = wait_until(CHECK_TIMEOUT, "", || {
        balboa.alive()?;
        balboa_now = balboa_records(http, &checked.owner)?;
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
    match ours {
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
    Ok(check)
}

/// The sensor's records for `owner`, from `pdns-sensor dump --json`.
pub(super) fn sensor_records(sensor: &Path, db: &Path, owner: &str) -> Result<Records> {
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
        let seen = Seen {
            count: u("count")?,
            first: u("time_first")?,
            last: u("time_last")?,
        };
        records.entry(key).or_insert(Seen::NONE).merge(seen);
    }
    Ok(records)
}
