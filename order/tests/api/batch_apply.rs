//! The order projection applies a batch as a set (one statement per table): a batch holding several versions of
//! one entity, versions arriving out of order across batches, new entities beside stored ones, an entity another
//! writer stores meanwhile, and a record the database refuses inside a batch, live and during a rebuild (which
//! applies a batch's partitions in transactions side by side).

use std::{sync::Arc, time::Duration};

use shop_events::{
    Envelope,
    account::{Account, AccountCreated},
    catalog::{Product, ProductCreated, ProductUpdated},
    envelope::now,
    topics,
};
use shop_order::projection::DirectoryProjection;
use shop_platform::kafka::KafkaSettings;
use shop_projection::{
    BatchOptions, BatchSummary, MAX_RECORD_ATTEMPTS, ProjectionRunner, Record, Source, apply_batch,
};
use shop_testkit::{eventually, kafka::TestBroker};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::migrated_database;

fn product(id: Uuid, version: i64, name: &str) -> Product {
    let at = now();
    Product {
        id,
        name: name.into(),
        description: format!("{name}, v{version}"),
        price_cents: 100 * version,
        stock: None,
        version,
        created_at: at,
        updated_at: at,
    }
}

fn product_event(id: Uuid, version: i64, name: &str) -> Envelope {
    let product = product(id, version, name);
    if version == 1 {
        Envelope::new(&ProductCreated { product }, None)
    } else {
        Envelope::new(&ProductUpdated { product }, None)
    }
}

fn account_event(id: Uuid, version: i64, name: &str) -> Envelope {
    let account = Account { id, name: name.into(), version, created_at: now(), owner: None };
    Envelope::new(&AccountCreated { account }, None)
}

/// `events` as consecutive records of partition 0 of their topics, from `offset`, as the consumer hands them over.
fn records(offset: i64, events: &[Envelope]) -> Vec<Record> {
    events
        .iter()
        .zip(offset..)
        .map(|(event, offset)| Record::of_event(&event.topic, 0, offset, event))
        .collect()
}

async fn apply(pool: &PgPool, records: &[Record]) -> BatchSummary {
    apply_batch(pool, &DirectoryProjection::live(), records, BatchOptions::default()).await.unwrap()
}

/// (description, price, version) of `product` in the projection.
async fn stored_product(pool: &PgPool, product: Uuid) -> Option<(String, i64, i64)> {
    sqlx::query_as("SELECT description, price_cents, version FROM product_projection WHERE id = $1")
        .bind(product)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn stored_account(pool: &PgPool, account: Uuid) -> Option<(String, i64)> {
    sqlx::query_as("SELECT name, version FROM account_projection WHERE id = $1")
        .bind(account)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holding_several_versions_of_one_entity_keeps_the_newest_and_counts_each_as_one_by_one() {
    // Arrange: a kettle at versions 1, 2, 3, then 2 again; a mug; an account, twice.
    let (_database, pool) = migrated_database().await;
    let (kettle, mug, ada) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let batch = records(
        0,
        &[
            product_event(kettle, 1, "Kettle"),
            product_event(kettle, 2, "Kettle"),
            account_event(ada, 1, "Ada"),
            product_event(mug, 1, "Mug"),
            product_event(kettle, 3, "Kettle"),
            product_event(kettle, 2, "Kettle"),
            account_event(ada, 1, "Ada"),
        ],
    );

    // Act
    let summary = apply(&pool, &batch).await;

    // Assert: what applying the records one by one reports, and the newest version of each.
    assert_eq!(summary, BatchSummary { applied: 5, ignored: 2, ..BatchSummary::default() });
    assert_eq!(stored_product(&pool, kettle).await, Some(("Kettle, v3".into(), 300, 3)));
    assert_eq!(stored_product(&pool, mug).await, Some(("Mug, v1".into(), 100, 1)));
    assert_eq!(stored_account(&pool, ada).await, Some(("Ada".into(), 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_out_of_order_across_batches_leave_the_newest_in_place() {
    // Arrange: the first batch brings the kettle at version 3 and Ada at 2.
    let (_database, pool) = migrated_database().await;
    let (kettle, ada) = (Uuid::now_v7(), Uuid::now_v7());
    let first = records(0, &[product_event(kettle, 3, "Kettle"), account_event(ada, 2, "Ada Lovelace")]);
    assert_eq!(apply(&pool, &first).await.applied, 2);

    // Act: the second brings older versions of both, then the kettle at 4, then at 2 again.
    let second = records(
        2,
        &[
            product_event(kettle, 2, "Kettle"),
            account_event(ada, 1, "Ada"),
            product_event(kettle, 4, "Kettle"),
            product_event(kettle, 1, "Kettle"),
        ],
    );
    let summary = apply(&pool, &second).await;

    // Assert
    assert_eq!(summary, BatchSummary { applied: 1, ignored: 3, ..BatchSummary::default() });
    assert_eq!(stored_product(&pool, kettle).await, Some(("Kettle, v4".into(), 400, 4)));
    assert_eq!(stored_account(&pool, ada).await, Some(("Ada Lovelace".into(), 2)));
    // Delivered again, the whole second batch is left out by the positions.
    let again = apply(&pool, &second).await;
    assert_eq!(again, BatchSummary { already_applied: 4, ..BatchSummary::default() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mixing_new_entities_with_stored_ones_inserts_the_new_and_updates_only_the_older() {
    // Arrange: the kettle is stored at version 2, Ada at 1.
    let (_database, pool) = migrated_database().await;
    let (kettle, mug, ada, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let first = records(0, &[product_event(kettle, 2, "Kettle"), account_event(ada, 1, "Ada")]);
    assert_eq!(apply(&pool, &first).await.applied, 2);

    // Act: one batch with a new product and a new account beside newer, equal and older versions of stored ones.
    let second = records(
        2,
        &[
            product_event(mug, 1, "Mug"),
            product_event(kettle, 3, "Kettle"),
            account_event(ada, 1, "Ada again"),
            account_event(bob, 1, "Bob"),
            product_event(kettle, 1, "Kettle"),
        ],
    );
    let summary = apply(&pool, &second).await;

    // Assert
    assert_eq!(summary, BatchSummary { applied: 3, ignored: 2, ..BatchSummary::default() });
    assert_eq!(stored_product(&pool, mug).await, Some(("Mug, v1".into(), 100, 1)));
    assert_eq!(stored_product(&pool, kettle).await, Some(("Kettle, v3".into(), 300, 3)));
    assert_eq!(stored_account(&pool, ada).await, Some(("Ada".into(), 1)));
    assert_eq!(stored_account(&pool, bob).await, Some(("Bob".into(), 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_another_writer_stores_during_the_batch_fails_it_for_its_record_and_applies_when_tried_again()
 {
    // Arrange: another transaction stores the mug at version 1 and commits only once the batch is under way.
    let (_database, pool) = migrated_database().await;
    let mug = Uuid::now_v7();
    let mut other = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO product_projection (id, name, description, price_cents, version, updated_at, tracks_stock)
         VALUES ($1, 'Mug', 'Mug, v1', 100, 1, now(), false)",
    )
    .bind(mug)
    .execute(&mut *other)
    .await
    .unwrap();
    let batch = records(0, &[product_event(mug, 2, "Mug")]);

    // Act: the batch, which did not see the mug stored, waits on the other's row, which then commits.
    let applying = tokio::spawn({
        let (pool, batch) = (pool.clone(), batch.clone());
        async move { apply_batch(&pool, &DirectoryProjection::live(), &batch, BatchOptions::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    other.commit().await.unwrap();
    let failed = applying.await.unwrap();

    // Assert: a failure the record causes, so the runner tries it alone again; tried again, it sees the mug stored.
    assert!(failed.is_err_and(|error| error.is_caused_by_a_record()));
    assert_eq!(apply(&pool, &batch).await.applied, 1);
    assert_eq!(stored_product(&pool, mug).await, Some(("Mug, v2".into(), 200, 2)));
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_database_refuses_inside_a_batch_is_dead_lettered_and_the_rest_of_the_batch_applied() {
    // Arrange: a database that refuses one product (a CHECK standing for any value Postgres refuses that decoding
    // let through), and one batch on the topic: a kettle, the refused product, a mug, and the kettle's version 2.
    let broker = TestBroker::start().await;
    let (database, pool) = migrated_database().await;
    refuse_poison(&pool).await;
    let (kettle, poison, mug) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // Under one key (so on one partition), before the consumer starts, so that they come in one batch.
    for event in [
        product_event(kettle, 1, "Kettle"),
        product_event(poison, 1, "Poison"),
        product_event(mug, 1, "Mug"),
        product_event(kettle, 2, "Kettle"),
    ] {
        publish_on_one_partition(&broker, &event).await;
    }

    // Act
    let runner = ProjectionRunner::new(Arc::new(DirectoryProjection::live()), pool.clone(), source(&broker));
    let stats = runner.stats();
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { runner.run_until_stopped(stop).await }
    });
    eventually(
        Duration::from_secs(60),
        "the good records applied and the refused one dead-lettered",
        || async { stats.applied() == 3 && stats.dead_lettered() == 1 },
    )
    .await;
    stop.cancel();
    running.await.unwrap().unwrap();

    // Assert
    assert_eq!(stored_product(&pool, kettle).await, Some(("Kettle, v2".into(), 200, 2)));
    assert_eq!(stored_product(&pool, mug).await, Some(("Mug, v1".into(), 100, 1)));
    assert_eq!(stored_product(&pool, poison).await, None);
    let dead: Vec<(i64, i32, String)> = sqlx::query_as(
        r#"SELECT "offset", attempts, reason FROM projection_skipped WHERE projection = 'order.directory'"#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].0, dead[0].1), (1, MAX_RECORD_ATTEMPTS as i32));
    assert!(dead[0].2.contains("refuses_poison"), "{}", dead[0].2);
    let offsets =
        shop_projection::stored_offsets(&mut pool.acquire().await.unwrap(), DirectoryProjection::NAME)
            .await
            .unwrap();
    assert_eq!(offsets.values().sum::<i64>(), 4, "{offsets:?}");
    drop(database);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_applies_partitions_side_by_side_and_passes_over_each_record_the_database_refuses() {
    // Arrange: 40 products in three versions each, on the topic's three partitions (each under its id, as the
    // relay keys them), one of them a product the database refuses.
    let broker = TestBroker::start().await;
    let (database, pool) = migrated_database().await;
    refuse_poison(&pool).await;
    let products: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    let poison = products[17];
    for version in 1..=3 {
        for &id in &products {
            let event = product_event(id, version, if id == poison { "Poison" } else { "Kettle" });
            let payload = serde_json::to_vec(&event.payload).unwrap();
            let topic = broker.topic(&event.topic);
            broker.produce(&topic, &id.to_string(), &event.metadata().headers(), &payload).await;
        }
    }
    let filled = broker.watermarks(&broker.topic(topics::PRODUCTS)).await;
    assert!(filled.values().filter(|(low, high)| high > low).count() >= 2, "{filled:?}");

    // Act
    let report = shop_projection::rebuild(
        &DirectoryProjection::live(),
        &pool,
        &source(&broker),
        &Default::default(),
        |_| {},
    )
    .await
    .unwrap();

    // Assert: the partitions' lanes were applied, the one holding the refused product record by record.
    assert_eq!(
        (report.consumed, report.applied, report.ignored, report.dead_lettered),
        (120, 117, 0, 3),
        "{report}"
    );
    for &id in products.iter().filter(|&&id| id != poison) {
        assert_eq!(stored_product(&pool, id).await, Some(("Kettle, v3".into(), 300, 3)));
    }
    assert_eq!(stored_product(&pool, poison).await, None);
    let refused: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_skipped WHERE reason LIKE '%refuses_poison%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(refused, 3);
    let offsets =
        shop_projection::stored_offsets(&mut pool.acquire().await.unwrap(), DirectoryProjection::NAME)
            .await
            .unwrap();
    assert_eq!(offsets.values().sum::<i64>(), 120, "{offsets:?}");
    drop(database);
}

/// Where the order projection reads from on `broker`.
fn source(broker: &TestBroker) -> Source {
    Source::from_settings(&KafkaSettings {
        kafka_topic_prefix: broker.topic_prefix.clone(),
        ..KafkaSettings::new(broker.bootstrap.clone())
    })
}

/// Makes the product projection refuse a product named `Poison` (a CHECK standing for any value Postgres refuses
/// that decoding let through).
async fn refuse_poison(pool: &PgPool) {
    sqlx::query("ALTER TABLE product_projection ADD CONSTRAINT refuses_poison CHECK (name <> 'Poison')")
        .execute(pool)
        .await
        .unwrap();
}

/// Publishes `event` as the relay would, but under one key for every event.
async fn publish_on_one_partition(broker: &TestBroker, event: &Envelope) {
    let payload = serde_json::to_vec(&event.payload).unwrap();
    broker.produce(&broker.topic(&event.topic), "one partition", &event.metadata().headers(), &payload).await;
}
