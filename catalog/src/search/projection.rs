//! The Elasticsearch product index as a projection of `shop.products.v1`.

use shop_events::{
    catalog::ProductEvent,
    consumer::{self, Outcome, Projection, ProjectionError, RebuildReport, Rebuildable, Record},
    topics,
};
use shop_platform::progress::{Progress, rate};
use sqlx::{PgPool, PgTransaction};

use super::{ProductIndex, SearchBackend};
use crate::{config::Settings, startup};

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

/// `catalog rebuild-search-index`: replays `shop.products.v1` into a fresh Elasticsearch index and swaps the alias
/// (elasticsearch backend), or rebuilds the full-text index in Postgres (postgres backend).
pub async fn rebuild(settings: &Settings) -> anyhow::Result<Option<RebuildReport>> {
    let pool = startup::connect(settings).await?;
    if settings.search.search_backend == SearchBackend::Postgres {
        let started = std::time::Instant::now();
        sqlx::query("REINDEX INDEX CONCURRENTLY products_search").execute(&pool).await?;
        let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products").fetch_one(&pool).await?;
        println!(
            "The postgres search backend indexes the products table itself: rebuilt its full-text index over \
             {products} products in {:.1?}.",
            started.elapsed()
        );
        return Ok(None);
    }

    let index = ProductIndex::new(&settings.search.elasticsearch_url, &settings.search.elasticsearch_index)?;
    index.ensure_exists().await?;
    let live = SearchIndexProjection::live(index);
    let source = settings.kafka.consumer_source();
    let mut progress = Progress::start(format!("Rebuilding {}", SearchIndexProjection::NAME));
    let report = consumer::rebuild(&live, &pool, &source, |p| progress.update(p.consumed, p.target)).await?;
    progress.finish();
    println!(
        "Rebuilt {} from {} events in {:.1?} ({:.0} events/s): {} indexed, {} ignored (older or repeated versions), \
         {} skipped (undecodable), {} caught up before the swap; the alias {} now points at the new index.",
        SearchIndexProjection::NAME,
        report.consumed,
        report.elapsed,
        rate(report.consumed, report.elapsed),
        report.applied,
        report.ignored,
        report.skipped,
        report.caught_up,
        settings.search.elasticsearch_index,
    );
    Ok(Some(report))
}
