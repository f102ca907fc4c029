//! The lookup benchmark on both sides with the same names: `wrk -t1 -c1`
//! POSTing GraphQL `entries(rrname)` to balboa (inside its namespace) and
//! GETting `/dnsdb/v2/lookup/rrset/name/{name}` (every type, like balboa's
//! query) from `pdns-sensor serve` on the sensor's store. Every name is
//! asked once first on each side: none may answer empty (a latency of
//! empty answers means nothing), and both sides go into wrk equally warm.

use std::path::Path;

use anyhow::{Context, Result, ensure};

use super::FRONTEND_PORT;
use super::graphql::{balboa_records, graphql_body};
use super::http::{NsHttp, http_request};
use crate::netns::Netns;
use crate::sensor::serve;
use crate::wrk::{WrkResult, wrk, wrk_post};

/// balboa's lookup latency over `names` for `secs` seconds.
pub(super) fn balboa(
    ns: &Netns,
    http: &NsHttp,
    names: &[String],
    secs: u64,
    dir: &Path,
) -> Result<WrkResult> {
    let bodies: Vec<String> = names.iter().map(|n| graphql_body(n)).collect();
    for n in names {
        ensure!(
            !balboa_records(http, n)?.is_empty(),
            "balboa has no entries for {n}; its lookup latency would be of empty answers"
        );
    }
    wrk_post(
        FRONTEND_PORT,
        "/query",
        "application/json",
        &bodies,
        secs,
        dir,
        Some(ns.name()),
    )
    .context("wrk against balboa")
}

/// The sensor's lookup latency over `names` for `secs` seconds, served
/// from `db`.
pub(super) fn sensor(
    sensor: &Path,
    db: &Path,
    names: &[String],
    secs: u64,
    dir: &Path,
) -> Result<WrkResult> {
    let (_server, port) = serve(sensor, db)?;
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
    wrk(port, &paths, secs, dir).context("wrk against pdns-sensor")
}
