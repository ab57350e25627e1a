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
use shop_events::topics::TopicSpec;
use shop_platform::kafka::{KafkaSettings, TracingContext};

use crate::store::OutboxRow;

/// The producer every outbox relay owns.
pub type Producer = FutureProducer<TracingContext>;

/// What the relay needs from every producer; operators' `KAFKA_OPTIONS` may still override any of it.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "shop-relay"),
    // Exactly one copy per send, in order per partition, acknowledged by every in-sync replica.
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // Should a record fail in a way that could leave a gap behind it, stop the producer (the relay builds a new
    // one) rather than deliver the records queued after it: per-aggregate order is worth more than throughput.
    ("enable.gapless.guarantee", "true"),
    // Never give up on a record because a broker is away: it waits in the producer queue (and in the outbox) and
    // goes out when the broker is back. Only Kafka's definitive refusals fail a delivery.
    ("message.timeout.ms", "0"),
    // The partitioner of the Java client, so Java producers and consumers agree on where a key lives.
    ("partitioner", "murmur2_random"),
    // A few milliseconds of batching pays for itself as soon as there is load.
    ("linger.ms", "5"),
];

/// A producer with the relay's guarantees.
pub fn create_producer(kafka: &KafkaSettings) -> Result<Producer, KafkaError> {
    kafka.client_config(PRODUCER_DEFAULTS).create_with_context(TracingContext)
}

/// The record for `row` on `topic` (its topic as named on the cluster): key = aggregate id, value = payload JSON,
/// CloudEvents binary-mode headers.
pub fn record<'a>(row: &'a OutboxRow, topic: &'a str, key: &'a str) -> FutureRecord<'a, str, str> {
    let headers = row.metadata().headers().into_iter().fold(OwnedHeaders::new(), |headers, (name, value)| {
        headers.insert(Header { key: name, value: Some(&value) })
    });
    FutureRecord::to(topic).key(key).payload(row.payload.as_str()).headers(headers)
}

/// What a failed send means for the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The producer's queue is full: wait a moment and send again.
    QueueFull,
    /// Kafka will never take this record (too large, invalid): park its aggregate.
    Refused(String),
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
async fn list_topics(kafka: &KafkaSettings, startup_timeout: Duration) -> anyhow::Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + startup_timeout;
    let mut pause = Duration::from_millis(200);
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
                pause = (pause * 2).min(Duration::from_secs(5));
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
        assert!(matches!(
            classify(&production(RDKafkaErrorCode::TopicAuthorizationFailed)),
            Failure::Transient(_)
        ));
    }

    #[test]
    fn a_record_is_keyed_by_aggregate_and_carries_the_cloudevents_headers() {
        let row = OutboxRow {
            position: 7,
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

        let record = record(&row, &row.topic, &key);

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
