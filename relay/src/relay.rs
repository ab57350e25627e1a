//! The publishing loop of one outbox: read a batch of the shards this instance holds, send it, wait for Kafka's
//! acknowledgements, record what was published, and go again at once while there is more, or sleep until a
//! commit notification or the fallback poll.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::{StreamExt, stream::FuturesUnordered};
use rdkafka::producer::{DeliveryFuture, Producer as _, PurgeConfig};
use shop_platform::kafka::KafkaSettings;
use sqlx::PgPool;
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::RelaySettings,
    kafka::{self, Failure, Producer},
    leases::Assignment,
    metrics::OutboxMetrics,
    store::{self, OutboxRow, Parked},
};

/// How long a batch waits for acknowledgements before the relay says, again, that Kafka is slow or away.
const SLOW_BATCH_WARNING: Duration = Duration::from_secs(10);

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Rows were sent. `full` means the batch was as large as allowed: there is probably more.
    Published { delivered: usize, parked: usize, retry: usize, full: bool },
    /// Nothing to publish in the shards held.
    Idle,
    /// This instance holds no usable shard (yet, or any more).
    NoShards,
    /// Shutdown came and the grace period ran out before every acknowledgement; the unacknowledged rows stay.
    Abandoned,
}

/// Forwards one outbox to Kafka.
pub struct OutboxRelay {
    outbox: String,
    pool: PgPool,
    kafka: KafkaSettings,
    producer: Producer,
    settings: RelaySettings,
    assignment: watch::Receiver<Assignment>,
    wake: Arc<Notify>,
    metrics: OutboxMetrics,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay").field("outbox", &self.outbox).finish_non_exhaustive()
    }
}

/// The acknowledgement of one row (by its index in the batch).
type Acknowledgement = (
    usize,
    Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
);

impl OutboxRelay {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        outbox: String,
        pool: PgPool,
        kafka: KafkaSettings,
        settings: RelaySettings,
        assignment: watch::Receiver<Assignment>,
        wake: Arc<Notify>,
        metrics: OutboxMetrics,
    ) -> anyhow::Result<Self> {
        let producer = kafka::create_producer(&kafka)?;
        Ok(Self { outbox, pool, kafka, producer, settings, assignment, wake, metrics })
    }

    /// Publishes until `stop`; the batch in flight then gets the shutdown grace period to be acknowledged.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut pause = Duration::ZERO;
        while !stop.is_cancelled() {
            match self.publish_batch(&stop).await {
                Ok(BatchOutcome::Published { full: true, retry: 0, .. }) => pause = Duration::ZERO,
                Ok(
                    BatchOutcome::Published { retry: 0, .. } | BatchOutcome::Idle | BatchOutcome::NoShards,
                ) => {
                    pause = Duration::ZERO;
                    self.wait_for_work(&stop).await;
                }
                Ok(BatchOutcome::Published { .. }) => {
                    pause = next_pause(pause);
                    sleep_or_stop(pause, &stop).await;
                }
                Ok(BatchOutcome::Abandoned) => break,
                Err(error) => {
                    pause = next_pause(pause);
                    tracing::warn!(
                        outbox = %self.outbox,
                        retry_in_ms = pause.as_millis() as u64,
                        error.cause_chain = ?error,
                        error.message = %error,
                        "A batch failed; its rows stay in the outbox and will be sent again."
                    );
                    sleep_or_stop(pause, &stop).await;
                }
            }
        }
        tracing::info!(outbox = %self.outbox, "The relay loop stopped.");
    }

    async fn wait_for_work(&self, stop: &CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.wake.notified() => {}
            () = tokio::time::sleep(self.settings.poll_interval()) => {}
        }
    }

    /// One pass: read, send, await acknowledgements, record. Public so tests can drive the relay step by step.
    #[tracing::instrument(name = "relay.batch", skip_all, fields(outbox = %self.outbox))]
    pub async fn publish_batch(&mut self, stop: &CancellationToken) -> anyhow::Result<BatchOutcome> {
        let shards = self.assignment.borrow().usable_shards().to_vec();
        self.metrics.owned_shards.set(shards.len() as i64);
        if shards.is_empty() {
            return Ok(BatchOutcome::NoShards);
        }
        let limit = i64::from(self.settings.batch_size);
        let started = Instant::now();
        let rows = store::unpublished(&self.pool, &shards, limit).await?;
        if rows.is_empty() {
            return Ok(BatchOutcome::Idle);
        }
        let read = started.elapsed();

        let (in_flight, mut parked, unsent) = self.send(&rows).await;
        let (acknowledgements, abandoned) = self.await_acknowledgements(in_flight, stop).await;

        let mut delivered = Vec::with_capacity(rows.len());
        let mut retry = unsent;
        let mut fatal = None;
        let mut blocked: HashSet<Uuid> = parked.iter().map(|p| p.aggregate_id).collect();
        let now = chrono::Utc::now();
        for (index, acknowledgement) in acknowledgements {
            let row = &rows[index];
            let error = match acknowledgement {
                Ok(Ok(_)) => {
                    delivered.push(row.position);
                    let latency = (now - row.occurred_at).to_std().unwrap_or_default();
                    self.metrics.publish_latency.observe(latency.as_secs_f64());
                    continue;
                }
                Ok(Err((error, _))) => error,
                Err(_canceled) => {
                    retry += 1;
                    continue;
                }
            };
            match kafka::classify(&error) {
                Failure::Refused(reason) if blocked.insert(row.aggregate_id) => {
                    parked.push(parked_row(row, reason))
                }
                Failure::Refused(_) => {}
                Failure::Fatal(reason) => {
                    fatal = Some(reason);
                    retry += 1;
                }
                Failure::QueueFull | Failure::Transient(_) => retry += 1,
            }
        }

        let acknowledged = started.elapsed();
        store::record_batch(&self.pool, &delivered, &parked, self.settings.retention_secs > 0).await?;

        self.metrics.batches.inc();
        self.metrics.published.inc_by(delivered.len() as u64);
        self.metrics.parked_events.inc_by(parked.len() as u64);
        self.metrics.failed_deliveries.inc_by(retry as u64);
        for parked in &parked {
            tracing::error!(
                outbox = %self.outbox,
                aggregate_id = %parked.aggregate_id,
                position = parked.position,
                reason = %parked.reason,
                "Kafka refused an event for good; its aggregate is parked until an operator fixes the row and \
                 deletes its outbox_parked entry. Other aggregates flow on."
            );
        }
        tracing::info!(
            outbox = %self.outbox,
            read = rows.len(),
            delivered = delivered.len(),
            parked = parked.len(),
            retry,
            read_ms = read.as_millis() as u64,
            kafka_ms = (acknowledged - read).as_millis() as u64,
            record_ms = (started.elapsed() - acknowledged).as_millis() as u64,
            "Published a batch."
        );
        if let Some(reason) = fatal {
            tracing::warn!(outbox = %self.outbox, reason, "The Kafka producer stopped; starting a new one.");
            self.producer = kafka::create_producer(&self.kafka)?;
        }

        Ok(if abandoned {
            BatchOutcome::Abandoned
        } else {
            BatchOutcome::Published {
                delivered: delivered.len(),
                parked: parked.len(),
                retry,
                full: rows.len() as i64 == limit,
            }
        })
    }

    /// Hands every row to the producer, in outbox order. A row Kafka refuses outright parks its aggregate, whose
    /// later rows are then held back; any other refusal stops the batch there, so nothing is sent ahead of a row
    /// that will be sent again. Returns what is in flight, what is parked, and how many rows were not sent.
    async fn send(&self, rows: &[OutboxRow]) -> (FuturesUnordered<IndexedDelivery>, Vec<Parked>, usize) {
        let keys: Vec<String> = rows.iter().map(|row| row.aggregate_id.to_string()).collect();
        let topics: Vec<String> = rows.iter().map(|row| self.kafka.topic(&row.topic)).collect();
        let in_flight = FuturesUnordered::new();
        let mut parked = Vec::new();
        let mut blocked = HashSet::new();
        for (index, row) in rows.iter().enumerate() {
            if blocked.contains(&row.aggregate_id) {
                continue;
            }
            let mut record = kafka::record(row, &topics[index], &keys[index]);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        in_flight.push(IndexedDelivery { index, delivery });
                        break;
                    }
                    Err((error, returned)) => match kafka::classify(&error) {
                        Failure::QueueFull => {
                            // The producer drains its queue on its own thread; give it a moment.
                            record = returned;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Failure::Refused(reason) => {
                            blocked.insert(row.aggregate_id);
                            parked.push(parked_row(row, reason));
                            break;
                        }
                        Failure::Fatal(reason) | Failure::Transient(reason) => {
                            tracing::warn!(outbox = %self.outbox, reason, "Kafka would not take a record; the rest of the batch waits.");
                            return (in_flight, parked, rows.len() - index);
                        }
                    },
                }
            }
        }
        (in_flight, parked, 0)
    }

    /// Waits for every acknowledgement. Warns every [`SLOW_BATCH_WARNING`] while Kafka is slow or away. On
    /// shutdown, waits the grace period, then purges what is left (those rows stay unpublished).
    async fn await_acknowledgements(
        &self,
        mut in_flight: FuturesUnordered<IndexedDelivery>,
        stop: &CancellationToken,
    ) -> (Vec<Acknowledgement>, bool) {
        let mut acknowledgements = Vec::with_capacity(in_flight.len());
        let waiting_since = Instant::now();
        let mut next_warning = waiting_since + SLOW_BATCH_WARNING;
        let mut give_up_at: Option<Instant> = None;
        while !in_flight.is_empty() {
            tokio::select! {
                biased;
                Some(acknowledgement) = in_flight.next() => acknowledgements.push(acknowledgement),
                () = stop.cancelled(), if give_up_at.is_none() => {
                    give_up_at = Some(Instant::now() + self.settings.shutdown_grace());
                    tracing::info!(outbox = %self.outbox, in_flight = in_flight.len(), "Stopping: waiting for the batch in flight.");
                }
                () = tokio::time::sleep_until(give_up_at.map_or(next_warning, |at| at.min(next_warning))) => {
                    if give_up_at.is_some_and(|at| Instant::now() >= at) {
                        self.producer.purge(PurgeConfig::default().queue().inflight());
                        tracing::warn!(
                            outbox = %self.outbox,
                            unacknowledged = in_flight.len(),
                            "Abandoned the rest of the batch at shutdown; those rows stay in the outbox and will be sent again."
                        );
                        return (acknowledgements, true);
                    }
                    tracing::warn!(
                        outbox = %self.outbox,
                        unacknowledged = in_flight.len(),
                        waiting_secs = waiting_since.elapsed().as_secs(),
                        "Kafka has not acknowledged the batch yet; is the broker reachable? The rows stay in the outbox."
                    );
                    next_warning += SLOW_BATCH_WARNING;
                }
            }
        }
        (acknowledgements, give_up_at.is_some())
    }
}

/// A delivery future that remembers which row it is for.
struct IndexedDelivery {
    index: usize,
    delivery: DeliveryFuture,
}

impl std::future::Future for IndexedDelivery {
    type Output = Acknowledgement;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let index = self.index;
        std::pin::Pin::new(&mut self.delivery).poll(cx).map(|result| (index, result))
    }
}

fn parked_row(row: &OutboxRow, reason: String) -> Parked {
    Parked { aggregate_id: row.aggregate_id, position: row.position, event_id: row.event_id, reason }
}

/// Exponential backoff from 100 ms to 10 s.
fn next_pause(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

async fn sleep_or_stop(pause: Duration, stop: &CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(pause) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_from_100_ms_to_10_s() {
        let mut pause = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..10 {
            pause = next_pause(pause);
            seen.push(pause.as_millis());
        }

        assert_eq!(seen, [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000]);
    }
}
