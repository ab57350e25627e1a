//! Sharing one outbox between relay instances.
//!
//! An outbox's aggregates are spread over [`SHARD_COUNT`] shards (by aggregate id). Each live instance holds a
//! fair share of the shards under a lease it renews every quarter of the lease time, and reads only the rows of
//! its shards, so one aggregate is published by one instance at a time. Every new holder of a shard gets a higher
//! epoch; the relay records what it published only for shards it still holds at the epoch it read them under.
//!
//! Shards change hands only at safe points:
//! - An instance that should give shards back (another instance joined) does not release them here: it marks them
//!   in its [`Assignment`], and the publishing loop releases them between two batches, once its batch in flight is
//!   acknowledged or abandoned (see the relay's module docs for why that matters).
//! - An instance that cannot renew (its database is away) stops reading its shards a fifth of the lease time
//!   before they can expire, and abandons a batch still in flight by then.
//! - An instance that cannot publish stops taking shards ([`Leases::set_accepting`]) until it can again.
//!
//! Every statement that locks several shard rows locks them in shard order (`ORDER BY shard FOR UPDATE`, or `FOR
//! SHARE` in the relay's bookkeeping): the lease renewal and the bookkeeping run side by side on the same rows,
//! and locked in whatever order their scans met them they deadlocked now and then, which cost the batch a second
//! (Postgres's `deadlock_timeout`) and a retry.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use shop_outbox::SHARD_COUNT;
use sqlx::{PgPool, PgTransaction};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The shards an instance holds, and until when it may read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Each shard held, with the epoch of this instance's lease on it.
    leases: Vec<(i16, i64)>,
    /// Until when the leases are known to be valid.
    valid_until: Option<Instant>,
    /// Shards to give back to other instances at the next safe point.
    to_release: Vec<i16>,
}

impl Assignment {
    /// The shards this instance may read now: none once its leases could not be renewed in time.
    pub fn usable_shards(&self) -> Vec<i16> {
        if self.is_valid() { self.shards() } else { Vec::new() }
    }

    /// Every shard held, whether or not the lease is still known to be valid.
    pub fn shards(&self) -> Vec<i16> {
        self.leases.iter().map(|(shard, _)| *shard).collect()
    }

    /// Every shard held, with its lease's epoch.
    pub fn leases(&self) -> &[(i16, i64)] {
        &self.leases
    }

    /// Until when the leases are known to be valid; a batch must be done or abandoned by then.
    pub fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }

    /// Whether this instance holds `shard` under a valid lease.
    pub fn holds(&self, shard: i16) -> bool {
        self.is_valid() && self.leases.iter().any(|(held, _)| *held == shard)
    }

    /// Shards another instance should have, to give back between batches.
    pub fn to_release(&self) -> &[i16] {
        &self.to_release
    }

    fn is_valid(&self) -> bool {
        self.valid_until.is_some_and(|until| Instant::now() < until)
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
    /// Whether to take shards: off while this instance cannot publish.
    accepting: AtomicBool,
}

impl Leases {
    pub fn new(pool: PgPool, outbox: String, instance_id: Uuid, ttl: Duration) -> Self {
        Self {
            pool,
            outbox,
            instance_id,
            ttl,
            assignment: watch::Sender::new(Assignment::default()),
            accepting: AtomicBool::new(true),
        }
    }

    pub fn instance_id(&self) -> Uuid {
        self.instance_id
    }

    /// The current assignment, updated on every renewal.
    pub fn subscribe(&self) -> watch::Receiver<Assignment> {
        self.assignment.subscribe()
    }

    /// Whether to take shards at the next renewals. Off, the instance keeps renewing what it holds (if anything),
    /// takes nothing more, and no longer counts as a live instance, so the others share every shard.
    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.store(accepting, Ordering::Relaxed);
    }

    /// One round: heartbeat, renew the shards held, then take shards up to this instance's fair share (64 / live
    /// instances, rounded up), or mark those beyond it for release.
    pub async fn refresh(&self) -> Result<Assignment, sqlx::Error> {
        let started = Instant::now();
        let mut transaction = self.pool.begin().await?;
        let live = self.beat(&mut transaction).await?;
        let mut held = self.renew(&mut transaction).await?;
        let fair_share = (SHARD_COUNT as usize).div_ceil(live);
        if held.len() < fair_share && self.accepting.load(Ordering::Relaxed) {
            held.extend(self.acquire(&mut transaction, fair_share - held.len()).await?);
        }
        transaction.commit().await?;

        held.sort_unstable();
        let to_release = held.iter().skip(fair_share).map(|(shard, _)| *shard).collect();
        // Stop reading a fifth of the lease time early, so the leases cannot lapse while a read is under way.
        let assignment =
            Assignment { leases: held, valid_until: Some(started + self.ttl - self.ttl / 5), to_release };
        self.assignment.send_replace(assignment.clone());
        Ok(assignment)
    }

    /// Says this instance is alive (or, while it takes no shards, that it does not count), forgets instances silent
    /// for three lease times, and counts the live ones.
    async fn beat(&self, transaction: &mut PgTransaction<'_>) -> Result<usize, sqlx::Error> {
        let ttl_secs = self.ttl.as_secs_f64();
        let statement = if self.accepting.load(Ordering::Relaxed) {
            "INSERT INTO outbox_relay_instances (instance_id, hostname, started_at, heartbeat_at)
             VALUES ($1, $2, now(), now())
             ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()"
        } else {
            // Counted as live, it would keep the others at a share that leaves its shards to no one.
            "DELETE FROM outbox_relay_instances WHERE instance_id = $1 AND $2 IS NOT NULL"
        };
        sqlx::query(statement).bind(self.instance_id).bind(hostname()).execute(&mut **transaction).await?;
        sqlx::query(
            "DELETE FROM outbox_relay_instances WHERE heartbeat_at < now() - make_interval(secs => $1 * 3)",
        )
        .bind(ttl_secs)
        .execute(&mut **transaction)
        .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox_relay_instances WHERE heartbeat_at > now() - make_interval(secs => $1)",
        )
        .bind(ttl_secs)
        .fetch_one(&mut **transaction)
        .await?;
        Ok(usize::try_from(live).unwrap_or(1).max(1))
    }

    /// Extends the leases still held; a shard whose lease expired and moved to another instance is no longer
    /// returned.
    async fn renew(&self, transaction: &mut PgTransaction<'_>) -> Result<Vec<(i16, i64)>, sqlx::Error> {
        let held: Vec<(i16, i64)> = sqlx::query_as(
            "UPDATE outbox_relay_shards SET lease_expires_at = now() + make_interval(secs => $2)
             WHERE shard IN (SELECT shard FROM outbox_relay_shards WHERE owner = $1 ORDER BY shard FOR UPDATE)
             RETURNING shard, epoch",
        )
        .bind(self.instance_id)
        .bind(self.ttl.as_secs_f64())
        .fetch_all(&mut **transaction)
        .await?;
        let lost: Vec<i16> = self
            .assignment
            .borrow()
            .shards()
            .into_iter()
            .filter(|shard| !held.iter().any(|(held, _)| held == shard))
            .collect();
        if !lost.is_empty() {
            tracing::warn!(outbox = %self.outbox, shards = ?lost, "Lost shards whose leases expired before renewal.");
        }
        Ok(held)
    }

    /// Takes up to `wanted` free or expired shards, each at a new epoch.
    async fn acquire(
        &self,
        transaction: &mut PgTransaction<'_>,
        wanted: usize,
    ) -> Result<Vec<(i16, i64)>, sqlx::Error> {
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
        .bind(self.ttl.as_secs_f64())
        .bind(wanted as i64)
        .fetch_all(&mut **transaction)
        .await?;
        if !acquired.is_empty() {
            let shards = acquired.iter().map(|(shard, _)| *shard);
            let (first, last) = (shards.clone().min().unwrap_or_default(), shards.max().unwrap_or_default());
            let epochs = acquired.iter().map(|(_, epoch)| *epoch);
            let (oldest, newest) =
                (epochs.clone().min().unwrap_or_default(), epochs.max().unwrap_or_default());
            tracing::info!(
                outbox = %self.outbox,
                shards = acquired.len(),
                range = %format_args!("{first}..={last}"),
                epochs = %format_args!("{oldest}..={newest}"),
                "Took over shards."
            );
        }
        Ok(acquired)
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

    /// Gives `shards` back, so the instance they belong to takes them at once. For the publishing loop, between
    /// batches.
    pub async fn release(&self, shards: &[i16]) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE outbox_relay_shards SET owner = NULL, lease_expires_at = '-infinity'
             WHERE shard IN (SELECT shard FROM outbox_relay_shards WHERE owner = $1 AND shard = ANY($2)
                             ORDER BY shard FOR UPDATE)",
        )
        .bind(self.instance_id)
        .bind(shards)
        .execute(&self.pool)
        .await?;
        self.assignment.send_modify(|assignment| {
            assignment.leases.retain(|(shard, _)| !shards.contains(shard));
            assignment.to_release.retain(|shard| !shards.contains(shard));
        });
        tracing::info!(outbox = %self.outbox, shards = ?shards, "Gave shards back for another instance.");
        Ok(())
    }

    /// Gives every shard back and leaves, so other instances take over at once rather than after the lease time.
    pub async fn release_all(&self) -> Result<(), sqlx::Error> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "UPDATE outbox_relay_shards SET owner = NULL, lease_expires_at = '-infinity'
             WHERE shard IN (SELECT shard FROM outbox_relay_shards WHERE owner = $1 ORDER BY shard FOR UPDATE)",
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

    fn assignment(valid_for: Duration) -> Assignment {
        Assignment {
            leases: vec![(1, 3), (2, 7)],
            valid_until: Some(Instant::now() + valid_for),
            to_release: Vec::new(),
        }
    }

    #[test]
    fn an_assignment_is_usable_only_until_it_expires() {
        let fresh = assignment(Duration::from_secs(60));
        let stale =
            Assignment { valid_until: Some(Instant::now() - Duration::from_millis(1)), ..fresh.clone() };

        assert_eq!(fresh.usable_shards(), [1, 2]);
        assert!(fresh.holds(2));
        assert!(stale.usable_shards().is_empty());
        assert!(!stale.holds(2));
        assert_eq!(stale.leases(), [(1, 3), (2, 7)], "the epochs stay known for the bookkeeping");
        assert!(Assignment::default().usable_shards().is_empty());
    }
}
