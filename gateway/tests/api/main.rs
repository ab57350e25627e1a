//! The gateway over real HTTP, in front of real account, catalog and order services (each on port 0 with a fresh
//! database): the original system's queries and mutations, batching, errors and health; authentication and who may
//! do what.

mod auth;
mod authorization;
mod errors;
mod helpers;
mod hostile;
mod http;
mod idempotency;
mod openapi;
mod rate_limit;
mod rest;
mod seed_parity;
mod stock;
