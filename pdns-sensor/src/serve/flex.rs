//! DNSDB Flex search over HTTP: `/dnsdb/v2/{regex,glob}/{rrnames,rdata}/
//! {pattern}[/{rrtype}]`, with `limit`, `offset`, the time fences,
//! `exclude=` (a pattern of the same kind whose matches are dropped),
//! `verbose=false` (no counts or times) and `humantime`.
//!
//! Answers are DNSDB's Flex objects, not COF: `{rrname, rrtype}` per
//! (owner, type) for `rrnames`, `{rdata, rrtype, raw_rdata}` per (rdata,
//! type) for `rdata`, each with `count` (summed), `time_first` (earliest)
//! and `time_last` (latest) over the records merged, unless verbose is
//! off. SAF framing; `limited` when more results exist than `limit`
//! allows, or when the query timeout cut the scan short. The matching
//! itself lives in [`crate::store::flex`], shared with `dump`.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::auth::Caller;
use super::cof;
use super::dnsdb::{ndjson, terminator};
use super::engine::End;
use super::params;
use super::pattern::TypeFilter;
use super::{ApiError, SharedState, stream};
use crate::metrics;
use crate::store::Filter;
use crate::store::flex::{NameHit, Pattern, RdataHit, Scan, ScanStats, Syntax};
use crate::vocab::Rtype;
use crate::vocab::name;
use crate::vocab::render;

/// What is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Rrnames,
    Rdata,
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Target::Rrnames => "rrnames",
            Target::Rdata => "rdata",
        }
    }
}

struct Request {
    target: Target,
    pattern: Pattern,
    exclude: Option<Pattern>,
    rtype: TypeFilter,
    filter: Filter,
    limit: u64,
    offset: u64,
    verbose: bool,
    humantime: bool,
}

fn parse(
    state: &SharedState,
    caller: &Caller,
    segs: &[String],
    params: &HashMap<String, String>,
) -> Result<Request, ApiError> {
    let mut segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    // IntelOwl-style trailing slash: an empty last segment is absent.
    while segs.len() > 3 && segs.last() == Some(&"") {
        segs.pop();
    }
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::bad_request(message)
    }
    let (syntax, target, text, rtype) = match segs.as_slice() {
        [verb, target, text, rest @ ..] if rest.len() <= 1 => {
            let syntax = match *verb {
                "regex" => Syntax::Regex,
                _ => Syntax::Glob,
            };
            let target = match *target {
                "rrnames" => Target::Rrnames,
                "rdata" => Target::Rdata,
                _ => return Err(bad("flex searches rrnames or rdata")),
            };
            (syntax, target, *text, rest.first().copied().unwrap_or(""))
        }
        _ => return Err(bad("malformed flex path")),
    };
    let pattern = Pattern::new(syntax, text).map_err(|e| bad(e.to_string()))?;
    let exclude = match params.get("exclude").filter(|x| !x.is_empty()) {
        Some(x) => Some(Pattern::new(syntax, x).map_err(|e| bad(format!("exclude: {e}")))?),
        None => None,
    };
    let rtype = TypeFilter::parse(rtype).map_err(bad)?;
    let config = &state.config;
    let results_max = caller.results_max(config);
    let limit = match params::unsigned(params, "limit")? {
        None => caller.default_limit(config),
        Some(0) => results_max,
        Some(n) => n.min(results_max),
    };
    let offset = params::unsigned(params, "offset")?.unwrap_or(0);
    if offset > config.offset_max {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "offset not permitted",
        ));
    }
    let fences = params::fences(params)?;
    // Verbose is DNSDB's default; only an explicit false turns it off.
    let verbose = !params.contains_key("verbose") || params::boolean(params, "verbose")?;
    Ok(Request {
        target,
        pattern,
        exclude,
        rtype,
        filter: Filter {
            rtype: rtype.exact(),
            first_after: fences.first_after,
            first_before: fences.first_before,
            last_after: fences.last_after,
            last_before: fences.last_before,
            // The scan keeps its own deadline.
            deadline: None,
        },
        limit,
        offset,
        verbose,
        humantime: params::boolean(params, "humantime")?,
    })
}

/// Writes Flex's result lines, `{"obj": …}`, keeping its buffers between
/// them: built as a `serde_json::Value`, each object was a B-tree of
/// owned keys, about a third of a 10 000-result answer's time (see
/// [`super::cof`]). Keys in DNSDB's (alphabetical) order; the tests check
/// the bytes against the `Value` of the same hit.
#[derive(Default)]
struct ObjectWriter {
    text: String,
}

impl ObjectWriter {
    /// `{"obj": {count?, rrname, rrtype, time_first?, time_last?}}`.
    fn rrname(&mut self, out: &mut Vec<u8>, h: &NameHit, verbose: bool, humantime: bool) {
        Self::open(out, verbose, h.count);
        out.extend_from_slice(b"\"rrname\":");
        self.text.clear();
        name::write_presentation(&h.owner, &mut self.text);
        cof::string(out, &self.text);
        self.rrtype(out, h.rtype);
        if verbose {
            Self::times(out, h.first, h.last, humantime);
        }
        out.extend_from_slice(b"}}");
    }

    /// `{"obj": {count?, raw_rdata, rdata, rrtype, time_first?,
    /// time_last?}}`, `raw_rdata` the wire form in lowercase hex.
    fn rdata(&mut self, out: &mut Vec<u8>, h: &RdataHit, verbose: bool, humantime: bool) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        Self::open(out, verbose, h.count);
        out.extend_from_slice(b"\"raw_rdata\":\"");
        for &b in &h.rdata {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        out.extend_from_slice(b"\",\"rdata\":");
        cof::string(out, &h.text);
        self.rrtype(out, h.rtype);
        if verbose {
            Self::times(out, h.first, h.last, humantime);
        }
        out.extend_from_slice(b"}}");
    }

    /// `{"obj":{`, and the count first when `verbose`.
    fn open(out: &mut Vec<u8>, verbose: bool, count: u64) {
        out.extend_from_slice(b"{\"obj\":{");
        if verbose {
            out.extend_from_slice(b"\"count\":");
            cof::number(out, count);
            out.push(b',');
        }
    }

    fn rrtype(&mut self, out: &mut Vec<u8>, rtype: Rtype) {
        out.extend_from_slice(b",\"rrtype\":");
        self.text.clear();
        render::write_rtype_name(rtype, &mut self.text);
        cof::string(out, &self.text);
    }

    fn times(out: &mut Vec<u8>, first: u64, last: u64, humantime: bool) {
        out.extend_from_slice(b",\"time_first\":");
        cof::time(out, first, humantime);
        out.extend_from_slice(b",\"time_last\":");
        cof::time(out, last, humantime);
    }
}

/// Answers a Flex path (`segs` starts with `regex` or `glob`).
pub(super) async fn dnsdb(
    state: SharedState,
    caller: &Caller,
    segs: &[String],
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let req = parse(&state, caller, segs, params)?;
    let Some(store) = state.backend.store().cloned() else {
        // The ClickHouse backend has no Flex search: say so in a
        // well-formed answer that clients treat as incomplete.
        let body = format!(
            "{}\n{}\n",
            json!({"cond": "begin"}),
            json!({"cond": "limited", "msg": "Flex search is not available on the ClickHouse backend"})
        );
        metrics::publish_flex_query(
            req.pattern.syntax().as_str(),
            req.target.as_str(),
            "unsupported",
            ScanStats::default(),
        );
        return Ok(ndjson(body.into()));
    };
    let deadline = Instant::now() + state.config.query_timeout;
    let body = stream::body(deadline, move |sink| {
        sink.line(&json!({"cond": "begin"}));
        let mut stats = ScanStats::default();
        let rtype = req.rtype;
        let type_ok = move |t| rtype.matches(t);
        let mut writer = ObjectWriter::default();
        let (end, outcome) = match req.target {
            Target::Rrnames => {
                let (mut skipped, mut sent, mut more, mut gone) = (0u64, 0u64, false, false);
                let scan = store.flex_rrnames(
                    &req.pattern,
                    req.exclude.as_ref(),
                    &req.filter,
                    type_ok,
                    Some(deadline),
                    &mut stats,
                    |h| {
                        if skipped < req.offset {
                            skipped += 1;
                            return true;
                        }
                        if sent == req.limit {
                            more = true;
                            return false;
                        }
                        sent += 1;
                        gone = !sink.line_with(|out| {
                            writer.rrname(out, h, req.verbose, req.humantime);
                        });
                        !gone
                    },
                );
                ended(scan, more, gone)
            }
            Target::Rdata => {
                let cap = req.offset.saturating_add(req.limit).saturating_add(1);
                let cap = usize::try_from(cap).unwrap_or(usize::MAX);
                match store.flex_rdata(
                    &req.pattern,
                    req.exclude.as_ref(),
                    &req.filter,
                    type_ok,
                    cap,
                    Some(deadline),
                    &mut stats,
                ) {
                    Ok((hits, scan)) => {
                        let more = hits.len() as u64 > req.offset.saturating_add(req.limit);
                        let mut gone = false;
                        for h in hits
                            .iter()
                            .skip(req.offset as usize)
                            .take(req.limit as usize)
                        {
                            let written = sink.line_with(|out| {
                                writer.rdata(out, h, req.verbose, req.humantime);
                            });
                            if !written {
                                gone = true;
                                break;
                            }
                        }
                        let scan = if scan == Scan::Stopped && !more {
                            Scan::Complete
                        } else {
                            scan
                        };
                        ended(Ok(scan), more, gone)
                    }
                    Err(e) => ended(Err(e), false, false),
                }
            }
        };
        sink.line(&terminator(&end));
        metrics::publish_flex_query(
            req.pattern.syntax().as_str(),
            req.target.as_str(),
            outcome,
            stats,
        );
    })
    .await;
    Ok(ndjson(body))
}

/// The SAF terminator and the metrics outcome of a scan.
fn ended(
    scan: Result<Scan, crate::store::StoreError>,
    more: bool,
    gone: bool,
) -> (End, &'static str) {
    match scan {
        Err(e) => (End::Failed(e.to_string()), "failed"),
        Ok(_) if gone => (End::Complete, "disconnected"),
        Ok(Scan::TimedOut) => (End::TimedOut, "timeout"),
        Ok(_) if more => (End::Limited, "limited"),
        Ok(_) => (End::Complete, "complete"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::super::dnsdb::time_value;
    use super::*;

    fn counts(m: &mut Map<String, Value>, count: u64, first: u64, last: u64, humantime: bool) {
        m.insert("count".into(), count.into());
        m.insert("time_first".into(), time_value(first, humantime));
        m.insert("time_last".into(), time_value(last, humantime));
    }

    fn rrname_object(h: &NameHit, verbose: bool, humantime: bool) -> Value {
        let mut m = Map::new();
        m.insert("rrname".into(), name::presentation(&h.owner).into());
        m.insert("rrtype".into(), render::rtype_name(h.rtype).into());
        if verbose {
            counts(&mut m, h.count, h.first, h.last, humantime);
        }
        Value::Object(m)
    }

    fn rdata_object(h: &RdataHit, verbose: bool, humantime: bool) -> Value {
        let mut m = Map::new();
        m.insert("rdata".into(), h.text.clone().into());
        m.insert("rrtype".into(), render::rtype_name(h.rtype).into());
        let hex: String = h.rdata.iter().map(|b| format!("{b:02x}")).collect();
        m.insert("raw_rdata".into(), hex.into());
        if verbose {
            counts(&mut m, h.count, h.first, h.last, humantime);
        }
        Value::Object(m)
    }

    proptest! {
        /// Both objects, every form, arbitrary owners, rdata and text.
        #[test]
        fn objects_are_what_serde_json_writes(
            labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..12), 0..4),
            rtype in any::<u16>(),
            rdata in proptest::collection::vec(any::<u8>(), 0..40),
            text in any::<String>(),
            count in any::<u64>(),
            first in 0u64..4_000_000_000,
            verbose in any::<bool>(),
            humantime in any::<bool>(),
        ) {
            let owner = cof::tests::owner(&labels);
            let rtype = Rtype::from_int(rtype);
            let mut writer = ObjectWriter::default();
            let name_hit = NameHit { owner, rtype, count, first, last: first + 1 };
            let mut out = b"kept,".to_vec();
            writer.rrname(&mut out, &name_hit, verbose, humantime);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("kept,{}", json!({"obj": rrname_object(&name_hit, verbose, humantime)}))
            );
            let rdata_hit = RdataHit { rtype, rdata, text, count, first, last: first + 1 };
            let mut out = Vec::new();
            writer.rdata(&mut out, &rdata_hit, verbose, humantime);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                json!({"obj": rdata_object(&rdata_hit, verbose, humantime)}).to_string()
            );
        }
    }
}
