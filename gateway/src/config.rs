//! The gateway's settings: flags, or environment variables, with defaults for a local run.

use std::{net::SocketAddr, time::Duration};

use shop_platform::{grpc::ClientSettings, telemetry::TelemetrySettings};

/// Where the gateway listens in a local run.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_ACCOUNT_SERVICE_URL: &str = "http://127.0.0.1:50051";
pub const DEFAULT_CATALOG_SERVICE_URL: &str = "http://127.0.0.1:50052";
pub const DEFAULT_ORDER_SERVICE_URL: &str = "http://127.0.0.1:50053";
const DEFAULT_SERVICE_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_HTTP_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Everything the gateway can be told at start. `gateway --help` lists it all.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "gateway", version, about = "The shop's GraphQL gateway.")]
pub struct Settings {
    /// Address the HTTP server listens on (port 0 picks a free one).
    #[arg(long, env = "HTTP_LISTEN_ADDR", default_value = DEFAULT_LISTEN_ADDR)]
    pub listen_addr: SocketAddr,
    /// The account service.
    #[arg(long, env = "ACCOUNT_SERVICE_URL", default_value = DEFAULT_ACCOUNT_SERVICE_URL)]
    pub account_service_url: String,
    /// The catalog service.
    #[arg(long, env = "CATALOG_SERVICE_URL", default_value = DEFAULT_CATALOG_SERVICE_URL)]
    pub catalog_service_url: String,
    /// The order service.
    #[arg(long, env = "ORDER_SERVICE_URL", default_value = DEFAULT_ORDER_SERVICE_URL)]
    pub order_service_url: String,
    /// How long one call to a service may take before the field fails as UNAVAILABLE.
    #[arg(long, env = "SERVICE_TIMEOUT_MS", default_value_t = DEFAULT_SERVICE_TIMEOUT_MS)]
    pub service_timeout_ms: u64,
    /// How long one HTTP request may take in all.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_HTTP_REQUEST_TIMEOUT_MS)]
    pub http_request_timeout_ms: u64,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

impl Settings {
    /// Client settings for the service at `url`.
    pub fn service(&self, url: &str) -> ClientSettings {
        ClientSettings {
            url: url.to_owned(),
            connect_timeout: Duration::from_millis(self.service_timeout_ms.min(2_000)),
            request_timeout: Duration::from_millis(self.service_timeout_ms),
        }
    }
}

impl Default for Settings {
    /// The settings of a local run, as with no flag and no environment variable.
    fn default() -> Self {
        Self {
            listen_addr: DEFAULT_LISTEN_ADDR.parse().expect("a valid default address"),
            account_service_url: DEFAULT_ACCOUNT_SERVICE_URL.to_owned(),
            catalog_service_url: DEFAULT_CATALOG_SERVICE_URL.to_owned(),
            order_service_url: DEFAULT_ORDER_SERVICE_URL.to_owned(),
            service_timeout_ms: DEFAULT_SERVICE_TIMEOUT_MS,
            http_request_timeout_ms: DEFAULT_HTTP_REQUEST_TIMEOUT_MS,
            telemetry: TelemetrySettings::default(),
        }
    }
}
