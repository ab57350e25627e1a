use serde_json::json;
use shop_testkit::eventually;
use uuid::Uuid;

use crate::helpers::start_shop;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_confirmed_from_the_projection_with_the_catalogs_prices() {
    // Arrange
    let shop = start_shop().await;
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
