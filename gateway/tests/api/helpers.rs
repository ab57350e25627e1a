use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use serde_json::Value;
use shop_gateway::{auth::settings::AuthSettings, config::Settings, startup::Application};
use shop_proto::order::v1::{self as order, order_service_client::OrderServiceClient, order_service_server};
use shop_testkit::{
    RunningServer, TestDatabase, graphql::GraphqlClient, init_test_logging, kafka::TestBroker, spawn_service,
};
use tonic::{Request, Response, Status, transport::Channel};

/// The gateway and the three services behind it.
pub(crate) struct TestApp {
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) client: GraphqlClient,
    /// The order service's database.
    pub(crate) orders_database: TestDatabase,
    /// `GetOrdersForAccount(s)` calls the gateway made.
    pub(crate) order_list_calls: Arc<AtomicUsize>,
    catalog_server: Option<RunningServer>,
    _servers: Vec<RunningServer>,
    _databases: Vec<TestDatabase>,
    _broker: Option<TestBroker>,
}

/// How the order service decides the orders placed in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decided {
    /// At once, asking the account and catalog services (`grpc` validation): placed orders are confirmed.
    AtOnce,
    /// Never within a test: `projection` validation, on a broker nothing publishes the accounts and products to,
    /// so placed orders stay pending (the shape an order has while a real shop validates it). The order service
    /// learns an account's owner only from its projection: see [`TestApp::project_account`].
    Never,
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The same, with the gateway's settings changed by `configure`.
pub(crate) async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_deciding(Decided::AtOnce, configure).await
}

/// The same, with orders decided as `decided` says.
pub(crate) async fn spawn_app_deciding(decided: Decided, configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_logging();
    let databases =
        [TestDatabase::create().await, TestDatabase::create().await, TestDatabase::create().await];
    let [account_database, catalog_database, orders_database] = databases;
    let (account_url, account_server) = spawn_service!(shop_account, account_database);
    let (catalog_url, catalog_server) = spawn_service!(shop_catalog, catalog_database);

    let mut order_settings = shop_order::config::Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        database_url: orders_database.url.parse().unwrap(),
        account_service_url: account_url.clone(),
        catalog_service_url: catalog_url.clone(),
        dependency_timeout_ms: 2_000,
        ..Default::default()
    };
    let broker = match decided {
        Decided::AtOnce => None,
        Decided::Never => {
            let broker = TestBroker::start().await;
            order_settings.validation = shop_order::config::ValidationMode::Projection;
            // Answered pending at once, and not rejected for an unknown account within any test's time.
            order_settings.priced_answer_wait_ms = 0;
            order_settings.projection_wait_ms = 3_600_000;
            order_settings.kafka = shop_platform::kafka::KafkaSettings {
                kafka_brokers: broker.bootstrap.clone(),
                kafka_options: vec!["session.timeout.ms=6000".parse().unwrap()],
                kafka_topic_prefix: broker.topic_prefix.clone(),
            };
            Some(broker)
        }
    };
    let order = shop_order::startup::Application::build(&order_settings).await.unwrap();
    let order_url = format!("http://{}", order.local_addr());
    let order_server = RunningServer::spawn(|shutdown| order.run_until_stopped(shutdown));
    let (counting_url, counting_server, order_list_calls) = spawn_counting_proxy(&order_url).await;

    let mut settings = Settings {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        account_service_url: account_url,
        catalog_service_url: catalog_url,
        order_service_url: counting_url,
        service_timeout_ms: 2_000,
        http_request_timeout_ms: 10_000,
        // The tests of the original system's behaviour; those of authentication configure an issuer.
        auth: AuthSettings::disabled(),
        ..Default::default()
    };
    configure(&mut settings);
    let gateway = Application::build(&settings).await.unwrap();
    let base_url = format!("http://{}", gateway.local_addr());
    let gateway_server = RunningServer::spawn(|shutdown| gateway.run_until_stopped(shutdown));

    TestApp {
        client: GraphqlClient::new(&base_url),
        base_url,
        http: reqwest::Client::new(),
        orders_database,
        order_list_calls,
        catalog_server: Some(catalog_server),
        _servers: vec![account_server, order_server, counting_server, gateway_server],
        _databases: vec![account_database, catalog_database],
        _broker: broker,
    }
}

impl TestApp {
    /// The gateway's address, for requests written by hand on a raw connection.
    pub(crate) fn address(&self) -> std::net::SocketAddr {
        self.base_url.trim_start_matches("http://").parse().unwrap()
    }

    /// Gives the order service's projection the account `account_id`, owned by `owner`, as consuming its event
    /// would have (in [`Decided::Never`] nothing publishes it), so that the service knows whose its orders are.
    /// Its orders still wait for their products.
    pub(crate) async fn project_account(&self, account_id: &str, owner: &str) {
        sqlx::query(
            "INSERT INTO account_projection (id, name, version, updated_at, owner) VALUES ($1::uuid, 'Projected', 1, now(), $2)",
        )
        .bind(account_id)
        .bind(owner)
        .execute(&self.orders_database.pool)
        .await
        .unwrap();
    }

    /// Stops the catalog service, as an outage would.
    pub(crate) async fn stop_catalog_service(&mut self) {
        self.catalog_server.take().expect("running").stop().await.unwrap();
    }
}

/// The `extensions.code` of every error in a response.
pub(crate) fn error_codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("expected errors in {response:#}"))
        .iter()
        .map(|error| error["extensions"]["code"].as_str().unwrap_or("<none>").to_owned())
        .collect()
}

/// A gRPC hop in front of the real order service that counts the list calls passing through it, so a test can
/// see how many calls the gateway makes. Every call is forwarded unchanged.
#[derive(Clone)]
struct CountingOrders {
    inner: OrderServiceClient<Channel>,
    list_calls: Arc<AtomicUsize>,
}

async fn spawn_counting_proxy(order_url: &str) -> (String, RunningServer, Arc<AtomicUsize>) {
    let proxy = CountingOrders {
        inner: OrderServiceClient::connect(order_url.to_owned()).await.unwrap(),
        list_calls: Arc::default(),
    };
    let list_calls = proxy.list_calls.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = RunningServer::spawn(|shutdown| {
        shop_platform::grpc::serve(
            listener,
            order_service_server::OrderServiceServer::new(proxy),
            shop_proto::FILE_DESCRIPTOR_SET,
            shop_platform::health::Health::new(),
            shutdown,
        )
    });
    (url, server, list_calls)
}

fn forward<T>(request: Request<T>) -> Request<T> {
    let (metadata, _, message) = request.into_parts();
    let mut forwarded = Request::new(message);
    *forwarded.metadata_mut() = metadata;
    forwarded
}

#[tonic::async_trait]
impl order_service_server::OrderService for CountingOrders {
    async fn post_order(
        &self,
        request: Request<order::PostOrderRequest>,
    ) -> Result<Response<order::PostOrderResponse>, Status> {
        self.inner.clone().post_order(forward(request)).await
    }

    async fn get_order(
        &self,
        request: Request<order::GetOrderRequest>,
    ) -> Result<Response<order::GetOrderResponse>, Status> {
        self.inner.clone().get_order(forward(request)).await
    }

    async fn get_orders_for_account(
        &self,
        request: Request<order::GetOrdersForAccountRequest>,
    ) -> Result<Response<order::GetOrdersForAccountResponse>, Status> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.clone().get_orders_for_account(forward(request)).await
    }

    async fn get_orders_for_accounts(
        &self,
        request: Request<order::GetOrdersForAccountsRequest>,
    ) -> Result<Response<order::GetOrdersForAccountsResponse>, Status> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.clone().get_orders_for_accounts(forward(request)).await
    }

    async fn cancel_order(
        &self,
        request: Request<order::CancelOrderRequest>,
    ) -> Result<Response<order::CancelOrderResponse>, Status> {
        self.inner.clone().cancel_order(forward(request)).await
    }
}
