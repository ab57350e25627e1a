//! How far a projection is known to be complete: the time before which it holds every event of every outbox that
//! writes to its topics. What lets a consumer tell "this entity does not exist" from "it is not here yet".
//!
//! The relay publishes, per outbox, a heartbeat saying up to when every event the outbox committed is on Kafka,
//! per topic ([`shop_events::heartbeat`]). [`Completeness::follow`] reads those heartbeats; when they move the
//! promise for the projection's topics forward (the oldest of the outboxes' times), it reads where those topics
//! end *now* — a point past every record the promise covers, since the relay published the heartbeat only after
//! those records were acknowledged — and keeps the pair as a checkpoint. Once the projection's stored positions
//! reach a checkpoint's ends, it is complete through the checkpoint's time.
//!
//! Before any heartbeat has come, completeness is unknown: consumers must then wait rather than conclude. An
//! outbox whose relay has never published a heartbeat is not waited for: it is not known to exist.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
};
use shop_events::{heartbeat::OutboxHeartbeat, topics};
use shop_platform::{backoff::Backoff, supervisor::Part};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Partition, Record, Source, TracingContext, offsets};

/// Checkpoints kept; older ones are only needed while the projection lags far behind.
const CHECKPOINTS: usize = 64;

/// A time through which the projection is complete once it has consumed up to `ends`.
#[derive(Debug, Clone)]
struct Checkpoint {
    through: DateTime<Utc>,
    ends: HashMap<Partition, i64>,
}

/// Follows the relay's heartbeats for one projection. Cloning shares the checkpoints.
#[derive(Debug, Clone)]
pub struct Completeness {
    projection: String,
    topics: Vec<&'static str>,
    source: Source,
    checkpoints: Arc<Mutex<VecDeque<Checkpoint>>>,
}

impl Completeness {
    pub fn new(source: Source, projection: &str, topics: &[&'static str]) -> Self {
        Self {
            projection: projection.to_owned(),
            topics: topics.to_vec(),
            source,
            checkpoints: Arc::default(),
        }
    }

    /// The latest time through which the projection (its stored positions in `pool`) holds every event of the
    /// outboxes writing to its topics; `None` while that is not known.
    pub async fn complete_through(&self, pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let checkpoints: Vec<Checkpoint> =
            self.checkpoints.lock().expect("not poisoned").iter().cloned().collect();
        if checkpoints.is_empty() {
            return Ok(None);
        }
        let positions = offsets::stored_offsets(&mut *pool.acquire().await?, &self.projection).await?;
        let reached = |checkpoint: &Checkpoint| {
            checkpoint
                .ends
                .iter()
                .all(|(partition, end)| *end == 0 || positions.get(partition).is_some_and(|next| next >= end))
        };
        Ok(checkpoints
            .iter()
            .rev()
            .find(|checkpoint| reached(checkpoint))
            .map(|checkpoint| checkpoint.through))
    }

    /// Reads the heartbeat topic from its beginning until `part.stop`, keeping checkpoints. Waits, rather than
    /// failing, while Kafka cannot be reached.
    pub async fn follow(&self, part: Part) -> anyhow::Result<()> {
        let mut backoff = Backoff::standard();
        let consumer = loop {
            match self.assign_heartbeats().await {
                Ok(consumer) => break consumer,
                Err(error) => {
                    part.health.not_serving(format!("cannot read the relay's heartbeats: {error}"));
                    tracing::warn!(projection = %self.projection, error.message = %error, "Cannot read the relay's heartbeats yet; retrying.");
                    if !backoff.wait(&part.stop).await {
                        return Ok(());
                    }
                }
            }
        };
        part.health.serving();
        let mut heartbeats: HashMap<String, OutboxHeartbeat> = HashMap::new();
        loop {
            let message = tokio::select! {
                () = part.stop.cancelled() => return Ok(()),
                message = consumer.recv() => message,
            };
            let record = match message {
                Ok(message) => Record::from_message(&message),
                Err(error) => {
                    tracing::debug!(error.message = %error, "Heartbeat consumer error.");
                    continue;
                }
            };
            let Ok(heartbeat) = serde_json::from_slice::<OutboxHeartbeat>(record.payload()) else {
                tracing::debug!(
                    offset = record.offset,
                    "Skipped a record on the heartbeat topic that is not a heartbeat."
                );
                continue;
            };
            heartbeats.insert(heartbeat.outbox.clone(), heartbeat);
            if let Some(through) = self.promised_through(&heartbeats)
                && let Err(error) = self.checkpoint(&consumer, through).await
            {
                tracing::warn!(projection = %self.projection, error.message = %error, "Failed to read where the topics end.");
            }
        }
    }

    /// A consumer of every partition of the heartbeat topic, from its beginning (it is compacted: one record per
    /// outbox, plus recent ones).
    async fn assign_heartbeats(&self) -> anyhow::Result<Arc<StreamConsumer<TracingContext>>> {
        let partitions = self.source.watermarks(&[topics::HEARTBEATS]).await?;
        anyhow::ensure!(
            !partitions.is_empty(),
            "the topic {} does not exist",
            self.source.topic(topics::HEARTBEATS)
        );
        let mut config = self.source.config.clone();
        config
            .set("group.id", self.source.topic(&format!("{}-heartbeats-{}", self.projection, Uuid::now_v7())))
            .set("enable.auto.commit", "false");
        let consumer: StreamConsumer<TracingContext> = config.create_with_context(TracingContext)?;
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in partitions.keys() {
            assignment.add_partition_offset(&self.source.topic(topic), *partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        Ok(Arc::new(consumer))
    }

    /// What the heartbeats promise for the projection's topics: the oldest time any outbox vouches for any of
    /// them; `None` before any heartbeat.
    fn promised_through(&self, heartbeats: &HashMap<String, OutboxHeartbeat>) -> Option<DateTime<Utc>> {
        heartbeats
            .values()
            .flat_map(|heartbeat| self.topics.iter().map(|topic| heartbeat.complete_through(topic)))
            .min()
    }

    /// Records a checkpoint at `through` with where the projection's topics end now, if it moves the promise on.
    async fn checkpoint(
        &self,
        consumer: &Arc<StreamConsumer<TracingContext>>,
        through: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let newest =
            self.checkpoints.lock().expect("not poisoned").back().map(|checkpoint| checkpoint.through);
        if newest.is_some_and(|newest| newest >= through) {
            return Ok(());
        }
        let ends = self.source.watermarks_with(consumer, &self.topics).await?;
        let checkpoint = Checkpoint {
            through,
            ends: ends.into_iter().map(|(partition, (_, high))| (partition, high)).collect(),
        };
        let mut checkpoints = self.checkpoints.lock().expect("not poisoned");
        checkpoints.push_back(checkpoint);
        while checkpoints.len() > CHECKPOINTS {
            checkpoints.pop_front();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heartbeat looking at 10:00:10, with events waiting since `through` on `pending`.
    fn heartbeat(outbox: &str, through: &str, pending: &[&str]) -> (String, OutboxHeartbeat) {
        let heartbeat = OutboxHeartbeat {
            outbox: outbox.to_owned(),
            as_of: "2026-11-22T10:00:10Z".parse().unwrap(),
            published_through: through.parse().unwrap(),
            pending_topics: pending.iter().map(|topic| (*topic).to_owned()).collect(),
        };
        (outbox.to_owned(), heartbeat)
    }

    fn completeness() -> Completeness {
        Completeness::new(
            Source::new(rdkafka::ClientConfig::new()),
            "order.directory",
            &[topics::ACCOUNTS, topics::PRODUCTS],
        )
    }

    #[test]
    fn the_promise_is_held_back_by_events_waiting_on_the_projections_topics_only() {
        let heartbeats = HashMap::from([
            heartbeat("shop_account", "2026-11-22T10:00:05Z", &[topics::ACCOUNTS]),
            heartbeat("shop_catalog", "2026-11-22T10:00:03Z", &[topics::PRODUCTS]),
            // The order outbox's waiting events are on a topic the projection does not read.
            heartbeat("shop_order", "2026-11-22T09:00:00Z", &[topics::ORDERS]),
        ]);

        assert_eq!(
            completeness().promised_through(&heartbeats),
            Some("2026-11-22T10:00:03Z".parse().unwrap())
        );
    }

    #[test]
    fn outboxes_with_nothing_waiting_vouch_through_the_moment_they_looked() {
        let heartbeats = HashMap::from([heartbeat("shop_account", "2026-11-22T10:00:10Z", &[])]);

        assert_eq!(
            completeness().promised_through(&heartbeats),
            Some("2026-11-22T10:00:10Z".parse().unwrap())
        );
    }

    #[test]
    fn without_any_heartbeat_the_promise_is_unknown() {
        assert_eq!(completeness().promised_through(&HashMap::new()), None);
    }
}
