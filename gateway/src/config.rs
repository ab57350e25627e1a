//! The gateway's settings: flags, or environment variables, with defaults for a local run.

use std::{net::SocketAddr, time::Duration};

use shop_platform::{grpc::ClientSettings, telemetry::TelemetrySettings};

/// Everything the gateway can be told at start. `gateway --help` lists it all.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "gateway", version, about = "The shop's GraphQL gateway.")]
pub struct Settings {
    /// Address the HTTP server listens on (port 0 picks a free one).
    #[arg(long, env = "HTTP_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    /// The account service.
    #[arg(long, env = "ACCOUNT_SERVICE_URL", default_value = "http://127.0.0.1:50051")]
    pub account_service_url: String,
    /// The catalog service.
    #[arg(long, env = "CATALOG_SERVICE_URL", default_value = "http://127.0.0.1:50052")]
    pub catalog_service_url: String,
    /// The order service.
    #[arg(long, env = "ORDER_SERVICE_URL", default_value = "http://127.0.0.1:50053")]
    pub order_service_url: String,
    /// How long one call to a service may take before the field fails as UNAVAILABLE.
    #[arg(long, env = "SERVICE_TIMEOUT_MS", default_value_t = 5_000)]
    pub service_timeout_ms: u64,
    /// How long one HTTP request may take in all.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
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
