//! The catalog service: it owns products and their stock.
//!
//! Products live in the service's own Postgres database, the system of record. Every change writes its event
//! (`shop.product.created.v1`, `shop.product.updated.v1`) to the transactional outbox in the same transaction; the
//! relay publishes it on `shop.products.v1`. A product may track its stock, which orders reserve all or none and
//! release when they fail (the order saga): the catalog answers on `shop.stock-reservations.v1`. Search runs on
//! Postgres full-text search over name and description (the default), or on an Elasticsearch index fed from those
//! product events.
//!
//! - [`config`]: the settings, from flags and environment variables.
//! - [`startup`]: [`Application`](startup::Application), built the same way by `main` and by the tests.
//! - [`database`]: connecting to the catalog's database and migrating it.
//! - [`rebuild`]: the `rebuild-search-index` command.
//! - [`domain`]: products, stock and reservations, and their rules; no I/O.
//! - [`repository`]: the SQL, including the search query.
//! - [`republish`]: the `republish` command: every product's current state appended to the outbox again.
//! - [`search`]: the search backends (Postgres full-text, Elasticsearch) and the index's projection.
//! - [`service`]: the use cases; owns the transaction boundary.
//! - [`stock`]: the order saga's stock step: reserving and releasing inside a transaction, and the consumer of order
//!   events that does it.
//! - [`grpc`]: the tonic server (`shop.catalog.v1.CatalogService`) and a typed client.

pub mod config;
pub mod database;
pub mod domain;
pub mod grpc;
pub mod rebuild;
pub mod repository;
pub mod republish;
pub mod search;
pub mod service;
pub mod startup;
pub mod stock;
