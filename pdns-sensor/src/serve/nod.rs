//! Newly observed domains, an endpoint of our own: `GET /nod` streams
//! NDJSON objects `{"domain","first_seen","rrname","rrtype","warmup",
//! "seen_in"}` in first-seen order (then domain), one per registrable
//! domain the database has seen (see `store::nod`).
//!
//! Parameters: `since` (first seen at or after it: epoch seconds, a date or
//! RFC 3339; default: the beginning), `limit` (like the other surfaces:
//! capped by the caller's `results_max`, 0 for that cap), `cursor` (where
//! the previous page ended). Every answer ends with one more line,
//! `{"cursor":"...","more":true|false}`: pass the cursor back as `cursor=`
//! (with the same `since`) for the next page; `more` says whether this page
//! stopped at its limit (or the query timeout) with more to come. Polling
//! later with the last cursor gets exactly what was recorded since. Same credentials as the negative-answer endpoint (any
//! API key or user). Served from a local database only: over ClickHouse the
//! answer is a 501.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::Caller;
use super::params::{self, parse_query};
use super::{ApiError, SharedState, stream};
use crate::store::nod::{NodRecord, parse_cursor};

/// The cursor of a page that returned nothing: the one given, or just
/// before `since`.
fn resume_point(since: u64, cursor: Option<&[u8]>) -> String {
    match cursor {
        Some(c) => c[1..].iter().map(|b| format!("{b:02x}")).collect(),
        None => NodRecord::before(since).cursor(),
    }
}

/// `GET /nod`
pub(super) async fn query(
    State(state): State<SharedState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match super::admit_any(&state, &headers) {
        Ok(caller) => caller,
        Err(r) => return *r,
    };
    match inner(state, &caller, &uri).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn inner(state: SharedState, caller: &Caller, uri: &Uri) -> Result<Response, ApiError> {
    let params = parse_query(uri.query());
    let since = match params.get("since").filter(|v| !v.trim().is_empty()) {
        Some(v) => crate::vocab::time::parse(v)
            .map_err(|e| ApiError::bad_request(format!("since: {e}")))?,
        None => 0,
    };
    let cursor = match params.get("cursor").filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_cursor(v).ok_or_else(|| {
            ApiError::bad_request(format!("cursor: not a cursor /nod returned: {v:?}"))
        })?),
        None => None,
    };
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
    if state.backend.store().is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "newly observed domains are served from a local database (serve --db), not from ClickHouse",
        ));
    }
    let deadline = Instant::now() + state.config.query_timeout;
    let body = stream::body(deadline, move |sink| {
        let Some(store) = state.backend.store() else {
            return;
        };
        let mut last = resume_point(since, cursor.as_deref());
        let mut more = false;
        // `sent`: entries sent so far (a failed read ends the answer
        // without its closing line).
        for (sent, r) in store.new_domains(since, cursor).enumerate() {
            let Ok(r) = r else { return };
            if sent as u64 == limit || sent % 256 == 255 && Instant::now() >= deadline {
                more = true;
                break;
            }
            if !sink.line(&r.to_json()) {
                return;
            }
            last = r.cursor();
        }
        sink.line(&json!({ "cursor": last, "more": more }));
    })
    .await;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
