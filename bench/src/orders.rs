//! Order placement: `createOrder` through the gateway (GraphQL → order service → account and catalog over gRPC →
//! one transaction), against that same transaction issued straight to Postgres, at the same concurrency; and
//! through a second gateway that requires authentication, each request carrying the token of the customer who owns
//! the account (verified against keys fetched from an issuer, and the ownership checked), against the first.

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
    domain::{CatalogProduct, NewOrder, Order, PricedProduct},
    repository,
};
use shop_outbox as outbox;
use shop_testkit::{RunningServer, TestDatabase};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    auth::BenchIssuer,
    children::ChildProcess,
    stats::{Latencies, per_second},
};

/// One concurrency level: orders/s and latencies each way.
#[derive(Debug)]
pub struct Level {
    pub concurrency: usize,
    pub gateway: (f64, Latencies),
    /// Through the gateway that requires a bearer token.
    pub gateway_with_auth: (f64, Latencies),
    pub sql: (f64, Latencies),
}

/// A customer: its account, and a token whose subject owns it.
#[derive(Debug)]
pub(crate) struct Customer {
    account: String,
    token: String,
}

impl Customer {
    /// A customer of a gateway that requires no token.
    pub(crate) fn unauthenticated(account: String) -> Self {
        Self { account, token: String::new() }
    }
}

#[derive(Debug)]
pub struct Placement {
    pub levels: Vec<Level>,
    pub duration: Duration,
    pub gateway_peak_rss_mib: Option<f64>,
}

/// Runs `operation` from `concurrency` tasks for `duration`; returns operations per second and their latencies.
pub(crate) async fn load<F, Fut>(
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
        metrics_addr: Some("127.0.0.1:0".parse()?),
        database_url: databases[2].url.parse().map_err(anyhow::Error::msg)?,
        account_service_url: account_url.clone(),
        catalog_service_url: catalog_url.clone(),
        ..Default::default()
    };
    let order = shop_order::startup::Application::build(&order_settings).await?;
    let order_url = format!("http://{}", order.local_addr());
    let _order = RunningServer::spawn(|shutdown| order.run_until_stopped(shutdown));
    let gateway = ChildProcess::gateway(&account_url, &catalog_url, &order_url)?;
    let issuer = BenchIssuer::start().await?;
    let gateway_with_auth =
        ChildProcess::gateway_with_auth(&account_url, &catalog_url, &order_url, &issuer.gateway_env())?;
    let http = reqwest::Client::new();
    let graphql = format!("http://{}/graphql", gateway.address);
    let graphql_with_auth = format!("http://{}/graphql", gateway_with_auth.address);

    // The same customers and products for every way; each account is opened with its owner's token.
    let catalog_client = shop_catalog::grpc::client::CatalogClient::connect(catalog_url).await?;
    let mut customers = Vec::new();
    for i in 0..50 {
        let token = issuer.customer_token(&format!("customer-{i}"))?;
        let account = open_account(&http, &graphql_with_auth, &token).await?;
        customers.push(Customer { account, token });
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
        catalog.insert(product.id.parse::<Uuid>()?, CatalogProduct { priced, tracks_stock: false });
    }
    let products: Vec<String> = catalog.keys().map(Uuid::to_string).collect();
    let (customers, products, catalog) = (Arc::new(customers), Arc::new(products), Arc::new(catalog));

    // The SQL baseline writes to a database of its own with the order schema.
    let baseline = TestDatabase::create().await;
    let baseline_settings = shop_order::config::Settings {
        database_url: baseline.url.parse().map_err(anyhow::Error::msg)?,
        ..Default::default()
    };
    let baseline_pool = shop_order::database::connect(&baseline_settings).await?;

    let mut results = Vec::new();
    for &concurrency in levels {
        let through = |graphql: &str, with_token: bool| {
            let (http, graphql, customers, products) =
                (http.clone(), graphql.to_owned(), customers.clone(), products.clone());
            load(concurrency, duration, move || {
                let (customer, body) = order_request(&customers, &products);
                let mut request = http.post(&graphql).json(&body);
                if with_token {
                    request = request.bearer_auth(&customer.token);
                }
                async move {
                    let response: serde_json::Value = request.send().await?.json().await?;
                    anyhow::ensure!(response["data"]["createOrder"]["status"] == "CONFIRMED", "{response}");
                    Ok(())
                }
            })
        };
        let gateway_way = through(&graphql, false).await?;
        let gateway_with_auth_way = through(&graphql_with_auth, true).await?;
        let sql_way = {
            let (pool, customers, products, catalog) =
                (baseline_pool.clone(), customers.clone(), products.clone(), catalog.clone());
            load(concurrency, duration, move || {
                let new_order = new_order(&customers, &products);
                let (pool, catalog) = (pool.clone(), catalog.clone());
                async move { place_directly(&pool, new_order?, &catalog).await }
            })
            .await?
        };
        results.push(Level {
            concurrency,
            gateway: gateway_way,
            gateway_with_auth: gateway_with_auth_way,
            sql: sql_way,
        });
    }
    let gateway_peak_rss_mib = gateway.peak_rss_mib();
    gateway.stop()?;
    gateway_with_auth.stop()?;
    Ok(Placement { levels: results, duration, gateway_peak_rss_mib })
}

/// Opens an account as the owner of `token`; returns its id.
async fn open_account(http: &reqwest::Client, graphql: &str, token: &str) -> anyhow::Result<String> {
    account_opened(http.post(graphql).bearer_auth(token)).await
}

/// Opens an account through a gateway that requires no token; returns its id.
pub(crate) async fn open_account_without_auth(
    http: &reqwest::Client,
    graphql: &str,
) -> anyhow::Result<String> {
    account_opened(http.post(graphql)).await
}

async fn account_opened(request: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let body = json!({ "query": "mutation { createAccount(account: {name: \"A customer\"}) { id } }" });
    let response: serde_json::Value = request.json(&body).send().await?.json().await?;
    let id = response["data"]["createAccount"]["id"].as_str();
    id.map(str::to_owned).ok_or_else(|| anyhow::anyhow!("Failed to open an account: {response}"))
}

/// Two random products, one or two of each, for a random customer.
fn pick<'a>(customers: &'a [Customer], products: &[String]) -> (&'a Customer, [(String, u32); 2]) {
    let mut rng = rand::rng();
    let customer = customers.choose(&mut rng).expect("customers");
    let two: Vec<&String> = products.choose_multiple(&mut rng, 2).collect();
    (customer, [(two[0].clone(), 1), (two[1].clone(), 2)])
}

/// A `createOrder` request for a random customer, and that customer.
pub(crate) fn order_request<'a>(
    customers: &'a [Customer],
    products: &[String],
) -> (&'a Customer, serde_json::Value) {
    let (customer, lines) = pick(customers, products);
    let body = json!({
        "query": "mutation($o: OrderInput!) { createOrder(order: $o) { id status } }",
        "variables": { "o": { "accountId": customer.account, "products": lines.map(|(id, quantity)| json!({ "id": id, "quantity": quantity })) } },
    });
    (customer, body)
}

fn new_order(customers: &[Customer], products: &[String]) -> anyhow::Result<NewOrder> {
    let (customer, lines) = pick(customers, products);
    NewOrder::parse(&customer.account, lines.iter().map(|(id, quantity)| (id.as_str(), *quantity)))
        .map_err(|violations| anyhow::anyhow!("{violations:?}"))
}

/// What the order service's transaction does for a confirmed order, without anything in front of it.
async fn place_directly(
    pool: &PgPool,
    new_order: NewOrder,
    catalog: &HashMap<Uuid, CatalogProduct>,
) -> anyhow::Result<()> {
    let trace = TraceContext::new_root();
    let (mut order, placed) = Order::place(new_order);
    let confirmed = order.accept(catalog)?;
    let mut transaction = pool.begin().await?;
    repository::insert_order(&mut transaction, &order, &trace).await?;
    outbox::append(&mut transaction, &Envelope::new(&placed, Some(&trace))).await?;
    outbox::append(&mut transaction, &confirmed.to_envelope(Some(&trace))).await?;
    transaction.commit().await?;
    Ok(())
}
