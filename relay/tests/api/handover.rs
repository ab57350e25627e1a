//! Shards changing hands while Kafka is slow for one instance: nothing that instance still held may land after
//! what the new owner published.

use std::time::Duration;

use shop_testkit::proxy::KafkaProxy;
use uuid::Uuid;

use crate::helpers::{
    Broker, append, event, eventually, outbox_database, read_topic, relay_settings, shards_held, spawn_relay,
    through,
};

/// An aggregate id in one of the shards an instance gives back when a second one joins (the upper half).
fn aggregate_in_upper_shards() -> Uuid {
    loop {
        let id = Uuid::now_v7();
        if shop_relay::store::shard_of(id) >= 32 {
            return id;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "cuts one relay off through the proxy, which fronts a single broker")]
async fn a_shard_handed_over_mid_batch_never_gets_an_older_version_after_a_newer_one() {
    // Arrange: relay A, reaching Kafka through a proxy, holds every shard.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let proxy = KafkaProxy::start(&broker.bootstrap).await;
    let settings = relay_settings(&database, &broker);
    let mut settings_a = through(settings.clone(), &proxy);
    // A reconnects quickly once its network is back, so anything it still held would land within the test.
    settings_a.kafka.kafka_options.push("reconnect.backoff.max.ms=200".parse().unwrap());
    let a = spawn_relay(&settings_a).await;
    eventually(Duration::from_secs(10), "A to hold every shard", || async {
        shards_held(&database.pool, a.instance_id).await == 64
    })
    .await;

    // Act: A's traffic is cut while it sends X.v1; X.v2 is written; B joins and is given X's shard.
    let x = aggregate_in_upper_shards();
    proxy.cut();
    append(&database.pool, &[event(&topic, x, 1, 16)]).await;
    eventually(Duration::from_secs(10), "A to have X.v1 in flight", || async {
        a.metric("shop_relay_in_flight_events", &database.name).await == 1.0
    })
    .await;
    append(&database.pool, &[event(&topic, x, 2, 16)]).await;
    let b = spawn_relay(&settings).await;
    let delivered_by_b = read_topic(&broker, &topic, 2, Duration::from_secs(60)).await;
    // A's network comes back: anything A still held would land now. A is back once it holds shards again.
    proxy.heal();
    eventually(Duration::from_secs(30), "A to take shards again", || async {
        shards_held(&database.pool, a.instance_id).await > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Assert
    let versions: Vec<i64> = read_topic(&broker, &topic, 3, Duration::from_secs(2))
        .await
        .into_iter()
        .filter(|record| record.key == x)
        .map(|record| record.version)
        .collect();
    println!("versions of X on the partition: {versions:?}");
    assert_eq!(delivered_by_b.len(), 2, "B delivered X.v1 and X.v2");
    assert_eq!(versions.last(), Some(&2), "the last record of X is its latest version: {versions:?}");
    assert!(
        versions.windows(2).all(|pair| pair[0] <= pair[1]),
        "no version after a higher one: {versions:?}"
    );
    b.server.stop().await.unwrap();
    a.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "cuts the relay off through the proxy, which fronts a single broker")]
async fn a_relay_that_cannot_publish_gives_its_shards_up_says_why_and_comes_back() {
    // Arrange
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let proxy = KafkaProxy::start(&broker.bootstrap).await;
    let relay = spawn_relay(&through(relay_settings(&database, &broker), &proxy)).await;
    eventually(Duration::from_secs(10), "the relay to be ready", || async { relay.ready().await.0 == 200 })
        .await;

    // Act: Kafka is out of reach for longer than the lease time while an event waits.
    proxy.cut();
    let id = Uuid::now_v7();
    append(&database.pool, &[event(&topic, id, 1, 16)]).await;
    eventually(Duration::from_secs(20), "the relay to give its shards up", || async {
        shards_held(&database.pool, relay.instance_id).await == 0
    })
    .await;
    let (status, body) = relay.ready().await;
    proxy.heal();

    // Assert
    assert_eq!(status, 503, "{body}");
    assert!(body["outboxes"][&database.name].as_str().unwrap().contains("cannot publish"), "{body}");
    let received = read_topic(&broker, &topic, 1, Duration::from_secs(60)).await;
    assert_eq!(received.len(), 1, "the event is delivered once Kafka is back");
    eventually(Duration::from_secs(20), "the relay to be ready again", || async {
        relay.ready().await.0 == 200
    })
    .await;
    assert!(relay.metric("shop_relay_producers_replaced_total", &database.name).await >= 1.0);
    relay.server.stop().await.unwrap();
}
