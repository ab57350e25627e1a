//! Republishing a service's current state through its outbox, the way Debezium's incremental snapshots refill a
//! topic ([`shop_events::republish`] says why and how consumers read it).
//!
//! [`republish`] walks every entity by id in batches; each batch is one transaction that reads its entities
//! `FOR SHARE` (no change of them can commit meanwhile) and appends one `*.republished.v1` event per entity at its
//! current version ([`append_republished`](crate::append_republished)). The service goes on serving: writes to other
//! entities never wait, writes to a batch's entities wait for that batch's commit. Then it waits until the relay
//! has published every event it appended, and records the run, through the outbox too, as a
//! [`RepublishCompleted`] on `shop.republishes.v1`.
//!
//! The caller reads where each partition of the topic ends before calling, so that every event of the run lands at
//! or after those offsets: that is what the record vouches for.

use std::{collections::BTreeMap, future::Future, time::Duration};

use chrono::Utc;
use shop_events::{
    Envelope,
    envelope::now,
    republish::{PartitionStart, RepublishCompleted},
};
use sqlx::{PgPool, PgTransaction};
use tokio::time::Instant;
use uuid::Uuid;

/// How often to look whether the relay has published the run's events.
const RELAY_POLL: Duration = Duration::from_millis(200);

const DEFAULT_BATCH_SIZE: u32 = 500;
const DEFAULT_RELAY_WAIT_SECS: u64 = 600;

/// What a service republishes: its entities of one topic, in id order.
pub trait Entities: Send + Sync {
    /// The entity topic, as named without a prefix (`shop.accounts.v1`).
    fn topic(&self) -> &'static str;

    /// How many entities there are now; only for showing progress (the walk counts what it finds).
    fn count(&self, pool: &PgPool) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// The republished events of the first `limit` entities whose id is above `after` (from the first with
    /// `None`), in id order, reading their rows `FOR SHARE` inside `transaction`.
    fn next_batch(
        &self,
        transaction: &mut PgTransaction<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Envelope>, sqlx::Error>> + Send;
}

/// How a republish runs.
#[derive(Debug, Clone, clap::Args)]
pub struct RepublishSettings {
    /// Entities read (and held `FOR SHARE`) and appended to the outbox per transaction.
    #[arg(long, env = "REPUBLISH_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: u32,
    /// How long to wait for the relay to publish the republished events before giving up, without recording the
    /// run (the events stay in the outbox and are published when the relay runs).
    #[arg(long, env = "REPUBLISH_RELAY_WAIT_SECS", default_value_t = DEFAULT_RELAY_WAIT_SECS)]
    pub relay_wait_secs: u64,
}

impl Default for RepublishSettings {
    fn default() -> Self {
        Self { batch_size: DEFAULT_BATCH_SIZE, relay_wait_secs: DEFAULT_RELAY_WAIT_SECS }
    }
}

/// Where a republish is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `done` entities appended to the outbox, of about `total`.
    Appending { done: u64, total: u64 },
    /// `published` of the `appended` events are on Kafka.
    Publishing { published: u64, appended: u64 },
}

impl Progress {
    /// The stage's name, how far it is, and of how much: what a progress display shows.
    pub fn stage(&self) -> (&'static str, u64, u64) {
        match *self {
            Self::Appending { done, total } => ("Appending current states to the outbox", done, total),
            Self::Publishing { published, appended } => {
                ("Waiting for the relay to publish them", published, appended)
            }
        }
    }
}

/// The start offsets of a run, from where each partition ended before it wrote anything.
pub fn start_offsets(ends: BTreeMap<i32, i64>) -> Vec<PartitionStart> {
    ends.into_iter().map(|(partition, start_offset)| PartitionStart { partition, start_offset }).collect()
}

/// Why a republish stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepublishError {
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The relay did not publish the run's events in time; nothing records the run.
    #[error(
        "{waiting} of the {appended} republished events are still in the outbox after {waited_secs} s: is the relay \
         running, and is no aggregate parked (SELECT * FROM outbox_parked)? They stay in the outbox and will be \
         published, but the run is not recorded as complete, so rebuilds do not count on it: run the republish \
         again once the relay publishes"
    )]
    RelayBehind { waiting: u64, appended: u64, waited_secs: u64 },
}

/// Republishes every entity of `entities`, then records the run with `start_offsets` (where each partition of the
/// topic ended before anything was written). Returns the record.
pub async fn republish<E: Entities>(
    pool: &PgPool,
    entities: &E,
    start_offsets: Vec<PartitionStart>,
    settings: &RepublishSettings,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<RepublishCompleted, RepublishError> {
    let run_id = Uuid::now_v7();
    let started_at = now();
    let total = entities.count(pool).await?;
    let mut appended = Appended { republished_only: true, ..Appended::default() };
    let mut after = None;
    loop {
        let mut transaction = pool.begin().await?;
        let batch =
            entities.next_batch(&mut transaction, after, i64::from(settings.batch_size.max(1))).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.aggregate_id);
        let positions = crate::append_republished(&mut transaction, &batch).await?;
        transaction.commit().await?;
        appended.add(&positions);
        progress(Progress::Appending { done: appended.count, total: total.max(appended.count) });
    }
    tracing::info!(
        run_id = %run_id,
        topic = entities.topic(),
        entities = appended.count,
        "Appended the current state of every entity; waiting for the relay to publish it."
    );

    let deadline = Instant::now() + Duration::from_secs(settings.relay_wait_secs);
    wait_for_relay(pool, &appended, deadline, settings, &mut progress).await?;
    let completed = RepublishCompleted {
        run_id,
        topic: entities.topic().to_owned(),
        partitions: start_offsets,
        entities: appended.count,
        started_at,
        completed_at: now().max(started_at),
    };
    let record = Envelope::new(&completed, None);
    let mut transaction = pool.begin().await?;
    crate::append(&mut transaction, &record).await?;
    let position: i64 = sqlx::query_scalar("SELECT position FROM outbox WHERE event_id = $1")
        .bind(record.event_id)
        .fetch_one(&mut *transaction)
        .await?;
    transaction.commit().await?;
    // The record counts once it is on Kafka: a rebuild started after this returns sees it.
    let record = Appended { count: 1, first: Some(position), last: Some(position), republished_only: false };
    wait_for_relay(pool, &record, deadline, settings, &mut |_| {}).await?;
    tracing::info!(
        run_id = %run_id,
        topic = entities.topic(),
        entities = appended.count,
        elapsed_ms = (Utc::now() - started_at).num_milliseconds(),
        "Republished the current state of every entity."
    );
    Ok(completed)
}

/// One line saying what a run did, for the command's output; `topic` as named on the cluster.
pub fn summary(completed: &RepublishCompleted, topic: &str) -> String {
    let starts: Vec<String> = completed
        .partitions
        .iter()
        .map(|start| format!("{}:{}", start.partition, start.start_offset))
        .collect();
    let elapsed = (completed.completed_at - completed.started_at).to_std().unwrap_or_default();
    format!(
        "Republished {} entities to {topic} in {elapsed:.1?} (run {}). From offsets {} (partition:offset) on, the \
         topic holds every entity; rebuilds of it are complete while those offsets are kept.",
        completed.entities,
        completed.run_id,
        starts.join(", ")
    )
}

/// The positions a run's rows took.
#[derive(Debug, Default)]
struct Appended {
    count: u64,
    first: Option<i64>,
    last: Option<i64>,
    /// Whether to count only the republished rows between `first` and `last` (the service's own writes go on
    /// meanwhile, and the relay publishes them too, but they are not the run's).
    republished_only: bool,
}

impl Appended {
    fn add(&mut self, positions: &[i64]) {
        self.count += positions.len() as u64;
        for position in positions {
            self.first = Some(self.first.map_or(*position, |first| first.min(*position)));
            self.last = Some(self.last.map_or(*position, |last| last.max(*position)));
        }
    }
}

/// Waits until none of `rows` is left unpublished (published rows are deleted, or marked when a retention is kept).
async fn wait_for_relay(
    pool: &PgPool,
    rows: &Appended,
    deadline: Instant,
    settings: &RepublishSettings,
    progress: &mut (impl FnMut(Progress) + Send),
) -> Result<(), RepublishError> {
    let (Some(first), Some(last)) = (rows.first, rows.last) else { return Ok(()) };
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox
             WHERE position BETWEEN $1 AND $2 AND published_at IS NULL AND (republished OR NOT $3)",
        )
        .bind(first)
        .bind(last)
        .bind(rows.republished_only)
        .fetch_one(pool)
        .await?;
        let waiting = waiting as u64;
        progress(Progress::Publishing {
            published: rows.count.saturating_sub(waiting),
            appended: rows.count,
        });
        if waiting == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RepublishError::RelayBehind {
                waiting,
                appended: rows.count,
                waited_secs: settings.relay_wait_secs,
            });
        }
        tokio::time::sleep(RELAY_POLL).await;
    }
}
