//! `pdns-sensor serve`: the HTTP API over a database another process may
//! be writing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::DbArgs;
use crate::clickhouse::client::{Client, ClientOptions, Target};
use crate::clickhouse::reader::Reader;
use crate::serve::auth::ApiKeys;
use crate::serve::connections::ConnectionLimits;
use crate::serve::tls::Tls;
use crate::serve::{Api, Backend, ServeConfig};
use crate::store::Store;

/// API options shared by `serve` and `run`.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// File of API keys (`KEY` or `user:password` per line, optionally
    /// followed by `name=` `hourly=` `daily=` `results=` quotas); without it
    /// the API is open to whoever can reach the listen address.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Most records one query may return.
    #[arg(long, default_value_t = 1_000_000)]
    pub results_max: u64,
    /// Records returned when a client sets no limit.
    #[arg(long, default_value_t = 10_000)]
    pub default_limit: u64,
    /// Seconds a query may read before it ends as limited.
    #[arg(long, default_value_t = 30)]
    pub query_timeout: u64,
    /// COF `origin` on the CIRCL surface.
    #[arg(long, default_value = "urn:pdns-sensor")]
    pub origin: String,
    /// Serve HTTPS with this PEM certificate chain (leaf first); reloaded,
    /// with the key, on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Most API connections served at once; more are closed on arrival
    /// (and counted).
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request head before its
    /// connection is closed.
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
}

impl ApiArgs {
    /// The API's settings; `sensor_id` is the COF `sensor_id` of the
    /// CIRCL surface (`serve --sensor-id`; with `run`, the one sensor name
    /// that also goes into exported rows).
    pub fn config(&self, sensor_id: Option<String>) -> Result<ServeConfig> {
        let keys = match &self.api_key_file {
            Some(p) => Some(ApiKeys::load(p)?),
            None => None,
        };
        let results_max = self.results_max.max(1);
        for label in keys.iter().flat_map(|k| k.results_above(results_max)) {
            tracing::warn!(
                "API key {label}: its results= is above --results-max {results_max}, which applies"
            );
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key)?)),
            _ => None,
        };
        Ok(ServeConfig {
            listen: self.listen,
            keys,
            results_max: self.results_max.max(1),
            default_limit: self.default_limit.clamp(1, self.results_max.max(1)),
            offset_max: 3_000_000,
            query_timeout: Duration::from_secs(self.query_timeout.max(1)),
            origin: self.origin.clone(),
            sensor_id,
            tls,
            clock: Default::default(),
            limits: ConnectionLimits {
                max_connections: self.max_connections.max(1),
                header_timeout: Duration::from_secs(self.header_timeout.max(1)),
            },
        })
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Serve the central history in ClickHouse instead of a local database
    /// (http[s]://[USER[:PASSWORD]@]HOST:PORT[/DATABASE]; a read-only user
    /// is enough).
    #[arg(long, value_name = "URL")]
    pub clickhouse: Option<String>,
    /// File holding the ClickHouse password (first line).
    #[arg(long, value_name = "FILE")]
    pub clickhouse_password_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) to trust for an https ClickHouse URL.
    #[arg(long, value_name = "FILE")]
    pub clickhouse_ca: Option<PathBuf>,
    /// COF `sensor_id` on the CIRCL surface.
    #[arg(long)]
    pub sensor_id: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// What `serve` reads: the ClickHouse history if asked, else the database.
fn backend(args: &ServeArgs, query_timeout: Duration) -> Result<Backend> {
    let Some(url) = &args.clickhouse else {
        let store = Store::open_reader_with(&args.db.db, super::clock()?)?;
        return Ok(Backend::Store(Arc::new(store)));
    };
    let target = Target::parse(url, args.clickhouse_password_file.as_deref())?;
    let client = Client::new(
        target,
        &ClientOptions {
            ca_file: args.clickhouse_ca.clone(),
            // The API's deadline ends a query; this only bounds a hung
            // connection.
            timeout: query_timeout + Duration::from_secs(30),
        },
    )?;
    let reader = Reader::new(client, query_timeout);
    reader.check()?;
    tracing::info!(
        "serving the ClickHouse history at {}",
        reader.client().target().display()
    );
    Ok(Backend::ClickHouse(Arc::new(reader)))
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let config = args.api.config(args.sensor_id.clone())?;
    let store = backend(args, config.query_timeout)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let api = Api::bind(config).await?;
        api.serve(store, shutdown_signal()).await
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
