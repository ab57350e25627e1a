//! Retry-safe order placement end to end: identical `createOrder` calls racing through the gateway place one order,
//! and one `OrderPlaced` reaches the order topic.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::start_shop;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_identical_create_orders_at_once_put_one_order_placed_on_the_topic() {
    // Arrange
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let query = "mutation($order: OrderInput!, $key: String) {
        createOrder(order: $order, idempotencyKey: $key) { id } }";
    let variables = json!({
        "order": { "accountId": ada, "products": [{ "id": kettle, "quantity": 1 }] },
        "key": "double-click",
    });

    // Act: a client retrying eagerly, twenty times at once.
    let attempts = (0..20).map(|_| shop.client.data(query, variables.clone()));
    let answers: Vec<Value> = futures::future::join_all(attempts).await;

    // Assert: one order answered to all, and once its confirmation is on the topic, one placement before it.
    let id = answers[0]["createOrder"]["id"].as_str().unwrap().to_owned();
    assert!(answers.iter().all(|answer| answer["createOrder"]["id"] == id.as_str()), "{answers:?}");
    let records = shop
        .broker
        .read_until(&shop.broker.topic("shop.orders.v1"), Duration::from_secs(30), |records| {
            records.iter().any(|record| record.headers["ce_type"] == "shop.order.confirmed.v1")
        })
        .await;
    let placed: Vec<&str> = records
        .iter()
        .filter(|record| record.headers["ce_type"] == "shop.order.placed.v1")
        .map(|record| record.key.as_str())
        .collect();
    assert_eq!(placed, [id.as_str()]);
    let orders = shop.client.data("{ accounts { orders { id } } }", json!({})).await;
    assert_eq!(orders["accounts"][0]["orders"], json!([{ "id": id }]));
    shop.stop().await;
}
