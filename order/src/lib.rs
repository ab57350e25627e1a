//! The order service: it owns orders.
//!
//! Orders are validated against the accounts and products they name and priced from the catalog, in one of two
//! modes: `grpc` (synchronously, asking the account and catalog services) or `projection` (asynchronously, from
//! the service's own projection of accounts and products fed from Kafka, so orders keep flowing while those
//! services are down). An order naming a product that tracks its stock then awaits the catalog's reservation — the
//! order saga's stock step, with compensation (releases), deadlines and cancellation. Every order and transition is
//! stored with its event (`shop.order.placed.v1`, `…awaiting_stock.v1`, `…confirmed.v1`, `…rejected.v1`,
//! `…cancelled.v1`, `…stock_released.v1`) in one transaction of the service's own Postgres database; the relay
//! publishes the events on `shop.orders.v1`.
//!
//! - [`config`]: the settings, from flags and environment variables, including the validation mode.
//! - [`startup`]: [`Application`](startup::Application), built the same way by `main` and by the tests.
//! - [`database`]: connecting to the order database and migrating it.
//! - [`domain`]: order requests, orders and their transitions (pending → awaiting stock → confirmed, rejected or
//!   cancelled); no I/O.
//! - [`directory`]: looking up accounts and products ([`Directory`](directory::Directory)), over gRPC.
//! - [`projection`]: the service's own projection of accounts and products, fed from Kafka, its directory and
//!   its rebuild.
//! - [`validation`]: the validator that confirms, sets awaiting stock, or rejects pending orders.
//! - [`saga`]: the stock step of the order saga: the catalog's answers (over Kafka or gRPC), the deadlines, the
//!   releases owed.
//! - [`repository`]: the SQL.
//! - [`metrics`]: orders placed and settled, placement-to-confirmation latency, and the backlog of orders not done.
//! - [`republish`]: the `republish` command: every order's current state appended to the outbox again.
//! - [`service`]: the use cases; owns the transaction boundary.
//! - [`grpc`]: the tonic server (`shop.order.v1.OrderService`) and a typed client.

pub mod config;
pub mod database;
pub mod directory;
pub mod domain;
pub mod grpc;
pub mod idempotency_keys;
pub mod metrics;
pub mod projection;
pub mod repository;
pub mod republish;
pub mod saga;
pub mod service;
pub mod startup;
pub mod validation;
