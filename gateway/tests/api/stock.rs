//! The stock saga's public face, over GraphQL and REST against the real services: stock on products, staff
//! restocking and writing off, cancelling orders, and the saga's history on every order. Who may do it is in
//! `authorization.rs`.

use serde_json::{Value, json};
use shop_testkit::graphql::GraphqlClient;
use uuid::Uuid;

use crate::{
    helpers::{Decided, error_codes, spawn_app, spawn_app_deciding},
    openapi::Rest,
};

pub(crate) const CREATE_PRODUCT: &str =
    "mutation($product: ProductInput!) { createProduct(product: $product) { id stock version } }";
pub(crate) const ADJUST_STOCK: &str = "mutation($id: String!, $delta: Int!, $expectedVersion: Int) {
    adjustStock(id: $id, delta: $delta, expectedVersion: $expectedVersion) { id stock version }
}";
pub(crate) const CANCEL_ORDER: &str = "mutation($id: String!) {
    cancelOrder(id: $id) { id status version stockReleasePending history { kind at detail } }
}";

/// Adds a product with `stock` (untracked when `None`) over GraphQL; returns it (`id stock version`).
pub(crate) async fn product_with_stock(client: &GraphqlClient, name: &str, stock: Option<i64>) -> Value {
    let product = json!({ "name": name, "description": format!("A {name}"), "price": 24.99, "stock": stock });
    client.data(CREATE_PRODUCT, json!({ "product": product })).await["createProduct"].clone()
}

fn id(entity: &Value) -> &str {
    entity["id"].as_str().unwrap()
}

/// The kinds of an order's history, in order; and checks that its steps are in time order.
fn step_kinds(order: &Value, kind: &str) -> Vec<String> {
    let history = order["history"].as_array().unwrap_or_else(|| panic!("no history in {order:#}"));
    let times: Vec<&str> = history.iter().map(|step| step["at"].as_str().unwrap()).collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> = times.iter().map(|at| at.parse().unwrap()).collect();
    assert!(parsed.is_sorted(), "the history is not oldest first: {order:#}");
    history.iter().map(|step| step[kind].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_products_stock_is_set_at_creation_and_reads_the_same_through_graphql_and_rest() {
    // Arrange
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;

    // Act
    let kettle = product_with_stock(&app.client, "Kettle", Some(5)).await;
    let mug = product_with_stock(&app.client, "Mug", None).await;
    let teapot =
        rest.post("/api/v1/product", json!({ "name": "Teapot", "price_cents": 1_999, "stock": 0 })).await;

    // Assert: GraphQL and REST read the same stock, null (REST: absent) when untracked.
    assert_eq!((kettle["stock"].clone(), mug["stock"].clone()), (json!(5), Value::Null));
    assert_eq!(teapot.status, 201, "{:#}", teapot.body);
    assert_eq!(teapot.body["stock"], 0);
    let products = app.client.data("{ products { name stock } }", json!({})).await;
    assert_eq!(
        products["products"],
        json!([
            { "name": "Kettle", "stock": 5 },
            { "name": "Mug", "stock": null },
            { "name": "Teapot", "stock": 0 },
        ])
    );
    let read = rest.get(&format!("/api/v1/product/{}", id(&kettle))).await;
    assert_eq!(read.body["stock"], 5);
    let untracked = rest.get(&format!("/api/v1/product/{}", id(&mug))).await;
    assert!(untracked.body.get("stock").is_none(), "{:#}", untracked.body);
    let listed = rest.get("/api/v1/products").await;
    let stocks: Vec<Value> = listed.body.as_array().unwrap().iter().map(|p| p["stock"].clone()).collect();
    assert_eq!(stocks, [json!(5), Value::Null, json!(0)]);
}

#[tokio::test]
async fn stock_is_never_negative_at_creation_and_never_changed_by_replacing_a_products_fields() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let kettle = product_with_stock(&app.client, "Kettle", Some(5)).await;
    let update = "mutation($id: String!, $product: ProductInput!) {
        updateProduct(id: $id, product: $product) { stock version }
    }";

    let negative = app
        .client
        .graphql(CREATE_PRODUCT, json!({ "product": { "name": "Mug", "price": 6.5, "stock": -1 } }))
        .await;
    let negative_rest =
        rest.post("/api/v1/product", json!({ "name": "Mug", "price_cents": 650, "stock": -1 })).await;
    let replaced = app
        .client
        .data(update, json!({ "id": id(&kettle), "product": { "name": "Kettle", "price": 19.99 } }))
        .await;
    let restocked_by_update = app
        .client
        .graphql(
            update,
            json!({ "id": id(&kettle), "product": { "name": "Kettle", "price": 1, "stock": 9 } }),
        )
        .await;

    assert_eq!(error_codes(&negative), ["BAD_USER_INPUT"], "{negative:#}");
    assert_eq!(negative_rest.status, 422, "{:#}", negative_rest.body);
    assert_eq!(replaced["updateProduct"], json!({ "stock": 5, "version": 2 }), "the stock stays");
    assert_eq!(error_codes(&restocked_by_update), ["BAD_USER_INPUT"]);
    assert!(restocked_by_update["errors"][0]["message"].as_str().unwrap().contains("adjustStock"));
    assert_eq!(
        app.client.data("{ products { name stock } }", json!({})).await["products"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn staff_restock_and_write_off_and_what_would_break_the_stock_is_a_conflict_that_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let kettle = product_with_stock(&app.client, "Kettle", Some(5)).await;
    let mug = product_with_stock(&app.client, "Mug", None).await;
    let adjust = |id: &str, delta: i64, expected_version: Option<i64>| {
        let variables = json!({ "id": id, "delta": delta, "expectedVersion": expected_version });
        let client = app.client.clone();
        async move { client.graphql(ADJUST_STOCK, variables).await }
    };

    // Act and assert: a restock at the version read, then a write-off of everything.
    let restocked = adjust(id(&kettle), 7, Some(1)).await;
    assert_eq!(restocked["data"]["adjustStock"]["stock"], 12, "{restocked:#}");
    assert_eq!(restocked["data"]["adjustStock"]["version"], 2);
    let written_off = adjust(id(&kettle), -12, None).await;
    assert_eq!(written_off["data"]["adjustStock"]["stock"], 0, "{written_off:#}");

    // What the catalog must refuse: below zero, an untracked product, a stale version.
    for (refused, what) in [
        (adjust(id(&kettle), -1, None).await, "below zero"),
        (adjust(id(&mug), 1, None).await, "an untracked product"),
        (adjust(id(&kettle), 1, Some(1)).await, "a stale version"),
    ] {
        assert_eq!(error_codes(&refused), ["CONFLICT"], "{what}: {refused:#}");
        assert!(refused["data"].is_null(), "{what}: {refused:#}");
    }
    assert_eq!(error_codes(&adjust(&Uuid::now_v7().to_string(), 1, None).await), ["NOT_FOUND"]);
    assert_eq!(error_codes(&adjust("nope", 1, None).await), ["BAD_USER_INPUT"]);
    assert_eq!(error_codes(&adjust(id(&kettle), 0, None).await), ["BAD_USER_INPUT"]);
    let products = app.client.data("{ products { name stock version } }", json!({})).await;
    assert_eq!(
        products["products"],
        json!([{ "name": "Kettle", "stock": 0, "version": 3 }, { "name": "Mug", "stock": null, "version": 1 }]),
        "nothing changed after the write-off"
    );
}

#[tokio::test]
async fn over_rest_stock_is_adjusted_at_the_products_stock_with_the_same_rules() {
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let kettle = product_with_stock(&app.client, "Kettle", Some(5)).await;
    let mug = product_with_stock(&app.client, "Mug", None).await;
    let stock = |product: &Value| format!("/api/v1/product/{}/stock", id(product));

    let restocked = rest.post(&stock(&kettle), json!({ "delta": 3, "expected_version": 1 })).await;
    assert_eq!(restocked.status, 200, "{:#}", restocked.body);
    assert_eq!((restocked.body["stock"].clone(), restocked.body["version"].clone()), (json!(8), json!(2)));

    for (path, body, what) in [
        (stock(&kettle), json!({ "delta": -9 }), "below zero"),
        (stock(&mug), json!({ "delta": 1 }), "an untracked product"),
        (stock(&kettle), json!({ "delta": 1, "expected_version": 1 }), "a stale version"),
    ] {
        let refused = rest.post(&path, body).await;
        assert_eq!(refused.status, 409, "{what}: {:#}", refused.body);
        assert_eq!(refused.body["code"], "CONFLICT");
        assert_eq!(refused.body["type"], "/api/v1/problems/conflict");
    }
    let missing =
        rest.post(&format!("/api/v1/product/{}/stock", Uuid::now_v7()), json!({ "delta": 1 })).await;
    assert_eq!((missing.status, missing.body["code"].as_str()), (404, Some("NOT_FOUND")));
    let camel_case = rest.post(&stock(&kettle), json!({ "delta": 1, "expectedVersion": 2 })).await;
    assert_eq!(camel_case.status, 422, "snake_case, as every REST body");
    let zero = rest.post(&stock(&kettle), json!({ "delta": 0 })).await;
    assert_eq!(zero.status, 422, "{:#}", zero.body);
    assert_eq!(rest.get(&format!("/api/v1/product/{}", id(&kettle))).await.body["stock"], 8);
}

#[tokio::test]
async fn an_order_not_decided_yet_is_cancelled_with_its_history_and_only_once() {
    // Arrange: orders stay pending.
    let app = spawn_app_deciding(Decided::Never, |_| {}).await;
    let rest = Rest::new(&app).await;
    let account = app.client.create_account("Ada").await;
    let kettle = product_with_stock(&app.client, "Kettle", Some(5)).await;
    let placed = app.client.create_order(&account, &[(id(&kettle), 1)]).await;
    assert_eq!(placed["status"], "PENDING");

    // Act
    let cancelled = app.client.data(CANCEL_ORDER, json!({ "id": id(&placed) })).await["cancelOrder"].clone();
    let again = app.client.graphql(CANCEL_ORDER, json!({ "id": id(&placed) })).await;

    // Assert
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(step_kinds(&cancelled, "kind"), ["PLACED", "CANCELLED"]);
    assert_eq!(cancelled["stockReleasePending"], false, "no stock was asked for: {cancelled:#}");
    assert_eq!(error_codes(&again), ["CONFLICT"], "{again:#}");
    let read = app
        .client
        .data("query($id: String!) { order(id: $id) { status version } }", json!({ "id": id(&placed) }))
        .await;
    assert_eq!(read["order"], json!({ "status": "CANCELLED", "version": cancelled["version"] }));
    let missing = app.client.graphql(CANCEL_ORDER, json!({ "id": Uuid::now_v7() })).await;
    assert_eq!(error_codes(&missing), ["NOT_FOUND"]);

    // The same over REST.
    let order = json!({ "account_id": account, "lines": [{ "product_id": id(&kettle), "quantity": 2 }] });
    let placed = rest.post("/api/v1/order", order).await;
    assert_eq!(placed.status, 202, "not decided yet: {:#}", placed.body);
    let cancel = format!("/api/v1/order/{}/cancel", id(&placed.body));
    let cancelled = rest.post(&cancel, json!({})).await;
    assert_eq!(cancelled.status, 200, "{:#}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(step_kinds(&cancelled.body, "step"), ["placed", "cancelled"]);
    assert_eq!(rest.get(placed.header("location")).await.body, cancelled.body);
    let again = rest.post(&cancel, json!({})).await;
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("CONFLICT")));
    let missing = rest.post(&format!("/api/v1/order/{}/cancel", Uuid::now_v7()), json!({})).await;
    assert_eq!((missing.status, missing.body["code"].as_str()), (404, Some("NOT_FOUND")));
}

#[tokio::test]
async fn a_confirmed_order_tells_its_steps_holds_its_stock_and_is_not_cancelled() {
    // Arrange: orders are decided at once, reserving their stock.
    let app = spawn_app().await;
    let rest = Rest::new(&app).await;
    let account = app.client.create_account("Ada").await;
    let kettle = product_with_stock(&app.client, "Kettle", Some(3)).await;
    let placed = app.client.create_order(&account, &[(id(&kettle), 2)]).await;
    let history = "query($id: String!) { order(id: $id) { status history { kind at detail } } }";

    // Act
    let order = app.client.data(history, json!({ "id": id(&placed) })).await["order"].clone();
    let cancelled = app.client.graphql(CANCEL_ORDER, json!({ "id": id(&placed) })).await;
    let cancelled_rest = rest.post(&format!("/api/v1/order/{}/cancel", id(&placed)), json!({})).await;

    // Assert
    assert_eq!(order["status"], "CONFIRMED", "{order:#}");
    let kinds = step_kinds(&order, "kind");
    assert_eq!(kinds.first().map(String::as_str), Some("PLACED"), "{order:#}");
    assert_eq!(kinds.last().map(String::as_str), Some("CONFIRMED"), "{order:#}");
    assert!(kinds.contains(&"STOCK_RESERVED".to_owned()), "{order:#}");
    let read = app
        .client
        .data("query($id: String) { products(id: $id) { stock } }", json!({ "id": id(&kettle) }))
        .await;
    assert_eq!(read["products"][0]["stock"], 1, "two of three are held for the order");
    assert_eq!(error_codes(&cancelled), ["CONFLICT"], "{cancelled:#}");
    assert_eq!(cancelled_rest.status, 409, "{:#}", cancelled_rest.body);
    let rest_order = rest.get(&format!("/api/v1/order/{}", id(&placed))).await;
    assert_eq!(rest_order.body["status"], "confirmed");
    let rest_kinds = step_kinds(&rest_order.body, "step");
    assert_eq!(rest_kinds, kinds.iter().map(|kind| kind.to_lowercase()).collect::<Vec<_>>());
    assert_eq!(rest_order.body["stock_release_pending"], false);
}
