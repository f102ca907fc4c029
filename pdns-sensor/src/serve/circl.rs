//! The CIRCL passive DNS surface: `GET /pdns/query/{q}`, bare COF NDJSON in
//! CIRCL's flavour (no trailing dots, `rdata` a string, `count` and `origin`
//! always present), with the `dribble-*` request headers for type filtering
//! and pagination.
//!
//! A name query returns the records the name owns *and* the records whose
//! rdata names it (CNAME/NS/MX/... targets), as SpiderFoot and the CIRCL
//! service expect; an address query returns the records pointing at it.
//! Pages and the unpaginated cap are read fully before answering, because
//! `x-dribble-cursor` and `x-dribble-errors` are headers; both are bounded.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::engine::{End, Fences, Lookup, seen_before};
use super::pattern::{NamePattern, TypeFilter};
use super::{ApiError, SharedState, auth, inline, params, quota};
use crate::store::{Selector, StoredRecord};
use crate::vocab::key::rdata_name_offset;
use crate::vocab::name;
use crate::vocab::render;
use crate::vocab::value::Origin;

/// A COF object in CIRCL's flavour.
pub(super) fn cof(r: &StoredRecord, origin: &str, sensor_id: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert(
        "rrname".into(),
        name::presentation(&r.owner)
            .trim_end_matches('.')
            .to_string()
            .into(),
    );
    let mnemonic = render::rtype_name(r.rtype);
    // COF: a type the server cannot name is sent as a number.
    let rrtype = if mnemonic.starts_with("TYPE") {
        Value::from(r.rtype.to_int())
    } else {
        Value::from(mnemonic)
    };
    m.insert("rrtype".into(), rrtype);
    let mut rdata = render::rdata(r.rtype, &r.rdata);
    if rdata_name_offset(r.rtype).is_some() && rdata.ends_with('.') && rdata.len() > 1 {
        rdata.pop();
    }
    m.insert("rdata".into(), rdata.into());
    m.insert("count".into(), r.value.count.into());
    m.insert("time_first".into(), r.value.first.into());
    m.insert("time_last".into(), r.value.last.into());
    m.insert("origin".into(), origin_for(origin, r.value.origin).into());
    if let Some(id) = sensor_id {
        m.insert("sensor_id".into(), id.into());
    }
    Value::Object(m)
}

/// The configured origin, marked when a record did not (only) come from
/// the wire: `ORIGIN#zeek`, `ORIGIN#dnstap`, `ORIGIN#wire+zeek`…
pub(super) fn origin_for(origin: &str, origins: Origin) -> String {
    if origins == Origin::WIRE || origins == Origin::default() {
        origin.to_string()
    } else {
        format!("{origin}#{}", origins.names().join("+"))
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn header_num(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    match header_str(headers, name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{name}: not a number: {v:?}"))),
    }
}

/// The lookups a CIRCL query stands for.
pub(super) fn lookups(q: &str, rtype: TypeFilter) -> Result<Vec<Lookup>, ApiError> {
    if let Ok(ip) = q.parse::<IpAddr>() {
        let range = match ip {
            IpAddr::V4(a) => Selector::Ipv4 { lo: a, hi: a },
            IpAddr::V6(a) => Selector::Ipv6 { lo: a, hi: a },
        };
        return Ok(vec![Lookup::RdataIp { range }]);
    }
    let owner = name::encode_presentation(q).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(vec![
        Lookup::Rrset {
            name: NamePattern::Exact(owner.clone()),
            rtype,
            bailiwick: None,
        },
        Lookup::RdataName {
            name: NamePattern::Exact(owner),
            rtype,
        },
    ])
}

/// `GET /pdns/query/{q}`
pub(super) async fn query(
    State(state): State<SharedState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match auth::circl(&state.config.keys, &headers) {
        Ok(caller) => caller,
        Err(r) => return *r,
    };
    if let Err(e) = quota::admit(caller.account(), &state.config.clock) {
        return e.into_response();
    }
    match query_inner(state, &caller, &uri, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn query_inner(
    state: SharedState,
    caller: &Caller,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let raw = uri.path().strip_prefix("/pdns/query/").unwrap_or("");
    let q = params::segments(raw)?.join("/");
    let q = q.trim().to_string();
    if q.is_empty() {
        return Err(ApiError::bad_request("empty query"));
    }
    let rtype = match header_str(headers, "dribble-filter-rrtype") {
        None => TypeFilter::All,
        Some(t) => match TypeFilter::parse(t) {
            Ok(TypeFilter::Any) => TypeFilter::All,
            Ok(t) => t,
            // PyPDNS: an unknown type gives an empty answer.
            Err(_) => return Ok(ndjson(String::new(), None, None)),
        },
    };
    let page = header_num(headers, "dribble-paginate-count")?.filter(|&n| n > 0);
    let cursor = header_num(headers, "dribble-paginate-cursor")?.unwrap_or(0);
    let cap = caller.default_limit(&state.config);
    let want = page.unwrap_or(cap).min(cap);
    let skip = if page.is_some() { cursor } else { 0 };
    let lookups = lookups(&q, rtype)?;
    let deadline = Instant::now() + state.config.query_timeout;
    let st = SharedState::clone(&state);
    // Read one record past the page to know whether another page exists.
    let read = move |deadline: Instant| {
        let mut out: Vec<StoredRecord> = Vec::new();
        let mut seen = 0u64;
        let mut more = false;
        let mut end = End::Complete;
        for (i, lookup) in lookups.iter().enumerate() {
            let e = lookup.run(&st.backend, Fences::default(), 0, u64::MAX, deadline, |r| {
                if seen_before(&lookups, i, r) {
                    return true;
                }
                seen += 1;
                if seen <= skip {
                    return true;
                }
                if out.len() as u64 == want {
                    more = true;
                    return false;
                }
                out.push(r.clone());
                true
            });
            if e != End::Complete {
                end = e;
                break;
            }
            if more {
                break;
            }
        }
        (out, more, end)
    };
    // Tried on this thread first; a big or slow one runs on the pool.
    let (records, more, end) =
        match inline::attempt(&state.backend, deadline, |budget| Some(read(budget))) {
            Some(found) => found,
            None => tokio::task::spawn_blocking(move || read(deadline))
                .await
                .map_err(|e| {
                    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                })?,
        };

    let mut body = String::new();
    for r in &records {
        body.push_str(&cof(r, &state.config.origin, state.config.sensor_id.as_deref()).to_string());
        body.push('\n');
    }
    let (cursor_header, errors_header) = match (page, more, &end) {
        (Some(_), true, _) => (Some(skip + records.len() as u64), None),
        (None, true, _) => (
            None,
            Some(json!({"error": "maxset", "record": q, "value": cap})),
        ),
        (_, _, End::TimedOut) => (
            None,
            Some(json!({"error": "timeout", "record": q, "value": records.len()})),
        ),
        (_, _, End::Failed(e)) => (
            None,
            Some(json!({"error": "failed", "record": q, "value": e})),
        ),
        _ => (None, None),
    };
    Ok(ndjson(body, cursor_header, errors_header))
}

fn ndjson(body: String, cursor: Option<u64>, errors: Option<Value>) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    if let Some(c) = cursor {
        response
            .headers_mut()
            .insert("x-dribble-cursor", HeaderValue::from(c));
    }
    if let Some(e) = errors
        && let Ok(v) = HeaderValue::from_str(&e.to_string())
    {
        response.headers_mut().insert("x-dribble-errors", v);
    }
    response
}
