//! Serve: the HTTP API over the store, in the shapes existing tools speak.
//!
//! | surface | paths | for |
//! |---|---|---|
//! | DNSDB API v2 (SAF) | `/dnsdb/v2/{lookup,summarize}/...`, `rate_limit`, `ping`, Flex | MISP `farsight_passivedns`, dnsdbq, dnsdb2, IntelOwl |
//! | DNSDB API v1 | `/lookup/...` | Cortex analyzers, passivedns-client |
//! | CIRCL passive DNS | `/pdns/query/{q}` | PyPDNS, `dnsdbq -u circl`, MISP (with the shipped module) |
//! | bro-pdns | `/dns/{q}`, `/dns/{find,like}/{tuples,individual}/{q}` | users migrating from bro-pdns |
//! | negative answers | `/negative/{name}` | our own: NXDOMAIN/NODATA/SERVFAIL/... |
//! | metrics | `/metrics` | Prometheus |
//!
//! Every query goes through [`engine::Lookup`] with a result cap and a
//! deadline, and every response body is streamed from a blocking reader
//! thread through a bounded channel ([`stream`]), so memory stays bounded
//! however many records match. Bad paths, names, CIDRs, types and fences get
//! the surface's own error shape with a 4xx status.

pub mod auth;
pub mod bropdns;
pub mod circl;
pub mod dnsdb;
pub mod engine;
pub mod negative;
pub mod params;
pub mod pattern;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::METRICS;
use crate::store::Store;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// `None`: no authentication.
    pub keys: Option<auth::ApiKeys>,
    /// Most records one query may return (DNSDB `results_max`).
    pub results_max: u64,
    /// Records returned when the client gives no limit.
    pub default_limit: u64,
    /// Largest `offset` accepted (DNSDB `offset_max`).
    pub offset_max: u64,
    /// Longest a query may read before it ends as limited.
    pub query_timeout: Duration,
    /// COF `origin` on the CIRCL surface.
    pub origin: String,
    /// COF `sensor_id` on the CIRCL surface, if set.
    pub sensor_id: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8081".parse().expect("valid address"),
            keys: None,
            results_max: 1_000_000,
            default_limit: 10_000,
            offset_max: 3_000_000,
            query_timeout: Duration::from_secs(30),
            origin: "urn:pdns-sensor".to_string(),
            sensor_id: None,
        }
    }
}

/// Shared by every handler.
pub struct AppState {
    pub store: Arc<Store>,
    pub config: ServeConfig,
}

pub type SharedState = Arc<AppState>;

/// An error in the surface's own shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string() + "\n";
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The router with every surface.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/dnsdb/v2/{*rest}", get(dnsdb::v2))
        .route("/lookup/{*rest}", get(dnsdb::v1))
        .route("/pdns/query/{*q}", get(circl::query))
        .route("/dns/{q}", get(bropdns::python))
        .route("/dns/{search}/{shape}/{q}", get(bropdns::go))
        .route("/negative/{q}", get(negative::query))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "unknown path") })
        .layer(axum::middleware::from_fn(observe))
        .with_state(state)
}

/// Which surface a path belongs to (a metrics label).
fn surface(path: &str) -> &'static str {
    match path.split('/').nth(1).unwrap_or("") {
        "dnsdb" => "dnsdb_v2",
        "lookup" => "dnsdb_v1",
        "pdns" => "circl",
        "dns" => "bropdns",
        "negative" => "negative",
        "metrics" => "metrics",
        _ => "other",
    }
}

/// Counts requests by surface and status, and times them.
async fn observe(request: Request, next: Next) -> Response {
    let surface = surface(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    METRICS
        .api_requests
        .with_label_values(&[surface, response.status().as_str()])
        .inc();
    METRICS
        .api_seconds
        .with_label_values(&[surface])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(state): State<SharedState>) -> Response {
    let store = Arc::clone(&state.store);
    let text = tokio::task::spawn_blocking(move || {
        crate::metrics::update_store_gauges(&store);
        crate::metrics::render()
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Streamed bodies go out in several writes; without TCP_NODELAY, Nagle's
/// algorithm and delayed ACKs hold each small response back ~40 ms.
pub fn nodelay(listener: tokio::net::TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

/// Serves until `shutdown` resolves. A reader store (`Store::open_reader`)
/// is brought up to date with the writer every second.
pub async fn serve(
    store: Arc<Store>,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!("API listening on http://{}", listener.local_addr()?);
    let listener = nodelay(listener);
    let catch_up = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let store = Arc::clone(&store);
                let _ = tokio::task::spawn_blocking(move || store.catch_up()).await;
            }
        })
    };
    let state = Arc::new(AppState { store, config });
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    catch_up.abort();
    Ok(result?)
}
