use shop_proto::catalog::v1::UpdateProductRequest;
use shop_testkit::outbox_rows;
use tonic::Code;

use crate::helpers::spawn_app;

fn update(id: &str, price_cents: i64, expected_version: Option<i64>) -> UpdateProductRequest {
    UpdateProductRequest {
        id: id.to_owned(),
        name: "Kettle".into(),
        description: "Boils water, quietly.".into(),
        price_cents,
        expected_version,
    }
}

#[tokio::test]
async fn update_product_stores_the_next_version_and_its_updated_event() {
    // Arrange
    let app = spawn_app().await;
    let created = app.client.post_product("Kettle", "Boils water, loudly.", 2_499).await.unwrap();

    // Act
    let updated = app.client.update_product(update(&created.id, 1_999, Some(1))).await.unwrap();

    // Assert
    assert_eq!((updated.version, updated.price_cents), (2, 1_999));
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(app.client.get_product(&created.id).await.unwrap(), updated);
    let outbox = outbox_rows(&app.database.pool).await;
    assert_eq!(outbox.len(), 2);
    let row = &outbox[1];
    assert_eq!(row.event_type, "shop.product.updated.v1");
    assert_eq!(row.aggregate_id.to_string(), created.id);
    assert_eq!(row.aggregate_version, 2);
    assert_eq!(row.payload["product"]["price_cents"], 1_999);
    assert_eq!(row.payload["product"]["description"], "Boils water, quietly.");
    assert_eq!(row.payload["product"]["version"], 2);
}

#[tokio::test]
async fn repeating_an_update_records_no_new_version() {
    let app = spawn_app().await;
    let created = app.client.post_product("Kettle", "", 2_499).await.unwrap();
    app.client.update_product(update(&created.id, 1_999, None)).await.unwrap();

    let again = app.client.update_product(update(&created.id, 1_999, None)).await.unwrap();

    assert_eq!(again.version, 2);
    assert_eq!(outbox_rows(&app.database.pool).await.len(), 2);
}

#[tokio::test]
async fn an_update_against_a_stale_version_is_aborted_and_writes_nothing() {
    let app = spawn_app().await;
    let created = app.client.post_product("Kettle", "", 2_499).await.unwrap();
    app.client.update_product(update(&created.id, 1_999, Some(1))).await.unwrap();

    let status = app.client.update_product(update(&created.id, 999, Some(1))).await.unwrap_err();

    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(app.client.get_product(&created.id).await.unwrap().price_cents, 1_999);
    assert_eq!(outbox_rows(&app.database.pool).await.len(), 2);
}

#[tokio::test]
async fn updating_an_unknown_product_is_not_found() {
    let app = spawn_app().await;

    let status =
        app.client.update_product(update(&uuid::Uuid::now_v7().to_string(), 1, None)).await.unwrap_err();

    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn concurrent_updates_take_consecutive_versions() {
    let app = spawn_app().await;
    let created = app.client.post_product("Kettle", "", 1).await.unwrap();

    let updates = (2..12).map(|price| {
        let client = app.client.clone();
        let id = created.id.clone();
        tokio::spawn(async move { client.update_product(update(&id, price, None)).await })
    });
    for update in futures::future::join_all(updates).await {
        update.unwrap().unwrap();
    }

    let versions: Vec<i64> =
        outbox_rows(&app.database.pool).await.iter().map(|r| r.aggregate_version).collect();
    assert_eq!(versions, (1..=11).collect::<Vec<_>>());
}
