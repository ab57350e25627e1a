use std::time::Duration;

use serde_json::{Value, json};
use shop::{Settings, Shop, dev_auth::LocalAuth};
use shop_order::config::ValidationMode;
use shop_testkit::{TestDatabase, eventually, graphql::GraphqlClient, kafka::TestBroker};
use uuid::Uuid;

/// A running shop with its own databases and broker.
pub(crate) struct TestShop {
    pub(crate) shop: Shop,
    pub(crate) settings: Settings,
    pub(crate) http: reqwest::Client,
    pub(crate) client: GraphqlClient,
    /// Kept alive for as long as the shop runs.
    pub(crate) broker: TestBroker,
    /// Dropped (so the databases are dropped) after the shop stopped.
    pub(crate) databases: Vec<TestDatabase>,
}

pub(crate) fn settings(broker: &TestBroker) -> Settings {
    let any_port = "127.0.0.1:0".parse().unwrap();
    Settings {
        postgres_url: shop_testkit::postgres_server_url().parse().unwrap(),
        database_prefix: format!("test_{}_", Uuid::now_v7().simple()),
        kafka_brokers: Some(broker.bootstrap.clone()),
        kafka_topic_prefix: broker.topic_prefix.clone(),
        http_listen_addr: any_port,
        auth: LocalAuth::Disabled,
        account_listen_addr: any_port,
        catalog_listen_addr: any_port,
        order_listen_addr: any_port,
        relay_metrics_addr: any_port,
        order_validation: ValidationMode::Projection,
        // The default: long enough for a consumer group to form (~3 s) after a start.
        order_projection_wait_ms: 10_000,
        order_priced_answer_wait_ms: shop_order::config::DEFAULT_PRICED_ANSWER_WAIT_MS,
        relay: Default::default(),
        search: Default::default(),
        database: Default::default(),
        telemetry: Default::default(),
    }
}

pub(crate) async fn start_shop() -> TestShop {
    start_shop_with(|_| {}).await
}

/// A shop with the test settings, changed by `change`.
pub(crate) async fn start_shop_with(change: impl FnOnce(&mut Settings)) -> TestShop {
    start_shop_on(TestBroker::start().await, change).await
}

/// A shop whose topics and consumer groups have names of its own even on the embedded broker (where every shop's
/// names are otherwise the same): what tells its consumers' metrics from those of the other shops in the process.
pub(crate) async fn start_shop_with_own_names() -> TestShop {
    let mut broker = TestBroker::start().await;
    if broker.topic_prefix.is_empty() {
        broker.topic_prefix = format!("own-{}.", Uuid::now_v7().simple());
        for topic in shop_events::topics::ALL {
            broker.create_named_topic(&broker.topic(topic.name), 3).await;
        }
    }
    start_shop_on(broker, |_| {}).await
}

async fn start_shop_on(broker: TestBroker, change: impl FnOnce(&mut Settings)) -> TestShop {
    let mut settings = settings(&broker);
    change(&mut settings);
    let shop = Shop::start(&settings).await.expect("Failed to start the shop");
    let databases = ["account", "catalog", "order"]
        .iter()
        .map(|name| TestDatabase::adopt(&format!("{}{name}", settings.database_prefix)))
        .collect();
    let client = GraphqlClient::new(&format!("http://{}", shop.gateway_addr));
    TestShop { shop, settings, http: reqwest::Client::new(), client, broker, databases }
}

impl TestShop {
    /// Stops every part and checks that the shop stopped cleanly.
    pub(crate) async fn stop(self) {
        self.shop.run_until_stopped(async {}).await.expect("a clean stop");
    }

    /// Polls the order until it is no longer PENDING.
    pub(crate) async fn settled_order(&self, id: &str) -> Value {
        let query = "query($id: String!) { order(id: $id) {
            id status totalPrice rejectionReason products { id name price quantity } } }";
        let order = || async { self.client.data(query, json!({ "id": id })).await["order"].clone() };
        eventually(Duration::from_secs(30), "the order to leave PENDING", || async {
            order().await["status"] != "PENDING"
        })
        .await;
        order().await
    }

    pub(crate) fn database(&self, name: &str) -> &TestDatabase {
        self.databases.iter().find(|d| d.name.ends_with(name)).expect("a service database")
    }
}

/// The `shop` binary as the tests that run it as a process want it: on databases named with `prefix`, logging at
/// debug level, on free ports everywhere, with its embedded broker (whatever `KAFKA_BROKERS` says), no stdin, and
/// stdout and stderr piped. The caller adds the database server's URL and what it tests.
pub(crate) fn shop_binary(prefix: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shop"));
    command
        .env("SHOP_DATABASE_PREFIX", prefix)
        .env("RUST_LOG", "debug")
        .env_remove("KAFKA_BROKERS")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for name in [
        "HTTP_LISTEN_ADDR",
        "ACCOUNT_GRPC_LISTEN_ADDR",
        "CATALOG_GRPC_LISTEN_ADDR",
        "ORDER_GRPC_LISTEN_ADDR",
        "RELAY_METRICS_ADDR",
    ] {
        command.env(name, "127.0.0.1:0");
    }
    command
}
