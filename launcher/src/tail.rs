//! `shop tail`: prints a topic's records as JSON lines, one per record, for people and scripts.

use std::{collections::BTreeMap, io::Write, time::Duration};

use anyhow::Context;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use serde_json::{Value, json};
use shop_platform::{
    kafka::{KafkaSettings, TracingContext},
    trace,
};
use uuid::Uuid;

/// What to print.
#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// The topic, for example `shop.orders.v1`.
    #[arg(long)]
    pub topic: String,
    /// Start from the oldest record rather than only new ones (with --group: when the group has no position yet).
    #[arg(long)]
    pub from_beginning: bool,
    /// Consume as this consumer group, committing its position, so the next run resumes where this one stopped.
    #[arg(long)]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    pub max_records: Option<u64>,
    #[command(flatten)]
    pub kafka: KafkaSettings,
}

/// Prints records to `out` until `stop` resolves or `max_records` were printed; returns how many were.
pub async fn tail(
    args: &TailArgs,
    out: &mut impl Write,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<u64> {
    let group = args.group.clone().unwrap_or_else(|| format!("shop-tail-{}", Uuid::now_v7()));
    let reset = if args.from_beginning { "earliest" } else { "latest" };
    let consumer: StreamConsumer<TracingContext> = args
        .kafka
        .client_config(&[
            ("group.id", &group),
            ("auto.offset.reset", reset),
            ("enable.auto.commit", if args.group.is_some() { "true" } else { "false" }),
        ])
        .create_with_context(TracingContext)
        .context("Failed to create a Kafka consumer")?;

    if args.group.is_some() {
        consumer.subscribe(&[&args.topic])?;
    } else {
        // No group: read every partition directly, committing nothing.
        let metadata = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(10))?;
        let topic = metadata.topics().first().context("No such topic")?;
        anyhow::ensure!(!topic.partitions().is_empty(), "Topic {} does not exist", args.topic);
        let start = if args.from_beginning { Offset::Beginning } else { Offset::End };
        let mut assignment = TopicPartitionList::new();
        for partition in topic.partitions() {
            assignment.add_partition_offset(&args.topic, partition.id(), start)?;
        }
        consumer.assign(&assignment)?;
    }

    let mut printed = 0;
    tokio::pin!(stop);
    while args.max_records.is_none_or(|max| printed < max) {
        let message = tokio::select! {
            () = &mut stop => break,
            message = consumer.recv() => message?,
        };
        let _processing = trace::process_message_span(&group, &message).entered();
        writeln!(out, "{}", to_json(&message))?;
        out.flush()?;
        printed += 1;
    }
    Ok(printed)
}

/// One record as JSON: where it is, its key, its headers, and its value (parsed when it is JSON).
fn to_json(message: &impl Message) -> Value {
    let headers: BTreeMap<&str, String> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key, String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let value = message.payload().map(|payload| {
        serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
    });
    json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp_ms": message.timestamp().to_millis(),
        "key": message.key().map(String::from_utf8_lossy),
        "headers": headers,
        "value": value,
    })
}
