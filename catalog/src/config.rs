//! The catalog service's settings: flags, or environment variables, with defaults for a local run.

use std::net::SocketAddr;

use shop_platform::{
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};

/// Everything the catalog service can be told at start. `catalog --help` lists it all.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "catalog", version, about = "The shop's catalog service (gRPC).")]
pub struct Settings {
    /// Address the gRPC server listens on (port 0 picks a free one).
    #[arg(long, env = "GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub listen_addr: SocketAddr,
    /// The catalog service's own database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/shop_catalog",
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,
    #[command(flatten)]
    pub database: PoolSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}
