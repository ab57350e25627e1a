//! The relay's statements keep finding their rows by position however the outbox's statistics and size drift: the
//! relay drains it, so autovacuum mostly sees it empty, and then a burst arrives.

use std::time::Duration;

use shop_relay::{
    leases::Leases,
    store::{self, BatchRecord, Published},
};
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{append, event, outbox_database};

#[tokio::test]
async fn the_bookkeeping_deletes_by_position_after_the_outbox_was_analyzed_empty_and_then_filled() {
    let database = outbox_database().await;
    // One connection, so every statement below runs on it and keeps the plans it makes there.
    let pool = PgPoolOptions::new().max_connections(1).connect(&database.url).await.unwrap();
    let instance = Uuid::now_v7();
    let leases = Leases::new(pool.clone(), "outbox".into(), instance, Duration::from_secs(60));
    let assignment = leases.refresh().await.unwrap();
    let (held, shards) = (assignment.leases().to_vec(), assignment.shards());
    let drain = |limit| {
        let (pool, shards, held) = (pool.clone(), shards.clone(), held.clone());
        async move {
            let rows = store::unpublished(&pool, &shards, limit).await.unwrap();
            let batch =
                BatchRecord { delivered: rows.iter().map(Published::of).collect(), ..Default::default() };
            store::record_batch(&pool, instance, &held, &batch, false).await.unwrap();
            rows.len()
        }
    };
    // The outbox as autovacuum usually finds it: drained. Then the relay's batches of a quiet hour, one row each:
    // more than the five Postgres plans for their own values before it may settle on a plan for any.
    sqlx::query("VACUUM ANALYZE outbox").execute(&pool).await.unwrap();
    for _ in 0..8 {
        append(&pool, &[event("t", Uuid::now_v7(), 1, 0)]).await;
        assert_eq!(drain(10).await, 1);
    }

    // A burst (a broker outage, a bulk import), drained a batch at a time.
    let burst: Vec<_> = (0..5_000).map(|_| event("t", Uuid::now_v7(), 1, 0)).collect();
    append(&pool, &burst).await;
    let before = sequential_scans_of_outbox(&pool).await;
    assert_eq!(drain(1_000).await, 1_000);

    // A sequential scan would read the whole outbox again at every batch of the burst.
    let scans = sequential_scans_of_outbox(&pool).await - before;
    assert_eq!(scans, 0, "the bookkeeping read the whole outbox to find its rows");
}

/// Sequential scans of `outbox` counted so far. Its one connection reports its scans as it goes idle after
/// `pg_stat_force_next_flush()`, and the next statement reads them.
async fn sequential_scans_of_outbox(pool: &PgPool) -> i64 {
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(pool).await.unwrap();
    sqlx::query_scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'outbox'")
        .fetch_one(pool)
        .await
        .unwrap()
}
