//! Serve: the HTTP API over the store, in the shapes existing tools speak.
//!
//! | surface | paths | for |
//! |---|---|---|
//! | DNSDB API v2 (SAF) | `/dnsdb/v2/{lookup,summarize}/...`, `rate_limit`, `ping`, Flex | MISP `farsight_passivedns`, dnsdbq, dnsdb2, IntelOwl |
//! | DNSDB API v1 | `/lookup/...` | Cortex analyzers, passivedns-client |
//! | CIRCL passive DNS | `/pdns/query/{q}` | PyPDNS, `dnsdbq -u circl`, MISP (with the shipped module) |
//! | bro-pdns | `/dns/{q}`, `/dns/{find,like}/{tuples,individual}/{q}` | users migrating from bro-pdns |
//! | negative answers | `/negative/{name}` | our own: NXDOMAIN/NODATA/SERVFAIL/... |
//! | newly observed domains | `/nod?since=T` | our own: first sighting of each registrable domain |
//! | metrics | `/metrics` | Prometheus |
//! | web page | `/`, `/ui/...` | analysts in a browser (see `ui`) |
//!
//! In clear or over TLS (`tls`: certificates reloaded on SIGHUP; `listen`:
//! how connections are accepted). With a key file (`auth`), every
//! credential may carry quotas (`quota`): requests per hour and per day,
//! records per query; over quota is a 429 in the surface's error shape.
//!
//! Every query goes through `engine::Lookup` with a result cap and a
//! deadline, and every response body is streamed from a blocking reader
//! thread through a bounded channel (`stream`), so memory stays bounded
//! however many records match. A lookup of the local store is first tried
//! on the request's own thread within a 1 ms budget (`inline`): the usual
//! small answer then skips the hand-off between threads. Bad paths, names,
//! CIDRs, types and fences get the surface's own error shape with a 4xx
//! status.

pub mod auth;
pub mod backend;
mod bropdns;
mod circl;
mod cof;
pub mod connections;
mod dnsdb;
mod engine;
mod flex;
mod inline;
mod listen;
mod negative;
mod nod;
mod params;
mod pattern;
pub mod quota;
mod stream;
pub mod tls;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics;
pub use backend::Backend;

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
    /// `None`: plain HTTP.
    pub tls: Option<Arc<tls::Tls>>,
    /// The time quotas are counted in.
    pub clock: quota::Clock,
    /// What one client may hold: connections, time to send a request head.
    pub limits: connections::ConnectionLimits,
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
            tls: None,
            clock: quota::Clock::default(),
            limits: connections::ConnectionLimits::default(),
        }
    }
}

/// Shared by every handler.
pub struct AppState {
    pub backend: Backend,
    pub config: ServeConfig,
}

pub type SharedState = Arc<AppState>;

/// How the surfaces without a key scheme of their own (bro-pdns,
/// `/negative`, `/nod`) admit a request: either kind of credential, then
/// the caller's quota.
fn admit_any(
    state: &SharedState,
    headers: &header::HeaderMap,
) -> Result<auth::Caller, Box<Response>> {
    let caller = auth::any(&state.config.keys, headers)?;
    quota::admit(caller.account(), &state.config.clock).map_err(|e| Box::new(e.into_response()))?;
    Ok(caller)
}

/// An error in the surface's own shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Adds `Retry-After: seconds`.
    fn retry_after(self, seconds: u64) -> Self {
        ApiError {
            retry_after: Some(seconds),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string() + "\n";
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
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
        .route("/nod", get(nod::query))
        .route("/metrics", get(metrics))
        .merge(ui::routes())
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
        "nod" => "nod",
        "metrics" => "metrics",
        "" | "ui" => "ui",
        _ => "other",
    }
}

/// Counts requests by surface and status, and times them.
async fn observe(request: Request, next: Next) -> Response {
    let surface = surface(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::publish_api_request(surface, response.status().as_str(), started.elapsed());
    response
}

async fn metrics(State(state): State<SharedState>) -> Response {
    let state = Arc::clone(&state);
    let text = tokio::task::spawn_blocking(move || {
        if let Some(store) = state.backend.store() {
            metrics::publish_store(store);
        }
        if let Some(keys) = &state.config.keys {
            quota::publish_standing(keys, &state.config.clock);
        }
        metrics::render()
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The API, bound and ready to serve: `serve` and `run` both start it this
/// way. Binding comes first so that `run` can take a port below 1024
/// before it drops privileges, and serving later, over whichever store
/// the command has.
pub struct Api {
    listener: tokio::net::TcpListener,
    config: ServeConfig,
    /// SIGHUP, caught from binding on: it reloads the certificates, and
    /// without TLS it is logged and otherwise ignored (its default action
    /// would end the process, and `systemctl reload` sends it).
    hangup: tokio::signal::unix::Signal,
}

impl Api {
    /// Binds the listen address of `config`.
    pub async fn bind(config: ServeConfig) -> anyhow::Result<Api> {
        use anyhow::Context;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        Ok(Api {
            listener,
            config,
            hangup,
        })
    }

    /// The address actually bound (port 0 asks for any free port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `backend` until `shutdown` resolves. A reader store
    /// ([`crate::store::Store::open_reader`]) is brought up to date with the writer every
    /// second.
    pub async fn serve(
        self,
        backend: Backend,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let scheme = if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("API listening on {scheme}://{}", self.local_addr()?);
        if let Some(keys) = &self.config.keys {
            quota::publish_keys(keys);
        }
        let reload = {
            let tls = self.config.tls.clone();
            let mut hangup = self.hangup;
            Some(tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    let Some(tls) = &tls else {
                        tracing::info!(
                            "SIGHUP: nothing to reload (the API serves plain HTTP; SIGHUP reloads \
                             TLS certificates)"
                        );
                        continue;
                    };
                    tracing::info!("SIGHUP: reloading the TLS certificate");
                    let tls = Arc::clone(tls);
                    // Errors are logged and counted by reload itself.
                    let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
                }
            }))
        };
        let reader = backend.store().filter(|s| s.is_reader()).cloned();
        let catch_up = reader.map(|store| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut failing = 0u64;
                loop {
                    tick.tick().await;
                    let store = Arc::clone(&store);
                    let result = tokio::task::spawn_blocking(move || store.catch_up()).await;
                    match result {
                        Ok(Ok(())) => {
                            if failing > 0 {
                                tracing::info!("catching up with the writer again");
                            }
                            failing = 0;
                        }
                        Ok(Err(e)) => {
                            metrics::publish_catch_up_failure();
                            // The first failure, then one line a minute.
                            if failing.is_multiple_of(60) {
                                tracing::warn!(
                                    "{e}; the API serves what it read last \
                                     (failed {} time(s) in a row)",
                                    failing + 1
                                );
                            }
                            failing += 1;
                        }
                        Err(_) => {} // the runtime is shutting down
                    }
                }
            })
        });
        let tls = self.config.tls.clone();
        let limits = self.config.limits;
        let app = router(Arc::new(AppState {
            backend,
            config: self.config,
        }));
        metrics::publish_api_listening();
        match tls {
            Some(tls) => {
                let listener = listen::TlsListener::new(self.listener, tls);
                connections::serve(listener, app, limits, shutdown).await;
            }
            None => {
                connections::serve(listen::plain(self.listener), app, limits, shutdown).await;
            }
        }
        for task in [catch_up, reload].into_iter().flatten() {
            task.abort();
        }
        Ok(())
    }
}

/// Runs the parsers of paths and parameters, private to the surfaces, over
/// hostile text for [`crate::fuzzing::api_params`]: the first line is a path
/// and query string, each further line a value for every parser of names,
/// addresses, types and the web page's box. Panics where an invariant
/// breaks.
pub(crate) fn fuzz_parse(text: &str) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let (path, query) = first.split_once('?').unwrap_or((first, ""));
    let _ = params::segments(path);
    let q = params::parse_query(Some(query));
    for key in q.keys() {
        let _ = params::boolean(&q, key);
        let _ = params::unsigned(&q, key);
    }
    let _ = params::fences(&q);
    for line in lines {
        let _ = pattern::parse_name(line);
        match pattern::parse_ip(line) {
            Ok(crate::store::Selector::Ipv4 { lo, hi }) => assert!(lo <= hi),
            Ok(crate::store::Selector::Ipv6 { lo, hi }) => assert!(lo <= hi),
            _ => {}
        }
        if let Ok(filter) = pattern::TypeFilter::parse(line)
            && let Some(rtype) = filter.exact()
        {
            assert!(filter.matches(rtype));
            let name = crate::vocab::render::rtype_name(rtype);
            assert_eq!(
                pattern::TypeFilter::parse(&name)
                    .ok()
                    .and_then(|f| f.exact()),
                Some(rtype),
                "type {name} does not parse back"
            );
        }
        ui::fuzz_interpret(line);
    }
}
