use std::time::Duration;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use shop_platform::kafka::KafkaOption;
use uuid::Uuid;

use crate::helpers::{
    Broker, append, event, eventually, outbox_database, read_topic, relay_settings, spawn_relay, unpublished,
    verify,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    external_kafka,
    ignore = "takes the broker down: needs the embedded mock cluster, not KAFKA_BROKERS"
)]
async fn a_broker_outage_delays_delivery_but_loses_and_reorders_nothing() {
    let broker = Broker::start().await;
    let mock = broker.mock().expect("the embedded mock cluster (built without KAFKA_BROKERS)");
    // Arrange
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let write_versions = |versions: std::ops::RangeInclusive<i64>| {
        let (pool, topic, ids) = (database.pool.clone(), topic.clone(), ids.clone());
        async move {
            for version in versions {
                let events: Vec<_> = ids.iter().map(|id| event(&topic, *id, version, 64)).collect();
                append(&pool, &events).await;
            }
        }
    };
    write_versions(1..=50).await;
    read_topic(&broker, &topic, 1_000, Duration::from_secs(30)).await;

    // Act: the broker goes away while more events are written, then comes back.
    mock.broker_down(-1).unwrap();
    write_versions(51..=100).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = unpublished(&database.pool).await;
    mock.broker_up(-1).unwrap();
    let received = read_topic(&broker, &topic, 2_000, Duration::from_secs(120)).await;

    // Assert
    let verdict = verify(&received, &ids.iter().map(|id| (*id, 100)).collect());
    println!(
        "{waiting} events waited out a 3 s broker outage; then all 2 000 arrived ({} duplicates)",
        verdict.duplicates
    );
    assert_eq!(waiting, 1_000, "nothing can be published while the broker is down");
    eventually(Duration::from_secs(10), "the outbox to drain", || async {
        unpublished(&database.pool).await == 0
    })
    .await;
    relay.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_parks_its_aggregate_and_every_other_aggregate_flows_on() {
    // Arrange: records above 100 kB are refused.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let mut settings = relay_settings(&database, &broker);
    settings
        .kafka
        .kafka_options
        .push(KafkaOption { key: "message.max.bytes".into(), value: "100000".into() });
    let relay = spawn_relay(&settings).await;
    let (poisoned, healthy) = (Uuid::now_v7(), [Uuid::now_v7(), Uuid::now_v7()]);

    // Act: the poisoned aggregate's version 2 is 200 kB.
    append(&database.pool, &[event(&topic, poisoned, 1, 10)]).await;
    for version in 1..=3 {
        append(&database.pool, &healthy.map(|id| event(&topic, id, version, 10))).await;
    }
    let poison = event(&topic, poisoned, 2, 200_000);
    append(&database.pool, &[poison.clone(), event(&topic, poisoned, 3, 10)]).await;
    let received = read_topic(&broker, &topic, 7, Duration::from_secs(30)).await;

    // Assert: the others arrived whole; the poisoned aggregate stopped before its poison.
    let written = [(poisoned, 1), (healthy[0], 3), (healthy[1], 3)].into_iter().collect();
    verify(&received, &written);
    eventually(Duration::from_secs(10), "the aggregate to be parked", || async {
        !shop_relay::store::parked(&database.pool).await.unwrap().is_empty()
    })
    .await;
    let parked = shop_relay::store::parked(&database.pool).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].aggregate_id, parked[0].event_id), (poisoned, poison.event_id));
    assert!(parked[0].reason.contains("too large"), "{}", parked[0].reason);
    assert_eq!(unpublished(&database.pool).await, 2, "the poison and the version after it wait");
    assert_eq!(relay.metric("shop_relay_parked_events_total", &database.name).await, 1.0);
    relay.server.stop().await.unwrap();
}

#[tokio::test]
async fn with_topic_creation_off_a_missing_topic_stops_the_relay_saying_how_to_create_it() {
    let broker = Broker::start().await;
    let name: &'static str = Box::leak(format!("test-missing-{}", Uuid::now_v7().simple()).into_boxed_str());
    let spec = shop_events::topics::TopicSpec { name, compacted: true, republished_by: None };

    let error = shop_relay::kafka::ensure_topics(
        &shop_platform::kafka::KafkaSettings::new(broker.bootstrap.clone()),
        &[spec],
        3,
        1,
        false,
        Duration::from_secs(10),
    )
    .await
    .unwrap_err();

    let message = error.to_string();
    assert!(message.contains(name), "{message}");
    assert!(message.contains("kafka-topics.sh"), "{message}");
    assert!(message.contains("cleanup.policy=compact"), "{message}");
}

#[tokio::test]
async fn an_unreachable_broker_stops_start_up_with_a_clear_error_after_the_startup_timeout() {
    // Nothing listens on port 1.
    let kafka = shop_platform::kafka::KafkaSettings::new("127.0.0.1:1");

    let error = shop_relay::kafka::ensure_topics(
        &kafka,
        &shop_events::topics::ALL,
        3,
        1,
        true,
        Duration::from_secs(1),
    )
    .await
    .unwrap_err();

    assert!(format!("{error:#}").contains("Failed to reach Kafka at 127.0.0.1:1"), "{error:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "injects errors into the embedded mock cluster")]
async fn a_producer_broken_before_its_first_send_is_replaced_and_the_next_batches_are_delivered() {
    // Arrange: the producer's id request fails in a way librdkafka makes fatal; every send then fails on enqueue.
    let broker = Broker::start().await;
    let mock = broker.mock().expect("the embedded mock cluster");
    mock.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED],
    );
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;

    // Act / Assert
    delivered_by_a_new_producer(&broker, &database, &relay, &topic, Uuid::now_v7(), 1..=3).await;
    relay.server.stop().await.unwrap();
}

/// Appends `versions` of aggregate `id` and checks that they all arrive, in order, and that the relay replaced its
/// producer on the way.
async fn delivered_by_a_new_producer(
    broker: &Broker,
    database: &shop_testkit::TestDatabase,
    relay: &crate::helpers::RunningRelay,
    topic: &str,
    id: Uuid,
    versions: std::ops::RangeInclusive<i64>,
) {
    let last = *versions.end();
    for version in versions {
        append(&database.pool, &[event(topic, id, version, 16)]).await;
    }
    let received = read_topic(broker, topic, last as usize, Duration::from_secs(30)).await;
    verify(&received, &[(id, last)].into_iter().collect());
    assert!(relay.metric("shop_relay_producers_replaced_total", &database.name).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "injects errors into the embedded mock cluster")]
async fn a_producer_made_fatal_by_a_delivery_is_replaced_and_the_next_batches_are_delivered() {
    let broker = Broker::start().await;
    let mock = broker.mock().expect("the embedded mock cluster");
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 1).await;
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;
    let id = Uuid::now_v7();
    append(&database.pool, &[event(&topic, id, 1, 16)]).await;
    read_topic(&broker, &topic, 1, Duration::from_secs(30)).await;

    // The next produce request is answered with a sequence error: fatal for an idempotent producer.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    delivered_by_a_new_producer(&broker, &database, &relay, &topic, id, 2..=4).await;
    relay.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "injects errors into the embedded mock cluster")]
async fn a_refusal_of_a_whole_request_is_retried_record_by_record_and_parks_nothing_that_kafka_takes() {
    // Arrange: three aggregates' events go out in one request, which Kafka refuses as too large.
    let broker = Broker::start().await;
    let mock = broker.mock().expect("the embedded mock cluster");
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 1).await;
    mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE]);
    let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];

    // Act
    append(&database.pool, &ids.map(|id| event(&topic, id, 1, 16))).await;
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;

    // Assert: sent again one by one, each is taken; nothing is parked.
    let received = read_topic(&broker, &topic, 3, Duration::from_secs(30)).await;
    verify(&received, &ids.iter().map(|id| (*id, 1)).collect());
    assert!(shop_relay::store::parked(&database.pool).await.unwrap().is_empty());
    relay.server.stop().await.unwrap();
}

/// A relay, a topic, and the name of a topic that does not exist.
struct WithAMissingTopic {
    broker: Broker,
    database: shop_testkit::TestDatabase,
    topic: String,
    missing: String,
    relay: crate::helpers::RunningRelay,
}

async fn with_a_missing_topic() -> WithAMissingTopic {
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let missing = format!("test-missing-{}", Uuid::now_v7().simple());
    let mut settings = relay_settings(&database, &broker);
    // librdkafka gives up on a missing topic after half a second rather than 30.
    settings.kafka.kafka_options.push("topic.metadata.propagation.max.ms=500".parse().unwrap());
    let relay = spawn_relay(&settings).await;
    WithAMissingTopic { broker, database, topic, missing, relay }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_for_a_missing_topic_holds_back_only_its_own_aggregate_until_the_topic_exists() {
    // Arrange
    let WithAMissingTopic { broker, database, topic, missing, relay } = with_a_missing_topic().await;

    // Act: a row for the missing topic, then rows for a real one behind it.
    let stranded = Uuid::now_v7();
    append(&database.pool, &[event(&missing, stranded, 1, 16)]).await;
    eventually(Duration::from_secs(30), "the stranded aggregate to be deferred", || async {
        !shop_relay::store::deferred(&database.pool).await.unwrap().is_empty()
    })
    .await;
    let others = [Uuid::now_v7(), Uuid::now_v7()];
    append(&database.pool, &others.map(|id| event(&topic, id, 1, 16))).await;
    let received = read_topic(&broker, &topic, 2, Duration::from_secs(30)).await;

    // Assert: the others flowed on; the stranded one waits, then goes once its topic exists.
    verify(&received, &others.iter().map(|id| (*id, 1)).collect());
    let deferred = shop_relay::store::deferred(&database.pool).await.unwrap();
    assert_eq!(deferred.len(), 1);
    assert_eq!(deferred[0].aggregate_id, stranded);
    assert!(shop_relay::store::parked(&database.pool).await.unwrap().is_empty(), "deferred, not parked");
    broker.create_named_topic(&missing, 1).await;
    let late = read_topic(&broker, &missing, 1, Duration::from_secs(60)).await;
    assert_eq!(late.len(), 1);
    eventually(Duration::from_secs(10), "the deferral to be lifted", || async {
        shop_relay::store::deferred(&database.pool).await.unwrap().is_empty()
    })
    .await;
    relay.server.stop().await.unwrap();
}

#[tokio::test]
async fn overrides_that_would_void_the_guarantees_stop_the_relay_at_start() {
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let mut settings = relay_settings(&database, &broker);
    settings.kafka.kafka_options.push("enable.idempotence=false".parse().unwrap());

    let error = shop_relay::startup::Application::build(&settings).await.unwrap_err();

    assert!(error.to_string().contains("enable.idempotence=false"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_heartbeat_vouches_for_what_is_published_and_names_the_topics_still_waiting() {
    // Arrange
    let WithAMissingTopic { broker, database, topic, missing, relay } = with_a_missing_topic().await;
    let heartbeat_topic = broker.topic(shop_events::topics::HEARTBEATS);
    let as_of = |record: &shop_testkit::kafka::ReadRecord| -> chrono::DateTime<chrono::Utc> {
        record.json()["as_of"].as_str().unwrap().parse().unwrap()
    };

    // Act: a delivered event, then one stuck on a missing topic.
    append(&database.pool, &[event(&topic, Uuid::now_v7(), 1, 16)]).await;
    read_topic(&broker, &topic, 1, Duration::from_secs(30)).await;
    let all_delivered = chrono::Utc::now();
    let caught_up = broker
        .read_until(&heartbeat_topic, Duration::from_secs(30), move |records| {
            records.iter().any(|record| as_of(record) > all_delivered)
        })
        .await;
    let stuck = event(&missing, Uuid::now_v7(), 1, 16);
    append(&database.pool, std::slice::from_ref(&stuck)).await;
    let waiting = broker
        .read_until(&heartbeat_topic, Duration::from_secs(30), {
            let missing = missing.clone();
            move |records| {
                records.iter().any(|record| record.json()["pending_topics"] == serde_json::json!([missing]))
            }
        })
        .await;

    // Assert: with nothing waiting, the outbox vouches through the moment it looked; then it is held at the event
    // that waits, and names its topic.
    let caught_up = caught_up.last().unwrap().json();
    assert_eq!(caught_up["published_through"], caught_up["as_of"]);
    assert_eq!(caught_up["pending_topics"], serde_json::json!([]));
    let waiting = waiting.last().unwrap();
    assert_eq!(waiting.key, database.name);
    assert_eq!(waiting.headers["ce_type"], "shop.outbox.heartbeat.v1");
    let through: chrono::DateTime<chrono::Utc> =
        waiting.json()["published_through"].as_str().unwrap().parse().unwrap();
    assert!(through <= stuck.occurred_at, "held at the waiting event: {through} vs {}", stuck.occurred_at);
    relay.server.stop().await.unwrap();
}
