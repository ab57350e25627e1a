//! Asynchronous validation (the `projection` mode): the [`Validator`] takes pending orders and, from the order
//! service's own projection of accounts and products, confirms them (priced from the projection) or rejects them
//! with a reason, each transition recorded with its event in one transaction.
//!
//! An order naming something the projection does not know yet waits, up to a bounded time, for a lagging
//! projection to catch up; then it is rejected. Pending orders are taken with `FOR UPDATE SKIP LOCKED`, so several
//! replicas validate side by side and never the same order twice.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use shop_events::{Envelope, TraceContext};
use shop_outbox as outbox;
use shop_platform::{ServiceError, supervisor::Part};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    directory::Directory,
    domain::{Order, OrderError, Verdict},
    repository,
};

/// Pending orders taken per transaction.
const BATCH: i64 = 100;

/// How the validator paces itself.
#[derive(Debug, Clone, Copy)]
pub struct ValidationSettings {
    /// How long an order may wait for the directory to learn of its account and products.
    pub max_wait: Duration,
    /// How often to look even without a wake-up (orders of other replicas, waits running out).
    pub interval: Duration,
}

/// Moves pending orders to confirmed or rejected.
#[derive(Debug)]
pub struct Validator<D> {
    pool: PgPool,
    directory: D,
    settings: ValidationSettings,
    wake: Arc<Notify>,
}

impl<D: Directory> Validator<D> {
    pub fn new(pool: PgPool, directory: D, settings: ValidationSettings, wake: Arc<Notify>) -> Self {
        Self { pool, directory, settings, wake }
    }

    /// Validates until `part.stop`, waking on `wake` (an order placed, the projection moved) or every interval. A
    /// pass that fails (the database is away) is logged, reported NOT_SERVING and tried again at the next wake.
    pub async fn run(&self, part: Part) -> anyhow::Result<()> {
        loop {
            match self.validate_pending().await {
                Ok(_) => part.health.serving(),
                Err(error) => {
                    tracing::warn!(error.cause_chain = ?error, "Validating pending orders failed; retrying soon.");
                    part.health.not_serving(format!("validating pending orders failed: {error}"));
                }
            }
            tokio::select! {
                () = part.stop.cancelled() => return Ok(()),
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.interval) => {}
            }
        }
    }

    /// One pass over every pending order. Returns how many were confirmed or rejected.
    pub async fn validate_pending(&self) -> Result<usize, ServiceError> {
        let mut after = Uuid::nil();
        let mut decided = 0;
        loop {
            let mut transaction = self.pool.begin().await?;
            let pending = repository::lock_pending_orders(&mut transaction, after, BATCH).await?;
            let Some((last, _)) = pending.last() else { break };
            after = last.id;
            for (mut order, trace) in pending {
                let trace = trace.map(|trace| trace.child()).unwrap_or_else(TraceContext::new_root);
                let Some(event) = self.decide(&mut order, &trace).await? else {
                    continue;
                };
                repository::update_order(&mut transaction, &order).await?;
                outbox::append(&mut transaction, &event).await?;
                decided += 1;
                tracing::info!(
                    order_id = %order.id,
                    status = order.status.as_str(),
                    reason = order.rejection_reason.as_deref(),
                    "Validated an order."
                );
            }
            transaction.commit().await?;
        }
        Ok(decided)
    }

    /// The order's transition and its event, or `None` while it should wait.
    async fn decide(
        &self,
        order: &mut Order,
        trace: &TraceContext,
    ) -> Result<Option<Envelope>, ServiceError> {
        let account_known = self.directory.account_exists(order.account_id, trace).await?;
        let product_ids: Vec<Uuid> = order.lines.iter().map(|line| line.product_id).collect();
        let catalog = self.directory.products(&product_ids, trace).await?;
        let waited = (Utc::now() - order.created_at).to_std().unwrap_or_default();
        let event = match order.verdict(account_known, &catalog, waited < self.settings.max_wait) {
            Verdict::Wait => return Ok(None),
            Verdict::Confirm => match order.confirm(&catalog) {
                Ok(confirmed) => Envelope::new(&confirmed, Some(trace)),
                Err(OrderError::TotalTooLarge) => Envelope::new(
                    &order.reject("the order total is too large").map_err(unexpected)?,
                    Some(trace),
                ),
                Err(error) => return Err(unexpected(error)),
            },
            Verdict::Reject(reason) => Envelope::new(&order.reject(reason).map_err(unexpected)?, Some(trace)),
        };
        Ok(Some(event))
    }
}

fn unexpected(error: OrderError) -> ServiceError {
    ServiceError::Unexpected(anyhow::Error::new(error))
}
