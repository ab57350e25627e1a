use shop_account::grpc::client::AccountClient;
use shop_catalog::grpc::client::CatalogClient;
use shop_order::{
    config::{Settings, ValidationMode},
    grpc::client::OrderClient,
    startup::Application,
};
use shop_testkit::{RunningServer, TestDatabase, init_test_logging, kafka::TestBroker};

/// A running order service, and the account and catalog services it validates orders against.
pub(crate) struct TestApp {
    pub(crate) database: TestDatabase,
    pub(crate) client: OrderClient,
    pub(crate) accounts: AccountClient,
    pub(crate) catalog: CatalogClient,
    account_server: Option<RunningServer>,
    _catalog_server: RunningServer,
    _order_server: RunningServer,
    _dependency_databases: [TestDatabase; 2],
}

macro_rules! spawn_service {
    ($crate_name:ident, $database:expr) => {{
        let settings = $crate_name::config::Settings {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            database_url: $database.url.parse().unwrap(),
            ..Default::default()
        };
        let application = $crate_name::startup::Application::build(&settings).await.unwrap();
        let url = format!("http://{}", application.local_addr());
        (url, RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown)))
    }};
}

pub(crate) async fn spawn_app() -> TestApp {
    init_test_logging();
    let (account_database, catalog_database, database) =
        (TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await);
    let (account_url, account_server) = spawn_service!(shop_account, account_database);
    let (catalog_url, catalog_server) = spawn_service!(shop_catalog, catalog_database);

    let settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: database.url.parse().unwrap(),
        account_service_url: account_url.clone(),
        catalog_service_url: catalog_url.clone(),
        dependency_timeout_ms: 2_000,
        ..Default::default()
    };
    let application = Application::build(&settings).await.expect("Failed to build the application");
    let address = application.local_addr();
    let order_server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));

    TestApp {
        database,
        client: OrderClient::connect(format!("http://{address}")).await.unwrap(),
        accounts: AccountClient::connect(account_url).await.unwrap(),
        catalog: CatalogClient::connect(catalog_url).await.unwrap(),
        account_server: Some(account_server),
        _catalog_server: catalog_server,
        _order_server: order_server,
        _dependency_databases: [account_database, catalog_database],
    }
}

/// An order service in projection mode alone: its projection fed by whatever the test publishes on `broker`.
pub(crate) struct ProjectionApp {
    pub(crate) database: TestDatabase,
    pub(crate) client: OrderClient,
    pub(crate) server: RunningServer,
}

fn projection_settings(database: &TestDatabase, broker: &TestBroker, wait_ms: u64) -> Settings {
    Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: database.url.parse().unwrap(),
        validation: ValidationMode::Projection,
        projection_wait_ms: wait_ms,
        validation_interval_ms: 100,
        kafka: shop_platform::kafka::KafkaSettings {
            kafka_brokers: broker.bootstrap.clone(),
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
    let application = Application::build(&projection_settings(&database, broker, wait_ms)).await.unwrap();
    let address = application.local_addr();
    let server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));
    ProjectionApp {
        database,
        client: OrderClient::connect(format!("http://{address}")).await.unwrap(),
        server,
    }
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

    /// An account id, and the ids of a kettle (24.99) and a mug (8.99).
    pub(crate) async fn seed(&self) -> (String, String, String) {
        let account = self.accounts.post_account("Ada").await.unwrap().id;
        let kettle = self.catalog.post_product("Kettle", "Boils water.", 2_499).await.unwrap().id;
        let mug = self.catalog.post_product("Mug", "Holds tea.", 899).await.unwrap().id;
        (account, kettle, mug)
    }
}
