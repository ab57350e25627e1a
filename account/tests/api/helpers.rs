use std::net::SocketAddr;

use shop_account::{config::Settings, grpc::client::AccountClient, startup::Application};
use shop_testkit::{RunningServer, TestDatabase, init_test_logging};

/// A running account service with its own database.
pub(crate) struct TestApp {
    pub(crate) address: SocketAddr,
    pub(crate) database: TestDatabase,
    pub(crate) client: AccountClient,
    pub(crate) server: RunningServer,
}

pub(crate) fn settings(database: &TestDatabase) -> Settings {
    Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: database.url.parse().unwrap(),
        ..Default::default()
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    init_test_logging();
    let database = TestDatabase::create().await;
    let application =
        Application::build(&settings(&database)).await.expect("Failed to build the application");
    let address = application.local_addr();
    let server = RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown));
    let client = AccountClient::connect(format!("http://{address}")).await.expect("Failed to connect");
    TestApp { address, database, client, server }
}
