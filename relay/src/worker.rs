//! Everything one outbox needs, running side by side: the publishing loop, the shard leases, the commit listener
//! that wakes the loop, and housekeeping (backlog metrics, retention clean-up).

use std::{sync::Arc, time::Duration};

use shop_outbox::NOTIFY_CHANNEL;
use shop_platform::{backoff::Backoff, kafka::KafkaSettings, supervisor::Part};
use sqlx::{PgPool, postgres::PgListener};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    config::RelaySettings,
    leases::Leases,
    metrics::OutboxMetrics,
    pacing,
    relay::{OutboxRelay, RelayParts},
    store,
};

/// How often backlog figures are refreshed and old published rows deleted (less often while counting the backlog
/// is costly: see `pacing`).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(5);
/// Rows deleted per statement by the retention clean-up.
const DELETE_BATCH: i64 = 10_000;

/// One outbox's relay, ready to run (and to run again, should it fail).
#[derive(Debug, Clone)]
pub struct OutboxWorker {
    pub(crate) outbox: String,
    pub(crate) pool: PgPool,
    pub(crate) kafka: KafkaSettings,
    pub(crate) settings: RelaySettings,
    pub(crate) leases: Arc<Leases>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) metrics: OutboxMetrics,
}

impl OutboxWorker {
    /// Runs until `part.stop`: the publishing loop finishes (or abandons) its batch first, then the shards are given
    /// back so other instances take over at once. Each run starts a new producer.
    pub async fn run(&self, part: Part) -> anyhow::Result<()> {
        let relay = OutboxRelay::new(RelayParts {
            outbox: self.outbox.clone(),
            pool: self.pool.clone(),
            kafka: self.kafka.clone(),
            settings: self.settings.clone(),
            leases: self.leases.clone(),
            wake: self.wake.clone(),
            metrics: self.metrics.clone(),
        })?;
        let helpers = part.stop.child_token();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn({
            let (leases, stop) = (self.leases.clone(), helpers.clone());
            async move { leases.run(stop).await }
        });
        tasks.spawn(listen_for_commits(
            self.pool.clone(),
            self.outbox.clone(),
            self.wake.clone(),
            helpers.clone(),
        ));
        tasks.spawn(housekeeping(
            self.pool.clone(),
            self.outbox.clone(),
            self.metrics.clone(),
            self.settings.retention(),
            helpers.clone(),
        ));

        relay.run(part.stop.clone(), part.health).await;

        helpers.cancel();
        while tasks.join_next().await.is_some() {}
        match self.leases.release_all().await {
            Ok(()) => tracing::info!(outbox = %self.outbox, "Gave the shards back."),
            Err(error) => tracing::warn!(
                outbox = %self.outbox,
                error.message = %error,
                "Failed to give the shards back; other instances take them when the leases expire."
            ),
        }
        Ok(())
    }
}

/// Wakes the publishing loop on every committed outbox write. After a lost connection it reconnects and wakes
/// the loop anyway, since notifications sent meanwhile are lost.
async fn listen_for_commits(pool: PgPool, outbox: String, wake: Arc<Notify>, stop: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !stop.is_cancelled() {
        let mut listener = match connect_listener(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%outbox, error.message = %error, "Failed to listen for outbox commits; polling meanwhile.");
                backoff.wait(&stop).await;
                continue;
            }
        };
        backoff.reset();
        wake.notify_one();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                notification = listener.try_recv() => match notification {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection dropped; the next call reconnects. Catch up on what may have been missed.
                    Ok(None) => wake.notify_one(),
                    Err(error) => {
                        tracing::warn!(%outbox, error.message = %error, "Lost the outbox commit listener; reconnecting.");
                        break;
                    }
                }
            }
        }
    }
}

async fn connect_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

/// Keeps the backlog gauges fresh and, with a retention, deletes old published rows.
async fn housekeeping(
    pool: PgPool,
    outbox: String,
    metrics: OutboxMetrics,
    retention: Duration,
    stop: CancellationToken,
) {
    let mut pause = Duration::ZERO;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        let started = Instant::now();
        match store::backlog(&pool).await {
            Ok(backlog) => {
                metrics.backlog.set(backlog.unpublished);
                metrics.oldest_age.set(backlog.oldest_age_secs);
                metrics.parked_aggregates.set(backlog.parked);
                metrics.deferred_aggregates.set(backlog.deferred);
            }
            Err(error) => {
                tracing::warn!(%outbox, error.message = %error, "Failed to measure the outbox backlog.")
            }
        }
        pause = pacing::pause_after(HOUSEKEEPING_INTERVAL, started.elapsed());
        if retention > Duration::ZERO {
            match store::delete_published(&pool, retention, DELETE_BATCH).await {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::info!(%outbox, deleted, "Deleted published rows past their retention.")
                }
                Err(error) => {
                    tracing::warn!(%outbox, error.message = %error, "Failed to delete old published rows.")
                }
            }
        }
    }
}
