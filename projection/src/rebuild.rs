//! Rebuilding a projection by replay: consume its topics from offset 0 into fresh storage while the live
//! projection keeps answering and consuming, then swap the fresh storage in atomically.
//!
//! The swap happens under the live projection's advisory lock (its batch transactions hold it shared): the rebuild
//! first catches up with every offset the live projection has applied, then, in one transaction, puts its storage
//! in place and its offsets under the live projection's name. The live runner then continues from those offsets;
//! records it had read but not applied are applied to the new storage, records the rebuild already applied are
//! left out by the offsets guard. No write is lost, none is applied twice.

use std::{collections::HashMap, future::Future, time::Duration};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
};
use sqlx::{PgPool, PgTransaction};
use tokio::time::Instant;
use uuid::Uuid;

use super::{BatchSummary, Projection, Record, Source, TracingContext, apply_batch, stored_offsets};

/// A projection that can be rebuilt into fresh storage and swapped in.
pub trait Rebuildable: Projection + Sized {
    /// Creates empty shadow storage (dropping any left by an earlier, interrupted rebuild) and returns a projection
    /// writing into it, under a name of its own.
    fn prepare_shadow(&self, pool: &PgPool) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Puts `shadow`'s storage in place of this projection's, inside `transaction`.
    fn swap_in(
        &self,
        shadow: &Self,
        transaction: &mut PgTransaction<'_>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// How far a rebuild is.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Records consumed so far.
    pub consumed: u64,
    /// Records on the topics when the rebuild started (offsets span; compaction may leave fewer).
    pub target: u64,
    pub elapsed: Duration,
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default)]
pub struct RebuildReport {
    pub consumed: u64,
    pub applied: u64,
    pub ignored: u64,
    pub skipped: u64,
    /// Records consumed after the start, to catch up with the live projection before the swap.
    pub caught_up: u64,
    pub elapsed: Duration,
}

impl RebuildReport {
    fn add(&mut self, records: usize, summary: &BatchSummary) {
        self.consumed += records as u64;
        self.applied += summary.applied;
        self.ignored += summary.ignored;
        self.skipped += summary.skipped;
    }
}

/// An offset per (topic, partition).
type Positions = HashMap<(String, i32), i64>;

/// Rebuilds `live` from offset 0 of its topics, reporting progress along the way, and swaps the result in.
pub async fn rebuild<P: Rebuildable>(
    live: &P,
    pool: &PgPool,
    source: &Source,
    mut progress: impl FnMut(&Progress) + Send,
) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let shadow = live.prepare_shadow(pool).await?;
    sqlx::query("DELETE FROM projection_offsets WHERE projection = $1")
        .bind(shadow.name())
        .execute(pool)
        .await?;

    let mut config = source.config.clone();
    config
        .set("group.id", source.topic(&format!("{}-{}", shadow.name(), Uuid::now_v7())))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let consumer: StreamConsumer<TracingContext> = config.create_with_context(TracingContext)?;

    // Where the topics end now: the rebuild's first goal. Positions and goals are kept under the projection's own
    // topic names, as the offsets table has them.
    let ends = source.watermarks(live.topics()).await?;
    let target = ends.values().map(|(low, high)| (high - low).max(0) as u64).sum();
    let mut assignment = TopicPartitionList::new();
    for (topic, partition) in ends.keys() {
        assignment.add_partition_offset(&source.topic(topic), *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let mut positions: Positions = ends.iter().map(|(key, (low, _))| (key.clone(), *low)).collect();
    let goal: Positions = ends.iter().map(|(key, (_, high))| (key.clone(), *high)).collect();
    let mut report = RebuildReport::default();
    consume_until(&consumer, source, &shadow, pool, &mut positions, &goal, &mut report, |report| {
        progress(&Progress { consumed: report.consumed, target, elapsed: started.elapsed() })
    })
    .await?;

    // Catch up with the live projection under its lock, then swap.
    let mut connection = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(live.name())
        .execute(&mut *connection)
        .await?;
    let swapped = async {
        let live_offsets = stored_offsets(&mut connection, live.name()).await?;
        let before = report.consumed;
        consume_until(&consumer, source, &shadow, pool, &mut positions, &live_offsets, &mut report, |_| {})
            .await?;
        report.caught_up = report.consumed - before;

        let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
        live.swap_in(&shadow, &mut transaction).await?;
        sqlx::query("DELETE FROM projection_offsets WHERE projection = $1")
            .bind(live.name())
            .execute(&mut *transaction)
            .await?;
        sqlx::query("UPDATE projection_offsets SET projection = $1 WHERE projection = $2")
            .bind(live.name())
            .bind(shadow.name())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        anyhow::Ok(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(live.name())
        .execute(&mut *connection)
        .await?;
    swapped?;

    report.elapsed = started.elapsed();
    Ok(report)
}

/// Consumes and applies batches to `shadow` until every partition in `goal` has reached its goal offset.
#[allow(clippy::too_many_arguments)]
async fn consume_until<P: Projection>(
    consumer: &StreamConsumer<TracingContext>,
    source: &Source,
    shadow: &P,
    pool: &PgPool,
    positions: &mut Positions,
    goal: &Positions,
    report: &mut RebuildReport,
    mut on_batch: impl FnMut(&RebuildReport),
) -> anyhow::Result<()> {
    let reached = |positions: &Positions| {
        goal.iter().all(|(key, offset)| positions.get(key).copied().unwrap_or(0) >= *offset)
    };
    let mut batch = Vec::new();
    while !reached(positions) {
        // Gather what is available, then apply it in one transaction.
        loop {
            match tokio::time::timeout(Duration::from_millis(50), consumer.recv()).await {
                Ok(Ok(message)) => {
                    let record = source.unprefix(Record::from_message(&message));
                    positions.insert((record.topic.clone(), record.partition), record.offset + 1);
                    batch.push(record);
                    if batch.len() >= 1_000 {
                        break;
                    }
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    // Compaction can remove the last records of a partition: at its end, its position is its end.
                    for ((topic, number), offset) in consumer.position()?.to_topic_map() {
                        if number == partition
                            && let Offset::Offset(offset) = offset
                        {
                            let position = positions.entry((source.plain_topic(&topic), number)).or_insert(0);
                            *position = (*position).max(offset);
                        }
                    }
                    break;
                }
                Ok(Err(error)) => {
                    tracing::warn!(error.message = %error, "Kafka consumer error during a rebuild.");
                    break;
                }
                Err(_timeout) => break,
            }
        }
        if !batch.is_empty() {
            let summary = apply_batch(pool, shadow, &batch, None).await?;
            report.add(batch.len(), &summary);
            on_batch(report);
            batch.clear();
        }
    }
    Ok(())
}
