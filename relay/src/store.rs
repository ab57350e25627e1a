//! The relay's SQL on one outbox database: reading unpublished rows of the shards it holds, recording what was
//! published or parked, clean-up and backlog figures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use shop_events::cloudevents::EventMetadata;
use sqlx::PgPool;
use uuid::Uuid;

/// One outbox row as the relay publishes it. The payload stays text: it goes to Kafka as it is.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub position: i64,
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

/// A row Kafka refused for good, and why.
#[derive(Debug, Clone)]
pub struct Parked {
    pub aggregate_id: Uuid,
    pub position: i64,
    pub event_id: Uuid,
    pub reason: String,
}

/// The oldest unpublished rows of `shards`, in insertion order, leaving out parked aggregates.
///
/// There is no read cursor: every read starts again from the oldest unpublished row, so a row whose transaction
/// committed late (after rows with higher positions were published) is simply read by a later batch. A row
/// leaves this set only once Kafka acknowledged it; hence, for each aggregate, the first copy of every version
/// reaches Kafka in version order, whichever instance or restart sends it.
///
/// The read must walk the `outbox_unpublished` index in position order and stop at `limit`. Right after a burst
/// (a broker outage, a bulk import) the table's statistics are stale and Postgres, expecting a few hundred rows,
/// prefers to fetch every unpublished row and sort them: 100-170 ms per batch at 100 000 rows instead of 2 ms, so
/// draining a backlog grows quadratically with it exactly when speed matters. Sorting is therefore switched off
/// for this one statement, which leaves the ordered index scan as the plan.
pub async fn unpublished(pool: &PgPool, shards: &[i16], limit: i64) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SET LOCAL enable_sort = off").execute(&mut *transaction).await?;
    let rows = sqlx::query_as(
        "SELECT position, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, topic,
                payload::text AS payload, occurred_at, traceparent, tracestate
         FROM outbox o
         WHERE published_at IS NULL
           AND shard = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM outbox_parked p WHERE p.aggregate_id = o.aggregate_id)
         ORDER BY position
         LIMIT $2",
    )
    .bind(shards)
    .bind(limit)
    .fetch_all(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(rows)
}

/// Records, in one transaction, that `published` rows were acknowledged by Kafka (deleting them, or marking them
/// for later deletion when a retention is kept) and that the `parked` aggregates are parked.
pub async fn record_batch(
    pool: &PgPool,
    published: &[i64],
    parked: &[Parked],
    keep_published: bool,
) -> Result<(), sqlx::Error> {
    let mut transaction = pool.begin().await?;
    if !published.is_empty() {
        let statement = if keep_published {
            "UPDATE outbox SET published_at = now() WHERE position = ANY($1)"
        } else {
            "DELETE FROM outbox WHERE position = ANY($1)"
        };
        sqlx::query(statement).bind(published).execute(&mut *transaction).await?;
    }
    for parked in parked {
        sqlx::query(
            "INSERT INTO outbox_parked (aggregate_id, position, event_id, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT (aggregate_id) DO NOTHING",
        )
        .bind(parked.aggregate_id)
        .bind(parked.position)
        .bind(parked.event_id)
        .bind(&parked.reason)
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await
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
    /// Parked aggregates.
    pub parked: i64,
}

pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
                COALESCE((SELECT extract(epoch FROM now() - min(occurred_at))::float8
                          FROM outbox WHERE published_at IS NULL), 0) AS oldest_age_secs,
                (SELECT count(*) FROM outbox_parked) AS parked",
    )
    .fetch_one(pool)
    .await
}

/// The parked aggregates, oldest first.
pub async fn parked(pool: &PgPool) -> Result<Vec<Parked>, sqlx::Error> {
    let rows: Vec<(Uuid, i64, Uuid, String)> = sqlx::query_as(
        "SELECT aggregate_id, position, event_id, reason FROM outbox_parked ORDER BY parked_at, aggregate_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(aggregate_id, position, event_id, reason)| Parked { aggregate_id, position, event_id, reason })
        .collect())
}
