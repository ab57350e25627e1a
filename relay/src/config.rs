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

const DEFAULT_BATCH_SIZE: u32 = 1_000;
const DEFAULT_POLL_INTERVAL_MS: u64 = 1_000;
const DEFAULT_LEASE_TTL_MS: u64 = 10_000;
const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 5_000;
const DEFAULT_KAFKA_STARTUP_TIMEOUT_SECS: u64 = 60;
const DEFAULT_TOPIC_PARTITIONS: i32 = 6;
const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 1_000;
const DEFAULT_BATCH_WINDOW_MS: u64 = 5;

/// How the relay reads, publishes and shares work.
#[derive(Debug, Clone, clap::Args)]
pub struct RelaySettings {
    /// Most outbox rows read and published together.
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: u32,
    /// After a batch smaller than the batch size, the next read waits until this long after the last one began,
    /// so the commits arriving meanwhile go out together; 0 reads again at the next commit.
    #[arg(long, env = "RELAY_BATCH_WINDOW_MS", default_value_t = DEFAULT_BATCH_WINDOW_MS)]
    pub batch_window_ms: u64,
    /// How often to look for rows when no commit notification arrives (notifications missed while reconnecting).
    #[arg(long, env = "RELAY_POLL_INTERVAL_MS", default_value_t = DEFAULT_POLL_INTERVAL_MS)]
    pub poll_interval_ms: u64,
    /// How long published rows are kept before they are deleted; 0 deletes them as they are published.
    #[arg(long, env = "RELAY_RETENTION_SECS", default_value_t = 0)]
    pub retention_secs: u64,
    /// How long an instance holds its shards without renewing them; the shards of an instance that died move to
    /// the others after at most this long. Also the longest a batch waits for Kafka's acknowledgements: past it the
    /// batch is abandoned and the instance gives its shards up until Kafka answers again.
    #[arg(long, env = "RELAY_LEASE_TTL_MS", default_value_t = DEFAULT_LEASE_TTL_MS)]
    pub lease_ttl_ms: u64,
    /// How long a stop waits for the batch in flight to be acknowledged before abandoning it (its rows stay in
    /// the outbox and are sent again).
    #[arg(long, env = "RELAY_SHUTDOWN_GRACE_MS", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
    /// How long to keep retrying at start while no Kafka broker answers.
    #[arg(long, env = "RELAY_KAFKA_STARTUP_TIMEOUT_SECS", default_value_t = DEFAULT_KAFKA_STARTUP_TIMEOUT_SECS)]
    pub kafka_startup_timeout_secs: u64,
    /// Create missing topics at start (entity topics compacted); when off, a missing topic stops the relay with
    /// the command to create it.
    #[arg(long, env = "RELAY_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_topics: bool,
    /// Partitions of the topics the relay creates.
    #[arg(long, env = "RELAY_TOPIC_PARTITIONS", default_value_t = DEFAULT_TOPIC_PARTITIONS)]
    pub topic_partitions: i32,
    /// Replication factor of the topics the relay creates.
    #[arg(long, env = "RELAY_TOPIC_REPLICATION_FACTOR", default_value_t = 1)]
    pub topic_replication_factor: i32,
    /// How often each outbox's heartbeat (the time before which all its events are on Kafka) is published; 0
    /// publishes none, and consumers waiting on it never learn that the outbox is caught up.
    #[arg(long, env = "RELAY_HEARTBEAT_INTERVAL_MS", default_value_t = DEFAULT_HEARTBEAT_INTERVAL_MS)]
    pub heartbeat_interval_ms: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            batch_window_ms: DEFAULT_BATCH_WINDOW_MS,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            retention_secs: 0,
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            shutdown_grace_ms: DEFAULT_SHUTDOWN_GRACE_MS,
            kafka_startup_timeout_secs: DEFAULT_KAFKA_STARTUP_TIMEOUT_SECS,
            create_topics: true,
            topic_partitions: DEFAULT_TOPIC_PARTITIONS,
            topic_replication_factor: 1,
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
        }
    }
}

impl RelaySettings {
    pub fn batch_window(&self) -> Duration {
        Duration::from_millis(self.batch_window_ms)
    }

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

    /// `None` when heartbeats are off.
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        (self.heartbeat_interval_ms > 0).then(|| Duration::from_millis(self.heartbeat_interval_ms))
    }
}
