//! Retrying an order placement safely through the gateway: GraphQL's `idempotencyKey` and REST's `Idempotency-Key`
//! reach the order service, a retry answers the first order, and the key with another order is a conflict.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{error_codes, spawn_app},
    openapi::Rest,
};

const CREATE_ORDER: &str = "mutation($order: OrderInput!, $key: String) {
    createOrder(order: $order, idempotencyKey: $key) { id status } }";

#[tokio::test]
async fn graphql_retries_with_the_same_key_answer_one_order_and_another_order_is_a_conflict() {
    // Arrange
    let app = spawn_app().await;
    let account = app.client.create_account("Ada").await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    let order =
        |quantity: i32| json!({ "accountId": account, "products": [{ "id": kettle, "quantity": quantity }] });
    let place =
        |order: Value| app.client.graphql(CREATE_ORDER, json!({ "order": order, "key": "checkout-42" }));

    // Act
    let first = place(order(1)).await;
    let retry = place(order(1)).await;
    let other = place(order(2)).await;

    // Assert
    assert_eq!(retry["data"]["createOrder"]["id"], first["data"]["createOrder"]["id"], "{retry:#}");
    assert_eq!(error_codes(&other), ["CONFLICT"], "{other:#}");
    let orders = app.client.data("{ accounts { orders { id } } }", json!({})).await;
    assert_eq!(orders["accounts"][0]["orders"].as_array().unwrap().len(), 1, "{orders:#}");
}

#[tokio::test]
async fn rest_reads_the_idempotency_key_header() {
    // Arrange
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let account = app.client.create_account("Ada").await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    let order = |quantity: i32| json!({ "account_id": account, "lines": [{ "product_id": kettle, "quantity": quantity }] });
    let place = |body: Value, key: &str| {
        rest.send(rest.request(Method::POST, "/api/v1/order").header("Idempotency-Key", key).json(&body))
    };

    // Act
    let first = place(order(1), "checkout-42").await;
    let retry = place(order(1), "checkout-42").await;
    let other = place(order(2), "checkout-42").await;
    let malformed = place(order(1), "a key with spaces").await;

    // Assert
    assert!([201, 202].contains(&first.status), "{:#}", first.body);
    assert_eq!(retry.body["id"], first.body["id"], "{:#}", retry.body);
    assert_eq!(other.status, 409, "{:#}", other.body);
    assert_eq!(malformed.status, 422, "{:#}", malformed.body);
    assert_eq!(malformed.fields(), ["idempotency_key"], "{:#}", malformed.body);
}
