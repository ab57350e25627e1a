//! The order service in projection mode: orders answered priced when the service's own projection of accounts and
//! products knows their names in time, or pending, then confirmed or rejected from that projection, fed here by
//! events published straight to the broker.

use std::{collections::HashMap, sync::Arc, time::Duration};

use shop_events::{
    TraceContext,
    account::{Account, AccountCreated},
    catalog::{Product, ProductCreated, ProductUpdated},
    envelope::now,
};
use shop_order::{
    config::Settings,
    directory::Directory,
    domain::{NewOrder, Order, PlacedBy},
    projection::ProjectionDirectory,
    validation::{ValidationSettings, Validator},
};
use shop_proto::order::v1::OrderStatus;
use shop_testkit::{TestDatabase, count_rows, eventually, init_test_logging, kafka::TestBroker, outbox_rows};
use uuid::Uuid;

use crate::helpers::{
    ProjectionApp, projection_settings, publish, publish_heartbeat, settled, spawn_order_service,
    spawn_projection_app,
};

fn account(id: Uuid, version: i64, name: &str) -> AccountCreated {
    AccountCreated { account: Account { id, name: name.into(), version, created_at: now(), owner: None } }
}

fn product(id: Uuid, version: i64, name: &str, price_cents: i64) -> Product {
    let at = now();
    Product {
        id,
        name: name.into(),
        description: format!("{name}, v{version}"),
        price_cents,
        stock: None,
        version,
        created_at: at,
        updated_at: at,
    }
}

/// Waits until the projection knows `product` at `version`.
async fn projected(app: &ProjectionApp, product: Uuid, version: i64) {
    eventually(Duration::from_secs(10), "the product in the projection", || async {
        let found: Option<i64> = sqlx::query_scalar("SELECT version FROM product_projection WHERE id = $1")
            .bind(product)
            .fetch_optional(&app.database.pool)
            .await
            .unwrap();
        found == Some(version)
    })
    .await;
}

/// Waits until the projection's consumer has joined its group and applies what is published (a consumer group
/// takes seconds to form): a marker product goes through.
async fn consuming(broker: &TestBroker, app: &ProjectionApp) {
    let marker = Uuid::now_v7();
    publish(broker, &ProductCreated { product: product(marker, 1, "Marker", 1) }).await;
    projected(app, marker, 1).await;
}

/// The order service in projection mode, answering priced orders within `priced_wait_ms`.
async fn spawn_priced_app(broker: &TestBroker, priced_wait_ms: u64) -> ProjectionApp {
    init_test_logging();
    let database = TestDatabase::create().await;
    let settings = Settings {
        priced_answer_wait_ms: priced_wait_ms,
        ..projection_settings(&database, broker, &broker.bootstrap, 10_000)
    };
    spawn_order_service(database, &settings).await
}

/// Puts account `account` and `products` (id, name, price in cents) straight into the projection, with the price
/// CHECK dropped first, as rows stored before the projection checked prices would be.
async fn project_unchecked(pool: &sqlx::PgPool, account: Uuid, products: &[(Uuid, &str, i64)]) {
    sqlx::query("ALTER TABLE product_projection DROP CONSTRAINT product_projection_price_cents")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO account_projection VALUES ($1, 'Ada', 1, now())")
        .bind(account)
        .execute(pool)
        .await
        .unwrap();
    for (id, name, price) in products {
        sqlx::query("INSERT INTO product_projection VALUES ($1, $2, '', $3, 1, now())")
            .bind(id)
            .bind(name)
            .bind(price)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// Places, for `account`, one order of each of `products` (one unit), left pending for the validator; their ids.
async fn place_pending(pool: &sqlx::PgPool, account: Uuid, products: &[Uuid]) -> Vec<Uuid> {
    let service = shop_order::service::OrderService::new(
        pool.clone(),
        ProjectionDirectory::new(pool.clone()),
        shop_order::service::Placement::deferred(Arc::default()),
    );
    let trace = TraceContext::new_root();
    let mut placed = Vec::new();
    for product in products {
        let new_order = NewOrder::parse(&account.to_string(), [(&*product.to_string(), 1)]).unwrap();
        placed.push(service.place_order(new_order, &trace).await.unwrap().id);
    }
    placed
}

/// A validator on the projection in `pool`, which rejects no order for naming something unknown.
fn projection_validator(pool: &sqlx::PgPool) -> Validator<ProjectionDirectory> {
    Validator::new(
        pool.clone(),
        ProjectionDirectory::new(pool.clone()),
        ValidationSettings {
            reject_after: Duration::from_secs(60),
            clock_skew: Duration::ZERO,
            interval: Duration::from_secs(1),
        },
        Arc::default(),
    )
}

/// The order's only decision is one `decision` event, as version 2, and no other order was decided.
async fn assert_decided_once(app: &ProjectionApp, order_id: &str, decision: &str) {
    let id: Uuid = order_id.parse().unwrap();
    assert_eq!(decisions(app).await, HashMap::from([(id, vec![(decision.to_owned(), 2)])]));
}

/// Publishes account Ada, a kettle at 24.99 and a mug at 8.99; their ids.
async fn publish_ada_a_kettle_and_a_mug(broker: &TestBroker) -> (Uuid, Uuid, Uuid) {
    let (ada, kettle, mug) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    publish(broker, &account(ada, 1, "Ada")).await;
    publish(broker, &ProductCreated { product: product(kettle, 1, "Kettle", 2_499) }).await;
    publish(broker, &ProductCreated { product: product(mug, 1, "Mug", 899) }).await;
    (ada, kettle, mug)
}

async fn order_two_kettles_and_a_mug(
    app: &ProjectionApp,
    ada: Uuid,
    kettle: Uuid,
    mug: Uuid,
) -> shop_proto::order::v1::Order {
    app.client.post_order(&ada.to_string(), &[(&kettle.to_string(), 2), (&mug.to_string(), 1)]).await.unwrap()
}

/// The decisions (confirmations and rejections) the outbox holds, per order.
async fn decisions(app: &ProjectionApp) -> HashMap<Uuid, Vec<(String, i64)>> {
    let mut decisions: HashMap<Uuid, Vec<(String, i64)>> = HashMap::new();
    for row in outbox_rows(&app.database.pool).await {
        if row.event_type != "shop.order.placed.v1" {
            decisions.entry(row.aggregate_id).or_default().push((row.event_type, row.aggregate_version));
        }
    }
    decisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_for_names_published_just_before_it_is_answered_confirmed_and_priced() {
    // Arrange: a projection that consumes, then an account and two products published just before the order.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 10_000).await;
    consuming(&broker, &app).await;
    let (ada, kettle, mug) = publish_ada_a_kettle_and_a_mug(&broker).await;

    // Act
    let placed = order_two_kettles_and_a_mug(&app, ada, kettle, mug).await;
    // Time for the validator to look (every 100 ms here) and find nothing left to decide.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Assert: the answer is the order, decided and priced, as stored.
    assert_eq!(placed.status(), OrderStatus::Confirmed);
    assert_eq!(placed.total_price_cents, Some(2 * 2_499 + 899));
    let kettle_line = placed.lines[0].product.as_ref().unwrap();
    assert_eq!(
        (&*kettle_line.name, &*kettle_line.description, kettle_line.unit_price_cents),
        ("Kettle", "Kettle, v1", 2_499)
    );
    assert_eq!(app.client.get_order(&placed.id).await.unwrap(), placed);
    let events: Vec<(String, i64)> = outbox_rows(&app.database.pool)
        .await
        .into_iter()
        .map(|row| (row.event_type, row.aggregate_version))
        .collect();
    assert_eq!(events, [("shop.order.placed.v1".into(), 1), ("shop.order.confirmed.v1".into(), 2)]);
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_names_stay_unknown_past_the_priced_wait_is_answered_pending_then_decided_by_the_validator()
 {
    // Arrange
    let broker = TestBroker::start().await;
    let app = spawn_priced_app(&broker, 300).await;
    consuming(&broker, &app).await;
    let (ada, kettle) = (Uuid::now_v7(), Uuid::now_v7());

    // Act: the order comes before the projection hears of its account and product, which come after the wait.
    let started = std::time::Instant::now();
    let placed = app.client.post_order(&ada.to_string(), &[(&kettle.to_string(), 3)]).await.unwrap();
    let answered_after = started.elapsed();
    publish(&broker, &account(ada, 1, "Ada")).await;
    publish(&broker, &ProductCreated { product: product(kettle, 1, "Kettle", 2_499) }).await;
    let order = settled(&app.client, &placed.id).await;

    // Assert
    assert_eq!(placed.status(), OrderStatus::Pending);
    assert!(placed.lines.iter().all(|line| line.product.is_none()));
    assert!(answered_after >= Duration::from_millis(300), "answered after {answered_after:?}");
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.total_price_cents, Some(3 * 2_499));
    assert_decided_once(&app, &placed.id, "shop.order.confirmed.v1").await;
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_racing_the_projection_are_each_decided_once_by_the_request_or_by_the_validator() {
    // Arrange: orders arriving every 10 ms for 400 ms, for an account and product published after 150 ms; each
    // waits 200 ms at most for them, so the early ones are left to the validator and the late ones answered priced.
    let broker = TestBroker::start().await;
    let app = spawn_priced_app(&broker, 200).await;
    consuming(&broker, &app).await;
    let (ada, kettle) = (Uuid::now_v7(), Uuid::now_v7());

    // Act
    let orders = (0..40_u64).map(|i| {
        let client = app.client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * i)).await;
            client.post_order(&ada.to_string(), &[(&kettle.to_string(), 1)]).await.unwrap()
        })
    });
    let orders = futures::future::join_all(orders);
    let names = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        publish(&broker, &account(ada, 1, "Ada")).await;
        publish(&broker, &ProductCreated { product: product(kettle, 1, "Kettle", 2_499) }).await;
    };
    let (answers, ()) = tokio::join!(orders, names);
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    for answer in &answers {
        settled(&app.client, &answer.id).await;
    }

    // Assert: every order confirmed, by one decision, whichever answer its client had.
    let decisions = decisions(&app).await;
    let priced = answers.iter().filter(|answer| answer.status() == OrderStatus::Confirmed).count();
    assert_eq!(decisions.len(), 40, "{priced} of 40 answered priced");
    for answer in &answers {
        let id: Uuid = answer.id.parse().unwrap();
        assert_eq!(decisions[&id], [("shop.order.confirmed.v1".to_owned(), 2)], "order {id}");
        assert!(matches!(answer.status(), OrderStatus::Confirmed | OrderStatus::Pending));
    }
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_priced_answer_an_order_is_answered_pending_then_confirmed_and_priced_from_the_projection()
{
    // Arrange
    let broker = TestBroker::start().await;
    let app = spawn_priced_app(&broker, 0).await;
    consuming(&broker, &app).await;
    let (ada, kettle, mug) = publish_ada_a_kettle_and_a_mug(&broker).await;

    // Act
    let placed = order_two_kettles_and_a_mug(&app, ada, kettle, mug).await;
    let order = settled(&app.client, &placed.id).await;

    // Assert
    assert_eq!(placed.status(), OrderStatus::Pending);
    assert!(placed.lines.iter().all(|line| line.product.is_none()));
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.total_price_cents, Some(2 * 2_499 + 899));
    assert_eq!(order.lines[0].product.as_ref().unwrap().name, "Kettle");
    let events: Vec<(String, i64)> = outbox_rows(&app.database.pool)
        .await
        .into_iter()
        .map(|row| (row.event_type, row.aggregate_version))
        .collect();
    assert_eq!(events, [("shop.order.placed.v1".into(), 1), ("shop.order.confirmed.v1".into(), 2)]);
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_naming_an_unknown_product_is_rejected_with_its_reason_after_the_wait() {
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 1_000).await;
    let (ada, kettle, ghost) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    publish(&broker, &account(ada, 1, "Ada")).await;
    publish(&broker, &ProductCreated { product: product(kettle, 1, "Kettle", 2_499) }).await;
    projected(&app, kettle, 1).await;

    let placed = app
        .client
        .post_order(&ada.to_string(), &[(&kettle.to_string(), 1), (&ghost.to_string(), 1)])
        .await
        .unwrap();
    // The relay's word that everything committed until now is on Kafka, which the projection has consumed.
    publish_heartbeat(&broker, "test-outbox", now()).await;
    let order = settled(&app.client, &placed.id).await;

    assert_eq!(order.status(), OrderStatus::Rejected);
    assert_eq!(order.rejection_reason, format!("unknown products: {ghost}"));
    assert_eq!(order.total_price_cents, None);
    let rejected = outbox_rows(&app.database.pool).await.pop().unwrap();
    assert_eq!(rejected.event_type, "shop.order.rejected.v1");
    assert_eq!(rejected.payload["order"]["rejection_reason"], format!("unknown products: {ghost}"));
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_waits_for_a_lagging_projection_instead_of_rejecting_at_once() {
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 20_000).await;
    let (ada, kettle) = (Uuid::now_v7(), Uuid::now_v7());

    // The order arrives before the projection has heard of the account or the product.
    let placed = app.client.post_order(&ada.to_string(), &[(&kettle.to_string(), 1)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.client.get_order(&placed.id).await.unwrap().status(), OrderStatus::Pending);
    publish(&broker, &account(ada, 1, "Ada")).await;
    publish(&broker, &ProductCreated { product: product(kettle, 1, "Kettle", 2_499) }).await;

    assert_eq!(settled(&app.client, &placed.id).await.status(), OrderStatus::Confirmed);
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_event_and_an_older_version_after_a_newer_one_leave_the_projection_unchanged() {
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 10_000).await;
    let kettle = Uuid::now_v7();
    let (v1, v2) = (product(kettle, 1, "Kettle", 2_499), product(kettle, 2, "Kettle", 1_999));

    publish(&broker, &ProductCreated { product: v1.clone() }).await;
    publish(&broker, &ProductUpdated { product: v2.clone() }).await;
    publish(&broker, &ProductUpdated { product: v2.clone() }).await;
    publish(&broker, &ProductCreated { product: v1 }).await;
    // A marker after them: once it is in, everything before it has been applied.
    let marker = Uuid::now_v7();
    publish(&broker, &ProductCreated { product: product(marker, 1, "Marker", 1) }).await;
    projected(&app, marker, 1).await;

    let row: (String, i64, i64) =
        sqlx::query_as("SELECT description, price_cents, version FROM product_projection WHERE id = $1")
            .bind(kettle)
            .fetch_one(&app.database.pool)
            .await
            .unwrap();
    assert_eq!(row, ("Kettle, v2".into(), 1_999, 2));
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_skipped_and_counted_and_the_consumer_keeps_going() {
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 10_000).await;
    let kettle = Uuid::now_v7();

    broker
        .produce(
            &broker.topic("shop.products.v1"),
            "poison",
            &[("ce_type", "shop.product.created.v1".into())],
            b"{not json",
        )
        .await;
    publish(&broker, &ProductCreated { product: product(kettle, 1, "Kettle", 2_499) }).await;
    projected(&app, kettle, 1).await;

    let skipped: Vec<(String, String)> =
        sqlx::query_as("SELECT topic, reason FROM projection_skipped WHERE projection = 'order.directory'")
            .fetch_all(&app.database.pool)
            .await
            .unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, "shop.products.v1");
    assert!(skipped[0].1.contains("shop.product.created.v1"), "{}", skipped[0].1);
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_validators_never_validate_the_same_order_twice() {
    // Arrange: a migrated database (the service itself stopped), and 200 pending orders whose account and product
    // the projection knows.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 60_000).await;
    app.server.stop().await.unwrap();
    let (ada, kettle) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query("INSERT INTO account_projection VALUES ($1, 'Ada', 1, now())")
        .bind(ada)
        .execute(&app.database.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO product_projection VALUES ($1, 'Kettle', '', 2499, 1, now())")
        .bind(kettle)
        .execute(&app.database.pool)
        .await
        .unwrap();
    let pool = app.database.pool.clone();
    place_pending(&pool, ada, &[kettle; 200]).await;

    // Act: four validators at once.
    let validators = (0..4).map(|_| {
        let validator = projection_validator(&pool);
        tokio::spawn(async move { validator.validate_pending().await.unwrap() })
    });
    let decided: usize = futures::future::join_all(validators).await.into_iter().map(Result::unwrap).sum();

    // Assert
    assert_eq!(decided, 200);
    assert_eq!(count_rows(&pool, "orders WHERE status = 'confirmed'").await, 200);
    let transitions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'shop.order.confirmed.v1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(transitions, 200, "each order confirmed exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_on_the_products_topic_are_passed_over_and_later_orders_are_confirmed() {
    // Arrange: a record whose ce_type holds a NUL, then a well-formed product event with a negative price.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 10_000).await;
    let forged = shop_events::Envelope::new(
        &ProductCreated { product: product(Uuid::now_v7(), 1, "Forged", 100) },
        None,
    );
    let mut headers = forged.metadata().headers();
    for (name, value) in &mut headers {
        if *name == shop_events::cloudevents::TYPE {
            *value = "shop.product.created\0.v1".into();
        }
    }
    let payload = serde_json::to_vec(&forged.payload).unwrap();
    broker.produce(&broker.topic(&forged.topic), &forged.aggregate_id.to_string(), &headers, &payload).await;
    publish(&broker, &ProductCreated { product: product(Uuid::now_v7(), 1, "Negative", -500) }).await;
    // Created afterwards.
    let (ada, kettle) = (Uuid::now_v7(), Uuid::now_v7());
    publish(&broker, &account(ada, 1, "Ada")).await;
    publish(&broker, &ProductCreated { product: product(kettle, 1, "Kettle", 2_499) }).await;

    // Act
    let placed = app.client.post_order(&ada.to_string(), &[(&kettle.to_string(), 1)]).await.unwrap();
    let order = settled(&app.client, &placed.id).await;

    // Assert
    assert_eq!(order.status(), OrderStatus::Confirmed);
    eventually(Duration::from_secs(10), "the position past all three product records", || async {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT sum(next_offset)::bigint FROM projection_offsets
             WHERE projection = 'order.directory' AND topic = 'shop.products.v1'",
        )
        .fetch_one(&app.database.pool)
        .await
        .unwrap();
        next == Some(3)
    })
    .await;
    let mut skipped: Vec<(Option<String>, String, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT event_type, reason, key FROM projection_skipped WHERE projection = 'order.directory'",
    )
    .fetch_all(&app.database.pool)
    .await
    .unwrap();
    skipped.sort();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0.as_deref(), Some("shop.product.created.v1"));
    assert!(skipped[0].1.contains("price_cents must not be negative"), "{}", skipped[0].1);
    assert_eq!(skipped[1].0.as_deref(), Some("shop.product.created\u{FFFD}.v1"));
    assert_eq!(skipped[1].2.as_deref(), Some(forged.aggregate_id.to_string().as_bytes()));
    assert_eq!(count_rows(&app.database.pool, "product_projection").await, 1);
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_priced_answer_the_database_refuses_is_stored_pending_and_rejected_by_the_validator() {
    // Arrange: a negative price in the projection, as stored before the projection checked prices (the CHECK is
    // dropped to put it there); the order service answers priced orders.
    let broker = TestBroker::start().await;
    let app = spawn_priced_app(&broker, 500).await;
    let pool = app.database.pool.clone();
    let (ada, broken) = (Uuid::now_v7(), Uuid::now_v7());
    project_unchecked(&pool, ada, &[(broken, "Broken", -500)]).await;

    // Act
    let placed = app.client.post_order(&ada.to_string(), &[(&broken.to_string(), 1)]).await.unwrap();
    let order = settled(&app.client, &placed.id).await;

    // Assert: not lost, and decided once, by the validator.
    assert_eq!(placed.status(), OrderStatus::Pending);
    assert_eq!(order.status(), OrderStatus::Rejected);
    assert_eq!(order.rejection_reason, shop_order::validation::REFUSED_REASON);
    assert_decided_once(&app, &placed.id, "shop.order.rejected.v1").await;
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_database_refuses_is_rejected_and_the_other_orders_of_the_pass_are_confirmed() {
    // Arrange: a negative price in the projection, as stored before the projection checked prices (the CHECK is
    // dropped to put it there), and an order for it placed before an order for a sound product.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 60_000).await;
    app.server.stop().await.unwrap();
    let pool = app.database.pool.clone();
    let (ada, broken, kettle) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    project_unchecked(&pool, ada, &[(broken, "Broken", -500), (kettle, "Kettle", 2_499)]).await;
    let placed = place_pending(&pool, ada, &[broken, kettle]).await;

    // Act
    let decided = projection_validator(&pool).validate_pending().await;

    // Assert
    assert_eq!(decided.unwrap(), 2);
    let statuses: Vec<(Uuid, String, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT id, status, rejection_reason, total_price_cents FROM orders WHERE id = ANY($1) ORDER BY id",
    )
    .bind(&placed)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        statuses,
        [
            (placed[0], "rejected".into(), Some(shop_order::validation::REFUSED_REASON.into()), None),
            (placed[1], "confirmed".into(), None, Some(2_499)),
        ]
    );
    let events: Vec<(Uuid, String)> = outbox_rows(&pool)
        .await
        .into_iter()
        .filter(|row| row.event_type != "shop.order.placed.v1")
        .map(|row| (row.aggregate_id, row.event_type))
        .collect();
    assert_eq!(
        events,
        [(placed[0], "shop.order.rejected.v1".into()), (placed[1], "shop.order.confirmed.v1".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_orders_are_decided_in_one_pass_when_the_database_refuses_one_in_their_batch() {
    // Arrange: five pending orders, the third for a negative price (stored with the CHECK dropped, as before the
    // projection checked prices): the database refuses its confirmation after the first two were written.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 60_000).await;
    app.server.stop().await.unwrap();
    let pool = app.database.pool.clone();
    let (ada, broken, kettle) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    project_unchecked(&pool, ada, &[(broken, "Broken", -500), (kettle, "Kettle", 2_499)]).await;
    let placed = place_pending(&pool, ada, &[kettle, kettle, broken, kettle, kettle]).await;

    // Act
    let decided = projection_validator(&pool).validate_pending().await;

    // Assert: the refused order rejected, the others confirmed, each decided by one event (the first attempt at
    // the batch rolled back, not written twice).
    assert_eq!(decided.unwrap(), 5);
    let statuses: Vec<(Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT id, status, rejection_reason FROM orders WHERE id = ANY($1) ORDER BY id")
            .bind(&placed)
            .fetch_all(&pool)
            .await
            .unwrap();
    let confirmed = |id: Uuid| (id, "confirmed".to_owned(), None);
    let rejected =
        (placed[2], "rejected".to_owned(), Some(shop_order::validation::REFUSED_REASON.to_owned()));
    assert_eq!(
        statuses,
        [confirmed(placed[0]), confirmed(placed[1]), rejected, confirmed(placed[3]), confirmed(placed[4])]
    );
    let events: Vec<(Uuid, String, i64)> = outbox_rows(&pool)
        .await
        .into_iter()
        .filter(|row| row.event_type != "shop.order.placed.v1")
        .map(|row| (row.aggregate_id, row.event_type, row.aggregate_version))
        .collect();
    let decided = |index: usize, decision: &str| (placed[index], format!("shop.order.{decision}.v1"), 2);
    assert_eq!(
        events,
        [
            decided(0, "confirmed"),
            decided(1, "confirmed"),
            decided(2, "rejected"),
            decided(3, "confirmed"),
            decided(4, "confirmed"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_answers_for_a_batch_of_orders_what_it_answers_for_each_order_alone() {
    // Arrange: Ada's account (owned by her) and a kettle and a mug in the projection; orders for her account by
    // her and by Grace, one naming an unknown product, one for an unknown account.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 60_000).await;
    app.server.stop().await.unwrap();
    let pool = app.database.pool.clone();
    let (ada, kettle, mug, ghost) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    sqlx::query(
        "INSERT INTO account_projection (id, name, version, updated_at, owner)
         VALUES ($1, 'Ada', 1, now(), 'auth0|ada')",
    )
    .bind(ada)
    .execute(&pool)
    .await
    .unwrap();
    for (id, name) in [(kettle, "Kettle"), (mug, "Mug")] {
        sqlx::query("INSERT INTO product_projection VALUES ($1, $2, '', 2499, 1, now())")
            .bind(id)
            .bind(name)
            .execute(&pool)
            .await
            .unwrap();
    }
    let order = |account: Uuid, products: &[Uuid], by: &str| {
        let ids: Vec<String> = products.iter().map(Uuid::to_string).collect();
        let new_order = NewOrder::parse(&account.to_string(), ids.iter().map(|id| (&**id, 1))).unwrap();
        Order::place(new_order.by(PlacedBy::Customer(by.into()))).0
    };
    let orders = [
        order(ada, &[kettle, mug], "auth0|ada"),
        order(ada, &[kettle], "auth0|grace"),
        order(ada, &[mug, ghost], "auth0|ada"),
        order(ghost, &[kettle], "auth0|ada"),
    ];
    let trace = TraceContext::new_root();
    let directory = ProjectionDirectory::new(pool.clone());

    // Act: asked for the batch, then for each order alone.
    let batch: Vec<(&Order, &TraceContext)> = orders.iter().map(|order| (order, &trace)).collect();
    let together = directory.names_of_each(&batch).await.unwrap();
    let mut alone = Vec::new();
    for order in &orders {
        alone.push(directory.names(order.account_id, &order.product_ids(), &trace).await.unwrap());
    }

    // Assert
    assert_eq!(together, alone);
    let held: Vec<(bool, usize)> =
        together.iter().map(|names| (names.account.is_some(), names.products.len())).collect();
    assert_eq!(held, [(true, 2), (true, 1), (true, 1), (false, 1)], "what the projection holds of each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_tables_refuse_what_the_account_and_catalog_services_refuse() {
    // Arrange
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 60_000).await;
    app.server.stop().await.unwrap();
    let long = |chars: usize| "n".repeat(chars);
    let products = [
        ("Kettle".to_owned(), String::new(), -1_i64, 1_i64),
        (" ".to_owned(), String::new(), 100, 1),
        (long(201), String::new(), 100, 1),
        ("Kettle".to_owned(), long(5_001), 100, 1),
        ("Kettle".to_owned(), String::new(), 100, 0),
    ];
    let accounts = [(" ".to_owned(), 1_i64), (long(101), 1), ("Ada".to_owned(), 0)];

    // Act
    let mut refusals = Vec::new();
    for (name, description, price, version) in products {
        let result = sqlx::query("INSERT INTO product_projection VALUES ($1, $2, $3, $4, $5, now())")
            .bind(Uuid::now_v7())
            .bind(name)
            .bind(description)
            .bind(price)
            .bind(version)
            .execute(&app.database.pool)
            .await;
        refusals.push(result.map(drop));
    }
    for (name, version) in accounts {
        let result = sqlx::query("INSERT INTO account_projection VALUES ($1, $2, $3, now())")
            .bind(Uuid::now_v7())
            .bind(name)
            .bind(version)
            .execute(&app.database.pool)
            .await;
        refusals.push(result.map(drop));
    }

    // Assert: every row refused by a CHECK (SQLSTATE 23514), and a sound one accepted.
    for refusal in refusals {
        let error = refusal.expect_err("a row no owner would hold");
        let code = error.as_database_error().and_then(|error| error.code()).map(|code| code.into_owned());
        assert_eq!(code.as_deref(), Some("23514"), "{error}");
    }
    sqlx::query("INSERT INTO product_projection VALUES ($1, $2, $3, 0, 1, now())")
        .bind(Uuid::now_v7())
        .bind(long(200))
        .bind(long(5_000))
        .execute(&app.database.pool)
        .await
        .unwrap();
}
