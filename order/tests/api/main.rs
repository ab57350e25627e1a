//! The order service through its real gRPC server, with real account and catalog servers, each on port 0
//! against a fresh database per test.

mod backlog;
mod batch_apply;
mod completeness;
mod get_orders;
mod helpers;
mod hostile_input;
mod idempotency;
mod owners;
mod post_order;
mod projection_mode;
mod stock_saga;
