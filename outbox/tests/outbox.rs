//! The outbox writer against a real Postgres database.

use shop_events::{
    Envelope, TraceContext,
    account::{Account, AccountCreated, AccountRepublished},
    envelope::now,
    republish::PartitionStart,
    topics,
};
use shop_outbox::{
    self as outbox,
    republish::{Entities, Progress, RepublishError, RepublishSettings, republish},
};
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

#[tokio::test]
async fn a_republished_row_may_repeat_a_version_that_is_still_in_the_outbox() {
    // Arrange: version 1 of an account, not published yet.
    let database = migrated_database().await;
    let id = Uuid::now_v7();
    let account = account_created(id, 1).account;
    let mut transaction = database.pool.begin().await.unwrap();
    outbox::append(&mut transaction, &Envelope::new(&account_created(id, 1), None)).await.unwrap();
    transaction.commit().await.unwrap();

    // Act: its current state appended again, twice (two runs), in the order given.
    let republished = Envelope::new(&AccountRepublished { account: account.clone() }, None);
    let again = Envelope::new(&AccountRepublished { account }, None);
    let mut transaction = database.pool.begin().await.unwrap();
    let positions =
        outbox::append_republished(&mut transaction, &[republished.clone(), again.clone()]).await.unwrap();
    transaction.commit().await.unwrap();

    // Assert: after the original, in that order; a change at a taken version still conflicts.
    let rows = outbox_rows(&database.pool).await;
    let event_ids: Vec<Uuid> = rows.iter().map(|row| row.event_id).collect();
    assert_eq!(event_ids[1..], [republished.event_id, again.event_id]);
    assert_eq!(positions.len(), 2);
    assert!(rows.iter().all(|row| row.aggregate_version == 1));
    assert_eq!(rows[1].event_type, "shop.account.republished.v1");
    let flagged: Vec<bool> = sqlx::query_scalar("SELECT republished FROM outbox ORDER BY position")
        .fetch_all(&database.pool)
        .await
        .unwrap();
    assert_eq!(flagged, [false, true, true]);
    let mut transaction = database.pool.begin().await.unwrap();
    let error =
        outbox::append(&mut transaction, &Envelope::new(&account_created(id, 1), None)).await.unwrap_err();
    let code = error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("23505"));
}

/// Accounts in a table of the test's own, republished as the account service does.
struct TestAccounts;

impl Entities for TestAccounts {
    fn topic(&self) -> &'static str {
        topics::ACCOUNTS
    }

    async fn count(&self, pool: &sqlx::PgPool) -> Result<u64, sqlx::Error> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM test_accounts").fetch_one(pool).await?;
        Ok(count as u64)
    }

    async fn next_batch(
        &self,
        transaction: &mut sqlx::PgTransaction<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Envelope>, sqlx::Error> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT id, version FROM test_accounts WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2 FOR SHARE",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut **transaction)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, version)| {
                let account = account_created(id, version).account;
                Envelope::new(&AccountRepublished { account }, None)
            })
            .collect())
    }
}

async fn database_with_accounts(count: usize) -> TestDatabase {
    let database = migrated_database().await;
    sqlx::query("CREATE TABLE test_accounts (id uuid PRIMARY KEY, version bigint NOT NULL)")
        .execute(&database.pool)
        .await
        .unwrap();
    for _ in 0..count {
        sqlx::query("INSERT INTO test_accounts VALUES ($1, 2)")
            .bind(Uuid::now_v7())
            .execute(&database.pool)
            .await
            .unwrap();
    }
    database
}

#[tokio::test]
async fn a_republish_the_relay_does_not_publish_in_time_is_not_recorded() {
    // Arrange: five accounts, and no relay.
    let database = database_with_accounts(5).await;
    let settings = RepublishSettings { batch_size: 2, relay_wait_secs: 0 };
    let mut seen = Vec::new();

    // Act
    let error =
        republish(&database.pool, &TestAccounts, Vec::new(), &settings, |progress| seen.push(progress))
            .await
            .unwrap_err();

    // Assert: every entity appended, in batches of two, and no record of a completed run.
    assert!(matches!(error, RepublishError::RelayBehind { waiting: 5, appended: 5, .. }), "{error}");
    assert!(error.to_string().contains("is the relay running"), "{error}");
    assert_eq!(
        seen[..3],
        [
            Progress::Appending { done: 2, total: 5 },
            Progress::Appending { done: 4, total: 5 },
            Progress::Appending { done: 5, total: 5 }
        ]
    );
    let rows = outbox_rows(&database.pool).await;
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter().all(|row| row.event_type == "shop.account.republished.v1" && row.aggregate_version == 2)
    );
}

#[tokio::test]
async fn a_republish_is_recorded_once_the_relay_has_published_every_event_of_it() {
    // Arrange: three accounts, and a stand-in for the relay that deletes rows as it "publishes" them.
    let database = database_with_accounts(3).await;
    let relay = tokio::spawn({
        let pool = database.pool.clone();
        async move {
            loop {
                sqlx::query("DELETE FROM outbox").execute(&pool).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    });
    let starts = vec![PartitionStart { partition: 0, start_offset: 7 }];

    // Act
    let completed =
        republish(&database.pool, &TestAccounts, starts.clone(), &RepublishSettings::default(), |_| {}).await;
    relay.abort();

    // Assert
    let completed = completed.expect("the run to complete");
    assert_eq!(completed.topic, topics::ACCOUNTS);
    assert_eq!(completed.entities, 3);
    assert_eq!(completed.partitions, starts);
    assert!(completed.started_at <= completed.completed_at);
}
