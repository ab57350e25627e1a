use shop_testkit::{count_rows, outbox_rows};
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn post_product_persists_the_product_and_its_created_event_together() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let product = app.client.post_product("Kettle", "Boils water, loudly.", 2_499).await.unwrap();

    // Assert
    let id: Uuid = product.id.parse().unwrap();
    assert_eq!((product.name.as_str(), product.price_cents, product.version), ("Kettle", 2_499, 1));
    let stored: (String, String, i64) =
        sqlx::query_as("SELECT name, description, price_cents FROM products WHERE id = $1")
            .bind(id)
            .fetch_one(&app.database.pool)
            .await
            .unwrap();
    assert_eq!(stored, ("Kettle".into(), "Boils water, loudly.".into(), 2_499));

    let outbox = outbox_rows(&app.database.pool).await;
    assert_eq!(outbox.len(), 1);
    let row = &outbox[0];
    assert_eq!(row.event_type, "shop.product.created.v1");
    assert_eq!(row.aggregate_type, "product");
    assert_eq!((row.aggregate_id, row.aggregate_version), (id, 1));
    assert_eq!(row.topic, "shop.products.v1");
    let payload = &row.payload["product"];
    assert_eq!(payload["id"], id.to_string());
    assert_eq!(payload["name"], "Kettle");
    assert_eq!(payload["description"], "Boils water, loudly.");
    assert_eq!(payload["price_cents"], 2_499);
    assert_eq!(payload["version"], 1);
}

#[tokio::test]
async fn post_product_reports_every_invalid_field_and_writes_nothing() {
    let app = spawn_app().await;

    let status = app.client.post_product("  ", &"d".repeat(5_001), -1).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<_> =
        details.bad_request().unwrap().field_violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["name", "description", "price_cents"]);
    assert_eq!(count_rows(&app.database.pool, "products").await, 0);
    assert_eq!(count_rows(&app.database.pool, "outbox").await, 0);
}

#[tokio::test]
async fn a_free_product_without_description_is_accepted() {
    let app = spawn_app().await;

    let product = app.client.post_product("Sticker", "", 0).await.unwrap();

    assert_eq!((product.description.as_str(), product.price_cents), ("", 0));
}
