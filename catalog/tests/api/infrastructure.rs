use shop_catalog::{config::Settings, grpc::client::CatalogClient, startup::Application};
use shop_platform::{grpc::MAX_MESSAGE_BYTES, kafka::KafkaSettings};
use shop_proto::catalog::v1::PostProductRequest;
use shop_testkit::{RunningServer, TestDatabase, count_rows};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::spawn_app;

async fn health_of(url: &str, service: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned()).unwrap().connect().await.unwrap();
    let request = HealthCheckRequest { service: service.to_owned() };
    HealthClient::new(channel).check(request).await.unwrap().into_inner().status()
}

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
async fn with_no_broker_in_reach_the_service_serves_and_only_the_stock_saga_says_it_waits() {
    // Arrange: Kafka at an address where nothing listens.
    let database = TestDatabase::create().await;
    let settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: database.url.parse().unwrap(),
        kafka: KafkaSettings::new("127.0.0.1:1"),
        ..Default::default()
    };
    let application = Application::build(&settings).await.unwrap();
    let url = format!("http://{}", application.local_addr());
    let server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));

    // Act
    let service = health_of(&url, "shop.catalog.v1.CatalogService").await;
    let saga = health_of(&url, "catalog.stock-reservations").await;

    // Assert: every rpc answers from Postgres alone, so the service serves; the consumer reports its wait.
    assert_eq!(service, ServingStatus::Serving);
    assert_eq!(saga, ServingStatus::NotServing);
    let client = CatalogClient::connect(url).await.unwrap();
    let served = client.post_product_with_stock("Kettle", "", 1, 1).await;
    assert!(served.is_ok(), "{served:?}");
    server.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_message_above_the_size_limit_is_refused_by_the_server_and_never_sent_by_our_client() {
    // Arrange: one byte of description alone takes the message past the limit.
    let app = spawn_app().await;
    let oversized = PostProductRequest {
        name: "Huge".into(),
        description: "x".repeat(MAX_MESSAGE_BYTES),
        price_cents: 100,
        stock: None,
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
