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
