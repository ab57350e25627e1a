//! The HTTP server: GraphQL at `/graphql` (POST, and GET for queries), the GraphiQL playground at `/playground`,
//! liveness at `/health` and readiness (every service answering its gRPC health check) at `/health/ready`.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use async_graphql::{
    ServerError,
    http::GraphiQLSource,
    parser::{parse_query, types::OperationType},
};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use shop_events::TraceContext;
use tokio::net::TcpListener;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

use crate::{
    config::Settings,
    schema::{self, GatewaySchema, errors::ErrorCode},
    services::{ServiceHealth, Services},
};

/// The gateway, with its listener bound.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
}

#[derive(Clone)]
struct AppState {
    schema: GatewaySchema,
    services: Services,
}

impl Application {
    /// Builds the schema and the routes and binds the listener. The services need not be up yet.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let services = Services::new(settings)?;
        let state = AppState { schema: schema::build(services.clone()), services };
        let router = Router::new()
            .route("/graphql", get(graphql_get).post(graphql_post))
            .route("/playground", get(playground))
            .route("/health", get(live))
            .route("/health/ready", get(ready))
            .with_state(state)
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(settings.http_request_timeout_ms),
            ))
            .layer(TraceLayer::new_for_http());
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        Ok(Self { listener, router })
    }

    /// Where the HTTP server listens (useful when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has a local address")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("The HTTP server failed")?;
        tracing::info!("The gateway stopped.");
        Ok(())
    }
}

async fn execute(state: &AppState, headers: &HeaderMap, request: async_graphql::Request) -> GraphQLResponse {
    let trace = TraceContext::continue_from(|name| headers.get(name).and_then(|value| value.to_str().ok()));
    let span =
        tracing::info_span!("graphql", trace_id = trace.trace_id(), operation = request.operation_name);
    let request = schema::prepare(request, &state.services, trace);
    tracing::Instrument::instrument(state.schema.execute(request), span).await.into()
}

async fn graphql_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    execute(&state, &headers, request.into_inner()).await
}

/// Queries only: a mutation over GET could be triggered by a link or an image tag (CSRF).
async fn graphql_get(State(state): State<AppState>, headers: HeaderMap, request: GraphQLRequest) -> Response {
    let request = request.into_inner();
    let is_mutation = parse_query(&request.query)
        .map(|document| document.operations.iter().any(|(_, op)| op.node.ty == OperationType::Mutation))
        .unwrap_or(false);
    if is_mutation {
        let mut error = ServerError::new("mutations must be sent with POST", None);
        error.extensions.get_or_insert_with(Default::default).set("code", ErrorCode::BadUserInput.as_str());
        let body = async_graphql::Response::from_errors(vec![error]);
        return (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response();
    }
    execute(&state, &headers, request).await.into_response()
}

async fn playground() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").title("Shop GraphQL playground").finish())
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
