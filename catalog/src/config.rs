//! The catalog service's settings: flags, or environment variables, with defaults for a local run.

use std::net::SocketAddr;

use shop_platform::{
    kafka::KafkaSettings,
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};

use crate::search::SearchSettings;
use shop_outbox::republish::RepublishSettings;
use shop_projection::RebuildSettings;

/// The `catalog` command line: the settings, and what to do.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "catalog", version, about = "The shop's catalog service (gRPC).")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the `catalog` binary does; serving is the default.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Serve gRPC, reserve and release stock as order events ask, and (elasticsearch backend) feed the search index.
    Serve,
    /// Rebuild the search index: replay shop.products.v1 into a fresh Elasticsearch index and swap it in while a
    /// running service goes on answering (elasticsearch backend), or reindex the full-text index (postgres).
    RebuildSearchIndex(RebuildSettings),
    /// Append every product's current state to the outbox again (`shop.product.republished.v1`), in batches, while
    /// a running service goes on serving, then record the run on shop.republishes.v1: refills shop.products.v1
    /// after its first records were deleted, so that rebuilds from it are complete again.
    Republish(RepublishSettings),
}

/// Where the service listens in a local run.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:50052";
/// Where the process serves its metrics in a local run: each binary has its own port, so all can run on one host.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9466";
/// The service's database in a local run.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/shop_catalog";

/// Everything the catalog service can be told at start. `catalog --help` lists it all.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address the gRPC server listens on (port 0 picks a free one).
    #[arg(long, env = "GRPC_LISTEN_ADDR", default_value = DEFAULT_LISTEN_ADDR)]
    pub listen_addr: SocketAddr,
    /// The catalog service's own database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,
    #[command(flatten)]
    pub database: PoolSettings,
    #[command(flatten)]
    pub search: SearchSettings,
    /// Kafka, where the stock saga reads order events, where the Elasticsearch index reads product events
    /// (elasticsearch backend), and where `republish` reads the topic's ends.
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Where this process serves its Prometheus metrics (`GET /metrics`; port 0 picks a free one).
    // `None`, in code only, binds nothing: the one-command `shop` serves its one registry once, for every part.
    #[arg(long, env = "METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

impl Default for Settings {
    /// The settings of a local run, as with no flag and no environment variable.
    fn default() -> Self {
        Self {
            listen_addr: DEFAULT_LISTEN_ADDR.parse().expect("a valid default address"),
            database_url: DEFAULT_DATABASE_URL.parse().expect("a valid default URL"),
            database: PoolSettings::default(),
            search: SearchSettings::default(),
            kafka: KafkaSettings::default(),
            metrics_addr: Some(DEFAULT_METRICS_ADDR.parse().expect("a valid default address")),
            telemetry: TelemetrySettings::default(),
        }
    }
}
