use std::net::SocketAddr;

use shop_account::{config::Settings, grpc::client::AccountClient, startup::Application};
use shop_platform::{postgres::PoolSettings, telemetry::TelemetrySettings};
use shop_testkit::{TestDatabase, init_test_logging};
use tokio::{sync::oneshot, task::JoinHandle};

/// A running account service with its own database.
pub(crate) struct TestApp {
    pub(crate) address: SocketAddr,
    pub(crate) database: TestDatabase,
    pub(crate) client: AccountClient,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Asks the server to stop, as SIGTERM would, and waits for it.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.take().expect("stopped once").send(()).ok();
        self.server.take().expect("stopped once").await?
    }
}

pub(crate) fn settings(database: &TestDatabase) -> Settings {
    Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: database.url.parse().unwrap(),
        database: PoolSettings::default(),
        telemetry: TelemetrySettings::default(),
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    init_test_logging();
    let database = TestDatabase::create().await;
    let application = Application::build(&settings(&database)).await.expect("Failed to build the application");
    let address = application.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async {
        stopped.await.ok();
    }));
    let client = AccountClient::connect(format!("http://{address}")).await.expect("Failed to connect");
    TestApp { address, database, client, stop: Some(stop), server: Some(server) }
}
