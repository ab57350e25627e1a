//! Order placement: `createOrder` through the gateway (GraphQL → order service → account and catalog over gRPC →
//! one transaction), against that same transaction issued straight to Postgres, at the same concurrency.

use std::{
    collections::HashMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use rand::seq::IndexedRandom;
use serde_json::json;
use shop_events::{Envelope, TraceContext};
use shop_order::{
    domain::{NewOrder, Order, PricedProduct},
    repository,
};
use shop_outbox as outbox;
use shop_testkit::{RunningServer, TestDatabase};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    children::ChildProcess,
    stats::{Latencies, per_second},
};

/// One concurrency level: orders/s and latencies both ways.
#[derive(Debug)]
pub struct Level {
    pub concurrency: usize,
    pub gateway: (f64, Latencies),
    pub sql: (f64, Latencies),
}

#[derive(Debug)]
pub struct Placement {
    pub levels: Vec<Level>,
    pub duration: Duration,
    pub gateway_peak_rss_mib: Option<f64>,
}

/// Runs `operation` from `concurrency` tasks for `duration`; returns operations per second and their latencies.
async fn load<F, Fut>(
    concurrency: usize,
    duration: Duration,
    operation: F,
) -> anyhow::Result<(f64, Latencies)>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let samples = load_with(concurrency, duration, move || {
        let operation = operation.clone();
        async move {
            let at = Instant::now();
            operation().await?;
            Ok(at.elapsed())
        }
    })
    .await?;
    Ok((per_second(samples.len(), started.elapsed()), Latencies::of(samples)))
}

/// Runs `operation` from `concurrency` tasks, each calling it again as soon as it returns, for `duration`;
/// returns what every call returned.
pub(crate) async fn load_with<F, Fut, T>(
    concurrency: usize,
    duration: Duration,
    operation: F,
) -> anyhow::Result<Vec<T>>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
    T: Send + 'static,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let operation = operation.clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            while started.elapsed() < duration {
                results.push(operation().await?);
            }
            anyhow::Ok(results)
        })
    });
    let mut results = Vec::new();
    for worker in join_all(workers).await {
        results.extend(worker??);
    }
    Ok(results)
}

/// Measures every concurrency level in `levels`, `duration` each way.
pub async fn placement(levels: &[usize], duration: Duration) -> anyhow::Result<Placement> {
    let databases =
        [TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await];
    let (account_url, _account) = spawn_service!(shop_account, databases[0]);
    let (catalog_url, _catalog) = spawn_service!(shop_catalog, databases[1]);
    let order_settings = shop_order::config::Settings {
        listen_addr: "127.0.0.1:0".parse()?,
        database_url: databases[2].url.parse().map_err(anyhow::Error::msg)?,
        account_service_url: account_url.clone(),
        catalog_service_url: catalog_url.clone(),
        ..Default::default()
    };
    let order = shop_order::startup::Application::build(&order_settings).await?;
    let order_url = format!("http://{}", order.local_addr());
    let _order = RunningServer::spawn(|shutdown| order.run_until_stopped(shutdown));
    let gateway = ChildProcess::gateway(&account_url, &catalog_url, &order_url)?;

    // The same customers and products for both ways.
    let accounts_client = shop_account::grpc::client::AccountClient::connect(account_url).await?;
    let catalog_client = shop_catalog::grpc::client::CatalogClient::connect(catalog_url).await?;
    let mut accounts = Vec::new();
    for i in 0..50 {
        accounts.push(accounts_client.post_account(&format!("customer {i}")).await?.id);
    }
    let mut catalog = HashMap::new();
    for i in 0..20 {
        let product =
            catalog_client.post_product(&format!("product {i}"), "For benchmarks.", 100 + i).await?;
        let priced = PricedProduct {
            name: product.name.clone(),
            description: product.description.clone(),
            unit_price_cents: product.price_cents,
        };
        catalog.insert(product.id.parse::<Uuid>()?, priced);
    }
    let products: Vec<String> = catalog.keys().map(Uuid::to_string).collect();
    let (accounts, products, catalog) = (Arc::new(accounts), Arc::new(products), Arc::new(catalog));

    // The SQL baseline writes to a database of its own with the order schema.
    let baseline = TestDatabase::create().await;
    let baseline_settings = shop_order::config::Settings {
        database_url: baseline.url.parse().map_err(anyhow::Error::msg)?,
        ..Default::default()
    };
    let baseline_pool = shop_order::database::connect(&baseline_settings).await?;

    let graphql = format!("http://{}/graphql", gateway.address);
    let http = reqwest::Client::new();
    let mut results = Vec::new();
    for &concurrency in levels {
        let gateway_way = {
            let (http, graphql, accounts, products) =
                (http.clone(), graphql.clone(), accounts.clone(), products.clone());
            load(concurrency, duration, move || {
                let (http, graphql) = (http.clone(), graphql.clone());
                let body = order_request(&accounts, &products);
                async move {
                    let response: serde_json::Value =
                        http.post(graphql).json(&body).send().await?.json().await?;
                    anyhow::ensure!(response["data"]["createOrder"]["status"] == "CONFIRMED", "{response}");
                    Ok(())
                }
            })
            .await?
        };
        let sql_way = {
            let (pool, accounts, products, catalog) =
                (baseline_pool.clone(), accounts.clone(), products.clone(), catalog.clone());
            load(concurrency, duration, move || {
                let new_order = new_order(&accounts, &products);
                let (pool, catalog) = (pool.clone(), catalog.clone());
                async move { place_directly(&pool, new_order?, &catalog).await }
            })
            .await?
        };
        results.push(Level { concurrency, gateway: gateway_way, sql: sql_way });
    }
    let gateway_peak_rss_mib = gateway.peak_rss_mib();
    gateway.stop()?;
    Ok(Placement { levels: results, duration, gateway_peak_rss_mib })
}

/// Two random products, one or two of each, for a random customer.
fn pick(accounts: &[String], products: &[String]) -> (String, [(String, u32); 2]) {
    let mut rng = rand::rng();
    let account = accounts.choose(&mut rng).expect("accounts").clone();
    let two: Vec<&String> = products.choose_multiple(&mut rng, 2).collect();
    (account, [(two[0].clone(), 1), (two[1].clone(), 2)])
}

fn order_request(accounts: &[String], products: &[String]) -> serde_json::Value {
    let (account, lines) = pick(accounts, products);
    json!({
        "query": "mutation($o: OrderInput!) { createOrder(order: $o) { id status } }",
        "variables": { "o": { "accountId": account, "products": lines.map(|(id, quantity)| json!({ "id": id, "quantity": quantity })) } },
    })
}

fn new_order(accounts: &[String], products: &[String]) -> anyhow::Result<NewOrder> {
    let (account, lines) = pick(accounts, products);
    NewOrder::parse(&account, lines.iter().map(|(id, quantity)| (id.as_str(), *quantity)))
        .map_err(|violations| anyhow::anyhow!("{violations:?}"))
}

/// What the order service's transaction does for a confirmed order, without anything in front of it.
async fn place_directly(
    pool: &PgPool,
    new_order: NewOrder,
    catalog: &HashMap<Uuid, PricedProduct>,
) -> anyhow::Result<()> {
    let trace = TraceContext::new_root();
    let (mut order, placed) = Order::place(new_order);
    let confirmed = order.confirm(catalog)?;
    let mut transaction = pool.begin().await?;
    repository::insert_order(&mut transaction, &order, &trace).await?;
    outbox::append(&mut transaction, &Envelope::new(&placed, Some(&trace))).await?;
    outbox::append(&mut transaction, &Envelope::new(&confirmed, Some(&trace))).await?;
    transaction.commit().await?;
    Ok(())
}
