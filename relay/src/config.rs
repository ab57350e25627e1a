//! The relay's settings: flags, or environment variables, with defaults for a local run.

use std::{net::SocketAddr, time::Duration};

use shop_platform::{
    kafka::KafkaSettings,
    postgres::{DatabaseUrl, PoolSettings},
    telemetry::TelemetrySettings,
};

/// Everything the relay can be told at start. `relay --help` lists it all.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "relay", version, about = "Forwards the shop's transactional outboxes to Kafka.")]
pub struct Settings {
    /// The databases whose outboxes to forward, comma-separated; one relay serves any number of them.
    #[arg(
        long = "database-url",
        env = "RELAY_DATABASE_URLS",
        value_delimiter = ',',
        default_value = "postgres://postgres@127.0.0.1:5432/shop_account,postgres://postgres@127.0.0.1:5432/shop_catalog,postgres://postgres@127.0.0.1:5432/shop_order",
        hide_env_values = true
    )]
    pub database_urls: Vec<DatabaseUrl>,
    #[command(flatten)]
    pub database: PoolSettings,
    #[command(flatten)]
    pub kafka: KafkaSettings,
    #[command(flatten)]
    pub relay: RelaySettings,
    /// Where Prometheus metrics (`/metrics`) and a liveness check (`/health`) are served.
    #[arg(long, env = "RELAY_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

/// How the relay reads, publishes and shares work.
#[derive(Debug, Clone, clap::Args)]
pub struct RelaySettings {
    /// Most outbox rows read and published together.
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = 1_000)]
    pub batch_size: u32,
    /// How often to look for rows when no commit notification arrives (notifications missed while reconnecting).
    #[arg(long, env = "RELAY_POLL_INTERVAL_MS", default_value_t = 1_000)]
    pub poll_interval_ms: u64,
    /// How long published rows are kept before they are deleted; 0 deletes them as they are published.
    #[arg(long, env = "RELAY_RETENTION_SECS", default_value_t = 0)]
    pub retention_secs: u64,
    /// How long an instance holds its shards without renewing them; the shards of an instance that died move to
    /// the others after at most this long.
    #[arg(long, env = "RELAY_LEASE_TTL_MS", default_value_t = 10_000)]
    pub lease_ttl_ms: u64,
    /// How long a stop waits for the batch in flight to be acknowledged before abandoning it (its rows stay in
    /// the outbox and are sent again).
    #[arg(long, env = "RELAY_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
    /// How long to keep retrying at start while no Kafka broker answers.
    #[arg(long, env = "RELAY_KAFKA_STARTUP_TIMEOUT_SECS", default_value_t = 60)]
    pub kafka_startup_timeout_secs: u64,
    /// Create missing topics at start (entity topics compacted); when off, a missing topic stops the relay with
    /// the command to create it.
    #[arg(long, env = "RELAY_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_topics: bool,
    /// Partitions of the topics the relay creates.
    #[arg(long, env = "RELAY_TOPIC_PARTITIONS", default_value_t = 6)]
    pub topic_partitions: i32,
    /// Replication factor of the topics the relay creates.
    #[arg(long, env = "RELAY_TOPIC_REPLICATION_FACTOR", default_value_t = 1)]
    pub topic_replication_factor: i32,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            poll_interval_ms: 1_000,
            retention_secs: 0,
            lease_ttl_ms: 10_000,
            shutdown_grace_ms: 5_000,
            kafka_startup_timeout_secs: 60,
            create_topics: true,
            topic_partitions: 6,
            topic_replication_factor: 1,
        }
    }
}

impl RelaySettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_secs)
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    pub fn kafka_startup_timeout(&self) -> Duration {
        Duration::from_secs(self.kafka_startup_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
