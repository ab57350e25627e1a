//! The gateway: GraphQL (`/graphql`, with a playground at `/playground`) and a REST/JSON API (`/api/v1`) in front
//! of the account, catalog and order services, which it reaches only through their gRPC clients.
//!
//! - [`config`]: the settings, from flags and environment variables.
//! - [`auth`]: who is calling — bearer tokens verified against an OpenID Connect issuer's keys — and a development
//!   issuer.
//! - [`startup`]: [`Application`](startup::Application) (the axum server: GraphQL, playground, health) built the
//!   same way by `main` and by the tests.
//! - `http`: the HTTP face around the schema — GraphQL over HTTP and WebSocket, playground, health — and every limit a request
//!   meets first (body size, media type, nesting, in-flight cap, timeouts, CORS).
//! - [`services`]: the call layer over the services' gRPC clients — typed methods that build requests, carry the
//!   trace, and turn a `tonic::Status` into a [`CallError`](services::CallError), the error every face reports.
//! - [`rest`]: the REST/JSON API under `/api/v1` and its OpenAPI document, over `services`, with RFC 9457
//!   problem details for errors.
//! - [`schema`]: the GraphQL schema (queries, mutations, subscriptions, types, input validation, batched loading),
//!   over `services`; it knows nothing about HTTP.
//! - [`live`]: the order topic, read from its end by each gateway process, feeding the subscriptions; the caps and
//!   the slow-subscriber rule they live under.

pub mod auth;
pub mod config;
mod http;
pub mod live;
pub mod rest;
pub mod schema;
pub mod services;
pub mod startup;
