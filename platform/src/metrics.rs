//! The process's Prometheus metrics: one registry per process, and `GET /metrics` to serve it.
//!
//! Every crate declares its families once, in a `static` [`LazyLock`] that registers them here on first use
//! ([`register`], or [`with_registry`] for a sub-registry with a prefix). A family shared by several services of
//! one process (the one-command `shop` runs them all in one) is therefore declared once and its series told apart
//! by bounded labels — a gRPC method, a pool's role, a consumer group — never by an id.
//!
//! - [`grpc`]: the gRPC server families, a tower layer that [`crate::grpc::serve`] puts on every server.
//! - [`pools`] (feature `postgres`): the connection pools' gauges, read from sqlx at scrape time.
//! - [`router`], [`bind`], [`serve`], [`supervise`]: the HTTP listener each binary serves `/metrics` on.
//!
//! Names follow the Prometheus conventions: a `shop_` prefix, the unit in the name (`_seconds`), `_total` on
//! counters (prometheus-client appends it), histograms in seconds over [`latency_histogram`]'s buckets.

pub mod grpc;
#[cfg(feature = "postgres")]
pub mod pools;

use std::{
    collections::HashSet,
    future::Future,
    net::SocketAddr,
    sync::{LazyLock, Mutex},
};

use anyhow::Context;
use axum::{
    Router,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::{
    metrics::histogram::{Histogram, exponential_buckets},
    registry::{Metric, Registry},
};
use tokio::net::TcpListener;

use crate::supervisor::Supervisor;

/// The content type of `/metrics`: the OpenMetrics text format prometheus-client writes (Prometheus negotiates it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process's registry. A std `Mutex`: it is held only to register (once per family) and to encode a scrape,
/// never across an `.await`.
static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// Runs `register` with the process's registry, for families that need more than [`register`] (a sub-registry
/// with a prefix, a collector). Call it once per family, from a `LazyLock`.
pub fn with_registry<T>(register: impl FnOnce(&mut Registry) -> T) -> T {
    register(&mut REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Registers `metric` under `name` in the process's registry and returns it (its clones share the values). Call
/// it once per family, from a `LazyLock`: a name registered twice is encoded twice, which Prometheus refuses.
pub fn register<M: Metric + Clone>(name: &str, help: &str, metric: M) -> M {
    with_registry(|registry| registry.register(name, help, metric.clone()));
    metric
}

/// Every metric of the process, in the OpenMetrics text format.
pub fn encode() -> Result<String, std::fmt::Error> {
    let mut body = String::new();
    with_registry(|registry| prometheus_client::encoding::text::encode(&mut body, registry))?;
    Ok(body)
}

/// A histogram of durations in seconds: 17 buckets doubling from 0.5 ms to about 33 s (and `+Inf`), fine enough
/// for a fast gRPC call and wide enough for a confirmation that waits on a lagging projection.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 17))
}

/// `value` as a `&'static str`, stored once per distinct value for the life of the process: label values built
/// from a bounded set (gRPC method names, consumer groups, topics) are then copied, never allocated, per event.
/// Never pass it an unbounded value (an id, a client's text): each one is kept for ever.
pub fn intern(value: &str) -> &'static str {
    static INTERNED: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Mutex::default);
    let mut interned = INTERNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(kept) = interned.get(value) {
        return kept;
    }
    let kept: &'static str = Box::leak(value.to_owned().into_boxed_str());
    interned.insert(kept);
    kept
}

/// `GET /metrics`: the process's registry.
pub fn router() -> Router {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape() -> Response {
    match encode() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(error) => {
            tracing::error!(error.message = %error, "Failed to encode the metrics.");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Binds the metrics listener at `addr`; `None` binds nothing (a process that serves its metrics elsewhere, as
/// the one-command `shop` does for the services it runs).
pub async fn bind(addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("Failed to listen on {addr} for metrics"))?;
    Ok(Some(listener))
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("The metrics listener has no address")?;
    tracing::info!(address = %addr, "Serving metrics at http://{addr}/metrics");
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
        .context("The metrics server failed")
}

/// Serves `/metrics` on `listener`, when there is one, as an essential part of `supervisor`: should it stop, the
/// process stops, as it would were its main server to stop.
pub fn supervise(supervisor: &mut Supervisor, listener: Option<TcpListener>) {
    let Some(listener) = listener else { return };
    let stop = supervisor.stop_token();
    supervisor.essential("the metrics server", serve(listener, stop.cancelled_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interned_value_is_stored_once() {
        let first = intern("shop.order.v1.OrderService");
        let second = intern(&String::from("shop.order.v1.OrderService"));

        assert_eq!(first, second);
        assert!(std::ptr::eq(first, second));
    }

    #[test]
    fn latency_buckets_run_from_half_a_millisecond_to_about_half_a_minute() {
        let buckets: Vec<f64> = exponential_buckets(0.000_5, 2.0, 17).collect();

        assert_eq!(buckets.first(), Some(&0.000_5));
        assert!((30.0..35.0).contains(buckets.last().unwrap()), "{buckets:?}");
    }
}
