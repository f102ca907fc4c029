//! One HTTP/1.0 request at a time, either from here (the sensor's API in
//! this namespace) or from inside balboa's namespace ([`NsHttp`], on a
//! [`crate::netns::NsThread`]): HTTP/1.0 so the answer is never chunked
//! and a plain read to the end is the whole body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::{Netns, NsThread};

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP to 127.0.0.1 inside a network namespace.
pub(super) struct NsHttp(NsThread);

impl NsHttp {
    pub(super) fn new(ns: &Netns) -> Result<NsHttp> {
        Ok(NsHttp(ns.thread()?))
    }

    /// Whether something accepts connections on `port`.
    pub(super) fn connects(&self, port: u16) -> bool {
        self.0
            .run(move || TcpStream::connect(("127.0.0.1", port)).is_ok())
            .unwrap_or(false)
    }

    pub(super) fn request(
        &self,
        port: u16,
        method: &'static str,
        path: &'static str,
        body: Option<String>,
    ) -> Result<(u16, String)> {
        self.0
            .run(move || http_request(port, method, path, body.as_deref()))?
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (so the answer is never
/// chunked): status and body.
pub(super) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed HTTP answer from port {port}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status from port {port}"))?;
    Ok((status, body.to_string()))
}
