//! bro-pdns compatibility, for users migrating from the Zeek + bro-pdns
//! setup: the Python version's `GET /dns/{q}` → `{"records":[...]}` and the
//! Go version's `GET /dns/{find|like}/{tuples|individual}/{q}`.
//!
//! `q` matches either side, as bro-pdns did: records the name owns, and
//! records whose answer is `q` (an address, or a name in the rdata).
//! Times are UTC `YYYY-MM-DD HH:MM:SS` (the Go/SQLite rendering). `like`
//! is label-aware here (`like google.com` matches `www.google.com`, not
//! `xgoogle.com`), since the store is indexed by labels.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::engine::{Fences, Lookup, seen_before};
use super::pattern::{NamePattern, TypeFilter};
use super::{ApiError, SharedState, circl, stream};
use crate::store::StoredRecord;
use crate::vocab::key::rdata_name_offset;
use crate::vocab::name;
use crate::vocab::render;
use crate::vocab::time::format_utc;

fn answer(r: &StoredRecord) -> String {
    let mut a = render::rdata(r.rtype, &r.rdata);
    if rdata_name_offset(r.rtype).is_some() && a.ends_with('.') && a.len() > 1 {
        a.pop();
    }
    a
}

fn query_name(r: &StoredRecord) -> String {
    name::presentation(&r.owner)
        .trim_end_matches('.')
        .to_string()
}

fn lookups(q: &str, like: bool) -> Result<Vec<Lookup>, ApiError> {
    if !like {
        return circl::lookups(q, TypeFilter::All);
    }
    if let Ok(sel) = super::pattern::parse_ip(q) {
        return Ok(vec![Lookup::RdataIp { range: sel }]);
    }
    let parent = name::encode_presentation(q).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let below = NamePattern::Below {
        parent,
        apex: true,
        one_label: false,
    };
    Ok(vec![
        Lookup::Rrset {
            name: below.clone(),
            rtype: TypeFilter::All,
            bailiwick: None,
        },
        Lookup::RdataName {
            name: below,
            rtype: TypeFilter::All,
        },
    ])
}

/// Runs lookups in order, each record once, at most `limit` records.
fn each(
    state: &SharedState,
    lookups: &[Lookup],
    limit: u64,
    deadline: Instant,
    mut f: impl FnMut(&StoredRecord) -> bool,
) {
    let mut sent = 0u64;
    for (i, lookup) in lookups.iter().enumerate() {
        let mut go_on = true;
        lookup.run(
            &state.backend,
            Fences::default(),
            0,
            limit - sent.min(limit),
            deadline,
            |r| {
                if seen_before(lookups, i, r) {
                    return true;
                }
                sent += 1;
                go_on = f(r);
                go_on
            },
        );
        if !go_on || sent >= limit {
            break;
        }
    }
}

/// Authenticates and counts a request; gives the caller's result cap.
fn admit(state: &SharedState, headers: &HeaderMap) -> Result<u64, Box<Response>> {
    Ok(super::admit_any(state, headers)?.results_max(&state.config))
}

/// `GET /dns/{q}` (Python bro-pdns).
pub(super) async fn python(
    State(state): State<SharedState>,
    Path(q): Path<String>,
    headers: HeaderMap,
) -> Response {
    let limit = match admit(&state, &headers) {
        Ok(limit) => limit,
        Err(r) => return *r,
    };
    let lookups = match lookups(&q, false) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let deadline = Instant::now() + state.config.query_timeout;
    let body = stream::body(deadline, move |sink| {
        sink.write("{\"records\": [");
        let mut first = true;
        each(&state, &lookups, limit, sink.deadline(), |r| {
            let row = json!({
                "query": query_name(r),
                "type": render::rtype_name(r.rtype),
                "answer": answer(r),
                "count": r.value.count,
                "ttl": r.value.ttl,
                "first": format_utc(r.value.first),
                "last": format_utc(r.value.last),
            });
            let sep = if first { "" } else { ", " };
            first = false;
            sink.write(sep) && sink.write(&row.to_string())
        });
        sink.write("]}\n");
    })
    .await;
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /dns/{find|like}/{tuples|individual}/{q}` (Go bro-pdns).
pub(super) async fn go(
    State(state): State<SharedState>,
    Path((search, shape, q)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let limit = match admit(&state, &headers) {
        Ok(limit) => limit,
        Err(r) => return *r,
    };
    let individual = match shape.as_str() {
        "tuples" => false,
        "individual" => true,
        _ => {
            return ApiError::new(axum::http::StatusCode::NOT_FOUND, "unknown path")
                .into_response();
        }
    };
    let lookups = match lookups(&q, search == "like") {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let deadline = Instant::now() + state.config.query_timeout;
    if !individual {
        let body = stream::body(deadline, move |sink| {
            sink.write("[");
            let mut first = true;
            each(&state, &lookups, limit, sink.deadline(), |r| {
                let row = json!({
                    "Query": query_name(r),
                    "Type": render::rtype_name(r.rtype),
                    "Answer": answer(r),
                    "Count": r.value.count,
                    "TTL": r.value.ttl,
                    "First": format_utc(r.value.first),
                    "Last": format_utc(r.value.last),
                });
                let sep = if first { "" } else { "," };
                first = false;
                sink.write(sep) && sink.write(&row.to_string())
            });
            sink.write("]\n");
        })
        .await;
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    // Individual values: the query names and answers seen, each with its
    // summed count and time span ("Which": Q for a query name, A for an
    // answer). Bounded by the query cap.
    let body = stream::body(deadline, move |sink| {
        let mut values: std::collections::BTreeMap<(String, &'static str), (u64, u64, u64)> =
            Default::default();
        each(&state, &lookups, limit, sink.deadline(), |r| {
            for (value, which) in [(query_name(r), "Q"), (answer(r), "A")] {
                let e = values.entry((value, which)).or_insert((0, u64::MAX, 0));
                e.0 += r.value.count;
                e.1 = e.1.min(r.value.first);
                e.2 = e.2.max(r.value.last);
            }
            true
        });
        let q_lower = q.trim_end_matches('.').to_ascii_lowercase();
        let rows: Vec<_> = values
            .into_iter()
            .filter(|((v, _), _)| {
                search != "like" && v.eq_ignore_ascii_case(&q_lower)
                    || search == "like" && (v.ends_with(&q_lower) || v.starts_with(&q_lower))
            })
            .map(|((v, which), (count, first, last))| {
                json!({"Value": v, "Which": which, "Count": count, "First": format_utc(first), "Last": format_utc(last)})
            })
            .collect();
        sink.write(&(serde_json::Value::Array(rows).to_string() + "\n"));
    })
    .await;
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
