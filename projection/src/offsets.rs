//! The projection's position in each partition, kept in Postgres with the projection itself: a batch is applied and
//! the position moved past it in one transaction, so a record is applied once however often Kafka delivers it.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

use sqlx::{PgConnection, PgPool, PgTransaction};

use super::{Outcome, Projection, ProjectionError, Record};

/// A topic (as the projection names it) and a partition.
pub type Partition = (String, i32);

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub applied: u64,
    pub ignored: u64,
    pub skipped: u64,
    /// Records at offsets the projection had already applied (Kafka delivered them again).
    pub already_applied: u64,
    /// Records whose application kept failing, passed over into the dead-letter table.
    pub dead_lettered: u64,
}

impl std::ops::AddAssign for BatchSummary {
    fn add_assign(&mut self, other: Self) {
        self.applied += other.applied;
        self.ignored += other.ignored;
        self.skipped += other.skipped;
        self.already_applied += other.already_applied;
        self.dead_lettered += other.dead_lettered;
    }
}

/// What one batch did, per topic (as the projection names it), for the consumer metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TopicSummaries(BTreeMap<String, BatchSummary>);

impl TopicSummaries {
    /// `summary`, all of it on `topic`.
    pub(crate) fn one(topic: &str, summary: BatchSummary) -> Self {
        Self(BTreeMap::from([(topic.to_owned(), summary)]))
    }

    /// The batch as a whole.
    pub(crate) fn total(&self) -> BatchSummary {
        self.0.values().fold(BatchSummary::default(), |mut total, summary| {
            total += *summary;
            total
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &BatchSummary)> {
        self.0.iter().map(|(topic, summary)| (topic.as_str(), summary))
    }

    fn topic(&mut self, topic: &str) -> &mut BatchSummary {
        // Called for every record of a batch: the name is copied only for a topic not counted yet.
        if !self.0.contains_key(topic) {
            self.0.insert(topic.to_owned(), BatchSummary::default());
        }
        self.0.get_mut(topic).expect("inserted above")
    }
}

impl std::ops::AddAssign for TopicSummaries {
    fn add_assign(&mut self, other: Self) {
        for (topic, summary) in other.0 {
            *self.topic(&topic) += summary;
        }
    }
}

/// Most characters of a topic name kept in `projection_skipped` (Kafka allows 249).
const MAX_TOPIC_CHARS: usize = 256;
/// Most characters of a reason kept in `projection_skipped` or logged.
const MAX_REASON_CHARS: usize = 2_048;

/// Where a projection stands in one partition, and which log that position was taken on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPosition {
    /// The offset of the next record to apply.
    pub next_offset: i64,
    /// The cluster the records came from, when known.
    pub cluster_id: Option<String>,
    /// The `ce_id` of the last record applied (at `next_offset - 1`), when it had one.
    pub last_record_id: Option<String>,
}

/// How a batch is applied.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions<'a> {
    /// Hold this projection's lock, shared, for the batch's transaction: a rebuild takes it exclusively while it
    /// swaps its replacement in.
    pub live_lock: Option<&'a str>,
    /// The cluster the records come from, stored with the positions.
    pub cluster_id: Option<&'a str>,
}

/// Where `projection` stands: its position per partition.
pub async fn stored_positions(
    connection: &mut PgConnection,
    projection: &str,
) -> Result<HashMap<Partition, StoredPosition>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        topic: String,
        partition: i32,
        next_offset: i64,
        cluster_id: Option<String>,
        last_record_id: Option<String>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT topic, partition, next_offset, cluster_id, last_record_id FROM projection_offsets
         WHERE projection = $1",
    )
    .bind(projection)
    .fetch_all(connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let position = StoredPosition {
                next_offset: row.next_offset,
                cluster_id: row.cluster_id,
                last_record_id: row.last_record_id,
            };
            ((row.topic, row.partition), position)
        })
        .collect())
}

/// Where `projection` stands: the next offset to apply, per partition.
pub async fn stored_offsets(
    connection: &mut PgConnection,
    projection: &str,
) -> Result<HashMap<Partition, i64>, sqlx::Error> {
    let positions = stored_positions(connection, projection).await?;
    Ok(positions.into_iter().map(|(partition, position)| (partition, position.next_offset)).collect())
}

/// Moves `projection`'s position in `partition` from `from` to `to` (the log was replaced or truncated), on
/// `cluster_id`, forgetting the last record. Returns `false`, changing nothing, if the position is no longer
/// `from`: another consumer of the projection moved it meanwhile.
pub async fn move_position(
    pool: &PgPool,
    projection: &str,
    (topic, partition): &Partition,
    from: i64,
    to: i64,
    cluster_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE projection_offsets
         SET next_offset = $5, cluster_id = $6, last_record_id = NULL, updated_at = now()
         WHERE projection = $1 AND topic = $2 AND partition = $3 AND next_offset = $4",
    )
    .bind(projection)
    .bind(topic)
    .bind(partition)
    .bind(from)
    .bind(to)
    .bind(cluster_id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Applies `records` to `projection` and moves its positions past them, in one transaction. Records below the
/// stored positions were applied before and are left out, so redelivery never applies a record twice.
pub async fn apply_batch<P: Projection>(
    pool: &PgPool,
    projection: &P,
    records: &[Record],
    options: BatchOptions<'_>,
) -> Result<BatchSummary, ProjectionError> {
    apply_batch_by_topic(pool, projection, records, options).await.map(|summaries| summaries.total())
}

/// [`apply_batch`], telling what it did per topic.
pub(crate) async fn apply_batch_by_topic<P: Projection>(
    pool: &PgPool,
    projection: &P,
    records: &[Record],
    options: BatchOptions<'_>,
) -> Result<TopicSummaries, ProjectionError> {
    let mut transaction = pool.begin().await?;
    if let Some(name) = options.live_lock {
        sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
    }
    let stored = lock_positions(&mut transaction, projection.name(), records).await?;
    let stored: HashMap<(&str, i32), i64> =
        stored.iter().map(|((topic, partition), next)| ((topic.as_str(), *partition), *next)).collect();
    let is_fresh =
        |record: &&Record| record.offset >= stored.get(&record.partition_ref()).copied().unwrap_or(0);
    // Redelivered records are rare: only then is the batch copied without them.
    let fresh: Cow<'_, [Record]> = if records.iter().all(|record| is_fresh(&record)) {
        Cow::Borrowed(records)
    } else {
        Cow::Owned(records.iter().filter(is_fresh).cloned().collect())
    };

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
    let mut summary = record_outcomes(&mut transaction, projection.name(), &fresh, &outcomes).await?;
    for repeated in records.iter().filter(|record| !is_fresh(record)) {
        summary.topic(&repeated.topic).already_applied += 1;
    }
    advance(&mut transaction, projection.name(), &fresh, options.cluster_id).await?;
    transaction.commit().await?;
    Ok(summary)
}

/// Locks and reads the positions of the partitions in `records` (not the others: replicas consuming other
/// partitions must not wait on this batch).
async fn lock_positions(
    transaction: &mut PgTransaction<'_>,
    projection: &str,
    records: &[Record],
) -> Result<HashMap<Partition, i64>, sqlx::Error> {
    let mut partitions: Vec<(&str, i32)> = records.iter().map(Record::partition_ref).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let (topics, numbers): (Vec<&str>, Vec<i32>) = partitions.into_iter().unzip();
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT topic, partition, next_offset FROM projection_offsets
         WHERE projection = $1 AND (topic, partition) IN (SELECT * FROM UNNEST($2::text[], $3::int[]))
         FOR UPDATE",
    )
    .bind(projection)
    .bind(&topics)
    .bind(&numbers)
    .fetch_all(&mut **transaction)
    .await?;
    Ok(rows.into_iter().map(|(topic, partition, offset)| ((topic, partition), offset)).collect())
}

/// Counts the outcomes, and keeps every record that could not be decoded in `projection_skipped`.
async fn record_outcomes(
    transaction: &mut PgTransaction<'_>,
    projection: &str,
    records: &[Record],
    outcomes: &[Outcome],
) -> Result<TopicSummaries, sqlx::Error> {
    let mut summary = TopicSummaries::default();
    for (record, outcome) in records.iter().zip(outcomes) {
        let counts = summary.topic(&record.topic);
        let reason = match outcome {
            Outcome::Applied => {
                counts.applied += 1;
                continue;
            }
            Outcome::Ignored => {
                counts.ignored += 1;
                continue;
            }
            Outcome::Skipped(reason) => storable(reason, MAX_REASON_CHARS),
        };
        counts.skipped += 1;
        tracing::warn!(
            projection,
            topic = %record.topic,
            partition = record.partition,
            offset = record.offset,
            event_type = record.shown_event_type(),
            reason,
            "Skipped a record that cannot be decoded; it is kept in projection_skipped."
        );
        keep_skipped(transaction, projection, record, &reason, 0).await?;
    }
    Ok(summary)
}

/// Keeps `record` in `projection_skipped`, its texts made storable: whatever a record carries, writing it down
/// must not fail, or the record would stop its partition.
async fn keep_skipped(
    transaction: &mut PgTransaction<'_>,
    projection: &str,
    record: &Record,
    reason: &str,
    attempts: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"INSERT INTO projection_skipped
               (projection, topic, partition, "offset", event_type, reason, payload, key, attempts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"#,
    )
    .bind(projection)
    .bind(storable(&record.topic, MAX_TOPIC_CHARS))
    .bind(record.partition)
    .bind(record.offset)
    .bind(record.shown_event_type())
    .bind(storable(reason, MAX_REASON_CHARS))
    .bind(&record.payload)
    .bind(&record.key)
    .bind(attempts)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// `text` as a Postgres `text` column can hold it: NUL (which it cannot) replaced by U+FFFD, and cut after
/// `max_chars` characters.
pub(crate) fn storable(text: &str, max_chars: usize) -> String {
    let mut stored: String =
        text.chars().take(max_chars).map(|c| if c == '\0' { '\u{FFFD}' } else { c }).collect();
    if text.chars().nth(max_chars).is_some() {
        stored.push('…');
    }
    stored
}

/// Passes `record` over into the dead-letter table (`projection_skipped`, with the `attempts` made) and moves the
/// position past it, in one transaction. Returns `false`, changing nothing, if the position is already past it.
pub async fn dead_letter(
    pool: &PgPool,
    projection: &str,
    record: &Record,
    reason: &str,
    attempts: i32,
    cluster_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    let stored = lock_positions(&mut transaction, projection, std::slice::from_ref(record)).await?;
    if record.offset < stored.get(&record.partition_key()).copied().unwrap_or(0) {
        return Ok(false);
    }
    keep_skipped(&mut transaction, projection, record, reason, attempts).await?;
    advance(&mut transaction, projection, std::slice::from_ref(record), cluster_id).await?;
    transaction.commit().await?;
    Ok(true)
}

/// Moves each partition's position past its last record in `records`, remembering that record's id.
async fn advance(
    transaction: &mut PgTransaction<'_>,
    projection: &str,
    records: &[Record],
    cluster_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut last: HashMap<(&str, i32), &Record> = HashMap::new();
    for record in records {
        let entry = last.entry(record.partition_ref()).or_insert(record);
        if record.offset > entry.offset {
            *entry = record;
        }
    }
    let (mut topics, mut partitions, mut offsets, mut ids) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((topic, partition), record) in last {
        topics.push(topic);
        partitions.push(partition);
        offsets.push(record.offset + 1);
        ids.push(record.record_id());
    }
    sqlx::query(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset, last_record_id, cluster_id)
         SELECT $1, topic, partition, next_offset, last_record_id, $6
         FROM UNNEST($2::text[], $3::int[], $4::bigint[], $5::text[])
              AS batch (topic, partition, next_offset, last_record_id)
         ON CONFLICT (projection, topic, partition) DO UPDATE
         SET next_offset = EXCLUDED.next_offset, last_record_id = EXCLUDED.last_record_id,
             cluster_id = COALESCE(EXCLUDED.cluster_id, projection_offsets.cluster_id), updated_at = now()
         WHERE projection_offsets.next_offset < EXCLUDED.next_offset",
    )
    .bind(projection)
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .bind(&ids)
    .bind(cluster_id)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_kept_of_a_record_can_always_be_stored() {
        assert_eq!(storable("shop.product\0.created.v1", 100), "shop.product\u{FFFD}.created.v1");
        assert_eq!(storable("\0\0", 100), "\u{FFFD}\u{FFFD}");
        assert_eq!(storable(&"é".repeat(10_000), 5), "ééééé…");
        assert_eq!(storable("short", 5), "short");
        assert_eq!(storable("", 5), "");
    }

    #[test]
    fn a_cut_text_ends_on_a_whole_character_and_says_it_was_cut() {
        // Four-byte characters: a byte-based cut would split one.
        let text = "🦀".repeat(3);

        assert_eq!(storable(&text, 3), text, "exactly the limit is kept whole");
        assert_eq!(storable(&text, 2), "🦀🦀…");
        assert_eq!(storable(&format!("ab{}", "\0".repeat(1_000_000)), 3), "ab\u{FFFD}…");
    }
}
