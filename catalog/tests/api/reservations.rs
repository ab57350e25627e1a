//! ReserveStock and ReleaseStock: the order saga's stock step over gRPC, with the order id as idempotency key.

use std::collections::HashMap;

use shop_proto::catalog::v1::{ReservationStatus, ReserveStockRequest, StockLine, StockShortage};
use shop_testkit::outbox_rows;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{Ledger, TestApp, assert_every_ledger_balances, event_types_after, ledger, spawn_app};

fn order_id() -> String {
    Uuid::now_v7().to_string()
}

async fn tracked(app: &TestApp, name: &str, stock: i64) -> String {
    app.client.post_product_with_stock(name, "", 100, stock).await.unwrap().id
}

async fn untracked(app: &TestApp, name: &str) -> String {
    app.client.post_product(name, "", 100).await.unwrap().id
}

#[tokio::test]
async fn a_reservation_holds_every_line_and_moves_only_the_stock_that_is_tracked() {
    // Arrange
    let app = spawn_app().await;
    let (kettle, mug) = (tracked(&app, "Kettle", 5).await, untracked(&app, "Mug").await);
    let order = order_id();

    // Act
    let reservation = app.client.reserve_stock(&order, &[(&kettle, 2), (&mug, 3)]).await.unwrap();

    // Assert: reserved; the kettle moved to its next version, the mug did not move.
    assert_eq!((reservation.status(), reservation.version), (ReservationStatus::Reserved, 1));
    assert_eq!(reservation.lines.len(), 2);
    let kettle_now = app.client.get_product(&kettle).await.unwrap();
    assert_eq!((kettle_now.stock, kettle_now.version), (Some(3), 2));
    assert_eq!(app.client.get_product(&mug).await.unwrap().version, 1);
    assert_eq!(
        ledger(&app.database.pool, &kettle).await,
        Ledger { received: 5, available: 3, held: 2, balanced: true }
    );
    let outbox = outbox_rows(&app.database.pool).await;
    assert_eq!(
        event_types_after(&app.database.pool, 2).await,
        ["shop.product.updated.v1", "shop.stock.reserved.v1"]
    );
    assert_eq!(outbox[2].payload["product"]["stock"], 3);
    let reserved = &outbox[3];
    assert_eq!(
        (reserved.aggregate_type.as_str(), reserved.topic.as_str()),
        ("stock_reservation", "shop.stock-reservations.v1")
    );
    assert_eq!((reserved.aggregate_id.to_string(), reserved.aggregate_version), (order, 1));
    assert_eq!(reserved.payload["reservation"]["status"], "reserved");
    assert_eq!(reserved.payload["reservation"]["held"], true);
}

#[tokio::test]
async fn one_short_line_rejects_the_whole_order_naming_every_shortage() {
    // Arrange
    let app = spawn_app().await;
    let (kettle, mug) = (tracked(&app, "Kettle", 1).await, tracked(&app, "Mug", 5).await);
    let (unknown, order) = (Uuid::now_v7().to_string(), order_id());

    // Act
    let reservation =
        app.client.reserve_stock(&order, &[(&kettle, 2), (&mug, 1), (&unknown, 1)]).await.unwrap();
    let asked_again = app.client.reserve_stock(&order, &[(&mug, 1)]).await.unwrap();

    // Assert: rejected, nothing held, nothing moved; the answer, as stored, says what was short.
    assert_eq!(reservation.status(), ReservationStatus::Rejected);
    assert_eq!(asked_again, reservation);
    let shortages: HashMap<String, StockShortage> =
        reservation.shortages.into_iter().map(|s| (s.product_id.clone(), s)).collect();
    assert_eq!(shortages.len(), 2);
    assert_eq!((shortages[&kettle].requested, shortages[&kettle].available), (2, Some(1)));
    assert_eq!((shortages[&unknown].requested, shortages[&unknown].available), (1, None));
    assert_eq!(ledger(&app.database.pool, &kettle).await.available, 1);
    assert_eq!(
        ledger(&app.database.pool, &mug).await,
        Ledger { received: 5, available: 5, held: 0, balanced: true }
    );
    assert_eq!(event_types_after(&app.database.pool, 2).await, ["shop.stock.rejected.v1"]);
    let rejected = &outbox_rows(&app.database.pool).await[2];
    assert_eq!(rejected.payload["reservation"]["shortages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_order_of_untracked_products_is_reserved_without_moving_anything() {
    let app = spawn_app().await;
    let mug = untracked(&app, "Mug").await;

    let reservation = app.client.reserve_stock(&order_id(), &[(&mug, 10_000)]).await.unwrap();

    assert_eq!(reservation.status(), ReservationStatus::Reserved);
    assert_eq!(app.client.get_product(&mug).await.unwrap().version, 1);
    assert_eq!(event_types_after(&app.database.pool, 1).await, ["shop.stock.reserved.v1"]);
    let held: i64 = sqlx::query_scalar("SELECT quantity FROM stock_reservation_lines")
        .fetch_one(&app.database.pool)
        .await
        .unwrap();
    assert_eq!(held, 10_000, "the line is recorded all the same");
}

#[tokio::test]
async fn the_same_order_reserved_twice_is_decided_once_whatever_the_second_request_names() {
    // Arrange
    let app = spawn_app().await;
    let (kettle, mug) = (tracked(&app, "Kettle", 5).await, tracked(&app, "Mug", 5).await);
    let order = order_id();
    let first = app.client.reserve_stock(&order, &[(&kettle, 2)]).await.unwrap();

    // Act
    let again = app.client.reserve_stock(&order, &[(&kettle, 2)]).await.unwrap();
    let other_lines = app.client.reserve_stock(&order, &[(&kettle, 1), (&mug, 1)]).await.unwrap();

    // Assert: both answered with the first decision; one event, one stock move.
    assert_eq!(again, first);
    assert_eq!(other_lines, first);
    assert_eq!(ledger(&app.database.pool, &kettle).await.available, 3);
    assert_eq!(ledger(&app.database.pool, &mug).await.available, 5);
    assert_eq!(
        event_types_after(&app.database.pool, 2).await,
        ["shop.product.updated.v1", "shop.stock.reserved.v1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_orders_of_one_unit_reserve_exactly_the_ten_in_stock() {
    // Arrange
    let app = spawn_app().await;
    let kettle = tracked(&app, "Kettle", 10).await;

    // Act: 200 orders at once, one unit each.
    let calls = (0..200).map(|_| {
        let (client, kettle) = (app.client.clone(), kettle.clone());
        tokio::spawn(async move { client.reserve_stock(&order_id(), &[(&kettle, 1)]).await })
    });
    let answers: Vec<_> =
        futures::future::join_all(calls).await.into_iter().map(|a| a.unwrap().unwrap()).collect();

    // Assert: ten reserved, 190 rejected, nothing left, and the ledger balances.
    let reserved = answers.iter().filter(|r| r.status() == ReservationStatus::Reserved).count();
    let rejected: Vec<_> = answers.iter().filter(|r| r.status() == ReservationStatus::Rejected).collect();
    assert_eq!((reserved, rejected.len()), (10, 190));
    assert!(rejected.iter().all(|r| r.shortages[0].available == Some(0)));
    assert_eq!(
        ledger(&app.database.pool, &kettle).await,
        Ledger { received: 10, available: 0, held: 10, balanced: true }
    );
    let product = app.client.get_product(&kettle).await.unwrap();
    assert_eq!((product.stock, product.version), (Some(0), 11));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event_type in event_types_after(&app.database.pool, 1).await {
        *counts.entry(event_type).or_default() += 1;
    }
    assert_eq!(
        counts,
        HashMap::from([
            ("shop.product.updated.v1".to_owned(), 10),
            ("shop.stock.reserved.v1".to_owned(), 10),
            ("shop.stock.rejected.v1".to_owned(), 190),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_order_decide_once() {
    // Arrange
    let app = spawn_app().await;
    let (kettle, mug) = (tracked(&app, "Kettle", 100).await, tracked(&app, "Mug", 100).await);
    let order = order_id();

    // Act: twenty requests for one order at once, half of them naming other lines.
    let calls = (0..20).map(|i| {
        let (client, order, kettle, mug) = (app.client.clone(), order.clone(), kettle.clone(), mug.clone());
        tokio::spawn(async move {
            let lines: Vec<(&str, u32)> =
                if i % 2 == 0 { vec![(&kettle, 1)] } else { vec![(&mug, 2), (&kettle, 3)] };
            client.reserve_stock(&order, &lines).await
        })
    });
    let answers: Vec<_> =
        futures::future::join_all(calls).await.into_iter().map(|a| a.unwrap().unwrap()).collect();

    // Assert: every answer is the one decision, and stock moved for it alone.
    assert!(answers.iter().all(|answer| *answer == answers[0]), "{answers:?}");
    let held: i64 = answers[0].lines.iter().map(|line| i64::from(line.quantity)).sum();
    let available = ledger(&app.database.pool, &kettle).await.available
        + ledger(&app.database.pool, &mug).await.available;
    assert_eq!(available, 200 - held);
    let decisions = event_types_after(&app.database.pool, 2).await;
    assert_eq!(decisions.iter().filter(|t| *t == "shop.stock.reserved.v1").count(), 1, "{decisions:?}");
    assert_every_ledger_balances(&app.database.pool).await;
}

#[tokio::test]
async fn releasing_twice_gives_the_stock_back_once() {
    // Arrange
    let app = spawn_app().await;
    let kettle = tracked(&app, "Kettle", 5).await;
    let order = order_id();
    app.client.reserve_stock(&order, &[(&kettle, 2)]).await.unwrap();

    // Act
    let released = app.client.release_stock(&order).await.unwrap();
    let again = app.client.release_stock(&order).await.unwrap();

    // Assert
    assert_eq!((released.status(), released.version), (ReservationStatus::Released, 2));
    assert_eq!(again, released);
    assert_eq!(
        ledger(&app.database.pool, &kettle).await,
        Ledger { received: 5, available: 5, held: 0, balanced: true }
    );
    assert_eq!(app.client.get_product(&kettle).await.unwrap().version, 3);
    assert_eq!(
        event_types_after(&app.database.pool, 1).await,
        [
            "shop.product.updated.v1",
            "shop.stock.reserved.v1",
            "shop.product.updated.v1",
            "shop.stock.released.v1"
        ]
    );
    let released_event = &outbox_rows(&app.database.pool).await[4];
    assert_eq!(released_event.aggregate_version, 2);
    assert_eq!(released_event.payload["reservation"]["held"], false);
}

#[tokio::test]
async fn a_release_before_the_reservation_makes_a_later_one_hold_nothing() {
    // Arrange
    let app = spawn_app().await;
    let kettle = tracked(&app, "Kettle", 5).await;
    let order = order_id();

    // Act
    let released = app.client.release_stock(&order).await.unwrap();
    let late = app.client.reserve_stock(&order, &[(&kettle, 2)]).await.unwrap();

    // Assert
    assert_eq!((released.status(), released.version), (ReservationStatus::Released, 1));
    assert!(released.lines.is_empty());
    assert_eq!(late, released);
    assert_eq!(ledger(&app.database.pool, &kettle).await.available, 5);
    assert_eq!(event_types_after(&app.database.pool, 1).await, ["shop.stock.released.v1"]);
}

#[tokio::test]
async fn releasing_a_rejected_reservation_gives_back_nothing() {
    let app = spawn_app().await;
    let kettle = tracked(&app, "Kettle", 1).await;
    let order = order_id();
    app.client.reserve_stock(&order, &[(&kettle, 2)]).await.unwrap();

    let released = app.client.release_stock(&order).await.unwrap();

    assert_eq!((released.status(), released.version), (ReservationStatus::Released, 2));
    assert!(released.shortages.is_empty());
    assert_eq!(
        ledger(&app.database.pool, &kettle).await,
        Ledger { received: 1, available: 1, held: 0, balanced: true }
    );
    assert_eq!(
        event_types_after(&app.database.pool, 1).await,
        ["shop.stock.rejected.v1", "shop.stock.released.v1"]
    );
}

#[tokio::test]
async fn a_malformed_reservation_is_invalid_naming_every_field_and_writes_nothing() {
    let app = spawn_app().await;
    let kettle = tracked(&app, "Kettle", 5).await;
    let line = |product_id: &str, quantity: u32| StockLine { product_id: product_id.to_owned(), quantity };
    let request =
        |order_id: &str, lines: Vec<StockLine>| ReserveStockRequest { order_id: order_id.into(), lines };

    let malformed = app
        .client
        .raw()
        .reserve_stock(request("order-1", vec![line("nope", 1), line(&kettle, 0), line(&kettle, 1)]))
        .await
        .unwrap_err();
    let empty = app.client.raw().reserve_stock(request(&order_id(), Vec::new())).await.unwrap_err();
    let release = app.client.release_stock("order-1").await.unwrap_err();

    let fields = |status: &tonic::Status| -> Vec<String> {
        status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect()
    };
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert_eq!(
        fields(&malformed),
        ["order_id", "lines[0].product_id", "lines[1].quantity", "lines[2].product_id"]
    );
    assert_eq!(fields(&empty), ["lines"]);
    assert_eq!(fields(&release), ["order_id"]);
    assert_eq!(outbox_rows(&app.database.pool).await.len(), 1);
}
