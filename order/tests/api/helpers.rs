use std::time::Duration;

use shop_account::grpc::client::AccountClient;
use shop_catalog::grpc::client::CatalogClient;
use shop_order::{
    config::{Settings, ValidationMode},
    grpc::client::OrderClient,
    startup::Application,
};
use shop_testkit::{
    RunningServer, TestDatabase, eventually, init_test_logging, kafka::TestBroker, spawn_service,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A fresh order database, migrated, with no service running on it.
pub(crate) async fn migrated_database() -> (TestDatabase, sqlx::PgPool) {
    init_test_logging();
    let database = TestDatabase::create().await;
    let settings = Settings { database_url: database.url.parse().unwrap(), ..Default::default() };
    let pool = shop_order::database::connect(&settings).await.unwrap();
    (database, pool)
}

/// A running order service, and the account and catalog services it validates orders against.
pub(crate) struct TestApp {
    pub(crate) database: TestDatabase,
    pub(crate) client: OrderClient,
    pub(crate) accounts: AccountClient,
    pub(crate) catalog: CatalogClient,
    /// Where the order service listens.
    pub(crate) url: String,
    /// The order service's settings (the account and catalog services' URLs among them), for replicas.
    pub(crate) settings: Settings,
    account_server: Option<RunningServer>,
    catalog_server: Option<RunningServer>,
    _order_server: RunningServer,
    _dependency_databases: [TestDatabase; 2],
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The same, with the order service's settings changed by `configure`.
pub(crate) async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_logging();
    let (account_database, catalog_database, database) =
        (TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await);
    let (account_url, account_server) = spawn_service!(shop_account, account_database);
    let (catalog_url, catalog_server) = spawn_service!(shop_catalog, catalog_database);

    let mut settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: database.url.parse().unwrap(),
        account_service_url: account_url.clone(),
        catalog_service_url: catalog_url.clone(),
        dependency_timeout_ms: 2_000,
        ..Default::default()
    };
    configure(&mut settings);
    let application = Application::build(&settings).await.expect("Failed to build the application");
    let address = application.local_addr();
    let order_server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));

    TestApp {
        url: format!("http://{address}"),
        settings,
        database,
        client: OrderClient::connect(format!("http://{address}")).await.unwrap(),
        accounts: AccountClient::connect(account_url).await.unwrap(),
        catalog: CatalogClient::connect(catalog_url).await.unwrap(),
        account_server: Some(account_server),
        catalog_server: Some(catalog_server),
        _order_server: order_server,
        _dependency_databases: [account_database, catalog_database],
    }
}

/// An order service in projection mode alone: its projection fed by whatever the test publishes on `broker`.
pub(crate) struct ProjectionApp {
    pub(crate) database: TestDatabase,
    pub(crate) client: OrderClient,
    pub(crate) url: String,
    pub(crate) server: RunningServer,
}

/// Projection mode on `broker`, reached at `bootstrap` (the broker itself, or a proxy in front of it).
pub(crate) fn projection_settings(
    database: &TestDatabase,
    broker: &TestBroker,
    bootstrap: &str,
    wait_ms: u64,
) -> Settings {
    Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: database.url.parse().unwrap(),
        validation: ValidationMode::Projection,
        projection_wait_ms: wait_ms,
        // One machine: its clocks agree.
        clock_skew_ms: 0,
        validation_interval_ms: 100,
        kafka: shop_platform::kafka::KafkaSettings {
            kafka_brokers: bootstrap.to_owned(),
            kafka_options: vec!["session.timeout.ms=6000".parse().unwrap()],
            kafka_topic_prefix: broker.topic_prefix.clone(),
        },
        // Unused in projection mode: nothing listens there.
        account_service_url: "http://127.0.0.1:1".into(),
        catalog_service_url: "http://127.0.0.1:1".into(),
        dependency_timeout_ms: 2_000,
        ..Default::default()
    }
}

pub(crate) async fn spawn_projection_app(broker: &TestBroker, wait_ms: u64) -> ProjectionApp {
    init_test_logging();
    let database = TestDatabase::create().await;
    let settings = projection_settings(&database, broker, &broker.bootstrap, wait_ms);
    spawn_order_service(database, &settings).await
}

/// The order service with `settings`, on `database`.
pub(crate) async fn spawn_order_service(database: TestDatabase, settings: &Settings) -> ProjectionApp {
    let application = Application::build(settings).await.unwrap();
    let address = application.local_addr();
    let server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));
    ProjectionApp {
        database,
        client: OrderClient::connect(format!("http://{address}")).await.unwrap(),
        url: format!("http://{address}"),
        server,
    }
}

/// Publishes a heartbeat as the relay would: outbox `outbox` has published everything committed before `through`.
pub(crate) async fn publish_heartbeat(
    broker: &TestBroker,
    outbox: &str,
    through: chrono::DateTime<chrono::Utc>,
) {
    let heartbeat = shop_events::heartbeat::OutboxHeartbeat {
        outbox: outbox.to_owned(),
        as_of: through,
        published_through: through,
        pending_topics: Vec::new(),
    };
    let payload = serde_json::to_vec(&heartbeat).unwrap();
    broker
        .produce(&broker.topic(shop_events::topics::HEARTBEATS), outbox, &heartbeat.headers(), &payload)
        .await;
}

/// The order as it is once it leaves PENDING.
pub(crate) async fn settled(client: &OrderClient, id: &str) -> shop_proto::order::v1::Order {
    eventually(Duration::from_secs(30), "the order to leave PENDING", || async {
        client.get_order(id).await.unwrap().status() != shop_proto::order::v1::OrderStatus::Pending
    })
    .await;
    // A settled order never goes back to pending.
    client.get_order(id).await.unwrap()
}

/// The gRPC health status of `service` (a part's name, or empty for the whole server).
pub(crate) async fn health(url: &str, service: &str) -> ServingStatus {
    let channel = tonic::transport::Channel::from_shared(url.to_owned()).unwrap().connect().await.unwrap();
    let request = HealthCheckRequest { service: service.to_owned() };
    HealthClient::new(channel).check(request).await.unwrap().into_inner().status()
}

/// Publishes `event` as the relay would (key, CloudEvents headers, payload).
pub(crate) async fn publish<E: shop_events::DomainEvent>(broker: &TestBroker, event: &E) {
    let envelope = shop_events::Envelope::new(event, None);
    let payload = serde_json::to_vec(&envelope.payload).unwrap();
    broker
        .produce(
            &broker.topic(&envelope.topic),
            &envelope.aggregate_id.to_string(),
            &envelope.metadata().headers(),
            &payload,
        )
        .await;
}

impl TestApp {
    /// Stops the account service, as an outage would.
    pub(crate) async fn stop_account_service(&mut self) {
        self.account_server.take().expect("running").stop().await.unwrap();
    }

    /// Stops the catalog service, as an outage would.
    pub(crate) async fn stop_catalog_service(&mut self) {
        self.catalog_server.take().expect("running").stop().await.unwrap();
    }

    /// An account id, and the ids of a kettle (24.99) and a mug (8.99).
    pub(crate) async fn seed(&self) -> (String, String, String) {
        let account = self.accounts.post_account("Ada").await.unwrap().id;
        let kettle = self.catalog.post_product("Kettle", "Boils water.", 2_499).await.unwrap().id;
        let mug = self.catalog.post_product("Mug", "Holds tea.", 899).await.unwrap().id;
        (account, kettle, mug)
    }
}

/// A product's creation event: one kettle, version 1, created now.
pub(crate) fn kettle(id: uuid::Uuid) -> shop_events::catalog::ProductCreated {
    let at = shop_events::envelope::now();
    let product = shop_events::catalog::Product {
        id,
        name: "Kettle".into(),
        description: "Boils water.".into(),
        price_cents: 2_499,
        stock: None,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    shop_events::catalog::ProductCreated { product }
}
