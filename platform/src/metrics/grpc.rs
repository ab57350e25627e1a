//! What every gRPC server of the process handles: calls per method and status code, and how long they take.
//!
//! - `shop_grpc_server_handled_total{grpc_service,grpc_method,grpc_code}`: calls answered, by status code (its
//!   canonical name: `OK`, `NOT_FOUND`, `UNAVAILABLE`…).
//! - `shop_grpc_server_handling_seconds{grpc_service,grpc_method}`: from the request's arrival to the end of the
//!   answer (its trailers), so a streamed answer counts until its last message.
//!
//! The labels are bounded by the server, never by the caller: a path that is not a method of the served service
//! (a client's typo, a scanner) is counted as `unknown`/`unknown`. The health and reflection services are left out:
//! load balancers and probes call them every few seconds, and their series would only bury the shop's own.
//!
//! The status code is read where tonic puts it: in the response headers for an answer with no message (every
//! error, and the refusals of the layers inside this one), otherwise in the trailers that end the body. A body that
//! ends without trailers counts as `OK`; a call dropped before it ends — the client went away, the server's timeout
//! cancelled it — counts as `CANCELLED`, which is what the client sees.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};
use prost::Message;
use tokio::time::Instant;
use tonic::codegen::{Bytes, http};
use tower::{Layer, Service};

use super::{intern, latency_histogram, register};

/// Services every server carries beside its own, left out of the metrics (see the module docs).
const UNMETERED_PREFIXES: [&str; 2] = ["/grpc.health.", "/grpc.reflection."];
/// The label values of a path that is no method of the served service.
const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Debug)]
struct Families {
    handled: Family<HandledLabels, Counter>,
    handling: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| Families {
    handled: register(
        "shop_grpc_server_handled",
        "gRPC calls answered by this process's servers, by method and status code",
        Family::default(),
    ),
    handling: register(
        "shop_grpc_server_handling_seconds",
        "Time from a gRPC call's arrival to the end of its answer",
        Family::new_with_constructor(latency_histogram),
    ),
});

/// Meters the calls of the server of `service` (its full name, `shop.order.v1.OrderService`), knowing its methods
/// from the server's file descriptor set.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    methods: Arc<Methods>,
}

impl GrpcMetricsLayer {
    /// The layer for `service`, whose methods `file_descriptor_set` (encoded, as `tonic-prost-build` writes it)
    /// describes. A set that cannot be read leaves every call counted as `unknown`, and says so.
    pub fn new(service: &str, file_descriptor_set: &[u8]) -> Self {
        let methods = Methods::of(service, file_descriptor_set).unwrap_or_else(|error| {
            tracing::warn!(service, error.message = %error, "Cannot read the service's methods; metering its calls as unknown.");
            Methods { known: HashMap::new() }
        });
        LazyLock::force(&FAMILIES);
        Self { methods: Arc::new(methods) }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, methods: self.methods.clone() }
    }
}

/// The methods of one service, by path (`/shop.order.v1.OrderService/CreateOrder`).
#[derive(Debug)]
struct Methods {
    known: HashMap<String, MethodLabels>,
}

impl Methods {
    fn of(service: &str, file_descriptor_set: &[u8]) -> Result<Self, prost::DecodeError> {
        let set = prost_types::FileDescriptorSet::decode(file_descriptor_set)?;
        let mut known = HashMap::new();
        for file in &set.file {
            let package = file.package();
            for described in &file.service {
                let name = match package {
                    "" => described.name().to_owned(),
                    package => format!("{package}.{}", described.name()),
                };
                if name != service {
                    continue;
                }
                for method in &described.method {
                    let labels =
                        MethodLabels { grpc_service: intern(&name), grpc_method: intern(method.name()) };
                    known.insert(format!("/{name}/{}", method.name()), labels);
                }
            }
        }
        Ok(Self { known })
    }

    /// The labels of a call to `path`, or `None` for a call left out.
    fn labels(&self, path: &str) -> Option<MethodLabels> {
        if UNMETERED_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
            return None;
        }
        Some(
            self.known
                .get(path)
                .copied()
                .unwrap_or(MethodLabels { grpc_service: UNKNOWN, grpc_method: UNKNOWN }),
        )
    }
}

/// A service whose calls are metered (see the module docs).
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    methods: Arc<Methods>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let observation = self.methods.labels(request.uri().path()).map(Observation::start);
        let response = self.inner.call(request);
        Box::pin(async move {
            // Dropped before the answer (a timeout, a client gone): the observation records CANCELLED.
            let response = response.await?;
            let observation = match (observation, status_code(response.headers())) {
                (Some(mut observation), Some(code)) => {
                    observation.finish(code);
                    None
                }
                (observation, _) => observation,
            };
            Ok(response.map(|body| MeteredBody { inner: body, observation }))
        })
    }
}

/// A response body that records its call's status when its trailers come (or it ends, or is dropped).
#[derive(Debug)]
pub struct MeteredBody<B> {
    inner: B,
    observation: Option<Observation>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for MeteredBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                frame.trailers_ref().map(|trailers| status_code(trailers).unwrap_or("OK"))
            }
            // The stream broke: the client gets a reset, not a status.
            Poll::Ready(Some(Err(_))) => Some("UNKNOWN"),
            Poll::Ready(None) => Some("OK"),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(mut observation) = self.observation.take()
        {
            observation.finish(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        // Dropped unfinished: the server stopped sending, or the client went away, before the trailers.
        if let Some(mut observation) = self.observation.take() {
            observation.finish("CANCELLED");
        }
    }
}

/// One call being timed.
#[derive(Debug)]
struct Observation {
    labels: MethodLabels,
    started: Instant,
    finished: bool,
}

impl Observation {
    fn start(labels: MethodLabels) -> Self {
        Self { labels, started: Instant::now(), finished: false }
    }

    fn finish(&mut self, code: &'static str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let MethodLabels { grpc_service, grpc_method } = self.labels;
        FAMILIES.handling.get_or_create(&self.labels).observe(self.started.elapsed().as_secs_f64());
        FAMILIES.handled.get_or_create(&HandledLabels { grpc_service, grpc_method, grpc_code: code }).inc();
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        self.finish("CANCELLED");
    }
}

/// The canonical name of the status code in `headers` (`grpc-status`), if there is one.
fn status_code(headers: &http::HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?;
    let code = value.to_str().ok().and_then(|value| value.parse::<usize>().ok());
    Some(code.and_then(|code| CODE_NAMES.get(code).copied()).unwrap_or("UNKNOWN"))
}

/// The status codes' canonical names (gRPC's `doc/statuscodes.md`), by number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use prost_types::{
        FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
    };
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// The encoded descriptor set of package `test.metrics` with service `service` and its `methods`.
    fn descriptors(service: &str, methods: &[&str]) -> Vec<u8> {
        let service = ServiceDescriptorProto {
            name: Some(service.into()),
            method: methods
                .iter()
                .map(|name| MethodDescriptorProto { name: Some((*name).into()), ..Default::default() })
                .collect(),
            ..Default::default()
        };
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                package: Some("test.metrics".into()),
                service: vec![service],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn handled(service: &'static str, method: &'static str, code: &'static str) -> u64 {
        let labels = HandledLabels { grpc_service: service, grpc_method: method, grpc_code: code };
        FAMILIES.handled.get_or_create(&labels).get()
    }

    #[test]
    fn only_the_served_services_methods_are_labelled_by_name() {
        let set = descriptors("Widgets", &["GetWidget", "ListWidgets"]);
        let methods = Methods::of("test.metrics.Widgets", &set).unwrap();

        let known = methods.labels("/test.metrics.Widgets/GetWidget").unwrap();
        assert_eq!((known.grpc_service, known.grpc_method), ("test.metrics.Widgets", "GetWidget"));
        for unknown in
            ["/test.metrics.Widgets/DropTables", "/evil.Service/x", "/", "/test.metrics.Gadgets/GetWidget"]
        {
            let labels = methods.labels(unknown).unwrap();
            assert_eq!((labels.grpc_service, labels.grpc_method), (UNKNOWN, UNKNOWN), "{unknown}");
        }
        assert!(methods.labels("/grpc.health.v1.Health/Check").is_none());
        assert!(methods.labels("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").is_none());
    }

    #[test]
    fn a_status_is_read_by_its_number_and_anything_else_is_unknown() {
        let headers = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-status", value.parse().unwrap());
            headers
        };

        assert_eq!(status_code(&headers("0")), Some("OK"));
        assert_eq!(status_code(&headers("5")), Some("NOT_FOUND"));
        assert_eq!(status_code(&headers("16")), Some("UNAUTHENTICATED"));
        assert_eq!(status_code(&headers("17")), Some("UNKNOWN"));
        assert_eq!(status_code(&headers("nope")), Some("UNKNOWN"));
        assert_eq!(status_code(&http::HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn an_error_in_the_headers_and_an_answer_ended_by_its_trailers_are_each_counted_once() {
        let layer =
            GrpcMetricsLayer::new("test.metrics.Counted", &descriptors("Counted", &["Fail", "Succeed"]));
        let service = layer.layer(service_fn(|request: http::Request<()>| async move {
            let response = if request.uri().path().ends_with("/Fail") {
                tonic::Status::not_found("no such widget").into_http()
            } else {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                let body = http_body_util::StreamBody::new(futures::stream::iter([
                    Ok::<_, tonic::Status>(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                    Ok(Frame::trailers(trailers)),
                ]));
                http::Response::new(tonic::body::Body::new(body))
            };
            Ok::<_, Infallible>(response)
        }));
        let call = |method: &str| {
            let request =
                http::Request::builder().uri(format!("/test.metrics.Counted/{method}")).body(()).unwrap();
            service.clone().oneshot(request)
        };

        let failed = call("Fail").await.unwrap();
        drop(failed);
        let succeeded = call("Succeed").await.unwrap();
        assert_eq!(handled("test.metrics.Counted", "Succeed", "OK"), 0, "not before its trailers");
        http_body_util::BodyExt::collect(succeeded.into_body()).await.unwrap();

        assert_eq!(handled("test.metrics.Counted", "Fail", "NOT_FOUND"), 1);
        assert_eq!(handled("test.metrics.Counted", "Fail", "CANCELLED"), 0);
        assert_eq!(handled("test.metrics.Counted", "Succeed", "OK"), 1);
        let scrape = crate::metrics::encode().unwrap();
        let timed = r#"shop_grpc_server_handling_seconds_count{grpc_service="test.metrics.Counted",grpc_method="Succeed"} 1"#;
        assert!(scrape.lines().any(|line| line == timed), "{scrape}");
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_answer_ends_is_cancelled() {
        let layer = GrpcMetricsLayer::new("test.metrics.Dropped", &descriptors("Dropped", &["Stream"]));
        let service = layer.layer(service_fn(|_: http::Request<()>| async {
            let body = http_body_util::StreamBody::new(futures::stream::pending::<
                Result<Frame<Bytes>, tonic::Status>,
            >());
            Ok::<_, Infallible>(http::Response::new(tonic::body::Body::new(body)))
        }));
        let request = http::Request::builder().uri("/test.metrics.Dropped/Stream").body(()).unwrap();

        let streaming = service.oneshot(request).await.unwrap();
        drop(streaming);

        assert_eq!(handled("test.metrics.Dropped", "Stream", "CANCELLED"), 1);
        assert_eq!(handled("test.metrics.Dropped", "Stream", "OK"), 0);
    }
}
