//! Accepting API connections, in clear or over TLS.
//!
//! Every connection gets TCP_NODELAY: streamed bodies go out in several
//! writes, and without it Nagle's algorithm and delayed ACKs hold each
//! small response back ~40 ms.
//!
//! Over TLS, handshakes run side by side (the `tls-listener` crate) with a
//! deadline, so a client that connects and says nothing holds no one else
//! back and is dropped after [`HANDSHAKE_TIMEOUT`]. A client that speaks
//! plain HTTP to the TLS port gets a plain-text `400` telling it to use
//! `https://`, rather than a connection closed without a word. Failed
//! handshakes are counted by outcome and logged at debug level only: port
//! scanners would otherwise fill the log.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::{Listener, ListenerExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::tls::Tls;
use crate::metrics;

/// Longest a client may take to complete the TLS handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of the answer to plain HTTP on the TLS port.
const PLAIN_HTTP_REFUSAL: &str = "This port speaks HTTPS: use an https:// URL.\n";

/// Connections in clear.
pub(super) fn plain(listener: TcpListener) -> impl Listener<Addr = SocketAddr> {
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

/// Connections over TLS, with the handshake done.
pub(super) struct TlsListener {
    inner: tls_listener::TlsListener<TcpListener, Handshake>,
}

impl TlsListener {
    pub(super) fn new(listener: TcpListener, tls: Arc<Tls>) -> TlsListener {
        let handshake = Handshake { tls };
        TlsListener {
            inner: tls_listener::builder(handshake)
                .handshake_timeout(HANDSHAKE_TIMEOUT)
                .listen(listener),
        }
    }
}

/// How a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    /// Connected and closed without a byte: a port probe or a TCP health
    /// check.
    #[error("closed before the handshake")]
    Closed,
    #[error("plain HTTP sent to the TLS port (answered 400)")]
    PlainHttp,
    #[error("{0}")]
    Tls(#[from] io::Error),
}

/// One connection's way from TCP to TLS, with the configuration current
/// when it starts (a reload swaps it).
#[derive(Clone)]
pub(super) struct Handshake {
    tls: Arc<Tls>,
}

impl tls_listener::AsyncTls<TcpStream> for Handshake {
    type Stream = TlsStream<TcpStream>;
    type Error = HandshakeError;
    type AcceptFuture = Pin<Box<dyn Future<Output = Result<Self::Stream, HandshakeError>> + Send>>;

    fn accept(&self, tcp: TcpStream) -> Self::AcceptFuture {
        let acceptor = TlsAcceptor::from(self.tls.config());
        Box::pin(async move {
            let _ = tcp.set_nodelay(true);
            // A TLS client opens with a handshake record (0x16); an HTTP
            // request opens with its method, in capitals.
            let mut first = [0u8; 1];
            if tcp.peek(&mut first).await? == 0 {
                return Err(HandshakeError::Closed);
            }
            if first[0].is_ascii_uppercase() {
                refuse_plain_http(tcp).await;
                return Err(HandshakeError::PlainHttp);
            }
            Ok(acceptor.accept(tcp).await?)
        })
    }
}

/// Reads the request head (so closing does not reset the connection
/// before the client reads the answer), answers 400 and closes.
async fn refuse_plain_http(mut tcp: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{PLAIN_HTTP_REFUSAL}",
        PLAIN_HTTP_REFUSAL.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use tls_listener::Error;
        loop {
            let (outcome, peer, why) = match self.inner.accept().await {
                Ok(connection) => {
                    metrics::publish_tls_handshake("ok");
                    return connection;
                }
                Err(Error::ListenerError(e)) => {
                    accept_error(e).await;
                    continue;
                }
                Err(Error::TlsAcceptError {
                    error, peer_addr, ..
                }) => {
                    let outcome = match error {
                        HandshakeError::Closed => "closed",
                        HandshakeError::PlainHttp => "plain_http",
                        HandshakeError::Tls(_) => "failed",
                    };
                    (outcome, Some(peer_addr), error.to_string())
                }
                Err(Error::HandshakeTimeout { peer_addr, .. }) => {
                    ("timeout", Some(peer_addr), "no handshake in time".into())
                }
                Err(e) => ("failed", None, e.to_string()),
            };
            metrics::publish_tls_handshake(outcome);
            tracing::debug!("TLS handshake with {peer:?} {outcome}: {why}");
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.listener().local_addr()
    }
}

/// As axum does for its own listener: a failed accept of one connection
/// is skipped; anything else (out of file descriptors) is logged and
/// retried after a second.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!("API accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
