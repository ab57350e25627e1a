//! The order service's settings: flags, or environment variables, with defaults for a local run.

use std::{net::SocketAddr, time::Duration};

use shop_platform::{
    grpc::ClientSettings,
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};

/// How `PostOrder` checks the account and the products an order names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidationMode {
    /// Synchronously, asking the account and catalog services over gRPC; the order is stored confirmed (and
    /// priced) or not at all.
    Grpc,
}

/// Everything the order service can be told at start. `order --help` lists it all.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "order", version, about = "The shop's order service (gRPC).")]
pub struct Settings {
    /// Address the gRPC server listens on (port 0 picks a free one).
    #[arg(long, env = "GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50053")]
    pub listen_addr: SocketAddr,
    /// The order service's own database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/shop_order",
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,
    #[command(flatten)]
    pub database: PoolSettings,
    /// How orders are validated.
    #[arg(long, env = "ORDER_VALIDATION", value_enum, default_value_t = ValidationMode::Grpc)]
    pub validation: ValidationMode,
    /// The account service (grpc validation).
    #[arg(long, env = "ACCOUNT_SERVICE_URL", default_value = "http://127.0.0.1:50051")]
    pub account_service_url: String,
    /// The catalog service (grpc validation).
    #[arg(long, env = "CATALOG_SERVICE_URL", default_value = "http://127.0.0.1:50052")]
    pub catalog_service_url: String,
    /// How long a call to the account or catalog service may take before the order fails as UNAVAILABLE.
    #[arg(long, env = "DEPENDENCY_TIMEOUT_MS", default_value_t = 3_000)]
    pub dependency_timeout_ms: u64,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

impl Settings {
    /// Client settings for a dependency at `url`.
    pub fn dependency(&self, url: &str) -> ClientSettings {
        let timeout = Duration::from_millis(self.dependency_timeout_ms);
        ClientSettings {
            url: url.to_owned(),
            connect_timeout: timeout,
            request_timeout: timeout,
        }
    }
}
