use serde_json::{Value, json};
use std::time::Duration;

use shop_testkit::{eventually, kafka::ReadRecord};
use uuid::Uuid;

use crate::helpers::{start_shop, start_shop_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_for_an_account_and_products_created_just_before_is_answered_confirmed_and_priced() {
    // Arrange: a projection that is up (an order went through), as it is for a client that comes a few seconds
    // after the start (the consumer group takes about 3 s to form).
    let shop = start_shop().await;
    let early = shop.client.create_account("Early").await;
    let tea = shop.client.create_product("Tea", "", 4.5).await;
    let first = shop.client.create_order(&early, &[(&tea, 1)]).await;
    assert_eq!(shop.settled_order(first["id"].as_str().unwrap()).await["status"], "CONFIRMED");

    // Act: what the original system's clients do: an account, products, and at once an order for them.
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "Boils water.", 24.99).await;
    let mug = shop.client.create_product("Mug", "Holds tea.", 8.5).await;
    let query = "mutation($order: OrderInput!) { createOrder(order: $order) {
        id status totalPrice products { id name description price quantity } } }";
    let order = json!({ "accountId": ada, "products": [{ "id": kettle, "quantity": 2 }, { "id": mug, "quantity": 1 }] });
    let placed = shop.client.data(query, json!({ "order": order })).await["createOrder"].clone();

    // Assert: the answer is the priced order.
    assert_eq!(placed["status"], "CONFIRMED");
    assert_eq!(placed["totalPrice"], 58.48);
    assert_eq!(
        placed["products"],
        json!([
            { "id": kettle, "name": "Kettle", "description": "Boils water.", "price": 24.99, "quantity": 2 },
            { "id": mug, "name": "Mug", "description": "Holds tea.", "price": 8.5, "quantity": 1 },
        ])
    );
    let id = placed["id"].as_str().unwrap().to_owned();
    let of_the_order = move |record: &ReadRecord| record.key == id;
    let records = shop
        .broker
        .read_until(&shop.broker.topic("shop.orders.v1"), Duration::from_secs(30), move |records| {
            records.iter().filter(|record| of_the_order(record)).count() >= 2
        })
        .await;
    let events: Vec<(String, i64)> = records
        .iter()
        .filter(|record| record.key == placed["id"].as_str().unwrap())
        .map(|record| (record.headers["ce_type"].clone(), record.version()))
        .collect();
    assert_eq!(events, [("shop.order.placed.v1".into(), 1), ("shop.order.confirmed.v1".into(), 2)]);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_priced_answer_an_order_is_answered_pending_then_confirmed_from_the_projection() {
    // Arrange
    let shop = start_shop_with(|settings| settings.order_priced_answer_wait_ms = 0).await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let mug = shop.client.create_product("Mug", "", 8.5).await;

    // Act
    let placed = shop.client.create_order(&ada, &[(&kettle, 2), (&mug, 1)]).await;
    let order = shop.settled_order(placed["id"].as_str().unwrap()).await;

    // Assert
    assert_eq!(placed["status"], "PENDING");
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(order["totalPrice"], 58.48);
    assert_eq!(
        order["products"],
        json!([
            { "id": kettle, "name": "Kettle", "price": 24.99, "quantity": 2 },
            { "id": mug, "name": "Mug", "price": 8.5, "quantity": 1 },
        ])
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_product_gets_the_order_rejected_with_its_reason() {
    // Arrange: a projection that is up (an order went through), so the rejection comes after the wait, not
    // because the consumer was still joining its group.
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let first = shop.client.create_order(&ada, &[(&kettle, 1)]).await;
    assert_eq!(shop.settled_order(first["id"].as_str().unwrap()).await["status"], "CONFIRMED");
    let ghost = Uuid::now_v7().to_string();

    // Act
    let placed = shop.client.create_order(&ada, &[(&kettle, 1), (&ghost, 1)]).await;
    let order = shop.settled_order(placed["id"].as_str().unwrap()).await;

    // Assert
    assert_eq!(order["status"], "REJECTED");
    assert_eq!(order["rejectionReason"], format!("unknown products: {ghost}"));
    assert_eq!(order["totalPrice"], serde_json::Value::Null);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_still_confirmed_while_the_account_and_catalog_services_are_down() {
    // Arrange: the projection has learnt of the account and the product (an order went through).
    let mut shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;
    let first = shop.client.create_order(&ada, &[(&kettle, 1)]).await;
    assert_eq!(shop.settled_order(first["id"].as_str().unwrap()).await["status"], "CONFIRMED");

    // Act: both services go down; orders keep coming.
    shop.shop.stop_part("account");
    shop.shop.stop_part("catalog");
    // The servers drain their in-flight calls first; wait until the gateway sees them gone.
    let accounts = || async { shop.client.graphql("{ accounts { id } }", json!({})).await };
    eventually(std::time::Duration::from_secs(5), "the gateway to see the account service gone", || async {
        accounts().await["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    })
    .await;
    let accounts_down = accounts().await;
    let placed = shop.client.create_order(&ada, &[(&kettle, 3)]).await;
    let order = shop.settled_order(placed["id"].as_str().unwrap()).await;

    // Assert
    assert_eq!(accounts_down["errors"][0]["extensions"]["code"], "UNAVAILABLE");
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(order["totalPrice"], 74.97);
    shop.stop().await;
}

/// `POST /api/v1/order` as a REST client sends it; the status and the body.
async fn place_over_rest(
    shop: &crate::helpers::TestShop,
    account: &str,
    product: &str,
) -> (u16, String, Value) {
    let url = format!("http://{}/api/v1/order", shop.shop.gateway_addr);
    let order = json!({ "account_id": account, "lines": [{ "product_id": product, "quantity": 2 }] });
    let response = shop.http.post(url).json(&order).send().await.unwrap();
    let status = response.status().as_u16();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    (status, location, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_rest_a_pending_order_is_202_at_its_location_and_the_same_order_graphql_shows() {
    // Arrange
    let shop = start_shop_with(|settings| settings.order_priced_answer_wait_ms = 0).await;
    let ada = shop.client.create_account("Ada").await;
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;

    // Act
    let (status, location, placed) = place_over_rest(&shop, &ada, &kettle).await;
    let order = shop.settled_order(placed["id"].as_str().unwrap()).await;

    // Assert
    assert_eq!((status, &placed["status"]), (202, &json!("pending")), "{placed:#}");
    assert_eq!(location, format!("/api/v1/order/{}", placed["id"].as_str().unwrap()));
    let url = format!("http://{}{location}", shop.shop.gateway_addr);
    let read: Value = shop.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!((&order["status"], &read["status"]), (&json!("CONFIRMED"), &json!("confirmed")));
    assert_eq!(read["total_price_cents"], 4_998);
    assert_eq!(order["totalPrice"], 49.98);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_rest_an_order_priced_at_once_is_201_as_graphql_answers_it_confirmed() {
    // Arrange: a projection that is up (an order went through).
    let shop = start_shop().await;
    let ada = shop.client.create_account("Ada").await;
    let tea = shop.client.create_product("Tea", "", 4.5).await;
    let first = shop.client.create_order(&ada, &[(&tea, 1)]).await;
    assert_eq!(shop.settled_order(first["id"].as_str().unwrap()).await["status"], "CONFIRMED");
    let kettle = shop.client.create_product("Kettle", "", 24.99).await;

    // Act
    let (status, _, placed) = place_over_rest(&shop, &ada, &kettle).await;

    // Assert
    assert_eq!((status, &placed["status"]), (201, &json!("confirmed")), "{placed:#}");
    assert_eq!(placed["total_price_cents"], 4_998);
    assert_eq!(placed["lines"][0]["product"]["unit_price_cents"], 2_499);
    shop.stop().await;
}
