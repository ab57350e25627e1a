//! A real OTLP trace receiver: the OpenTelemetry collector's gRPC trace service (from `opentelemetry-proto`), served
//! on a free port, keeping every span it is sent. Point a process at it with
//! `OTEL_EXPORTER_OTLP_ENDPOINT={receiver.endpoint}`.

use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::span::SpanKind,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{Request, Response, Status};

/// One span as received, with the name of the service that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that sent it.
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    /// Hex, as W3C `traceparent` writes them.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// `(trace id, span id)` of every linked span.
    pub links: Vec<(String, String)>,
    /// The attributes, their values as text.
    pub attributes: BTreeMap<String, String>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Whether the span's status is ERROR.
    pub failed: bool,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nanos.saturating_sub(self.start_unix_nanos))
    }

    /// Whether it is linked to `other`.
    pub fn links_to(&self, other: &ReceivedSpan) -> bool {
        self.links.iter().any(|(trace, span)| *trace == other.trace_id && *span == other.span_id)
    }
}

/// The receiver; it stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    /// `http://127.0.0.1:{port}`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    server: JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address: SocketAddr = listener.local_addr().expect("a bound address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let service = Collector { spans: spans.clone() };
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .expect("the OTLP receiver failed");
        });
        Self { endpoint: format!("http://{address}"), spans, server }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("not poisoned").clone()
    }

    /// The spans of the trace `trace_id`, in the order they started.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        let mut spans: Vec<ReceivedSpan> =
            self.spans().into_iter().filter(|span| span.trace_id == trace_id).collect();
        spans.sort_by_key(|span| span.start_unix_nanos);
        spans
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The spans of one trace as a tree, one line per span (`service  name [kind] duration`), children indented under
/// their parent in the order given; spans whose parent was not received are roots.
pub fn tree(spans: &[ReceivedSpan]) -> String {
    fn write_span(out: &mut String, spans: &[ReceivedSpan], span: &ReceivedSpan, depth: usize) {
        let kind = format!("{:?}", span.kind).to_lowercase();
        let links =
            if span.links.is_empty() { String::new() } else { format!(", {} links", span.links.len()) };
        let _ = writeln!(
            out,
            "{:indent$}{:<8} {} [{kind}{links}] {:.1} ms",
            "",
            span.service,
            span.name,
            span.duration().as_secs_f64() * 1e3,
            indent = depth * 2
        );
        for child in spans.iter().filter(|child| child.parent_span_id == span.span_id) {
            write_span(out, spans, child, depth + 1);
        }
    }
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    let mut out = String::new();
    for root in spans.iter().filter(|span| !ids.contains(span.parent_span_id.as_str())) {
        write_span(&mut out, spans, root, 0);
    }
    out
}

struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|resource| attributes(&resource.attributes));
            let service =
                resource.and_then(|mut attributes| attributes.remove("service.name")).unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    links: span.links.iter().map(|link| (hex(&link.trace_id), hex(&link.span_id))).collect(),
                    attributes: attributes(&span.attributes),
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                    // 2 is STATUS_CODE_ERROR.
                    failed: span.status.is_some_and(|status| status.code == 2),
                    name: span.name,
                });
            }
        }
        self.spans.lock().expect("not poisoned").extend(received);
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attributes(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes.iter().map(|pair| (pair.key.clone(), text(pair.value.as_ref()))).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
