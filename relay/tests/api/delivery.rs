use std::time::Duration;

use shop_events::{Envelope, TraceContext};
use shop_outbox as outbox;
use tokio::time::Instant;
use uuid::Uuid;

use crate::helpers::{
    Broker, append, concurrent_workload, event, eventually, outbox_database, read_topic, relay_settings,
    spawn_relay, unpublished, verify,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_with_late_commits_lose_nothing_and_reorder_nothing() {
    // Arrange
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 6).await;
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;

    // Act: 8 writers, 10 000 events over 200 aggregates, while the relay runs.
    let started = Instant::now();
    let written = concurrent_workload(&database.pool, &topic, 8, 200, 50).await;
    let received = read_topic(&broker, &topic, 10_000, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();

    // Assert
    let verdict = verify(&received, &written);
    println!(
        "8 writers, 10 000 events over 200 aggregates: all arrived in {elapsed:?} ({} records, {} duplicates)",
        verdict.records, verdict.duplicates
    );
    // The records reach Kafka before the relay records the batch as published: wait for the bookkeeping.
    eventually(Duration::from_secs(10), "the outbox to drain", || async {
        unpublished(&database.pool).await == 0
    })
    .await;
    relay.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_the_payload_key_and_cloudevents_headers() {
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;
    let trace = TraceContext::new_root();
    let mut widget = event(&topic, Uuid::now_v7(), 1, 0);
    widget.trace = Some(trace.clone());

    append(&database.pool, std::slice::from_ref(&widget)).await;
    let received = read_topic(&broker, &topic, 1, Duration::from_secs(30)).await;

    let record = &received[0];
    assert_eq!(record.key, widget.aggregate_id);
    assert_eq!(record.payload, widget.payload);
    let header = |name: &str| record.headers.get(name).map(String::as_str);
    assert_eq!(header("ce_specversion"), Some("1.0"));
    assert_eq!(header("ce_id"), Some(widget.event_id.to_string().as_str()));
    assert_eq!(header("ce_source"), Some("/shop/widget"));
    assert_eq!(header("ce_type"), Some("shop.widget.changed.v1"));
    assert_eq!(header("ce_subject"), Some(widget.aggregate_id.to_string().as_str()));
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("ce_aggregateversion"), Some("1"));
    assert_eq!(header("traceparent"), Some(trace.traceparent()));
    assert!(header("ce_time").is_some());
    relay.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_relay_long_before_the_fallback_poll() {
    // Arrange: a relay that polls only every 10 s, idle after its first look.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 1).await;
    let mut settings = relay_settings(&database, &broker);
    settings.relay.poll_interval_ms = 10_000;
    let relay = spawn_relay(&settings).await;
    let reader = read_topic(&broker, &topic, 1, Duration::from_secs(20));
    let (received, latency) = tokio::join!(reader, async {
        // Let the relay go idle and the reader start polling, then commit.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let committed = Instant::now();
        append(&database.pool, &[event(&topic, Uuid::now_v7(), 1, 0)]).await;
        committed
    });
    let latency = latency.elapsed();

    // Assert
    let acknowledged = relay.metric("shop_relay_publish_latency_seconds_sum", &database.name).await;
    println!(
        "With a 10 s fallback poll: Kafka acknowledged the event {:.1} ms after it occurred (relay metric); a \
         polling consumer received it {latency:?} after the commit",
        acknowledged * 1000.0
    );
    assert_eq!(received.len(), 1);
    assert!(
        latency < Duration::from_secs(5),
        "the NOTIFY path should beat the 10 s poll by far; took {latency:?}"
    );
    relay.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_trickling_in_are_gathered_for_the_batch_window() {
    // Arrange: a window of 5 s, far longer than the commits take even on a loaded machine, and a relay idle after
    // its first look.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 1).await;
    let mut settings = relay_settings(&database, &broker);
    settings.relay.batch_window_ms = 5_000;
    let relay = spawn_relay(&settings).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Act: ten commits, 20 ms apart; without the window each would be read and sent on its own.
    for _ in 0..10 {
        append(&database.pool, &[event(&topic, Uuid::now_v7(), 1, 0)]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = read_topic(&broker, &topic, 10, Duration::from_secs(30)).await;

    // Assert: the first commit after the quiet spell went out without waiting, the nine behind it together once
    // its window was over.
    assert_eq!(received.len(), 10);
    let batches = relay.metric("shop_relay_batches_total", &database.name).await;
    assert!(batches <= 2.0, "ten commits within one window took {batches} batches");
    relay.server.stop().await.unwrap();
}

/// A republished row repeats a version the outbox may still hold; the relay must send it in append order like any
/// other row (after the version it repeats, before the next), and nothing about it may park its aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republished_row_repeating_a_version_goes_out_in_append_order_and_parks_nothing() {
    // Arrange: 20 aggregates, each with v1, v1 again (republished), v2, v2 again, all waiting in the outbox.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let republished = |id: Uuid, version: i64| Envelope {
        event_type: "shop.widget.republished.v1".into(),
        ..event(&topic, id, version, 0)
    };
    let mut transaction = database.pool.begin().await.unwrap();
    for id in &ids {
        for version in 1..=2 {
            outbox::append(&mut transaction, &event(&topic, *id, version, 0)).await.unwrap();
            outbox::append_republished(&mut transaction, &[republished(*id, version)]).await.unwrap();
        }
    }
    transaction.commit().await.unwrap();

    // Act
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;
    let records = broker.read_until(&topic, Duration::from_secs(60), |records| records.len() >= 80).await;

    // Assert: per aggregate, exactly the order they were appended in.
    let expected = [
        (1, "shop.widget.changed.v1"),
        (1, "shop.widget.republished.v1"),
        (2, "shop.widget.changed.v1"),
        (2, "shop.widget.republished.v1"),
    ];
    for id in &ids {
        let sent: Vec<(i64, &str)> = records
            .iter()
            .filter(|record| record.key == id.to_string())
            .map(|record| (record.version(), record.headers["ce_type"].as_str()))
            .collect();
        assert_eq!(sent, expected, "aggregate {id}");
    }
    // The records reach Kafka before the relay records the batch as published: wait for the bookkeeping.
    eventually(Duration::from_secs(10), "the outbox to drain", || async {
        unpublished(&database.pool).await == 0
    })
    .await;
    assert_eq!(shop_testkit::count_rows(&database.pool, "outbox_parked").await, 0);
    relay.server.stop().await.unwrap();
}
