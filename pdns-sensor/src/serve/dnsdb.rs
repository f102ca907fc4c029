//! The DNSDB API: v2 with SAF framing (`/dnsdb/v2/...`) and the v1 aliases
//! (`/lookup/...`, bare COF, 404 when empty).
//!
//! Records are per (rrname, rrtype, rdata): each object is a one-record
//! RRset, which every DNSDB client accepts (see README, "API semantics").
//! Only DNSDB's own keys are emitted — MISP's module rejects any other.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::cof::{self, CofWriter};
use super::engine::{End, Lookup};
use super::params::{self, parse_query};
use super::pattern::{NamePattern, TypeFilter, parse_ip, parse_name};
use super::quota::{self, Window};
use super::{ApiError, SharedState, auth, stream};
use crate::vocab::name;
use crate::vocab::time::format_rfc3339;

/// A parsed `lookup`/`summarize` request.
struct Request {
    lookup: Lookup,
    rrset: bool,
    limit: u64,
    offset: u64,
    fences: super::engine::Fences,
    humantime: bool,
    max_count: Option<u64>,
}

/// A time as DNSDB writes it: seconds since the epoch, or RFC 3339 with
/// `humantime`.
pub(super) fn time_value(t: u64, human: bool) -> Value {
    if human {
        Value::String(format_rfc3339(t))
    } else {
        Value::from(t)
    }
}

/// Accept headers the API can answer: NDJSON, JSON, or anything.
fn accept_ok(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let media = range
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(
            media.as_str(),
            "" | "*/*" | "application/*" | "application/x-ndjson" | "application/json"
        )
    })
}

fn parse_request(
    state: &SharedState,
    caller: &Caller,
    verb: &str,
    segs: &[String],
    params: &HashMap<String, String>,
) -> Result<Request, ApiError> {
    // IntelOwl leaves a trailing empty segment; treat it as absent.
    let segs: Vec<&str> = {
        let mut v: Vec<&str> = segs.iter().map(String::as_str).collect();
        while v.last() == Some(&"") {
            v.pop();
        }
        v
    };
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::bad_request(message)
    }
    let (lookup, rrset) = match segs.as_slice() {
        ["rrset", "name", owner, rest @ ..] => {
            if rest.len() > 2 {
                return Err(bad("too many path segments"));
            }
            let rtype = TypeFilter::parse(rest.first().copied().unwrap_or("")).map_err(bad)?;
            let bailiwick = rest
                .get(1)
                .filter(|b| !b.is_empty())
                .map(|b| format!("{}.", b.trim_end_matches('.').to_ascii_lowercase()).into_bytes());
            (
                Lookup::Rrset {
                    name: parse_name(owner).map_err(bad)?,
                    rtype,
                    bailiwick,
                },
                true,
            )
        }
        ["rrset", "raw", hex, rest @ ..] => {
            if rest.len() > 1 {
                return Err(bad("too many path segments (no bailiwick with raw)"));
            }
            let wire = decode_hex(hex).ok_or_else(|| bad("raw owner is not hex"))?;
            let mut owner = Vec::new();
            if !name::encode_wire(&wire, &mut owner) {
                return Err(bad("raw owner is not a wire-format name"));
            }
            let rtype = TypeFilter::parse(rest.first().copied().unwrap_or("")).map_err(bad)?;
            (
                Lookup::Rrset {
                    name: NamePattern::Exact(owner),
                    rtype,
                    bailiwick: None,
                },
                true,
            )
        }
        ["rdata", "name", target, rest @ ..] => {
            if rest.len() > 1 {
                return Err(bad("too many path segments"));
            }
            let name = parse_name(target).map_err(bad)?;
            if matches!(name, NamePattern::Forward { .. }) {
                return Err(bad(
                    "right-hand wildcards are supported in rrset lookups only",
                ));
            }
            let rtype = TypeFilter::parse(rest.first().copied().unwrap_or("")).map_err(bad)?;
            (Lookup::RdataName { name, rtype }, false)
        }
        ["rdata", "ip", spec, rest @ ..] => {
            if rest.len() > 1 {
                return Err(bad("too many path segments"));
            }
            let t = rest.first().copied().unwrap_or("");
            if !(t.is_empty()
                || ["A", "AAAA", "ANY"]
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(t)))
            {
                return Err(bad(format!("rdata/ip takes A, AAAA or ANY, not {t:?}")));
            }
            (
                Lookup::RdataIp {
                    range: parse_ip(spec).map_err(bad)?,
                },
                false,
            )
        }
        ["rdata", "raw", ..] => return Err(bad("rdata/raw lookups are not supported")),
        ["rrset" | "rdata", ..] => return Err(bad("malformed lookup path")),
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown path")),
    };
    let config = &state.config;
    let results_max = caller.results_max(config);
    let limit = match params::unsigned(params, "limit")? {
        None => caller.default_limit(config),
        Some(0) => results_max,
        Some(n) => n.min(results_max),
    };
    let offset = params::unsigned(params, "offset")?.unwrap_or(0);
    if offset > config.offset_max || (verb == "summarize" && offset > 0) {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "offset not permitted",
        ));
    }
    Ok(Request {
        lookup,
        rrset,
        limit,
        offset,
        fences: params::fences(params)?,
        humantime: params::boolean(params, "humantime")?,
        max_count: params::unsigned(params, "max_count")?,
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(super) fn ndjson(body: axum::body::Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

pub(super) fn terminator(end: &End) -> Value {
    match end {
        End::Complete => json!({"cond": "succeeded"}),
        End::Limited => json!({"cond": "limited", "msg": "Result limit reached"}),
        End::TimedOut => json!({"cond": "limited", "msg": "Query time limit reached"}),
        End::Failed(e) => json!({"cond": "failed", "msg": e}),
    }
}

/// The caller's quota in DNSDB's `rate_limit` shape: the daily window as
/// `limit`/`remaining`/`reset` and the hourly one as the burst rate
/// (`burst_size` per `burst_window` seconds); a key with only an hourly
/// limit reports it as `limit`/`remaining`/`reset`. No limit: `unlimited`.
fn rate_limit(state: &SharedState, caller: &Caller) -> Value {
    let now = state.config.clock.now();
    let standing = |w| caller.account().and_then(|a| a.standing(w, now));
    let (day, hour) = (standing(Window::Day), standing(Window::Hour));
    let mut rate = Map::new();
    match day.or(hour) {
        Some(s) => {
            rate.insert("reset".into(), s.reset.into());
            rate.insert("limit".into(), s.limit.into());
            rate.insert("remaining".into(), s.remaining.into());
        }
        None => {
            rate.insert("reset".into(), "n/a".into());
            rate.insert("limit".into(), "unlimited".into());
            rate.insert("remaining".into(), "n/a".into());
        }
    }
    if let (Some(_), Some(hour)) = (day, hour) {
        rate.insert("burst_size".into(), hour.limit.into());
        rate.insert("burst_window".into(), 3600.into());
    }
    rate.insert(
        "results_max".into(),
        caller.results_max(&state.config).into(),
    );
    rate.insert("offset_max".into(), state.config.offset_max.into());
    json!({ "rate": rate })
}

/// `GET /dnsdb/v2/...`
pub(super) async fn v2(State(state): State<SharedState>, uri: Uri, headers: HeaderMap) -> Response {
    match v2_inner(state, &uri, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn v2_inner(
    state: SharedState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let caller = auth::dnsdb(&state.config.keys, headers)?;
    if !accept_ok(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Accept",
        ));
    }
    let path = uri.path().strip_prefix("/dnsdb/v2/").unwrap_or("");
    let segs = params::segments(path)?;
    let params = parse_query(uri.query());
    let verb = segs.first().map(String::as_str).unwrap_or("");
    // ping and rate_limit cost nothing, as at DNSDB.
    if !(matches!(verb, "ping" | "rate_limit") && segs.len() == 1) {
        quota::admit(caller.account(), &state.config.clock)?;
    }
    match verb {
        "ping" if segs.len() == 1 => Ok(ndjson(format!("{}\n", json!({"ping": "ok"})).into())),
        "rate_limit" if segs.len() == 1 => {
            Ok(ndjson(format!("{}\n", rate_limit(&state, &caller)).into()))
        }
        "regex" | "glob" => super::flex::dnsdb(state, &caller, &segs, &params).await,
        "lookup" | "summarize" => {
            let req = parse_request(&state, &caller, verb, &segs[1..], &params)?;
            let summarize = verb == "summarize";
            let deadline = Instant::now() + state.config.query_timeout;
            let backend = state.backend.clone();
            let body = stream::answer(&backend, deadline, move |sink| {
                let deadline = sink.deadline();
                sink.line(&json!({"cond": "begin"}));
                let store = &state.backend;
                if summarize {
                    let (mut count, mut n, mut first, mut last) = (0u64, 0u64, u64::MAX, 0u64);
                    let max_count = req.max_count;
                    let end = req
                        .lookup
                        .run(store, req.fences, 0, req.limit, deadline, |r| {
                            count += r.value.count;
                            n += 1;
                            first = first.min(r.value.first);
                            last = last.max(r.value.last);
                            max_count.is_none_or(|m| count < m)
                        });
                    let mut obj = Map::new();
                    obj.insert("count".into(), count.into());
                    obj.insert("num_results".into(), n.into());
                    if n > 0 {
                        obj.insert("time_first".into(), time_value(first, req.humantime));
                        obj.insert("time_last".into(), time_value(last, req.humantime));
                    }
                    sink.line(&json!({"obj": Value::Object(obj)}));
                    sink.line(&terminator(&end));
                } else {
                    let form = cof::Form {
                        rrset: req.rrset,
                        humantime: req.humantime,
                        rdata_array: true,
                        in_obj: true,
                    };
                    let mut writer = CofWriter::default();
                    let end =
                        req.lookup
                            .run(store, req.fences, req.offset, req.limit, deadline, |r| {
                                sink.line_with(|out| writer.write(out, r, form))
                            });
                    sink.line(&terminator(&end));
                }
            })
            .await;
            Ok(ndjson(body))
        }
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown path")),
    }
}

/// `GET /lookup/...` (DNSDB API v1): bare COF, 404 when nothing matches.
pub(super) async fn v1(State(state): State<SharedState>, uri: Uri, headers: HeaderMap) -> Response {
    match v1_inner(state, &uri, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn v1_inner(
    state: SharedState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let caller = auth::dnsdb(&state.config.keys, headers)?;
    if !accept_ok(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Accept",
        ));
    }
    let path = uri.path().strip_prefix("/lookup/").unwrap_or("");
    let segs = params::segments(path)?;
    if segs.len() == 1 && segs[0] == "rate_limit" {
        let text =
            serde_json::to_string_pretty(&rate_limit(&state, &caller)).unwrap_or_default() + "\n";
        return Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response());
    }
    quota::admit(caller.account(), &state.config.clock)?;
    let params = parse_query(uri.query());
    let req = parse_request(&state, &caller, "lookup", &segs, &params)?;
    let deadline = Instant::now() + state.config.query_timeout;
    // Peek: v1 answers 404 when nothing matches, which must be known
    // before the headers go out.
    let found = {
        let state = SharedState::clone(&state);
        let lookup = req.lookup.clone();
        let (fences, offset) = (req.fences, req.offset);
        tokio::task::spawn_blocking(move || {
            let mut any = false;
            lookup.run(&state.backend, fences, offset, 1, deadline, |_| {
                any = true;
                false
            });
            any
        })
        .await
        .unwrap_or(false)
    };
    if !found {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no results found for query",
        ));
    }
    let backend = state.backend.clone();
    let body = stream::answer(&backend, deadline, move |sink| {
        let form = cof::Form {
            rrset: req.rrset,
            humantime: req.humantime,
            rdata_array: req.rrset,
            in_obj: false,
        };
        let mut writer = CofWriter::default();
        req.lookup.run(
            &state.backend,
            req.fences,
            req.offset,
            req.limit,
            sink.deadline(),
            |r| sink.line_with(|out| writer.write(out, r, form)),
        );
    })
    .await;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
