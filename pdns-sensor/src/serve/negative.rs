//! Negative answers, an endpoint of our own: `GET /negative/{name}`
//! (`*.example.com` for a subtree) streams NDJSON objects
//! `{"rrname","rrtype","rcode","count","time_first","time_last"}` — the
//! NXDOMAIN / NODATA / SERVFAIL / REFUSED history analysts hunt DGAs and
//! typo-squats with. Parameters: `rcode` (name or number; `NODATA` for
//! NOERROR without answers), `rrtype`, `limit`, and the DNSDB time fences.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::Caller;
use super::params::{self, parse_query};
use super::{ApiError, SharedState, stream};
use crate::store::{Filter, Selector};
use crate::vocab::name;
use crate::vocab::rcode;
use crate::vocab::render::{parse_rtype, rtype_name};

/// `GET /negative/{name}`
pub(super) async fn query(
    State(state): State<SharedState>,
    Path(q): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match super::admit_any(&state, &headers) {
        Ok(caller) => caller,
        Err(r) => return *r,
    };
    match inner(state, &caller, &q, &uri).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn inner(
    state: SharedState,
    caller: &Caller,
    q: &str,
    uri: &Uri,
) -> Result<Response, ApiError> {
    let params = parse_query(uri.query());
    let (wildcard, rest) = match q.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, q),
    };
    let encoded =
        name::encode_presentation(rest).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let rcode = match params.get("rcode").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            rcode::parse_negative(v)
                .ok_or_else(|| ApiError::bad_request(format!("unknown rcode {v:?}")))?,
        ),
        None => None,
    };
    let rtype = match params.get("rrtype").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            parse_rtype(v)
                .ok_or_else(|| ApiError::bad_request(format!("unknown record type {v:?}")))?,
        ),
        None => None,
    };
    let fences = params::fences(&params)?;
    let results_max = caller.results_max(&state.config);
    let limit = params::unsigned(&params, "limit")?
        .map(|l| {
            if l == 0 {
                results_max
            } else {
                l.min(results_max)
            }
        })
        .unwrap_or(caller.default_limit(&state.config));
    let deadline = Instant::now() + state.config.query_timeout;
    let filter = Filter {
        rtype,
        first_after: fences.first_after,
        first_before: fences.first_before,
        last_after: fences.last_after,
        last_before: fences.last_before,
        deadline: Some(deadline),
    };
    let body = stream::body(deadline, move |sink| {
        let mut selectors = vec![Selector::Owner {
            name: encoded.clone(),
            wildcard: false,
        }];
        if wildcard {
            selectors.push(Selector::Owner {
                name: encoded,
                wildcard: true,
            });
        }
        let mut sent = 0;
        for selector in &selectors {
            for (i, r) in state.backend.negatives(selector, &filter).enumerate() {
                if sent >= limit || i % 256 == 0 && Instant::now() >= deadline {
                    return;
                }
                let Ok(r) = r else { return };
                if rcode.is_some_and(|c| c != r.rcode) {
                    continue;
                }
                sent += 1;
                let line = json!({
                    "rrname": name::presentation(&r.qname),
                    "rrtype": rtype_name(r.qtype),
                    "rcode": rcode::negative_name(r.rcode),
                    "count": r.value.count,
                    "time_first": r.value.first,
                    "time_last": r.value.last,
                });
                if !sink.line(&line) {
                    return;
                }
            }
        }
    })
    .await;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
