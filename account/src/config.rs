//! The account service's settings: flags, or environment variables, with defaults for a local run.

use std::net::SocketAddr;

use shop_platform::{
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};

/// Everything the account service can be told at start. `account --help` lists it all.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "account", version, about = "The shop's account service (gRPC).")]
pub struct Settings {
    /// Address the gRPC server listens on (port 0 picks a free one).
    #[arg(long, env = "GRPC_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,
    /// The account service's own database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/shop_account",
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,
    #[command(flatten)]
    pub database: PoolSettings,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}
