//! Sharing one outbox between relay instances.
//!
//! An outbox's aggregates are spread over [`SHARD_COUNT`] shards (by aggregate id). Each live instance holds a
//! fair share of the shards under a lease it renews every quarter of the lease time, and reads only the rows of
//! its shards, so one aggregate is published by one instance at a time. An instance that dies stops renewing; its
//! shards expire and the others take them over. An instance that cannot renew (its database is away) stops
//! reading its shards before the lease can expire, so two instances never knowingly read the same shard.
//!
//! Leases are for sharing work, not for safety: the outbox itself keeps every row until Kafka acknowledged it,
//! and every read starts again from the oldest unpublished row, so even two instances reading the same shard (a
//! paused process waking after its lease moved) produce duplicates at worst, never a reordered or missing event.

use std::time::Duration;

use shop_outbox::SHARD_COUNT;
use sqlx::PgPool;
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The shards an instance holds, and until when it may read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    shards: Vec<i16>,
    valid_until: Option<Instant>,
}

impl Assignment {
    /// The shards this instance may read now: none once its leases could not be renewed in time.
    pub fn usable_shards(&self) -> &[i16] {
        match self.valid_until {
            Some(until) if Instant::now() < until => &self.shards,
            _ => &[],
        }
    }

    /// Every shard held, whether or not the lease is still known to be valid.
    pub fn shards(&self) -> &[i16] {
        &self.shards
    }
}

/// One instance's leases on one outbox.
#[derive(Debug)]
pub struct Leases {
    pool: PgPool,
    outbox: String,
    instance_id: Uuid,
    ttl: Duration,
    assignment: watch::Sender<Assignment>,
}

impl Leases {
    pub fn new(pool: PgPool, outbox: String, instance_id: Uuid, ttl: Duration) -> Self {
        Self { pool, outbox, instance_id, ttl, assignment: watch::Sender::new(Assignment::default()) }
    }

    /// The current assignment, updated on every renewal.
    pub fn subscribe(&self) -> watch::Receiver<Assignment> {
        self.assignment.subscribe()
    }

    /// One round: heartbeat, renew the shards held, then take or give back shards so that every live instance
    /// holds its fair share (64 / live instances, rounded up).
    pub async fn refresh(&self) -> Result<Assignment, sqlx::Error> {
        let started = Instant::now();
        let ttl_secs = self.ttl.as_secs_f64();
        let mut transaction = self.pool.begin().await?;

        sqlx::query(
            "INSERT INTO outbox_relay_instances (instance_id, hostname, started_at, heartbeat_at)
             VALUES ($1, $2, now(), now())
             ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()",
        )
        .bind(self.instance_id)
        .bind(hostname())
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "DELETE FROM outbox_relay_instances WHERE heartbeat_at < now() - make_interval(secs => $1 * 3)",
        )
        .bind(ttl_secs)
        .execute(&mut *transaction)
        .await?;

        // Shards still ours; a shard that expired and moved to another instance is no longer returned.
        let mut held: Vec<i16> = sqlx::query_scalar(
            "UPDATE outbox_relay_shards SET lease_expires_at = now() + make_interval(secs => $2)
             WHERE owner = $1 RETURNING shard",
        )
        .bind(self.instance_id)
        .bind(ttl_secs)
        .fetch_all(&mut *transaction)
        .await?;
        let lost: Vec<i16> =
            self.assignment.borrow().shards.iter().filter(|shard| !held.contains(shard)).copied().collect();
        if !lost.is_empty() {
            tracing::warn!(outbox = %self.outbox, shards = ?lost, "Lost shards whose leases expired before renewal.");
        }

        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox_relay_instances WHERE heartbeat_at > now() - make_interval(secs => $1)",
        )
        .bind(ttl_secs)
        .fetch_one(&mut *transaction)
        .await?;
        let fair_share = (i64::from(SHARD_COUNT) + live.max(1) - 1) / live.max(1);

        let held_count = held.len() as i64;
        if held_count < fair_share {
            let acquired: Vec<(i16, i64)> = sqlx::query_as(
                "UPDATE outbox_relay_shards
                 SET owner = $1, epoch = epoch + 1, lease_expires_at = now() + make_interval(secs => $2)
                 WHERE shard IN (
                     SELECT shard FROM outbox_relay_shards
                     WHERE owner IS NULL OR lease_expires_at < now()
                     ORDER BY shard
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING shard, epoch",
            )
            .bind(self.instance_id)
            .bind(ttl_secs)
            .bind(fair_share - held_count)
            .fetch_all(&mut *transaction)
            .await?;
            if !acquired.is_empty() {
                tracing::info!(outbox = %self.outbox, shards = ?acquired, "Took over shards (shard, epoch).");
            }
            held.extend(acquired.into_iter().map(|(shard, _)| shard));
        } else if held_count > fair_share {
            held.sort_unstable();
            let released = held.split_off(fair_share as usize);
            sqlx::query(
                "UPDATE outbox_relay_shards SET owner = NULL, lease_expires_at = '-infinity'
                 WHERE owner = $1 AND shard = ANY($2)",
            )
            .bind(self.instance_id)
            .bind(&released)
            .execute(&mut *transaction)
            .await?;
            tracing::info!(outbox = %self.outbox, shards = ?released, live_instances = live, "Gave shards back for another instance.");
        }
        transaction.commit().await?;

        held.sort_unstable();
        // Stop reading a fifth of the lease time early, so the leases cannot lapse while a read is under way.
        let assignment = Assignment { shards: held, valid_until: Some(started + self.ttl - self.ttl / 5) };
        self.assignment.send_replace(assignment.clone());
        Ok(assignment)
    }

    /// Renews every quarter of the lease time until `stop`.
    pub async fn run(&self, stop: CancellationToken) {
        let mut interval = tokio::time::interval(self.ttl / 4);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            if let Err(error) = self.refresh().await {
                tracing::warn!(
                    outbox = %self.outbox,
                    error.message = %error,
                    "Failed to renew the shard leases; reading stops when they run out, and resumes on renewal."
                );
            }
        }
    }

    /// Gives every shard back and leaves, so other instances take over at once rather than after the lease time.
    pub async fn release_all(&self) -> Result<(), sqlx::Error> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "UPDATE outbox_relay_shards SET owner = NULL, lease_expires_at = '-infinity' WHERE owner = $1",
        )
        .bind(self.instance_id)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM outbox_relay_instances WHERE instance_id = $1")
            .bind(self.instance_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        self.assignment.send_replace(Assignment::default());
        Ok(())
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_is_usable_only_until_it_expires() {
        let fresh =
            Assignment { shards: vec![1, 2], valid_until: Some(Instant::now() + Duration::from_secs(60)) };
        let stale =
            Assignment { shards: vec![1, 2], valid_until: Some(Instant::now() - Duration::from_millis(1)) };

        assert_eq!(fresh.usable_shards(), [1, 2]);
        assert!(stale.usable_shards().is_empty());
        assert!(Assignment::default().usable_shards().is_empty());
    }
}
