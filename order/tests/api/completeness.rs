//! "Not yet" is not "no": an order naming an account or product the projection does not hold is rejected only once
//! the projection is known to hold everything committed before the order; a lagging relay or projection keeps it
//! pending instead. And the parts that feed the projection wait out a Kafka that cannot be reached.

use std::{sync::Arc, time::Duration};

use shop_events::{
    account::{Account, AccountCreated},
    envelope::now,
};
use shop_order::{
    config::{Settings, ValidationMode},
    domain::NewOrder,
    projection::ProjectionDirectory,
    service::{OrderService, Placement},
};
use shop_proto::order::v1::OrderStatus;
use shop_testkit::{TestDatabase, eventually, kafka::TestBroker, proxy::KafkaProxy, spawn_service};
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;

use crate::helpers::{
    health, kettle, projection_settings, publish, publish_heartbeat, settled, spawn_app, spawn_order_service,
    spawn_projection_app,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_for_an_unknown_account_stays_pending_until_the_projection_is_known_complete_past_it() {
    // Arrange: the projection knows the kettle, and nothing says it holds everything yet.
    let broker = TestBroker::start().await;
    let app = spawn_projection_app(&broker, 500).await;
    let product = Uuid::now_v7();
    publish(&broker, &kettle(product)).await;
    let ghost = Uuid::now_v7();

    // Act
    let placed = app.client.post_order(&ghost.to_string(), &[(&product.to_string(), 1)]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_the_wait = app.client.get_order(&placed.id).await.unwrap().status();
    publish_heartbeat(&broker, "test-outbox", now()).await;

    // Assert
    assert_eq!(after_the_wait, OrderStatus::Pending, "waited past ORDER_PROJECTION_WAIT_MS, still pending");
    let order = settled(&app.client, &placed.id).await;
    assert_eq!(order.status(), OrderStatus::Rejected);
    assert_eq!(order.rejection_reason, format!("unknown account {ghost}"));
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "cuts the relay off through the proxy, which fronts a single broker")]
async fn an_order_placed_while_the_relay_is_cut_off_waits_for_its_account_and_is_confirmed_once_it_is_back() {
    // Arrange: account and catalog services, the relay of their outboxes reaching Kafka through a proxy, and the
    // order service validating from its projection.
    let broker = TestBroker::start().await;
    let (account_database, catalog_database) = (TestDatabase::create().await, TestDatabase::create().await);
    let (account_url, _account_server) = spawn_service!(shop_account, account_database);
    let (catalog_url, _catalog_server) = spawn_service!(shop_catalog, catalog_database);
    let proxy = KafkaProxy::start(&broker.bootstrap).await;
    let mut relay_settings = shop_relay::config::Settings {
        database_urls: vec![account_database.url.parse().unwrap(), catalog_database.url.parse().unwrap()],
        database: Default::default(),
        kafka: shop_platform::kafka::KafkaSettings {
            kafka_topic_prefix: broker.topic_prefix.clone(),
            ..shop_platform::kafka::KafkaSettings::new(proxy.bootstrap())
        },
        relay: shop_relay::config::RelaySettings {
            lease_ttl_ms: 2_000,
            poll_interval_ms: 200,
            heartbeat_interval_ms: 200,
            ..Default::default()
        },
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        telemetry: Default::default(),
    };
    relay_settings.kafka.kafka_options.push("reconnect.backoff.max.ms=200".parse().unwrap());
    let relay = shop_relay::startup::Application::build(&relay_settings).await.unwrap();
    let _relay = shop_testkit::RunningServer::spawn(|shutdown| relay.run_until_stopped(shutdown));
    let order_database = TestDatabase::create().await;
    let settings = projection_settings(&order_database, &broker, &broker.bootstrap, 1_000);
    let orders = spawn_order_service(order_database, &settings).await;
    let accounts = shop_account::grpc::client::AccountClient::connect(account_url).await.unwrap();
    let catalog = shop_catalog::grpc::client::CatalogClient::connect(catalog_url).await.unwrap();
    let kettle = catalog.post_product("Kettle", "Boils water.", 2_499).await.unwrap().id;
    // With heartbeats flowing, an order for an account that does not exist is rejected.
    let ghost = orders.client.post_order(&Uuid::now_v7().to_string(), &[(&kettle, 1)]).await.unwrap();
    assert_eq!(settled(&orders.client, &ghost.id).await.status(), OrderStatus::Rejected);

    // Act: the relay is cut off while an account is opened and an order placed for it.
    proxy.cut();
    let ada = accounts.post_account("Ada").await.unwrap().id;
    let placed = orders.client.post_order(&ada, &[(&kettle, 2)]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let while_cut = orders.client.get_order(&placed.id).await.unwrap().status();
    proxy.heal();

    // Assert
    assert_eq!(while_cut, OrderStatus::Pending, "waited past ORDER_PROJECTION_WAIT_MS, still pending");
    let order = settled(&orders.client, &placed.id).await;
    assert_eq!(order.status(), OrderStatus::Confirmed, "{:?}", order.rejection_reason);
    assert_eq!(order.total_price_cents, Some(2 * 2_499));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    external_kafka,
    ignore = "cuts the order service off through the proxy, which fronts a single broker"
)]
async fn the_order_service_started_while_kafka_is_unreachable_says_so_then_confirms_orders_once_it_is_back() {
    // Arrange: Kafka cannot be reached when the order service starts.
    let broker = TestBroker::start().await;
    let proxy = KafkaProxy::start(&broker.bootstrap).await;
    proxy.cut();
    let database = TestDatabase::create().await;
    let settings: Settings = projection_settings(&database, &broker, &proxy.bootstrap(), 10_000);
    let app = spawn_order_service(database, &settings).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let consumer_while_cut = health(&app.url, "order.directory").await;
    let server_while_cut = health(&app.url, "").await;

    // Act: Kafka comes back; an account and a product are published, and an order placed.
    proxy.heal();
    let (ada, product) = (Uuid::now_v7(), Uuid::now_v7());
    let account = AccountCreated {
        account: Account { id: ada, name: "Ada".into(), version: 1, created_at: now(), owner: None },
    };
    publish(&broker, &account).await;
    publish(&broker, &kettle(product)).await;
    let placed = app.client.post_order(&ada.to_string(), &[(&product.to_string(), 1)]).await.unwrap();

    // Assert
    assert_eq!(consumer_while_cut, ServingStatus::NotServing);
    assert_eq!(server_while_cut, ServingStatus::NotServing);
    assert_eq!(
        health(&app.url, "shop.order.v1.OrderService").await,
        ServingStatus::Serving,
        "orders are taken"
    );
    assert_eq!(settled(&app.client, &placed.id).await.status(), OrderStatus::Confirmed);
    eventually(Duration::from_secs(20), "the consumer to report serving", || async {
        health(&app.url, "order.directory").await == ServingStatus::Serving
    })
    .await;
    app.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_left_pending_by_projection_mode_are_validated_over_grpc_in_grpc_mode() {
    // Arrange: a service in grpc mode, and two orders left pending in its database by an earlier run in
    // projection mode.
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    let earlier_run = OrderService::new(
        app.database.pool.clone(),
        ProjectionDirectory::new(app.database.pool.clone()),
        Placement::deferred(Arc::default()),
    );
    let trace = shop_events::TraceContext::new_root();
    let ghost = Uuid::now_v7().to_string();
    let mut placed = Vec::new();
    for account in [&account, &ghost] {
        let new_order = NewOrder::parse(account, [(kettle.as_str(), 1)]).unwrap();
        placed.push(earlier_run.place_order(new_order, &trace).await.unwrap().id.to_string());
    }

    // Act
    let (confirmed, rejected) =
        (settled(&app.client, &placed[0]).await, settled(&app.client, &placed[1]).await);

    // Assert
    assert_eq!(confirmed.status(), OrderStatus::Confirmed);
    assert_eq!(confirmed.total_price_cents, Some(2_499));
    assert_eq!(rejected.status(), OrderStatus::Rejected);
    assert_eq!(rejected.rejection_reason, format!("unknown account {ghost}"));
}

#[test]
fn grpc_mode_decides_leftovers_at_once_and_projection_mode_waits() {
    let projection = Settings { validation: ValidationMode::Projection, ..Default::default() };
    let grpc = Settings { validation: ValidationMode::Grpc, ..Default::default() };

    assert_eq!(grpc.validation_settings().reject_after, Duration::ZERO);
    assert_eq!(
        projection.validation_settings().reject_after,
        Duration::from_millis(projection.projection_wait_ms)
    );
}
