//! Priced answers in projection mode (the default of `shop`): how often `createOrder` answers the order confirmed
//! and priced rather than pending, under the placement benchmark's load, for two kinds of client — one ordering
//! for customers and products created long before, and the original system's, which creates an account and a
//! product and orders them at once. The whole path runs: account, catalog and order (projection validation) in
//! this process, the relay and the gateway as child processes, Kafka as the run's broker.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use shop_events::topics;
use shop_order::config::{DEFAULT_PRICED_ANSWER_WAIT_MS, ValidationMode};
use shop_platform::kafka::KafkaSettings;
use shop_testkit::{RunningServer, TestDatabase, kafka::TestBroker};
use uuid::Uuid;

use crate::{
    children::ChildProcess,
    orders::load_with,
    stats::{Latencies, per_second},
};

/// The answers one kind of client had at one concurrency.
#[derive(Debug)]
pub struct Answers {
    pub orders_per_second: f64,
    /// Of `createOrder` alone (not of the account and product created before it).
    pub latencies: Latencies,
    pub orders: usize,
    pub priced: usize,
}

#[derive(Debug)]
pub struct PricedLevel {
    pub concurrency: usize,
    /// Orders for customers and products the projection has long held.
    pub known: Answers,
    /// An account and a product created, then ordered at once.
    pub fresh: Answers,
}

#[derive(Debug)]
pub struct PricedPlacement {
    pub levels: Vec<PricedLevel>,
    pub duration: Duration,
    pub wait_ms: u64,
}

/// One `createOrder` answer: how long it took, and whether it was the priced order.
struct Answer {
    latency: Duration,
    priced: bool,
}

const ORDER: &str = "mutation($order: OrderInput!) { createOrder(order: $order) {
    id status totalPrice products { name description price quantity } } }";

/// Measures every concurrency level in `levels`, `duration` each kind of client.
pub async fn priced_placement(
    broker: &TestBroker,
    levels: &[usize],
    duration: Duration,
) -> anyhow::Result<PricedPlacement> {
    let running = System::start(broker).await?;
    let graphql = Arc::new(format!("http://{}/graphql", running.gateway.address));
    let http = reqwest::Client::new();
    let (accounts, products) = running.customers_and_products(50, 20).await?;
    let (accounts, products) = (Arc::new(accounts), Arc::new(products));

    let mut results = Vec::new();
    for &concurrency in levels {
        let known = {
            let (http, graphql, accounts, products) =
                (http.clone(), graphql.clone(), accounts.clone(), products.clone());
            answers(concurrency, duration, move || {
                let mut rng = rand::rng();
                let account = accounts.choose(&mut rng).expect("accounts").clone();
                let two: Vec<String> = products.choose_multiple(&mut rng, 2).cloned().collect();
                let (http, graphql) = (http.clone(), graphql.clone());
                async move { create_order(&http, &graphql, &account, &[(&two[0], 1), (&two[1], 2)]).await }
            })
            .await?
        };
        let fresh = {
            let (http, graphql) = (http.clone(), graphql.clone());
            answers(concurrency, duration, move || {
                let (http, graphql) = (http.clone(), graphql.clone());
                async move {
                    let account = create(&http, &graphql, "createAccount(account: {name: \"Ada\"})").await?;
                    let product = create(
                        &http,
                        &graphql,
                        "createProduct(product: {name: \"Kettle\", description: \"Boils water.\", price: 24.99})",
                    )
                    .await?;
                    create_order(&http, &graphql, &account, &[(&product, 2)]).await
                }
            })
            .await?
        };
        results.push(PricedLevel { concurrency, known, fresh });
    }
    running.stop().await?;
    Ok(PricedPlacement { levels: results, duration, wait_ms: DEFAULT_PRICED_ANSWER_WAIT_MS })
}

/// Runs `operation` from `concurrency` tasks for `duration`; counts its answers and the priced ones.
async fn answers<F, Fut>(concurrency: usize, duration: Duration, operation: F) -> anyhow::Result<Answers>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Answer>> + Send,
{
    let started = Instant::now();
    let answers = load_with(concurrency, duration, operation).await?;
    Ok(Answers {
        orders_per_second: per_second(answers.len(), started.elapsed()),
        orders: answers.len(),
        priced: answers.iter().filter(|answer| answer.priced).count(),
        latencies: Latencies::of(answers.iter().map(|answer| answer.latency).collect()),
    })
}

/// Runs `mutation` (one field, selecting `id`) and returns the id.
pub(crate) async fn create(http: &reqwest::Client, graphql: &str, mutation: &str) -> anyhow::Result<String> {
    let query = format!("mutation {{ created: {mutation} {{ id }} }}");
    let response: Value = http.post(graphql).json(&json!({ "query": query })).send().await?.json().await?;
    response["data"]["created"]["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("{response}"))
}

/// Places an order through the gateway: answered priced (confirmed, with a total and every product's price) or
/// pending; anything else fails the benchmark.
async fn create_order(
    http: &reqwest::Client,
    graphql: &str,
    account: &str,
    lines: &[(&str, u32)],
) -> anyhow::Result<Answer> {
    let products: Vec<Value> =
        lines.iter().map(|(id, quantity)| json!({ "id": id, "quantity": quantity })).collect();
    let body =
        json!({ "query": ORDER, "variables": { "order": { "accountId": account, "products": products } } });
    let at = Instant::now();
    let response: Value = http.post(graphql).json(&body).send().await?.json().await?;
    let latency = at.elapsed();
    let order = &response["data"]["createOrder"];
    let priced = order["status"] == "CONFIRMED"
        && order["totalPrice"].is_number()
        && order["products"]
            .as_array()
            .is_some_and(|lines| lines.iter().all(|line| line["price"].is_number()));
    anyhow::ensure!(priced || order["status"] == "PENDING", "{response}");
    Ok(Answer { latency, priced })
}

/// The shop as `shop` runs it, but with the relay and the gateway in processes of their own; [`crate::saga`]
/// measures one too.
pub(crate) struct System {
    pub(crate) gateway: ChildProcess,
    relay: ChildProcess,
    topic_prefix: String,
    pub(crate) order_database: TestDatabase,
    account_url: String,
    catalog_url: String,
    _servers: [RunningServer; 3],
    _databases: [TestDatabase; 2],
}

impl System {
    pub(crate) async fn start(broker: &TestBroker) -> anyhow::Result<Self> {
        Self::start_with(broker, DEFAULT_PRICED_ANSWER_WAIT_MS).await
    }

    /// The same, the order service answering priced within `priced_answer_wait_ms` (0: answering pending).
    pub(crate) async fn start_with(broker: &TestBroker, priced_answer_wait_ms: u64) -> anyhow::Result<Self> {
        // Topics of this run's own (the embedded broker cannot create them on request).
        let prefix = format!("{}bench-priced-{}.", broker.topic_prefix, Uuid::now_v7().simple());
        for spec in topics::ALL {
            broker.create_named_topic(&format!("{prefix}{}", spec.name), 3).await;
        }
        let kafka = KafkaSettings {
            kafka_topic_prefix: prefix.clone(),
            ..KafkaSettings::new(broker.bootstrap.clone())
        };
        let databases = [TestDatabase::create().await, TestDatabase::create().await];
        let order_database = TestDatabase::create().await;
        let (account_url, account) = spawn_service!(shop_account, databases[0]);
        let catalog_settings = shop_catalog::config::Settings {
            listen_addr: "127.0.0.1:0".parse()?,
            metrics_addr: Some("127.0.0.1:0".parse()?),
            database_url: databases[1].url.parse().map_err(anyhow::Error::msg)?,
            database: crate::pool_settings(),
            kafka: kafka.clone(),
            ..Default::default()
        };
        let catalog = shop_catalog::startup::Application::build(&catalog_settings).await?;
        let catalog_url = format!("http://{}", catalog.local_addr());
        let catalog = RunningServer::spawn(|shutdown| catalog.run_until_stopped(shutdown));
        let order_settings = shop_order::config::Settings {
            listen_addr: "127.0.0.1:0".parse()?,
            metrics_addr: Some("127.0.0.1:0".parse()?),
            database_url: order_database.url.parse().map_err(anyhow::Error::msg)?,
            database: crate::pool_settings(),
            validation: ValidationMode::Projection,
            priced_answer_wait_ms,
            kafka,
            ..Default::default()
        };
        let order = shop_order::startup::Application::build(&order_settings).await?;
        let order_url = format!("http://{}", order.local_addr());
        let order = RunningServer::spawn(|shutdown| order.run_until_stopped(shutdown));
        let outboxes = [&databases[0], &databases[1], &order_database].map(|database| database.url.clone());
        let relay = ChildProcess::start(
            "child-relay",
            &[
                ("RELAY_DATABASE_URLS", outboxes.join(",")),
                ("KAFKA_BROKERS", broker.bootstrap.clone()),
                ("KAFKA_TOPIC_PREFIX", prefix.clone()),
                ("RELAY_METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ],
        )?;
        let gateway = ChildProcess::gateway(&account_url, &catalog_url, &order_url)?;
        Ok(Self {
            gateway,
            relay,
            topic_prefix: prefix,
            order_database,
            account_url,
            catalog_url,
            _servers: [account, catalog, order],
            _databases: databases,
        })
    }

    /// Creates `accounts` customers and `products` products, and waits until the order service's projection
    /// holds them all (its consumer group has formed and caught up).
    pub(crate) async fn customers_and_products(
        &self,
        accounts: usize,
        products: usize,
    ) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let accounts_client =
            shop_account::grpc::client::AccountClient::connect(self.account_url.clone()).await?;
        let catalog_client =
            shop_catalog::grpc::client::CatalogClient::connect(self.catalog_url.clone()).await?;
        let mut account_ids = Vec::new();
        for i in 0..accounts {
            account_ids.push(accounts_client.post_account(&format!("customer {i}")).await?.id);
        }
        let mut product_ids = Vec::new();
        for i in 0..products {
            let price = 100 + i as i64;
            product_ids.push(
                catalog_client.post_product(&format!("product {i}"), "For benchmarks.", price).await?.id,
            );
        }
        let held =
            "SELECT (SELECT count(*) FROM account_projection) + (SELECT count(*) FROM product_projection)";
        self.await_projection(held, (accounts + products) as i64).await?;
        Ok((account_ids, product_ids))
    }

    /// Waits until `count`, a query of one count over the order database, reads `expected`: what the order
    /// service's projection must hold before the orders that rely on it.
    pub(crate) async fn await_projection(&self, count: &'static str, expected: i64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let held: i64 = sqlx::query_scalar(count).fetch_one(&self.order_database.pool).await?;
            if held == expected {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the projection holds {held} of {expected} after a minute"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The name of `topic` on this system's broker.
    pub(crate) fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.gateway.stop()?;
        self.relay.stop()
    }
}
