//! Everything one outbox needs, running side by side: the publishing loop, the shard leases, the commit listener
//! that wakes the loop, and housekeeping (backlog metrics, retention clean-up).

use std::{sync::Arc, time::Duration};

use shop_outbox::NOTIFY_CHANNEL;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{leases::Leases, metrics::OutboxMetrics, relay::OutboxRelay, store};

/// How often backlog figures are refreshed and old published rows deleted.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(5);
/// Rows deleted per statement by the retention clean-up.
const DELETE_BATCH: i64 = 10_000;

/// One outbox's relay, ready to run.
#[derive(Debug)]
pub struct OutboxWorker {
    pub(crate) outbox: String,
    pub(crate) pool: PgPool,
    pub(crate) leases: Leases,
    pub(crate) relay: OutboxRelay,
    pub(crate) wake: Arc<Notify>,
    pub(crate) metrics: OutboxMetrics,
    pub(crate) retention: Duration,
}

impl OutboxWorker {
    /// Runs until `stop`: the publishing loop finishes (or abandons) its batch first, then the shards are given
    /// back so other instances take over at once.
    pub async fn run(self, stop: CancellationToken) {
        let helpers = stop.child_token();
        let leases = Arc::new(self.leases);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn({
            let (leases, stop) = (leases.clone(), helpers.clone());
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
            self.metrics,
            self.retention,
            helpers.clone(),
        ));

        self.relay.run(stop).await;

        helpers.cancel();
        while tasks.join_next().await.is_some() {}
        match leases.release_all().await {
            Ok(()) => tracing::info!(outbox = %self.outbox, "Gave the shards back."),
            Err(error) => tracing::warn!(
                outbox = %self.outbox,
                error.message = %error,
                "Failed to give the shards back; other instances take them when the leases expire."
            ),
        }
    }
}

/// Wakes the publishing loop on every committed outbox write. After a lost connection it reconnects and wakes
/// the loop anyway, since notifications sent meanwhile are lost.
async fn listen_for_commits(pool: PgPool, outbox: String, wake: Arc<Notify>, stop: CancellationToken) {
    let mut pause = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let mut listener = match connect_listener(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%outbox, error.message = %error, "Failed to listen for outbox commits; polling meanwhile.");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        pause = Duration::from_millis(100);
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
    let mut interval = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        match store::backlog(&pool).await {
            Ok(backlog) => {
                metrics.backlog.set(backlog.unpublished);
                metrics.oldest_age.set(backlog.oldest_age_secs);
                metrics.parked_aggregates.set(backlog.parked);
            }
            Err(error) => {
                tracing::warn!(%outbox, error.message = %error, "Failed to measure the outbox backlog.")
            }
        }
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
