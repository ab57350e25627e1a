//! The relay's Kafka side: the producer and its guarantees, topic creation, turning an outbox row into a record,
//! and telling apart the errors worth retrying from the records Kafka will never take.

use std::time::Duration;

use anyhow::Context;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use shop_events::{TraceContext, topics::TopicSpec};
use shop_platform::{
    backoff::Backoff,
    kafka::{KafkaSettings, TracingContext},
};

use crate::store::OutboxRow;

/// The producer every outbox relay owns.
pub type Producer = FutureProducer<TracingContext>;

/// What the relay needs from every producer.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "shop-relay"),
    // Exactly one copy per send, in order per partition, acknowledged by every in-sync replica.
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // Should a record fail in a way that could leave a gap behind it, stop the producer (the relay builds a new
    // one) rather than deliver the records queued after it: per-aggregate order is worth more than throughput.
    ("enable.gapless.guarantee", "true"),
    // Never give up on a record on the producer's own clock: the relay bounds each batch's wait itself (by its
    // lease), then purges what is left and starts a new producer. Only Kafka's definitive refusals fail a delivery.
    ("message.timeout.ms", "0"),
    // The partitioner of the Java client, so Java producers and consumers agree on where a key lives.
    ("partitioner", "murmur2_random"),
    // No lingering: the relay hands the producer a whole batch and waits for its acknowledgements, so a linger
    // would only hold each batch back. Under load the relay batches commits itself (`RELAY_BATCH_WINDOW_MS`).
    // With a 5 ms linger doing that job instead, every event waited it out, even the first after a quiet spell.
    ("linger.ms", "0"),
    // Topics are created by the relay with the right cleanup policy, or by an operator; a broker that creates
    // them on first use would make an entity topic that is not compacted.
    ("allow.auto.create.topics", "false"),
];

/// Overrides the relay refuses, each with what it would break.
const GUARDED: &[(&str, &str)] = &[
    (
        "enable.idempotence",
        "without idempotence a retried send can duplicate or reorder an aggregate's events",
    ),
    (
        "enable.gapless.guarantee",
        "without it a failed send can leave a gap that later events of its aggregate jump",
    ),
    ("acks", "an event acknowledged by fewer than all in-sync replicas can be lost, yet its row is deleted"),
    (
        "max.in.flight.requests.per.connection",
        "the idempotent producer keeps order only with at most 5 in flight",
    ),
    ("max.in.flight", "the idempotent producer keeps order only with at most 5 in flight"),
];

/// Refuses operator overrides (`KAFKA_OPTIONS`) that would void the relay's guarantees, saying why.
pub fn check_overrides(kafka: &KafkaSettings) -> anyhow::Result<()> {
    for option in &kafka.kafka_options {
        let Some((_, why)) = GUARDED.iter().find(|(key, _)| *key == option.key) else { continue };
        let allowed = match option.key.as_str() {
            "enable.idempotence" | "enable.gapless.guarantee" => option.value == "true",
            "acks" => matches!(option.value.as_str(), "all" | "-1"),
            _ => option.value.parse::<u32>().is_ok_and(|in_flight| (1..=5).contains(&in_flight)),
        };
        anyhow::ensure!(
            allowed,
            "KAFKA_OPTIONS may not set {}={} for the relay: {why}",
            option.key,
            option.value
        );
    }
    Ok(())
}

/// A producer with the relay's guarantees.
pub fn create_producer(kafka: &KafkaSettings) -> anyhow::Result<Producer> {
    check_overrides(kafka)?;
    Ok(kafka.client_config(PRODUCER_DEFAULTS).create_with_context(TracingContext)?)
}

/// Drops `producer` off the async workers: dropping purges and flushes, which blocks.
pub async fn retire(producer: Producer) {
    if let Err(error) = tokio::task::spawn_blocking(move || drop(producer)).await {
        tracing::warn!(error.message = %error, "Failed to retire a Kafka producer.");
    }
}

/// The record for `row` on `topic` (its topic as named on the cluster): key = aggregate id, value = payload JSON,
/// CloudEvents binary-mode headers. Its `traceparent` is `sent_under` (the span sending it, when traces are
/// exported), or else the one stored with the row.
pub fn record<'a>(
    row: &'a OutboxRow,
    topic: &'a str,
    key: &'a str,
    sent_under: Option<&TraceContext>,
) -> FutureRecord<'a, str, str> {
    let mut metadata = row.metadata();
    if let Some(trace) = sent_under {
        metadata.traceparent = Some(trace.traceparent());
        metadata.tracestate = trace.tracestate();
    }
    let headers = metadata.headers().into_iter().fold(OwnedHeaders::new(), |headers, (name, value)| {
        headers.insert(Header { key: name, value: Some(&value) })
    });
    FutureRecord::to(topic).key(key).payload(row.payload.as_str()).headers(headers)
}

/// What a failed send means for the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The producer's queue is full: wait a moment and send again.
    QueueFull,
    /// Kafka will not take this record (too large, invalid): park its aggregate. A refusal that came back for a
    /// record sent with others may be the whole request's, for another record's sake.
    Refused(String),
    /// Kafka cannot take the record *now*, for its topic's sake alone (missing, or not writable by the relay): its
    /// aggregate waits and is tried again later; every other aggregate goes on.
    Unroutable(String),
    /// The producer cannot go on (fenced, gap-protection tripped): build a new one and send the rows again.
    Fatal(String),
    /// Anything else: the row stays in the outbox and is sent again after a pause.
    Transient(String),
}

/// Sorts a send or delivery error into what the relay should do about it.
pub fn classify(error: &KafkaError) -> Failure {
    let code = match error {
        KafkaError::MessageProduction(code) => *code,
        other => return Failure::Transient(other.to_string()),
    };
    match code {
        RDKafkaErrorCode::QueueFull => Failure::QueueFull,
        RDKafkaErrorCode::MessageSizeTooLarge
        | RDKafkaErrorCode::InvalidMessageSize
        | RDKafkaErrorCode::InvalidMessage
        | RDKafkaErrorCode::MessageBatchTooLarge
        | RDKafkaErrorCode::InvalidRecord => Failure::Refused(error.to_string()),
        RDKafkaErrorCode::UnknownTopicOrPartition
        | RDKafkaErrorCode::UnknownTopic
        | RDKafkaErrorCode::UnknownPartition
        | RDKafkaErrorCode::InvalidTopic
        | RDKafkaErrorCode::TopicAuthorizationFailed => Failure::Unroutable(error.to_string()),
        RDKafkaErrorCode::Fatal
        | RDKafkaErrorCode::GaplessGuarantee
        | RDKafkaErrorCode::InvalidProducerEpoch
        | RDKafkaErrorCode::ProducerFenced
        | RDKafkaErrorCode::OutOfOrderSequenceNumber => Failure::Fatal(error.to_string()),
        _ => Failure::Transient(error.to_string()),
    }
}

/// The topics the cluster has, retrying with backoff for up to `startup_timeout` while no broker answers (a relay
/// may start before Kafka does).
pub async fn list_topics(kafka: &KafkaSettings, startup_timeout: Duration) -> anyhow::Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + startup_timeout;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let config = kafka.client_config(&[]);
        // Metadata calls block; keep them off the async workers.
        let listed = tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::Consumer as _;
            let consumer: rdkafka::consumer::BaseConsumer = config.create()?;
            let metadata = consumer.fetch_metadata(None, Duration::from_secs(5))?;
            Ok::<_, KafkaError>(metadata.topics().iter().map(|t| t.name().to_owned()).collect())
        })
        .await?;
        let pause = backoff.next_pause();
        match listed {
            Ok(topics) => return Ok(topics),
            Err(error) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(
                    brokers = %kafka.kafka_brokers,
                    retry_in_ms = pause.as_millis() as u64,
                    error.message = %error,
                    "Kafka is not reachable yet; retrying."
                );
                tokio::time::sleep(pause).await;
            }
            Err(error) => {
                return Err(error).context(format!(
                    "Failed to reach Kafka at {}; is KAFKA_BROKERS right and the broker up?",
                    kafka.kafka_brokers
                ));
            }
        }
    }
}

/// Whether a Kafka broker answers a metadata request now.
pub async fn reachable(kafka: &KafkaSettings) -> bool {
    list_topics(kafka, Duration::ZERO).await.is_ok()
}

/// Makes sure every topic in `specs` exists: creates the missing ones when `create` (entity topics compacted),
/// otherwise fails naming them and saying how to create them.
pub async fn ensure_topics(
    kafka: &KafkaSettings,
    specs: &[TopicSpec],
    partitions: i32,
    replication_factor: i32,
    create: bool,
    startup_timeout: Duration,
) -> anyhow::Result<()> {
    let config: ClientConfig = kafka.client_config(&[]);
    let admin: AdminClient<DefaultClientContext> =
        config.create().context("Failed to create a Kafka admin client")?;
    let existing = list_topics(kafka, startup_timeout).await?;
    // The topics as named on the cluster (with the environment's prefix), with their specs.
    let missing: Vec<(String, &TopicSpec)> = specs
        .iter()
        .map(|spec| (kafka.topic(spec.name), spec))
        .filter(|(name, _)| !existing.contains(name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let how_to_create = |name: &str, spec: &TopicSpec| {
        format!(
            "kafka-topics.sh --bootstrap-server {} --create --topic {name} --partitions {partitions} \
             --replication-factor {replication_factor} --config cleanup.policy={}",
            kafka.kafka_brokers,
            spec.cleanup_policy()
        )
    };
    if !create {
        let commands: Vec<String> = missing.iter().map(|(name, spec)| how_to_create(name, spec)).collect();
        anyhow::bail!(
            "Missing Kafka topics and RELAY_CREATE_TOPICS is off; create them with:\n  {}",
            commands.join("\n  ")
        );
    }

    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|(name, spec)| {
            NewTopic::new(name, partitions, TopicReplication::Fixed(replication_factor))
                .set("cleanup.policy", spec.cleanup_policy())
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        admin.create_topics(&new_topics, &options).await.context("Failed to create Kafka topics")?;
    for (result, (name, spec)) in results.into_iter().zip(&missing) {
        match result {
            Ok(topic) => {
                tracing::info!(topic, cleanup_policy = spec.cleanup_policy(), partitions, "Created a topic.")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!(
                "Failed to create topic {topic} ({code}); create it yourself with:\n  {}",
                how_to_create(name, spec)
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rdkafka::message::Headers;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn refusals_fatal_errors_and_transient_errors_are_told_apart() {
        let production = |code| KafkaError::MessageProduction(code);

        assert_eq!(classify(&production(RDKafkaErrorCode::QueueFull)), Failure::QueueFull);
        assert!(matches!(classify(&production(RDKafkaErrorCode::MessageSizeTooLarge)), Failure::Refused(_)));
        assert!(matches!(classify(&production(RDKafkaErrorCode::GaplessGuarantee)), Failure::Fatal(_)));
        assert!(matches!(classify(&production(RDKafkaErrorCode::AllBrokersDown)), Failure::Transient(_)));
        assert!(matches!(classify(&production(RDKafkaErrorCode::UnknownTopic)), Failure::Unroutable(_)));
        assert!(matches!(
            classify(&production(RDKafkaErrorCode::TopicAuthorizationFailed)),
            Failure::Unroutable(_)
        ));
    }

    #[test]
    fn overrides_that_would_void_the_guarantees_are_refused_and_others_allowed() {
        let with = |option: &str| KafkaSettings {
            kafka_options: vec![option.parse().unwrap()],
            ..KafkaSettings::new("kafka:9092")
        };

        for refused in
            ["enable.idempotence=false", "enable.gapless.guarantee=false", "acks=1", "max.in.flight=10"]
        {
            let error = check_overrides(&with(refused)).unwrap_err().to_string();
            assert!(error.contains(refused), "{error}");
        }
        for allowed in
            ["acks=all", "acks=-1", "max.in.flight=5", "compression.type=lz4", "enable.idempotence=true"]
        {
            assert!(check_overrides(&with(allowed)).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn a_record_is_keyed_by_aggregate_and_carries_the_cloudevents_headers() {
        let row = OutboxRow {
            position: 7,
            shard: 3,
            event_id: Uuid::now_v7(),
            aggregate_type: "order".into(),
            aggregate_id: Uuid::now_v7(),
            aggregate_version: 2,
            event_type: "shop.order.confirmed.v1".into(),
            topic: "shop.orders.v1".into(),
            payload: r#"{"order":{}}"#.into(),
            occurred_at: Utc::now(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: None,
        };
        let key = row.aggregate_id.to_string();

        let record = record(&row, &row.topic, &key, None);

        assert_eq!(record.topic, "shop.orders.v1");
        assert_eq!(record.key, Some(key.as_str()));
        assert_eq!(record.payload, Some(r#"{"order":{}}"#));
        let headers = record.headers.as_ref().unwrap();
        let names: Vec<_> = headers.iter().map(|h| h.key).collect();
        assert_eq!(
            names,
            [
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_subject",
                "ce_time",
                "content-type",
                "ce_aggregatetype",
                "ce_aggregateversion",
                "traceparent"
            ]
        );
        let version = headers.iter().find(|h| h.key == "ce_aggregateversion").unwrap().value.unwrap();
        assert_eq!(version, b"2");
    }
}
