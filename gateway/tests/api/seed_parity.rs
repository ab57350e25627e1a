//! The original system's queries and mutations, as its users sent them.

use std::sync::atomic::Ordering;

use serde_json::json;
use shop_events::TraceContext;
use shop_testkit::outbox_rows;

use crate::helpers::spawn_app;

#[tokio::test]
async fn create_account_product_and_order_then_read_the_account_with_its_orders() {
    // Arrange
    let app = spawn_app().await;

    // Act: the three mutations.
    let account = app
        .client
        .data(r#"mutation { createAccount(account: {name: "Ada Lovelace"}) { id name } }"#, json!({}))
        .await["createAccount"]
        .clone();
    let kettle = app
        .client
        .data(
            r#"mutation { createProduct(product: {name: "Kettle", description: "Boils water.", price: 24.99}) {
                id name description price
            } }"#,
            json!({}),
        )
        .await["createProduct"]
        .clone();
    let mug = app.client.create_product("Mug", "Holds tea.", 8.5).await;
    let account_id = account["id"].as_str().unwrap();
    let kettle_id = kettle["id"].as_str().unwrap();
    let order = app
        .client
        .data(
            "mutation($order: OrderInput!) { createOrder(order: $order) {
                id createdAt totalPrice status accountId
                products { id name description price quantity }
            } }",
            json!({ "order": { "accountId": account_id, "products": [
                { "id": kettle_id, "quantity": 2 }, { "id": mug, "quantity": 1 }, { "id": kettle_id, "quantity": 1 }
            ] } }),
        )
        .await["createOrder"]
        .clone();

    // Assert: what the mutations answered.
    assert_eq!(account["name"], "Ada Lovelace");
    assert_eq!(
        kettle,
        json!({ "id": kettle_id, "name": "Kettle", "description": "Boils water.", "price": 24.99 })
    );
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(order["accountId"], account_id);
    assert_eq!(order["totalPrice"], 83.47);
    assert_eq!(
        order["products"],
        json!([
            { "id": kettle_id, "name": "Kettle", "description": "Boils water.", "price": 24.99, "quantity": 3 },
            { "id": mug, "name": "Mug", "description": "Holds tea.", "price": 8.5, "quantity": 1 },
        ])
    );

    // Assert: the account with its orders, as the original's clients read it.
    let accounts = app
        .client
        .data(
            "query($id: String) { accounts(id: $id) { id name orders { id totalPrice products { name quantity } } } }",
            json!({ "id": account_id }),
        )
        .await;
    assert_eq!(
        accounts["accounts"],
        json!([{ "id": account_id, "name": "Ada Lovelace", "orders": [{
            "id": order["id"], "totalPrice": 83.47,
            "products": [{ "name": "Kettle", "quantity": 3 }, { "name": "Mug", "quantity": 1 }],
        }] }])
    );
}

#[tokio::test]
async fn products_are_listed_paged_searched_and_found_by_id() {
    let app = spawn_app().await;
    let kettle = app.client.create_product("Kettle", "Stainless steel electric kettle.", 24.99).await;
    app.client.create_product("Teapot", "Porcelain; pairs well with a kettle.", 19.99).await;
    app.client.create_product("Mug", "For tea or coffee.", 8.99).await;

    let all = app.client.data("{ products { name } }", json!({})).await;
    let page = app.client.data("{ products(pagination: {skip: 1, take: 1}) { name } }", json!({})).await;
    let search = app.client.data(r#"{ products(query: "kettle") { name price } }"#, json!({})).await;
    let by_id =
        app.client.data("query($id: String) { products(id: $id) { name } }", json!({ "id": kettle })).await;
    let unknown = app
        .client
        .data("query($id: String) { products(id: $id) { name } }", json!({ "id": uuid::Uuid::now_v7() }))
        .await;

    assert_eq!(all["products"], json!([{ "name": "Kettle" }, { "name": "Teapot" }, { "name": "Mug" }]));
    assert_eq!(page["products"], json!([{ "name": "Teapot" }]));
    assert_eq!(
        search["products"],
        json!([{ "name": "Kettle", "price": 24.99 }, { "name": "Teapot", "price": 19.99 }])
    );
    assert_eq!(by_id["products"], json!([{ "name": "Kettle" }]));
    assert_eq!(unknown["products"], json!([]));
}

#[tokio::test]
async fn account_orders_are_loaded_in_one_call_for_every_account() {
    // Arrange
    let app = spawn_app().await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    for name in ["Ada", "Grace", "Edsger", "Barbara"] {
        let account = app.client.create_account(name).await;
        app.client.create_order(&account, &[(&kettle, 1)]).await;
        app.client.create_order(&account, &[(&kettle, 2)]).await;
    }
    let calls_before = app.order_list_calls.load(Ordering::SeqCst);

    // Act
    let data = app.client.data("{ accounts { name orders { totalPrice } } }", json!({})).await;

    // Assert
    let accounts = data["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 4);
    for account in accounts {
        assert_eq!(account["orders"], json!([{ "totalPrice": 49.98 }, { "totalPrice": 24.99 }]), "{account}");
    }
    assert_eq!(app.order_list_calls.load(Ordering::SeqCst) - calls_before, 1);
}

#[tokio::test]
async fn an_order_can_be_read_by_id_and_an_unknown_one_is_null() {
    let app = spawn_app().await;
    let account = app.client.create_account("Ada").await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    let placed = app.client.create_order(&account, &[(&kettle, 1)]).await;

    let read = app
        .client
        .data(
            "query($id: String!) { order(id: $id) { id status totalPrice accountId } }",
            json!({ "id": placed["id"] }),
        )
        .await;
    let unknown = app
        .client
        .data("query($id: String!) { order(id: $id) { id } }", json!({ "id": uuid::Uuid::now_v7() }))
        .await;

    assert_eq!(read["order"]["status"], "CONFIRMED");
    assert_eq!(read["order"]["accountId"], account);
    assert_eq!(unknown["order"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_product_update_is_visible_and_checked_against_the_expected_version() {
    let app = spawn_app().await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    let update = "mutation($id: String!, $version: Int) {
        updateProduct(id: $id, product: {name: \"Kettle\", price: 19.99}, expectedVersion: $version) { price version }
    }";

    let updated = app.client.data(update, json!({ "id": kettle, "version": 1 })).await;
    let stale = app.client.graphql(update, json!({ "id": kettle, "version": 1 })).await;

    assert_eq!(updated["updateProduct"], json!({ "price": 19.99, "version": 2 }));
    assert_eq!(crate::helpers::error_codes(&stale), ["CONFLICT"]);
}

#[tokio::test]
async fn the_callers_traceparent_reaches_the_order_events() {
    let app = spawn_app().await;
    let account = app.client.create_account("Ada").await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    let trace = TraceContext::new_root();

    app.http
        .post(format!("{}/graphql", app.base_url))
        .header("traceparent", trace.traceparent())
        .json(&json!({
            "query": "mutation($order: OrderInput!) { createOrder(order: $order) { id } }",
            "variables": { "order": { "accountId": account, "products": [{ "id": kettle, "quantity": 1 }] } },
        }))
        .send()
        .await
        .unwrap();

    let rows = outbox_rows(&app.orders_database.pool).await;
    assert_eq!(rows.len(), 2);
    for row in rows {
        let stored = TraceContext::parse(row.traceparent.as_deref().unwrap(), None).unwrap();
        assert_eq!(stored.trace_id(), trace.trace_id());
    }
}

#[tokio::test]
async fn id_variables_may_be_declared_string_as_in_the_original_or_id() {
    let app = spawn_app().await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    let introspected = app
        .client
        .data(r#"{ __type(name: "Query") { fields { name args { name type { name } } } } }"#, json!({}))
        .await;

    let as_string =
        app.client.data("query($id: String) { products(id: $id) { name } }", json!({ "id": kettle })).await;
    let as_id =
        app.client.data("query($id: ID) { products(id: $id) { name } }", json!({ "id": kettle })).await;

    assert_eq!(as_string["products"], json!([{ "name": "Kettle" }]));
    assert_eq!(as_id, as_string);
    let fields = introspected["__type"]["fields"].as_array().unwrap();
    let products = fields.iter().find(|field| field["name"] == "products").unwrap();
    assert!(
        products["args"].as_array().unwrap().contains(&json!({ "name": "id", "type": { "name": "String" } }))
    );
}
