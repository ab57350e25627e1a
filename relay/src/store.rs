//! The relay's SQL on one outbox database: reading the unpublished rows of the shards it holds, recording what a
//! batch did (only for shards it still holds), the heartbeat's watermark, clean-up and backlog figures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use shop_events::{TraceContext, cloudevents::EventMetadata};
use sqlx::{PgPool, PgTransaction};
use uuid::Uuid;

/// The columns of an [`OutboxRow`].
const ROW_COLUMNS: &str = "position, shard, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, \
                           topic, payload::text AS payload, occurred_at, traceparent, tracestate";

/// One outbox row as the relay publishes it. The payload stays text: it goes to Kafka as it is.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub position: i64,
    pub shard: i16,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub event_type: String,
    pub topic: String,
    pub payload: String,
    pub occurred_at: DateTime<Utc>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl OutboxRow {
    /// The trace the row was written under, when it has a valid one.
    pub fn trace(&self) -> Option<TraceContext> {
        TraceContext::parse(self.traceparent.as_deref()?, self.tracestate.as_deref()).ok()
    }

    pub fn metadata(&self) -> EventMetadata<'_> {
        EventMetadata {
            event_id: self.event_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: self.aggregate_id,
            aggregate_version: self.aggregate_version,
            event_type: &self.event_type,
            occurred_at: self.occurred_at,
            traceparent: self.traceparent.as_deref(),
            tracestate: self.tracestate.as_deref(),
        }
    }
}

/// An aggregate held back at one of its rows, and why: parked for good (Kafka refused the row), or deferred
/// (the row's topic cannot be written now; it is tried again later).
#[derive(Debug, Clone)]
pub struct Parked {
    pub aggregate_id: Uuid,
    pub position: i64,
    pub event_id: Uuid,
    pub shard: i16,
    pub reason: String,
}

impl Parked {
    pub fn at(row: &OutboxRow, reason: impl Into<String>) -> Self {
        Self {
            aggregate_id: row.aggregate_id,
            position: row.position,
            event_id: row.event_id,
            shard: row.shard,
            reason: reason.into(),
        }
    }
}

/// A row Kafka acknowledged, as the bookkeeping needs it (copied out of the row, so the bookkeeping can run on
/// while the next batch is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub position: i64,
    pub aggregate_id: Uuid,
    pub shard: i16,
}

impl Published {
    pub fn of(row: &OutboxRow) -> Self {
        Self { position: row.position, aggregate_id: row.aggregate_id, shard: row.shard }
    }
}

/// What one batch did, to be recorded.
#[derive(Debug, Default)]
pub struct BatchRecord {
    /// Rows Kafka acknowledged.
    pub delivered: Vec<Published>,
    /// Aggregates Kafka refused for good.
    pub parked: Vec<Parked>,
    /// Aggregates whose row could not be routed now.
    pub deferred: Vec<Parked>,
}

impl BatchRecord {
    pub fn is_empty(&self) -> bool {
        self.delivered.is_empty() && self.parked.is_empty() && self.deferred.is_empty()
    }
}

/// The shards an instance holds, with the epoch of its lease on each.
pub type Leases = [(i16, i64)];

/// The unpublished rows the relay may send: of `shards`, leaving out aggregates parked or deferred.
const SENDABLE: &str = "published_at IS NULL
           AND shard = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM outbox_parked p
                           WHERE p.aggregate_id = o.aggregate_id AND (p.retry_at IS NULL OR p.retry_at > now()))";

/// Makes the reads of `transaction` walk the `outbox_unpublished` index in position order, whatever the
/// statistics say, since two other plans make draining a backlog grow quadratically with it, exactly when speed
/// matters:
/// - Right after a burst (a broker outage, a bulk import) the statistics are stale and Postgres, expecting a few
///   hundred rows, prefers to fetch every unpublished row and sort them: 100-170 ms per batch at 100 000 rows
///   instead of 2 ms. Sorting is switched off.
/// - For the read ahead's count of the rows up to a position, Postgres may prefer a bitmap scan. The index still
///   lists every row deleted since the last vacuum, and a bitmap scan looks each of them up in the table again at
///   every batch: 150-270 ms per batch with 500 000 deleted. An index scan marks an entry dead in the index the
///   first time it finds its row gone for everyone, and skips it from then on: 3 ms. Bitmap scans are switched
///   off.
async fn walk_index(transaction: &mut PgTransaction<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)",
    )
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// The oldest unpublished rows of `shards`, in insertion order, leaving out aggregates parked or deferred.
///
/// There is no lasting read cursor: a read with nothing in flight starts again from the oldest unpublished row, so
/// a row whose transaction committed late (after rows with higher positions were published) is simply read by a
/// later batch. A row leaves this set only once Kafka acknowledged it; hence, for each aggregate, the first copy of
/// every version reaches Kafka in version order, whichever instance or restart sends it. (The read ahead of
/// [`Snapshot::unpublished_after`] keeps that: it returns rows only when it finds what this read would.)
///
/// The read walks the `outbox_unpublished` index in position order and stops at `limit` ([`walk_index`]).
pub async fn unpublished(pool: &PgPool, shards: &[i16], limit: i64) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    walk_index(&mut transaction).await?;
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM outbox o WHERE {SENDABLE} ORDER BY position LIMIT $2"
    )))
    .bind(shards)
    .bind(limit)
    .fetch_all(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(rows)
}

/// A view of the outbox as it stands when taken, to read the batch after those in flight from: a read-only
/// `REPEATABLE READ` transaction whose first statement has run, so nothing that commits after [`Snapshot::take`]
/// returns is seen. The relay takes it before the bookkeeping of the batch before the one in flight commits, and
/// then runs that bookkeeping and this read side by side: the read counts that batch's rows as still there.
#[derive(Debug)]
pub struct Snapshot(PgTransaction<'static>);

impl Snapshot {
    /// Opens the transaction and runs its first statement, which takes the snapshot.
    pub async fn take(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let mut transaction = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
        walk_index(&mut transaction).await?;
        Ok(Self(transaction))
    }

    /// The batch that follows those still in flight or unrecorded: the oldest sendable rows of `shards` after
    /// position `after` (the last row in flight), provided the sendable rows up to `after` are exactly the
    /// `in_flight` ones. Otherwise none: a transaction that took a lower position committed late, or an
    /// aggregate's deferral ran out, and a read from the oldest row must come first, once nothing is in flight.
    ///
    /// Why the count suffices: the rows in flight were, when read, every sendable row up to `after`, and none of
    /// them leaves the sendable set before its bookkeeping, which commits after this snapshot. A row counted
    /// beyond them is one that became visible (or sendable) since. Counting and reading in one statement see one
    /// snapshot, and an aggregate's later version commits only after its earlier one, so a later version this read
    /// returns can never hide an earlier one the count did not see. The count walks the in-flight rows' index
    /// entries (0.4 ms for 1 000), where excluding their positions from the read cost 5-26 ms.
    pub async fn unpublished_after(
        self,
        shards: &[i16],
        after: i64,
        in_flight: usize,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let Self(mut transaction) = self;
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} FROM outbox o
             WHERE {SENDABLE} AND position > $3
               AND (SELECT count(*) FROM outbox o WHERE {SENDABLE} AND position <= $3) = $4
             ORDER BY position
             LIMIT $2"
        )))
        .bind(shards)
        .bind(limit)
        .bind(after)
        .bind(in_flight as i64)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(rows)
    }
}

/// The oldest unpublished row of `aggregate`, if any.
pub async fn first_unpublished(pool: &PgPool, aggregate: Uuid) -> Result<Option<OutboxRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM outbox
         WHERE aggregate_id = $1 AND published_at IS NULL
         ORDER BY position LIMIT 1"
    )))
    .bind(aggregate)
    .fetch_optional(pool)
    .await
}

/// Records `batch` in one transaction, for the rows of shards this instance still holds under the same lease
/// epochs (`leases`); the rows of a shard that moved meanwhile are left to its new owner, who sends them again (a
/// duplicate, never a loss). Delivered rows are deleted (or marked, when a retention is kept) and their
/// aggregates' deferrals lifted; parked and deferred aggregates are noted. Returns the shards no longer held.
pub async fn record_batch(
    pool: &PgPool,
    instance_id: Uuid,
    leases: &Leases,
    batch: &BatchRecord,
    keep_published: bool,
) -> Result<Vec<i16>, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    // Not waiting for the WAL flush: a bookkeeping lost with a database crash only sends its rows again, which
    // at-least-once allows, and the flush was a fixed cost on every batch.
    //
    // And finding the rows by position whatever the statistics say. The relay keeps the outbox drained, so an
    // analyze mostly finds it empty; Postgres then plans a sequential scan for the delete, keeps that plan on the
    // connection, and at every batch of the next burst reads the whole outbox (every row deleted since the last
    // vacuum included) to find the batch's rows.
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'off', true), set_config('enable_seqscan', 'off', true)",
    )
    .execute(&mut *transaction)
    .await?;
    let held = lock_held_shards(&mut transaction, instance_id, leases).await?;
    mark_published(&mut transaction, &held, &batch.delivered, keep_published).await?;
    for parked in batch.parked.iter().filter(|parked| held.contains(&parked.shard)) {
        park(&mut transaction, parked, Hold::ForGood).await?;
    }
    for deferred in batch.deferred.iter().filter(|deferred| held.contains(&deferred.shard)) {
        park(&mut transaction, deferred, Hold::ForAWhile).await?;
    }
    transaction.commit().await?;
    Ok(leases.iter().map(|(shard, _)| *shard).filter(|shard| !held.contains(shard)).collect())
}

/// The shards of `leases` this instance still holds at the same epoch, locked against a takeover until the
/// transaction ends.
async fn lock_held_shards(
    transaction: &mut PgTransaction<'_>,
    instance_id: Uuid,
    leases: &Leases,
) -> Result<Vec<i16>, sqlx::Error> {
    let (shards, epochs): (Vec<i16>, Vec<i64>) = leases.iter().copied().unzip();
    sqlx::query_scalar(
        "SELECT shard FROM outbox_relay_shards
         WHERE owner = $1 AND (shard, epoch) IN (SELECT * FROM UNNEST($2::smallint[], $3::bigint[]))
         ORDER BY shard
         FOR SHARE",
    )
    .bind(instance_id)
    .bind(&shards)
    .bind(&epochs)
    .fetch_all(&mut **transaction)
    .await
}

/// Deletes (or marks) the delivered rows of the `held` shards and lifts their aggregates' deferrals, in one
/// statement.
async fn mark_published(
    transaction: &mut PgTransaction<'_>,
    held: &[i16],
    rows: &[Published],
    keep_published: bool,
) -> Result<(), sqlx::Error> {
    let positions: Vec<i64> =
        rows.iter().filter(|row| held.contains(&row.shard)).map(|row| row.position).collect();
    if positions.is_empty() {
        return Ok(());
    }
    let published = if keep_published {
        "UPDATE outbox SET published_at = now() WHERE position = ANY($1) RETURNING aggregate_id"
    } else {
        "DELETE FROM outbox WHERE position = ANY($1) RETURNING aggregate_id"
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH published AS ({published})
         DELETE FROM outbox_parked
         WHERE retry_at IS NOT NULL AND aggregate_id IN (SELECT aggregate_id FROM published)"
    )))
    .bind(&positions)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// How long an aggregate is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Until an operator fixes or removes the row and deletes the entry.
    ForGood,
    /// Until a retry time that backs off with every attempt: 2, 4, 8 … seconds, at most five minutes.
    ForAWhile,
}

async fn park(transaction: &mut PgTransaction<'_>, parked: &Parked, hold: Hold) -> Result<(), sqlx::Error> {
    let statement = match hold {
        Hold::ForGood => {
            // A deferred aggregate whose row is then refused for good becomes parked for good.
            "INSERT INTO outbox_parked (aggregate_id, position, event_id, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT (aggregate_id) DO UPDATE
             SET position = EXCLUDED.position, event_id = EXCLUDED.event_id, reason = EXCLUDED.reason,
                 retry_at = NULL, parked_at = now()"
        }
        Hold::ForAWhile => {
            "INSERT INTO outbox_parked (aggregate_id, position, event_id, reason, retry_at)
             VALUES ($1, $2, $3, $4, now() + interval '2 seconds')
             ON CONFLICT (aggregate_id) DO UPDATE
             SET reason = EXCLUDED.reason, attempts = outbox_parked.attempts + 1,
                 retry_at = now() + make_interval(secs => least(power(2, outbox_parked.attempts + 1), 300))
             WHERE outbox_parked.retry_at IS NOT NULL"
        }
    };
    sqlx::query(statement)
        .bind(parked.aggregate_id)
        .bind(parked.position)
        .bind(parked.event_id)
        .bind(&parked.reason)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

/// What the relay can promise about one outbox now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Watermark {
    /// When the snapshot was taken (the database's clock).
    pub as_of: DateTime<Utc>,
    /// Every row committed before this time has been acknowledged by Kafka: the oldest waiting row (parked
    /// aggregates aside) occurred no earlier, and every row committed before the snapshot is visible to it.
    pub published_through: DateTime<Utc>,
    /// The topics of the waiting rows.
    pub pending_topics: Vec<String>,
}

pub async fn watermark(pool: &PgPool) -> Result<Watermark, sqlx::Error> {
    sqlx::query_as(
        "WITH waiting AS (
             SELECT occurred_at, topic FROM outbox o
             WHERE published_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM outbox_parked p
                               WHERE p.aggregate_id = o.aggregate_id AND p.retry_at IS NULL))
         SELECT statement_timestamp() AS as_of,
                LEAST(statement_timestamp(), (SELECT min(occurred_at) FROM waiting)) AS published_through,
                ARRAY(SELECT DISTINCT topic FROM waiting ORDER BY topic) AS pending_topics",
    )
    .fetch_one(pool)
    .await
}

/// Deletes rows published more than `retention` ago, `batch` rows per statement so no statement holds many locks
/// for long. Returns how many were deleted.
pub async fn delete_published(pool: &PgPool, retention: Duration, batch: i64) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM outbox WHERE position IN (
                 SELECT position FROM outbox
                 WHERE published_at < now() - make_interval(secs => $1)
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(retention.as_secs_f64())
        .bind(batch)
        .execute(pool)
        .await?
        .rows_affected();
        deleted += done;
        if done < batch as u64 {
            return Ok(deleted);
        }
    }
}

/// How far behind an outbox is.
#[derive(Debug, Clone, Copy, Default, PartialEq, sqlx::FromRow)]
pub struct Backlog {
    /// Unpublished rows (parked ones included).
    pub unpublished: i64,
    /// Age of the oldest unpublished row, in seconds; 0 when there is none.
    pub oldest_age_secs: f64,
    /// Aggregates parked for good.
    pub parked: i64,
    /// Aggregates waiting to try again (their topic could not be written).
    pub deferred: i64,
}

pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
                COALESCE((SELECT extract(epoch FROM now() - min(occurred_at))::float8
                          FROM outbox WHERE published_at IS NULL), 0) AS oldest_age_secs,
                (SELECT count(*) FROM outbox_parked WHERE retry_at IS NULL) AS parked,
                (SELECT count(*) FROM outbox_parked WHERE retry_at IS NOT NULL) AS deferred",
    )
    .fetch_one(pool)
    .await
}

/// The aggregates parked for good, oldest first.
pub async fn parked(pool: &PgPool) -> Result<Vec<Parked>, sqlx::Error> {
    held_back(pool, "retry_at IS NULL").await
}

/// The aggregates deferred for a while, oldest first.
pub async fn deferred(pool: &PgPool) -> Result<Vec<Parked>, sqlx::Error> {
    held_back(pool, "retry_at IS NOT NULL").await
}

async fn held_back(pool: &PgPool, which: &str) -> Result<Vec<Parked>, sqlx::Error> {
    let rows: Vec<(Uuid, i64, Uuid, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT aggregate_id, position, event_id, reason FROM outbox_parked WHERE {which}
         ORDER BY parked_at, aggregate_id"
    )))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(aggregate_id, position, event_id, reason)| Parked {
            shard: shard_of(aggregate_id),
            aggregate_id,
            position,
            event_id,
            reason,
        })
        .collect())
}

/// The shard of an aggregate, as the outbox computes it.
pub fn shard_of(aggregate_id: Uuid) -> i16 {
    i16::from(aggregate_id.as_bytes()[15]) % shop_outbox::SHARD_COUNT
}
