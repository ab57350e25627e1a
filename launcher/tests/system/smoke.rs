//! The smoke test of the one-command run: `shop` started as a newcomer would, as a real process, driven over HTTP,
//! its events read back from its broker, then stopped with SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use shop_testkit::{TestDatabase, eventually, kafka::TestBroker};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_command_run_serves_a_newcomer_and_stops_cleanly_on_sigterm() {
    // Arrange: `shop` with nothing but a database prefix and free ports (its own embedded broker, unless the
    // test run has KAFKA_BROKERS).
    let prefix = format!("test_{}_", Uuid::now_v7().simple());
    // On a shared external broker (KAFKA_BROKERS, inherited by the child), topics of the test's own.
    let topic_prefix = if std::env::var("KAFKA_BROKERS").is_ok_and(|b| !b.is_empty()) {
        format!("test-{}.", Uuid::now_v7().simple())
    } else {
        String::new()
    };
    let _databases: Vec<TestDatabase> = ["account", "catalog", "order"]
        .iter()
        .map(|name| TestDatabase::adopt(&format!("{prefix}{name}")))
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .env("POSTGRES_URL", shop_testkit::postgres_server_url())
        .env("SHOP_DATABASE_PREFIX", &prefix)
        .env("HTTP_LISTEN_ADDR", "127.0.0.1:0")
        .env("ACCOUNT_GRPC_LISTEN_ADDR", "127.0.0.1:0")
        .env("CATALOG_GRPC_LISTEN_ADDR", "127.0.0.1:0")
        .env("ORDER_GRPC_LISTEN_ADDR", "127.0.0.1:0")
        .env("RELAY_METRICS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("KAFKA_TOPIC_PREFIX", &topic_prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Failed to start shop");
    let stderr = child.stderr.take().unwrap();
    let logs =
        std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut playground, mut brokers, mut banner) = (None, None, Vec::new());
    while playground.is_none() {
        let line = stdout.next().expect("shop exited before it was up").unwrap();
        if let Some(rest) = line.split("GraphQL playground: ").nth(1) {
            playground = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.split(" at ").nth(1).filter(|_| line.contains("kafka")) {
            brokers = Some(rest.split_whitespace().next().unwrap().to_owned());
        }
        banner.push(line);
    }
    let playground = playground.unwrap();
    let graphql = playground.replace("/playground", "/graphql");
    let http = reqwest::Client::new();
    let post = |query: &str, variables: Value| {
        let request = http.post(&graphql).json(&json!({ "query": query, "variables": variables }));
        async move {
            let response: Value = request.send().await.unwrap().json().await.unwrap();
            assert!(response.get("errors").is_none(), "{response:#}");
            response["data"].clone()
        }
    };

    // Act: what a newcomer does first.
    let account = post(r#"mutation { createAccount(account: {name: "Ada"}) { id } }"#, json!({})).await;
    let account = account["createAccount"]["id"].as_str().unwrap().to_owned();
    let product =
        post(r#"mutation { createProduct(product: {name: "Kettle", price: 24.99}) { id } }"#, json!({}))
            .await;
    let product = product["createProduct"]["id"].as_str().unwrap().to_owned();
    let order = post(
        "mutation($o: OrderInput!) { createOrder(order: $o) { id status } }",
        json!({ "o": { "accountId": account, "products": [{ "id": product, "quantity": 2 }] } }),
    )
    .await;
    let order_id = order["createOrder"]["id"].as_str().unwrap().to_owned();
    let account = || async {
        post("{ accounts { name orders { id status totalPrice } } }", json!({})).await["accounts"][0].clone()
    };
    eventually(Duration::from_secs(15), "the order to be confirmed", || async {
        account().await["orders"][0]["status"] == "CONFIRMED"
    })
    .await;
    let confirmed = account().await;
    let brokers = brokers.expect("the banner names the broker");
    let events = TestBroker::at(brokers, topic_prefix.as_str())
        .read_topic(&format!("{topic_prefix}shop.orders.v1"), 2, Duration::from_secs(30))
        .await;

    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let logs = logs.join().unwrap();
    let rest_of_stdout: Vec<String> = stdout.map_while(Result::ok).collect();

    // Assert
    println!("{}", banner.join("\n"));
    assert!(playground.starts_with("http://127.0.0.1:"), "{playground}");
    assert_eq!(order["createOrder"]["status"], "PENDING");
    assert_eq!(
        confirmed,
        json!({ "name": "Ada", "orders": [{ "id": order_id, "status": "CONFIRMED", "totalPrice": 49.98 }] })
    );
    let types: Vec<&str> = events.iter().map(|e| e.headers["ce_type"].as_str()).collect();
    assert_eq!(types, ["shop.order.placed.v1", "shop.order.confirmed.v1"]);
    assert!(terminated.success());
    assert!(status.success(), "shop exited with {status}; logs:\n{}", logs.join("\n"));
    let errors: Vec<&String> = logs.iter().filter(|line| line.contains("ERROR")).collect();
    assert!(errors.is_empty(), "error lines in the log:\n{errors:#?}");
    assert!(rest_of_stdout.iter().any(|line| line.contains("gateway  stopped")), "{rest_of_stdout:?}");
    // Without `--auth dev` the original's clients need no token, and the banner says so.
    let disabled = rest_of_stdout.iter().find(|line| line.starts_with("Authentication is disabled"));
    assert!(disabled.is_some_and(|line| line.contains("--auth dev")), "{rest_of_stdout:?}");
}
