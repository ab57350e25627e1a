//! Serving and calling gRPC the same way in every process.

use std::{collections::BTreeMap, convert::Infallible, future::Future, sync::OnceLock, time::Duration};

use crate::{
    health::{Health, PartStatus},
    overload::{self, InFlightLimitLayer},
    trace,
};
use anyhow::Context;
use shop_events::TraceContext;
use tokio::{net::TcpListener, sync::watch};
use tonic::{
    Request,
    body::Body,
    codegen::{Service, http},
    server::NamedService,
    transport::{Channel, Endpoint, Server, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tracing::Instrument;

/// How long a request may run on the server before it is cancelled with `CANCELLED`/`DEADLINE_EXCEEDED`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most calls one server runs at once, over all its connections; past it calls are refused with `UNAVAILABLE`
/// (see [`overload`](crate::overload)). Each call holds at most one database connection, so this is far above any
/// pool: it bounds memory and tasks, and the pools' own timeouts shed what waits for a connection.
const MAX_IN_FLIGHT: usize = 1_024;
/// Most calls one HTTP/2 connection may have open at once; the client is told in its SETTINGS and holds back the
/// rest (one caller cannot take the whole in-flight budget on one connection).
const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// How often an idle connection is pinged, and how long the answer may take before the connection is dropped: a
/// peer that vanished without closing does not keep its connection for ever.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest protobuf message, in bytes, that every server and client here reads or writes, unless
/// [`MAX_MESSAGE_BYTES_ENV`] says otherwise. tonic's own defaults are 4 MiB to read and no limit at all to write;
/// this makes both explicit and the same on both ends, so a server never builds an answer its client will refuse.
/// A message's length prefix is checked before its body is read, so a larger one is refused (`OUT_OF_RANGE`)
/// without being buffered. Clients already refused to read more than this, so no answer that got through before
/// is refused now; what is new is that a server no longer builds and sends one that its client will throw away.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// The environment variable that raises [`MAX_MESSAGE_BYTES`] in a process (a number of bytes). It is read here
/// rather than in each binary's settings so that every server and client in the process, whichever crate builds
/// it, gets the same limit without threading a setting through every constructor. It cannot lower the limit: the
/// services size their largest answers for 4 MiB (one order can take about 2 MiB, an order list stops at 3 MiB),
/// and a lower limit would turn those into errors.
pub const MAX_MESSAGE_BYTES_ENV: &str = "GRPC_MAX_MESSAGE_BYTES";

/// Serves `service` on `listener` next to the standard gRPC health service (`grpc.health.v1`) and the reflection
/// service (`grpc.reflection.v1` and `v1alpha`, for grpcurl and similar tools), until `shutdown` resolves; then
/// stops accepting and lets in-flight calls finish.
///
/// Health reports `service` SERVING while it accepts calls, each part of `health` under its own name, and the whole
/// server (the empty name) SERVING only while every part is; all go NOT_SERVING when shutdown begins. Every call to
/// `service`, refused or not, is counted and timed ([`metrics::grpc`](crate::metrics::grpc)).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    file_descriptor_set: &'static [u8],
    health: Health,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_serving::<S>().await;
    let mirroring = tokio::spawn(mirror_health(reporter.clone(), health.watch()));
    let reflection = reflection_of::<S>(file_descriptor_set)
        .build_v1()
        .context("Failed to build the gRPC reflection service")?;
    // Older clients (grpcurl before 1.8.8, Python's grpcio-reflection, several GUI clients) speak only v1alpha.
    let reflection_v1alpha = reflection_of::<S>(file_descriptor_set)
        .build_v1alpha()
        .context("Failed to build the gRPC reflection service (v1alpha)")?;
    let parts: Vec<String> = health.statuses().into_keys().collect();
    let shutdown = async move {
        shutdown.await;
        // Tell load balancers first, so they stop sending while in-flight calls drain.
        mirroring.abort();
        reporter.set_not_serving::<S>().await;
        reporter.set_service_status("", ServingStatus::NotServing).await;
        for part in parts {
            reporter.set_service_status(part, ServingStatus::NotServing).await;
        }
    };

    Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(KEEPALIVE_INTERVAL))
        .layer(crate::metrics::grpc::GrpcMetricsLayer::new(S::NAME, file_descriptor_set))
        .layer(InFlightLimitLayer::new(MAX_IN_FLIGHT, overload::grpc_refusal))
        .trace_fn(server_span)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await
        .context("The gRPC server failed")
}

/// The span of one call this server serves, named and attributed per the OpenTelemetry conventions for RPC
/// (`{service}/{method}`, kind server), the child of the caller's span when the call carries a `traceparent`.
/// The handler runs in it, so what it writes (outbox rows) and calls carries its context on.
fn server_span(request: &http::Request<()>) -> tracing::Span {
    let caller =
        TraceContext::from_headers(|name| request.headers().get(name).and_then(|value| value.to_str().ok()));
    let (service, method) = rpc_names(request.uri().path());
    let span = tracing::info_span!(
        "grpc",
        otel.name = format!("{service}/{method}"),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        // Kept for the logs when traces are not exported: the caller's trace id.
        trace_id = caller.as_ref().map(TraceContext::trace_id).unwrap_or_default(),
    );
    if let Some(caller) = &caller {
        trace::set_parent(&span, caller);
    }
    span
}

/// `("shop.order.v1.OrderService", "PostOrder")` from the path `/shop.order.v1.OrderService/PostOrder`.
fn rpc_names(path: &str) -> (&str, &str) {
    path.trim_start_matches('/').split_once('/').unwrap_or((path, ""))
}

/// Reflection (either version) as this server offers it: the services it serves, and no others. The shop's
/// descriptor set holds every service's protos, so left to list whatever it describes, reflection would list the
/// other servers' services too; and each version lists both reflection services, as grpc-go's servers do.
fn reflection_of<S: NamedService>(
    file_descriptor_set: &'static [u8],
) -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(file_descriptor_set)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .include_reflection_service(false)
        .with_service_name(S::NAME)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
}

/// Keeps the gRPC health statuses in step with the process's parts.
async fn mirror_health(reporter: HealthReporter, mut parts: watch::Receiver<BTreeMap<String, PartStatus>>) {
    loop {
        let statuses = parts.borrow_and_update().clone();
        let serving = |yes: bool| if yes { ServingStatus::Serving } else { ServingStatus::NotServing };
        reporter.set_service_status("", serving(statuses.values().all(PartStatus::is_serving))).await;
        for (part, status) in statuses {
            reporter.set_service_status(part, serving(status.is_serving())).await;
        }
        if parts.changed().await.is_err() {
            return;
        }
    }
}

/// The trace context this call hands on (to the outbox rows it writes, the services it calls): the server span's
/// when traces are exported; otherwise the caller's, continued for this hop, or a new trace when the caller sent
/// none or an invalid one (as the W3C specification asks).
pub fn trace_context<T>(request: &Request<T>) -> TraceContext {
    let metadata = request.metadata();
    trace::current_or(|| {
        TraceContext::continue_from(|name| metadata.get(name).and_then(|value| value.to_str().ok()))
    })
}

/// Wraps `message` in a request that carries `trace` to the next service.
pub fn traced_request<T>(message: T, trace: &TraceContext) -> Request<T> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    if let Ok(value) = trace.traceparent().parse() {
        metadata.insert(TraceContext::TRACEPARENT, value);
    }
    if let Some(Ok(value)) = trace.tracestate().map(str::parse) {
        metadata.insert(TraceContext::TRACESTATE, value);
    }
    request
}

/// The message size limit of this process: [`MAX_MESSAGE_BYTES`], or [`MAX_MESSAGE_BYTES_ENV`] when it is set to
/// more (read once; an invalid or lower value is logged and ignored).
pub fn max_message_bytes() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| message_limit_from(std::env::var(MAX_MESSAGE_BYTES_ENV).ok().as_deref()))
}

fn message_limit_from(value: Option<&str>) -> usize {
    let Some(value) = value else { return MAX_MESSAGE_BYTES };
    match value.trim().parse::<usize>() {
        Ok(limit) if limit >= MAX_MESSAGE_BYTES => {
            tracing::info!(
                max_message_bytes = limit,
                "gRPC messages are limited by {MAX_MESSAGE_BYTES_ENV}."
            );
            limit
        }
        _ => {
            tracing::warn!(
                value,
                "Ignoring {MAX_MESSAGE_BYTES_ENV}, which is not a number of bytes of at least {MAX_MESSAGE_BYTES}; \
                 using {MAX_MESSAGE_BYTES}."
            );
            MAX_MESSAGE_BYTES
        }
    }
}

/// Sets both message size limits of a generated tonic server or client (`XServiceServer::new(..)`,
/// `XServiceClient::new(..)`) to [`max_message_bytes`]. A macro because the generated types share no trait: each
/// has its own `max_decoding_message_size` and `max_encoding_message_size`.
#[macro_export]
macro_rules! limit_message_sizes {
    ($generated:expr) => {{
        let limit = $crate::grpc::max_message_bytes();
        $generated.max_decoding_message_size(limit).max_encoding_message_size(limit)
    }};
}

/// Settings of one gRPC client: where the service is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `http://host:port` of the service.
    pub url: String,
    /// How long to wait for a connection before the call fails as UNAVAILABLE.
    pub connect_timeout: Duration,
    /// How long one call may take before it fails as DEADLINE_EXCEEDED. Enforced by the client only: tonic's
    /// endpoint timeout sends no `grpc-timeout`, so the server does not learn the deadline.
    pub request_timeout: Duration,
}

/// A channel that connects on first use and reconnects as needed, so a process starts even while the services it
/// calls are down; calls made meanwhile fail fast as UNAVAILABLE. Each call gets a client span (see
/// [`TracedChannel`]).
pub fn lazy_channel(settings: &ClientSettings) -> anyhow::Result<TracedChannel> {
    let endpoint = Endpoint::from_shared(settings.url.clone())
        .with_context(|| format!("Invalid gRPC service URL {:?}", settings.url))?
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .tcp_nodelay(true);
    Ok(TracedChannel(endpoint.connect_lazy()))
}

/// A tonic [`Channel`] whose every call runs in a client span (`{service}/{method}`, kind client, per the
/// OpenTelemetry conventions for RPC), and carries that span's context in `traceparent`, so the server's span is
/// its child. When traces are not exported the span is disabled and the request keeps the `traceparent` its
/// caller set (see [`traced_request`]).
#[derive(Debug, Clone)]
pub struct TracedChannel(Channel);

impl From<Channel> for TracedChannel {
    fn from(channel: Channel) -> Self {
        Self(channel)
    }
}

impl Service<http::Request<Body>> for TracedChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        if !trace::exporting() {
            return Box::pin(self.0.call(request));
        }
        let (service, method) = rpc_names(request.uri().path());
        let span = tracing::info_span!(
            "grpc client",
            otel.name = format!("{service}/{method}"),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        if let Some(trace) = trace::context_of(&span) {
            set_trace_headers(request.headers_mut(), &trace);
        }
        let call = self.0.call(request);
        Box::pin(
            async move {
                let response = call.await;
                let span = tracing::Span::current();
                match &response {
                    // A call that fails is answered with its status in the headers ("trailers only").
                    Ok(response) => {
                        let code = response
                            .headers()
                            .get("grpc-status")
                            .and_then(|code| code.to_str().ok()?.parse::<i32>().ok())
                            .unwrap_or(0);
                        span.record("rpc.grpc.status_code", code);
                        if code != 0 {
                            trace::record_error(&span, &tonic::Code::from(code));
                        }
                    }
                    Err(error) => trace::record_error(&span, error),
                }
                response
            }
            .instrument(span),
        )
    }
}

fn set_trace_headers(headers: &mut http::HeaderMap, trace: &TraceContext) {
    if let Ok(value) = trace.traceparent().parse() {
        headers.insert(TraceContext::TRACEPARENT, value);
    }
    match trace.tracestate().map(str::parse) {
        Some(Ok(value)) => {
            headers.insert(TraceContext::TRACESTATE, value);
        }
        _ => {
            headers.remove(TraceContext::TRACESTATE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traced_request_continues_the_same_trace() {
        let trace = TraceContext::new_root();

        let continued = trace_context(&traced_request((), &trace));

        assert_eq!(continued.trace_id(), trace.trace_id());
    }

    #[test]
    fn the_message_limit_can_be_raised_but_not_lowered_or_garbled() {
        assert_eq!(message_limit_from(None), MAX_MESSAGE_BYTES);
        assert_eq!(message_limit_from(Some("16777216")), 16 * 1024 * 1024);
        assert_eq!(message_limit_from(Some("1024")), MAX_MESSAGE_BYTES);
        assert_eq!(message_limit_from(Some("4MiB")), MAX_MESSAGE_BYTES);
    }

    #[test]
    fn a_request_without_trace_context_starts_a_new_trace() {
        let trace = trace_context(&Request::new(()));

        assert!(TraceContext::parse(trace.traceparent(), None).is_ok());
    }
}
