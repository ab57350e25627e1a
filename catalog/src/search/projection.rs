//! The Elasticsearch product index as a projection of `shop.products.v1`.

use shop_events::{catalog::ProductEvent, topics};
use shop_projection::{Outcome, Projection, ProjectionError, Rebuildable, Record};
use sqlx::{PgPool, PgTransaction};

use super::ProductIndex;

/// Feeds the product index from product events. Offsets live in the catalog database; documents carry the
/// product version as an Elasticsearch external version, so replays and late duplicates change nothing.
#[derive(Debug, Clone)]
pub struct SearchIndexProjection {
    name: String,
    index: ProductIndex,
    /// Where documents go: the alias when live, a fresh concrete index during a rebuild.
    target: String,
}

impl SearchIndexProjection {
    pub const NAME: &'static str = "catalog.search-index";
    const TOPICS: &'static [&'static str] = &[topics::PRODUCTS];

    pub fn live(index: ProductIndex) -> Self {
        Self { name: Self::NAME.to_owned(), target: index.alias().to_owned(), index }
    }
}

impl Projection for SearchIndexProjection {
    fn name(&self) -> &str {
        &self.name
    }

    fn topics(&self) -> &[&'static str] {
        Self::TOPICS
    }

    async fn apply(
        &self,
        _transaction: &mut PgTransaction<'_>,
        records: &[Record],
    ) -> Result<Vec<Outcome>, ProjectionError> {
        let events: Vec<Result<ProductEvent, Outcome>> = records
            .iter()
            .map(|record| {
                let event_type =
                    record.event_type().ok_or_else(|| Outcome::Skipped("no ce_type header".into()))?;
                ProductEvent::decode(event_type, record.payload())
                    .map_err(|error| Outcome::Skipped(format!("{event_type}: {error}")))
            })
            .collect();
        let products: Vec<_> =
            events.iter().filter_map(|event| event.as_ref().ok().map(ProductEvent::product)).collect();
        let mut indexed = self.index.index(&self.target, &products).await?.into_iter();
        Ok(events
            .into_iter()
            .map(|event| match event {
                Ok(_) => indexed.next().unwrap_or(Outcome::Ignored),
                Err(skipped) => skipped,
            })
            .collect())
    }
}

impl Rebuildable for SearchIndexProjection {
    async fn prepare_shadow(&self, _pool: &PgPool) -> anyhow::Result<Self> {
        let target = self.index.create_index().await?;
        Ok(Self { name: format!("{}.rebuild", self.name), index: self.index.clone(), target })
    }

    async fn swap_in(&self, shadow: &Self, _transaction: &mut PgTransaction<'_>) -> anyhow::Result<()> {
        // Not transactional with Postgres: should the offsets commit fail after this, the live consumer replays
        // from its older offsets into the new index, where external versions make the replay change nothing.
        self.index.point_alias_at(&shadow.target).await
    }
}
