use std::process::Command;

use serde_json::Value;

use crate::helpers::start_shop;

/// Runs `shop tail` and returns the JSON lines it printed.
fn tail(brokers: &str, topic: &str, records: usize) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["tail", "--topic", topic, "--from-beginning", "--max-records", &records.to_string()])
        .args(["--kafka-brokers", brokers])
        .env("RUST_LOG", "warn")
        .output()
        .expect("Failed to run shop tail");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_the_order_and_account_events_with_their_cloudevents_headers() {
    // Arrange: an account and a confirmed order, published by the relay.
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let placed = shop.client.create_order(&ada, &[(&kettle, 1)]).await;
    let order_id = placed["id"].as_str().unwrap().to_owned();
    shop.settled_order(&order_id).await;
    let brokers = shop.shop.kafka_brokers.clone();
    let (orders_topic, accounts_topic) =
        (shop.broker.topic("shop.orders.v1"), shop.broker.topic("shop.accounts.v1"));

    // Act
    let (orders, accounts) = tokio::task::spawn_blocking(move || {
        (tail(&brokers, &orders_topic, 2), tail(&brokers, &accounts_topic, 1))
    })
    .await
    .unwrap();

    // Assert
    let types: Vec<&str> = orders.iter().map(|r| r["headers"]["ce_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["shop.order.placed.v1", "shop.order.confirmed.v1"]);
    for record in &orders {
        assert_eq!(record["key"], order_id.as_str());
        assert_eq!(record["headers"]["ce_specversion"], "1.0");
        assert_eq!(record["headers"]["ce_source"], "/shop/order");
        assert_eq!(record["headers"]["ce_subject"], order_id.as_str());
        assert_eq!(record["headers"]["content-type"], "application/json");
        assert!(record["headers"]["ce_id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
        assert!(record["headers"]["traceparent"].is_string());
        assert_eq!(record["value"]["order"]["id"], order_id.as_str());
    }
    assert_eq!(orders[1]["value"]["order"]["status"], "confirmed");
    assert_eq!(orders[1]["headers"]["ce_aggregateversion"], "2");
    assert_eq!(accounts[0]["headers"]["ce_type"], "shop.account.created.v1");
    assert_eq!(accounts[0]["value"]["account"]["name"], "Ada");
    shop.stop().await;
}
