//! `catalog rebuild-search-index`: rebuilds the search index the configured backend answers from.

use shop_platform::progress::Progress;
use shop_projection::{RebuildReport, RebuildSettings, Source};

use crate::{
    config::Settings,
    database,
    search::{ProductIndex, SearchBackend, SearchIndexProjection},
};

/// `catalog rebuild-search-index`: replays `shop.products.v1` into a fresh Elasticsearch index and swaps the alias
/// (elasticsearch backend), or rebuilds the full-text index in Postgres (postgres backend).
pub async fn rebuild_search_index(
    settings: &Settings,
    rebuild: &RebuildSettings,
) -> anyhow::Result<Option<RebuildReport>> {
    let pool = database::connect(settings).await?;
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

    let index =
        ProductIndex::new(settings.search.elasticsearch_url.expose(), &settings.search.elasticsearch_index)?;
    index.ensure_exists().await?;
    let live = SearchIndexProjection::live(index);
    let source = Source::from_settings(&settings.kafka);
    let mut progress = Progress::start(format!("Rebuilding {}", SearchIndexProjection::NAME));
    let report =
        shop_projection::rebuild(&live, &pool, &source, rebuild, |p| progress.update(p.consumed, p.target))
            .await?;
    progress.finish();
    println!(
        "Rebuilt {} {report}; the alias {} now points at the new index.",
        SearchIndexProjection::NAME,
        settings.search.elasticsearch_index,
    );
    Ok(Some(report))
}
