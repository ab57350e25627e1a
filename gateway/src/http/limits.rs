//! The limits every route shares.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use shop_events::TraceContext;
use shop_platform::{overload::InFlightLimitLayer, trace};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use super::{rate_limit, rate_limit::RateLimit, refusal};
use crate::auth::{self, Authenticator};

/// The limits, as configured.
#[derive(Debug)]
pub(super) struct Layers<'a> {
    pub(super) max_body_bytes: usize,
    pub(super) max_in_flight: usize,
    pub(super) request_timeout: Duration,
    pub(super) cors_allowed_origins: &'a [String],
    /// `None` when rate limiting is off.
    pub(super) rate_limit: Option<Arc<RateLimit>>,
    pub(super) authenticator: Authenticator,
}

/// Wraps `routes` in the limits, outermost first: the request span; CORS (answering preflights even under load);
/// the in-flight cap; authentication (inside the cap, so requests waiting for the issuer's keys count); the
/// per-client rate limit (inside authentication, whose identity it counts by); the declared body size; the
/// whole-request timeout.
pub(super) fn apply(routes: Router, layers: &Layers<'_>) -> anyhow::Result<Router> {
    let mut router = routes
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, layers.request_timeout))
        .layer(middleware::from_fn_with_state(layers.max_body_bytes, refuse_declared_oversize))
        .layer(middleware::from_fn_with_state(layers.rate_limit.clone(), rate_limit::limit))
        .layer(middleware::from_fn_with_state(layers.authenticator.clone(), auth::authenticate))
        .layer(InFlightLimitLayer::new(layers.max_in_flight, refusal::overloaded));
    if let Some(cors) = cors(layers.cors_allowed_origins)? {
        router = router.layer(cors);
    }
    Ok(router.layer(TraceLayer::new_for_http().make_span_with(request_span).on_response(record_response)))
}

/// The span of one HTTP request, as the OpenTelemetry HTTP conventions name and attribute a server span
/// (`{method} {route}`), the child of the caller's span when the request carries a `traceparent`.
fn request_span(request: &Request) -> tracing::Span {
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let method = request.method().as_str();
    let span = tracing::info_span!(
        "http",
        otel.name = route.map_or_else(|| method.to_owned(), |route| format!("{method} {route}")),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let headers = request.headers();
    if let Some(caller) =
        TraceContext::from_headers(|name| headers.get(name).and_then(|value| value.to_str().ok()))
    {
        trace::set_parent(&span, &caller);
    }
    span
}

/// Records the status of the answer; a server error marks the span failed (a client error does not, per the
/// conventions: the server did its job).
fn record_response(response: &Response, _latency: Duration, span: &tracing::Span) {
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        trace::record_error(span, &response.status());
    }
}

/// 413 for a body whose declared length is above the limit, before a byte of it is read. Bodies sent without a
/// length (chunked) are counted as they are read, by the only handler that reads one (see `graphql`).
async fn refuse_declared_oversize(
    State(max_body_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > max_body_bytes as u64 => refusal::payload_too_large(max_body_bytes),
        _ => next.run(request).await,
    }
}

/// CORS for the configured origins; none (browsers then refuse cross-origin reads and preflighted requests) when
/// the list is empty, which is the default.
fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let origins = origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin).with_context(|| format!("Invalid CORS origin {origin:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(origins)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static(TraceContext::TRACEPARENT),
                HeaderName::from_static(TraceContext::TRACESTATE),
            ])
            // What a page must read of the REST API's answers: where a created resource is, the next page.
            .expose_headers([header::LOCATION, header::LINK, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    ))
}
