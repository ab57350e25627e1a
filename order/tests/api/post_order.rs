use shop_events::TraceContext;
use shop_platform::grpc::traced_request;
use shop_proto::order::v1::{LineItem, OrderStatus, PostOrderRequest};
use shop_testkit::{count_rows, outbox_rows};
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

async fn assert_nothing_written(app: &TestApp) {
    assert_eq!(count_rows(&app.database.pool, "orders").await, 0);
    assert_eq!(count_rows(&app.database.pool, "order_lines").await, 0);
    assert_eq!(count_rows(&app.database.pool, "outbox").await, 0);
}

#[tokio::test]
async fn post_order_prices_merges_and_confirms_the_order() {
    // Arrange
    let app = spawn_app().await;
    let (account, kettle, mug) = app.seed().await;

    // Act
    let order = app.client.post_order(&account, &[(&kettle, 1), (&mug, 2), (&kettle, 1)]).await.unwrap();

    // Assert
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.account_id, account);
    assert_eq!(order.version, 2);
    assert_eq!(order.total_price_cents, Some(2 * 2_499 + 2 * 899));
    let lines: Vec<_> = order
        .lines
        .iter()
        .map(|l| (l.product_id.as_str(), l.quantity, l.product.as_ref().unwrap().unit_price_cents))
        .collect();
    assert_eq!(lines, [(kettle.as_str(), 2, 2_499), (mug.as_str(), 2, 899)]);
    assert_eq!(order.lines[0].product.as_ref().unwrap().name, "Kettle");
    assert_eq!(count_rows(&app.database.pool, "order_lines").await, 2);
}

#[tokio::test]
async fn post_order_writes_the_placed_and_confirmed_events_with_the_order() {
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;

    let order = app.client.post_order(&account, &[(&kettle, 3)]).await.unwrap();

    let id: Uuid = order.id.parse().unwrap();
    let (status, version): (String, i64) = sqlx::query_as("SELECT status, version FROM orders WHERE id = $1")
        .bind(id)
        .fetch_one(&app.database.pool)
        .await
        .unwrap();
    assert_eq!((status.as_str(), version), ("confirmed", 2));

    let outbox = outbox_rows(&app.database.pool).await;
    let events: Vec<_> = outbox
        .iter()
        .map(|r| (r.event_type.as_str(), r.aggregate_id, r.aggregate_version, r.topic.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("shop.order.placed.v1", id, 1, "shop.orders.v1"),
            ("shop.order.confirmed.v1", id, 2, "shop.orders.v1"),
        ]
    );
    let placed = &outbox[0].payload["order"];
    assert_eq!(placed["status"], "pending");
    assert_eq!(placed["account_id"], account);
    assert_eq!(placed["lines"][0]["quantity"], 3);
    assert!(placed["lines"][0]["product"].is_null());
    assert!(placed["total_price_cents"].is_null());
    let confirmed = &outbox[1].payload["order"];
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["version"], 2);
    assert_eq!(confirmed["total_price_cents"], 3 * 2_499);
    assert_eq!(confirmed["lines"][0]["product"]["unit_price_cents"], 2_499);
    assert_eq!(confirmed["lines"][0]["product"]["name"], "Kettle");
}

#[tokio::test]
async fn an_unknown_account_is_not_found_and_nothing_is_written() {
    let app = spawn_app().await;
    let (_, kettle, _) = app.seed().await;
    let stranger = Uuid::now_v7().to_string();

    let status = app.client.post_order(&stranger, &[(&kettle, 1)]).await.unwrap_err();

    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&stranger), "{}", status.message());
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_unknown_product_is_not_found_and_nothing_is_written() {
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    let ghost = Uuid::now_v7().to_string();

    let status = app.client.post_order(&account, &[(&kettle, 1), (&ghost, 1)]).await.unwrap_err();

    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&ghost), "{}", status.message());
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn malformed_orders_are_invalid_with_every_field_named_and_nothing_is_written() {
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    // (account id, lines, the fields reported)
    type Case<'a> = (&'a str, &'a [(&'a str, u32)], &'a [&'a str]);
    let cases: [Case<'_>; 3] = [
        (&account, &[], &["lines"]),
        (&account, &[(&kettle, 0)], &["lines[0].quantity"]),
        ("someone", &[("something", 1)], &["account_id", "lines[0].product_id"]),
    ];

    for (account_id, lines, fields) in cases {
        let status = app.client.post_order(account_id, lines).await.unwrap_err();

        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let reported: Vec<_> =
            details.bad_request().unwrap().field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(reported, fields);
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_down_dependency_makes_the_order_unavailable_and_nothing_is_written() {
    let mut app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    app.stop_account_service().await;

    let status = app.client.post_order(&account, &[(&kettle, 1)]).await.unwrap_err();

    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn the_events_carry_the_callers_trace() {
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    let trace = TraceContext::new_root();
    let request = PostOrderRequest {
        account_id: account,
        lines: vec![LineItem { product_id: kettle, quantity: 1 }],
        ..Default::default()
    };

    app.client.raw().post_order(traced_request(request, &trace)).await.unwrap();

    for row in outbox_rows(&app.database.pool).await {
        let stored = TraceContext::parse(row.traceparent.as_deref().unwrap(), None).unwrap();
        assert_eq!(stored.trace_id(), trace.trace_id());
    }
}
