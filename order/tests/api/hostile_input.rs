//! Requests built to exhaust the service: huge orders, long lists of problems, huge ids. Each is answered
//! INVALID_ARGUMENT at once, with an error of bounded size, and writes nothing.

use std::time::Instant;

use shop_order::domain::NewOrder;
use shop_platform::error::{MAX_ECHO_CHARS, MAX_REPORTED_VIOLATIONS};
use shop_proto::{
    catalog::v1::GetProductsRequest,
    order::v1::{GetOrdersForAccountsRequest, LineItem, PostOrderRequest},
};
use shop_testkit::count_rows;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// The bytes an error takes in the trailers: its message and its details.
fn error_size(status: &Status) -> usize {
    status.message().len() + status.details().len()
}

fn reported_violations(status: &Status) -> Vec<(String, String)> {
    let details = status.get_error_details();
    let bad_request = details.bad_request().expect("a BadRequest detail");
    bad_request.field_violations.iter().map(|v| (v.field.clone(), v.description.clone())).collect()
}

fn order_of(lines: impl IntoIterator<Item = (String, u32)>) -> PostOrderRequest {
    PostOrderRequest {
        account_id: Uuid::now_v7().to_string(),
        lines: lines.into_iter().map(|(product_id, quantity)| LineItem { product_id, quantity }).collect(),
        ..Default::default()
    }
}

async fn assert_nothing_written(app: &TestApp) {
    assert_eq!(count_rows(&app.database.pool, "orders").await, 0);
    assert_eq!(count_rows(&app.database.pool, "outbox").await, 0);
}

#[tokio::test]
async fn a_90_000_line_order_is_refused_at_once_with_one_problem() {
    // Arrange: 90 000 distinct products, about 3.8 MB, just under the 4 MiB a request may take.
    let app = spawn_app().await;
    let request = order_of((0..90_000).map(|_| (Uuid::now_v7().to_string(), 1)));

    // Act
    let started = Instant::now();
    let status = app.client.raw().post_order(request).await.unwrap_err();
    let elapsed = started.elapsed();

    // Assert
    println!("A 90 000-line PostOrder was refused in {elapsed:?} (the whole gRPC round trip).");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        reported_violations(&status),
        [("lines".to_owned(), "an order may carry at most 1000 lines, not 90000".to_owned())]
    );
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_order_at_the_line_limit_is_checked_in_full() {
    // Arrange: as many lines as a request may carry, all of one product, over the quantity limit together.
    let app = spawn_app().await;
    let product = Uuid::now_v7().to_string();
    let request = order_of((0..NewOrder::MAX_REQUEST_LINES).map(|_| (product.clone(), 11)));

    // Act
    let started = Instant::now();
    let status = app.client.raw().post_order(request).await.unwrap_err();
    println!("A PostOrder of 1000 lines was checked in {:?}.", started.elapsed());

    // Assert: the lines were merged, and the merged line found too large.
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        reported_violations(&status),
        [("lines".to_owned(), format!("product {product} is ordered more than 10000 times"))]
    );
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn three_hundred_over_quantity_lines_give_a_bounded_list_of_problems() {
    // Arrange
    let app = spawn_app().await;
    let over = NewOrder::MAX_QUANTITY + 1;
    let request = order_of((0..300).map(|_| (Uuid::now_v7().to_string(), over)));

    // Act
    let status = app.client.raw().post_order(request).await.unwrap_err();

    // Assert: INVALID_ARGUMENT (not INTERNAL from overflowing trailers), the first problems, and a count of the rest.
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let reported = reported_violations(&status);
    assert_eq!(reported.len(), MAX_REPORTED_VIOLATIONS + 1);
    assert_eq!(reported[0].1, "an order may hold at most 100 different products");
    assert!(reported[1].1.ends_with("is ordered more than 10000 times"), "{:?}", reported[1]);
    // 300 over-quantity lines and the product count: 301 problems, 20 listed.
    assert_eq!(reported[20], (String::new(), "and 281 more problems not listed".to_owned()));
    assert!(status.message().ends_with("; and 281 more problems not listed"), "{}", status.message());
    println!("300 over-quantity lines: an error of {} bytes.", error_size(&status));
    assert!(error_size(&status) < 8 * 1024, "{} bytes", error_size(&status));
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_huge_invalid_id_is_echoed_only_in_part() {
    // Arrange
    let app = spawn_app().await;
    let huge = "7".repeat(1_000_000);
    let echoed = format!("`{}…` is not a valid UUID", "7".repeat(MAX_ECHO_CHARS));

    // Act
    let by_order = app.client.get_order(&huge).await.unwrap_err();
    let by_account = app.client.get_orders_for_account(&huge).await.unwrap_err();
    let by_product = app.catalog.get_product(&huge).await.unwrap_err();
    let by_account_in_accounts = app.accounts.get_account(&huge).await.unwrap_err();
    let placed_by = app.client.post_order(&huge, &[(&Uuid::now_v7().to_string(), 1)]).await.unwrap_err();

    // Assert
    for status in [by_order, by_account, by_product, by_account_in_accounts, placed_by] {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(&echoed), "{}", status.message());
        assert!(error_size(&status) < 1_024, "{} bytes", error_size(&status));
    }
}

#[tokio::test]
async fn long_lists_of_bad_ids_give_short_errors() {
    // Arrange: a thousand 1 KB ids, and two million empty ones (4 MB, refused before any is parsed).
    let app = spawn_app().await;
    let long_ids = vec!["x".repeat(1_000); 1_000];
    let empty_ids = vec![String::new(); 2_000_000];

    // Act
    let mut orders = app.client.raw();
    let long = orders
        .get_orders_for_accounts(GetOrdersForAccountsRequest { account_ids: long_ids, ..Default::default() })
        .await
        .unwrap_err();
    let started = Instant::now();
    let many = orders
        .get_orders_for_accounts(GetOrdersForAccountsRequest {
            account_ids: empty_ids.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    println!("Two million account ids were refused in {:?}.", started.elapsed());
    let many_products = app
        .catalog
        .raw()
        .get_products(GetProductsRequest { ids: empty_ids, ..Default::default() })
        .await
        .unwrap_err();

    // Assert
    assert_eq!(long.code(), Code::InvalidArgument, "{long:?}");
    let reported = reported_violations(&long);
    assert_eq!(reported.len(), MAX_REPORTED_VIOLATIONS + 1);
    assert_eq!(reported[20].1, "and 980 more problems not listed");
    assert!(error_size(&long) < 8 * 1024, "{} bytes", error_size(&long));
    for status in [many, many_products] {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(reported_violations(&status).len(), 1, "{status:?}");
        assert!(status.message().contains("must hold at most 1000 ids"), "{}", status.message());
    }
}

#[tokio::test]
async fn a_huge_tracestate_and_a_later_traceparent_version_are_stored_bounded() {
    // Arrange: a version this service does not know, with a field appended, and 1 000 tracestate members (~7 KB)
    let app = spawn_app().await;
    let (account, kettle, _) = app.seed().await;
    let members: Vec<String> = (0..1_000).map(|i| format!("v{i}=x")).collect();
    let mut request = tonic::Request::new(PostOrderRequest {
        account_id: account,
        lines: vec![LineItem { product_id: kettle, quantity: 1 }],
        ..Default::default()
    });
    let traceparent = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-appended";
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    request.metadata_mut().insert("tracestate", members.join(",").parse().unwrap());

    // Act
    app.client.raw().post_order(request).await.unwrap();

    // Assert: the same trace, continued as version 00 with the flags of the fourth field; 32 members kept
    let rows: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT traceparent, tracestate FROM outbox")
            .fetch_all(&app.database.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    for (traceparent, tracestate) in rows {
        let traceparent = traceparent.unwrap();
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{traceparent}");
        assert!(traceparent.ends_with("-01") && traceparent.len() == 55, "{traceparent}");
        assert_eq!(tracestate.as_deref(), Some(members[..32].join(",").as_str()));
    }
}
