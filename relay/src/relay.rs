//! The publishing loop of one outbox: read a batch of the shards this instance holds, send it, wait for Kafka's
//! acknowledgements, record what was published, and go again at once while there is more, or sleep until a
//! commit notification or the fallback poll. Between batches it gives back shards another instance should have,
//! and publishes the outbox's heartbeat.
//!
//! # Batching under load
//!
//! A batch goes to Kafka as soon as it is read (the producer does not linger), and a backlog drains in full
//! batches back to back. When commits trickle in instead, the loop batches them itself: after a batch smaller
//! than allowed, the next read waits out `RELAY_BATCH_WINDOW_MS` from the start of the last one. The first event
//! after a quiet spell thus goes out at once, and under load a read costs the database once per window rather
//! than once per commit.
//!
//! # Pipelining without reordering
//!
//! Under load the database work of a batch overlaps Kafka's: while batch N is in flight, N-1 is recorded and N+1
//! is read, side by side; when N is acknowledged, N+1 is sent, and N is recorded while N+2 is read. The order per
//! aggregate holds because:
//! - N+1 is handed to the producer only after every acknowledgement of N is in and sorted, and only if Kafka took
//!   all of N. Should any row of N fail (refused, unroutable, not acknowledged in time, a broken producer), N+1 is
//!   dropped unsent — it may hold a later version of that row's aggregate — and the next read starts again from
//!   the oldest unpublished row, once N is recorded.
//! - N+1 is read after N's last position, and only if the sendable rows up to that position are still exactly
//!   N-1's and N's ([`store::Snapshot::unpublished_after`], in one statement). A transaction that took a lower
//!   position and committed late, or an aggregate whose deferral ran out, makes that read come back empty; the
//!   next read then starts from the oldest row. Since an aggregate's later version commits only after its earlier
//!   one (its writer saw that version), a later version the read returns always has its earlier one either in N-1
//!   or N, or counted.
//! - N+1 is read in a snapshot taken before N-1's bookkeeping starts, so N-1's rows are there to be counted
//!   whenever that bookkeeping commits; N-2's was done before. N+1 starts after N's last position, so it never
//!   repeats a row in flight or unrecorded.
//! - A read from the oldest row, a shard given back and any change of the shards held wait until nothing is in
//!   flight or being recorded; a batch read ahead is sent only under the very leases it was read under.
//!
//! # Why a shard changing hands cannot reorder an aggregate
//!
//! The danger: relay A sends X.v1, Kafka is slow to take it, the shard moves to B, B sends X.v1 and X.v2, and A's
//! copy of v1 lands last — on a compacted topic, the stale v1 is what a replay then restores. The relay rules it
//! out with a barrier: every record A will ever deliver for a shard lands before any other instance can read that
//! shard.
//! - A shard leaves A only between A's batches: the lease task marks shards to give back, and this loop releases
//!   them once its batch in flight is acknowledged or abandoned and recorded, with no batch read ahead.
//! - A batch waits for acknowledgements at most until A's lease is known valid (renewed every quarter of
//!   `RELAY_LEASE_TTL_MS`, trusted for four fifths of it) and at most one lease time in all. Past that, A
//!   abandons it: the producer is dropped — purging its queue and its requests in flight, so librdkafka holds no
//!   copy it could send or retry — and a new one is built. A keeps its shards a fifth of the lease time more
//!   (the margin for bytes already on the wire), then gives every shard up and takes none until Kafka answers
//!   its metadata requests again.
//! - A lease A could not renew expires a fifth of the lease time after A stopped reading, so the new owner
//!   starts no earlier than that margin after A's abandon.
//! - A records what it published only for shards it still holds at the same epoch (a takeover bumps it), under a
//!   lock on those leases; rows of a shard that moved are sent again by the new owner: a duplicate of an earlier
//!   version, in order, never a stale version after a newer one.
//!
//! Not covered: a request already written to a TCP connection that stays open but stalls for longer than the
//! margin, then delivers. Only the broker can fence that (a transactional producer per shard whose
//! `init_transactions` fences the previous owner, with consumers reading committed records); the embedded broker
//! implements no fencing, and the barrier costs nothing in steady state (see BENCHMARKS.md).
//!
//! # Failures that concern one record
//!
//! A record Kafka refuses outright (too large, invalid) parks its aggregate for an operator; a refusal reported
//! for a record sent with others may be the whole request's, so those aggregates are first sent again one at a
//! time, and only the one refused alone is parked. A record whose topic is missing or not writable defers its
//! aggregate with a backoff. Either way the aggregate's later rows wait, and every other aggregate flows on.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::{StreamExt, stream::FuturesUnordered};
use rdkafka::producer::{DeliveryFuture, Producer as _};
use shop_platform::{backoff::Backoff, health::PartHealth, kafka::KafkaSettings, trace};
use sqlx::PgPool;
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::RelaySettings,
    heartbeat::{self, Heartbeats},
    kafka::{self, Failure, Producer},
    leases::{Assignment, Leases},
    metrics::OutboxMetrics,
    store::{self, BatchRecord, OutboxRow, Parked, Published, Watermark},
};

/// How long a batch waits for acknowledgements before the relay says, again, that Kafka is slow or away.
const SLOW_BATCH_WARNING: Duration = Duration::from_secs(10);
/// Most aggregates sent alone per pass to find which of them a whole-request refusal was about.
const SUSPECTS_PER_PASS: usize = 10;

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Rows were sent. `full` means the batch was as large as allowed: there is probably more.
    Published { delivered: usize, parked: usize, deferred: usize, retry: usize, full: bool },
    /// Nothing to publish in the shards held.
    Idle,
    /// This instance holds no usable shard (yet, or any more).
    NoShards,
    /// Kafka did not acknowledge the batch while the lease allowed waiting; its rows stay unpublished and the
    /// producer was replaced.
    Abandoned(String),
    /// Shutdown came and the grace period ran out before every acknowledgement; the unacknowledged rows stay.
    Stopped,
}

/// The pieces an [`OutboxRelay`] works with.
#[derive(Debug)]
pub struct RelayParts {
    pub outbox: String,
    pub pool: PgPool,
    pub kafka: KafkaSettings,
    pub settings: RelaySettings,
    pub leases: Arc<Leases>,
    pub wake: Arc<Notify>,
    pub metrics: OutboxMetrics,
}

/// Forwards one outbox to Kafka.
pub struct OutboxRelay {
    parts: RelayParts,
    assignment: watch::Receiver<Assignment>,
    /// `None` once broken (fatal error, abandoned batch) until the next pass builds a new one.
    producer: Option<Producer>,
    /// Aggregates refused along with others: each is sent alone next, to find the one Kafka will not take.
    suspects: HashSet<Uuid>,
    heartbeats: Heartbeats,
    /// The next batch, read while the last one was in Kafka's hands.
    ahead: Option<ReadAhead>,
    /// The last batch, acknowledged whole and sent behind by the batch read ahead, when its bookkeeping waits to
    /// run beside the next read.
    unrecorded: Option<Unrecorded>,
}

/// A batch to record, and the leases it was sent under.
struct Unrecorded {
    bookkeeper: Bookkeeper,
    leases: Vec<(i16, i64)>,
    record: BatchRecord,
}

impl Unrecorded {
    async fn record(&self) -> Result<(), sqlx::Error> {
        self.bookkeeper.record(&self.leases, &self.record).await
    }
}

/// A batch read ahead, and the leases it was read under: it is sent only under the same ones.
struct ReadAhead {
    rows: Vec<OutboxRow>,
    leases: Vec<(i16, i64)>,
    /// How long the read took, and the bookkeeping of the batch before the one in flight, beside it.
    read: Duration,
    recorded: Duration,
}

/// The batch after one in flight (whose rows end at position `after`), read in a snapshot taken before
/// `unrecorded`, the batch before, is recorded beside the read: the rows up to `after` are then both batches'
/// (`in_flight` in all) whenever that bookkeeping commits. Fails if the bookkeeping does.
async fn read_ahead(
    pool: PgPool,
    unrecorded: Option<Unrecorded>,
    shards: Vec<i16>,
    after: i64,
    in_flight: usize,
    limit: i64,
) -> anyhow::Result<ReadAhead> {
    let snapshot = store::Snapshot::take(&pool).await?;
    let recording = async {
        let started = Instant::now();
        match unrecorded {
            Some(unrecorded) => unrecorded.record().await.map(|()| started.elapsed()),
            None => Ok(Duration::ZERO),
        }
    };
    let reading = async {
        let started = Instant::now();
        let rows = snapshot.unpublished_after(&shards, after, in_flight, limit).await?;
        Ok::<_, sqlx::Error>((rows, started.elapsed()))
    };
    let (recorded, read) = tokio::join!(recording, reading);
    let (recorded, (rows, read)) = (recorded?, read?);
    Ok(ReadAhead { rows, leases: Vec::new(), read, recorded })
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay").field("outbox", &self.parts.outbox).finish_non_exhaustive()
    }
}

/// The acknowledgement of one row (by its index in the batch).
type Acknowledgement = (
    usize,
    Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
);

/// What sending a batch left: the deliveries in flight, the aggregates held back, and how many rows were not
/// sent.
#[derive(Default)]
struct Sent {
    in_flight: FuturesUnordered<IndexedDelivery>,
    parked: Vec<Parked>,
    deferred: Vec<Parked>,
    unsent: usize,
}

/// How waiting for acknowledgements ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WaitEnd {
    Complete,
    Abandoned(String),
    Stopped,
}

impl OutboxRelay {
    pub fn new(parts: RelayParts) -> anyhow::Result<Self> {
        let producer = kafka::create_producer(&parts.kafka)?;
        Ok(Self {
            assignment: parts.leases.subscribe(),
            heartbeats: Heartbeats::new(parts.settings.heartbeat_interval()),
            parts,
            producer: Some(producer),
            suspects: HashSet::new(),
            ahead: None,
            unrecorded: None,
        })
    }

    /// Publishes until `stop`; the batch in flight then gets the shutdown grace period to be acknowledged. Reports
    /// SERVING to `health` while it can publish.
    pub async fn run(mut self, stop: CancellationToken, health: PartHealth) {
        let mut backoff = Backoff::standard();
        while !stop.is_cancelled() {
            let began = Instant::now();
            match self.publish_batch(&stop).await {
                Ok(BatchOutcome::Published { full, retry: 0, .. }) => {
                    backoff.reset();
                    health.serving();
                    self.heartbeat();
                    if !full {
                        // Commits are coming in, a few at a time: gather them for the rest of the window.
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = tokio::time::sleep_until(began + self.parts.settings.batch_window()) => {}
                        }
                        self.wait_for_work(&stop).await;
                    }
                }
                Ok(BatchOutcome::Idle | BatchOutcome::NoShards) => {
                    backoff.reset();
                    health.serving();
                    self.heartbeat();
                    self.wait_for_work(&stop).await;
                }
                Ok(BatchOutcome::Published { .. }) => {
                    backoff.wait(&stop).await;
                }
                Ok(BatchOutcome::Abandoned(reason)) => {
                    health.not_serving(format!("cannot publish: {reason}"));
                    self.give_up(&reason, &stop).await;
                }
                Ok(BatchOutcome::Stopped) => break,
                Err(error) => {
                    health.not_serving(format!("a batch failed: {error}"));
                    tracing::warn!(
                        outbox = %self.parts.outbox,
                        error.cause_chain = ?error,
                        error.message = %error,
                        "A batch failed; its rows stay in the outbox and will be sent again."
                    );
                    backoff.wait(&stop).await;
                }
            }
        }
        if let Err(error) = self.drain().await {
            tracing::warn!(
                outbox = %self.parts.outbox,
                error.message = %error,
                "Failed to record the last batch; its rows stay in the outbox and will be sent again."
            );
        }
        if let Some(producer) = self.producer.take() {
            kafka::retire(producer).await;
        }
        tracing::info!(outbox = %self.parts.outbox, "The relay loop stopped.");
    }

    async fn wait_for_work(&mut self, stop: &CancellationToken) {
        let poll = self.parts.settings.poll_interval();
        let heartbeat = self.parts.settings.heartbeat_interval().unwrap_or(poll);
        let watermark = tokio::select! {
            () = stop.cancelled() => None,
            () = self.parts.wake.notified() => None,
            // Shards to give back, or new ones to read.
            _ = self.assignment.changed() => None,
            () = tokio::time::sleep(poll.min(heartbeat)) => None,
            watermark = self.heartbeats.computed() => Some(watermark),
        };
        if let Some(watermark) = watermark {
            self.publish_heartbeat(watermark);
        }
    }

    /// After an abandoned batch: keeps the shards a fifth of the lease time more (bytes already on the wire land
    /// meanwhile), gives them all up, and takes none until Kafka answers again.
    async fn give_up(&mut self, reason: &str, stop: &CancellationToken) {
        let outbox = &self.parts.outbox;
        tracing::error!(
            outbox = %outbox,
            reason,
            "Kafka did not acknowledge a batch within the lease time; giving the shards up to other instances until \
             Kafka answers again. The batch's rows stay in the outbox."
        );
        self.parts.leases.set_accepting(false);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(self.parts.settings.lease_ttl() / 5) => {}
        }
        if let Err(error) = self.parts.leases.release_all().await {
            tracing::warn!(outbox = %outbox, error.message = %error, "Failed to give the shards up; they expire instead.");
        }
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        while !kafka::reachable(&self.parts.kafka).await {
            if !backoff.wait(stop).await {
                return;
            }
        }
        tracing::info!(outbox = %outbox, "Kafka answers again; taking shards again.");
        self.parts.leases.set_accepting(true);
    }

    /// One pass: give back shards another instance should have; send suspects alone; then send a batch (read ahead
    /// during the last one, or read now) and, while Kafka acknowledges it, record the last batch and read the next
    /// side by side; sort the acknowledgements and record them, beside the next pass's read when the next batch can
    /// go out at once.
    #[tracing::instrument(name = "relay.batch", skip_all, fields(outbox = %self.parts.outbox))]
    async fn publish_batch(&mut self, stop: &CancellationToken) -> anyhow::Result<BatchOutcome> {
        if self.producer.is_none() {
            self.producer = Some(kafka::create_producer(&self.parts.kafka)?);
        }
        let ahead = self.ahead.take().filter(|ahead| {
            let assignment = self.assignment.borrow();
            ahead.leases == assignment.leases() && assignment.to_release().is_empty()
        });
        if ahead.is_none() {
            // Shards change hands, and a read starts from the oldest row, only with nothing in flight or being
            // recorded.
            self.drain().await?;
            self.release_requested().await?;
        }
        let assignment = self.assignment.borrow().clone();
        let shards = assignment.usable_shards();
        self.parts.metrics.owned_shards.set(shards.len() as i64);
        if shards.is_empty() {
            return Ok(BatchOutcome::NoShards);
        }
        let deadline = Instant::now() + self.parts.settings.lease_ttl();
        if let Some(ended) = self.isolate_suspects(&assignment, deadline, stop).await? {
            return Ok(ended);
        }

        let limit = i64::from(self.parts.settings.batch_size);
        let (rows, read) = match ahead {
            Some(ahead) => (ahead.rows, ahead.read),
            None => {
                let started = Instant::now();
                (store::unpublished(&self.parts.pool, &shards, limit).await?, started.elapsed())
            }
        };
        let Some(last) = rows.last() else { return Ok(BatchOutcome::Idle) };
        let full = rows.len() as i64 == limit;
        let suspects = self.suspects.clone();
        // While this batch is sent and acknowledged, the last one is recorded and the next one read, on a task of
        // its own: handing a batch to the producer keeps this one busy for milliseconds, and the database work
        // should be in Postgres's hands meanwhile.
        let next = full.then(|| {
            let (pool, unrecorded) = (self.parts.pool.clone(), self.unrecorded.take());
            let in_flight = rows.len() + unrecorded.as_ref().map_or(0, |last| last.record.delivered.len());
            tokio::spawn(read_ahead(pool, unrecorded, shards, last.position, in_flight, limit))
        });
        if next.is_some() {
            // A task spawned here waits in this worker's slot for the next task to run, which nothing steals:
            // without this yield the read would start only once the whole batch is handed over.
            tokio::task::yield_now().await;
        }
        let sending = Instant::now();
        let ((sent, acknowledgements, ended, acknowledged), next) = tokio::join!(
            async {
                let mut sent = self.send(&rows, &suspects).await;
                let in_flight = std::mem::take(&mut sent.in_flight);
                self.parts.metrics.in_flight.set(in_flight.len() as i64);
                let (acknowledgements, ended) = self.await_acknowledgements(in_flight, deadline, stop).await;
                (sent, acknowledgements, ended, sending.elapsed())
            },
            async {
                match next {
                    Some(next) => Some(next.await.map_err(anyhow::Error::from).and_then(|read| read)),
                    None => None,
                }
            }
        );
        self.parts.metrics.in_flight.set(0);
        let mut record = BatchRecord { parked: sent.parked, deferred: sent.deferred, ..Default::default() };
        let retry = sent.unsent + self.sort_acknowledgements(&rows, acknowledgements, &mut record);

        // The next batch goes out only behind one Kafka took whole: had a row failed, the next batch could carry a
        // later version of its aggregate. Otherwise it is dropped, and read again from the oldest row.
        let complete = ended == WaitEnd::Complete
            && retry == 0
            && record.parked.is_empty()
            && record.deferred.is_empty();
        let (next, failed_read) = match next {
            Some(Ok(next)) if complete && !next.rows.is_empty() => (Some(next), None),
            Some(Err(error)) => (None, Some(error)),
            _ => (None, None),
        };
        let outcome = match ended {
            WaitEnd::Complete => BatchOutcome::Published {
                delivered: record.delivered.len(),
                parked: record.parked.len(),
                deferred: record.deferred.len(),
                retry,
                full,
            },
            WaitEnd::Abandoned(reason) => BatchOutcome::Abandoned(reason),
            WaitEnd::Stopped => BatchOutcome::Stopped,
        };
        if let Some(error) = failed_read {
            // The read ahead failed, perhaps in the last batch's bookkeeping: this batch is left unrecorded too, so
            // that should the last batch's rows go out again, this one's go out again after them.
            return Err(error);
        }
        let unrecorded =
            Unrecorded { bookkeeper: self.bookkeeper(), leases: assignment.leases().to_vec(), record };
        if let Some(next) = next {
            self.report(&rows, &unrecorded.record, retry, [read, acknowledged, next.recorded]);
            // Sent next; this one is recorded beside the read of the batch after it.
            self.unrecorded = Some(unrecorded);
            self.ahead = Some(ReadAhead { leases: assignment.leases().to_vec(), ..next });
        } else {
            let recording = Instant::now();
            self.drain().await?;
            unrecorded.record().await?;
            self.report(&rows, &unrecorded.record, retry, [read, acknowledged, recording.elapsed()]);
        }
        Ok(outcome)
    }

    /// Records the last batch, if it waits to be; then nothing of this instance's is in flight or unrecorded.
    async fn drain(&mut self) -> anyhow::Result<()> {
        if let Some(unrecorded) = self.unrecorded.take() {
            unrecorded.record().await?;
        }
        Ok(())
    }

    /// Gives back the shards the lease task marked for another instance; nothing of this instance's is in flight.
    async fn release_requested(&mut self) -> Result<(), sqlx::Error> {
        let to_release = self.assignment.borrow().to_release().to_vec();
        if !to_release.is_empty() {
            self.parts.leases.release(&to_release).await?;
        }
        Ok(())
    }

    /// Sends the first row of each suspect aggregate alone, so a refusal can be pinned on its own record. Returns
    /// how the pass ended if it could not go on.
    async fn isolate_suspects(
        &mut self,
        assignment: &Assignment,
        deadline: Instant,
        stop: &CancellationToken,
    ) -> anyhow::Result<Option<BatchOutcome>> {
        let suspects: Vec<Uuid> = self
            .suspects
            .iter()
            .copied()
            .filter(|aggregate| assignment.holds(store::shard_of(*aggregate)))
            .take(SUSPECTS_PER_PASS)
            .collect();
        for aggregate in suspects {
            let Some(row) = store::first_unpublished(&self.parts.pool, aggregate).await? else {
                self.suspects.remove(&aggregate);
                continue;
            };
            let rows = [row];
            let sent = self.send(&rows, &HashSet::new()).await;
            let (acknowledgements, ended) = self.await_acknowledgements(sent.in_flight, deadline, stop).await;
            let mut record =
                BatchRecord { parked: sent.parked, deferred: sent.deferred, ..Default::default() };
            for (index, acknowledgement) in acknowledgements {
                match acknowledgement {
                    Ok(Ok(_)) => record.delivered.push(Published::of(&rows[index])),
                    Ok(Err((error, _))) => match kafka::classify(&error) {
                        // Sent alone: the refusal is this record's.
                        Failure::Refused(reason) => record.parked.push(Parked::at(&rows[index], reason)),
                        Failure::Unroutable(reason) => record.deferred.push(Parked::at(&rows[index], reason)),
                        Failure::Fatal(reason) => self.break_producer(&reason),
                        Failure::QueueFull | Failure::Transient(_) => {}
                    },
                    Err(_canceled) => {}
                }
            }
            if !record.delivered.is_empty() || !record.parked.is_empty() || !record.deferred.is_empty() {
                self.suspects.remove(&aggregate);
            }
            self.bookkeeper().record(assignment.leases(), &record).await?;
            match ended {
                WaitEnd::Complete => {}
                WaitEnd::Abandoned(reason) => return Ok(Some(BatchOutcome::Abandoned(reason))),
                WaitEnd::Stopped => return Ok(Some(BatchOutcome::Stopped)),
            }
        }
        Ok(None)
    }

    /// Hands every row to the producer, in outbox order, skipping the aggregates of `held_back` (suspects, sent
    /// alone first). A refusal or a missing topic holds back the row's aggregate (its later rows are not sent); a
    /// failure of the producer or the broker stops the batch there, so nothing is sent ahead of a row that will be
    /// sent again.
    async fn send(&mut self, rows: &[OutboxRow], held_back: &HashSet<Uuid>) -> Sent {
        let mut sent = Sent::default();
        let Some(producer) = self.producer.clone() else {
            sent.unsent = rows.len();
            return sent;
        };
        let mut blocked: HashSet<Uuid> = held_back.clone();
        // The topic of the last row, and its name on the cluster.
        let mut last_topic: Option<(&str, String)> = None;
        for (index, row) in rows.iter().enumerate() {
            if blocked.contains(&row.aggregate_id) {
                continue;
            }
            // No allocation per row for the topic and key: rows of a batch mostly share a topic.
            let topic = match &mut last_topic {
                Some((name, on_cluster)) if *name == row.topic => on_cluster.as_str(),
                last_topic => &last_topic.insert((&row.topic, self.parts.kafka.topic(&row.topic))).1,
            };
            let mut key = Uuid::encode_buffer();
            let key = row.aggregate_id.hyphenated().encode_lower(&mut key);
            let span = trace::send_span(topic, key, || row.trace());
            let mut record = kafka::record(row, topic, key, trace::context_of(&span).as_ref());
            loop {
                let error = match producer.send_result(record) {
                    Ok(delivery) => {
                        sent.in_flight.push(IndexedDelivery { index, delivery, span });
                        break;
                    }
                    Err((error, returned)) => {
                        record = returned;
                        error
                    }
                };
                let failure = kafka::classify(&error);
                match failure {
                    Failure::QueueFull => {
                        // The producer drains its queue on its own thread; give it a moment.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Failure::Refused(reason) => {
                        blocked.insert(row.aggregate_id);
                        sent.parked.push(Parked::at(row, reason));
                        break;
                    }
                    Failure::Unroutable(reason) => {
                        blocked.insert(row.aggregate_id);
                        sent.deferred.push(Parked::at(row, reason));
                        break;
                    }
                    Failure::Fatal(ref reason) | Failure::Transient(ref reason) => {
                        // A fatal state can surface on enqueue under another code; the client knows it is in one.
                        if matches!(failure, Failure::Fatal(_)) || producer.client().fatal_error().is_some() {
                            self.break_producer(reason);
                        }
                        tracing::warn!(outbox = %self.parts.outbox, reason, "Kafka would not take a record; the rest of the batch waits.");
                        sent.unsent = rows.len() - index;
                        return sent;
                    }
                }
            }
        }
        sent
    }

    /// Waits for every acknowledgement, warning every [`SLOW_BATCH_WARNING`] while Kafka is slow or away. Gives
    /// up — abandoning the rest and replacing the producer — when the lease can no longer be trusted or one lease
    /// time has passed (`deadline`), or when stopping and the grace period ran out.
    async fn await_acknowledgements(
        &mut self,
        mut in_flight: FuturesUnordered<IndexedDelivery>,
        deadline: Instant,
        stop: &CancellationToken,
    ) -> (Vec<Acknowledgement>, WaitEnd) {
        let mut acknowledgements = Vec::with_capacity(in_flight.len());
        let waiting_since = Instant::now();
        let mut next_warning = waiting_since + SLOW_BATCH_WARNING;
        let mut stopping_at: Option<Instant> = None;
        let mut check = tokio::time::interval(Duration::from_millis(100));
        while !in_flight.is_empty() {
            tokio::select! {
                biased;
                Some(acknowledgement) = in_flight.next() => {
                    acknowledgements.push(acknowledgement);
                    continue;
                }
                () = stop.cancelled(), if stopping_at.is_none() => {
                    stopping_at = Some(Instant::now() + self.parts.settings.shutdown_grace());
                    tracing::info!(outbox = %self.parts.outbox, in_flight = in_flight.len(), "Stopping: waiting for the batch in flight.");
                }
                _ = check.tick() => {}
            }
            let now = Instant::now();
            let lease_lapsing = self.assignment.borrow().valid_until().is_none_or(|until| now >= until);
            let end = if stopping_at.is_some_and(|at| now >= at) {
                Some(WaitEnd::Stopped)
            } else if now >= deadline || lease_lapsing {
                let why = if lease_lapsing {
                    "the shard leases could not be renewed"
                } else {
                    "no acknowledgement within the lease time"
                };
                Some(WaitEnd::Abandoned(why.to_owned()))
            } else {
                None
            };
            if let Some(end) = end {
                tracing::warn!(
                    outbox = %self.parts.outbox,
                    unacknowledged = in_flight.len(),
                    ?end,
                    "Abandoned the rest of the batch; those rows stay in the outbox and will be sent again."
                );
                self.break_producer("a batch was abandoned");
                return (acknowledgements, end);
            }
            if now >= next_warning {
                tracing::warn!(
                    outbox = %self.parts.outbox,
                    unacknowledged = in_flight.len(),
                    waiting_secs = waiting_since.elapsed().as_secs(),
                    "Kafka has not acknowledged the batch yet; is the broker reachable? The rows stay in the outbox."
                );
                next_warning += SLOW_BATCH_WARNING;
            }
        }
        (acknowledgements, if stopping_at.is_some() { WaitEnd::Stopped } else { WaitEnd::Complete })
    }

    /// Sorts the acknowledgements into `record`; returns how many rows are to be sent again.
    fn sort_acknowledgements(
        &mut self,
        rows: &[OutboxRow],
        acknowledgements: Vec<Acknowledgement>,
        record: &mut BatchRecord,
    ) -> usize {
        let now = chrono::Utc::now();
        let mut retry = 0;
        let mut held_back: HashSet<Uuid> =
            record.parked.iter().chain(&record.deferred).map(|parked| parked.aggregate_id).collect();
        for (index, acknowledgement) in acknowledgements {
            let row = &rows[index];
            let error = match acknowledgement {
                Ok(Ok(_)) => {
                    record.delivered.push(Published::of(row));
                    let latency = (now - row.occurred_at).to_std().unwrap_or_default();
                    self.parts.metrics.publish_latency.observe(latency.as_secs_f64());
                    continue;
                }
                Ok(Err((error, _))) => error,
                Err(_canceled) => {
                    retry += 1;
                    continue;
                }
            };
            retry += 1;
            match kafka::classify(&error) {
                // Reported for a record sent with others: perhaps the whole request's. Send it alone next.
                Failure::Refused(_) => {
                    self.suspects.insert(row.aggregate_id);
                }
                Failure::Unroutable(reason) if held_back.insert(row.aggregate_id) => {
                    record.deferred.push(Parked::at(row, reason));
                }
                Failure::Fatal(reason) => self.break_producer(&reason),
                Failure::Unroutable(_) | Failure::QueueFull | Failure::Transient(_) => {}
            }
        }
        retry
    }

    fn bookkeeper(&self) -> Bookkeeper {
        Bookkeeper {
            pool: self.parts.pool.clone(),
            outbox: self.parts.outbox.clone(),
            instance_id: self.parts.leases.instance_id(),
            keep_published: self.parts.settings.retention_secs > 0,
        }
    }

    /// Counts and logs a batch. The times: its read (overlapped with the last batch's Kafka wait when read ahead),
    /// its sending until the last acknowledgement, and the bookkeeping of the last batch (beside the read ahead)
    /// or its own.
    fn report(
        &self,
        rows: &[OutboxRow],
        record: &BatchRecord,
        retry: usize,
        [read, kafka, bookkeeping]: [Duration; 3],
    ) {
        let metrics = &self.parts.metrics;
        metrics.batches.inc();
        metrics.published.inc_by(record.delivered.len() as u64);
        metrics.parked_events.inc_by(record.parked.len() as u64);
        metrics.failed_deliveries.inc_by(retry as u64);
        for parked in &record.parked {
            tracing::error!(
                outbox = %self.parts.outbox,
                aggregate_id = %parked.aggregate_id,
                position = parked.position,
                reason = %parked.reason,
                "Kafka refused an event for good; its aggregate is parked until an operator fixes the row and \
                 deletes its outbox_parked entry. Other aggregates flow on."
            );
        }
        for deferred in &record.deferred {
            tracing::warn!(
                outbox = %self.parts.outbox,
                aggregate_id = %deferred.aggregate_id,
                reason = %deferred.reason,
                "Kafka cannot take an event now for its topic's sake; its aggregate waits and is tried again with \
                 backoff. Other aggregates flow on."
            );
        }
        tracing::info!(
            outbox = %self.parts.outbox,
            read = rows.len(),
            delivered = record.delivered.len(),
            parked = record.parked.len(),
            deferred = record.deferred.len(),
            retry,
            read_ms = read.as_millis() as u64,
            kafka_ms = kafka.as_millis() as u64,
            record_ms = bookkeeping.as_millis() as u64,
            "Published a batch."
        );
    }

    /// Drops the producer (off the async workers) so the next pass builds a new one: after a fatal error, or to
    /// purge an abandoned batch.
    fn break_producer(&mut self, reason: &str) {
        if let Some(producer) = self.producer.take() {
            tracing::warn!(outbox = %self.parts.outbox, reason, "Replacing the Kafka producer.");
            self.parts.metrics.producers_replaced.inc();
            tokio::spawn(kafka::retire(producer));
        }
    }

    /// Publishes the outbox's heartbeat if its watermark is computed, and starts computing the next one when it is
    /// due and this instance speaks for the outbox (it holds shard 0).
    fn heartbeat(&mut self) {
        if let Some(watermark) = self.heartbeats.ready() {
            self.publish_heartbeat(watermark);
        }
        if self.assignment.borrow().holds(0) {
            self.heartbeats.start_if_due(&self.parts.pool);
        }
    }

    fn publish_heartbeat(&self, watermark: anyhow::Result<Watermark>) {
        match (watermark, &self.producer) {
            (Ok(watermark), Some(producer)) => heartbeat::publish(&self.parts, producer, watermark),
            (Ok(_), None) => {}
            (Err(error), _) => {
                tracing::warn!(outbox = %self.parts.outbox, error.message = %error, "Failed to compute the heartbeat.")
            }
        }
    }
}

/// What recording a batch needs, owned, so it can run on while the next batch is sent.
struct Bookkeeper {
    pool: PgPool,
    outbox: String,
    instance_id: Uuid,
    keep_published: bool,
}

impl Bookkeeper {
    /// Records `batch` for the shards still held under `leases`, and says which were lost.
    async fn record(&self, leases: &[(i16, i64)], batch: &BatchRecord) -> Result<(), sqlx::Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let lost =
            store::record_batch(&self.pool, self.instance_id, leases, batch, self.keep_published).await?;
        if !lost.is_empty() {
            tracing::warn!(
                outbox = %self.outbox,
                shards = ?lost,
                "Shards moved to another instance during the batch; their rows are left to it (it sends them again)."
            );
        }
        Ok(())
    }
}

/// A delivery future that remembers which row it is for.
struct IndexedDelivery {
    index: usize,
    delivery: DeliveryFuture,
    /// The record's send span (see [`trace::send_span`]): it ends with the acknowledgement, or when the batch is
    /// abandoned.
    span: tracing::Span,
}

impl std::future::Future for IndexedDelivery {
    type Output = Acknowledgement;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let index = self.index;
        let acknowledgement = std::pin::Pin::new(&mut self.delivery).poll(cx);
        // Only a traced send has anything to record (no allocation per row otherwise).
        if let std::task::Poll::Ready(result) = &acknowledgement
            && !self.span.is_disabled()
        {
            match result {
                Ok(Ok(delivery)) => {
                    self.span.record("messaging.destination.partition.id", delivery.partition.to_string());
                    self.span.record("messaging.kafka.offset", delivery.offset);
                }
                Ok(Err((error, _))) => trace::record_error(&self.span, error),
                Err(canceled) => trace::record_error(&self.span, canceled),
            }
        }
        acknowledgement.map(|result| (index, result))
    }
}
