//! Rebuilding a projection by replay: consume its topics from offset 0 into fresh storage while the live
//! projection keeps answering and consuming, then swap the fresh storage in atomically.
//!
//! The swap happens under the live projection's advisory lock (its batch transactions hold it shared). The rebuild
//! first replays up to where the topics ended when it began; then, unlocked, it looks for partitions created since
//! and catches up with every position the live projection has reached; then it takes the lock, catches up with
//! what the live projection applied meanwhile, and in one transaction puts its storage in place and its positions
//! under the live projection's name. The live runner continues from those positions: records it had read but not
//! applied are applied to the new storage, records the rebuild already applied are left out by the positions
//! guard. No write is lost, none is applied twice.
//!
//! A task reads ahead while batches are applied; each batch is split by partition into lanes applied side by side,
//! each in its own transaction with its own partitions' positions ([`into_lanes`]), so that decoding one lane
//! overlaps Postgres writing the other.
//!
//! The catch-up under the lock has a deadline ([`RebuildSettings::swap_deadline`]): should it miss it (a burst of
//! writes, a slow broker), the rebuild lets go of the lock, catches up again unlocked and tries the swap again, so
//! the live projection never waits on a rebuild for longer than the deadline.
//!
//! Before anything of that, it checks that the topics still hold their history ([`check_history`]): a partition
//! whose first records were deleted, with no completed republish making up for them, would give a projection that
//! lacks entities. The rebuild then refuses ([`IncompleteHistory`], naming the partitions and what to run), unless
//! [`RebuildSettings::accept_incomplete_history`] says to go on; the report then says what is missing.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::Arc,
    time::Duration,
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
};
use sqlx::{Connection as _, PgConnection, PgPool, PgTransaction};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use uuid::Uuid;

use super::{
    BatchSummary, Projection, Record, Source, TracingContext,
    history::{self, IncompleteHistory, MissingHistory, check_history},
    offsets::{self, BatchOptions, Partition},
    record,
};
use tracing::Instrument;

/// Most records read per batch during a rebuild.
const BATCH: usize = 5_000;

/// Transactions a batch is applied in side by side, each holding partitions of its own: one lane's records are
/// decoded while another's statements run in Postgres.
const APPLY_LANES: usize = 2;

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

const DEFAULT_SWAP_DEADLINE_MS: u64 = 5_000;

/// How a rebuild checks its topics and swaps its replacement in.
#[derive(Debug, Clone, clap::Args)]
pub struct RebuildSettings {
    /// The longest the rebuild may hold up the live projection to catch up before the swap; past it, the rebuild
    /// lets go, catches up again and retries.
    #[arg(long, env = "REBUILD_SWAP_DEADLINE_MS", default_value_t = DEFAULT_SWAP_DEADLINE_MS)]
    pub swap_deadline_ms: u64,
    /// Rebuild even when the topics lost their first records (retention, DeleteRecords, a broker that keeps only
    /// so much) and no completed republish refilled them: the projection then lacks the entities whose records are
    /// gone. Without it, such a rebuild refuses and names the partitions and the command that refills them.
    #[arg(
        long,
        env = "REBUILD_ACCEPT_INCOMPLETE_HISTORY",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub accept_incomplete_history: bool,
}

impl Default for RebuildSettings {
    fn default() -> Self {
        Self { swap_deadline_ms: DEFAULT_SWAP_DEADLINE_MS, accept_incomplete_history: false }
    }
}

impl RebuildSettings {
    pub fn swap_deadline(&self) -> Duration {
        Duration::from_millis(self.swap_deadline_ms)
    }
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
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    pub consumed: u64,
    pub applied: u64,
    pub ignored: u64,
    pub skipped: u64,
    /// Records the database refused (a constraint, a value out of range), passed over into `projection_skipped`.
    pub dead_lettered: u64,
    /// Records consumed after the start, to catch up with the live projection before the swap.
    pub caught_up: u64,
    /// Swaps given up because the catch-up under the lock missed its deadline.
    pub retried_swaps: u32,
    pub elapsed: Duration,
    /// Partitions whose first records were gone, rebuilt anyway (with
    /// [`RebuildSettings::accept_incomplete_history`]): the projection lacks the entities only they held.
    pub missing_history: Vec<MissingHistory>,
}

impl std::fmt::Display for RebuildReport {
    /// `from N events in 1.2s (800 events/s): A applied, I ignored (…), S skipped (…), D passed over (…), C caught up
    /// before the swap`,
    /// then, for an incomplete rebuild, the partitions whose first records were gone, on the same line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_second = shop_platform::progress::rate(self.consumed, self.elapsed);
        write!(
            f,
            "from {} events in {:.1?} ({per_second:.0} events/s): {} applied, {} ignored (older or repeated \
             versions), {} skipped (undecodable), {} passed over (refused by the database), {} caught up before \
             the swap",
            self.consumed,
            self.elapsed,
            self.applied,
            self.ignored,
            self.skipped,
            self.dead_lettered,
            self.caught_up
        )?;
        if !self.missing_history.is_empty() {
            write!(
                f,
                "; INCOMPLETE, as accepted: it lacks every entity whose records were all before {}",
                history::summary(&self.missing_history, "")
            )?;
        }
        Ok(())
    }
}

impl RebuildReport {
    fn add(&mut self, records: usize, summary: &BatchSummary) {
        self.consumed += records as u64;
        self.applied += summary.applied;
        self.ignored += summary.ignored;
        self.skipped += summary.skipped;
        self.dead_lettered += summary.dead_lettered;
    }
}

/// An offset per partition.
type Positions = HashMap<Partition, i64>;

/// Rebuilds `live` from offset 0 of its topics, reporting progress along the way, and swaps the result in. Traced
/// as one span, each batch applied a consumer span in it (see `shop_platform::trace::process_span`).
#[tracing::instrument(name = "rebuild", skip_all, fields(projection = live.name()))]
pub async fn rebuild<P: Rebuildable>(
    live: &P,
    pool: &PgPool,
    source: &Source,
    settings: &RebuildSettings,
    mut progress: impl FnMut(&Progress) + Send,
) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let missing = check_history(source, live.topics()).await?;
    if !missing.is_empty() {
        if !settings.accept_incomplete_history {
            return Err(IncompleteHistory { missing, topic_prefix: source.topic_prefix.clone() }.into());
        }
        tracing::warn!(
            projection = live.name(),
            missing = history::summary(&missing, &source.topic_prefix),
            "Rebuilding from topics that lost their first records, as accepted: the projection will lack the \
             entities only those records held."
        );
    }
    let shadow = live.prepare_shadow(pool).await?;
    sqlx::query("DELETE FROM projection_offsets WHERE projection = $1")
        .bind(shadow.name())
        .execute(pool)
        .await?;
    let mut replay = Replay::start(Arc::new(shadow), pool, source)?;

    let ends = replay.assign_new_partitions().await?;
    let target = ends.iter().map(|(partition, end)| (end - replay.positions[partition]).max(0) as u64).sum();
    replay
        .consume_until(&ends, None, |report| {
            progress(&Progress { consumed: report.consumed, target, elapsed: started.elapsed() })
        })
        .await?;

    let before = replay.report.consumed;
    while !replay.try_swap(live, settings.swap_deadline()).await? {
        replay.report.retried_swaps += 1;
        tracing::warn!(
            projection = live.name(),
            deadline_ms = settings.swap_deadline_ms,
            "The catch-up before the swap missed its deadline; released the live projection and trying again."
        );
    }
    replay.report.caught_up = replay.report.consumed - before;
    replay.report.elapsed = started.elapsed();
    replay.report.missing_history = missing;
    Ok(replay.report)
}

/// The replay into the shadow projection.
struct Replay<'a, P> {
    shadow: Arc<P>,
    pool: &'a PgPool,
    source: &'a Source,
    consumer: Arc<StreamConsumer<TracingContext>>,
    /// What the read-ahead task has read, batch after batch.
    reader: ReadAhead,
    /// The next offset to apply, per assigned partition (as the projection names it).
    positions: Positions,
    assigned: HashSet<Partition>,
    report: RebuildReport,
}

impl<'a, P: Rebuildable> Replay<'a, P> {
    fn start(shadow: Arc<P>, pool: &'a PgPool, source: &'a Source) -> anyhow::Result<Self> {
        let mut config = source.config.clone();
        config
            .set("group.id", source.topic(&format!("{}-{}", shadow.name(), Uuid::now_v7())))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        let consumer = Arc::new(config.create_with_context(TracingContext)?);
        Ok(Self {
            shadow,
            pool,
            source,
            reader: ReadAhead::start(&consumer, source),
            consumer,
            positions: Positions::new(),
            assigned: HashSet::new(),
            report: RebuildReport::default(),
        })
    }

    /// Reads the topics' partitions again, assigns any not yet read (from their beginning), and returns where every
    /// partition ends now.
    async fn assign_new_partitions(&mut self) -> anyhow::Result<Positions> {
        // The first time with the replay's own consumer, before it fetches anything: the metadata it learns is what
        // its fetchers need to start at once (a consumer left to look its topics up starts about half a second
        // later). Later with a client of its own: a consumer waiting at a partition's end queues these requests
        // behind fetches the broker holds for up to fetch.wait.max.ms, one partition after the other.
        let marks = if self.assigned.is_empty() {
            self.source.watermarks_with(&self.consumer, self.shadow.topics()).await?
        } else {
            self.source.watermarks(self.shadow.topics()).await?
        };
        let mut new = TopicPartitionList::new();
        for ((topic, partition), (low, _)) in &marks {
            if self.assigned.insert((topic.clone(), *partition)) {
                new.add_partition_offset(&self.source.topic(topic), *partition, Offset::Beginning)?;
                self.positions.insert((topic.clone(), *partition), *low);
            }
        }
        if new.count() > 0 {
            self.consumer.incremental_assign(&new)?;
        }
        Ok(marks.into_iter().map(|(partition, (_, high))| (partition, high)).collect())
    }

    /// Catches up unlocked, then under the live projection's lock, and swaps if the locked catch-up meets
    /// `deadline`. Returns whether it swapped.
    async fn try_swap(&mut self, live: &P, deadline: Duration) -> anyhow::Result<bool> {
        let ends = self.assign_new_partitions().await?;
        // A connection of its own, closed when dropped: a session lock must never go back to the pool held.
        let mut connection = PgConnection::connect_with(&self.pool.connect_options()).await?;
        let goal = reachable(offsets::stored_offsets(&mut connection, live.name()).await?, &ends);
        self.consume_until(&goal, None, |_| {}).await?;

        lock(&mut connection, live.name(), true).await?;
        let swapped = self.swap_locked(live, &mut connection, &ends, Instant::now() + deadline).await;
        lock(&mut connection, live.name(), false).await?;
        swapped
    }

    async fn swap_locked(
        &mut self,
        live: &P,
        connection: &mut PgConnection,
        ends: &Positions,
        deadline: Instant,
    ) -> anyhow::Result<bool> {
        let goal = reachable(offsets::stored_offsets(connection, live.name()).await?, ends);
        if !self.consume_until(&goal, Some(deadline), |_| {}).await? {
            return Ok(false);
        }
        let mut transaction = sqlx::Connection::begin(connection).await?;
        live.swap_in(&self.shadow, &mut transaction).await?;
        sqlx::query("DELETE FROM projection_offsets WHERE projection = $1")
            .bind(live.name())
            .execute(&mut *transaction)
            .await?;
        sqlx::query("UPDATE projection_offsets SET projection = $1 WHERE projection = $2")
            .bind(live.name())
            .bind(self.shadow.name())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Consumes and applies batches until every partition in `goal` reached its offset (returning `true`), or the
    /// deadline passed (returning `false`).
    async fn consume_until(
        &mut self,
        goal: &Positions,
        deadline: Option<Instant>,
        mut on_batch: impl FnMut(&RebuildReport),
    ) -> anyhow::Result<bool> {
        while !self.reached(goal) {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(false);
            }
            // While this batch is applied, the read-ahead task reads the next.
            let Some(Read { records: batch, ends }) = self.reader.next().await? else { continue };
            let (lanes, next_offsets) = into_lanes(batch, APPLY_LANES);
            self.positions.extend(next_offsets);
            for (partition, end) in ends {
                let position = self.positions.entry(partition).or_insert(0);
                *position = (*position).max(end);
            }
            let records = lanes.iter().map(Vec::len).sum();
            if records > 0 {
                let applying = lanes.into_iter().map(|lane| {
                    let (pool, shadow) = (self.pool.clone(), self.shadow.clone());
                    tokio::spawn(apply(pool, shadow, lane).in_current_span())
                });
                let mut summary = BatchSummary::default();
                for applied in futures::future::try_join_all(applying).await? {
                    summary += applied?;
                }
                self.report.add(records, &summary);
                on_batch(&self.report);
            }
        }
        Ok(true)
    }

    fn reached(&self, goal: &Positions) -> bool {
        goal.iter().all(|(partition, offset)| self.positions.get(partition).copied().unwrap_or(0) >= *offset)
    }
}

/// Applies `batch` to `shadow` in one transaction with its partitions' positions; should a record's own content
/// make it fail, record by record.
async fn apply<P: Projection>(
    pool: PgPool,
    shadow: Arc<P>,
    batch: Vec<Record>,
) -> anyhow::Result<BatchSummary> {
    let applying = offsets::apply_batch(&pool, &*shadow, &batch, BatchOptions::default());
    match applying.instrument(record::batch_span(shadow.name(), &batch)).await {
        Ok(summary) => Ok(summary),
        Err(error) if error.is_caused_by_a_record() => apply_each(&pool, &*shadow, &batch).await,
        Err(error) => Err(error.into()),
    }
}

/// Applies `batch` record by record, passing over into the dead-letter table each record whose own content makes
/// it fail (a rebuild runs once: there is no later attempt to wait for).
async fn apply_each<P: Projection>(
    pool: &PgPool,
    shadow: &P,
    batch: &[Record],
) -> anyhow::Result<BatchSummary> {
    let mut total = BatchSummary::default();
    for record in batch {
        let one = std::slice::from_ref(record);
        total += match offsets::apply_batch(pool, shadow, one, BatchOptions::default()).await {
            Ok(summary) => summary,
            Err(error) if error.is_caused_by_a_record() => {
                let reason = format!("failed during a rebuild: {error}");
                tracing::error!(
                    projection = shadow.name(),
                    topic = %record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    reason,
                    "A record cannot be applied; it is passed over into projection_skipped."
                );
                let moved = offsets::dead_letter(pool, shadow.name(), record, &reason, 1, None).await?;
                BatchSummary { dead_lettered: u64::from(moved), ..BatchSummary::default() }
            }
            Err(error) => return Err(error.into()),
        };
    }
    Ok(total)
}

/// A batch read ahead: its records, and the partitions found at their end with where they end (compaction can
/// remove the last records of a partition: at its end, its position is its end).
struct Read {
    records: Vec<Record>,
    ends: Vec<(Partition, i64)>,
}

/// A task reading the replay's records ahead, batch after batch, so that reading the next batch overlaps applying
/// this one. It holds at most [`READ_AHEAD`] batches besides the one it is reading, and stops when dropped.
struct ReadAhead {
    batches: mpsc::Receiver<anyhow::Result<Read>>,
    task: JoinHandle<()>,
}

/// Batches read ahead at most.
const READ_AHEAD: usize = 2;

impl ReadAhead {
    fn start(consumer: &Arc<StreamConsumer<TracingContext>>, source: &Source) -> Self {
        let (sender, batches) = mpsc::channel(READ_AHEAD);
        let (consumer, source) = (consumer.clone(), source.clone());
        let task = tokio::spawn(
            async move {
                loop {
                    let read = gather(&consumer, &source).await;
                    if matches!(&read, Ok(read) if read.records.is_empty() && read.ends.is_empty()) {
                        continue;
                    }
                    let failed = read.is_err();
                    if sender.send(read).await.is_err() || failed {
                        return;
                    }
                }
            }
            .in_current_span(),
        );
        Self { batches, task }
    }

    /// The next batch read, or `None` if none came within a moment (so that the caller can look at its deadline).
    async fn next(&mut self) -> anyhow::Result<Option<Read>> {
        match tokio::time::timeout(Duration::from_millis(50), self.batches.recv()).await {
            Ok(Some(read)) => read.map(Some),
            Ok(None) => Err(anyhow::anyhow!("the rebuild's reader stopped")),
            Err(_timeout) => Ok(None),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Takes what is available, up to a batch. Once a partition ends, it waits only a moment for more: the other
/// partitions' records are then already fetched, or there are none (a caught-up replay must not wait).
async fn gather(consumer: &StreamConsumer<TracingContext>, source: &Source) -> anyhow::Result<Read> {
    let mut read = Read { records: Vec::with_capacity(BATCH), ends: Vec::new() };
    let mut wait = Duration::from_millis(50);
    while read.records.len() < BATCH {
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(message)) => read.records.push(source.record(&message)),
            Ok(Err(KafkaError::PartitionEOF(partition))) => {
                for ((topic, number), offset) in consumer.position()?.to_topic_map() {
                    if number == partition
                        && let Offset::Offset(offset) = offset
                    {
                        read.ends.push(((source.plain_topic(&topic), number), offset));
                    }
                }
                wait = Duration::from_millis(2);
            }
            Ok(Err(error)) => {
                tracing::warn!(error.message = %error, "Kafka consumer error during a rebuild.");
                break;
            }
            Err(_timeout) => break,
        }
    }
    Ok(read)
}

/// Splits `batch` into at most `lanes` batches that share no partition, about even in records, each keeping its
/// records in the order read; gives with them the next offset of every partition in `batch`.
///
/// Lanes can commit in any order: a partition's records (so an entity's, keyed by its id) all go to one lane, and
/// the version guard keeps the newest version of an entity whose records moved partition.
fn into_lanes(batch: Vec<Record>, lanes: usize) -> (Vec<Vec<Record>>, Vec<(Partition, i64)>) {
    // Each partition's records and next offset, the partitions numbered as they first come.
    let mut numbers: HashMap<(&str, i32), usize> = HashMap::new();
    let mut partitions: Vec<(Partition, usize, i64)> = Vec::new();
    let mut partition_of = Vec::with_capacity(batch.len());
    for record in &batch {
        let number = *numbers.entry((record.topic.as_str(), record.partition)).or_insert_with(|| {
            partitions.push(((record.topic.clone(), record.partition), 0, 0));
            partitions.len() - 1
        });
        let (_, records, next) = &mut partitions[number];
        *records += 1;
        *next = record.offset + 1;
        partition_of.push(number);
    }
    // The partitions largest first, each to the lane with the fewest records so far.
    let mut loads = vec![0; lanes.clamp(1, partitions.len().max(1))];
    let mut lane_of = vec![0; partitions.len()];
    let mut by_size: Vec<usize> = (0..partitions.len()).collect();
    by_size.sort_unstable_by_key(|&number| std::cmp::Reverse(partitions[number].1));
    for number in by_size {
        let lane = (0..loads.len()).min_by_key(|&lane| loads[lane]).unwrap_or_default();
        loads[lane] += partitions[number].1;
        lane_of[number] = lane;
    }
    let mut split: Vec<Vec<Record>> = loads.iter().map(|&load| Vec::with_capacity(load)).collect();
    for (record, number) in batch.into_iter().zip(partition_of) {
        split[lane_of[number]].push(record);
    }
    (split, partitions.into_iter().map(|(partition, _, next)| (partition, next)).collect())
}

/// The live projection's positions, capped at where each partition ends: a position past the end (the topic was
/// recreated under the live projection) can never be reached, and the live runner re-reads such partitions anyway.
fn reachable(live: Positions, ends: &Positions) -> Positions {
    live.into_iter()
        .map(|(partition, offset)| {
            let end = ends.get(&partition).copied().unwrap_or(0);
            (partition, offset.min(end))
        })
        .collect()
}

async fn lock(connection: &mut PgConnection, projection: &str, take: bool) -> Result<(), sqlx::Error> {
    let statement = if take {
        "SELECT pg_advisory_lock(hashtextextended($1, 0))"
    } else {
        "SELECT pg_advisory_unlock(hashtextextended($1, 0))"
    };
    sqlx::query(statement).bind(projection).execute(connection).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, partition: i32, offset: i64) -> Record {
        Record {
            topic: topic.into(),
            partition,
            offset,
            key: None,
            headers: Default::default(),
            payload: None,
        }
    }

    #[test]
    fn lanes_share_no_partition_keep_the_read_order_and_hold_about_as_many_records() {
        // Partitions of 4, 3, 2 and 2 records, interleaved as a fetch interleaves them.
        let places =
            [("a", 0, 10), ("b", 0, 5), ("a", 1, 0), ("a", 0, 11), ("a", 2, 7), ("a", 0, 12), ("b", 0, 6)];
        let more = [("a", 1, 1), ("a", 0, 13), ("a", 2, 8), ("b", 0, 7)];
        let batch: Vec<Record> = places
            .iter()
            .chain(&more)
            .map(|&(topic, partition, offset)| record(topic, partition, offset))
            .collect();

        let (lanes, next_offsets) = into_lanes(batch.clone(), 2);

        let place = |record: &Record| (record.topic.clone(), record.partition, record.offset);
        let partitions_of = |lane: &[Record]| lane.iter().map(Record::partition_key).collect::<HashSet<_>>();
        assert_eq!(lanes.len(), 2);
        assert!(partitions_of(&lanes[0]).is_disjoint(&partitions_of(&lanes[1])));
        let mut sizes: Vec<usize> = lanes.iter().map(Vec::len).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [5, 6]);
        for lane in &lanes {
            let in_read_order: Vec<_> =
                batch.iter().filter(|record| lane.contains(record)).map(place).collect();
            assert_eq!(lane.iter().map(place).collect::<Vec<_>>(), in_read_order);
        }
        assert_eq!(
            next_offsets.into_iter().collect::<HashMap<_, _>>(),
            HashMap::from([
                (("a".into(), 0), 14),
                (("b".into(), 0), 8),
                (("a".into(), 1), 2),
                (("a".into(), 2), 9)
            ])
        );
    }

    #[test]
    fn a_batch_of_one_partition_or_none_makes_one_lane() {
        let (lanes, next_offsets) = into_lanes(vec![record("a", 0, 0), record("a", 0, 1)], 2);
        assert_eq!(lanes.iter().map(Vec::len).collect::<Vec<_>>(), [2]);
        assert_eq!(next_offsets, [(("a".into(), 0), 2)]);

        let (lanes, next_offsets) = into_lanes(Vec::new(), 2);
        assert!(lanes.iter().all(Vec::is_empty) && next_offsets.is_empty());
    }
}
