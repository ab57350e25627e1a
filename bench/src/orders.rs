//! Order placement: `createOrder` through the gateway (GraphQL → order service → account and catalog over gRPC →
//! one transaction), against that same transaction issued straight to Postgres, at the same concurrency; and
//! through a second gateway that requires authentication, each request carrying the token of the customer who owns
//! the account (verified against keys fetched from an issuer, and the ownership checked), against the first. The
//! gateway is driven by `shop load` (its `createOrder`-only mix); every way places the same orders, 1 to 5
//! products, 1 to 3 of each, each with an idempotency key of its own.
//!
//! Beside them, at each concurrency, what the gateway's path adds to that transaction, each measured alone: a
//! `{ __typename }` query through the same gateway (HTTP and GraphQL, no service asked), a gRPC health check of the
//! order service (one gRPC round trip, nothing behind it), and validation's look-ups — `GetAccount` of the account
//! service and `GetProducts` of the catalog (grpc validation), or the one read of the order service's projection
//! (projection validation). With the cores the machine kept busy during each way, they give the least the
//! gateway's path can cost: the SQL transaction plus those parts.

use std::{
    collections::HashMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use rand::{Rng, seq::IndexedRandom};
use serde_json::json;
use shop_events::{Envelope, TraceContext};
use shop_order::{
    directory::Directory,
    domain::{CatalogProduct, NewOrder, Order, PricedProduct},
    repository,
};
use shop_outbox as outbox;
use shop_testkit::{RunningServer, TestDatabase, kafka::TestBroker};
use sqlx::PgPool;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use uuid::Uuid;

use crate::{
    auth::BenchIssuer,
    children::ChildProcess,
    cpu,
    priced::System,
    stats::{Latencies, per_second},
};

/// One way of sending operations at one concurrency: how fast, how long each took, and how many cores the whole
/// machine kept busy meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Way {
    pub per_second: f64,
    pub latencies: Latencies,
    pub busy_cores: f64,
    /// Which processes kept those cores busy.
    pub by_process: cpu::ByProcess,
}

impl Way {
    /// Measures `work` (operations/s and their latencies) with the cores busy meanwhile.
    pub(crate) async fn of(
        work: impl Future<Output = anyhow::Result<(f64, Latencies)>>,
    ) -> anyhow::Result<Self> {
        let (measured, busy_cores, by_process) = cpu::metered_by_process(work).await;
        let (per_second, latencies) = measured?;
        Ok(Self { per_second, latencies, busy_cores, by_process })
    }

    /// The machine's CPU time per operation, every process included.
    pub fn cpu_per_operation(&self) -> Duration {
        Duration::from_secs_f64(cpu::seconds_per_operation(self.busy_cores, self.per_second))
    }

    /// The mean time an operation took, by Little's law.
    pub fn mean_latency(&self, concurrency: usize) -> Duration {
        Duration::from_secs_f64(concurrency as f64 / self.per_second.max(f64::EPSILON))
    }
}

/// One concurrency level: orders/s and latencies each way.
#[derive(Debug)]
pub struct Level {
    pub concurrency: usize,
    pub gateway: Way,
    /// Through the gateway of a shop validating from the order service's projection, as the one-command run and
    /// docker-compose run it (the relay and every consumer running beside it).
    pub gateway_projection: Way,
    /// Through the gateway that requires a bearer token.
    pub gateway_with_auth: Way,
    pub sql: Way,
    /// `{ __typename }` through the gateway: HTTP and GraphQL, nothing behind them.
    pub graphql_hop: Way,
    /// A gRPC health check of the order service: one gRPC round trip, nothing behind it.
    pub grpc_hop: Way,
    /// The account service's `GetAccount` alone: the round trip and the query grpc validation asks for.
    pub account_lookup: Way,
    /// The catalog service's `GetProducts` of 1 to 5 products alone: grpc validation's other round trip.
    pub products_lookup: Way,
    /// The projection's one read of an order's account and 1 to 5 products (what projection validation reads
    /// instead), straight to the SQL baseline's database, whose projection tables hold the same customers and
    /// products.
    pub projection_lookup: Way,
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
pub async fn placement(
    broker: &TestBroker,
    levels: &[usize],
    duration: Duration,
) -> anyhow::Result<Placement> {
    let projection_mode = System::start(broker).await?;
    // Waits until the order service's consumers have joined their groups and follow: `shop load` then seeds its
    // own customers and products, which the projection learns within the seed.
    projection_mode.customers_and_products(1, 1).await?;
    let projection_graphql = format!("http://{}/graphql", projection_mode.gateway.address);
    let databases =
        [TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await];
    let (account_url, _account) = spawn_service!(shop_account, databases[0]);
    let (catalog_url, _catalog) = spawn_service!(shop_catalog, databases[1]);
    let order_settings = shop_order::config::Settings {
        listen_addr: "127.0.0.1:0".parse()?,
        metrics_addr: Some("127.0.0.1:0".parse()?),
        database_url: databases[2].url.parse().map_err(anyhow::Error::msg)?,
        database: crate::pool_settings(),
        account_service_url: account_url.clone(),
        catalog_service_url: catalog_url.clone(),
        ..Default::default()
    };
    let order = shop_order::startup::Application::build(&order_settings).await?;
    let order_url = format!("http://{}", order.local_addr());
    let _order = RunningServer::spawn(|shutdown| order.run_until_stopped(shutdown));
    let order_channel = tonic::transport::Endpoint::from_shared(order_url.clone())?.connect().await?;
    let gateway = ChildProcess::gateway(&account_url, &catalog_url, &order_url)?;
    let issuer = BenchIssuer::start().await?;
    let gateway_with_auth =
        ChildProcess::gateway_with_auth(&account_url, &catalog_url, &order_url, &issuer.gateway_env())?;
    let http = reqwest::Client::new();
    let graphql = format!("http://{}/graphql", gateway.address);
    let graphql_with_auth = format!("http://{}/graphql", gateway_with_auth.address);

    // The same customers and products for every way; each account is opened with its owner's token.
    let catalog_client = shop_catalog::grpc::client::CatalogClient::connect(catalog_url.clone()).await?;
    let account_client = shop_account::grpc::client::AccountClient::connect(account_url.clone()).await?;
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
        database: crate::pool_settings(),
        ..Default::default()
    };
    let baseline_pool = shop_order::database::connect(&baseline_settings).await?;
    // The projection's look-up reads the same customers and products, copied into the baseline's projection
    // tables: the same query on the same tables as projection validation, on no connection more.
    project(&baseline_pool, &customers, &catalog).await?;
    let projection_directory = shop_order::projection::ProjectionDirectory::new(baseline_pool.clone());

    let mut results = Vec::new();
    for &concurrency in levels {
        let through_with_tokens = |graphql: &str| {
            let (http, graphql, customers, products) =
                (http.clone(), graphql.to_owned(), customers.clone(), products.clone());
            load(concurrency, duration, move || {
                let (customer, body) = order_request(&customers, &products);
                let request = http.post(&graphql).json(&body).bearer_auth(&customer.token);
                async move {
                    let response: serde_json::Value = request.send().await?.json().await?;
                    anyhow::ensure!(response["data"]["createOrder"]["status"] == "CONFIRMED", "{response}");
                    Ok(())
                }
            })
        };
        // Through `shop load`, the load generator anyone can point at a shop; the way with tokens below keeps this
        // benchmark's own customers, whose accounts its issuer's subjects own.
        let gateway_way = Way::of(through_load_generator(&graphql, concurrency, duration)).await?;
        let gateway_projection_way =
            Way::of(through_load_generator(&projection_graphql, concurrency, duration)).await?;
        let gateway_with_auth_way = Way::of(through_with_tokens(&graphql_with_auth)).await?;
        let sql_way = {
            let (pool, customers, products, catalog) =
                (baseline_pool.clone(), customers.clone(), products.clone(), catalog.clone());
            Way::of(load(concurrency, duration, move || {
                let new_order = new_order(&customers, &products);
                let (pool, catalog) = (pool.clone(), catalog.clone());
                async move { place_directly(&pool, new_order?, &catalog).await }
            }))
            .await?
        };
        let graphql_hop = {
            let (http, graphql) = (http.clone(), graphql.clone());
            Way::of(load(concurrency, duration, move || {
                let request = http.post(&graphql).json(&json!({ "query": "{ __typename }" }));
                async move {
                    let response: serde_json::Value = request.send().await?.json().await?;
                    anyhow::ensure!(response["data"]["__typename"].is_string(), "{response}");
                    Ok(())
                }
            }))
            .await?
        };
        let grpc_hop = {
            let health = HealthClient::new(order_channel.clone());
            Way::of(load(concurrency, duration, move || {
                let mut health = health.clone();
                async move {
                    let status = health.check(HealthCheckRequest::default()).await?.into_inner().status();
                    anyhow::ensure!(
                        status == ServingStatus::Serving,
                        "the order service answered {status:?}"
                    );
                    Ok(())
                }
            }))
            .await?
        };
        let account_lookup = {
            let (accounts, customers) = (account_client.clone(), customers.clone());
            Way::of(load(concurrency, duration, move || {
                let customer = customers.choose(&mut rand::rng()).expect("customers");
                let (accounts, account) = (accounts.clone(), customer.account.clone());
                async move {
                    accounts.get_account(&account).await?;
                    Ok(())
                }
            }))
            .await?
        };
        let products_lookup = {
            let (catalog, customers, products) =
                (catalog_client.clone(), customers.clone(), products.clone());
            Way::of(load(concurrency, duration, move || {
                let ids: Vec<String> = pick(&customers, &products).1.into_iter().map(|(id, _)| id).collect();
                let catalog = catalog.clone();
                async move {
                    let expected = ids.len();
                    let request = shop_proto::catalog::v1::GetProductsRequest { ids, ..Default::default() };
                    let found = catalog.get_products(request).await?.len();
                    anyhow::ensure!(found == expected, "the catalog found {found} of {expected} products");
                    Ok(())
                }
            }))
            .await?
        };
        let projection_lookup = {
            let (directory, customers, products) =
                (projection_directory.clone(), customers.clone(), products.clone());
            Way::of(load(concurrency, duration, move || {
                let (customer, lines) = pick(&customers, &products);
                let ids = lines.iter().map(|(id, _)| id.parse::<Uuid>()).collect::<Result<Vec<_>, _>>();
                let (directory, account) = (directory.clone(), customer.account.parse::<Uuid>());
                async move {
                    let (account, ids) = (account?, ids?);
                    let names = directory.names(account, &ids, &TraceContext::new_root()).await?;
                    anyhow::ensure!(
                        names.account.is_some() && names.products.len() == ids.len(),
                        "the projection lacks a name it was given"
                    );
                    Ok(())
                }
            }))
            .await?
        };
        results.push(Level {
            concurrency,
            gateway: gateway_way,
            gateway_projection: gateway_projection_way,
            gateway_with_auth: gateway_with_auth_way,
            sql: sql_way,
            graphql_hop,
            grpc_hop,
            account_lookup,
            products_lookup,
            projection_lookup,
        });
    }
    let gateway_peak_rss_mib = gateway.peak_rss_mib();
    gateway.stop()?;
    gateway_with_auth.stop()?;
    projection_mode.stop().await?;
    Ok(Placement { levels: results, duration, gateway_peak_rss_mib })
}

/// Stores `customers`' accounts and `catalog`'s products in the order projection's tables of `pool`'s database,
/// as the projection would hold them.
async fn project(
    pool: &PgPool,
    customers: &[Customer],
    catalog: &HashMap<Uuid, CatalogProduct>,
) -> anyhow::Result<()> {
    let accounts =
        customers.iter().map(|customer| customer.account.parse()).collect::<Result<Vec<Uuid>, _>>()?;
    sqlx::query(
        "INSERT INTO account_projection (id, name, version, updated_at)
         SELECT id, 'A customer', 1, now() FROM UNNEST($1::uuid[]) AS id",
    )
    .bind(&accounts)
    .execute(pool)
    .await?;
    let (ids, products): (Vec<Uuid>, Vec<&CatalogProduct>) = catalog.iter().map(|(id, p)| (*id, p)).unzip();
    sqlx::query(
        "INSERT INTO product_projection (id, name, description, price_cents, version, updated_at, tracks_stock)
         SELECT id, name, description, price_cents, 1, now(), tracks_stock
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bool[])
             AS product (id, name, description, price_cents, tracks_stock)",
    )
    .bind(&ids)
    .bind(products.iter().map(|p| p.priced.name.as_str()).collect::<Vec<_>>())
    .bind(products.iter().map(|p| p.priced.description.as_str()).collect::<Vec<_>>())
    .bind(products.iter().map(|p| p.priced.unit_price_cents).collect::<Vec<_>>())
    .bind(products.iter().map(|p| p.tracks_stock).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
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

/// `createOrder` at `concurrency` for `duration` through `graphql`, as `shop load` sends it (orders of 1 to 5
/// products, 1 to 3 of each, over the customers and products it seeds); orders/s and latencies.
async fn through_load_generator(
    graphql: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Latencies)> {
    let config = shop_load::LoadConfig::create_orders(
        graphql,
        shop_load::Credentials::Anonymous,
        concurrency,
        duration,
    );
    let report = shop_load::run(&config).await?;
    let orders = report
        .operation(shop_load::Operation::CreateOrder.name())
        .ok_or_else(|| anyhow::anyhow!("shop load placed no order:\n{}", report.to_text()))?;
    anyhow::ensure!(orders.errors == 0, "shop load saw errors:\n{}", report.to_text());
    let [p50, p95, p99, max] = orders.percentiles();
    Ok((orders.rate_per_second, Latencies { count: orders.count as usize, p50, p95, p99, max }))
}

/// A random customer, and 1 to 5 random products, 1 to 3 of each: the orders `shop load` places.
fn pick<'a>(customers: &'a [Customer], products: &[String]) -> (&'a Customer, Vec<(String, u32)>) {
    let mut rng = rand::rng();
    let customer = customers.choose(&mut rng).expect("customers");
    let count = rng.random_range(1..=5.min(products.len()));
    let lines =
        products.choose_multiple(&mut rng, count).map(|id| (id.clone(), rng.random_range(1..=3))).collect();
    (customer, lines)
}

/// A `createOrder` request for a random customer, and that customer.
pub(crate) fn order_request<'a>(
    customers: &'a [Customer],
    products: &[String],
) -> (&'a Customer, serde_json::Value) {
    let (customer, lines) = pick(customers, products);
    let body = json!({
        "query": "mutation($o: OrderInput!, $key: String) { createOrder(order: $o, idempotencyKey: $key) { id status } }",
        "variables": { "key": Uuid::now_v7().to_string(), "o": { "accountId": customer.account, "products": lines.iter().map(|(id, quantity)| json!({ "id": id, "quantity": quantity })).collect::<Vec<_>>() } },
    });
    (customer, body)
}

fn new_order(customers: &[Customer], products: &[String]) -> anyhow::Result<NewOrder> {
    let (customer, lines) = pick(customers, products);
    NewOrder::parse(&customer.account, lines.iter().map(|(id, quantity)| (id.as_str(), *quantity)))
        .map_err(|violations| anyhow::anyhow!("{violations:?}"))
}

/// What the order service does for a confirmed order sent with an idempotency key (as `shop load` sends every
/// order), without anything in front of it: the key looked up, then one transaction claiming it and storing the
/// order and its two events.
async fn place_directly(
    pool: &PgPool,
    new_order: NewOrder,
    catalog: &HashMap<Uuid, CatalogProduct>,
) -> anyhow::Result<()> {
    const KEY_TTL: Duration = Duration::from_secs(24 * 3_600);
    let trace = TraceContext::new_root();
    let key = Uuid::now_v7().to_string();
    let (mut order, placed) = Order::place(new_order);
    let confirmed = order.accept(catalog)?;
    let earlier =
        repository::idempotency_key_owner(&mut *pool.acquire().await?, order.account_id, &key, KEY_TTL)
            .await?;
    anyhow::ensure!(earlier.is_none(), "a fresh key placed an order already");
    let mut transaction = pool.begin().await?;
    let request = format!("{:?}", order.lines);
    let claimed = repository::claim_idempotency_key(
        &mut transaction,
        order.account_id,
        &key,
        &request,
        order.id,
        KEY_TTL,
    )
    .await?;
    anyhow::ensure!(claimed, "a fresh key was claimed already");
    repository::insert_order(&mut transaction, &order, &trace).await?;
    outbox::append(&mut transaction, &Envelope::new(&placed, Some(&trace))).await?;
    outbox::append(&mut transaction, &confirmed.to_envelope(Some(&trace))).await?;
    transaction.commit().await?;
    Ok(())
}
