//! Running a projection continuously in a consumer group.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    ClientConfig,
    consumer::{CommitMode, Consumer, StreamConsumer},
};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    BatchSummary, Projection, Record, Source, TracingContext, apply_batch, restart_reset_partitions,
};

/// How records are grouped into transactions.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Most records per transaction.
    pub batch_size: usize,
    /// How long to wait for more records before applying a batch that is not full.
    pub batch_wait: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self { batch_size: 500, batch_wait: Duration::from_millis(20) }
    }
}

/// Running counts, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct ProjectionStats {
    applied: AtomicU64,
    ignored: AtomicU64,
    skipped: AtomicU64,
    redelivered: AtomicU64,
    batches: AtomicU64,
}

impl ProjectionStats {
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }

    /// Records that could not be decoded.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Records Kafka delivered again after they were applied.
    pub fn redelivered(&self) -> u64 {
        self.redelivered.load(Ordering::Relaxed)
    }

    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    fn add(&self, summary: &BatchSummary) {
        self.applied.fetch_add(summary.applied, Ordering::Relaxed);
        self.ignored.fetch_add(summary.ignored, Ordering::Relaxed);
        self.skipped.fetch_add(summary.skipped, Ordering::Relaxed);
        self.redelivered.fetch_add(summary.already_applied, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }
}

/// Feeds a projection from its topics, in the consumer group named after it.
#[derive(Debug)]
pub struct ProjectionRunner<P> {
    projection: Arc<P>,
    pool: PgPool,
    source: Source,
    settings: RunnerSettings,
    stats: Arc<ProjectionStats>,
    on_applied: Option<Arc<Notify>>,
}

impl<P: Projection> ProjectionRunner<P> {
    /// `source` holds the Kafka client configuration (brokers, security,
    /// [`CONSUMER_DEFAULTS`](super::CONSUMER_DEFAULTS)); the group id defaults to the projection's name, prefixed
    /// like the topics.
    pub fn new(projection: Arc<P>, pool: PgPool, source: Source) -> Self {
        Self {
            projection,
            pool,
            source,
            settings: RunnerSettings::default(),
            stats: Arc::default(),
            on_applied: None,
        }
    }

    pub fn with_settings(mut self, settings: RunnerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Wakes `notify` after every batch that changed the projection (for work that waits on it).
    pub fn notify_on_applied(mut self, notify: Arc<Notify>) -> Self {
        self.on_applied = Some(notify);
        self
    }

    pub fn stats(&self) -> Arc<ProjectionStats> {
        self.stats.clone()
    }

    /// Consumes until `stop`. A batch that cannot be applied (the database is away) is retried with backoff and
    /// never skipped; at `stop` the batch in hand is applied or left for the next start, and the consumer leaves
    /// its group so its partitions move at once.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let name = self.projection.name().to_owned();
        let mut config: ClientConfig = self.source.config.clone();
        if config.get("group.id").is_none() {
            config.set("group.id", self.source.topic(&name));
        }
        let consumer: StreamConsumer<TracingContext> = config.create_with_context(TracingContext)?;
        self.restart_reset_partitions().await?;
        let topics: Vec<String> =
            self.projection.topics().iter().map(|topic| self.source.topic(topic)).collect();
        consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
        tracing::info!(projection = %name, topics = ?self.projection.topics(), "Consuming.");

        while let Some(batch) = self.next_batch(&consumer, &stop).await {
            let Some(summary) = self.apply_with_retry(&batch, &stop).await else {
                break;
            };
            self.stats.add(&summary);
            if summary.applied > 0
                && let Some(notify) = &self.on_applied
            {
                notify.notify_waiters();
                notify.notify_one();
            }
            // Tell Kafka where to resume, now that Postgres has the batch.
            let mut last: HashMap<(&str, i32), i64> = HashMap::new();
            for record in &batch {
                last.insert((&record.topic, record.partition), record.offset);
            }
            for ((topic, partition), offset) in last {
                if let Err(error) = consumer.store_offset(&self.source.topic(topic), partition, offset) {
                    // The partition moved to another member meanwhile; its new owner skips what we applied.
                    tracing::debug!(projection = %name, topic, partition, error.message = %error, "Could not store an offset.");
                }
            }
            tracing::debug!(projection = %name, records = batch.len(), ?summary, "Applied a batch.");
        }

        if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(projection = %name, error.message = %error, "No offsets to commit at shutdown.");
        }
        consumer.unsubscribe();
        tracing::info!(projection = %name, "Stopped consuming.");
        Ok(())
    }

    /// Guards against topics that restarted from offset 0 (see [`restart_reset_partitions`]) before consuming.
    async fn restart_reset_partitions(&self) -> anyhow::Result<()> {
        let name = self.projection.name();
        let ends = self.source.watermarks(self.projection.topics()).await?;
        for (topic, partition, stored, end) in restart_reset_partitions(&self.pool, name, &ends).await? {
            tracing::warn!(
                projection = name,
                topic,
                partition,
                stored_offset = stored,
                topic_end = end,
                "The partition ends before the position stored for it: the topic was recreated or the broker \
                 replaced. Starting it over from its beginning; versions already held are ignored."
            );
        }
        Ok(())
    }

    /// Waits for a first record, then takes what else arrives within the batch wait, up to the batch size.
    async fn next_batch(
        &self,
        consumer: &StreamConsumer<TracingContext>,
        stop: &CancellationToken,
    ) -> Option<Vec<Record>> {
        let first = loop {
            tokio::select! {
                () = stop.cancelled() => return None,
                received = consumer.recv() => match received {
                    Ok(message) => break self.source.unprefix(Record::from_message(&message)),
                    Err(error) => {
                        tracing::warn!(projection = self.projection.name(), error.message = %error, "Kafka consumer error.");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        };
        let mut batch = vec![first];
        while batch.len() < self.settings.batch_size {
            match tokio::time::timeout(self.settings.batch_wait, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(self.source.unprefix(Record::from_message(&message))),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn apply_with_retry(&self, batch: &[Record], stop: &CancellationToken) -> Option<BatchSummary> {
        let name = self.projection.name();
        let mut pause = Duration::from_millis(100);
        loop {
            match apply_batch(&self.pool, &*self.projection, batch, Some(name)).await {
                Ok(summary) => return Some(summary),
                Err(error) => {
                    tracing::warn!(
                        projection = name,
                        records = batch.len(),
                        retry_in_ms = pause.as_millis() as u64,
                        error.message = %error,
                        "Failed to apply a batch; retrying it."
                    );
                    tokio::select! {
                        () = stop.cancelled() => return None,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
