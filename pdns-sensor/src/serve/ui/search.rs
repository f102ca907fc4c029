//! `GET /ui/search`: the page's one search, answered as one JSON document.
//!
//! Parameters: `q` (what was typed, see [`super::query`]), `in` (`auto`,
//! `names`, `rdata`), `type` (a type mnemonic, `ANY` for everything but
//! DNSSEC, `ANY-DNSSEC`; empty for every type), `after` and `before`
//! (seen at or after / at or before: epoch seconds, a date or RFC 3339 —
//! a record matches when its first-to-last span meets that window), and
//! `limit` (rows; default [`DEFAULT_ROWS`], at most [`MAX_ROWS`] and the
//! caller's `results` quota).
//!
//! The answer: `{"query": {q, kind, description}, "rows": [...], "end":
//! "complete"|"limited"|"timeout", "message"}`. A row is a stored record
//! with every column the page shows — `rrname`, `rrtype`, `rdata`
//! (dig's text, as on every surface), `count`, `time_first`, `time_last`,
//! `ttl`, `origin` (the list of sources) — and `pivot`, the name or
//! address in its rdata a click searches next. Flex rdata searches answer
//! one row per (rdata, type) merged over owners, without owner, TTL or
//! origin, as DNSDB's Flex does.
//!
//! One document rather than a stream: the page needs the whole table to
//! sort, draw timelines on one axis and export, and [`MAX_ROWS`] bounds
//! it. Errors are the API's `{"error": ...}` with a 4xx status, worded
//! for the person at the page.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::auth::Caller;
use super::super::engine::{End, Fences};
use super::super::params::{self, parse_query};
use super::super::pattern::TypeFilter;
use super::super::{ApiError, SharedState};
use super::query::{Search, Side, Understood, interpret};
use crate::metrics;
use crate::store::flex::{RdataHit, Scan, ScanStats};
use crate::store::{Filter, StoredRecord};
use crate::vocab::Rtype;
use crate::vocab::name;
use crate::vocab::render;

/// Rows when the page does not ask for a number.
pub(super) const DEFAULT_ROWS: u64 = 1_000;
/// Most rows one page answer holds (a browser table, not a bulk export:
/// the DNSDB API streams more).
pub(super) const MAX_ROWS: u64 = 10_000;

/// `GET /ui/search`
pub(super) async fn search(
    State(state): State<SharedState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match super::super::admit_any(&state, &headers) {
        Ok(caller) => caller,
        Err(r) => return *r,
    };
    match inner(state, &caller, &uri).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A time parameter: epoch seconds, a date or RFC 3339.
fn time_param(
    params: &std::collections::HashMap<String, String>,
    key: &str,
) -> Result<Option<u64>, ApiError> {
    match params.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => crate::vocab::time::parse(v)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{key}: {e}"))),
    }
}

async fn inner(state: SharedState, caller: &Caller, uri: &Uri) -> Result<Response, ApiError> {
    let params = parse_query(uri.query());
    let q = params.get("q").cloned().unwrap_or_default();
    let side =
        Side::parse(params.get("in").map_or("", String::as_str)).map_err(ApiError::bad_request)?;
    let rtype = match params.get("type").map_or("", |t| t.trim()) {
        "" => TypeFilter::All,
        t => TypeFilter::parse(t).map_err(ApiError::bad_request)?,
    };
    let after = time_param(&params, "after")?;
    let before = time_param(&params, "before")?;
    if let (Some(a), Some(b)) = (after, before)
        && a > b
    {
        return Err(ApiError::bad_request(
            "the \"seen after\" time is later than the \"seen before\" time",
        ));
    }
    let fences = Fences {
        last_after: after,
        first_before: before,
        ..Fences::default()
    };
    let limit = params::unsigned(&params, "limit")?
        .unwrap_or(DEFAULT_ROWS)
        .clamp(1, MAX_ROWS)
        .min(caller.results_max(&state.config).max(1));
    let (search, understood) = interpret(&q, side, rtype).map_err(ApiError::bad_request)?;
    if !matches!(search, Search::Lookup(_)) && state.backend.store().is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "regex and glob searches need the local database; this sensor reads ClickHouse",
        ));
    }
    let deadline = Instant::now() + state.config.query_timeout;
    let answer =
        tokio::task::spawn_blocking(move || run(&state, &search, rtype, fences, limit, deadline))
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the search failed"))?;
    let (rows, end) = answer;
    let (end, message) = match end {
        End::Complete => ("complete", String::new()),
        End::Limited => (
            "limited",
            format!("only the first {limit} rows are shown: narrow the search"),
        ),
        End::TimedOut => (
            "timeout",
            "the search took too long and was cut short: narrow it".to_string(),
        ),
        End::Failed(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the database could not be read: {e}"),
            ));
        }
    };
    let Understood { kind, description } = understood;
    let answer = json!({
        "query": {"q": q.trim(), "kind": kind, "description": description},
        "rows": rows,
        "end": end,
        "message": message,
    });
    Ok(super::json(&answer))
}

fn filter(rtype: TypeFilter, fences: Fences) -> Filter {
    Filter {
        rtype: rtype.exact(),
        first_after: fences.first_after,
        first_before: fences.first_before,
        last_after: fences.last_after,
        last_before: fences.last_before,
        // Flex scans keep their own deadline.
        deadline: None,
    }
}

/// Runs a search to at most `limit` rows.
fn run(
    state: &SharedState,
    search: &Search,
    rtype: TypeFilter,
    fences: Fences,
    limit: u64,
    deadline: Instant,
) -> (Vec<Value>, End) {
    let mut rows = Vec::new();
    match search {
        Search::Lookup(lookup) => {
            // One more than shown tells "limited" from "exactly full".
            let end = lookup.run(&state.backend, fences, 0, limit + 1, deadline, |r| {
                rows.push(record_row(r));
                true
            });
            if rows.len() as u64 > limit {
                rows.truncate(limit as usize);
                return (rows, End::Limited);
            }
            (
                rows,
                if end == End::Limited {
                    End::Complete
                } else {
                    end
                },
            )
        }
        Search::FlexNames(pattern) => {
            let Some(store) = state.backend.store() else {
                return (rows, End::Failed("no local database".into()));
            };
            let mut stats = ScanStats::default();
            let mut more = false;
            let scan = store.flex_owner_records(
                pattern,
                None,
                &filter(rtype, fences),
                Some(deadline),
                &mut stats,
                |r| {
                    if !rtype.matches(r.rtype) {
                        return true;
                    }
                    if rows.len() as u64 == limit {
                        more = true;
                        return false;
                    }
                    rows.push(record_row(r));
                    true
                },
            );
            let end = scan_end(scan, more);
            metrics::publish_flex_query(pattern.syntax().as_str(), "rrnames", outcome(&end), stats);
            (rows, end)
        }
        Search::FlexRdata(pattern) => {
            let Some(store) = state.backend.store() else {
                return (rows, End::Failed("no local database".into()));
            };
            let mut stats = ScanStats::default();
            let cap = usize::try_from(limit + 1).unwrap_or(usize::MAX);
            let result = store.flex_rdata(
                pattern,
                None,
                &filter(rtype, fences),
                |t| rtype.matches(t),
                cap,
                Some(deadline),
                &mut stats,
            );
            let end = match result {
                Ok((hits, scan)) => {
                    let more = hits.len() as u64 > limit;
                    rows.extend(hits.iter().take(limit as usize).map(rdata_row));
                    scan_end(Ok(scan), more)
                }
                Err(e) => End::Failed(e.to_string()),
            };
            metrics::publish_flex_query(pattern.syntax().as_str(), "rdata", outcome(&end), stats);
            (rows, end)
        }
    }
}

fn scan_end(scan: Result<Scan, crate::store::StoreError>, more: bool) -> End {
    match scan {
        Err(e) => End::Failed(e.to_string()),
        Ok(Scan::TimedOut) => End::TimedOut,
        Ok(_) if more => End::Limited,
        Ok(_) => End::Complete,
    }
}

fn outcome(end: &End) -> &'static str {
    match end {
        End::Complete => "complete",
        End::Limited => "limited",
        End::TimedOut => "timeout",
        End::Failed(_) => "failed",
    }
}

/// A stored record with every column the page shows.
pub(super) fn record_row(r: &StoredRecord) -> Value {
    let rdata = render::rdata(r.rtype, &r.rdata);
    json!({
        "rrname": name::presentation(&r.owner),
        "rrtype": render::rtype_name(r.rtype),
        "rdata": rdata,
        "count": r.value.count,
        "time_first": r.value.first,
        "time_last": r.value.last,
        "ttl": r.value.ttl,
        "origin": r.value.origin.names(),
        "pivot": pivot(r.rtype, &rdata),
    })
}

/// A Flex rdata result: merged over owners, so no owner, TTL or origin.
fn rdata_row(h: &RdataHit) -> Value {
    json!({
        "rrname": Value::Null,
        "rrtype": render::rtype_name(h.rtype),
        "rdata": h.text,
        "count": h.count,
        "time_first": h.first,
        "time_last": h.last,
        "ttl": Value::Null,
        "origin": Value::Null,
        "pivot": pivot(h.rtype, &h.text),
    })
}

/// What a click on the rdata searches next: the address of an A/AAAA, the
/// name of a record that points at one (NS, CNAME, PTR, DNAME, MX, KX,
/// SRV, SVCB, HTTPS), taken from dig's text so it is what the box reads.
fn pivot(rtype: Rtype, rdata: &str) -> Value {
    let field = match rtype.to_int() {
        1 | 28 => 0,
        2 | 5 | 12 | 39 => 0,
        15 | 36 | 64 | 65 => 1,
        33 => 3,
        _ => return Value::Null,
    };
    match rdata.split_whitespace().nth(field) {
        Some(token) if token != "." && !token.starts_with("\\#") => token.into(),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pivots_are_the_name_or_address_in_the_rdata() {
        assert_eq!(pivot(Rtype::A, "192.0.2.1"), json!("192.0.2.1"));
        assert_eq!(pivot(Rtype::AAAA, "2001:db8::1"), json!("2001:db8::1"));
        assert_eq!(
            pivot(Rtype::CNAME, "www.example.net."),
            json!("www.example.net.")
        );
        assert_eq!(
            pivot(Rtype::MX, "10 mail.example.com."),
            json!("mail.example.com.")
        );
        assert_eq!(pivot(Rtype::MX, "0 ."), Value::Null);
        assert_eq!(
            pivot(Rtype::SRV, "0 5 443 sip.example.com."),
            json!("sip.example.com.")
        );
        assert_eq!(pivot(Rtype::HTTPS, "1 . alpn=\"h2\""), Value::Null);
        assert_eq!(
            pivot(Rtype::HTTPS, "1 svc.example.net. alpn=\"h2\""),
            json!("svc.example.net.")
        );
        assert_eq!(pivot(Rtype::TXT, "\"v=spf1 -all\""), Value::Null);
        assert_eq!(pivot(Rtype::A, "\\# 3 C00002"), Value::Null);
    }
}
