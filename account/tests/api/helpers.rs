use shop_account::{config::Settings, grpc::client::AccountClient};
use shop_testkit::{RunningServer, TestDatabase, init_test_logging, spawn_service};

/// A running account service with its own database.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:{port}`.
    pub(crate) url: String,
    pub(crate) database: TestDatabase,
    pub(crate) client: AccountClient,
    pub(crate) server: RunningServer,
}

/// The settings `spawn_app` uses: port 0, the test's database.
pub(crate) fn settings(database: &TestDatabase) -> Settings {
    Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: database.url.parse().unwrap(),
        ..Default::default()
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    init_test_logging();
    let database = TestDatabase::create().await;
    let (url, server) = spawn_service!(shop_account, database);
    let client = AccountClient::connect(url.clone()).await.expect("Failed to connect");
    TestApp { url, database, client, server }
}
