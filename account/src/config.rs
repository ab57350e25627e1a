//! The account service's settings: flags, or environment variables, with defaults for a local run.

use std::net::SocketAddr;

use shop_platform::{
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};

/// Where the service listens in a local run.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:50051";
/// The service's database in a local run.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/shop_account";

/// Everything the account service can be told at start. `account --help` lists it all.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "account", version, about = "The shop's account service (gRPC).")]
pub struct Settings {
    /// Address the gRPC server listens on (port 0 picks a free one).
    #[arg(long, env = "GRPC_LISTEN_ADDR", default_value = DEFAULT_LISTEN_ADDR)]
    pub listen_addr: SocketAddr,
    /// The account service's own database.
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
    pub telemetry: TelemetrySettings,
}

impl Default for Settings {
    /// The settings of a local run, as with no flag and no environment variable.
    fn default() -> Self {
        Self {
            listen_addr: DEFAULT_LISTEN_ADDR.parse().expect("a valid default address"),
            database_url: DEFAULT_DATABASE_URL.parse().expect("a valid default URL"),
            database: PoolSettings::default(),
            telemetry: TelemetrySettings::default(),
        }
    }
}
