//! The bridge between the W3C trace context the shop carries ([`TraceContext`], in gRPC metadata, outbox rows and
//! Kafka headers) and the spans it exports (see [`telemetry`](crate::telemetry)), and the messaging spans every
//! producer and consumer makes, named and attributed per the OpenTelemetry semantic conventions.
//!
//! When traces are not exported, every function here is a cheap no-op: [`context_of`] answers `None` and callers
//! keep propagating the context they received, as they did before spans left the process.

use std::{
    str::FromStr,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use shop_events::TraceContext;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of the spans made per Kafka record or batch.
pub const MESSAGING_TARGET: &str = "shop::messaging";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans (see [`telemetry`](crate::telemetry)). The spans made only for traces —
/// client calls, transactions, records sent and applied — are not made when it does not.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The W3C context of `span`, for the next hop: `None` when `span` is not traced.
pub fn context_of(span: &Span) -> Option<TraceContext> {
    if !exporting() || span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let traceparent = format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    );
    let tracestate = span_context.trace_state().header();
    TraceContext::parse(&traceparent, Some(&tracestate).filter(|state| !state.is_empty()).map(String::as_str))
        .ok()
}

/// The W3C context of the span the caller is in (see [`context_of`]).
pub fn current() -> Option<TraceContext> {
    context_of(&Span::current())
}

/// The context to hand on from here: the current span's when it is traced, `otherwise` when it is not.
pub fn current_or(otherwise: impl FnOnce() -> TraceContext) -> TraceContext {
    current().unwrap_or_else(otherwise)
}

/// Makes `span` a child of the remote span `parent` (a caller in another process, or the writer of a record).
/// Call it right after creating `span`, before anything is logged in it: the parent is fixed when the span starts.
pub fn set_parent(span: &Span, parent: &TraceContext) {
    if span.is_disabled() {
        return;
    }
    let Some(parent) = span_context(parent) else { return };
    // Fails only if the span was already started, which the rule above prevents.
    let _ = span.set_parent(Context::new().with_remote_span_context(parent));
}

/// Links `span` to `other`: it served that span's work without being its child (a batch serving many records).
pub fn add_link(span: &Span, other: &TraceContext) {
    if span.is_disabled() {
        return;
    }
    if let Some(other) = span_context(other) {
        span.add_link(other);
    }
}

fn span_context(trace: &TraceContext) -> Option<SpanContext> {
    let flags = u8::from_str_radix(trace.flags(), 16).ok()?;
    Some(SpanContext::new(
        TraceId::from_hex(trace.trace_id()).ok()?,
        SpanId::from_hex(trace.parent_id()).ok()?,
        TraceFlags::new(flags),
        true,
        trace.tracestate().and_then(|state| TraceState::from_str(state).ok()).unwrap_or_default(),
    ))
}

/// The producer span of one record sent to `topic`: a child of the span that wrote it (`written_under`, the trace
/// stored with its outbox row). Its context is what the record's `traceparent` header should carry, so that the
/// consumers' spans follow it. Record the partition and offset (`messaging.destination.partition.id`,
/// `messaging.kafka.offset`) once the broker acknowledged it.
/// `written_under` is asked only when the span is traced.
pub fn send_span(topic: &str, key: &str, written_under: impl FnOnce() -> Option<TraceContext>) -> Span {
    if !exporting() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: MESSAGING_TARGET,
        "send",
        otel.name = format!("send {topic}"),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = topic,
        messaging.kafka.message.key = key,
        messaging.destination.partition.id = tracing::field::Empty,
        messaging.kafka.offset = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Some(parent) = written_under()
    {
        set_parent(&span, &parent);
    }
    span
}

/// The consumer span of one batch of `count` records that the consumer group `group` applies from `topic` in one
/// transaction; `records` (asked only when the span is traced) are the trace contexts the records carry. It is
/// linked to every record's producer span; when every record comes from one trace, it is also that trace's child
/// (the usual case live: an order's record applied on its own), so the order's trace shows the apply.
pub fn process_span(
    group: &str,
    topic: &str,
    count: usize,
    records: impl FnOnce() -> Vec<TraceContext>,
) -> Span {
    if !exporting() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: MESSAGING_TARGET,
        "process",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = topic,
        messaging.consumer.group.name = group,
        messaging.batch.message_count = count,
        messaging.destination.partition.id = tracing::field::Empty,
        messaging.kafka.offset = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let records = records();
    if let Some(first) = records.first()
        && records.iter().all(|trace| trace.trace_id() == first.trace_id())
    {
        set_parent(&span, first);
    }
    for record in &records {
        add_link(&span, record);
    }
    span
}

/// The consumer span of the one record `message` that the consumer `group` handles (see [`process_span`]).
#[cfg(feature = "kafka")]
pub fn process_message_span(group: &str, message: &impl rdkafka::Message) -> Span {
    use rdkafka::message::Headers;

    let span = process_span(group, message.topic(), 1, || {
        let headers = message.headers();
        let header = |name: &str| {
            headers?
                .iter()
                .find(|header| header.key == name)?
                .value
                .and_then(|value| std::str::from_utf8(value).ok())
        };
        TraceContext::from_headers(header).into_iter().collect()
    });
    record_position(&span, message.partition(), message.offset());
    span
}

/// Records where the one record a consumer span is about sits in its topic.
pub fn record_position(span: &Span, partition: i32, offset: i64) {
    span.record("messaging.destination.partition.id", partition.to_string());
    span.record("messaging.kafka.offset", offset);
}

/// The span of one database transaction of the service whose database is `database`, named by `summary` (what it
/// does, as the OpenTelemetry database conventions summarise a query: operations and tables, such as
/// `INSERT orders outbox`). Outbox rows written in it carry its context (see `shop_outbox::append`), so the relay's
/// send of each row is its child.
pub fn transaction_span(database: &'static str, summary: &'static str) -> Span {
    if !exporting() {
        return Span::none();
    }
    tracing::info_span!(
        "transaction",
        otel.name = summary,
        otel.kind = "client",
        db.system.name = "postgresql",
        db.namespace = database,
        db.operation.name = "TRANSACTION",
        db.query.summary = summary,
    )
}

/// Marks `span` as failed (the OpenTelemetry status), with `error` as its description.
pub fn record_error(span: &Span, error: &dyn std::fmt::Display) {
    span.set_status(opentelemetry::trace::Status::error(error.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_context_becomes_the_same_remote_span_context() {
        let trace = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("congo=t61rcWkgMzE"),
        )
        .unwrap();

        let context = span_context(&trace).unwrap();

        assert_eq!(context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled() && context.is_remote());
        assert_eq!(context.trace_state().header(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn without_an_exporter_no_span_has_a_context() {
        let span = send_span("shop.orders.v1", "key", || Some(TraceContext::new_root()));

        assert_eq!(context_of(&span), None);
        assert_eq!(current(), None);
    }
}
