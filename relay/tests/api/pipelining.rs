//! The next batch is read while the last one is in Kafka's hands: neither a late commit nor a failed row may let a
//! later version of an aggregate overtake an earlier one.

use std::time::Duration;

use shop_outbox as outbox;
use shop_platform::kafka::KafkaOption;
use shop_relay::{
    leases::Leases,
    store::{self, BatchRecord, Published},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    Broker, append, concurrent_workload, event, eventually, outbox_database, read_topic, relay_settings,
    spawn_relay, unpublished, verify,
};

#[tokio::test]
async fn a_row_committed_late_below_the_batch_in_flight_stops_the_read_ahead() {
    // Arrange: X.v1 takes a position, and its transaction stays open while later rows commit and are read.
    let database = outbox_database().await;
    let shards: Vec<i16> = (0..shop_outbox::SHARD_COUNT).collect();
    let x = Uuid::now_v7();
    let mut late = database.pool.begin().await.unwrap();
    outbox::append(&mut late, &event("t", x, 1, 0)).await.unwrap();
    let others: Vec<_> = (0..4).map(|_| event("t", Uuid::now_v7(), 1, 0)).collect();
    append(&database.pool, &others).await;
    let in_flight = store::unpublished(&database.pool, &shards, 4).await.unwrap();
    assert_eq!(in_flight.len(), 4, "X.v1 is not visible yet");
    let after = in_flight.last().unwrap().position;
    let more: Vec<_> = (0..3).map(|_| event("t", Uuid::now_v7(), 1, 0)).collect();
    append(&database.pool, &more).await;
    let ahead = read_ahead(&database.pool, &shards, after, 4, 10).await;
    assert_eq!(ahead.len(), 3, "with no late row, the read ahead finds the rows after the batch in flight");

    // Act: X.v1 commits below the batch in flight, then X.v2 is written after it.
    late.commit().await.unwrap();
    append(&database.pool, &[event("t", x, 2, 0)]).await;
    let ahead = read_ahead(&database.pool, &shards, after, 4, 10).await;

    // Assert: nothing is read ahead (X.v2 would overtake X.v1); a read from the oldest row finds X.v1 first.
    assert!(ahead.is_empty(), "read ahead past a late row: {ahead:?}");
    let from_the_oldest = store::unpublished(&database.pool, &shards, 10).await.unwrap();
    let versions_of_x: Vec<i64> =
        from_the_oldest.iter().filter(|row| row.aggregate_id == x).map(|row| row.aggregate_version).collect();
    assert_eq!(versions_of_x, [1, 2]);
}

#[tokio::test]
async fn a_read_ahead_in_a_snapshot_taken_before_the_last_batch_was_recorded_still_counts_that_batch() {
    // Arrange: batch A (rows 1-4) acknowledged and unrecorded, batch B (5-8) in flight, four rows after them.
    let database = outbox_database().await;
    let instance = Uuid::now_v7();
    let leases = Leases::new(database.pool.clone(), "outbox".into(), instance, Duration::from_secs(60));
    let assignment = leases.refresh().await.unwrap();
    let (held, shards) = (assignment.leases().to_vec(), assignment.shards());
    let events: Vec<_> = (0..12).map(|_| event("t", Uuid::now_v7(), 1, 0)).collect();
    append(&database.pool, &events).await;
    let a = store::unpublished(&database.pool, &shards, 4).await.unwrap();
    let b = read_ahead(&database.pool, &shards, a.last().unwrap().position, 4, 4).await;
    assert_eq!(b.len(), 4);
    let after = b.last().unwrap().position;
    let record_a = BatchRecord { delivered: a.iter().map(Published::of).collect(), ..Default::default() };

    // Act: the snapshot is taken, then A is recorded (its rows deleted) before the read runs in it.
    let snapshot = store::Snapshot::take(&database.pool).await.unwrap();
    store::record_batch(&database.pool, instance, &held, &record_a, false).await.unwrap();
    let ahead = snapshot.unpublished_after(&shards, after, 8, 10).await.unwrap();

    // Assert: the read still counts A's rows, so it finds the four rows after B; a snapshot taken now counts B's
    // alone.
    assert_eq!(ahead.len(), 4, "the read ahead lost A's rows from its count");
    assert!(read_ahead(&database.pool, &shards, after, 8, 10).await.is_empty());
    assert_eq!(read_ahead(&database.pool, &shards, after, 4, 10).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_refused_in_one_batch_keeps_its_aggregates_later_rows_read_ahead_from_going_out() {
    // Arrange: batches of 4; X.v1 (200 kB, refused) in the first, X.v2 and X.v3 in the batches read ahead.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 3).await;
    let (x, healthy) = (Uuid::now_v7(), [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()]);
    for version in 1..=3 {
        let mut events = vec![event(&topic, x, version, if version == 1 { 200_000 } else { 10 })];
        events.extend(healthy.map(|id| event(&topic, id, version, 10)));
        append(&database.pool, &events).await;
    }
    let mut settings = relay_settings(&database, &broker);
    settings.relay.batch_size = 4;
    settings
        .kafka
        .kafka_options
        .push(KafkaOption { key: "message.max.bytes".into(), value: "100000".into() });

    // Act
    let relay = spawn_relay(&settings).await;
    let received = read_topic(&broker, &topic, 9, Duration::from_secs(30)).await;

    // Assert: every healthy version arrived in order, and nothing of X (its v1 is parked, its later rows wait).
    verify(&received, &healthy.iter().map(|id| (*id, 3)).collect());
    eventually(Duration::from_secs(10), "X to be parked, the rest recorded", || async {
        unpublished(&database.pool).await == 3
    })
    .await;
    let parked = store::parked(&database.pool).await.unwrap();
    assert_eq!(parked.iter().map(|parked| parked.aggregate_id).collect::<Vec<_>>(), [x]);
    relay.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_read_ahead_under_late_commits_lose_nothing_and_reorder_nothing() {
    // Arrange: batches of 20, so nearly every batch is full and the next one is read ahead, while one writer
    // transaction in eight commits late.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 6).await;
    let mut settings = relay_settings(&database, &broker);
    settings.relay.batch_size = 20;
    let relay = spawn_relay(&settings).await;

    // Act
    let written = concurrent_workload(&database.pool, &topic, 8, 100, 30).await;
    let received = read_topic(&broker, &topic, 3_000, Duration::from_secs(120)).await;

    // Assert
    let verdict = verify(&received, &written);
    println!(
        "Batches of 20 under late commits: {} records, {} duplicates",
        verdict.records, verdict.duplicates
    );
    eventually(Duration::from_secs(10), "the outbox to drain", || async {
        unpublished(&database.pool).await == 0
    })
    .await;
    relay.server.stop().await.unwrap();
}

/// The read ahead on a snapshot taken now.
async fn read_ahead(
    pool: &PgPool,
    shards: &[i16],
    after: i64,
    in_flight: usize,
    limit: i64,
) -> Vec<store::OutboxRow> {
    store::Snapshot::take(pool)
        .await
        .unwrap()
        .unpublished_after(shards, after, in_flight, limit)
        .await
        .unwrap()
}
