//! The account service through its real gRPC server, on port 0, against a fresh database per test.

mod get_accounts;
mod helpers;
mod infrastructure;
mod owners;
mod post_account;
