//! Placement to confirmation with the stock saga, in projection mode: from sending `createOrder` to reading the
//! order `CONFIRMED` in the order service's database, for orders of a product that does not track its stock
//! (confirmed by `createOrder` itself, the priced answer) and of one that does (answered `AWAITING_STOCK`, reserved
//! by the catalog's consumer, confirmed by the order service's, a relay hop before each), in turn at each
//! concurrency, on a system started as [`crate::priced`] starts it. The order database is read again whenever a
//! transaction that wrote its outbox commits (its commit notification), not polled, so no polling interval is
//! measured.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use shop_order::domain::OrderStatus;
use shop_projection::CONSUMER_DEFAULTS;
use shop_testkit::kafka::TestBroker;
use sqlx::{
    PgPool,
    postgres::{PgListener, PgPoolOptions},
};
use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use crate::{
    orders::load_with,
    priced::{System, create},
    stats::Latencies,
};

/// The units the tracked product starts with: more than any run orders, so that no order is short.
pub const STOCK: i64 = 1_000_000;

/// Longer than the order service's stock deadline (30 s by default), by which every order is final.
const FINAL_WAIT: Duration = Duration::from_secs(60);

/// How long a wait for a commit notification lasts before the order is read anyway: only a lost notification
/// ever waits this long.
const FALLBACK_READ: Duration = Duration::from_millis(100);

const ORDER: &str = "mutation($order: OrderInput!) { createOrder(order: $order) { id status } }";

/// Placement to confirmation of one kind of order at one concurrency.
#[derive(Debug)]
pub struct Confirmations {
    pub orders: usize,
    /// Of `createOrder` alone.
    pub answered: Latencies,
    /// From sending `createOrder` to reading the order `CONFIRMED`, of the orders that were.
    pub confirmed: Latencies,
    /// The orders that ended otherwise, by the status they ended in (or still had after [`FINAL_WAIT`]).
    pub not_confirmed: BTreeMap<String, usize>,
}

#[derive(Debug)]
pub struct SagaLevel {
    pub concurrency: usize,
    /// Orders of a product that does not track its stock.
    pub untracked: Confirmations,
    /// Orders of a product that tracks its stock, [`STOCK`] units at first.
    pub tracked: Confirmations,
}

#[derive(Debug)]
pub struct SagaConfirmation {
    pub levels: Vec<SagaLevel>,
    pub duration: Duration,
    /// On the embedded mock cluster, the consumers' `fetch.wait.max.ms`: the mock answers a fetch that found no
    /// record only once that has passed, even when records arrive meanwhile (a broker answers as they arrive).
    pub mock_fetch_wait_ms: Option<&'static str>,
}

/// A kind of order: one unit of `product`, which `createOrder` answers `answer` (or `PENDING`).
struct Kind {
    product: String,
    answer: &'static str,
}

/// One order: how long `createOrder` took, and how long until the order was read final, in `status`.
struct Outcome {
    answered: Duration,
    ended: Duration,
    status: String,
}

/// Measures every concurrency level in `levels`, `duration` each kind of order.
pub async fn confirmation(
    broker: &TestBroker,
    levels: &[usize],
    duration: Duration,
) -> anyhow::Result<SagaConfirmation> {
    let running = System::start(broker).await?;
    let graphql = format!("http://{}/graphql", running.gateway.address);
    let http = reqwest::Client::new();
    let (accounts, products) = running.customers_and_products(20, 1).await?;
    let stocked = format!(
        "createProduct(product: {{name: \"Kettle\", description: \"Boils water.\", price: 24.99, stock: {STOCK}}})"
    );
    let tracked = Kind { product: create(&http, &graphql, &stocked).await?, answer: "AWAITING_STOCK" };
    let untracked = Kind { product: products[0].clone(), answer: "CONFIRMED" };
    running.await_projection("SELECT count(*) FROM product_projection WHERE tracks_stock", 1).await?;
    // A connection for each task's reads, and the listener's own.
    let connections = levels.iter().copied().max().unwrap_or(1) as u32 + 1;
    let pool = PgPoolOptions::new().max_connections(connections).connect(&running.order_database.url).await?;
    let orders = Arc::new(Orders { http, graphql, accounts, commits: Commits::listen(&pool).await?, pool });

    // One order of each kind first, not measured: every consumer on the saga's path has joined its group.
    for kind in [&untracked, &tracked] {
        let first = orders.place(kind).await?;
        anyhow::ensure!(
            first.status == confirmed(),
            "the first order of {} ended {}",
            kind.product,
            first.status
        );
    }
    let (untracked, tracked) = (Arc::new(untracked), Arc::new(tracked));
    let mut results = Vec::new();
    for &concurrency in levels {
        let untracked = confirmations(&orders, &untracked, concurrency, duration).await?;
        let tracked = confirmations(&orders, &tracked, concurrency, duration).await?;
        results.push(SagaLevel { concurrency, untracked, tracked });
    }
    drop(orders);
    running.stop().await?;
    let mock_fetch_wait_ms = broker.mock().and_then(|_| {
        CONSUMER_DEFAULTS.iter().find(|(key, _)| *key == "fetch.wait.max.ms").map(|(_, value)| *value)
    });
    Ok(SagaConfirmation { levels: results, duration, mock_fetch_wait_ms })
}

fn confirmed() -> &'static str {
    OrderStatus::Confirmed.as_str()
}

/// Places orders of `kind` from `concurrency` tasks for `duration`, each awaiting its order's end.
async fn confirmations(
    orders: &Arc<Orders>,
    kind: &Arc<Kind>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Confirmations> {
    let (orders, kind) = (orders.clone(), kind.clone());
    let outcomes = load_with(concurrency, duration, move || {
        let (orders, kind) = (orders.clone(), kind.clone());
        async move { orders.place(&kind).await }
    })
    .await?;
    let mut not_confirmed = BTreeMap::new();
    for outcome in outcomes.iter().filter(|outcome| outcome.status != confirmed()) {
        *not_confirmed.entry(outcome.status.clone()).or_default() += 1;
    }
    Ok(Confirmations {
        orders: outcomes.len(),
        answered: Latencies::of(outcomes.iter().map(|outcome| outcome.answered).collect()),
        confirmed: Latencies::of(
            outcomes
                .iter()
                .filter(|outcome| outcome.status == confirmed())
                .map(|outcome| outcome.ended)
                .collect(),
        ),
        not_confirmed,
    })
}

/// What placing an order and awaiting its end needs, shared by the tasks of a load.
struct Orders {
    http: reqwest::Client,
    graphql: String,
    accounts: Vec<String>,
    /// The order database.
    pool: PgPool,
    commits: Commits,
}

impl Orders {
    /// Places one unit of `kind`'s product for a random customer, then waits until the order is final.
    async fn place(&self, kind: &Kind) -> anyhow::Result<Outcome> {
        let account = self.accounts.choose(&mut rand::rng()).expect("accounts");
        let order = json!({ "accountId": account, "products": [{ "id": kind.product, "quantity": 1 }] });
        let body = json!({ "query": ORDER, "variables": { "order": order } });
        let at = Instant::now();
        let response: Value = self.http.post(&self.graphql).json(&body).send().await?.json().await?;
        let answered = at.elapsed();
        let order = &response["data"]["createOrder"];
        anyhow::ensure!(order["status"] == kind.answer || order["status"] == "PENDING", "{response}");
        let id: Uuid = order["id"].as_str().ok_or_else(|| anyhow::anyhow!("{response}"))?.parse()?;
        let status = self.await_final(id).await?;
        Ok(Outcome { answered, ended: at.elapsed(), status })
    }

    /// Reads order `id` until it is final, again after every commit that wrote the order database's outbox: every
    /// change of an order's status appends its event there in the same transaction. Gives up after
    /// [`FINAL_WAIT`]; returns the status read last.
    async fn await_final(&self, id: Uuid) -> anyhow::Result<String> {
        let mut commits = self.commits.receiver.clone();
        let deadline = Instant::now() + FINAL_WAIT;
        loop {
            // Seen before the read, so that a commit after it ends the wait below.
            commits.mark_unchanged();
            let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
            if OrderStatus::parse(&status).is_some_and(OrderStatus::is_final) || Instant::now() >= deadline {
                return Ok(status);
            }
            if let Ok(Err(_)) = tokio::time::timeout(FALLBACK_READ, commits.changed()).await {
                anyhow::bail!("Lost the order database's commit notifications");
            }
        }
    }
}

/// The order database's commit notifications: `receiver` changes whenever a transaction that wrote its outbox
/// commits. The listener stops when this is dropped.
struct Commits {
    receiver: watch::Receiver<()>,
    listener: JoinHandle<()>,
}

impl Commits {
    async fn listen(pool: &PgPool) -> anyhow::Result<Self> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(shop_outbox::NOTIFY_CHANNEL).await?;
        let (sender, receiver) = watch::channel(());
        let listener = tokio::spawn(async move {
            // `Ok(None)` is a lost connection, which the next call restores: the waits read again all the same, for
            // what they may have missed. An error drops the sender, which fails them.
            while listener.try_recv().await.is_ok() {
                sender.send_replace(());
            }
        });
        Ok(Self { receiver, listener })
    }
}

impl Drop for Commits {
    fn drop(&mut self) {
        self.listener.abort();
    }
}
