//! The stock saga's consumer of order events: records applied straight through the consumer toolkit, and the
//! running catalog fed by a real Kafka-protocol broker.

use std::time::Duration;

use shop_catalog::{config::Settings, grpc::client::CatalogClient, startup::Application, stock::StockSaga};
use shop_events::{
    Envelope,
    envelope::now,
    order::{Order, OrderAwaitingStock, OrderCancelled, OrderConfirmed, OrderLine, OrderStatus},
    topics,
};
use shop_platform::kafka::KafkaSettings;
use shop_projection::{BatchOptions, Record, apply_batch, stored_offsets};
use shop_testkit::{
    RunningServer, TestDatabase, eventually, init_test_logging, kafka::TestBroker, outbox_rows,
};
use uuid::Uuid;

use crate::helpers::{Ledger, event_types_after, ledger, spawn_app};

/// An order for `lines` (product id, quantity), as the order service would publish it in `status`.
fn order(id: Uuid, status: OrderStatus, version: i64, lines: &[(&str, u32)]) -> Order {
    let at = now();
    Order {
        id,
        account_id: Uuid::now_v7(),
        status,
        lines: lines
            .iter()
            .map(|(product_id, quantity)| OrderLine {
                product_id: product_id.parse().unwrap(),
                quantity: *quantity,
                product: None,
            })
            .collect(),
        total_price_cents: matches!(status, OrderStatus::AwaitingStock | OrderStatus::Confirmed)
            .then_some(200),
        rejection_reason: None,
        version,
        created_at: at,
        updated_at: at,
        history: Vec::new(),
        stock_release_pending: status == OrderStatus::Cancelled,
    }
}

/// The order awaiting stock, then cancelled with its release pending.
fn awaiting_then_cancelled(id: Uuid, lines: &[(&str, u32)]) -> [Envelope; 2] {
    [
        Envelope::new(&OrderAwaitingStock { order: order(id, OrderStatus::AwaitingStock, 2, lines) }, None),
        Envelope::new(&OrderCancelled { order: order(id, OrderStatus::Cancelled, 3, lines) }, None),
    ]
}

/// A consumed record as the relay would have published `event` on the orders topic, at `offset`.
fn record(offset: i64, event: &Envelope) -> Record {
    Record::of_event(topics::ORDERS, 0, offset, event)
}

/// Each stock event type the outbox holds for `order_id`, with its version.
async fn stock_events(pool: &sqlx::PgPool, order_id: Uuid) -> Vec<(String, i64)> {
    outbox_rows(pool)
        .await
        .into_iter()
        .filter(|row| row.aggregate_id == order_id)
        .map(|row| (row.event_type, row.aggregate_version))
        .collect()
}

#[tokio::test]
async fn awaiting_stock_then_cancelled_reserves_once_and_releases_once_however_often_they_come() {
    // Arrange
    let app = spawn_app().await;
    let kettle = app.client.post_product_with_stock("Kettle", "", 100, 5).await.unwrap().id;
    let order_id = Uuid::now_v7();
    let [awaiting, cancelled] = awaiting_then_cancelled(order_id, &[(&kettle, 2)]);
    let confirmed_elsewhere = Envelope::new(
        &OrderConfirmed { order: order(Uuid::now_v7(), OrderStatus::Confirmed, 2, &[(&kettle, 1)]) },
        None,
    );
    let pool = &app.database.pool;

    // Act: the records; Kafka delivering them again at their offsets; a relay publishing them again at new ones.
    let first = [record(0, &awaiting), record(1, &cancelled), record(2, &confirmed_elsewhere)];
    let applied = apply_batch(pool, &StockSaga, &first, BatchOptions::default()).await.unwrap();
    let redelivered = apply_batch(pool, &StockSaga, &first, BatchOptions::default()).await.unwrap();
    let republished = [record(3, &awaiting), record(4, &cancelled)];
    let repeated = apply_batch(pool, &StockSaga, &republished, BatchOptions::default()).await.unwrap();

    // Assert: one reservation, one release, the stock back where it was; nothing else for anyone.
    assert_eq!((applied.applied, applied.ignored), (2, 1));
    assert_eq!((redelivered.applied, redelivered.already_applied), (0, 3));
    assert_eq!((repeated.applied, repeated.ignored), (0, 2));
    assert_eq!(ledger(pool, &kettle).await, Ledger { received: 5, available: 5, held: 0, balanced: true });
    assert_eq!(
        stock_events(pool, order_id).await,
        [("shop.stock.reserved.v1".to_owned(), 1), ("shop.stock.released.v1".to_owned(), 2)]
    );
    assert_eq!(
        event_types_after(pool, 1).await,
        [
            "shop.product.updated.v1",
            "shop.stock.reserved.v1",
            "shop.product.updated.v1",
            "shop.stock.released.v1"
        ]
    );
}

#[tokio::test]
async fn a_cancellation_consumed_before_its_order_awaited_stock_leaves_nothing_held() {
    // Arrange: the two events in the wrong order (as a gRPC release before the event would leave them).
    let app = spawn_app().await;
    let kettle = app.client.post_product_with_stock("Kettle", "", 100, 5).await.unwrap().id;
    let order_id = Uuid::now_v7();
    let [awaiting, cancelled] = awaiting_then_cancelled(order_id, &[(&kettle, 2)]);

    // Act
    let records = [record(0, &cancelled), record(1, &awaiting)];
    let summary =
        apply_batch(&app.database.pool, &StockSaga, &records, BatchOptions::default()).await.unwrap();

    // Assert
    assert_eq!((summary.applied, summary.ignored), (1, 1));
    assert_eq!(ledger(&app.database.pool, &kettle).await.available, 5);
    assert_eq!(stock_events(&app.database.pool, order_id).await, [("shop.stock.released.v1".to_owned(), 1)]);
}

#[tokio::test]
async fn an_order_event_that_breaks_its_rules_is_skipped_and_changes_nothing() {
    let app = spawn_app().await;
    let kettle = app.client.post_product_with_stock("Kettle", "", 100, 5).await.unwrap().id;
    let mut awaiting = awaiting_then_cancelled(Uuid::now_v7(), &[(&kettle, 2)])[0].clone();
    awaiting.payload["order"]["total_price_cents"] = serde_json::Value::Null;

    let summary =
        apply_batch(&app.database.pool, &StockSaga, &[record(0, &awaiting)], BatchOptions::default())
            .await
            .unwrap();

    assert_eq!((summary.applied, summary.skipped), (0, 1));
    assert_eq!(ledger(&app.database.pool, &kettle).await.available, 5);
}

/// Publishes `event` on the broker as the order service's relay would.
async fn publish(broker: &TestBroker, event: &Envelope) {
    let payload = serde_json::to_vec(&event.payload).unwrap();
    let key = event.aggregate_id.to_string();
    broker.produce(&broker.topic(&event.topic), &key, &event.metadata().headers(), &payload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_catalog_answers_order_events_from_the_broker_once_even_when_they_repeat() {
    // Arrange: the catalog reading a real Kafka-protocol broker.
    init_test_logging();
    let broker = TestBroker::start().await;
    let database = TestDatabase::create().await;
    let settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: database.url.parse().unwrap(),
        kafka: KafkaSettings {
            kafka_topic_prefix: broker.topic_prefix.clone(),
            ..KafkaSettings::new(broker.bootstrap.clone())
        },
        ..Default::default()
    };
    let application = Application::build(&settings).await.unwrap();
    let client = CatalogClient::connect(format!("http://{}", application.local_addr())).await.unwrap();
    let server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));
    let kettle = client.post_product_with_stock("Kettle", "", 100, 5).await.unwrap().id;
    let order_id = Uuid::now_v7();
    let [awaiting, cancelled] = awaiting_then_cancelled(order_id, &[(&kettle, 2)]);

    // Act: awaiting stock, then the same event again (a relay repeating itself); then the cancellation, twice.
    publish(&broker, &awaiting).await;
    publish(&broker, &awaiting).await;
    let held = || async { ledger(&database.pool, &kettle).await.held == 2 };
    eventually(Duration::from_secs(60), "the stock to be reserved", held).await;
    publish(&broker, &cancelled).await;
    publish(&broker, &cancelled).await;
    // The order's records share a partition: once the saga stands past all four, it has applied them all.
    let consumed = || async {
        let mut connection = database.pool.acquire().await.unwrap();
        let offsets = stored_offsets(&mut connection, StockSaga::NAME).await.unwrap();
        offsets.values().sum::<i64>() == 4
    };
    eventually(Duration::from_secs(30), "the four records to be consumed", consumed).await;

    // Assert
    assert_eq!(
        ledger(&database.pool, &kettle).await,
        Ledger { received: 5, available: 5, held: 0, balanced: true }
    );
    assert_eq!(
        stock_events(&database.pool, order_id).await,
        [("shop.stock.reserved.v1".to_owned(), 1), ("shop.stock.released.v1".to_owned(), 2)]
    );
    assert_eq!(client.get_product(&kettle).await.unwrap().version, 3);
    server.stop().await.expect("a clean stop");
}
