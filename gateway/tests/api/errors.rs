//! Bad input and failures through GraphQL: every error carries an `extensions.code` and no internals.

use serde_json::json;
use shop_testkit::count_rows;

use crate::helpers::{error_codes, spawn_app};

#[tokio::test]
async fn a_missing_required_field_fails_validation() {
    let app = spawn_app().await;

    let literal = app.client.graphql("mutation { createAccount(account: {}) { id } }", json!({})).await;
    let variable = app
        .client
        .graphql(
            "mutation($product: ProductInput!) { createProduct(product: $product) { id } }",
            json!({ "product": { "description": "no name, no price" } }),
        )
        .await;

    assert_eq!(error_codes(&literal), ["GRAPHQL_VALIDATION_FAILED"]);
    assert!(literal["errors"][0]["message"].as_str().unwrap().contains("name"), "{literal:#}");
    assert!(!error_codes(&variable).is_empty());
    assert!(error_codes(&variable).iter().all(|code| code == "GRAPHQL_VALIDATION_FAILED"), "{variable:#}");
}

#[tokio::test]
async fn a_document_that_is_not_graphql_fails_to_parse() {
    let app = spawn_app().await;

    let response = app.client.graphql("mutation { createAccount(", json!({})).await;

    assert_eq!(error_codes(&response), ["GRAPHQL_PARSE_FAILED"]);
}

#[tokio::test]
async fn a_negative_or_fractional_cent_price_is_bad_user_input() {
    let app = spawn_app().await;
    let create =
        "mutation($price: Float!) { createProduct(product: {name: \"Kettle\", price: $price}) { id } }";

    let negative = app.client.graphql(create, json!({ "price": -1.0 })).await;
    let fractional = app.client.graphql(create, json!({ "price": 1.005 })).await;

    assert_eq!(error_codes(&negative), ["BAD_USER_INPUT"]);
    assert!(negative["errors"][0]["message"].as_str().unwrap().contains("product.price"), "{negative:#}");
    assert_eq!(error_codes(&fractional), ["BAD_USER_INPUT"]);
    assert_eq!(negative["data"], serde_json::Value::Null);
}

#[tokio::test]
async fn rules_enforced_by_a_service_come_back_as_bad_user_input_with_the_fields() {
    let app = spawn_app().await;

    let response =
        app.client.graphql(r#"mutation { createAccount(account: {name: "   "}) { id } }"#, json!({})).await;

    assert_eq!(error_codes(&response), ["BAD_USER_INPUT"]);
    assert_eq!(
        response["errors"][0]["extensions"]["fields"],
        json!([{ "field": "name", "description": "must not be blank" }])
    );
}

#[tokio::test]
async fn unknown_accounts_and_products_are_not_found_and_nothing_is_stored() {
    let app = spawn_app().await;
    let account = app.client.create_account("Ada").await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    let ghost = uuid::Uuid::now_v7().to_string();
    let create = "mutation($order: OrderInput!) { createOrder(order: $order) { id } }";

    let unknown_account = app
        .client
        .graphql(
            create,
            json!({ "order": { "accountId": ghost, "products": [{ "id": kettle, "quantity": 1 }] } }),
        )
        .await;
    let unknown_product = app
        .client
        .graphql(
            create,
            json!({ "order": { "accountId": account, "products": [{ "id": ghost, "quantity": 1 }] } }),
        )
        .await;

    assert_eq!(error_codes(&unknown_account), ["NOT_FOUND"]);
    assert_eq!(error_codes(&unknown_product), ["NOT_FOUND"]);
    assert!(unknown_product["errors"][0]["message"].as_str().unwrap().contains(&ghost));
    assert_eq!(count_rows(&app.orders_database.pool, "orders").await, 0);
    assert_eq!(count_rows(&app.orders_database.pool, "outbox").await, 0);
}

#[tokio::test]
async fn ids_that_are_not_uuids_are_bad_user_input_naming_the_argument() {
    let app = spawn_app().await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;

    let order = app
        .client
        .graphql(
            "mutation($order: OrderInput!) { createOrder(order: $order) { id } }",
            json!({ "order": { "accountId": "ada", "products": [{ "id": kettle, "quantity": 1 }] } }),
        )
        .await;
    let account = app.client.graphql(r#"{ accounts(id: "42") { id } }"#, json!({})).await;

    assert_eq!(error_codes(&order), ["BAD_USER_INPUT"]);
    assert!(order["errors"][0]["message"].as_str().unwrap().contains("order.accountId"), "{order:#}");
    assert_eq!(error_codes(&account), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn quantities_below_one_and_empty_orders_are_bad_user_input() {
    let app = spawn_app().await;
    let account = app.client.create_account("Ada").await;
    let kettle = app.client.create_product("Kettle", "", 24.99).await;
    let create = "mutation($order: OrderInput!) { createOrder(order: $order) { id } }";

    let zero = app
        .client
        .graphql(
            create,
            json!({ "order": { "accountId": account, "products": [{ "id": kettle, "quantity": 0 }] } }),
        )
        .await;
    let negative = app
        .client
        .graphql(
            create,
            json!({ "order": { "accountId": account, "products": [{ "id": kettle, "quantity": -3 }] } }),
        )
        .await;
    let empty =
        app.client.graphql(create, json!({ "order": { "accountId": account, "products": [] } })).await;

    assert_eq!(error_codes(&zero), ["BAD_USER_INPUT"]);
    assert!(zero["errors"][0]["message"].as_str().unwrap().contains("order.products[0].quantity"));
    assert_eq!(error_codes(&negative), ["BAD_USER_INPUT"]);
    assert_eq!(error_codes(&empty), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn a_page_over_the_cap_is_bad_user_input() {
    let app = spawn_app().await;

    let accounts = app.client.graphql("{ accounts(pagination: {take: 101}) { id } }", json!({})).await;
    let products = app.client.graphql("{ products(pagination: {skip: -1}) { id } }", json!({})).await;

    assert_eq!(error_codes(&accounts), ["BAD_USER_INPUT"]);
    assert!(accounts["errors"][0]["message"].as_str().unwrap().contains("between 1 and 100"));
    assert_eq!(error_codes(&products), ["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn a_service_that_is_down_is_unavailable_without_leaking_details() {
    let mut app = spawn_app().await;
    app.stop_catalog_service().await;

    let response = app.client.graphql("{ products { id } }", json!({})).await;

    assert_eq!(error_codes(&response), ["UNAVAILABLE"]);
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert_eq!(message, "the catalog service is unavailable; retry later");
}

#[tokio::test]
async fn a_failure_inside_a_service_is_internal_and_says_nothing_of_its_cause() {
    // Arrange: the order service's database loses a table it reads.
    let app = spawn_app().await;
    let account = app.client.create_account("Ada").await;
    sqlx::query("ALTER TABLE order_lines RENAME TO order_lines_gone")
        .execute(&app.orders_database.pool)
        .await
        .unwrap();

    // Act
    let response = app
        .client
        .graphql("query($id: String!) { accounts(id: $id) { orders { id } } }", json!({ "id": account }))
        .await;

    // Assert: the code says what happened; nothing says why.
    assert_eq!(error_codes(&response), ["INTERNAL"]);
    let error = &response["errors"][0];
    assert_eq!(error["message"], "internal error");
    let body = response.to_string();
    for leak in ["order_lines", "relation", "does not exist", "sqlx", "database"] {
        assert!(!body.contains(leak), "the answer mentions {leak:?}: {body}");
    }
}
