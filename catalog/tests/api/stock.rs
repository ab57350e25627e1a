//! Products that track their stock: created with it, restocked and written off by staff.

use shop_proto::catalog::v1::{GetProductsRequest, PostProductRequest};
use shop_testkit::{count_rows, outbox_rows};
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{Ledger, TestApp, event_types_after, ledger, spawn_app};

fn fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    details.bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect()
}

async fn kettle_with_stock(app: &TestApp, stock: i64) -> String {
    app.client.post_product_with_stock("Kettle", "Boils water.", 2_499, stock).await.unwrap().id
}

#[tokio::test]
async fn a_product_posted_with_stock_tracks_it_and_one_posted_without_does_not() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let tracked = app.client.post_product_with_stock("Kettle", "Boils water.", 2_499, 7).await.unwrap();
    let untracked = app.client.post_product("Mug", "Holds tea.", 899).await.unwrap();

    // Assert: the answers, the stored rows and the created events all say so.
    assert_eq!((tracked.stock, untracked.stock), (Some(7), None));
    assert_eq!(
        ledger(&app.database.pool, &tracked.id).await,
        Ledger { received: 7, available: 7, held: 0, balanced: true }
    );
    let stored: (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT stock, stock_received FROM products WHERE id = $1")
            .bind(untracked.id.parse::<Uuid>().unwrap())
            .fetch_one(&app.database.pool)
            .await
            .unwrap();
    assert_eq!(stored, (None, None));
    let outbox = outbox_rows(&app.database.pool).await;
    assert_eq!(outbox[0].payload["product"]["stock"], 7);
    assert!(outbox[1].payload["product"].get("stock").is_none(), "{}", outbox[1].payload);
    assert_eq!(app.client.get_product(&tracked.id).await.unwrap().stock, Some(7));
    let listed = app.client.get_products(GetProductsRequest::default()).await.unwrap();
    assert_eq!(listed.iter().map(|p| p.stock).collect::<Vec<_>>(), [Some(7), None]);
}

#[tokio::test]
async fn a_product_may_start_with_no_stock_at_all() {
    let app = spawn_app().await;

    let product = app.client.post_product_with_stock("Kettle", "", 2_499, 0).await.unwrap();

    assert_eq!(product.stock, Some(0));
}

#[tokio::test]
async fn a_negative_or_huge_starting_stock_is_invalid_and_reported_with_the_other_fields() {
    let app = spawn_app().await;
    let post = |name: &str, stock: i64| PostProductRequest {
        name: name.into(),
        description: String::new(),
        price_cents: 1,
        stock: Some(stock),
    };

    let negative = app.client.raw().post_product(post(" ", -1)).await.unwrap_err();
    let huge = app.client.raw().post_product(post("Kettle", 1_000_000_001)).await.unwrap_err();

    assert_eq!(negative.code(), Code::InvalidArgument);
    assert_eq!(fields(&negative), ["name", "stock"]);
    assert_eq!(fields(&huge), ["stock"]);
    assert_eq!(count_rows(&app.database.pool, "products").await, 0);
}

#[tokio::test]
async fn a_restock_and_a_write_off_move_the_stock_and_record_each_version() {
    // Arrange
    let app = spawn_app().await;
    let id = kettle_with_stock(&app, 10).await;

    // Act
    let restocked = app.client.adjust_stock(&id, 5, Some(1)).await.unwrap();
    let written_off = app.client.adjust_stock(&id, -15, None).await.unwrap();

    // Assert
    assert_eq!((restocked.stock, restocked.version), (Some(15), 2));
    assert_eq!((written_off.stock, written_off.version), (Some(0), 3));
    assert_eq!(
        ledger(&app.database.pool, &id).await,
        Ledger { received: 0, available: 0, held: 0, balanced: true }
    );
    let outbox = outbox_rows(&app.database.pool).await;
    let updates: Vec<(i64, i64)> = outbox[1..]
        .iter()
        .map(|row| (row.aggregate_version, row.payload["product"]["stock"].as_i64().unwrap()))
        .collect();
    assert_eq!(updates, [(2, 15), (3, 0)]);
    assert_eq!(event_types_after(&app.database.pool, 1).await, ["shop.product.updated.v1"; 2]);
}

#[tokio::test]
async fn a_write_off_below_zero_is_a_failed_precondition_and_changes_nothing() {
    let app = spawn_app().await;
    let id = kettle_with_stock(&app, 3).await;

    let status = app.client.adjust_stock(&id, -4, None).await.unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("has 3 units in stock"), "{}", status.message());
    assert_eq!(app.client.get_product(&id).await.unwrap().stock, Some(3));
    assert_eq!(outbox_rows(&app.database.pool).await.len(), 1);
}

#[tokio::test]
async fn adjusting_a_product_that_does_not_track_its_stock_is_a_failed_precondition() {
    let app = spawn_app().await;
    let id = app.client.post_product("Mug", "", 899).await.unwrap().id;

    let status = app.client.adjust_stock(&id, 5, None).await.unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("does not track its stock"), "{}", status.message());
    let product = app.client.get_product(&id).await.unwrap();
    assert_eq!((product.stock, product.version), (None, 1));
}

#[tokio::test]
async fn an_adjustment_against_a_version_a_reservation_moved_on_is_aborted() {
    // Arrange: a reservation moves the product to version 2.
    let app = spawn_app().await;
    let id = kettle_with_stock(&app, 5).await;
    app.client.reserve_stock(&Uuid::now_v7().to_string(), &[(&id, 1)]).await.unwrap();

    // Act
    let status = app.client.adjust_stock(&id, 10, Some(1)).await.unwrap_err();

    // Assert
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    let product = app.client.get_product(&id).await.unwrap();
    assert_eq!((product.stock, product.version), (Some(4), 2));
}

#[tokio::test]
async fn a_zero_delta_and_a_malformed_id_are_invalid_together() {
    let app = spawn_app().await;

    let status = app.client.adjust_stock("kettle", 0, None).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(fields(&status), ["id", "delta"]);
}

#[tokio::test]
async fn adjusting_an_unknown_product_is_not_found() {
    let app = spawn_app().await;

    let status = app.client.adjust_stock(&Uuid::now_v7().to_string(), 1, None).await.unwrap_err();

    assert_eq!(status.code(), Code::NotFound);
}
