use shop_catalog::grpc::client::CatalogClient;
use shop_testkit::{RunningServer, TestDatabase, init_test_logging, outbox_rows, spawn_service};
use sqlx::PgPool;
use uuid::Uuid;

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

/// One tracked product's stock as the database holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Ledger {
    pub(crate) received: i64,
    pub(crate) available: i64,
    pub(crate) held: i64,
    /// `received = available + held`: the invariant.
    pub(crate) balanced: bool,
}

/// The stock ledger of product `id` (which must track its stock).
pub(crate) async fn ledger(pool: &PgPool, id: &str) -> Ledger {
    let id: Uuid = id.parse().unwrap();
    sqlx::query_as("SELECT received, available, held, balanced FROM stock_ledger WHERE product_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("Failed to read the stock ledger")
}

/// Every product's stock balances with what reservations hold.
pub(crate) async fn assert_every_ledger_balances(pool: &PgPool) {
    let unbalanced: i64 = sqlx::query_scalar("SELECT count(*) FROM stock_ledger WHERE NOT balanced")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(unbalanced, 0, "some product's stock does not balance");
}

/// The outbox's event types, in order, after the first `skip` rows.
pub(crate) async fn event_types_after(pool: &PgPool, skip: usize) -> Vec<String> {
    outbox_rows(pool).await.into_iter().skip(skip).map(|row| row.event_type).collect()
}
