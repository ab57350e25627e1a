use std::time::Duration;

use uuid::Uuid;

use crate::helpers::{
    Broker, append, event, eventually, outbox_database, read_topic, relay_settings, spawn_relay,
};

async fn rows(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(published_at) FROM outbox").fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_rows_are_deleted_at_once_by_default() {
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 1).await;
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;

    append(&database.pool, &[event(&topic, Uuid::now_v7(), 1, 0), event(&topic, Uuid::now_v7(), 1, 0)]).await;
    read_topic(&broker, &topic, 2, Duration::from_secs(30)).await;

    eventually(Duration::from_secs(10), "the outbox to be empty", || async {
        rows(&database.pool).await == (0, 0)
    })
    .await;
    relay.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_retention_published_rows_are_kept_then_deleted() {
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 1).await;
    let mut settings = relay_settings(&database, &broker);
    settings.relay.retention_secs = 2;
    let relay = spawn_relay(&settings).await;

    append(&database.pool, &[event(&topic, Uuid::now_v7(), 1, 0)]).await;
    read_topic(&broker, &topic, 1, Duration::from_secs(30)).await;

    eventually(Duration::from_secs(5), "the row to be marked published", || async {
        rows(&database.pool).await == (1, 1)
    })
    .await;
    eventually(Duration::from_secs(15), "the row to be deleted after its retention", || async {
        rows(&database.pool).await == (0, 0)
    })
    .await;
    relay.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_published_events_backlog_age_parked_and_latency() {
    let broker = Broker::start().await;
    let database = outbox_database().await;
    let topic = broker.create_topic("test-relay", 1).await;
    let relay = spawn_relay(&relay_settings(&database, &broker)).await;

    append(&database.pool, &[event(&topic, Uuid::now_v7(), 1, 0)]).await;
    read_topic(&broker, &topic, 1, Duration::from_secs(30)).await;

    let outbox = &database.name;
    eventually(Duration::from_secs(10), "the published counter", || async {
        relay.metric("shop_relay_published_events_total", outbox).await == 1.0
    })
    .await;
    assert_eq!(relay.metric("shop_relay_publish_latency_seconds_count", outbox).await, 1.0);
    assert_eq!(relay.metric("shop_relay_owned_shards", outbox).await, 64.0);
    // Refreshed by housekeeping every 5 s.
    eventually(Duration::from_secs(10), "the backlog gauges", || async {
        relay.metric("shop_relay_backlog_events", outbox).await == 0.0
            && relay.metric("shop_relay_oldest_unpublished_age_seconds", outbox).await == 0.0
            && relay.metric("shop_relay_parked_aggregates", outbox).await == 0.0
    })
    .await;
    relay.server.stop().await.unwrap();
}
