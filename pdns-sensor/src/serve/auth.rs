//! API keys. One file, one credential per line: a bare key is accepted as
//! DNSDB `X-API-Key` and as a raw CIRCL `Authorization` token; a
//! `user:password` line is accepted as HTTP Basic credentials. Blank lines
//! and `#` comments are ignored.
//!
//! After the credential, a line may set options (see [`super::quota`]):
//!
//! ```text
//! 3f9c0e...            name=soc hourly=1000 daily=20k results=100000
//! analyst:s3cret       daily=500        # trailing comments are fine
//! ```
//!
//! `name` labels the credential in metrics and logs (the secret never
//! appears there; without a name a key is labelled by a short hash of it
//! and a `user:password` line by its user); `hourly` and `daily` are
//! requests per UTC hour and day; `results` caps the records one query
//! returns. Counts take a `k` (thousand) or `M` (million) suffix. A line
//! without options is unlimited, so files written before quotas existed
//! keep their meaning. Anything else on a line is an error naming it:
//! the API does not start on a key file it cannot read as written.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::quota::{Account, Limits};
use super::{ApiError, ServeConfig};

/// The credentials of a key file, each with its account.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys {
    keys: HashMap<String, Arc<Account>>,
    basic: HashMap<String, Arc<Account>>,
}

/// A key file line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for KeyFileError {}

/// One parsed line: the credential, its label, whether the label was
/// given, and its limits.
struct Line<'a> {
    credential: &'a str,
    name: Option<&'a str>,
    limits: Limits,
}

const OPTIONS: &str = "name, hourly, daily, results";

/// A count: digits, optionally ending in `k` (×1000) or `M` (×1000000);
/// at least 1.
fn count(option: &str, value: &str) -> Result<u64, String> {
    let (digits, scale) = match value.as_bytes().last() {
        Some(b'k') => (&value[..value.len() - 1], 1_000),
        Some(b'M') => (&value[..value.len() - 1], 1_000_000),
        _ => (value, 1),
    };
    let bad = || {
        format!(
            "{option}={value}: not a count (digits, optionally ending in k or M, e.g. 1000 or 20k)"
        )
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)?;
    if n == 0 {
        return Err(format!(
            "{option}=0: a limit is at least 1 (leave the option out for no limit)"
        ));
    }
    Ok(n)
}

fn parse_line(text: &str) -> Result<Line<'_>, String> {
    let mut words = text.split_whitespace();
    let credential = words.next().unwrap_or_default();
    let mut line = Line {
        credential,
        name: None,
        limits: Limits::default(),
    };
    for word in words {
        if word.starts_with('#') {
            break;
        }
        let Some((option, value)) = word.split_once('=') else {
            return Err(format!(
                "{word:?}: expected OPTION=VALUE after the credential (options: {OPTIONS}; \
                 a credential holds no spaces)"
            ));
        };
        let slot = match option {
            "name" => {
                if line.name.is_some() {
                    return Err("name given twice".into());
                }
                let ok = !value.is_empty()
                    && value.len() <= 64
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
                if !ok {
                    return Err(format!(
                        "name={value}: 1 to 64 letters, digits, '.', '_', '@' or '-'"
                    ));
                }
                line.name = Some(value);
                continue;
            }
            "hourly" => &mut line.limits.hourly,
            "daily" => &mut line.limits.daily,
            "results" => &mut line.limits.results,
            _ => return Err(format!("unknown option {option:?} (options: {OPTIONS})")),
        };
        if slot.is_some() {
            return Err(format!("{option} given twice"));
        }
        *slot = Some(count(option, value)?);
    }
    Ok(line)
}

/// The label of a credential without a name: its user for Basic
/// credentials, else a short hash of the key (enough to tell keys apart,
/// too short to stand for them).
fn default_label(credential: &str) -> String {
    match credential.split_once(':') {
        Some((user, _)) if !user.is_empty() => user.to_string(),
        _ => {
            let digest = Sha256::digest(credential.as_bytes());
            let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("key-{hex}")
        }
    }
}

impl ApiKeys {
    pub fn load(path: &Path) -> anyhow::Result<ApiKeys> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading API key file {}: {e}", path.display()))?;
        let keys = Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("API key file {}, {e}", path.display()))?;
        if keys.keys.is_empty() && keys.basic.is_empty() {
            anyhow::bail!("API key file {} holds no key", path.display());
        }
        Ok(keys)
    }

    pub fn parse(text: &str) -> Result<ApiKeys, KeyFileError> {
        let mut keys = ApiKeys::default();
        // Each credential and each label, with its line and what it set.
        let mut credentials: HashMap<&str, (usize, Option<&str>, Limits)> = HashMap::new();
        let mut labels: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |message: String| KeyFileError {
                line: number,
                message,
            };
            let line = parse_line(trimmed).map_err(err)?;
            match credentials.entry(line.credential) {
                Entry::Occupied(first) => {
                    let (at, name, limits) = *first.get();
                    // The same line twice is harmless; the same credential
                    // with other settings is ambiguous.
                    if (name, limits) == (line.name, line.limits) {
                        continue;
                    }
                    return Err(err(format!(
                        "the same credential as line {at}, with other options"
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert((number, line.name, line.limits));
                }
            }
            let label = match line.name {
                Some(name) => {
                    if let Some(at) = labels.get(name) {
                        return Err(err(format!("name={name} is already used on line {at}")));
                    }
                    name.to_string()
                }
                None => {
                    let label = default_label(line.credential);
                    if labels.contains_key(&label) {
                        format!("{label}-line{number}")
                    } else {
                        label
                    }
                }
            };
            labels.insert(label.clone(), number);
            let account = Arc::new(Account::new(label, line.limits));
            let map = if line.credential.contains(':') {
                &mut keys.basic
            } else {
                &mut keys.keys
            };
            map.insert(line.credential.to_string(), account);
        }
        Ok(keys)
    }

    /// Every account, in label order.
    pub(super) fn accounts(&self) -> Vec<&Account> {
        let mut all: Vec<&Account> = self
            .keys
            .values()
            .chain(self.basic.values())
            .map(|a| &**a)
            .collect();
        all.sort_by(|a, b| a.label().cmp(b.label()));
        all
    }

    /// Labels of the accounts whose `results` is above `results_max`
    /// (which then has no effect).
    pub fn results_above(&self, results_max: u64) -> Vec<String> {
        self.accounts()
            .into_iter()
            .filter(|a| a.limits().results.is_some_and(|r| r > results_max))
            .map(|a| a.label().to_string())
            .collect()
    }

    fn key(&self, key: &str) -> Option<&Arc<Account>> {
        self.keys.get(key.trim())
    }
}

/// Who is asking: the account of the credential given, when the API has
/// keys.
#[derive(Clone, Debug, Default)]
pub(super) struct Caller(Option<Arc<Account>>);

impl Caller {
    pub(super) fn account(&self) -> Option<&Account> {
        self.0.as_deref()
    }

    /// Most records one query of this caller returns.
    pub(super) fn results_max(&self, config: &ServeConfig) -> u64 {
        let own = self
            .account()
            .and_then(|a| a.limits().results)
            .unwrap_or(u64::MAX);
        config.results_max.min(own)
    }

    /// Records a query of this caller returns when it sets no limit.
    pub(super) fn default_limit(&self, config: &ServeConfig) -> u64 {
        config.default_limit.min(self.results_max(config))
    }
}

/// DNSDB surfaces: `X-API-Key`, 403 when missing or wrong.
pub(super) fn dnsdb(keys: &Option<ApiKeys>, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(keys) = keys else {
        return Ok(Caller::default());
    };
    let given = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    match given {
        Some(k) => match keys.key(k) {
            Some(account) => Ok(Caller(Some(Arc::clone(account)))),
            None => Err(ApiError::new(StatusCode::FORBIDDEN, "invalid API key")),
        },
        None => Err(ApiError::new(StatusCode::FORBIDDEN, "missing API key")),
    }
}

/// CIRCL surface: HTTP Basic or a bare token; 401 with a challenge when
/// absent, 403 when wrong.
pub(super) fn circl(keys: &Option<ApiKeys>, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    let Some(keys) = keys else {
        return Ok(Caller::default());
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        // A script's request (the web page's, marked the way browsers'
        // XMLHttpRequest callers are) gets no challenge: a browser answers
        // a challenge with its own login dialog, which would stall the
        // page's request instead of letting the page ask for a key.
        if headers.contains_key("x-requested-with") {
            return Err(Box::new(
                ApiError::new(StatusCode::UNAUTHORIZED, "this sensor needs an API key")
                    .into_response(),
            ));
        }
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"pdns\"")],
                "authentication required\n",
            )
                .into_response(),
        ));
    };
    let account = match value.split_once(' ') {
        Some((scheme, b64)) if scheme.eq_ignore_ascii_case("basic") => {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|cred| keys.basic.get(&cred))
        }
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") =>
        {
            keys.key(token)
        }
        _ => keys.key(value),
    };
    match account {
        Some(account) => Ok(Caller(Some(Arc::clone(account)))),
        None => Err(Box::new(
            (StatusCode::FORBIDDEN, "forbidden\n").into_response(),
        )),
    }
}

/// Other surfaces (bro-pdns, negative): either kind of credential.
pub(super) fn any(keys: &Option<ApiKeys>, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    if keys.is_none() {
        return Ok(Caller::default());
    }
    if let Ok(caller) = dnsdb(keys, headers) {
        return Ok(caller);
    }
    circl(keys, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> KeyFileError {
        ApiKeys::parse(text).unwrap_err()
    }

    #[test]
    fn files_without_options_keep_their_meaning() {
        let keys = ApiKeys::parse("# keys\n\n  testkey  \nuser:pass\nabc==\n").unwrap();
        assert!(keys.key("testkey").is_some());
        assert!(keys.key("abc==").is_some());
        assert!(keys.basic.contains_key("user:pass"));
        for a in keys.accounts() {
            assert_eq!(*a.limits(), Limits::default());
        }
        let labels: Vec<&str> = keys.accounts().iter().map(|a| a.label()).collect();
        assert!(labels.contains(&"user"), "{labels:?}");
        assert!(
            labels.iter().all(|l| !l.contains("testkey")),
            "a label shows the key: {labels:?}"
        );
    }

    #[test]
    fn options_set_limits_and_names() {
        let keys = ApiKeys::parse(
            "k1 name=soc hourly=1000 daily=20k results=2M  # the SOC\nu:p daily=5\n",
        )
        .unwrap();
        let soc = keys.key("k1").unwrap();
        assert_eq!(soc.label(), "soc");
        assert_eq!(
            *soc.limits(),
            Limits {
                hourly: Some(1000),
                daily: Some(20_000),
                results: Some(2_000_000)
            }
        );
        assert_eq!(keys.basic["u:p"].limits().daily, Some(5));
        assert_eq!(keys.results_above(1_000_000), vec!["soc".to_string()]);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, wants) in [
            ("k hourly=10x", 1, "hourly=10x: not a count"),
            ("k\nk2 daily=", 2, "daily=: not a count"),
            ("k monthly=3", 1, "unknown option \"monthly\""),
            ("k hourly=1 hourly=2", 1, "hourly given twice"),
            ("k hourly=0", 1, "at least 1"),
            ("u:my pass", 1, "expected OPTION=VALUE"),
            ("a name=x\nb name=x", 2, "already used on line 1"),
            ("a name=bad/name", 1, "name=bad/name"),
            ("a daily=5\n\na daily=6", 3, "same credential as line 1"),
            ("k results=99999999999999999999", 1, "not a count"),
        ] {
            let e = error(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(wants), "{text:?}: {e}");
        }
        // The same line twice is accepted.
        assert!(ApiKeys::parse("k daily=5\nk daily=5").is_ok());
    }

    #[test]
    fn default_labels_stay_unique() {
        let keys = ApiKeys::parse("bob:one\nbob:two\n").unwrap();
        let labels: Vec<&str> = keys.accounts().iter().map(|a| a.label()).collect();
        assert_eq!(labels, ["bob", "bob-line2"]);
    }
}
