//! The order service's settings: flags, or environment variables, with defaults for a local run.

use std::{net::SocketAddr, time::Duration};

use crate::validation::ValidationSettings;
use shop_outbox::republish::RepublishSettings;
use shop_platform::{
    grpc::ClientSettings,
    kafka::KafkaSettings,
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};
use shop_projection::RebuildSettings;

/// Where the service listens in a local run.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:50053";
/// Where the process serves its metrics in a local run: each binary has its own port, so all can run on one host.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9467";
/// The service's database in a local run.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/shop_order";
pub const DEFAULT_ACCOUNT_SERVICE_URL: &str = "http://127.0.0.1:50051";
pub const DEFAULT_CATALOG_SERVICE_URL: &str = "http://127.0.0.1:50052";
const DEFAULT_PROJECTION_WAIT_MS: u64 = 10_000;
/// A day, as Stripe keeps its idempotency keys, which is what clients are written against: long enough for a
/// client's retries with backoff across an outage of hours, or a job re-run the next morning, to find their key.
pub const DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS: u64 = 24 * 60 * 60;
const DEFAULT_IDEMPOTENCY_KEY_CLEANUP_INTERVAL_SECONDS: u64 = 5 * 60;
/// Well above the usual path from a commit in the account or catalog database to the projection (about 100 ms
/// through the relay and the consumer), so an order right after its account and products is answered priced.
pub const DEFAULT_PRICED_ANSWER_WAIT_MS: u64 = 500;
const DEFAULT_CLOCK_SKEW_MS: u64 = 1_000;
const DEFAULT_VALIDATION_INTERVAL_MS: u64 = 1_000;
const DEFAULT_STOCK_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_DEPENDENCY_TIMEOUT_MS: u64 = 3_000;

/// How `PostOrder` checks the account and the products an order names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidationMode {
    /// Synchronously, asking the account and catalog services over gRPC; the order is stored confirmed (and
    /// priced) or not at all.
    Grpc,
    /// From the order service's own projection of accounts and products (fed from Kafka): the order is answered
    /// confirmed and priced when the projection knows its account and products within the priced-answer wait;
    /// otherwise it is stored pending and answered, then confirmed or rejected asynchronously. Keeps working while
    /// the account and catalog services are down.
    Projection,
}

/// Everything the order service can be told at start. `order --help` lists it all.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address the gRPC server listens on (port 0 picks a free one).
    #[arg(long, env = "GRPC_LISTEN_ADDR", default_value = DEFAULT_LISTEN_ADDR)]
    pub listen_addr: SocketAddr,
    /// The order service's own database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,
    #[command(flatten)]
    pub database: PoolSettings,
    /// How orders are validated.
    #[arg(long, env = "ORDER_VALIDATION", value_enum, default_value_t = ValidationMode::Grpc)]
    pub validation: ValidationMode,
    /// How long a pending order naming an account or product the projection does not hold waits before it may be
    /// rejected; it is rejected only once the projection is also known to hold every event from before the order
    /// (projection validation).
    #[arg(long, env = "ORDER_PROJECTION_WAIT_MS", default_value_t = DEFAULT_PROJECTION_WAIT_MS)]
    pub projection_wait_ms: u64,
    /// How long `PostOrder` may wait for the projection to know an order's account and products so as to answer
    /// the order decided (confirmed and priced) rather than pending; past it the order is stored pending and
    /// validated as usual. 0 answers pending at once (projection validation).
    #[arg(long, env = "ORDER_PRICED_ANSWER_WAIT_MS", default_value_t = DEFAULT_PRICED_ANSWER_WAIT_MS)]
    pub priced_answer_wait_ms: u64,
    /// How far the clocks of the order service and of the other services' databases may disagree; an order is
    /// rejected only once the projection is complete this far past its placement (projection validation).
    #[arg(long, env = "ORDER_CLOCK_SKEW_MS", default_value_t = DEFAULT_CLOCK_SKEW_MS)]
    pub clock_skew_ms: u64,
    /// How often pending orders are looked at even without a wake-up (projection validation).
    #[arg(long, env = "ORDER_VALIDATION_INTERVAL_MS", default_value_t = DEFAULT_VALIDATION_INTERVAL_MS)]
    pub validation_interval_ms: u64,
    /// How long an order may await the catalog's stock reservation before it is rejected (and releases whatever the
    /// catalog may hold for it). Orders awaiting stock are swept every ORDER_VALIDATION_INTERVAL_MS.
    #[arg(long, env = "ORDER_STOCK_TIMEOUT_MS", default_value_t = DEFAULT_STOCK_TIMEOUT_MS)]
    pub stock_timeout_ms: u64,
    /// How long an idempotency key of `PostOrder` answers the order its first attempt placed; past it, the key is
    /// forgotten and may place a new order. A day by default, as clients retry after outages of hours.
    #[arg(long, env = "ORDER_IDEMPOTENCY_KEY_TTL_SECONDS", default_value_t = DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS)]
    pub idempotency_key_ttl_seconds: u64,
    /// How often expired idempotency keys are deleted, at most 1000 per statement. It only reclaims space: an
    /// expired key answers nothing, deleted or not.
    #[arg(
        long,
        env = "ORDER_IDEMPOTENCY_KEY_CLEANUP_INTERVAL_SECONDS",
        default_value_t = DEFAULT_IDEMPOTENCY_KEY_CLEANUP_INTERVAL_SECONDS
    )]
    pub idempotency_key_cleanup_interval_seconds: u64,
    /// Kafka, where the projection reads accounts and products (projection validation).
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// The account service (grpc validation).
    #[arg(long, env = "ACCOUNT_SERVICE_URL", default_value = DEFAULT_ACCOUNT_SERVICE_URL)]
    pub account_service_url: String,
    /// The catalog service (grpc validation).
    #[arg(long, env = "CATALOG_SERVICE_URL", default_value = DEFAULT_CATALOG_SERVICE_URL)]
    pub catalog_service_url: String,
    /// How long a call to the account or catalog service may take before the order fails as UNAVAILABLE.
    #[arg(long, env = "DEPENDENCY_TIMEOUT_MS", default_value_t = DEFAULT_DEPENDENCY_TIMEOUT_MS)]
    pub dependency_timeout_ms: u64,
    /// Where this process serves its Prometheus metrics (`GET /metrics`; port 0 picks a free one).
    // `None`, in code only, binds nothing: the one-command `shop` serves its one registry once, for every part.
    #[arg(long, env = "METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

/// The `order` command line: the settings, and what to do.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "order", version, about = "The shop's order service (gRPC).")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the `order` binary does; serving is the default.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve gRPC (and, in projection mode, consume and validate).
    Serve,
    /// Rebuild the accounts and products projection from offset 0 of its topics into fresh tables and swap them
    /// in, while a running service goes on answering; it then continues from where the rebuild stopped.
    RebuildProjections(RebuildSettings),
    /// Append every order's current state to the outbox again (`shop.order.republished.v1`), in batches, while a
    /// running service goes on serving, then record the run on shop.republishes.v1: gives consumers of
    /// shop.orders.v1 (whose old records retention deletes) every order again.
    Republish(RepublishSettings),
}

impl Settings {
    /// How the validator of pending orders paces itself. In `grpc` mode the directory's answers are final, so
    /// leftover pending orders are decided at once.
    pub fn validation_settings(&self) -> ValidationSettings {
        let reject_after = match self.validation {
            ValidationMode::Grpc => Duration::ZERO,
            ValidationMode::Projection => Duration::from_millis(self.projection_wait_ms),
        };
        ValidationSettings {
            reject_after,
            clock_skew: Duration::from_millis(self.clock_skew_ms),
            interval: Duration::from_millis(self.validation_interval_ms),
        }
    }

    /// How long an idempotency key answers the order it placed.
    pub fn idempotency_key_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_key_ttl_seconds)
    }

    /// Client settings for a dependency at `url`.
    pub fn dependency(&self, url: &str) -> ClientSettings {
        let timeout = Duration::from_millis(self.dependency_timeout_ms);
        ClientSettings { url: url.to_owned(), connect_timeout: timeout, request_timeout: timeout }
    }
}

impl Default for Settings {
    /// The settings of a local run, as with no flag and no environment variable.
    fn default() -> Self {
        Self {
            listen_addr: DEFAULT_LISTEN_ADDR.parse().expect("a valid default address"),
            database_url: DEFAULT_DATABASE_URL.parse().expect("a valid default URL"),
            database: PoolSettings::default(),
            validation: ValidationMode::Grpc,
            projection_wait_ms: DEFAULT_PROJECTION_WAIT_MS,
            idempotency_key_ttl_seconds: DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS,
            idempotency_key_cleanup_interval_seconds: DEFAULT_IDEMPOTENCY_KEY_CLEANUP_INTERVAL_SECONDS,
            priced_answer_wait_ms: DEFAULT_PRICED_ANSWER_WAIT_MS,
            clock_skew_ms: DEFAULT_CLOCK_SKEW_MS,
            validation_interval_ms: DEFAULT_VALIDATION_INTERVAL_MS,
            stock_timeout_ms: DEFAULT_STOCK_TIMEOUT_MS,
            kafka: KafkaSettings::default(),
            account_service_url: DEFAULT_ACCOUNT_SERVICE_URL.to_owned(),
            catalog_service_url: DEFAULT_CATALOG_SERVICE_URL.to_owned(),
            dependency_timeout_ms: DEFAULT_DEPENDENCY_TIMEOUT_MS,
            metrics_addr: Some(DEFAULT_METRICS_ADDR.parse().expect("a valid default address")),
            telemetry: TelemetrySettings::default(),
        }
    }
}
