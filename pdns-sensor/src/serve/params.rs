//! Query-string parameters shared by the surfaces: limits, offsets, time
//! fences (absolute or negative-relative), and DNSDB's liberal booleans.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;

use super::ApiError;
use super::engine::Fences;

/// Parses a raw query string (`a=1&b=x%20y`), last value wins.
pub(super) fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        out.insert(decode(k), decode(v));
    }
    out
}

/// `true/false`, `True/False`, `t/f`, `1/0`, `yes/no`.
pub(super) fn boolean(params: &HashMap<String, String>, key: &str) -> Result<bool, ApiError> {
    match params.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "true" | "t" | "1" | "yes" | "y" => Ok(true),
            "false" | "f" | "0" | "no" | "n" | "" => Ok(false),
            _ => Err(ApiError::bad_request(format!(
                "{key}: not a boolean: {v:?}"
            ))),
        },
    }
}

pub(super) fn unsigned(
    params: &HashMap<String, String>,
    key: &str,
) -> Result<Option<u64>, ApiError> {
    match params.get(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("{key}: not a non-negative integer: {v:?}"))
        }),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A fence: epoch seconds, or negative = seconds before now.
fn fence(params: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    let Some(v) = params.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{key}: not an integer time: {v:?}")))?;
    let t = if n < 0 { now().saturating_add(n) } else { n };
    Ok(Some(t.max(0) as u64))
}

pub(super) fn fences(params: &HashMap<String, String>) -> Result<Fences, ApiError> {
    Ok(Fences {
        first_after: fence(params, "time_first_after")?,
        first_before: fence(params, "time_first_before")?,
        last_after: fence(params, "time_last_after")?,
        last_before: fence(params, "time_last_before")?,
    })
}

/// Splits a raw URL path into percent-decoded segments (a `%2F` stays
/// inside its segment).
pub(super) fn segments(raw: &str) -> Result<Vec<String>, ApiError> {
    raw.split('/')
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ApiError::bad_request("path is not valid UTF-8"))
        })
        .collect()
}
