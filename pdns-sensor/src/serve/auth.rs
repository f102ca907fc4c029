//! API keys. One file, one credential per line: a bare key is accepted as
//! DNSDB `X-API-Key` and as a raw CIRCL `Authorization` token; a
//! `user:password` line is accepted as HTTP Basic credentials. Blank lines
//! and `#` comments are ignored.

use std::collections::HashSet;
use std::path::Path;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::ApiError;

#[derive(Clone, Debug, Default)]
pub struct ApiKeys {
    keys: HashSet<String>,
    basic: HashSet<String>,
}

impl ApiKeys {
    pub fn load(path: &Path) -> anyhow::Result<ApiKeys> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading API key file {}: {e}", path.display()))?;
        let keys = Self::parse(&text);
        if keys.keys.is_empty() && keys.basic.is_empty() {
            anyhow::bail!("API key file {} holds no key", path.display());
        }
        Ok(keys)
    }

    pub fn parse(text: &str) -> ApiKeys {
        let mut keys = ApiKeys::default();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if line.contains(':') {
                keys.basic.insert(line.to_string());
            } else {
                keys.keys.insert(line.to_string());
            }
        }
        keys
    }

    fn key_ok(&self, key: &str) -> bool {
        self.keys.contains(key.trim())
    }
}

/// DNSDB surfaces: `X-API-Key`, 403 when missing or wrong.
pub fn dnsdb(keys: &Option<ApiKeys>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(keys) = keys else { return Ok(()) };
    let given = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    match given {
        Some(k) if keys.key_ok(k) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::FORBIDDEN, "invalid API key")),
        None => Err(ApiError::new(StatusCode::FORBIDDEN, "missing API key")),
    }
}

/// CIRCL surface: HTTP Basic or a bare token; 401 with a challenge when
/// absent, 403 when wrong.
pub fn circl(keys: &Option<ApiKeys>, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(keys) = keys else { return Ok(()) };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"pdns\"")],
                "authentication required\n",
            )
                .into_response(),
        ));
    };
    let ok = match value.split_once(' ') {
        Some((scheme, b64)) if scheme.eq_ignore_ascii_case("basic") => {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .is_some_and(|cred| keys.basic.contains(&cred))
        }
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") =>
        {
            keys.key_ok(token)
        }
        _ => keys.key_ok(value),
    };
    if ok {
        Ok(())
    } else {
        Err(Box::new(
            (StatusCode::FORBIDDEN, "forbidden\n").into_response(),
        ))
    }
}

/// Other surfaces (bro-pdns, negative): either kind of credential.
pub fn any(keys: &Option<ApiKeys>, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if keys.is_none() || dnsdb(keys, headers).is_ok() {
        return Ok(());
    }
    circl(keys, headers)
}
