//! The gateway's settings: flags, or environment variables, with defaults for a local run.

use std::{net::SocketAddr, time::Duration};

use shop_platform::{grpc::ClientSettings, kafka::KafkaSettings, telemetry::TelemetrySettings};

use crate::{auth::settings::AuthSettings, live::LiveSettings};

/// Where the gateway listens in a local run.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";
/// Where the process serves its metrics in a local run: each binary has its own port, so all can run on one host.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9468";
pub const DEFAULT_ACCOUNT_SERVICE_URL: &str = "http://127.0.0.1:50051";
pub const DEFAULT_CATALOG_SERVICE_URL: &str = "http://127.0.0.1:50052";
pub const DEFAULT_ORDER_SERVICE_URL: &str = "http://127.0.0.1:50053";
const DEFAULT_SERVICE_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_HTTP_REQUEST_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_HTTP_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_HTTP_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_HTTP_MAX_IN_FLIGHT: usize = 512;
const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 2_000;
const DEFAULT_RATE_LIMIT_BURST: u32 = 4_000;
const DEFAULT_HTTP2_MAX_STREAMS_PER_CONNECTION: u32 = 100;
const DEFAULT_GRAPHQL_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

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
    /// How long a client may take to send a request's headers; also how long an idle HTTP/1 connection stays
    /// open. Slow senders (slowloris) are cut off after it.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_MS", default_value_t = DEFAULT_HTTP_HEADER_READ_TIMEOUT_MS)]
    pub http_header_read_timeout_ms: u64,
    /// Largest request body accepted, in bytes; larger ones are answered 413 without being read whole.
    #[arg(long, env = "HTTP_MAX_BODY_BYTES", default_value_t = DEFAULT_HTTP_MAX_BODY_BYTES)]
    pub http_max_body_bytes: usize,
    /// Most requests served at once; past it, requests are answered 503 with `Retry-After` at once.
    #[arg(long, env = "HTTP_MAX_IN_FLIGHT", default_value_t = DEFAULT_HTTP_MAX_IN_FLIGHT)]
    pub http_max_in_flight: usize,
    /// Requests per second one client (its signed-in user, else its IP address) may send, sustained; past it and
    /// its burst, requests are answered 429 with `Retry-After`. 0 turns rate limiting off. The default is above
    /// what one client can get from a gateway on a small machine (the benchmark's createOrder at concurrency 32
    /// from one address does about 1 300/s on two cores), so it stops floods, not heavy honest use.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = DEFAULT_RATE_LIMIT_PER_SECOND)]
    pub rate_limit_per_second: u32,
    /// Requests one client may send at once after a quiet spell, above its sustained rate. 0 turns rate limiting
    /// off.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = DEFAULT_RATE_LIMIT_BURST)]
    pub rate_limit_burst: u32,
    /// Most requests one HTTP/2 connection may have open at once.
    #[arg(long, env = "HTTP2_MAX_STREAMS_PER_CONNECTION", default_value_t = DEFAULT_HTTP2_MAX_STREAMS_PER_CONNECTION)]
    pub http2_max_streams_per_connection: u32,
    /// Largest GraphQL response, in bytes; a larger answer is replaced by an error asking for fewer items.
    #[arg(long, env = "GRAPHQL_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_GRAPHQL_MAX_RESPONSE_BYTES)]
    pub graphql_max_response_bytes: usize,
    /// Origins allowed to call the gateway from a browser page (CORS), comma-separated, or `*`. None by default:
    /// browsers then refuse cross-origin calls.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    #[command(flatten)]
    pub auth: AuthSettings,
    /// Where the order topic is, which feeds GraphQL subscriptions (read only once a client subscribes).
    #[command(flatten)]
    pub kafka: KafkaSettings,
    #[command(flatten)]
    pub live: LiveSettings,
    /// Where this process serves its Prometheus metrics (`GET /metrics`; port 0 picks a free one).
    // `None`, in code only, binds nothing: the one-command `shop` serves its one registry once, for every part.
    #[arg(long, env = "METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: Option<SocketAddr>,
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
            http_header_read_timeout_ms: DEFAULT_HTTP_HEADER_READ_TIMEOUT_MS,
            http_max_body_bytes: DEFAULT_HTTP_MAX_BODY_BYTES,
            http_max_in_flight: DEFAULT_HTTP_MAX_IN_FLIGHT,
            rate_limit_per_second: DEFAULT_RATE_LIMIT_PER_SECOND,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            http2_max_streams_per_connection: DEFAULT_HTTP2_MAX_STREAMS_PER_CONNECTION,
            graphql_max_response_bytes: DEFAULT_GRAPHQL_MAX_RESPONSE_BYTES,
            cors_allowed_origins: Vec::new(),
            auth: AuthSettings::default(),
            kafka: KafkaSettings::default(),
            live: LiveSettings::default(),
            metrics_addr: Some(DEFAULT_METRICS_ADDR.parse().expect("a valid default address")),
            telemetry: TelemetrySettings::default(),
        }
    }
}
