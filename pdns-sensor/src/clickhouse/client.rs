//! A ClickHouse server over its HTTP interface: where it is, how to log in,
//! and the few requests the sensor makes (queries, RowBinary inserts).
//!
//! Blocking on purpose: the export thread and the API's blocking pool are
//! the only callers, and neither has anything else to do while a request
//! runs. The HTTP interface (not the native protocol) is what every server
//! version speaks the same way, Debian's 18.16 included, and what passes
//! through proxies and TLS terminators.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What went wrong talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("ClickHouse URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{path}: {cause}")]
    File {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: no certificate in the file")]
    NoCertificate { path: PathBuf },
    #[error("cannot reach ClickHouse at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("ClickHouse at {url} refused the credentials (user {user:?}): {message}")]
    Credentials {
        url: String,
        user: String,
        message: String,
    },
    #[error("ClickHouse at {url}: {message}")]
    Server {
        url: String,
        /// ClickHouse's error code (`Code: N` in the answer), if it gave one.
        code: Option<u32>,
        /// HTTP status.
        status: u16,
        message: String,
    },
}

impl ClickHouseError {
    /// Whether trying the same request again later may succeed (the server
    /// or the network is down, overloaded, restarting), as opposed to a
    /// request it will refuse every time (wrong credentials, a missing
    /// table, a malformed query).
    pub fn is_transient(&self) -> bool {
        match self {
            ClickHouseError::Unreachable { .. } => true,
            ClickHouseError::Server { status, code, .. } => {
                *status >= 500 && !code.is_some_and(is_permanent_code)
            }
            _ => false,
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClickHouseError::BadUrl { .. }
            | ClickHouseError::File { .. }
            | ClickHouseError::NoCertificate { .. } => "config",
            ClickHouseError::Unreachable { .. } => "unreachable",
            ClickHouseError::Credentials { .. } => "credentials",
            ClickHouseError::Server { code, status, .. } => match code {
                Some(60 | 81 | 16 | 47) => "schema",
                Some(241 | 242 | 252) => "overloaded",
                _ if *status >= 500 => "server",
                _ => "refused",
            },
        }
    }
}

/// Error codes that no retry cures: unknown table/database/column,
/// syntax, type mismatch, unknown setting, access denied.
fn is_permanent_code(code: u32) -> bool {
    matches!(
        code,
        16 | 47 | 53 | 60 | 62 | 81 | 115 | 192 | 193 | 194 | 497 | 516
    )
}

/// Where a ClickHouse server is and how to log in.
#[derive(Clone)]
pub struct Target {
    /// `scheme://host:port/` (no credentials, no path).
    base: String,
    user: Option<String>,
    password: Option<String>,
    pub database: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Target {
    /// Parses `http[s]://[user[:password]@]host[:port][/database]`
    /// (database default `default`; user and password percent-encoded if
    /// they hold reserved characters). `password_file`, if given, holds
    /// the password (first line), so it need not appear on a command line
    /// or in a unit file.
    pub fn parse(url: &str, password_file: Option<&Path>) -> Result<Target, ClickHouseError> {
        let bad = |reason: &str| ClickHouseError::BadUrl {
            url: redact(url),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected http://HOST:PORT or https://HOST:PORT"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https (the HTTP interface)"));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if path.contains('?') || path.contains('#') {
            return Err(bad("no query string or fragment: the path is the database"));
        }
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if let Some((_, port)) = host.rsplit_once(':')
            && !host.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(bad("the port is not a number"));
        }
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("user or password is not UTF-8 after percent-decoding"))
        };
        let (user, mut password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(decode(user)?), Some(decode(pass)?)),
                None => (Some(decode(u)?), None),
            },
        };
        if let Some(file) = password_file {
            let text = std::fs::read_to_string(file).map_err(|cause| ClickHouseError::File {
                path: file.to_path_buf(),
                cause,
            })?;
            password = Some(text.lines().next().unwrap_or("").to_string());
        }
        let database = path.trim_end_matches('/');
        let database = if database.is_empty() {
            "default".to_string()
        } else {
            decode(database)?
        };
        if !database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad("the database name may hold only letters, digits and _"));
        }
        Ok(Target {
            base: format!("{scheme}://{host}/"),
            user: user.filter(|u| !u.is_empty()),
            password,
            database,
        })
    }

    /// The URL without the password, for messages and logs.
    pub fn display(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let (scheme, host) = self.base.split_once("://").unwrap_or(("", &self.base));
        format!("{scheme}://{user}{host}{}", self.database)
    }

    fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("default")
    }
}

/// A URL as typed, with any password replaced.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// A connection (pool) to one server.
#[derive(Clone)]
pub struct Client {
    target: Target,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.target.display())
    }
}

/// How a client connects.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// PEM file of the CA(s) to trust for https (default: the Mozilla
    /// roots).
    pub ca_file: Option<PathBuf>,
    /// Bound on a whole request, connection to last byte.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca_file: None,
            timeout: Duration::from_secs(60),
        }
    }
}

impl Client {
    pub fn new(target: Target, options: &ClientOptions) -> Result<Client, ClickHouseError> {
        let roots = match &options.ca_file {
            None => ureq::tls::RootCerts::WebPki,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|cause| ClickHouseError::File {
                    path: path.clone(),
                    cause,
                })?;
                let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(ClickHouseError::NoCertificate { path: path.clone() });
                }
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(options.timeout.min(Duration::from_secs(10))))
            .tls_config(tls)
            .build()
            .into();
        Ok(Client { target, agent })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn url(&self, params: &[(&str, &str)]) -> String {
        let mut url = format!("{}?database={}", self.target.base, self.target.database);
        for (k, v) in params {
            url.push('&');
            url.push_str(k);
            url.push('=');
            url.extend(utf8_percent_encode(v, NON_ALPHANUMERIC));
        }
        url
    }

    fn post(
        &self,
        params: &[(&str, &str)],
        body: &[u8],
    ) -> Result<ureq::http::Response<ureq::Body>, ClickHouseError> {
        let mut request = self.agent.post(self.url(params));
        if self.target.user.is_some() || self.target.password.is_some() {
            let credentials = format!(
                "{}:{}",
                self.target.user(),
                self.target.password.as_deref().unwrap_or("")
            );
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            request = request.header("Authorization", format!("Basic {encoded}"));
        }
        let mut response = request
            .send(body)
            .map_err(|e| ClickHouseError::Unreachable {
                url: self.target.display(),
                cause: e.to_string(),
            })?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response);
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let message = text.trim().to_string();
        let code = message
            .strip_prefix("Code: ")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok());
        if status == 401 || status == 403 || matches!(code, Some(192..=194 | 516)) {
            return Err(ClickHouseError::Credentials {
                url: self.target.display(),
                user: self.target.user().to_string(),
                message,
            });
        }
        Err(ClickHouseError::Server {
            url: self.target.display(),
            code,
            status,
            message: if message.is_empty() {
                format!("HTTP status {status}")
            } else {
                message
            },
        })
    }

    /// Runs a statement and returns its whole (small) answer as text.
    pub fn query(&self, sql: &str) -> Result<String, ClickHouseError> {
        let mut response = self.post(&[], sql.as_bytes())?;
        response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| ClickHouseError::Unreachable {
                url: self.target.display(),
                cause: format!("reading the answer: {e}"),
            })
    }

    /// Runs a query and streams its answer (for large results, read as
    /// they arrive). `settings` are ClickHouse settings for this query.
    pub fn query_stream(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<impl Read + use<>, ClickHouseError> {
        let response = self.post(settings, sql.as_bytes())?;
        Ok(response.into_body().into_reader())
    }

    /// Inserts a RowBinary body into `table` of the target database.
    /// `settings` go with the insert (a de-duplication token, say).
    pub fn insert_rowbinary(
        &self,
        table: &str,
        body: &[u8],
        settings: &[(&str, &str)],
    ) -> Result<(), ClickHouseError> {
        let query = format!(
            "INSERT INTO {}.{table} FORMAT RowBinary",
            self.target.database
        );
        let mut params = vec![("query", query.as_str())];
        params.extend_from_slice(settings);
        let mut response = self.post(&params, body)?;
        // Read to the end: the connection goes back to the pool only then.
        let _ = std::io::copy(&mut response.body_mut().as_reader(), &mut std::io::sink());
        Ok(())
    }

    /// The server's version (`SELECT version()`), as numbers.
    pub fn version(&self) -> Result<Vec<u32>, ClickHouseError> {
        let text = self.query("SELECT version()")?;
        Ok(text
            .trim()
            .split('.')
            .map_while(|p| p.parse().ok())
            .collect())
    }

    /// Whether the server knows a setting (they come and go by version).
    pub fn knows_setting(&self, name: &str) -> Result<bool, ClickHouseError> {
        let sql = format!(
            "SELECT count() FROM system.settings WHERE name = '{}'",
            name.replace(['\\', '\''], "")
        );
        Ok(self.query(&sql)?.trim() != "0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_and_without_credentials_and_database() {
        let t = Target::parse("http://127.0.0.1:8123", None).unwrap();
        assert_eq!(
            (t.base.as_str(), t.user.as_deref(), t.database.as_str()),
            ("http://127.0.0.1:8123/", None, "default")
        );
        let t = Target::parse("https://pdns:s%40cret@ch.example:8443/passive/", None).unwrap();
        assert_eq!(t.base, "https://ch.example:8443/");
        assert_eq!(t.user.as_deref(), Some("pdns"));
        assert_eq!(t.password.as_deref(), Some("s@cret"));
        assert_eq!(t.database, "passive");
        assert_eq!(t.display(), "https://pdns@ch.example:8443/passive");
        assert!(!format!("{t:?}").contains("cret"));
    }

    #[test]
    fn a_password_file_wins_over_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let t = Target::parse("http://u:inline@h:1/db", Some(&file)).unwrap();
        assert_eq!(t.password.as_deref(), Some("from-file"));
        let missing = Target::parse("http://h:1", Some(&dir.path().join("nope")));
        assert!(matches!(missing, Err(ClickHouseError::File { .. })));
    }

    #[test]
    fn bad_urls_say_why_without_the_password() {
        for (url, why) in [
            ("127.0.0.1:8123", "expected http"),
            ("tcp://h:9000", "scheme"),
            ("http://h:port", "port"),
            ("http://", "no host"),
            ("http://h:1/db?x=1", "query string"),
            ("http://h:1/my-db", "database name"),
        ] {
            let e = Target::parse(url, None).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
        let e = Target::parse("tcp://u:hunter2@h:9000", None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn transient_errors_are_told_from_permanent_ones() {
        let server = |status, code| ClickHouseError::Server {
            url: String::new(),
            code,
            status,
            message: String::new(),
        };
        assert!(server(500, None).is_transient());
        assert!(server(503, Some(252)).is_transient());
        assert!(!server(404, Some(60)).is_transient());
        assert!(!server(500, Some(60)).is_transient());
        assert!(
            ClickHouseError::Unreachable {
                url: String::new(),
                cause: String::new()
            }
            .is_transient()
        );
        assert_eq!(server(404, Some(60)).kind(), "schema");
    }
}
