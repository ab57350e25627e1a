use std::{process::Stdio, time::Duration};

use shop_relay::{
    leases::Leases,
    store::{self, BatchRecord, Published},
};
use shop_testkit::TestDatabase;

use crate::helpers::{
    Broker, append, concurrent_workload, event, eventually, outbox_database, read_topic, relay_settings,
    spawn_relay, unpublished, verify,
};

async fn owners(database: &TestDatabase) -> Vec<(uuid::Uuid, i64)> {
    sqlx::query_as(
        "SELECT owner, count(*) FROM outbox_relay_shards WHERE owner IS NOT NULL AND lease_expires_at > now()
         GROUP BY owner ORDER BY owner",
    )
    .fetch_all(&database.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_at_once_share_the_shards_and_keep_every_guarantee() {
    // Arrange: two instances, settled on 32 shards each.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 6).await;
    let settings = relay_settings(&database, &broker);
    let first = spawn_relay(&settings).await;
    let second = spawn_relay(&settings).await;
    eventually(Duration::from_secs(10), "the shards to split evenly", || async {
        owners(&database).await.iter().map(|(_, shards)| *shards).collect::<Vec<_>>() == [32, 32]
    })
    .await;

    // Act
    let written = concurrent_workload(&database.pool, &topic, 8, 200, 50).await;
    let received = read_topic(&broker, &topic, 10_000, Duration::from_secs(120)).await;

    // Assert
    let verdict = verify(&received, &written);
    let outbox = &database.name;
    let by_first = first.metric("shop_relay_published_events_total", outbox).await;
    let by_second = second.metric("shop_relay_published_events_total", outbox).await;
    println!(
        "Two relays: {} records, {} duplicates; published {by_first} and {by_second}",
        verdict.records, verdict.duplicates
    );
    assert!(by_first > 0.0 && by_second > 0.0, "both instances should have published");
    // Duplicates are allowed (a lease could move under a starved CI machine) but nothing may be missing.
    assert!(by_first + by_second >= 10_000.0);

    // A clean stop gives the shards back: the other instance takes all 64 within a renewal.
    first.server.stop().await.unwrap();
    eventually(Duration::from_secs(10), "the remaining instance to hold every shard", || async {
        owners(&database).await.iter().map(|(_, shards)| *shards).collect::<Vec<_>>() == [64]
    })
    .await;
    second.server.stop().await.unwrap();
}

/// The relay binary as a child process, for a kill -9.
fn relay_process(database: &TestDatabase, broker: &Broker) -> std::process::Child {
    let logs = if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() };
    std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .env("RELAY_DATABASE_URLS", &database.url)
        .env("KAFKA_BROKERS", &broker.bootstrap)
        .env("RELAY_BATCH_SIZE", "100")
        .env("RELAY_LEASE_TTL_MS", "2000")
        .env("RELAY_POLL_INTERVAL_MS", "200")
        .env("RELAY_METRICS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(logs)
        .stderr(Stdio::null())
        .spawn()
        .expect("Failed to start the relay binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_and_restarted_loses_nothing() {
    // Arrange: 10 000 events waiting, then a relay process.
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 6).await;
    let mut written = std::collections::HashMap::new();
    for _ in 0..100 {
        let id = uuid::Uuid::now_v7();
        let events: Vec<_> = (1..=100).map(|version| event(&topic, id, version, 64)).collect();
        append(&database.pool, &events).await;
        written.insert(id, 100);
    }
    let mut relay = relay_process(&database, &broker);

    // Act: kill -9 as soon as records flow, then start a new process.
    read_topic(&broker, &topic, 1, Duration::from_secs(30)).await;
    relay.kill().expect("Failed to kill the relay");
    relay.wait().unwrap();
    let left_behind = unpublished(&database.pool).await;
    let mut restarted = relay_process(&database, &broker);
    let received = read_topic(&broker, &topic, 10_000, Duration::from_secs(120)).await;

    // Assert
    let verdict = verify(&received, &written);
    println!(
        "Killed with {left_behind} of 10 000 rows unpublished; after the restart all arrived: {} records, {} \
         duplicates",
        verdict.records, verdict.duplicates
    );
    assert!(left_behind > 0, "the kill should have come mid-way");
    eventually(Duration::from_secs(10), "the outbox to drain", || async {
        unpublished(&database.pool).await == 0
    })
    .await;
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_batches_and_renewing_leases_side_by_side_never_deadlock() {
    // Arrange: one instance holding every shard, and a row of each shard published, to record again and again.
    let database = outbox_database().await;
    let instance = uuid::Uuid::now_v7();
    let leases = Leases::new(database.pool.clone(), "outbox".into(), instance, Duration::from_secs(60));
    let held = leases.refresh().await.unwrap().leases().to_vec();
    assert_eq!(held.len(), usize::from(shop_outbox::SHARD_COUNT.unsigned_abs()));
    let delivered: Vec<Published> = held
        .iter()
        .map(|&(shard, _)| Published { position: i64::from(shard), aggregate_id: uuid::Uuid::nil(), shard })
        .collect();
    let record = BatchRecord { delivered, ..Default::default() };

    // Act: the bookkeeping (which locks the shards it holds) and the lease renewal (which updates them) over and
    // over at once, as the relay's loop and its lease task run.
    let recording = async {
        for _ in 0..ROUNDS {
            store::record_batch(&database.pool, instance, &held, &record, false).await?;
        }
        anyhow::Ok(())
    };
    let renewing = async {
        for _ in 0..ROUNDS {
            leases.refresh().await?;
        }
        anyhow::Ok(())
    };
    let (recorded, renewed) = tokio::join!(recording, renewing);

    // Assert: both lock the shards in one order, so neither ever waits for the other in a cycle.
    recorded.expect("recording batches failed");
    renewed.expect("renewing leases failed");
}

/// Rounds of each, enough for the two to meet on the shards' rows many times.
const ROUNDS: usize = 300;
