//! The account service: it owns customer accounts.
//!
//! Accounts live in the service's own Postgres database. Every change writes its event
//! (`shop.account.created.v1`) to the transactional outbox in the same transaction; the relay publishes it on
//! `shop.accounts.v1`, where the order service builds its projection of accounts.
//!
//! - [`config`]: the settings, from flags and environment variables.
//! - [`startup`]: [`Application`](startup::Application), built the same way by `main` and by the tests.
//! - [`database`]: connecting to the account database and migrating it.
//! - [`domain`]: accounts and the rules for their names; no I/O.
//! - [`repository`]: the SQL.
//! - [`republish`]: the `republish` command: every account's current state appended to the outbox again.
//! - [`service`]: the use cases; owns the transaction boundary.
//! - [`grpc`]: the tonic server (`shop.account.v1.AccountService`) and a typed client.

pub mod config;
pub mod database;
pub mod domain;
pub mod grpc;
pub mod repository;
pub mod republish;
pub mod service;
pub mod startup;
