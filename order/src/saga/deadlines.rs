//! Every waiting step has a deadline. An order that awaits the catalog's stock longer than the stock timeout is
//! rejected — and then owes a release, since the catalog may hold stock for it. The sweep takes orders with
//! `FOR UPDATE SKIP LOCKED` and moves only those still awaiting stock, so however many replicas sweep, each order
//! times out once; an answer of the catalog settling it at the same moment waits for the row, then finds it
//! final and changes nothing.
//!
//! A release owed is a visible state, never a silent one: the order says `stock_release_pending` until the catalog
//! confirms it. In projection mode the catalog releases when it consumes the order's final event, and its answer
//! completes the release; the sweep says, at most every [`REPORT_INTERVAL`], how many orders still wait for it. In
//! `grpc` mode the sweep asks the catalog itself (`ReleaseStock`, idempotent) until it answers.

use std::{sync::Mutex, time::Duration};

use chrono::Utc;
use shop_events::TraceContext;
use shop_outbox as outbox;
use shop_platform::{ServiceError, supervisor::Part};
use sqlx::PgPool;
use tokio::time::Instant;

use super::{catalog::CatalogStock, settle};
use crate::{metrics::Settlement, repository};

/// Orders timed out, or releases retried, per transaction.
const BATCH: i64 = 100;

/// How often, at most, the sweep says that releases are still owed.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// The sweep of orders past their stock deadline, and of releases still owed.
#[derive(Debug)]
pub struct StockDeadlines {
    pool: PgPool,
    /// How long an order may await stock.
    timeout: Duration,
    /// How often to sweep.
    interval: Duration,
    /// In `grpc` mode, the catalog to ask for releases; in projection mode its answers come over Kafka.
    catalog: Option<CatalogStock>,
    last_report: Mutex<Option<Instant>>,
}

impl StockDeadlines {
    pub fn new(pool: PgPool, timeout: Duration, interval: Duration, catalog: Option<CatalogStock>) -> Self {
        Self { pool, timeout, interval, catalog, last_report: Mutex::new(None) }
    }

    /// Sweeps every interval until `part.stop`. A sweep that fails (the database is away) is logged, reported
    /// NOT_SERVING and tried again at the next interval.
    pub async fn run(&self, part: Part) -> anyhow::Result<()> {
        loop {
            match self.sweep().await {
                Ok(()) => part.health.serving(),
                Err(error) => {
                    tracing::warn!(error.cause_chain = ?error, "Sweeping stock deadlines failed; retrying soon.");
                    part.health.not_serving(format!("sweeping stock deadlines failed: {error}"));
                }
            }
            tokio::select! {
                () = part.stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One sweep: times out every order past its deadline, then sees to the releases still owed.
    pub async fn sweep(&self) -> Result<(), ServiceError> {
        self.time_out().await?;
        match &self.catalog {
            Some(catalog) => self.release_over_grpc(catalog).await,
            None => self.report_owed_releases().await,
        }
    }

    /// Rejects every order that has awaited stock longer than the timeout. Returns how many.
    pub async fn time_out(&self) -> Result<usize, ServiceError> {
        let reason = format!("no answer about stock within {} ms", self.timeout.as_millis());
        let mut timed_out = 0;
        loop {
            let before = Utc::now() - self.timeout;
            let mut transaction = self.pool.begin().await?;
            let orders =
                repository::lock_orders_awaiting_stock_since(&mut transaction, before, BATCH).await?;
            if orders.is_empty() {
                return Ok(timed_out);
            }
            let mut settlements = Vec::with_capacity(orders.len());
            for (mut order, trace) in orders {
                let trace = trace.map(|trace| trace.child()).unwrap_or_else(TraceContext::new_root);
                let event = order
                    .reject(reason.clone())
                    .map_err(|error| ServiceError::Unexpected(anyhow::Error::new(error)))?;
                repository::update_order(&mut transaction, &order).await?;
                outbox::append(&mut transaction, &event.to_envelope(Some(&trace))).await?;
                tracing::warn!(order_id = %order.id, reason, "An order waited too long for stock; rejected it.");
                settlements.push(Settlement::of(&order));
                timed_out += 1;
            }
            transaction.commit().await?;
            settlements.into_iter().for_each(Settlement::record);
        }
    }

    /// Asks the catalog to release what it may hold for every order owing a release, and settles its answers.
    /// Stops at the first failure (the catalog is away): the next sweep tries again.
    async fn release_over_grpc(&self, catalog: &CatalogStock) -> Result<(), ServiceError> {
        let mut connection = self.pool.acquire().await?;
        let owed = repository::orders_owing_a_release(&mut connection, Utc::now(), BATCH).await?;
        drop(connection);
        for order_id in owed {
            let answer = match catalog.release(order_id, &TraceContext::new_root()).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::warn!(
                        %order_id,
                        error.message = %error,
                        "Could not ask the catalog to release an order's stock; the order still owes the release, \
                         and the next sweep asks again."
                    );
                    return Ok(());
                }
            };
            let mut transaction = self.pool.begin().await?;
            settle(&mut transaction, order_id, &answer).await?;
            transaction.commit().await?;
        }
        Ok(())
    }

    /// Says, at most every [`REPORT_INTERVAL`], how many orders have waited more than the timeout for the catalog
    /// to release their stock (its consumer of the orders topic lags or is down).
    async fn report_owed_releases(&self) -> Result<(), ServiceError> {
        {
            let mut last = self.last_report.lock().expect("not poisoned");
            if last.is_some_and(|at| at.elapsed() < REPORT_INTERVAL) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let mut connection = self.pool.acquire().await?;
        let overdue =
            repository::orders_owing_a_release(&mut connection, Utc::now() - self.timeout, BATCH).await?;
        if !overdue.is_empty() {
            tracing::warn!(
                orders = overdue.len(),
                oldest = %overdue[0],
                "Orders have owed a stock release for longer than the stock timeout: the catalog has not consumed \
                 their final events yet (its consumer lags or is down). They stay marked stock_release_pending until \
                 it answers."
            );
        }
        Ok(())
    }
}
