//! The consumer runtime: feed a projection (a read model in Postgres, or an index elsewhere) from Kafka topics.
//!
//! - [`Projection`]: what a read model implements: apply a batch of records inside a Postgres transaction.
//! - [`ProjectionRunner`]: consumes the projection's topics in a consumer group and applies records in batches;
//!   each batch and the projection's positions commit in one transaction, so a record is applied once even when
//!   Kafka delivers it again. On every assignment it starts each partition where Postgres says, not where the
//!   group's offsets say. Records that cannot be decoded or break their event's invariants are logged, counted and
//!   kept in `projection_skipped`, and the position moves on; so is a record that keeps failing with a data error
//!   (the batch is applied record by record to find it): no record can stop a partition.
//! - [`positions`]: judging a stored position against the log (a recreated topic, a replaced broker or cluster,
//!   records deleted before they were applied) before consuming from it.
//! - [`Completeness`]: how far a projection is known to be complete, from the relay's heartbeats: what lets a
//!   consumer tell "does not exist" from "not here yet".
//! - [`rebuild`]: replays the topics from offset 0 into fresh storage and swaps it in atomically, within a
//!   deadline, while the live runner goes on; the live runner then continues from where the rebuild stopped. It
//!   first checks that the topics still hold their history ([`check_history`]: no partition lost its first
//!   records, or a completed republish refilled it), and refuses otherwise unless told to accept it.
//! - [`VersionedBatch`]: applying a batch of entity versions as one multi-row upsert per table, with the outcomes
//!   of applying them one by one.
//! - [`apply_batch`] and the stored positions, for tools and tests.
//! - [`Record`]: a consumed record, owned.
//! - Every runner counts its records by outcome and reports its lag per partition (`shop_consumer_records_total`,
//!   `shop_consumer_lag_records`, in the process's Prometheus registry).
//!
//! Projections should also guard every entity write by aggregate version (apply only if newer): a replay, or an
//! older event published again after a newer one, then changes nothing.

mod completeness;
mod history;
mod metrics;
mod offsets;
pub mod positions;
mod rebuild;
mod record;
mod runner;
mod versions;

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
};
use shop_platform::kafka::KafkaSettings;
use shop_platform::kafka::TracingContext;
use sqlx::{
    PgPool, PgTransaction,
    migrate::{MigrateError, Migrator},
};

pub use self::{
    completeness::Completeness,
    history::{IncompleteHistory, MissingHistory, check_history, missing_history},
    offsets::{
        BatchOptions, BatchSummary, Partition, StoredPosition, apply_batch, dead_letter, move_position,
        stored_offsets, stored_positions,
    },
    rebuild::{Progress, RebuildReport, RebuildSettings, Rebuildable, rebuild},
    record::{Record, RecordHeaders},
    runner::{MAX_RECORD_ATTEMPTS, ProjectionRunner, ProjectionStats, RunnerSettings},
    versions::VersionedBatch,
};

/// The table that records which consumer migrations a database has applied.
pub const MIGRATIONS_TABLE: &str = "_shop_consumer_migrations";

/// librdkafka settings every projection consumer needs; pass them as defaults when building its `ClientConfig`.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    // Postgres holds the true position and the runner seeks to it on every assignment. The group's committed
    // offsets are stored after each Postgres commit, for lag monitoring only.
    ("enable.auto.commit", "true"),
    ("enable.auto.offset.store", "false"),
    // Where a position that fell out of the log goes before the runner positions it again: the beginning.
    ("auto.offset.reset", "earliest"),
    ("session.timeout.ms", "10000"),
    ("fetch.wait.max.ms", "100"),
];

/// The offsets tables' migrations, tracked apart from the service's own (in [`MIGRATIONS_TABLE`]).
pub fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// Creates or updates the offsets tables. Safe to run concurrently and on every start.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    migrator().run(pool).await
}

/// Where projections read from: a Kafka client configuration, and a prefix for the names of topics and consumer
/// groups (several environments sharing one cluster each use their own; empty by default).
#[derive(Debug, Clone)]
pub struct Source {
    pub config: ClientConfig,
    pub topic_prefix: String,
}

impl Source {
    pub fn new(config: ClientConfig) -> Self {
        Self { config, topic_prefix: String::new() }
    }

    /// Where the consumers of a process configured with `settings` read from.
    pub fn from_settings(settings: &KafkaSettings) -> Self {
        Self::new(settings.client_config(CONSUMER_DEFAULTS)).with_topic_prefix(&settings.kafka_topic_prefix)
    }

    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// The name of `topic` on the cluster.
    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    /// The topic name the projection knows (without the prefix).
    pub(crate) fn plain_topic(&self, topic: &str) -> String {
        topic.strip_prefix(self.topic_prefix.as_str()).unwrap_or(topic).to_owned()
    }

    /// A copy of `message`, its topic named as the projection knows it.
    pub(crate) fn record(&self, message: &impl rdkafka::Message) -> Record {
        let topic = message.topic();
        Record::from_message_of(message, topic.strip_prefix(self.topic_prefix.as_str()).unwrap_or(topic))
    }

    /// The (low, high) watermarks of every partition of `topics`, under their plain names, read with a client of
    /// its own.
    pub(crate) async fn watermarks(&self, topics: &[&'static str]) -> anyhow::Result<Watermarks> {
        let consumer: Arc<BaseConsumer> = Arc::new(self.config.create()?);
        self.watermarks_with(&consumer, topics).await
    }

    /// The same, read with `consumer` (any consumer on this source).
    pub(crate) async fn watermarks_with<C: Consumer<X> + Send + Sync + 'static, X: ConsumerContext>(
        &self,
        consumer: &Arc<C>,
        topics: &[&'static str],
    ) -> anyhow::Result<Watermarks> {
        let (consumer, topics) =
            (consumer.clone(), topics.iter().map(|topic| self.topic(topic)).collect::<Vec<_>>());
        // Metadata calls block; keep them off the async workers.
        let marks = tokio::task::spawn_blocking(move || {
            let mut marks = Vec::new();
            for topic in &topics {
                let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
                for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                    let watermarks =
                        consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
                    marks.push((topic.clone(), partition.id(), watermarks));
                }
            }
            Ok::<_, rdkafka::error::KafkaError>(marks)
        })
        .await??;
        Ok(marks
            .into_iter()
            .map(|(topic, partition, marks)| ((self.plain_topic(&topic), partition), marks))
            .collect())
    }
}

/// The (low, high) watermarks per partition, under the projection's own topic names.
pub type Watermarks = HashMap<Partition, (i64, i64)>;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The projection changed.
    Applied,
    /// Nothing to do: an older or repeated version, or an event the projection does not use.
    Ignored,
    /// The record cannot be decoded or breaks its event's invariants; it is recorded in `projection_skipped` and
    /// passed over.
    Skipped(String),
}

/// Why a batch could not be applied. The batch is retried; a record that keeps failing with an error it causes
/// itself ([`is_caused_by_a_record`](Self::is_caused_by_a_record)) is passed over into the dead-letter table.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl ProjectionError {
    /// Whether a record's content, rather than the database's or a dependency's state, makes this fail (see
    /// [`is_refused_for_its_data`]). Retrying those never helps; anything else (connections, timeouts, an index
    /// that is down, a projection's own error) may pass, and is retried for as long as it takes.
    pub fn is_caused_by_a_record(&self) -> bool {
        match self {
            Self::Database(error) => is_refused_for_its_data(error),
            Self::Other(_) => false,
        }
    }
}

/// Whether Postgres refused a statement for the values it carries, which no retry changes: a data exception
/// (SQLSTATE class 22: a value it cannot store, such as a NUL in text), an integrity violation (class 23: a CHECK,
/// a key) or a program limit (class 54: a value too large to index), or a value that could not even be encoded.
/// Connection, pool, I/O, timeout and serialisation failures are not: they may pass.
pub fn is_refused_for_its_data(error: &sqlx::Error) -> bool {
    const CLASSES: [&str; 3] = ["22", "23", "54"];
    match error {
        sqlx::Error::Database(error) => {
            error.code().is_some_and(|code| CLASSES.iter().any(|class| code.starts_with(class)))
        }
        sqlx::Error::Encode(_) => true,
        _ => false,
    }
}

/// A read model fed from Kafka.
pub trait Projection: Send + Sync + 'static {
    /// The projection's name: its key in `projection_offsets` and its consumer group.
    fn name(&self) -> &str;

    /// The topics it reads.
    fn topics(&self) -> &[&'static str];

    /// Applies `records` (in the order Kafka delivered them per partition) inside `transaction`, returning one
    /// outcome per record. Must be idempotent: guard entity writes by aggregate version.
    fn apply(
        &self,
        transaction: &mut PgTransaction<'_>,
        records: &[Record],
    ) -> impl Future<Output = Result<Vec<Outcome>, ProjectionError>> + Send;
}
