//! The gateway's HTTP face: the routes (GraphQL, the REST API from [`crate::rest`], the pages, health), and the
//! limits every request meets before a handler sees it.
//!
//! - [`graphql`]: GraphQL over HTTP — JSON bodies only (no CSRF through forms), bounded bodies, bounded nesting,
//!   bounded answers.
//! - [`websocket`]: GraphQL subscriptions over WebSocket, and the codes the gateway closes connections with.
//! - [`limits`]: what applies to every route: a body-size check, a cap on requests in flight (503 with
//!   `Retry-After` past it), CORS (closed unless origins are configured), a whole-request timeout.
//! - [`rate_limit`]: a rate per client (its signed-in user, else its address); 429 with `Retry-After` past it.
//! - [`server`]: the connection loop, with header-read and idle timeouts and HTTP/2 stream limits.
//! - [`metrics`]: requests per method, route and status, and their durations, over every route.
//! - [`playground`]: GraphiQL, with its assets bundled in the binary (works offline).
//! - [`reference`]: Swagger UI on the REST API's OpenAPI document, bundled the same way ([`assets`]).
//! - [`refusal`]: the JSON answer every refusal carries, shaped like a GraphQL error so clients show it.

mod assets;
mod graphql;
mod limits;
mod metrics;
mod playground;
mod rate_limit;
mod reference;
pub(crate) mod refusal;
pub(crate) mod server;
mod websocket;

pub(crate) use self::refusal::Refused;

use std::{sync::Arc, time::Duration};

use axum::{Json, Router, extract::State, http::StatusCode, middleware, routing::get};

use crate::{
    auth::Authenticator,
    config::Settings,
    live::OrderFeed,
    rest,
    schema::GatewaySchema,
    services::{ServiceHealth, Services},
};

/// Liveness and readiness: load balancers poll them, so no per-client rate limit applies to them.
const HEALTH_PATHS: [&str; 2] = ["/health", "/health/ready"];

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) schema: GatewaySchema,
    pub(crate) services: Services,
    pub(crate) limits: Arc<RequestLimits>,
    /// Verifies the credentials WebSocket clients send in `connection_init`.
    pub(crate) authenticator: Authenticator,
    pub(crate) feed: OrderFeed,
}

/// The per-request limits, from the settings.
#[derive(Debug, Clone)]
pub(crate) struct RequestLimits {
    /// Largest request body, in bytes.
    pub(crate) max_body_bytes: usize,
    /// Largest GraphQL response body, in bytes.
    pub(crate) max_response_bytes: usize,
}

/// The routes, with every limit in place.
pub(crate) fn router(
    settings: &Settings,
    schema: GatewaySchema,
    services: Services,
    feed: OrderFeed,
) -> anyhow::Result<Router> {
    let limits = Arc::new(RequestLimits {
        max_body_bytes: settings.http_max_body_bytes,
        max_response_bytes: settings.graphql_max_response_bytes,
    });
    let authenticator = Authenticator::new(&settings.auth)?;
    let rest = rest::routes(services.clone(), settings.http_max_body_bytes);
    let state =
        AppState { schema, services, limits: limits.clone(), authenticator: authenticator.clone(), feed };
    let routes = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route(HEALTH_PATHS[0], get(live))
        .route(HEALTH_PATHS[1], get(ready))
        .merge(playground::routes())
        .merge(reference::routes())
        .with_state(state)
        .merge(rest)
        .merge(authenticator.routes());
    let routes = limits::apply(
        routes,
        &limits::Layers {
            max_body_bytes: settings.http_max_body_bytes,
            max_in_flight: settings.http_max_in_flight,
            request_timeout: Duration::from_millis(settings.http_request_timeout_ms),
            cors_allowed_origins: &settings.cors_allowed_origins,
            rate_limit: rate_limit::RateLimit::new(rate_limit::RateLimitSettings {
                per_second: settings.rate_limit_per_second,
                burst: settings.rate_limit_burst,
            }),
            authenticator,
        },
    )?;
    // Metrics outermost: they see every answer as the client gets it, refusals included.
    Ok(routes.layer(middleware::from_fn(rest::problem_bodies)).layer(middleware::from_fn(metrics::track)))
}

/// Liveness: the process serves HTTP.
async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: every service behind the gateway answers its gRPC health check with SERVING.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let statuses: Vec<(&str, &str)> = state
        .services
        .health()
        .await
        .into_iter()
        .map(|(name, health)| {
            let status = match health {
                ServiceHealth::Serving => "serving",
                ServiceHealth::NotServing => "not_serving",
                ServiceHealth::Unreachable => "unreachable",
            };
            (name, status)
        })
        .collect();
    let all_serving = statuses.iter().all(|(_, status)| *status == "serving");
    let body = serde_json::json!({
        "status": if all_serving { "ok" } else { "degraded" },
        "services": statuses.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    });
    (if all_serving { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}
