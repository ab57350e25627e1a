//! The GraphQL gateway: one endpoint (`/graphql`, with a playground at `/playground`) in front of the account,
//! catalog and order services, which it reaches only through their gRPC clients.
//!
//! - [`config`]: the settings, from flags and environment variables.
//! - [`startup`]: [`Application`](startup::Application) (the axum server: GraphQL, playground, health) built the
//!   same way by `main` and by the tests.
//! - [`clients`]: the gRPC clients and the one place a `tonic::Status` becomes a GraphQL error with an
//!   `extensions.code`.
//! - [`schema`]: the GraphQL schema (queries, mutations, types, input validation, batched loading); it knows
//!   nothing about HTTP.

pub mod clients;
pub mod config;
pub mod schema;
pub mod startup;
