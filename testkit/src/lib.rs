//! Test support shared by the shop's crates (a dev-dependency only).
//!
//! - [`TestDatabase`]: a fresh, empty Postgres database per test, dropped when the test ends.
//! - [`OutboxRow`] and [`outbox_rows`]: read back what a service wrote to its outbox.
//! - [`kafka`]: a Kafka-protocol broker per test (the embedded mock cluster, or `KAFKA_BROKERS`), topics, and
//!   reading a topic back.
//! - [`proxy`]: a Kafka proxy the test can cut, heal and point at another cluster.
//! - [`otlp`]: a real OTLP trace receiver that keeps the spans processes export to it, and prints a trace as a tree.
//! - [`graphql`]: a GraphQL client of the gateway, over real HTTP; [`subscriptions`], its subscriptions over a real
//!   WebSocket (`graphql-transport-ws`).
//! - [`RunningServer`]: a server task started with a shutdown future the test controls; [`spawn_service!`] starts
//!   one of the shop's services on port 0.
//! - [`eventually`]: waits for a condition, the one polling loop of every test.
//! - [`init_test_logging`]: logs to stdout when `TEST_LOG` is set, nothing otherwise.
//!
//! Tests reach Postgres at `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`); the user must be
//! allowed to create databases.

pub mod graphql;
pub mod kafka;
pub mod otlp;
pub mod proxy;
pub mod subscriptions;

use std::{future::Future, sync::Once, thread, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};
use tokio::{sync::oneshot, task::JoinHandle};
use uuid::Uuid;

/// The Postgres server tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database created for one test and dropped (with any connections still open to it) when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// The database name, `test_<uuid>`.
    pub name: String,
    /// A URL to connect to it, for the settings of the service under test.
    pub url: String,
    /// A small pool for the test's own queries and assertions.
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates an empty database with a unique name.
    pub async fn create() -> Self {
        let server = postgres_server_url();
        let name = format!("test_{}", Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("Failed to connect to Postgres; is it running at TEST_POSTGRES_URL?");
        admin
            .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .expect("Failed to create the test database");
        let url = format!("{server}/{name}");
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("Failed to connect to the test database");
        Self { name, url, pool }
    }

    /// A database someone else creates (a service at start), dropped with this value all the same.
    pub fn adopt(name: &str) -> Self {
        let url = format!("{}/{name}", postgres_server_url());
        let pool = PgPoolOptions::new().max_connections(4).connect_lazy(&url).expect("a valid database URL");
        Self { name: name.to_owned(), url, pool }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down: do it on a thread with its own runtime.
        let (server, name) = (postgres_server_url(), self.name.clone());
        let dropped = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)))
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("Failed to drop test database {}: {error}", self.name);
        }
    }
}

/// One row of a service's outbox, as the tests assert on it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxRow {
    pub position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub event_type: String,
    pub topic: String,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    pub traceparent: Option<String>,
}

/// Every row of the outbox in `pool`'s database, in insertion order.
pub async fn outbox_rows(pool: &PgPool) -> Vec<OutboxRow> {
    sqlx::query_as(
        "SELECT position, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, topic, payload,
                occurred_at, traceparent
         FROM outbox ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .expect("Failed to read the outbox")
}

/// How many rows `table` holds.
pub async fn count_rows(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .expect("Failed to count rows")
}

/// Sends logs to the test output when `TEST_LOG` is set (with `RUST_LOG` as the filter), and nowhere otherwise.
pub fn init_test_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().init();
        }
    });
}

/// Waits until `condition` holds, checking every 50 ms; fails the test, naming `what`, after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Builds and spawns one of the shop's gRPC services the way its binary runs it: its `config::Settings` with port 0
/// and the database at `$database.url` (other settings at their defaults), then `startup::Application::build` and
/// `run_until_stopped`. Evaluates to the service's URL and its [`RunningServer`].
#[macro_export]
macro_rules! spawn_service {
    ($service:ident, $database:expr) => {{
        let settings = $service::config::Settings {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            database_url: $database.url.parse().unwrap(),
            ..Default::default()
        };
        let application = $service::startup::Application::build(&settings).await.unwrap();
        let url = format!("http://{}", application.local_addr());
        (url, $crate::RunningServer::spawn(|shutdown| application.run_until_stopped(shutdown)))
    }};
}

/// A server spawned on the test's runtime, stopped by the test as SIGTERM would stop it in production.
#[derive(Debug)]
pub struct RunningServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Spawns `run`, handing it the shutdown future it must stop on (a `run_until_stopped` method).
    pub fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async {
            stopped.await.ok();
        })));
        Self { stop, task }
    }

    /// Signals shutdown and waits for the server to finish, returning how it ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.send(()).ok();
        self.task.await?
    }

    /// Kills the server task without a graceful shutdown, as a crash would.
    pub fn abort(&self) {
        self.task.abort();
    }
}
