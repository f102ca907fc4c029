//! The web page for analysts: `/` on the API's own listener, for `serve`
//! and `run` alike (same keys, same TLS).
//!
//! An analyst on an incident types a name, an address, a CIDR or a
//! pattern into one box and reads the history as a table with a timeline
//! per row; every name and address is a link to the next search;
//! `/?q=…&type=…&after=…&before=…` opens the page with that search done,
//! so a link can go into a ticket. Tabs show negative answers
//! (`/negative`) and newly observed domains (`/nod`) for the same query,
//! and a status strip shows what `/metrics` counts.
//!
//! Everything is in the binary: one HTML file, one stylesheet, one
//! script (plain JavaScript, no framework, no build step, no CDN, no
//! external font), so the page works on an air-gapped sensor and costs
//! CI nothing to build. The assets are public (they hold no data); the
//! data endpoints behind them — [`search`] and [`status`] here, and the
//! existing `/negative` and `/nod` — take the same credentials as the
//! other surfaces, which the page asks for when the server says it needs
//! one. A strict Content-Security-Policy (only this origin's script and
//! style, nothing inline) keeps a hostile name in the data from ever
//! running as code, on top of the script writing every value as text.

mod query;
mod search;
mod status;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::SharedState;

/// The page's routes.
pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/", get(|r: Request| async move { asset(&r, &INDEX) }))
        .route(
            "/ui/app.js",
            get(|r: Request| async move { asset(&r, &SCRIPT) }),
        )
        .route(
            "/ui/app.css",
            get(|r: Request| async move { asset(&r, &STYLE) }),
        )
        .route("/ui/search", get(search::search))
        .route("/ui/status", get(status::status))
}

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    /// Its validator, worked out on first use.
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Asset {
        Asset {
            body,
            content_type,
            etag: OnceLock::new(),
        }
    }

    /// The quoted start of the body's SHA-256, the same for as long as the
    /// binary is.
    fn etag(&self) -> &str {
        self.etag
            .get_or_init(|| format!("\"{}\"", &hex(&Sha256::digest(self.body.as_bytes()))[..16]))
    }
}

static INDEX: Asset = Asset::new(
    include_str!("assets/index.html"),
    "text/html; charset=utf-8",
);
static SCRIPT: Asset = Asset::new(
    include_str!("assets/app.js"),
    "text/javascript; charset=utf-8",
);
static STYLE: Asset = Asset::new(include_str!("assets/app.css"), "text/css; charset=utf-8");

/// What the page may load and run: its own script and style, images
/// drawn inline (the timelines are SVG in the document), requests to its
/// own origin; never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' blob:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Serves an asset with a validator: `Cache-Control: no-cache` makes the
/// browser ask every time, and an unchanged file costs a 304.
fn asset(request: &Request, asset: &Asset) -> Response {
    let etag = asset.etag();
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// A JSON answer of the page's own endpoints.
fn json(value: &serde_json::Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The search box's reading of hostile text, on every side, for
/// [`super::fuzz_parse`].
pub(super) fn fuzz_interpret(text: &str) {
    for side in ["auto", "names", "rdata"] {
        if let Ok(side) = query::Side::parse(side) {
            let _ = query::interpret(text, side, super::pattern::TypeFilter::All);
        }
    }
}
