//! Serving connections: the accept loop, with the limits a server facing
//! untrusted clients needs.
//!
//! `axum::serve` serves every connection for as long as the client likes
//! and, on shutdown, waits for each to finish its request. A client that
//! sends half a request head and stops (slowloris) therefore holds its
//! connection forever, and kept `serve` from exiting on SIGTERM until the
//! client went away — a `systemctl stop` then waits for its timeout. So
//! the API accepts connections itself, with hyper underneath as before:
//!
//! * **header timeout** (`--header-timeout`): a request head must arrive
//!   whole within this time of the connection becoming ready for one, or
//!   the connection is closed;
//! * **connection cap** (`--max-connections`): beyond it a new connection
//!   is closed at once (and counted) instead of served, so stalled clients
//!   cannot exhaust descriptors or memory;
//! * **bounded shutdown**: on the shutdown signal the listener closes,
//!   idle connections close, requests in flight get [`SHUTDOWN_GRACE`] to
//!   finish, and then whatever is left is dropped and the server returns.
//!
//! Accepted, refused and timed-out connections are Prometheus counters;
//! open connections a gauge.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};

use crate::metrics;

/// How long requests in flight may take to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Limits on what clients may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest a request head may take to arrive.
    pub header_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on every connection `listener` accepts, within `limits`,
/// until `shutdown` resolves; then as described in the module docs.
pub(super) async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Closed (dropped) when shutdown begins: every connection watches it.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::publish_api_connection("refused");
            tracing::debug!(
                "API connection from {peer:?} refused: {} connections open",
                limits.max_connections
            );
            drop(io);
            continue;
        };
        metrics::publish_api_connection("accepted");
        // Open from the moment it holds a slot, not from when its task
        // first runs: under load a task waits, and the gauge must not show
        // fewer connections than hold slots.
        let open = metrics::ApiConnectionOpen::new();
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            // Declared in this order so that the slot goes back before the
            // gauge drops: a scrape that sees only itself open knows every
            // other slot is free.
            let _open = open;
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = http.serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    metrics::publish_api_connection("header_timeout");
                }
                tracing::trace!("API connection from {peer:?}: {e}");
            }
        });
    }
    drop(listener);
    drop(stop_tx);
    // Every connection holds a slot until it ends: all slots back means
    // all connections done.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        let left = limits.max_connections.max(1) - slots.available_permits();
        tracing::info!(
            "{left} API connection(s) still open {}s after the shutdown signal: closed",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}
