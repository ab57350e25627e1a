//! Running a projection continuously in a consumer group.
//!
//! Postgres holds the projection's true position, committed with the projection itself; Kafka's group offsets are
//! a hint for monitoring tools, stored after each Postgres commit. So whenever the group assigns partitions, the
//! runner pauses them, judges their stored positions against the log (see [`positions`](crate::positions)), seeks
//! each to where Postgres says — the beginning when nothing is stored — and only then resumes them. A restored
//! database, a standby that lost recent commits or a fresh database under an old group therefore never skips a
//! record, and a recreated topic is consumed again from its beginning.
//!
//! The runner does not give up: a broker that cannot be reached at start is waited for, a batch that cannot be
//! applied is retried, and the part reports NOT_SERVING meanwhile.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    ClientConfig, ClientContext, Offset, Statistics, TopicPartitionList,
    config::RDKafkaLogLevel,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    error::KafkaError,
};
use shop_platform::{backoff::Backoff, health::PartHealth, supervisor::Part};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    BatchSummary, Projection, ProjectionError, Record, Source, TracingContext,
    metrics::ConsumerMeter,
    offsets::{self, BatchOptions, Partition, TopicSummaries},
    positions::{self, Verdict},
    record,
};

/// How many times a record whose content makes it fail is tried before it is passed over.
pub const MAX_RECORD_ATTEMPTS: u32 = 3;

/// How records are grouped into transactions.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Most records per transaction.
    pub batch_size: usize,
    /// How long after its first record a batch that is not full is applied. Counted from the first record, not
    /// from the last: records arriving a few milliseconds apart would otherwise keep a batch open until it is
    /// full, half a second at 1 000 records/s.
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
    dead_lettered: AtomicU64,
    redelivered: AtomicU64,
    batches: AtomicU64,
    resets: AtomicU64,
    truncations: AtomicU64,
}

impl ProjectionStats {
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }

    /// Records that could not be decoded or broke their event's invariants.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Records passed over into the dead-letter table after failing to apply again and again.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }

    /// Records Kafka delivered again after they were applied.
    pub fn redelivered(&self) -> u64 {
        self.redelivered.load(Ordering::Relaxed)
    }

    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Partitions consumed again from their beginning because their log was replaced.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// Partitions whose records were deleted before they were applied.
    pub fn truncations(&self) -> u64 {
        self.truncations.load(Ordering::Relaxed)
    }

    fn add(&self, summary: &BatchSummary) {
        self.applied.fetch_add(summary.applied, Ordering::Relaxed);
        self.ignored.fetch_add(summary.ignored, Ordering::Relaxed);
        self.skipped.fetch_add(summary.skipped, Ordering::Relaxed);
        self.dead_lettered.fetch_add(summary.dead_lettered, Ordering::Relaxed);
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
    on_applied: Vec<Arc<Notify>>,
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
            on_applied: Vec::new(),
        }
    }

    pub fn with_settings(mut self, settings: RunnerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Wakes `notify` after every batch that changed the projection (for work that waits on it): every task
    /// waiting on it, or the next one to wait. Called again, wakes each `notify` given.
    pub fn notify_on_applied(mut self, notify: Arc<Notify>) -> Self {
        self.on_applied.push(notify);
        self
    }

    pub fn stats(&self) -> Arc<ProjectionStats> {
        self.stats.clone()
    }

    /// Consumes until `stop`, outside any supervisor (a tool, an example); see [`run`](Self::run).
    pub async fn run_until_stopped(&self, stop: CancellationToken) -> anyhow::Result<()> {
        let health = shop_platform::health::Health::new().part(self.projection.name());
        self.run(Part { stop, health }).await
    }

    /// Consumes until `part.stop`, reporting SERVING while it is assigned its partitions and connected to Kafka.
    /// Waits, rather than failing, while Kafka cannot be reached; retries a batch that cannot be applied (the
    /// database is away) with backoff, never skipping it. At the stop, the batch in hand is applied or left for
    /// the next start, and the consumer leaves its group so its partitions move at once.
    pub async fn run(&self, part: Part) -> anyhow::Result<()> {
        let name = self.projection.name().to_owned();
        let rebalances = Arc::new(Rebalances::default());
        let config = self.consumer_config();
        let meter = ConsumerMeter::new(config.get("group.id").unwrap_or_default(), &self.source.topic_prefix);
        let context = RunnerContext::new(rebalances.clone(), part.health.clone(), meter);
        let consumer: Arc<StreamConsumer<RunnerContext>> = Arc::new(
            config
                .create_with_context(context)
                .with_context(|| format!("Failed to create the consumer of {name}"))?,
        );
        let topics: Vec<String> =
            self.projection.topics().iter().map(|topic| self.source.topic(topic)).collect();
        consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>())?;
        tracing::info!(projection = %name, topics = ?self.projection.topics(), "Consuming.");

        let mut consuming = Consuming::default();
        loop {
            let step = tokio::select! {
                () = part.stop.cancelled() => break,
                step = self.next_step(&consumer, &rebalances) => step,
            };
            let carried_on = match step {
                Step::Rebalance => self.rebalance(&consumer, &rebalances, &mut consuming, &part.stop).await,
                Step::Batch(batch) => self.consume(&consumer, batch, &mut consuming, &part.stop).await,
            };
            if !carried_on {
                break;
            }
        }

        // Committing and leaving the group block on the broker: not on an async worker.
        tokio::task::spawn_blocking(move || {
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error.message = %error, "No offsets to commit at shutdown.");
            }
            consumer.unsubscribe();
        })
        .await?;
        tracing::info!(projection = %name, "Stopped consuming.");
        Ok(())
    }

    fn consumer_config(&self) -> ClientConfig {
        let mut config = self.source.config.clone();
        if config.get("group.id").is_none() {
            config.set("group.id", self.source.topic(self.projection.name()));
        }
        // Broker states arrive with the statistics: the runner's health follows them.
        config.set("statistics.interval.ms", "2000");
        // Metadata debug lines are how librdkafka tells of a recreated topic (see `RunnerContext::log`).
        let debug = match config.get("debug") {
            Some(contexts) if !contexts.is_empty() => format!("{contexts},metadata"),
            _ => "metadata".to_owned(),
        };
        config.set("debug", debug).set_log_level(RDKafkaLogLevel::Debug);
        config
    }

    /// Waits for a rebalance or a first record, then takes what else arrives within the batch wait of it, up to
    /// the batch size; a rebalance ends the batch early, so the records in hand are never dropped.
    async fn next_step(&self, consumer: &StreamConsumer<RunnerContext>, rebalances: &Rebalances) -> Step {
        let first = loop {
            tokio::select! {
                biased;
                () = rebalances.arrived() => return Step::Rebalance,
                received = consumer.recv() => match received {
                    Ok(message) => break self.source.record(&message),
                    Err(error) => {
                        tracing::warn!(projection = self.projection.name(), error.message = %error, "Kafka consumer error.");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        };
        let mut batch = vec![first];
        let applied_by = tokio::time::Instant::now() + self.settings.batch_wait;
        while batch.len() < self.settings.batch_size && !rebalances.is_pending() {
            match tokio::time::timeout_at(applied_by, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(self.source.record(&message)),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Step::Batch(batch)
    }

    /// Takes the queued assignment changes: newly assigned partitions (paused by the rebalance callback) are
    /// judged, sought to their stored positions and resumed. Returns `false` when stopped meanwhile.
    async fn rebalance(
        &self,
        consumer: &Arc<StreamConsumer<RunnerContext>>,
        rebalances: &Rebalances,
        consuming: &mut Consuming,
        stop: &CancellationToken,
    ) -> bool {
        while let Some(change) = rebalances.next() {
            match change {
                RebalanceChange::Revoked(partitions) => {
                    for partition in partitions {
                        consuming.next.remove(&self.plain(&partition));
                    }
                }
                RebalanceChange::Assigned(partitions) => {
                    if !self.position(consumer, &partitions, consuming, stop).await {
                        return false;
                    }
                    consumer.context().set_ready();
                }
                RebalanceChange::Recreated(topic) => {
                    let plain = self.source.plain_topic(&topic);
                    let partitions: Vec<Partition> =
                        consuming.next.keys().filter(|(t, _)| *t == plain).cloned().collect();
                    consuming.replaced.extend(partitions.iter().cloned());
                    if !self.reposition(consumer, &partitions, consuming, stop).await {
                        return false;
                    }
                }
                RebalanceChange::ClusterChanged => {
                    let partitions: Vec<Partition> = consuming.next.keys().cloned().collect();
                    if !self.reposition(consumer, &partitions, consuming, stop).await {
                        return false;
                    }
                }
            }
        }
        consumer.context().meter.track(&consuming.next);
        true
    }

    /// Pauses assigned `partitions` (as the projection names them) and positions them again. Returns `false` when
    /// stopped meanwhile.
    async fn reposition(
        &self,
        consumer: &Arc<StreamConsumer<RunnerContext>>,
        partitions: &[Partition],
        consuming: &mut Consuming,
        stop: &CancellationToken,
    ) -> bool {
        let on_cluster: Vec<Partition> =
            partitions.iter().map(|(topic, partition)| (self.source.topic(topic), *partition)).collect();
        if let Err(error) = consumer.pause(&partition_list(&on_cluster)) {
            tracing::warn!(error.message = %error, "Failed to pause partitions to position them again.");
        }
        self.position(consumer, &on_cluster, consuming, stop).await
    }

    /// Seeks paused `partitions` (as named on the cluster) to where their judged positions say, then resumes them,
    /// retrying with backoff until it succeeds. Returns `false` when stopped meanwhile.
    async fn position(
        &self,
        consumer: &Arc<StreamConsumer<RunnerContext>>,
        partitions: &[Partition],
        consuming: &mut Consuming,
        stop: &CancellationToken,
    ) -> bool {
        let mut backoff = Backoff::standard();
        loop {
            match self.try_position(consumer, partitions, consuming).await {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(
                        projection = self.projection.name(),
                        error.cause_chain = ?error,
                        "Failed to position newly assigned partitions; retrying."
                    );
                    if !backoff.wait(stop).await {
                        return false;
                    }
                }
            }
        }
    }

    async fn try_position(
        &self,
        consumer: &Arc<StreamConsumer<RunnerContext>>,
        partitions: &[Partition],
        consuming: &mut Consuming,
    ) -> anyhow::Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let (verdicts, cluster_id) = self.judge(partitions, &consuming.replaced).await?;
        if cluster_id.is_some() {
            consuming.cluster_id = cluster_id;
        }
        let mut seeks = TopicPartitionList::new();
        for ((topic, partition), verdict) in partitions.iter().zip(&verdicts) {
            let plain = self.plain(&(topic.clone(), *partition));
            self.settle(&plain, verdict, consuming.cluster_id.as_deref()).await?;
            consuming.replaced.remove(&plain);
            seeks.add_partition_offset(topic, *partition, verdict.start())?;
            let next = match verdict.start() {
                Offset::Offset(offset) => offset,
                _ => 0,
            };
            consuming.next.insert(plain, next);
        }
        let consumer = consumer.clone();
        tokio::task::spawn_blocking(move || {
            consumer.seek_partitions(seeks.clone(), Duration::from_secs(10))?;
            consumer.resume(&seeks)
        })
        .await??;
        Ok(())
    }

    /// Judges the stored positions of `partitions` (as named on the cluster) against the log; the positions of
    /// `replaced` partitions (as the projection names them) are known to belong to an older log. Also returns the
    /// cluster's id.
    async fn judge(
        &self,
        partitions: &[Partition],
        replaced: &HashSet<Partition>,
    ) -> anyhow::Result<(Vec<Verdict>, Option<String>)> {
        let mut connection = self.pool.acquire().await?;
        let stored = offsets::stored_positions(&mut connection, self.projection.name()).await?;
        drop(connection);
        let checks: Vec<(String, i32, Option<i64>)> = partitions
            .iter()
            .map(|(topic, partition)| {
                let position = stored.get(&self.plain(&(topic.clone(), *partition)));
                let check_at = position.filter(|p| p.last_record_id.is_some()).map(|p| p.next_offset - 1);
                (topic.clone(), *partition, check_at)
            })
            .collect();
        let config = self.source.config.clone();
        let logs = tokio::task::spawn_blocking(move || positions::probe(&config, &checks)).await??;
        let verdicts = partitions
            .iter()
            .zip(&logs)
            .map(|((topic, partition), log)| {
                let plain = self.plain(&(topic.clone(), *partition));
                match stored.get(&plain) {
                    Some(position) if replaced.contains(&plain) => Verdict::Replaced {
                        stored: position.next_offset,
                        low: log.low,
                        reason: "the topic was deleted and created again".to_owned(),
                    },
                    position => positions::judge(position, log),
                }
            })
            .collect();
        Ok((verdicts, logs.first().and_then(|log| log.cluster_id.clone())))
    }

    /// Records what a verdict means for the stored position, and says so.
    async fn settle(
        &self,
        partition: &Partition,
        verdict: &Verdict,
        cluster_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let name = self.projection.name();
        let (topic, number) = partition;
        match verdict {
            Verdict::Fresh | Verdict::Continue(_) => {}
            Verdict::Replaced { stored, low, reason } => {
                offsets::move_position(&self.pool, name, partition, *stored, *low, cluster_id).await?;
                self.stats.resets.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    projection = name,
                    topic,
                    partition = number,
                    stored_offset = stored,
                    reason,
                    "The partition is not the log the projection's position was taken on (a recreated topic, a \
                     replaced broker or cluster); consuming it again from its beginning. Versions already held are \
                     ignored."
                );
            }
            Verdict::Truncated { stored, low } => {
                offsets::move_position(&self.pool, name, partition, *stored, *low, cluster_id).await?;
                self.stats.truncations.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    projection = name,
                    topic,
                    partition = number,
                    stored_offset = stored,
                    first_offset = low,
                    missing = low - stored,
                    "Records were deleted from the partition before the projection applied them (retention, \
                     DeleteRecords); going on from the first one left. The projection misses them: republish the \
                     entities and rebuild it."
                );
            }
        }
        Ok(())
    }

    /// Applies one batch and tells Kafka where to resume. A partition whose records come from before where it was
    /// positioned went back on its own (the client reset an out-of-range position): it is positioned again, and
    /// its records in this batch are left for after that. Returns `false` when stopped meanwhile.
    async fn consume(
        &self,
        consumer: &Arc<StreamConsumer<RunnerContext>>,
        mut batch: Vec<Record>,
        consuming: &mut Consuming,
        stop: &CancellationToken,
    ) -> bool {
        let went_back: Vec<Partition> = consuming.went_back(&batch);
        if !went_back.is_empty() {
            batch.retain(|record| !went_back.contains(&record.partition_key()));
            if !self.reposition(consumer, &went_back, consuming, stop).await {
                return false;
            }
        }
        if batch.is_empty() {
            return true;
        }
        let applying = self.apply_with_retry(&batch, consuming.cluster_id.as_deref(), stop);
        let Some(by_topic) = applying.instrument(record::batch_span(self.projection.name(), &batch)).await
        else {
            return false;
        };
        let summary = by_topic.total();
        self.stats.add(&summary);
        consumer.context().meter.count(&by_topic);
        if summary.applied > 0 {
            for notify in &self.on_applied {
                notify.notify_waiters();
                notify.notify_one();
            }
        }
        for record in &batch {
            consuming.next.insert(record.partition_key(), record.offset + 1);
        }
        self.store_offsets(consumer, &batch);
        consumer.context().meter.track(&consuming.next);
        tracing::debug!(
            projection = self.projection.name(),
            records = batch.len(),
            ?summary,
            "Applied a batch."
        );
        true
    }

    /// Tells Kafka where the group resumes, now that Postgres has the batch (monitoring tools read the lag there).
    fn store_offsets(&self, consumer: &StreamConsumer<RunnerContext>, batch: &[Record]) {
        let mut last: HashMap<(&str, i32), i64> = HashMap::new();
        for record in batch {
            last.insert((&record.topic, record.partition), record.offset);
        }
        for ((topic, partition), offset) in last {
            if let Err(error) = consumer.store_offset(&self.source.topic(topic), partition, offset) {
                // The partition moved to another member meanwhile; its new owner starts from Postgres anyway.
                tracing::debug!(topic, partition, error.message = %error, "Could not store an offset.");
            }
        }
    }

    /// Applies `batch`, retrying what may pass later (the database is away) for as long as it takes. When a
    /// record's own content makes the batch fail, the batch is applied record by record, so that only that record
    /// is tried again, and passed over into the dead-letter table after [`MAX_RECORD_ATTEMPTS`]. Returns `None`
    /// when stopped meanwhile.
    async fn apply_with_retry(
        &self,
        batch: &[Record],
        cluster_id: Option<&str>,
        stop: &CancellationToken,
    ) -> Option<TopicSummaries> {
        let error = match self.apply_until_done_or_record_fails(batch, cluster_id, stop).await? {
            Ok(summary) => return Some(summary),
            Err(error) => error,
        };
        if batch.len() == 1 {
            return self.retry_record(&batch[0], error, cluster_id, stop).await;
        }
        tracing::warn!(
            projection = self.projection.name(),
            records = batch.len(),
            error.message = %error,
            "A record of the batch cannot be applied; applying the batch record by record."
        );
        let mut total = TopicSummaries::default();
        for record in batch {
            let one = std::slice::from_ref(record);
            total += match self.apply_until_done_or_record_fails(one, cluster_id, stop).await? {
                Ok(summary) => summary,
                Err(error) => self.retry_record(record, error, cluster_id, stop).await?,
            };
        }
        Some(total)
    }

    /// Applies `records`, retrying with backoff while the failure is not the records' doing. Returns the error a
    /// record causes, or `None` when stopped meanwhile.
    async fn apply_until_done_or_record_fails(
        &self,
        records: &[Record],
        cluster_id: Option<&str>,
        stop: &CancellationToken,
    ) -> Option<Result<TopicSummaries, ProjectionError>> {
        let name = self.projection.name();
        let options = BatchOptions { live_lock: Some(name), cluster_id };
        let mut backoff = Backoff::standard();
        loop {
            match offsets::apply_batch_by_topic(&self.pool, &*self.projection, records, options).await {
                Ok(summary) => return Some(Ok(summary)),
                Err(error) if error.is_caused_by_a_record() => return Some(Err(error)),
                Err(error) => tracing::warn!(
                    projection = name,
                    records = records.len(),
                    error.message = %error,
                    "Failed to apply a batch; retrying it."
                ),
            }
            if !backoff.wait(stop).await {
                return None;
            }
        }
    }

    /// Tries `record` again, `first_error` being its first failure; after [`MAX_RECORD_ATTEMPTS`] failures it is
    /// passed over into the dead-letter table. Returns `None` when stopped meanwhile.
    async fn retry_record(
        &self,
        record: &Record,
        first_error: ProjectionError,
        cluster_id: Option<&str>,
        stop: &CancellationToken,
    ) -> Option<TopicSummaries> {
        let mut error = first_error;
        let mut backoff = Backoff::standard();
        for _ in 1..MAX_RECORD_ATTEMPTS {
            if !backoff.wait(stop).await {
                return None;
            }
            match self
                .apply_until_done_or_record_fails(std::slice::from_ref(record), cluster_id, stop)
                .await?
            {
                Ok(summary) => return Some(summary),
                Err(again) => error = again,
            }
        }
        self.dead_letter(record, &error, cluster_id, stop).await
    }

    /// Passes `record` over into the dead-letter table, retrying the write until it is done.
    async fn dead_letter(
        &self,
        record: &Record,
        error: &ProjectionError,
        cluster_id: Option<&str>,
        stop: &CancellationToken,
    ) -> Option<TopicSummaries> {
        let name = self.projection.name();
        let reason = format!("failed {MAX_RECORD_ATTEMPTS} times: {error}");
        tracing::error!(
            projection = name,
            topic = %record.topic,
            partition = record.partition,
            offset = record.offset,
            event_type = record.shown_event_type(),
            reason,
            "A record cannot be applied; it is passed over into projection_skipped (the dead-letter table)."
        );
        let attempts = i32::try_from(MAX_RECORD_ATTEMPTS).unwrap_or(i32::MAX);
        let mut backoff = Backoff::standard();
        loop {
            match offsets::dead_letter(&self.pool, name, record, &reason, attempts, cluster_id).await {
                Ok(moved) => {
                    let summary = BatchSummary { dead_lettered: u64::from(moved), ..BatchSummary::default() };
                    return Some(TopicSummaries::one(&record.topic, summary));
                }
                Err(error) => tracing::warn!(
                    projection = name,
                    error.message = %error,
                    "Failed to dead-letter a record; retrying."
                ),
            }
            if !backoff.wait(stop).await {
                return None;
            }
        }
    }

    /// `partition` as the projection names it (without the environment's prefix).
    fn plain(&self, (topic, partition): &Partition) -> Partition {
        (self.source.plain_topic(topic), *partition)
    }
}

fn partition_list(partitions: &[Partition]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition(topic, *partition);
    }
    list
}

/// What the runner's loop does next.
enum Step {
    Rebalance,
    Batch(Vec<Record>),
}

/// The runner's view of its assigned partitions.
#[derive(Debug, Default)]
struct Consuming {
    /// Per assigned partition (as the projection names it), the offset the next record should have.
    next: HashMap<Partition, i64>,
    /// Partitions whose stored positions belong to an older log, until positioned again.
    replaced: HashSet<Partition>,
    cluster_id: Option<String>,
}

impl Consuming {
    /// The partitions of `batch` whose records start before where they were positioned.
    fn went_back(&self, batch: &[Record]) -> Vec<Partition> {
        let mut partitions: Vec<Partition> = batch
            .iter()
            .filter(|record| self.next.get(&record.partition_key()).is_some_and(|next| record.offset < *next))
            .map(Record::partition_key)
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        partitions
    }
}

/// A change of assignment, or of the log under it, as the consumer's callbacks saw it (topics as named on the
/// cluster).
#[derive(Debug)]
enum RebalanceChange {
    Assigned(Vec<Partition>),
    Revoked(Vec<Partition>),
    /// The topic was deleted and created again (its topic id changed): the stored positions belong to the old one.
    Recreated(String),
    /// The brokers now belong to another cluster.
    ClusterChanged,
}

/// Assignment changes queued by the rebalance callback (which runs inside the consumer's poll) for the loop.
#[derive(Debug, Default)]
struct Rebalances {
    queue: Mutex<VecDeque<RebalanceChange>>,
    notify: Notify,
}

impl Rebalances {
    fn push(&self, change: RebalanceChange) {
        self.queue.lock().expect("not poisoned").push_back(change);
        self.notify.notify_one();
    }

    fn next(&self) -> Option<RebalanceChange> {
        self.queue.lock().expect("not poisoned").pop_front()
    }

    fn is_pending(&self) -> bool {
        !self.queue.lock().expect("not poisoned").is_empty()
    }

    async fn arrived(&self) {
        while !self.is_pending() {
            self.notify.notified().await;
        }
    }
}

/// The runner's consumer context: librdkafka's logs go to `tracing`, newly assigned partitions are paused until
/// positioned, and the broker states in the statistics drive the part's health.
struct RunnerContext {
    rebalances: Arc<Rebalances>,
    health: PartHealth,
    /// The consumer's metrics; the lag follows the statistics.
    meter: ConsumerMeter,
    /// The first assignment has been positioned.
    ready: AtomicBool,
    /// Some broker is up.
    connected: AtomicBool,
}

impl RunnerContext {
    fn new(rebalances: Arc<Rebalances>, health: PartHealth, meter: ConsumerMeter) -> Self {
        health.not_serving("waiting for Kafka to assign partitions");
        Self { rebalances, health, meter, ready: AtomicBool::new(false), connected: AtomicBool::new(true) }
    }

    fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
        self.refresh_health();
    }

    fn refresh_health(&self) {
        match (self.ready.load(Ordering::Relaxed), self.connected.load(Ordering::Relaxed)) {
            (true, true) => self.health.serving(),
            (false, _) => self.health.not_serving("waiting for Kafka to assign partitions"),
            (true, false) => self.health.not_serving("no Kafka broker is reachable"),
        }
    }
}

impl ClientContext for RunnerContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // librdkafka notices a recreated topic or a new cluster in its metadata but only says so in its logs (and
        // goes on fetching from the old position: see the FIXME in rdkafka_topic.c). The runner listens.
        if let Some(topic) = recreated_topic(facility, message) {
            self.rebalances.push(RebalanceChange::Recreated(topic.to_owned()));
        } else if facility == "CLUSTERID" && message.contains("different ClusterId") {
            self.rebalances.push(RebalanceChange::ClusterChanged);
        }
        TracingContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TracingContext.error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        // Bootstrap entries (node id -1) stand for addresses, not brokers.
        let connected = statistics.brokers.values().any(|broker| broker.nodeid >= 0 && broker.state == "UP");
        self.connected.store(connected, Ordering::Relaxed);
        self.refresh_health();
        self.meter.observe(&statistics);
    }
}

impl ConsumerContext for RunnerContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                // Nothing may be fetched from the group's offsets before the runner seeks to Postgres's.
                if let Err(error) = consumer.pause(assigned) {
                    tracing::warn!(error.message = %error, "Failed to pause newly assigned partitions.");
                }
                self.rebalances.push(RebalanceChange::Assigned(partitions_of(assigned)));
            }
            Rebalance::Revoke(revoked) => {
                self.rebalances.push(RebalanceChange::Revoked(partitions_of(revoked)))
            }
            Rebalance::Error(error) => tracing::warn!(error.message = %error, "A rebalance failed."),
        }
    }
}

/// The topic a librdkafka metadata log line says changed its id (`Topic {name} changed id from {old} to {new}`).
fn recreated_topic<'a>(facility: &str, message: &'a str) -> Option<&'a str> {
    if facility != "METADATA" {
        return None;
    }
    message.strip_prefix("Topic ")?.split_once(" changed id from ").map(|(topic, _)| topic)
}

fn partitions_of(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements().iter().map(|element| (element.topic().to_owned(), element.partition())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recreated_topic_is_read_from_librdkafkas_metadata_log() {
        let line = "Topic shop.products.v1 changed id from AAAAAAAAAAAAAAAAAAAAAA to 8gxQ2EHtRqWFQhGBzNUwWA";

        assert_eq!(recreated_topic("METADATA", line), Some("shop.products.v1"));
        assert_eq!(recreated_topic("METADATA", "Topic shop.products.v1 partition count changed"), None);
        assert_eq!(recreated_topic("FETCH", line), None);
    }

    #[test]
    fn records_before_where_a_partition_was_positioned_mean_it_went_back() {
        let record = |offset| Record {
            topic: "widgets".into(),
            partition: 0,
            offset,
            key: None,
            headers: Default::default(),
            payload: None,
        };
        let consuming =
            Consuming { next: HashMap::from([(("widgets".into(), 0), 10)]), ..Default::default() };

        assert_eq!(consuming.went_back(&[record(3), record(4)]), [("widgets".to_owned(), 0)]);
        assert!(consuming.went_back(&[record(10), record(11)]).is_empty());
    }
}
