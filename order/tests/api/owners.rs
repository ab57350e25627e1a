//! Defence in depth behind the gateway: an order placed with a customer's identity may name only the account that
//! customer owns. Another's account (or one nobody owns) is answered exactly as a missing one, in both validation
//! modes, and nothing is stored; staff, and callers without an identity, may order for any account.

use std::time::Duration;

use shop_events::{
    account::{Account, AccountCreated},
    envelope::now,
};
use shop_order::config::Settings;
use shop_platform::identity::{Identity, ROLE, Role, SUBJECT};
use shop_proto::order::v1::{LineItem, OrderStatus, PostOrderRequest};
use shop_testkit::{TestDatabase, count_rows, eventually, init_test_logging, kafka::TestBroker, outbox_rows};
use tonic::{Code, Request, metadata::MetadataValue};
use uuid::Uuid;

use crate::helpers::{
    ProjectionApp, kettle, projection_settings, publish, publish_heartbeat, settled, spawn_app,
    spawn_order_service,
};

fn customer(subject: &str) -> Identity {
    Identity { subject: subject.to_owned(), role: Role::Customer }
}

fn staff() -> Identity {
    Identity { subject: "ops|7".to_owned(), role: Role::Staff }
}

/// No order, line or event was stored.
async fn assert_nothing_stored(pool: &sqlx::PgPool) {
    assert_eq!(count_rows(pool, "orders").await, 0);
    assert_eq!(count_rows(pool, "order_lines").await, 0);
    assert_eq!(count_rows(pool, "outbox").await, 0);
}

/// Who placed the order, as stored.
async fn placed_by(pool: &sqlx::PgPool, order_id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT placed_by FROM orders WHERE id = $1")
        .bind(order_id.parse::<Uuid>().unwrap())
        .fetch_one(pool)
        .await
        .unwrap()
}

// --- grpc mode: the account service says who owns the account.

#[tokio::test]
async fn in_grpc_mode_a_customers_order_for_anothers_or_an_unowned_account_is_not_found_as_a_missing_one() {
    // Arrange: Ada's account, an account opened without an identity, and a kettle.
    let app = spawn_app().await;
    let adas = app.accounts.post_account_as("Ada", &customer("auth0|ada")).await.unwrap().id;
    let unowned = app.accounts.post_account("Walk-in").await.unwrap().id;
    let kettle = app.catalog.post_product("Kettle", "Boils water.", 2_499).await.unwrap().id;
    let missing = Uuid::now_v7().to_string();

    for account in [&adas, &unowned, &missing] {
        // Act
        let status =
            app.client.post_order_as(&customer("auth0|grace"), account, &[(&kettle, 1)]).await.unwrap_err();

        // Assert: the same code and message whether the account is another's, nobody's or missing.
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(status.message(), format!("account {account} does not exist"));
    }
    assert_nothing_stored(&app.database.pool).await;
}

#[tokio::test]
async fn in_grpc_mode_the_owner_staff_and_a_caller_without_identity_may_order_for_an_owned_account() {
    // Arrange
    let app = spawn_app().await;
    let adas = app.accounts.post_account_as("Ada", &customer("auth0|ada")).await.unwrap().id;
    let kettle = app.catalog.post_product("Kettle", "Boils water.", 2_499).await.unwrap().id;

    // Act
    let by_ada = app.client.post_order_as(&customer("auth0|ada"), &adas, &[(&kettle, 1)]).await.unwrap();
    let by_staff = app.client.post_order_as(&staff(), &adas, &[(&kettle, 1)]).await.unwrap();
    let by_nobody = app.client.post_order(&adas, &[(&kettle, 1)]).await.unwrap();

    // Assert
    for order in [&by_ada, &by_staff, &by_nobody] {
        assert_eq!(order.status(), OrderStatus::Confirmed);
    }
    assert_eq!(placed_by(&app.database.pool, &by_ada.id).await.as_deref(), Some("auth0|ada"));
    assert_eq!(placed_by(&app.database.pool, &by_staff.id).await, None, "staff orders are unrestricted");
    assert_eq!(count_rows(&app.database.pool, "orders").await, 3);
}

#[tokio::test]
async fn post_order_with_malformed_identity_metadata_is_invalid_argument_and_stores_nothing() {
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    let request = |entries: &[(&'static str, &'static str)]| {
        let message = PostOrderRequest {
            account_id: account.clone(),
            lines: vec![LineItem { product_id: kettle.clone(), quantity: 1 }],
            ..Default::default()
        };
        let mut request = Request::new(message);
        for (key, value) in entries {
            request.metadata_mut().insert(*key, MetadataValue::from_static(value));
        }
        request
    };
    let cases = [
        ("a role without a subject", request(&[(ROLE, "customer")])),
        ("an unknown role", request(&[(SUBJECT, "auth0|ada"), (ROLE, "admin")])),
    ];

    for (case, request) in cases {
        let status = app.client.raw().post_order(request).await.unwrap_err();

        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    }
    assert_nothing_stored(&app.database.pool).await;
}

// --- projection mode: the order service's own projection says who owns the account.

fn account(id: Uuid, owner: &str) -> AccountCreated {
    let account =
        Account { id, name: "Ada".into(), version: 1, created_at: now(), owner: Some(owner.into()) };
    AccountCreated { account }
}

/// The order service in projection mode, rejecting unknown names after `wait_ms` and answering priced orders
/// within `priced_wait_ms`.
async fn spawn_projection_app(broker: &TestBroker, wait_ms: u64, priced_wait_ms: u64) -> ProjectionApp {
    init_test_logging();
    let database = TestDatabase::create().await;
    let settings = Settings {
        priced_answer_wait_ms: priced_wait_ms,
        ..projection_settings(&database, broker, &broker.bootstrap, wait_ms)
    };
    spawn_order_service(database, &settings).await
}

/// Waits until the projection holds `product`.
async fn projected_product(app: &ProjectionApp, product: Uuid) {
    eventually(Duration::from_secs(30), "the product in the projection", || async {
        count_rows(&app.database.pool, &format!("product_projection WHERE id = '{product}'")).await == 1
    })
    .await;
}

/// Waits until the projection holds `account`, owned by `owner`.
async fn projected_account(app: &ProjectionApp, account: Uuid, owner: &str) {
    eventually(Duration::from_secs(30), "the account and its owner in the projection", || async {
        let found: Option<Option<String>> =
            sqlx::query_scalar("SELECT owner FROM account_projection WHERE id = $1")
                .bind(account)
                .fetch_optional(&app.database.pool)
                .await
                .unwrap();
        found.flatten().as_deref() == Some(owner)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_projection_mode_a_customers_order_for_an_account_the_projection_holds_as_anothers_is_not_found_at_once()
 {
    // Arrange: the projection holds Ada's account (owned by her subject) and a kettle.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 10_000, 500).await;
    let (adas, kettle_id) = (Uuid::now_v7(), Uuid::now_v7());
    publish(&broker, &account(adas, "auth0|ada")).await;
    publish(&broker, &kettle(kettle_id)).await;
    projected_account(&app, adas, "auth0|ada").await;
    projected_product(&app, kettle_id).await;
    let (adas, kettle_id) = (adas.to_string(), kettle_id.to_string());

    // Act
    let refused =
        app.client.post_order_as(&customer("auth0|grace"), &adas, &[(&kettle_id, 1)]).await.unwrap_err();

    // Assert: answered as a missing account, and nothing stored.
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(refused.message(), format!("account {adas} does not exist"));
    assert_nothing_stored(&app.database.pool).await;

    // The owner, staff, and a caller without identity are served, and their orders confirmed.
    let by_ada = app.client.post_order_as(&customer("auth0|ada"), &adas, &[(&kettle_id, 1)]).await.unwrap();
    let by_staff = app.client.post_order_as(&staff(), &adas, &[(&kettle_id, 1)]).await.unwrap();
    let by_nobody = app.client.post_order(&adas, &[(&kettle_id, 1)]).await.unwrap();
    for order in [&by_ada, &by_staff, &by_nobody] {
        assert_eq!(settled(&app.client, &order.id).await.status(), OrderStatus::Confirmed);
    }
    assert_eq!(placed_by(&app.database.pool, &by_ada.id).await.as_deref(), Some("auth0|ada"));
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_projection_mode_a_customers_order_for_an_account_that_arrives_as_anothers_is_rejected_as_unknown()
{
    // Arrange: a consuming projection that holds a kettle, but not yet the account the order names.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 1_000, 2_000).await;
    let (adas, kettle_id) = (Uuid::now_v7(), Uuid::now_v7());
    publish(&broker, &kettle(kettle_id)).await;
    projected_product(&app, kettle_id).await;

    // Act: Grace orders for it; while `PostOrder` waits for a priced answer, the account arrives as Ada's.
    let placing = {
        let client = app.client.clone();
        let (adas, kettle_id) = (adas.to_string(), kettle_id.to_string());
        tokio::spawn(async move {
            client.post_order_as(&customer("auth0|grace"), &adas, &[(&kettle_id, 1)]).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish(&broker, &account(adas, "auth0|ada")).await;
    projected_account(&app, adas, "auth0|ada").await;
    assert!(!placing.is_finished(), "the account arrived during the priced answer's wait");
    let placed = placing.await.unwrap();
    // The relay's word that everything committed until now is on Kafka, which the projection has consumed.
    publish_heartbeat(&broker, "test-outbox", now()).await;
    let order = settled(&app.client, &placed.id).await;

    // Assert: not confirmed by the priced answer; kept pending with who placed it, then rejected exactly as an
    // order for an unknown account is.
    assert_eq!(placed.status(), OrderStatus::Pending);
    assert_eq!(placed_by(&app.database.pool, &placed.id).await.as_deref(), Some("auth0|grace"));
    assert_eq!(order.status(), OrderStatus::Rejected);
    assert_eq!(order.rejection_reason, format!("unknown account {adas}"));
    let events: Vec<(String, i64)> = outbox_rows(&app.database.pool)
        .await
        .into_iter()
        .map(|row| (row.event_type, row.aggregate_version))
        .collect();
    assert_eq!(events, [("shop.order.placed.v1".into(), 1), ("shop.order.rejected.v1".into(), 2)]);
    app.server.stop().await.unwrap();
}
