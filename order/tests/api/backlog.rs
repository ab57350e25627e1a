//! The backlog the metrics read every few seconds must stay cheap however many orders are final.

use shop_order::repository;
use sqlx::{Connection, PgConnection};

use crate::helpers::migrated_database;

/// Orders final and settled, as a long-running shop accumulates them.
const FINAL_ORDERS: i64 = 20_000;

#[tokio::test]
async fn the_backlog_read_stays_on_its_indexes_after_the_orders_grew_from_none() {
    let (_database, pool) = migrated_database().await;
    // A service reads its backlog from its first seconds, when it holds no order yet; its connections live on.
    let mut connection = pool.acquire().await.unwrap();
    let empty = repository::backlog(&mut connection).await.unwrap();
    assert_eq!((empty.unsettled, empty.releases_owed), (0, 0));

    sqlx::query(
        "INSERT INTO orders (id, account_id, status, total_price_cents, version, created_at, updated_at)
         SELECT gen_random_uuid(), gen_random_uuid(), 'confirmed', 100, 2, now(), now()
         FROM generate_series(1, $1)",
    )
    .bind(FINAL_ORDERS)
    .execute(&pool)
    .await
    .unwrap();

    // Nothing analyzed the table since (autovacuum may be off, or not have come by yet): a plan kept from the
    // empty table would read every order at every refresh.
    let mut transaction = Connection::begin(&mut *connection).await.unwrap();
    let before = sequential_scans_of_orders(&mut transaction).await;
    let backlog = repository::backlog(&mut transaction).await.unwrap();
    assert_eq!((backlog.unsettled, backlog.releases_owed), (0, 0));
    let scans = sequential_scans_of_orders(&mut transaction).await - before;
    assert_eq!(scans, 0, "the backlog read every order");
}

/// Sequential scans of `orders` this connection made and has not yet reported to the statistics (it reports at most
/// once a second, never inside a transaction): the difference of two readings in one transaction counts the scans
/// between them.
async fn sequential_scans_of_orders(connection: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'orders'")
        .fetch_one(connection)
        .await
        .unwrap()
}
