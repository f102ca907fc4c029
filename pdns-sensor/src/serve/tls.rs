//! TLS certificates for the API: a PEM chain and key read at start-up,
//! checked against each other, and read again on SIGHUP.
//!
//! A reload builds a new rustls configuration and swaps it in: every
//! handshake takes the configuration current when it starts, so new
//! connections get the new certificate while the listener keeps its socket
//! and established connections keep the session they negotiated. The new
//! configuration has a session cache of its own, so no session made under
//! the old certificate resumes under the new one (after a key compromise,
//! the old key stops mattering for new connections at once). A reload that
//! fails for any reason (unreadable file, no key, key and certificate that
//! do not belong together) changes nothing.
//!
//! rustls with its default aws-lc-rs provider (no OpenSSL), TLS 1.2 and
//! 1.3, ALPN `http/1.1` only: the API speaks HTTP/1.1 over TLS as it does
//! in clear.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, anyhow, bail};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use crate::metrics;
use crate::vocab::time::format_rfc3339;

/// The API's TLS set-up: where the certificate and key are read from, and
/// the configuration every connection uses.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// The configuration of new handshakes.
    current: RwLock<Arc<ServerConfig>>,
}

/// What an operator wants to know of the certificate being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CertInfo {
    subject: String,
    /// Hex bytes separated by colons (`10:01`).
    serial: String,
    not_before: i64,
    not_after: i64,
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |t: i64| format_rfc3339(t.max(0) as u64);
        write!(
            f,
            "subject {}, serial {}, valid {} to {}",
            self.subject,
            self.serial,
            time(self.not_before),
            time(self.not_after)
        )
    }
}

/// Far more than any certificate chain or key: a bigger file is a wrong
/// path (and `/dev/zero` must not fill memory).
const MAX_FILE: u64 = 1 << 20;

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let context = || format!("cannot read the TLS {what} {}", path.display());
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .with_context(context)?;
    if bytes.len() as u64 > MAX_FILE {
        bail!("{}: larger than 1 MiB, not a PEM file", context());
    }
    Ok(bytes)
}

/// The PEM section kinds in `bytes`, for saying what a file holds instead.
fn sections(bytes: &[u8]) -> String {
    let kinds: Vec<String> = <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .filter_map(|s| s.ok())
        .map(|(kind, _)| format!("{kind:?}"))
        .collect();
    if kinds.is_empty() {
        "no PEM section".to_string()
    } else {
        kinds.join(", ")
    }
}

fn pem_error(path: &Path, what: &str, e: pem::Error) -> anyhow::Error {
    anyhow!("the TLS {what} {} is not valid PEM: {e}", path.display())
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path, "certificate file")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate file", e))?;
    if chain.is_empty() {
        bail!(
            "the TLS certificate file {} holds no PEM CERTIFICATE (found: {})",
            path.display(),
            sections(&bytes)
        );
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path, "key file")?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => bail!(
            "the TLS key file {} holds no unencrypted private key (PEM PRIVATE KEY, RSA PRIVATE \
             KEY or EC PRIVATE KEY; found: {})",
            path.display(),
            sections(&bytes)
        ),
        Err(e) => Err(pem_error(path, "key file", e)),
    }
}

/// Facts of the leaf certificate.
fn info(leaf: &CertificateDer<'_>, path: &Path) -> Result<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
        anyhow!(
            "the first certificate in {} is not a valid X.509 certificate: {e}",
            path.display()
        )
    })?;
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Reads and checks a chain and its key: the key must be one rustls can
/// sign with, and the one the leaf certificate was issued for.
fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, CertInfo)> {
    let chain = load_chain(cert)?;
    let info = info(&chain[0], cert)?;
    let signing = provider
        .key_provider
        .load_private_key(load_key(key)?)
        .map_err(|e| {
            anyhow!(
                "the TLS key file {} holds a key rustls cannot use: {e}",
                key.display()
            )
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => bail!(
            "the TLS key file {} does not belong to the certificate in {} ({e})",
            key.display(),
            cert.display()
        ),
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now > info.not_after {
        tracing::warn!("the TLS certificate {} has expired: {info}", cert.display());
    } else if now < info.not_before {
        tracing::warn!(
            "the TLS certificate {} is not valid yet: {info}",
            cert.display()
        );
    }
    Ok((Arc::new(certified), info))
}

/// TLS 1.3 and 1.2, no client certificates, HTTP/1.1.
fn server_config(
    provider: &Arc<CryptoProvider>,
    certified: Arc<CertifiedKey>,
) -> Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("setting up TLS")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Tls {
    /// Reads the PEM certificate chain (leaf first) and private key; every
    /// error names the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (certified, info) = load(cert, key, &provider)?;
        let config = server_config(&provider, certified)?;
        tracing::info!("TLS certificate {}: {info}", cert.display());
        metrics::publish_tls_enabled();
        metrics::publish_tls_certificate(info.not_after);
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The configuration a new connection is accepted with.
    pub(super) fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the files again; on success new handshakes use what they now
    /// hold, on failure nothing changes. Logs and counts either way.
    pub(super) fn reload(&self) -> Result<CertInfo> {
        let result = load(&self.cert, &self.key, &self.provider)
            .and_then(|(certified, info)| Ok((server_config(&self.provider, certified)?, info)));
        metrics::publish_tls_reload(result.is_ok());
        match result {
            Ok((config, info)) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                metrics::publish_tls_certificate(info.not_after);
                tracing::info!(
                    "TLS certificate reloaded from {}: {info}",
                    self.cert.display()
                );
                Ok(info)
            }
            Err(e) => {
                tracing::error!(
                    "TLS certificate not reloaded, still serving the previous one: {e:#}"
                );
                Err(e)
            }
        }
    }
}
