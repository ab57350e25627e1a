//! The GraphQL schema, independent of HTTP: [`build`] makes it, [`prepare`] gives one request what it needs.

pub mod documents;
pub mod errors;
pub mod inputs;
pub mod limits;
pub mod loaders;
pub mod metrics;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

use std::sync::{Mutex, MutexGuard, PoisonError};

use async_graphql::{Schema, dataloader::DataLoader};

use self::{
    documents::ParsedDocuments,
    errors::ErrorCodes,
    limits::{MAX_COMPLEXITY, MAX_DIRECTIVES, ShapeLimits},
    loaders::OrdersByAccount,
    metrics::GraphqlMetrics,
    mutation::Mutation,
    query::Query,
    subscription::Subscription,
};
use crate::{
    live::OrderFeed,
    services::{Call, Services},
};

/// The gateway's schema.
pub type GatewaySchema = Schema<Query, Mutation, Subscription>;

/// The schema over `services`, its subscriptions fed by `feed`, with the query limits of [`limits`], every request
/// counted and timed ([`metrics`]), and the documents clients send again kept parsed ([`documents`]).
pub fn build(services: Services, feed: OrderFeed) -> GatewaySchema {
    Schema::build(Query, Mutation, Subscription)
        .data(services)
        .data(feed)
        .extension(ErrorCodes)
        .extension(ShapeLimits)
        .extension(GraphqlMetrics)
        // Innermost: every extension above still sees each request's document.
        .extension(ParsedDocuments::default())
        .limit_complexity(MAX_COMPLEXITY)
        .limit_directives(MAX_DIRECTIVES)
        .finish()
}

/// Adds what one request's resolvers need: its [`Call`] (trace and caller), and loaders that batch (and cache)
/// look-ups for the duration of this request only.
pub fn prepare(request: async_graphql::Request, services: &Services, call: Call) -> async_graphql::Request {
    let orders = DataLoader::new(OrdersByAccount::new(services.clone(), call.clone()), tokio::spawn)
        .max_batch_size(loaders::MAX_ACCOUNTS_PER_BATCH);
    request.data(call).data(orders)
}

/// The lock of `mutex`, for the extensions' per-request and shared state: a panic while it was held cannot leave
/// what it guards half-changed (a value replaced or taken whole), so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
