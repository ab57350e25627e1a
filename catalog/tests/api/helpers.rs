use shop_catalog::grpc::client::CatalogClient;
use shop_testkit::{RunningServer, TestDatabase, init_test_logging, spawn_service};

/// A running catalog service with its own database.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:{port}`.
    pub(crate) url: String,
    pub(crate) database: TestDatabase,
    pub(crate) client: CatalogClient,
    pub(crate) server: RunningServer,
}

pub(crate) async fn spawn_app() -> TestApp {
    init_test_logging();
    let database = TestDatabase::create().await;
    let (url, server) = spawn_service!(shop_catalog, database);
    let client = CatalogClient::connect(url.clone()).await.expect("Failed to connect");
    TestApp { url, database, client, server }
}
