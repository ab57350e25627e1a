//! The outbox writer against a real Postgres database.

use shop_events::{
    Envelope, TraceContext,
    account::{Account, AccountCreated},
    envelope::now,
};
use shop_outbox as outbox;
use shop_testkit::{TestDatabase, outbox_rows};
use uuid::Uuid;

fn account_created(id: Uuid, version: i64) -> AccountCreated {
    AccountCreated { account: Account { id, name: "Ada".into(), version, created_at: now(), owner: None } }
}

async fn migrated_database() -> TestDatabase {
    let database = TestDatabase::create().await;
    outbox::migrate(&database.pool).await.expect("Failed to migrate the outbox");
    database
}

#[tokio::test]
async fn append_writes_every_envelope_field_when_the_transaction_commits() {
    // Arrange
    let database = migrated_database().await;
    let trace = TraceContext::new_root();
    let envelope = Envelope::new(&account_created(Uuid::now_v7(), 1), Some(&trace));

    // Act
    let mut transaction = database.pool.begin().await.unwrap();
    outbox::append(&mut transaction, &envelope).await.unwrap();
    transaction.commit().await.unwrap();

    // Assert
    let rows = outbox_rows(&database.pool).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.event_id, envelope.event_id);
    assert_eq!(row.aggregate_type, "account");
    assert_eq!(row.aggregate_id, envelope.aggregate_id);
    assert_eq!(row.aggregate_version, 1);
    assert_eq!(row.event_type, "shop.account.created.v1");
    assert_eq!(row.topic, "shop.accounts.v1");
    assert_eq!(row.payload, envelope.payload);
    assert_eq!(row.occurred_at, envelope.occurred_at);
    assert_eq!(row.traceparent.as_deref(), Some(trace.traceparent()));
}

#[tokio::test]
async fn append_leaves_nothing_when_the_transaction_rolls_back() {
    let database = migrated_database().await;
    let envelope = Envelope::new(&account_created(Uuid::now_v7(), 1), None);

    let mut transaction = database.pool.begin().await.unwrap();
    outbox::append(&mut transaction, &envelope).await.unwrap();
    transaction.rollback().await.unwrap();

    assert!(outbox_rows(&database.pool).await.is_empty());
}

#[tokio::test]
async fn appending_a_version_twice_is_a_unique_violation() {
    let database = migrated_database().await;
    let id = Uuid::now_v7();
    let mut transaction = database.pool.begin().await.unwrap();
    outbox::append(&mut transaction, &Envelope::new(&account_created(id, 1), None)).await.unwrap();

    let error =
        outbox::append(&mut transaction, &Envelope::new(&account_created(id, 1), None)).await.unwrap_err();

    let code = error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("23505"));
}

#[tokio::test]
async fn migrating_twice_is_harmless() {
    let database = migrated_database().await;

    outbox::migrate(&database.pool).await.expect("A second migration should be a no-op");
}

async fn next_notification(
    listener: &mut sqlx::postgres::PgListener,
) -> Option<sqlx::postgres::PgNotification> {
    tokio::time::timeout(std::time::Duration::from_millis(500), listener.recv())
        .await
        .ok()
        .map(Result::unwrap)
}

#[tokio::test]
async fn a_commit_notifies_the_relay_once_and_a_rollback_does_not() {
    // Arrange
    let database = migrated_database().await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&database.pool).await.unwrap();
    listener.listen(outbox::NOTIFY_CHANNEL).await.unwrap();
    let id = Uuid::now_v7();

    // Act: a rolled-back write, then one transaction with two writes.
    let mut transaction = database.pool.begin().await.unwrap();
    outbox::append(&mut transaction, &Envelope::new(&account_created(id, 1), None)).await.unwrap();
    transaction.rollback().await.unwrap();
    let after_rollback = next_notification(&mut listener).await;

    let mut transaction = database.pool.begin().await.unwrap();
    outbox::append(&mut transaction, &Envelope::new(&account_created(id, 1), None)).await.unwrap();
    outbox::append(&mut transaction, &Envelope::new(&account_created(id, 2), None)).await.unwrap();
    transaction.commit().await.unwrap();
    let after_commit = next_notification(&mut listener).await;
    let a_second_one = next_notification(&mut listener).await;

    // Assert
    assert!(after_rollback.is_none(), "a rolled-back write must not wake the relay");
    assert!(after_commit.is_some(), "a committed write must wake the relay");
    assert!(a_second_one.is_none(), "one transaction, one notification");
}

#[tokio::test]
async fn every_version_of_an_aggregate_lands_in_the_same_shard() {
    let database = migrated_database().await;
    let mut transaction = database.pool.begin().await.unwrap();
    for _ in 0..50 {
        let id = Uuid::now_v7();
        for version in 1..=3 {
            outbox::append(&mut transaction, &Envelope::new(&account_created(id, version), None))
                .await
                .unwrap();
        }
    }
    transaction.commit().await.unwrap();

    let (aggregates, spread, max_shard): (i64, i64, i16) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT shard), max(shard) FROM (
             SELECT aggregate_id, min(shard) AS shard FROM outbox GROUP BY aggregate_id HAVING count(DISTINCT shard) = 1
         ) AS per_aggregate",
    )
    .fetch_one(&database.pool)
    .await
    .unwrap();
    assert_eq!(aggregates, 50, "every aggregate has exactly one shard");
    assert!(spread > 10, "50 random ids should spread over many of the 64 shards, got {spread}");
    assert!(max_shard < outbox::SHARD_COUNT);
}
