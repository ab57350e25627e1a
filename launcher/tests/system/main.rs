//! The whole shop, as `shop` runs it: account, catalog, order (projection validation), relay and gateway, against
//! fresh Postgres databases and a real Kafka-protocol broker (the embedded mock cluster, or `KAFKA_BROKERS`).

mod auth;
/// The Grafana dashboard's metric names, shared with the deploy tests.
#[path = "../deploy/dashboard.rs"]
mod dashboard;
mod helpers;
mod idempotency;
mod interop;
mod load;
mod metrics;
mod observability;
mod projection_mode;
mod rebuild;
mod secrets;
mod smoke;
mod stock;
mod subscriptions;
mod tail;
