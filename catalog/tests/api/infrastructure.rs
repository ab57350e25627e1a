use shop_platform::grpc::MAX_MESSAGE_BYTES;
use shop_proto::catalog::v1::PostProductRequest;
use shop_testkit::count_rows;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_server_reports_itself_serving_then_stops_cleanly() {
    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(app.url.clone()).unwrap().connect().await.unwrap();

    let status = HealthClient::new(channel)
        .check(HealthCheckRequest { service: "shop.catalog.v1.CatalogService".into() })
        .await
        .unwrap()
        .into_inner()
        .status();

    assert_eq!(status, ServingStatus::Serving);
    app.server.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_message_above_the_size_limit_is_refused_by_the_server_and_never_sent_by_our_client() {
    // Arrange: one byte of description alone takes the message past the limit.
    let app = spawn_app().await;
    let oversized = PostProductRequest {
        name: "Huge".into(),
        description: "x".repeat(MAX_MESSAGE_BYTES),
        price_cents: 100,
    };
    // A client that sends whatever it is given, as a foreign one could.
    let mut unlimited = app.client.raw().max_encoding_message_size(usize::MAX);

    // Act
    let refused = unlimited.post_product(oversized.clone()).await.unwrap_err();
    let not_sent = app.client.raw().post_product(oversized).await.unwrap_err();

    // Assert: refused on its length prefix, before the body is decoded (a decoded one would reach validation and
    // be INVALID_ARGUMENT). Our own client does not send it: tonic fails the encoding and resets the stream itself,
    // which it reports as INTERNAL (tonic's default, no encoding limit, would have sent it to be refused with
    // OUT_OF_RANGE).
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("too large"), "{refused:?}");
    assert_eq!(not_sent.code(), Code::Internal, "{not_sent:?}");
    assert_eq!(count_rows(&app.database.pool, "products").await, 0);
    let served = app.client.post_product("Kettle", "Boils water.", 2_499).await;
    assert!(served.is_ok(), "{served:?}");
}
