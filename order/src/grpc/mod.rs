//! The gRPC edge: [`server`] turns requests into use-case calls and errors into statuses; [`client`] is the typed
//! client other crates and the tests use.

pub mod client;
pub mod server;
