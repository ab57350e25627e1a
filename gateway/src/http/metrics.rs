//! What the gateway answers over HTTP, per route, in the process's Prometheus registry
//! ([`shop_platform::metrics`]):
//!
//! - `shop_http_requests_total{method,route,status}`;
//! - `shop_http_request_duration_seconds{method,route}`: until the answer's headers (a streamed body goes on).
//!
//! Every route is counted — the REST API under `/api/v1`, `/graphql`, the pages, health — including the requests
//! the gateway refuses before a handler sees them (rate limit, body size, overload), since this is the outermost
//! layer. `route` is the route's pattern (`/api/v1/orders/{id}`), never the path the client sent; a path no route
//! matches is counted as [`UNMATCHED`]. A method outside HTTP's standard ones counts as `OTHER`.

use std::sync::LazyLock;

use axum::{
    extract::{MatchedPath, Request},
    http::Method,
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};
use shop_platform::metrics::{intern, latency_histogram, register};
use tokio::time::Instant;

/// The `route` of a request no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Debug)]
struct HttpFamilies {
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
}

static FAMILIES: LazyLock<HttpFamilies> = LazyLock::new(|| HttpFamilies {
    requests: register(
        "shop_http_requests",
        "HTTP requests the gateway answered, per method, route and status",
        Family::default(),
    ),
    duration: register(
        "shop_http_request_duration_seconds",
        "Time from an HTTP request's arrival to its answer's headers, per method and route",
        Family::new_with_constructor(latency_histogram),
    ),
});

/// Counts and times `request` (a middleware: see the module docs).
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    // Route patterns are the router's, a bounded set: interned once each.
    let route =
        request.extensions().get::<MatchedPath>().map_or(UNMATCHED, |matched| intern(matched.as_str()));
    let response = next.run(request).await;
    let status = response.status().as_u16();
    FAMILIES.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    FAMILIES
        .duration
        .get_or_create(&DurationLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `method` as a label: one of HTTP's standard methods, or `OTHER` (a client may send any token as a method).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] =
        ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    STANDARD.into_iter().find(|standard| *standard == method.as_str()).unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use tower::ServiceExt;

    use super::*;

    fn requests(method: &'static str, route: &'static str, status: u16) -> u64 {
        FAMILIES.requests.get(&RequestLabels { method, route, status }).map_or(0, |counter| counter.get())
    }

    #[test]
    fn a_method_outside_the_standard_ones_is_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }

    #[tokio::test]
    async fn a_request_counts_under_its_route_pattern_and_an_unmatched_one_under_one_label() {
        let router = Router::new()
            .route("/test-metrics/widgets/{id}", get(|| async { "widget" }))
            .layer(axum::middleware::from_fn(track));
        let call =
            |path: &str| router.clone().oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap());
        let unmatched = requests("GET", UNMATCHED, 404);

        call("/test-metrics/widgets/1").await.unwrap();
        call("/test-metrics/widgets/2").await.unwrap();
        call("/test-metrics/no-such-route/3").await.unwrap();

        assert_eq!(requests("GET", "/test-metrics/widgets/{id}", 200), 2);
        assert_eq!(requests("GET", UNMATCHED, 404), unmatched + 1);
    }
}
