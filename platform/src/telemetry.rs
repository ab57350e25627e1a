//! Logs and traces, set up the same way by every binary.
//!
//! Logs go to stderr, as text or JSON, filtered by `RUST_LOG`. Traces leave the process over OTLP/gRPC when the
//! standard OpenTelemetry variables ask for them — `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp` for the default `http://localhost:4317`),
//! with `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`,
//! `OTEL_BSP_*` and `OTEL_EXPORTER_OTLP_{HEADERS,TIMEOUT}` read by the OpenTelemetry SDK as the specification
//! says; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn them off. When none is set there is no
//! exporter and no OpenTelemetry layer at all: the spans made only for traces (see [`crate::trace`]) are not made,
//! at the cost of a branch. `RUST_LOG` filters spans as it filters logs: at the default `info` every span the shop
//! makes is exported.
//!
//! Spans are exported in batches by a task on the process's Tokio runtime, so a request never waits for the
//! collector; when the queue is full, spans are dropped rather than held. [`Telemetry::shutdown`] flushes what is
//! queued when the process stops.
//!
//! JSON log lines carry the `trace_id` and `span_id` of the span they were written in, when traces are on, so a
//! log line leads to its trace and back.

use std::{fmt, sync::OnceLock, time::Duration};

use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::{
    Resource, runtime,
    trace::{SdkTracerProvider, span_processor_with_async_runtime::BatchSpanProcessor},
};
use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Postgres notices (`relation … already exists, skipping` from idempotent migrations) are not for a newcomer's
/// terminal; sqlx logs them at `info`.
const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Library targets whose spans and logs would drown the shop's own in traces (HTTP/2 frames, connection pools):
/// kept to warnings unless `RUST_LOG` names them.
const QUIET_LIBRARIES: &[&str] = &["h2", "hyper", "hyper_util", "tower", "tonic", "rdkafka"];

/// How long the shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Logging settings, flattened into every binary's settings. Traces are configured by the `OTEL_*` variables
/// (see the module documentation), as every OpenTelemetry SDK is.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetrySettings {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which logs to keep, in `tracing` filter syntax (for example `info,sqlx=warn`); also which spans are
    /// exported when traces are on (the shop's spans are at `info`).
    #[arg(long, env = "RUST_LOG", default_value = DEFAULT_LOG_FILTER)]
    pub log_filter: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { log_format: LogFormat::Text, log_filter: DEFAULT_LOG_FILTER.to_owned() }
    }
}

/// The process's telemetry, once installed: keep it until the process ends, then [`shutdown`](Self::shutdown).
#[derive(Debug)]
#[must_use = "call `shutdown` at the end of `main`, or queued spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still queued and stops the exporter (at most a few seconds: a collector that is away does
    /// not hold the process up).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // The SDK blocks until its export task answers; that task runs on this runtime, so wait off it.
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT)).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("Failed to flush the last spans: {error}"),
            Err(error) => eprintln!("Failed to flush the last spans: {error}"),
        }
    }
}

/// Installs the global log subscriber and, when the `OTEL_*` variables ask for it, the trace exporter; spans are
/// attributed to `OTEL_SERVICE_NAME`, or to `service_name` when it is unset. Call once, first thing in `main`,
/// inside the Tokio runtime. Logs go to stderr, so that commands whose output is data (`shop tail`) keep stdout
/// clean.
pub fn init(settings: &TelemetrySettings, service_name: &'static str) -> Telemetry {
    let filter = EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|error| {
        eprintln!(
            "Ignoring the invalid log filter {:?} ({error}); using `{DEFAULT_LOG_FILTER}`.",
            settings.log_filter
        );
        EnvFilter::new(DEFAULT_LOG_FILTER)
    });
    let logs = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(WithTraceIds(
                tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(true),
            ))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (provider, refusal) = match trace_export_requested() {
        Ok(true) => match tracer_provider(service_name) {
            Ok(provider) => (Some(provider), None),
            Err(error) => (None, Some(format!("Traces are not exported: {error:#}"))),
        },
        Ok(false) => (None, None),
        Err(refusal) => (None, Some(refusal)),
    };
    let traces = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("shop")).with_level(true));
    // One filter for both layers, on purpose: per-layer filters keep per-thread state between a callsite's
    // `enabled` check and its event, which libraries that check without emitting (sqlx's query logger) leave
    // stale, so spans and log lines went missing at random. Spans made only for traces are skipped when none are
    // exported (see `crate::trace::exporting`) rather than filtered.
    let filter = QUIET_LIBRARIES.iter().fold(filter, |filter, library| {
        let named = settings.log_filter.split(',').any(|directive| directive.trim().starts_with(library));
        if named {
            filter
        } else {
            filter.add_directive(format!("{library}=warn").parse().expect("a valid directive"))
        }
    });
    tracing_subscriber::registry().with(filter).with(logs).with(traces).init();
    if provider.is_some() {
        crate::trace::set_exporting();
        tracing::dispatcher::get_default(|dispatch| TRACED.set(dispatch.clone()).ok());
    }
    if let Some(refusal) = refusal {
        tracing::warn!("{refusal}");
    }
    if provider.is_some() {
        tracing::info!(service_name, "Exporting traces over OTLP/gRPC.");
    }
    Telemetry { provider }
}

/// Whether the `OTEL_*` variables ask for traces; an error says why what they ask for cannot be done.
fn trace_export_requested() -> Result<bool, String> {
    let var = |name: &str| std::env::var(name).ok().map(|value| value.trim().to_ascii_lowercase());
    if var("OTEL_SDK_DISABLED").as_deref() == Some("true") {
        return Ok(false);
    }
    let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
    match var("OTEL_TRACES_EXPORTER").as_deref() {
        Some("none") => return Ok(false),
        Some("otlp") | None => {}
        Some(other) => return Err(format!("OTEL_TRACES_EXPORTER={other} is not supported (only `otlp`).")),
    }
    let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    if let Some(protocol) = protocol.filter(|protocol| protocol != "grpc") {
        return Err(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: traces are exported over OTLP/gRPC only \
             (`grpc`, port 4317 by convention)."
        ));
    }
    Ok(endpoint.is_some() || var("OTEL_TRACES_EXPORTER").is_some())
}

/// The SDK's tracer provider: OTLP/gRPC exporter, batched on this runtime, sampler and resource from the
/// environment.
fn tracer_provider(service_name: &'static str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
    let batches = BatchSpanProcessor::builder(exporter, runtime::Tokio).build();
    let resource = if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        Resource::builder().build()
    } else {
        Resource::builder().with_service_name(service_name).build()
    };
    Ok(SdkTracerProvider::builder().with_span_processor(batches).with_resource(resource).build())
}

/// A JSON event format that puts the `trace_id` and `span_id` of the event's span first in the line, when the
/// span is traced.
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let span = event.parent().and_then(|id| ctx.span(id)).or_else(|| ctx.lookup_current());
        let Some((trace_id, span_id)) = span.and_then(|span| traced_ids(&span.id())) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The inner format writes one JSON object; open ours with the ids and go on with its fields.
        match line.strip_prefix('{') {
            Some(fields) => write!(writer, r#"{{"trace_id":"{trace_id}","span_id":"{span_id}",{fields}"#),
            None => writer.write_str(&line),
        }
    }
}

/// The global subscriber, kept to look spans up while an event is being written: `tracing` hands no dispatcher to
/// code that runs inside one of its callbacks.
static TRACED: OnceLock<tracing::Dispatch> = OnceLock::new();

/// The OpenTelemetry trace and span ids of the span `id`, when it is traced.
fn traced_ids(id: &tracing::span::Id) -> Option<(String, String)> {
    let context = tracing_opentelemetry::get_otel_context(id, TRACED.get()?)?;
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}
