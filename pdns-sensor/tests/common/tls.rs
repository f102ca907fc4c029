//! A throw-away certificate authority (rcgen) for the TLS tests, and a
//! keep-alive HTTPS client (rustls) that can tell which certificate a
//! connection was served with.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::Response;

/// A CA made for one test.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

/// A server certificate and its key, as files.
pub(crate) struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub(crate) fn new() -> TestCa {
        TestCa::named("pdns-sensor test CA")
    }

    /// A CA with its own name (two CAs of one name would confuse a
    /// client looking up the issuer by name).
    pub(crate) fn named(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            der: cert.der().clone(),
            pem: cert.pem(),
        }
    }

    /// Writes `ca.pem` into `dir`; returns its path.
    pub(crate) fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A server certificate for `127.0.0.1` and `localhost` with `serial`,
    /// written (chain: leaf then CA) to `dir/NAME.pem` and `dir/NAME.key`.
    pub(crate) fn server_cert(&self, dir: &Path, name: &str, serial: u64) -> ServerCert {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "pdns-sensor test server");
        params.serial_number = Some(SerialNumber::from(serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem() + &self.pem).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        ServerCert {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
        }
    }

    /// A client trusting only this CA.
    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }
}

/// The serial number of a DER certificate, as hex.
pub(crate) fn serial(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial_as_string()
}

/// One HTTPS connection, kept alive across requests.
pub(crate) struct TlsConn {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
    addr: SocketAddr,
}

impl TlsConn {
    pub(crate) fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsConn {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = ClientConnection::new(config, name).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        // Complete the handshake now, so the peer certificate is known.
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        TlsConn {
            stream: BufReader::new(stream),
            addr,
        }
    }

    /// The certificate this connection was served with.
    pub(crate) fn peer_certificate(&self) -> CertificateDer<'static> {
        self.stream.get_ref().conn.peer_certificates().unwrap()[0].clone()
    }

    /// The TLS version negotiated.
    pub(crate) fn protocol(&self) -> rustls::ProtocolVersion {
        self.stream.get_ref().conn.protocol_version().unwrap()
    }

    /// A GET on this connection (kept alive).
    pub(crate) fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let stream = self.stream.get_mut();
        stream.write_all(req.as_bytes()).unwrap();
        stream.flush().unwrap();
        read_response(&mut self.stream)
    }
}

/// Reads one HTTP/1.1 response (Content-Length or chunked).
fn read_response(r: &mut impl BufRead) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = header("content-length") {
        let mut chunk = vec![0; n.parse().unwrap()];
        r.read_exact(&mut chunk).unwrap();
        body = chunk;
    }
    Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}
