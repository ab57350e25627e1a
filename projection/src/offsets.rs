//! Applying a batch and moving the projection's offsets, in one transaction.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};

use super::{Outcome, Projection, ProjectionError, Record};

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub applied: u64,
    pub ignored: u64,
    pub skipped: u64,
    /// Records at offsets the projection had already applied (Kafka delivered them again).
    pub already_applied: u64,
}

/// Where `projection` stands: the next offset to apply, per (topic, partition).
pub async fn stored_offsets(
    connection: &mut PgConnection,
    projection: &str,
) -> Result<HashMap<(String, i32), i64>, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> =
        sqlx::query_as("SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1")
            .bind(projection)
            .fetch_all(connection)
            .await?;
    Ok(rows.into_iter().map(|(topic, partition, offset)| ((topic, partition), offset)).collect())
}

/// Starts over the partitions whose stored offset lies beyond their end: the topic was deleted and created again,
/// or the broker replaced (an embedded one restarts empty), and its new records would otherwise pass for already
/// applied and be skipped. Replaying them is harmless: projections ignore versions they already hold. Returns the
/// partitions reset, with the offset stored and the topic's end.
pub async fn restart_reset_partitions(
    pool: &PgPool,
    projection: &str,
    ends: &super::Watermarks,
) -> Result<Vec<(String, i32, i64, i64)>, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    let mut reset = Vec::new();
    for ((topic, partition), offset) in stored_offsets(&mut connection, projection).await? {
        let Some((low, high)) = ends.get(&(topic.clone(), partition)).copied() else { continue };
        if offset > high {
            sqlx::query(
                "UPDATE projection_offsets SET next_offset = $4, updated_at = now()
                 WHERE projection = $1 AND topic = $2 AND partition = $3",
            )
            .bind(projection)
            .bind(&topic)
            .bind(partition)
            .bind(low)
            .execute(&mut *connection)
            .await?;
            reset.push((topic, partition, offset, high));
        }
    }
    Ok(reset)
}

/// Applies `records` to `projection` and moves its offsets past them, in one transaction. Records below the
/// stored offsets were applied before and are left out, so redelivery never applies a record twice.
///
/// With `live_lock`, the transaction holds that projection's advisory lock in shared mode, which a rebuild takes
/// exclusively while it swaps its replacement in.
pub async fn apply_batch<P: Projection>(
    pool: &PgPool,
    projection: &P,
    records: &[Record],
    live_lock: Option<&str>,
) -> Result<BatchSummary, ProjectionError> {
    let mut transaction = pool.begin().await?;
    if let Some(name) = live_lock {
        sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
    }

    // Lock the offsets of the partitions in this batch (not the others: replicas consuming other partitions
    // must not wait on us).
    let mut partitions: Vec<(String, i32)> = records.iter().map(|r| (r.topic.clone(), r.partition)).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let (topics, numbers): (Vec<String>, Vec<i32>) = partitions.into_iter().unzip();
    let stored: HashMap<(String, i32), i64> = sqlx::query_as::<_, (String, i32, i64)>(
        "SELECT topic, partition, next_offset FROM projection_offsets
         WHERE projection = $1 AND (topic, partition) IN (SELECT * FROM UNNEST($2::text[], $3::int[]))
         FOR UPDATE",
    )
    .bind(projection.name())
    .bind(&topics)
    .bind(&numbers)
    .fetch_all(&mut *transaction)
    .await?
    .into_iter()
    .map(|(topic, partition, offset)| ((topic, partition), offset))
    .collect();

    let is_fresh = |record: &Record| {
        record.offset >= stored.get(&(record.topic.clone(), record.partition)).copied().unwrap_or(0)
    };
    let fresh: Vec<Record> = records.iter().filter(|r| is_fresh(r)).cloned().collect();
    let mut summary =
        BatchSummary { already_applied: (records.len() - fresh.len()) as u64, ..Default::default() };

    let outcomes = projection.apply(&mut transaction, &fresh).await?;
    if outcomes.len() != fresh.len() {
        return Err(anyhow::anyhow!(
            "Projection {} returned {} outcomes for {} records",
            projection.name(),
            outcomes.len(),
            fresh.len()
        )
        .into());
    }

    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for (record, outcome) in fresh.iter().zip(&outcomes) {
        let position = next.entry((&record.topic, record.partition)).or_insert(0);
        *position = (*position).max(record.offset + 1);
        match outcome {
            Outcome::Applied => summary.applied += 1,
            Outcome::Ignored => summary.ignored += 1,
            Outcome::Skipped(reason) => {
                summary.skipped += 1;
                tracing::warn!(
                    projection = projection.name(),
                    topic = %record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    event_type = record.event_type(),
                    reason,
                    "Skipped a record that cannot be decoded; it is kept in projection_skipped."
                );
                sqlx::query(
                    r#"INSERT INTO projection_skipped (projection, topic, partition, "offset", event_type, reason, payload)
                       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"#,
                )
                .bind(projection.name())
                .bind(&record.topic)
                .bind(record.partition)
                .bind(record.offset)
                .bind(record.event_type())
                .bind(reason)
                .bind(&record.payload)
                .execute(&mut *transaction)
                .await?;
            }
        }
    }

    let (topics, (partitions, offsets)): (Vec<&str>, (Vec<i32>, Vec<i64>)) =
        next.into_iter().map(|((topic, partition), offset)| (topic, (partition, offset))).unzip();
    sqlx::query(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset)
         SELECT $1, * FROM UNNEST($2::text[], $3::int[], $4::bigint[])
         ON CONFLICT (projection, topic, partition) DO UPDATE
         SET next_offset = GREATEST(projection_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(projection.name())
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .execute(&mut *transaction)
    .await?;

    transaction.commit().await?;
    Ok(summary)
}
