//! `order republish`: appends every order's current state to the outbox again, for consumers of `shop.orders.v1`
//! that need every order while retention has deleted the old records (see [`shop_outbox::republish`]).

use shop_events::{Envelope, order::OrderRepublished, republish::RepublishCompleted, topics};
use shop_outbox::republish::{self as runner, Entities, RepublishSettings};
use shop_platform::{kafka, progress::Stages};
use sqlx::{PgPool, PgTransaction};
use uuid::Uuid;

use crate::{config::Settings, database, repository};

/// The orders, as the republish walks them.
#[derive(Debug, Clone, Copy)]
pub struct Orders;

impl Entities for Orders {
    fn topic(&self) -> &'static str {
        topics::ORDERS
    }

    async fn count(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(pool).await?;
        Ok(count as u64)
    }

    async fn next_batch(
        &self,
        transaction: &mut PgTransaction<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Envelope>, sqlx::Error> {
        let orders = repository::share_orders_after(transaction, after, limit).await?;
        Ok(orders
            .iter()
            .map(|order| Envelope::new(&OrderRepublished { order: order.to_event_state() }, None))
            .collect())
    }
}

/// Republishes every order, showing progress, and prints what it did.
pub async fn republish(
    settings: &Settings,
    republish: &RepublishSettings,
) -> anyhow::Result<RepublishCompleted> {
    let pool = database::connect(settings).await?;
    // Before anything is written: every event of the run lands at or after these offsets.
    let starts = runner::start_offsets(kafka::partition_ends(&settings.kafka, topics::ORDERS).await?);
    let mut shown = Stages::default();
    let completed = runner::republish(&pool, &Orders, starts, republish, |progress| {
        let (stage, done, total) = progress.stage();
        shown.update(stage, done, total)
    })
    .await;
    shown.finish();
    let completed = completed?;
    println!("{}", runner::summary(&completed, &settings.kafka.topic(topics::ORDERS)));
    Ok(completed)
}
