//! The order service's Prometheus metrics, in the process's registry ([`shop_platform::metrics`]):
//!
//! - `shop_orders_placed_total`: orders stored (each once: a retry answered from its idempotency key is not).
//! - `shop_orders_settled_total{status}`: orders that became final, by status (`confirmed`, `rejected`,
//!   `cancelled`).
//! - `shop_order_confirmation_seconds`: from an order's placement to its confirmation, whoever confirms it (the
//!   placement itself, the validator, the catalog's stock answer), in both validation modes.
//! - `shop_order_validator_pending_orders`, `shop_order_validator_oldest_pending_age_seconds`: orders not final yet
//!   (pending or awaiting stock) and how long the oldest has waited; `shop_order_stock_releases_owed`: final orders
//!   whose stock the catalog has not confirmed released. These three are read from the database by the validator
//!   (at most once a second), so every replica reports the same, database-wide value: aggregate them with `max`,
//!   not `sum`.
//!
//! A transition is counted once its transaction commits, where this service commits it. The catalog's stock
//! answers are settled inside the consumer's batch transaction, which the consumer toolkit commits: those are
//! counted as they are written, and a batch that then fails to commit (the database went away) is counted again
//! when it is retried. The counters may therefore run a little ahead after a database failure, never behind.

use std::{
    sync::{LazyLock, Mutex, atomic::AtomicU64},
    time::Duration,
};

use chrono::{DateTime, Utc};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
};
use shop_platform::metrics::{latency_histogram, register};
use sqlx::PgPool;
use tokio::time::Instant;

use crate::domain::{Order, OrderStatus};

/// How often, at most, the backlog gauges are read from the database.
const BACKLOG_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Debug)]
struct OrderMetrics {
    placed: Counter,
    settled: Family<StatusLabels, Counter>,
    confirmation: Histogram,
    pending: Gauge,
    oldest_pending_age: Gauge<f64, AtomicU64>,
    releases_owed: Gauge,
}

static METRICS: LazyLock<OrderMetrics> = LazyLock::new(|| OrderMetrics {
    placed: register("shop_orders_placed", "Orders placed (stored)", Counter::default()),
    settled: register("shop_orders_settled", "Orders that became final, by status", Family::default()),
    confirmation: register(
        "shop_order_confirmation_seconds",
        "Time from an order's placement to its confirmation",
        latency_histogram(),
    ),
    pending: register(
        "shop_order_validator_pending_orders",
        "Orders not final yet (pending or awaiting stock), in the whole database",
        Gauge::default(),
    ),
    oldest_pending_age: register(
        "shop_order_validator_oldest_pending_age_seconds",
        "How long the oldest order not final yet has waited since its placement; 0 when there is none",
        Gauge::default(),
    ),
    releases_owed: register(
        "shop_order_stock_releases_owed",
        "Final orders whose stock the catalog has not confirmed released yet",
        Gauge::default(),
    ),
});

/// Registers the families, so that they are scraped (at zero) before the first order.
pub fn register_all() {
    let metrics = &*METRICS;
    for status in [OrderStatus::Confirmed, OrderStatus::Rejected, OrderStatus::Cancelled] {
        drop(metrics.settled.get_or_create(&StatusLabels { status: status.as_str() }));
    }
}

/// What the metrics keep of an order that may have just become final, to be recorded once its transaction commits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settlement {
    status: OrderStatus,
    placed_at: DateTime<Utc>,
}

impl Settlement {
    pub(crate) fn of(order: &Order) -> Self {
        Self { status: order.status, placed_at: order.created_at }
    }

    /// Counts the order as settled if it is final; a confirmation also records its time since placement.
    pub(crate) fn record(self) {
        if !self.status.is_final() {
            return;
        }
        METRICS.settled.get_or_create(&StatusLabels { status: self.status.as_str() }).inc();
        if self.status == OrderStatus::Confirmed {
            let waited = (Utc::now() - self.placed_at).to_std().unwrap_or_default();
            METRICS.confirmation.observe(waited.as_secs_f64());
        }
    }
}

/// Counts `order`, just stored, as placed, and as settled if it was stored final (decided at placement).
pub(crate) fn placed(order: &Order) {
    METRICS.placed.inc();
    Settlement::of(order).record();
}

/// Counts `order`, whose transition to a final status just committed, as settled.
pub(crate) fn settled(order: &Order) {
    Settlement::of(order).record();
}

/// Reads the backlog gauges from the database, unless this process read them less than a second ago. A failure
/// is only logged (at debug: the caller's own queries fail too, and say so): the gauges keep their last values.
pub(crate) async fn refresh_backlog(pool: &PgPool) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    {
        let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| at.elapsed() < BACKLOG_REFRESH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
    }
    let backlog = async { crate::repository::backlog(&mut *pool.acquire().await?).await };
    match backlog.await {
        Ok(backlog) => {
            METRICS.pending.set(backlog.unsettled);
            METRICS.oldest_pending_age.set(backlog.oldest_unsettled_age_seconds);
            METRICS.releases_owed.set(backlog.releases_owed);
        }
        Err(error) => {
            tracing::debug!(error.message = %error, "Failed to read the order backlog for the metrics.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled_count(status: OrderStatus) -> u64 {
        METRICS.settled.get(&StatusLabels { status: status.as_str() }).map_or(0, |counter| counter.get())
    }

    #[test]
    fn only_a_final_order_counts_as_settled() {
        let (confirmed, pending) =
            (settled_count(OrderStatus::Confirmed), settled_count(OrderStatus::Pending));
        let placed_at = Utc::now() - chrono::Duration::seconds(2);

        Settlement { status: OrderStatus::AwaitingStock, placed_at }.record();
        Settlement { status: OrderStatus::Pending, placed_at }.record();
        Settlement { status: OrderStatus::Confirmed, placed_at }.record();

        assert_eq!(settled_count(OrderStatus::Confirmed), confirmed + 1);
        assert_eq!(settled_count(OrderStatus::Pending), pending);
        assert_eq!(settled_count(OrderStatus::AwaitingStock), 0);
    }
}
