use std::time::Duration;

use serde_json::{Value, json};
use shop::{Settings, Shop};
use shop_order::config::ValidationMode;
use shop_testkit::{TestDatabase, kafka::TestBroker};
use uuid::Uuid;

/// A running shop with its own databases and broker.
pub(crate) struct TestShop {
    pub(crate) shop: Shop,
    pub(crate) settings: Settings,
    pub(crate) http: reqwest::Client,
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
        account_listen_addr: any_port,
        catalog_listen_addr: any_port,
        order_listen_addr: any_port,
        relay_metrics_addr: any_port,
        order_validation: ValidationMode::Projection,
        // The default: long enough for a consumer group to form (~3 s) after a start.
        order_projection_wait_ms: 10_000,
        relay: Default::default(),
        search: Default::default(),
        database: Default::default(),
        telemetry: Default::default(),
    }
}

pub(crate) async fn start_shop() -> TestShop {
    let broker = TestBroker::start().await;
    let settings = settings(&broker);
    let shop = Shop::start(&settings).await.expect("Failed to start the shop");
    let databases = ["account", "catalog", "order"]
        .iter()
        .map(|name| TestDatabase::adopt(&format!("{}{name}", settings.database_prefix)))
        .collect();
    TestShop { shop, settings, http: reqwest::Client::new(), broker, databases }
}

impl TestShop {
    /// Stops every part and checks that the shop stopped cleanly.
    pub(crate) async fn stop(self) {
        self.shop.run_until_stopped(async {}).await.expect("a clean stop");
    }

    pub(crate) async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.http
            .post(format!("http://{}/graphql", self.shop.gateway_addr))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.graphql(query, variables).await;
        assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
        response["data"].clone()
    }

    pub(crate) async fn create_account(&self, name: &str) -> String {
        let data = self
            .data(
                "mutation($name: String!) { createAccount(account: {name: $name}) { id } }",
                json!({ "name": name }),
            )
            .await;
        data["createAccount"]["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn create_product(&self, name: &str, price: f64) -> String {
        let query = "mutation($p: ProductInput!) { createProduct(product: $p) { id } }";
        let data = self
            .data(
                query,
                json!({ "p": { "name": name, "description": format!("A {name}."), "price": price } }),
            )
            .await;
        data["createProduct"]["id"].as_str().unwrap().to_owned()
    }

    /// Places an order and returns it as `createOrder` answered.
    pub(crate) async fn create_order(&self, account: &str, products: &[(&str, i32)]) -> Value {
        let query = "mutation($o: OrderInput!) { createOrder(order: $o) { id status totalPrice } }";
        let products: Vec<_> =
            products.iter().map(|(id, quantity)| json!({ "id": id, "quantity": quantity })).collect();
        self.data(query, json!({ "o": { "accountId": account, "products": products } })).await["createOrder"]
            .clone()
    }

    /// Polls the order until it is no longer PENDING.
    pub(crate) async fn settled_order(&self, id: &str) -> Value {
        let query = "query($id: ID!) { order(id: $id) {
            id status totalPrice rejectionReason products { id name price quantity } } }";
        for _ in 0..600 {
            let order = self.data(query, json!({ "id": id })).await["order"].clone();
            if order["status"] != "PENDING" {
                return order;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("order {id} stayed PENDING");
    }

    pub(crate) fn database(&self, name: &str) -> &TestDatabase {
        self.databases.iter().find(|d| d.name.ends_with(name)).expect("a service database")
    }
}
