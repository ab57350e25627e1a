//! The order service: it owns orders.
//!
//! `PostOrder` validates an order against the accounts and products it names, prices every line from the
//! catalog, and stores the order, its lines and its events (`shop.order.placed.v1`, `shop.order.confirmed.v1`)
//! in one transaction of the service's own Postgres database; the relay publishes the events on `shop.orders.v1`.
//!
//! - [`config`]: the settings, from flags and environment variables, including the validation mode.
//! - [`startup`]: [`Application`](startup::Application), built the same way by `main` and by the tests.
//! - [`domain`]: order requests, orders and their transitions (pending → confirmed or rejected); no I/O.
//! - [`directory`]: looking up accounts and products ([`Directory`](directory::Directory)), over gRPC.
//! - [`repository`]: the SQL.
//! - [`service`]: the use cases; owns the transaction boundary.
//! - [`grpc`]: the tonic server (`shop.order.v1.OrderService`) and a typed client.

pub mod config;
pub mod directory;
pub mod domain;
pub mod grpc;
pub mod repository;
pub mod service;
pub mod startup;
