//! The relay's Prometheus metrics, per outbox (label `outbox`, the database name), in the process's registry
//! ([`shop_platform::metrics`]) under the prefix `shop_relay_`.

use std::sync::{LazyLock, atomic::AtomicU64};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use shop_platform::metrics::with_registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabel {
    outbox: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Registered on first use: however many relays a process builds (the tests build many), each family is
/// registered once.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| with_registry(Metrics::register));

/// Every metric family, registered once per process.
#[derive(Debug, Clone)]
pub struct Metrics {
    published: Family<OutboxLabel, Counter>,
    parked_events: Family<OutboxLabel, Counter>,
    failed_deliveries: Family<OutboxLabel, Counter>,
    batches: Family<OutboxLabel, Counter>,
    backlog: Family<OutboxLabel, Gauge>,
    oldest_age: Family<OutboxLabel, Gauge<f64, AtomicU64>>,
    parked_aggregates: Family<OutboxLabel, Gauge>,
    owned_shards: Family<OutboxLabel, Gauge>,
    deferred_aggregates: Family<OutboxLabel, Gauge>,
    producers_replaced: Family<OutboxLabel, Counter>,
    heartbeats: Family<OutboxLabel, Counter>,
    in_flight: Family<OutboxLabel, Gauge>,
    publish_latency: Family<OutboxLabel, Histogram, fn() -> Histogram>,
}

impl Metrics {
    /// The families, in the process's registry.
    pub fn global() -> &'static Self {
        &METRICS
    }

    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            published: Family::default(),
            parked_events: Family::default(),
            failed_deliveries: Family::default(),
            batches: Family::default(),
            backlog: Family::default(),
            oldest_age: Family::default(),
            parked_aggregates: Family::default(),
            owned_shards: Family::default(),
            deferred_aggregates: Family::default(),
            producers_replaced: Family::default(),
            heartbeats: Family::default(),
            in_flight: Family::default(),
            publish_latency: Family::new_with_constructor(latency_histogram),
        };
        let relay = registry.sub_registry_with_prefix("shop_relay");
        relay.register("published_events", "Events Kafka acknowledged", metrics.published.clone());
        relay.register(
            "parked_events",
            "Events Kafka refused for good; their aggregate is parked",
            metrics.parked_events.clone(),
        );
        relay.register(
            "failed_deliveries",
            "Sends that failed and will be retried",
            metrics.failed_deliveries.clone(),
        );
        relay.register("batches", "Batches published", metrics.batches.clone());
        relay.register("backlog_events", "Unpublished outbox rows", metrics.backlog.clone());
        relay.register(
            "oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox row",
            metrics.oldest_age.clone(),
        );
        relay.register(
            "parked_aggregates",
            "Aggregates waiting for an operator",
            metrics.parked_aggregates.clone(),
        );
        relay.register("owned_shards", "Shards this instance holds", metrics.owned_shards.clone());
        relay.register(
            "deferred_aggregates",
            "Aggregates waiting to try again because their topic could not be written",
            metrics.deferred_aggregates.clone(),
        );
        relay.register(
            "producers_replaced",
            "Kafka producers replaced after a fatal error or an abandoned batch",
            metrics.producers_replaced.clone(),
        );
        relay.register("heartbeats", "Heartbeats published for the outbox", metrics.heartbeats.clone());
        relay.register(
            "in_flight_events",
            "Events of the batch in flight, waiting for Kafka's acknowledgement",
            metrics.in_flight.clone(),
        );
        relay.register(
            "publish_latency_seconds",
            "From the event's occurrence (just before its transaction commits) to Kafka's acknowledgement",
            metrics.publish_latency.clone(),
        );
        metrics
    }

    /// The metrics of one outbox.
    pub fn outbox(&self, outbox: &str) -> OutboxMetrics {
        let label = OutboxLabel { outbox: outbox.to_owned() };
        OutboxMetrics {
            published: self.published.get_or_create(&label).clone(),
            parked_events: self.parked_events.get_or_create(&label).clone(),
            failed_deliveries: self.failed_deliveries.get_or_create(&label).clone(),
            batches: self.batches.get_or_create(&label).clone(),
            backlog: self.backlog.get_or_create(&label).clone(),
            oldest_age: self.oldest_age.get_or_create(&label).clone(),
            parked_aggregates: self.parked_aggregates.get_or_create(&label).clone(),
            owned_shards: self.owned_shards.get_or_create(&label).clone(),
            deferred_aggregates: self.deferred_aggregates.get_or_create(&label).clone(),
            producers_replaced: self.producers_replaced.get_or_create(&label).clone(),
            heartbeats: self.heartbeats.get_or_create(&label).clone(),
            in_flight: self.in_flight.get_or_create(&label).clone(),
            publish_latency: self.publish_latency.get_or_create(&label).clone(),
        }
    }
}

/// One outbox's metrics (handles share their values with the registry).
#[derive(Debug, Clone)]
pub struct OutboxMetrics {
    pub published: Counter,
    pub parked_events: Counter,
    pub failed_deliveries: Counter,
    pub batches: Counter,
    pub backlog: Gauge,
    pub oldest_age: Gauge<f64, AtomicU64>,
    pub parked_aggregates: Gauge,
    pub owned_shards: Gauge,
    pub deferred_aggregates: Gauge,
    pub producers_replaced: Counter,
    pub heartbeats: Counter,
    pub in_flight: Gauge,
    pub publish_latency: Histogram,
}
