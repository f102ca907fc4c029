//! `GET /ui/status`: the page's status strip, read from the same counters
//! `/metrics` exposes, so the strip and a Prometheus dashboard never
//! disagree.
//!
//! The answer holds totals, not rates: the page polls and divides the
//! difference by the time between polls, as Prometheus' `rate()` would.
//! A value this process does not count is `null` (a `serve` beside a
//! separate `run` has no capture counters of its own, and the strip says
//! so rather than showing a zero).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{Value, json};

use super::super::SharedState;
use crate::metrics;

/// `GET /ui/status`
pub(super) async fn status(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Err(r) = super::super::admit_any(&state, &headers) {
        return *r;
    }
    let snapshot = tokio::task::spawn_blocking(move || {
        if let Some(store) = state.backend.store() {
            metrics::publish_store(store);
        }
        let families = metrics::gather();
        json!({
            "now": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            "version": env!("CARGO_PKG_VERSION"),
            "backend": if state.backend.store().is_some() { "rocksdb" } else { "clickhouse" },
            "packets": sum(&families, "pdns_capture_packets_total", &[]),
            "drops": sum(&families, "pdns_capture_drops_total", &[]),
            "responses": sum(&families, "pdns_dns_responses_total", &[]),
            "records": sum(&families, "pdns_rocksdb_property", &[("cf", "records"), ("property", "estimate_num_keys")]),
            "db_bytes": sum(&families, "pdns_rocksdb_property", &[("property", "sst_bytes")]),
            "last_write": sum(&families, "pdns_store_last_write_timestamp_seconds", &[]).filter(|t| *t > 0.0),
        })
    })
    .await
    .unwrap_or(Value::Null);
    super::json(&snapshot)
}

/// The sum of a family's series whose labels include `labels`; `None`
/// when the family has no such series (the process does not count it).
fn sum(families: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = families.iter().find(|f| f.name() == name)?;
    let counter = family.get_field_type() == MetricType::COUNTER;
    let mut total = None;
    for m in family.get_metric() {
        let wanted = labels.iter().all(|(k, v)| {
            m.get_label()
                .iter()
                .any(|l| l.name() == *k && l.value() == *v)
        });
        if !wanted {
            continue;
        }
        let value = if counter {
            m.get_counter().get_value()
        } else {
            m.get_gauge().get_value()
        };
        *total.get_or_insert(0.0) += value;
    }
    total
}
