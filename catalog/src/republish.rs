//! `catalog republish`: appends every product's current state to the outbox again, for consumers of
//! `shop.products.v1` that lost its first records (see [`shop_outbox::republish`]).

use shop_events::{Envelope, catalog::ProductRepublished, republish::RepublishCompleted, topics};
use shop_outbox::republish::{self as runner, Entities, RepublishSettings};
use shop_platform::{kafka, progress::Stages};
use sqlx::{PgPool, PgTransaction};
use uuid::Uuid;

use crate::{config::Settings, database, repository};

/// The products, as the republish walks them.
#[derive(Debug, Clone, Copy)]
pub struct Products;

impl Entities for Products {
    fn topic(&self) -> &'static str {
        topics::PRODUCTS
    }

    async fn count(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM products").fetch_one(pool).await?;
        Ok(count as u64)
    }

    async fn next_batch(
        &self,
        transaction: &mut PgTransaction<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Envelope>, sqlx::Error> {
        let products = repository::share_products_after(transaction, after, limit).await?;
        Ok(products
            .iter()
            .map(|product| Envelope::new(&ProductRepublished { product: product.to_event_state() }, None))
            .collect())
    }
}

/// Republishes every product, showing progress, and prints what it did.
pub async fn republish(
    settings: &Settings,
    republish: &RepublishSettings,
) -> anyhow::Result<RepublishCompleted> {
    let pool = database::connect(settings).await?;
    // Before anything is written: every event of the run lands at or after these offsets.
    let starts = runner::start_offsets(kafka::partition_ends(&settings.kafka, topics::PRODUCTS).await?);
    let mut shown = Stages::default();
    let completed = runner::republish(&pool, &Products, starts, republish, |progress| {
        let (stage, done, total) = progress.stage();
        shown.update(stage, done, total)
    })
    .await;
    shown.finish();
    let completed = completed?;
    println!("{}", runner::summary(&completed, &settings.kafka.topic(topics::PRODUCTS)));
    Ok(completed)
}
