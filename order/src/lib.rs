//! The order service: it owns orders.
//!
//! Orders are validated against the accounts and products they name and priced from the catalog, in one of two
//! modes: `grpc` (synchronously, asking the account and catalog services) or `projection` (asynchronously, from
//! the service's own projection of accounts and products fed from Kafka, so orders keep flowing while those
//! services are down). Every order and transition is stored with its event (`shop.order.placed.v1`,
//! `shop.order.confirmed.v1`, `shop.order.rejected.v1`) in one transaction of the service's own Postgres database;
//! the relay publishes the events on `shop.orders.v1`.
//!
//! - [`config`]: the settings, from flags and environment variables, including the validation mode.
//! - [`startup`]: [`Application`](startup::Application), built the same way by `main` and by the tests.
//! - [`database`]: connecting to the order database and migrating it.
//! - [`domain`]: order requests, orders and their transitions (pending → confirmed or rejected); no I/O.
//! - [`directory`]: looking up accounts and products ([`Directory`](directory::Directory)), over gRPC.
//! - [`projection`]: the service's own projection of accounts and products, fed from Kafka, its directory and
//!   its rebuild.
//! - [`validation`]: the validator that confirms or rejects pending orders (projection mode).
//! - [`repository`]: the SQL.
//! - [`republish`]: the `republish` command: every order's current state appended to the outbox again.
//! - [`service`]: the use cases; owns the transaction boundary.
//! - [`grpc`]: the tonic server (`shop.order.v1.OrderService`) and a typed client.

pub mod config;
pub mod database;
pub mod directory;
pub mod domain;
pub mod grpc;
pub mod idempotency_keys;
pub mod projection;
pub mod repository;
pub mod republish;
pub mod service;
pub mod startup;
pub mod validation;
