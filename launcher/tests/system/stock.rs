//! Stock that cannot be oversold, through the whole shop: 200 customers order the last 10 kettles at once,
//! through the gateway, in both validation modes. Exactly 10 orders are confirmed and 190 rejected for stock, the
//! stock ends at 0, never goes negative, and at every moment sampled the catalog's books balance: every unit ever
//! received is either available or held by a reservation (`stock_received = stock + held`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::join_all;
use serde_json::json;
use shop_order::config::ValidationMode;
use shop_testkit::eventually;
use uuid::Uuid;

use crate::helpers::{TestShop, start_shop_with};

const ORDERS: usize = 200;
const STOCK: i64 = 10;

/// The catalog's books for one product, from its `stock_ledger` view: (units available, units received, units
/// held by reservations).
async fn books(catalog: &sqlx::PgPool, product: Uuid) -> (i64, i64, i64) {
    sqlx::query_as("SELECT available, received, held FROM stock_ledger WHERE product_id = $1")
        .bind(product)
        .fetch_one(catalog)
        .await
        .unwrap()
}

/// Samples the books of `product` until `done`; returns every sample.
fn sample_books(
    shop: &TestShop,
    product: Uuid,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(i64, i64, i64)>> {
    let catalog = shop.database("catalog").pool.clone();
    tokio::spawn(async move {
        let mut samples = Vec::new();
        while !done.load(Ordering::SeqCst) {
            samples.push(books(&catalog, product).await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        samples
    })
}

/// Places 200 orders of one kettle at once, waits until every one is final, and checks the outcome and the books.
async fn two_hundred_customers_order_the_last_ten_kettles(mode: ValidationMode) {
    // Arrange: ten kettles, and an account per customer.
    let shop = start_shop_with(|settings| settings.order_validation = mode).await;
    let query = "mutation($product: ProductInput!) { createProduct(product: $product) { id stock } }";
    let product =
        json!({ "name": "Kettle", "description": "The last ones.", "price": 24.99, "stock": STOCK });
    let created = shop.client.data(query, json!({ "product": product })).await["createProduct"].clone();
    assert_eq!(created["stock"], STOCK);
    let kettle = created["id"].as_str().unwrap().to_owned();
    let names: Vec<String> = (0..ORDERS).map(|n| format!("Customer {n}")).collect();
    let accounts = join_all(names.iter().map(|name| shop.client.create_account(name))).await;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample_books(&shop, kettle.parse().unwrap(), done.clone());

    // Act: every customer orders one kettle, all at once.
    let started = Instant::now();
    let line = [(kettle.as_str(), 1)];
    let answers = join_all(accounts.iter().map(|account| shop.client.create_order(account, &line))).await;
    let answered = started.elapsed();
    let orders = shop.database("order").pool.clone();
    eventually(Duration::from_secs(120), "every order to be final", || async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE status IN ('pending', 'awaiting_stock')")
                .fetch_one(&orders)
                .await
                .unwrap();
        open == 0
    })
    .await;
    let settled = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap();

    // Assert: 10 confirmed, 190 rejected for stock, each final once.
    assert_eq!(answers.len(), ORDERS);
    let outcomes: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT status, rejection_reason,
                (SELECT count(*) FROM jsonb_array_elements(history) AS step
                 WHERE step->>'step' IN ('confirmed', 'rejected', 'cancelled'))
         FROM orders",
    )
    .fetch_all(&orders)
    .await
    .unwrap();
    let confirmed = outcomes.iter().filter(|(status, ..)| status == "confirmed").count();
    let out_of_stock = outcomes
        .iter()
        .filter(|(status, reason, _)| {
            status == "rejected"
                && reason.as_deref().is_some_and(|reason| reason.starts_with("out of stock: "))
        })
        .count();
    assert_eq!((outcomes.len(), confirmed, out_of_stock), (ORDERS, STOCK as usize, ORDERS - STOCK as usize));
    assert!(outcomes.iter().all(|(.., finals)| *finals == 1), "every order ends in exactly one final state");

    // The books: stock 0, all ten held by the confirmed orders; never negative, always balanced.
    let catalog = shop.database("catalog").pool.clone();
    assert_eq!(books(&catalog, kettle.parse().unwrap()).await, (0, STOCK, STOCK));
    assert!(!samples.is_empty());
    for (available, received, held) in &samples {
        assert!(*available >= 0, "stock went negative: {samples:?}");
        assert_eq!(available + held, *received, "the books did not balance: {samples:?}");
    }
    println!(
        "{mode:?}: {ORDERS} orders for {STOCK} kettles answered in {answered:?}, all final after {settled:?} \
         ({} samples of the books)",
        samples.len()
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_projection_mode_two_hundred_concurrent_orders_for_ten_kettles_confirm_exactly_ten() {
    two_hundred_customers_order_the_last_ten_kettles(ValidationMode::Projection).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_grpc_mode_two_hundred_concurrent_orders_for_ten_kettles_confirm_exactly_ten() {
    two_hundred_customers_order_the_last_ten_kettles(ValidationMode::Grpc).await;
}

/// The `shop` process on databases `prefix` and the test's own `broker` (so that records outlive the process),
/// its gateway on `http`.
fn shop_process(
    prefix: &str,
    broker: &shop_testkit::kafka::TestBroker,
    http: std::net::SocketAddr,
) -> std::process::Child {
    crate::helpers::shop_binary(prefix)
        .env("POSTGRES_URL", shop_testkit::postgres_server_url())
        .env("KAFKA_BROKERS", &broker.bootstrap)
        .env("KAFKA_TOPIC_PREFIX", &broker.topic_prefix)
        .env("HTTP_LISTEN_ADDR", http.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("Failed to start the shop binary")
}

/// Waits until the gateway at `client` answers a query.
async fn answering(client: &shop_testkit::graphql::GraphqlClient) {
    eventually(Duration::from_secs(60), "the gateway to answer", || async {
        client
            .try_graphql("{ products { id } }", json!({}))
            .await
            .is_ok_and(|response| response.get("data").is_some())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_killed_mid_saga_finishes_every_order_after_a_restart_and_its_books_balance() {
    // Arrange: the whole shop as a process, on the test's broker; ten kettles and sixty customers.
    let broker = shop_testkit::kafka::TestBroker::start().await;
    let prefix = format!("test_{}_", Uuid::now_v7().simple());
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut shop = shop_process(&prefix, &broker, http);
    let databases: Vec<_> = ["account", "catalog", "order"]
        .map(|name| shop_testkit::TestDatabase::adopt(&format!("{prefix}{name}")))
        .into();
    let client = shop_testkit::graphql::GraphqlClient::new(&format!("http://{http}"));
    answering(&client).await;
    let query = "mutation($product: ProductInput!) { createProduct(product: $product) { id } }";
    let product = json!({ "name": "Kettle", "description": "", "price": 24.99, "stock": STOCK });
    let kettle = client.data(query, json!({ "product": product })).await["createProduct"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let names: Vec<String> = (0..60).map(|n| format!("Customer {n}")).collect();
    let accounts = join_all(names.iter().map(|name| client.create_account(name))).await;

    // Act: sixty orders at once; kill -9 once twenty are answered, with the saga in flight.
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let placing: Vec<_> = accounts
        .iter()
        .map(|account| {
            let (client, kettle, account, answered) =
                (client.clone(), kettle.clone(), account.clone(), answered.clone());
            tokio::spawn(async move {
                let order = json!({ "accountId": account, "products": [{ "id": kettle, "quantity": 1 }] });
                let placed = client
                    .try_graphql(
                        "mutation($order: OrderInput!) { createOrder(order: $order) { id } }",
                        json!({ "order": order }),
                    )
                    .await;
                answered.fetch_add(1, Ordering::SeqCst);
                placed
            })
        })
        .collect();
    eventually(Duration::from_secs(60), "twenty orders answered", || async {
        answered.load(Ordering::SeqCst) >= 20
    })
    .await;
    shop.kill().expect("kill -9");
    shop.wait().unwrap();
    join_all(placing).await;
    let orders = databases[2].pool.clone();
    let open_at_kill: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE status IN ('pending', 'awaiting_stock') OR stock_release_pending",
    )
    .fetch_one(&orders)
    .await
    .unwrap();

    // A new process on the same databases and broker.
    let mut restarted = shop_process(&prefix, &broker, http);
    answering(&client).await;
    eventually(Duration::from_secs(120), "every order final, no release owed", || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orders WHERE status IN ('pending', 'awaiting_stock') OR stock_release_pending",
        )
        .fetch_one(&orders)
        .await
        .unwrap();
        open == 0
    })
    .await;

    // Assert: the kill came mid-saga; now every stored order is final once, and the books balance.
    assert!(open_at_kill > 0, "the kill should have come with orders in flight");
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, (SELECT count(*) FROM jsonb_array_elements(history) AS step
                         WHERE step->>'step' IN ('confirmed', 'rejected', 'cancelled'))
         FROM orders",
    )
    .fetch_all(&orders)
    .await
    .unwrap();
    assert!(outcomes.iter().all(|(_, finals)| *finals == 1), "every order ends in exactly one final state");
    let confirmed = outcomes.iter().filter(|(status, _)| status == "confirmed").count() as i64;
    let (available, received, held) = books(&databases[1].pool, kettle.parse().unwrap()).await;
    assert_eq!((received, available + held), (STOCK, STOCK), "the books balance");
    assert_eq!(held, confirmed, "the confirmed orders hold exactly what is reserved");
    assert!(available >= 0);
    println!(
        "killed with {open_at_kill} orders in flight; after the restart {confirmed} of {} confirmed",
        outcomes.len()
    );
    let stopped =
        std::process::Command::new("kill").args(["-TERM", &restarted.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    restarted.wait().unwrap();
}
